//! The HTTP-free model of Altinn: what the emulator decides, apart from how a request arrives
//! or how an answer is rendered. Nothing here knows axum.
//!
//! - `query`: Storage's instance query as a parsed spec, pure filters and the page cut.
//! - `synthetic`: a sample app of any size, derived from the index on demand.
//! - `act`: changes made "as someone else" (a user submitting, the org confirming), for tests.
//!
//! The App API's write checks still live with their routes in `app/`; moving them here, and an
//! in-process `AltinnClient` over this module, are the next steps of the split.

pub mod act;
pub mod query;
pub mod synthetic;
