//! Thin axum handlers over `service/`: parse the request, call the service, render Altinn's
//! JSON and status codes. (The App and Storage routes still live in `app/` and `storage.rs`.)

pub mod act;
