//! The HTTP-free model of Altinn: what the emulator decides, apart from how a request arrives
//! or how an answer is rendered. Nothing here knows axum.
//!
//! - `app_model`: the served app's tasks, empty model and calculation.
//! - `query`: Storage's instance query as a parsed spec, pure filters and the page cut.
//! - `synthetic`: a sample app of any size, derived from the index on demand.
//! - `checks`: the App API's data write checks in app-lib's order, refusals as an enum.
//! - `data_write`: data POST/PUT/DELETE as typed requests (length, content type, filename,
//!   body stream) answered with the stored element or a `refusal::Fail`.
//! - `stateless`: the stateless data controller (prefill, calculation).
//! - `storage`: Storage's reads (instance lookup and access, blobs, a query page).
//! - `refusal`: a refused request in Altinn's wire form (status, ProblemDetails or text).
//! - `instances`: reaching an instance, create, delete, complete, process next, form reads.
//! - `instantiate`: who owns a new instance and its initial state.
//! - `process`: the process steps and the validation that blocks them.
//! - `act`: changes made "as someone else" (a user submitting, the org confirming), for tests.
//!
//! The routes (`../routes/`) turn HTTP into these calls and the answers back into HTTP; the
//! in-process client (`../inprocess/`) makes the same calls with no HTTP at all.

pub mod act;
pub mod app_model;
pub mod checks;
pub mod data_write;
pub mod instances;
pub mod instantiate;
pub mod process;
pub mod query;
pub mod refusal;
pub mod stateless;
pub mod storage;
pub mod synthetic;
