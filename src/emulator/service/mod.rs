//! The HTTP-free model of Altinn: what the emulator decides, apart from how a request arrives
//! or how an answer is rendered. Nothing here knows axum.
//!
//! - `app_model`: the served app's tasks, empty model and calculation.
//! - `query`: Storage's instance query as a parsed spec, pure filters and the page cut.
//! - `synthetic`: a sample app of any size, derived from the index on demand.
//! - `checks`: the App API's data write checks in app-lib's order, refusals as an enum.
//! - `instantiate`: who owns a new instance and its initial state.
//! - `process`: the process steps and the validation that blocks them.
//! - `act`: changes made "as someone else" (a user submitting, the org confirming), for tests.
//!
//! The App API's body handling (spooling, form parsing) stays with its routes in `app/`; an
//! in-process `AltinnClient` over this module is the next step of the split.

pub mod act;
pub mod app_model;
pub mod checks;
pub mod instantiate;
pub mod process;
pub mod query;
pub mod synthetic;
