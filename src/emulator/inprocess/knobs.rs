//! What tests script and count on the in-process model: calls per operation (every call
//! that reaches the model), the next calls of an operation failing before or after they take
//! effect, downloads cut short or slowed, the page size, and the uploads made.

use super::InProcessClient;
use crate::altinn::client::{AltinnError, Answer, Result};
use crate::altinn::faults::Op;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// When a scripted failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultWhen {
    /// Before the operation: nothing changes in the model.
    Before,
    /// After the operation took effect: the answer is lost (a write's outcome is unknown).
    After,
}

#[derive(Debug, Clone)]
struct Scripted {
    remaining: usize,
    err: AltinnError,
    when: FaultWhen,
}

/// An upload as the model received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSeen {
    /// `POST` or `PUT`.
    pub method: &'static str,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
}

#[derive(Default)]
struct State {
    counts: HashMap<Op, usize>,
    scripted: HashMap<Op, Scripted>,
    /// Downloads of these element ids end after this many bytes (a cut connection).
    truncate: HashMap<String, u64>,
    chunk_delay: Option<Duration>,
    /// Instances per query page, whatever the caller asks (None: the caller's `size`).
    page_size: Option<usize>,
    uploads: Vec<UploadSeen>,
}

#[derive(Default)]
pub(super) struct Knobs(Mutex<State>);

/// An error answer of `status`, classified by the same parser as the HTTP client's answers.
pub fn status_error(status: u16, method: &str, path: &str, message: &str) -> AltinnError {
    AltinnError::from_answer(Answer {
        status,
        method,
        path,
        message: message.into(),
        problem: None,
        retry_after: None,
    })
}

impl Knobs {
    /// Count the call and apply a `Before` failure; returns an `After` one to apply later.
    pub(super) fn enter(&self, op: Op) -> Result<Option<AltinnError>> {
        let mut st = self.0.lock().unwrap();
        *st.counts.entry(op).or_default() += 1;
        let Some(f) = st.scripted.get_mut(&op).filter(|f| f.remaining > 0) else {
            return Ok(None);
        };
        f.remaining -= 1;
        let (err, when) = (f.err.clone(), f.when);
        if f.remaining == 0 {
            st.scripted.remove(&op);
        }
        match when {
            FaultWhen::Before => Err(err),
            FaultWhen::After => Ok(Some(err)),
        }
    }

    pub(super) fn truncation(&self, id: &str) -> Option<u64> {
        self.0.lock().unwrap().truncate.get(id).copied()
    }

    pub(super) fn chunk_delay(&self) -> Option<Duration> {
        self.0.lock().unwrap().chunk_delay
    }

    pub(super) fn page_size(&self) -> Option<usize> {
        self.0.lock().unwrap().page_size
    }

    pub(super) fn record_upload(&self, seen: UploadSeen) {
        self.0.lock().unwrap().uploads.push(seen);
    }
}

/// The answer, unless an `After` failure was scripted: then the change stands and the
/// answer is lost.
pub(super) fn finish<T>(after: Option<AltinnError>, v: Result<T>) -> Result<T> {
    match (after, v) {
        (Some(e), Ok(_)) => Err(e),
        (_, v) => v,
    }
}

impl InProcessClient {
    /// Fail the next `n` calls of `op` with `err`, before or after they take effect.
    pub fn fail_next(&self, op: Op, n: usize, err: AltinnError, when: FaultWhen) {
        let s = Scripted {
            remaining: n,
            err,
            when,
        };
        self.knobs.0.lock().unwrap().scripted.insert(op, s);
    }

    /// Calls of `op` that reached the model so far.
    pub fn count(&self, op: Op) -> usize {
        *self.knobs.0.lock().unwrap().counts.get(&op).unwrap_or(&0)
    }

    /// Calls of every kind so far.
    pub fn total_requests(&self) -> usize {
        self.knobs.0.lock().unwrap().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        self.knobs.0.lock().unwrap().counts.clear();
    }

    /// Answer every query page with at most `n` instances.
    pub fn set_page_size(&self, n: usize) {
        self.knobs.0.lock().unwrap().page_size = Some(n.max(1));
    }

    /// Sleep this long before each downloaded chunk (64 KiB).
    pub fn set_chunk_delay(&self, d: Option<Duration>) {
        self.knobs.0.lock().unwrap().chunk_delay = d;
    }

    /// Cut downloads of element `id` after `at` bytes (until cleared with None).
    pub fn truncate_downloads(&self, id: &str, at: Option<u64>) {
        let mut st = self.knobs.0.lock().unwrap();
        match at {
            Some(n) => st.truncate.insert(id.into(), n),
            None => st.truncate.remove(id),
        };
    }

    /// The uploads the model accepted, in order.
    pub fn uploads(&self) -> Vec<UploadSeen> {
        self.knobs.0.lock().unwrap().uploads.clone()
    }
}
