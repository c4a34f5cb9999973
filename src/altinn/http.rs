//! reqwest implementation of `AltinnClient` (filled in by the client work).
