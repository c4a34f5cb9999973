//! `InProcessClient`: an `AltinnClient` that calls the emulator's service directly, with no
//! HTTP and no socket. It is the test model of Altinn: the same store, the same checks in
//! Altinn's order and the same refusals as the emulator's routes, each refusal read by the
//! HTTP client's own parser (`http::describe_body`, `AltinnError::from_answer`) so a test sees
//! the error a mount would see.
//!
//! - `client`: the trait, operation by operation, over `service/`.
//! - `knobs`: what tests script and count (calls per operation, scripted failures, cut or slow
//!   downloads, page size, the uploads made).
//! - `fixtures`: a fresh store with a given app, the sample app, and changes made behind the
//!   API's back (add an instance or element, lock an element, archive an instance).
//!
//! Test support: built for tests and the `test-support` feature only.

mod client;
mod fixtures;
mod knobs;

pub use knobs::{status_error, FaultWhen, UploadSeen};

use super::auth::Principal;
use super::server::Shared;
use super::service::refusal::Wire;
use crate::altinn::client::{AltinnError, Answer, Result};
use std::sync::Arc;

/// Who the client is: a bearer token checked on every call (it can expire), or a principal
/// taken as given (a user of any party, for tests).
enum Identity {
    Token(String),
    As(Principal),
}

pub struct InProcessClient {
    shared: Arc<Shared>,
    who: std::sync::RwLock<Identity>,
    app_id: String,
    knobs: knobs::Knobs,
    /// The store's directory when the client owns it (removed with the client).
    _dir: Option<tempfile::TempDir>,
}

/// The links in the answers point here, as an HTTP client's point at the server.
const BASE: &str = "http://in-process";

impl InProcessClient {
    /// A client of `shared`'s app `app_id` with the caller's `token`.
    pub(super) fn over(shared: Arc<Shared>, app_id: String, token: &str) -> Self {
        Self {
            shared,
            who: std::sync::RwLock::new(Identity::Token(token.to_string())),
            app_id,
            knobs: knobs::Knobs::default(),
            _dir: None,
        }
    }

    /// The caller, as the routes' `Shared::auth` finds it: an invalid token is a 401.
    fn principal(&self) -> std::result::Result<Principal, Wire> {
        match &*self.who.read().unwrap() {
            Identity::As(p) => Ok(p.clone()),
            Identity::Token(t) => self
                .shared
                .tokens
                .validate(t.trim())
                .ok_or_else(|| Wire::empty(401)),
        }
    }
}

/// The error the HTTP client would make of this answer: the same body parser, the same
/// classification.
fn refused(method: &str, path: &str, w: Wire) -> AltinnError {
    let (message, problem) = crate::altinn::http::describe_body(w.status, &w.body);
    AltinnError::from_answer(Answer {
        status: w.status,
        method,
        path,
        message,
        problem,
        retry_after: None,
    })
}

/// A model through the JSON dialect the routes answer in, as the HTTP client decodes it.
fn decoded<T: serde::de::DeserializeOwned>(path: &str, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| AltinnError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    })
}
