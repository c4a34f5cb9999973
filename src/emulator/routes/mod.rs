//! Thin axum handlers over `service/`: parse the request, call the service, render Altinn's
//! JSON and status codes.
//!
//! - `app/`: the App API, `/{org}/{app}/...` (altinn-api.md §1).
//! - `storage`: the Storage API, `/storage/api/v1/...` (§3).
//! - `act`: the test-only `/_emulator/act/...` routes.

pub mod act;
pub mod app;
pub mod storage;
