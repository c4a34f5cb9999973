//! The `AltinnClient` trait: the Altinn operations the filesystem needs, and nothing about
//! files. The reqwest implementation is in `http.rs`; tests wrap it to inject faults.

use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AltinnError {
    /// The server answered with a non-success status.
    #[error("{method} {path} answered {status}: {message}")]
    Status {
        status: u16,
        method: String,
        /// URL path without query secrets; never a token.
        path: String,
        /// Human text from the body (ProblemDetails title/detail, issue descriptions, or text).
        message: String,
        problem: Option<Box<ProblemDetails>>,
        retry_after: Option<Duration>,
        /// What the server meant, decided once when the answer was parsed
        /// (`AltinnError::from_answer`); never re-derived from `message`.
        meaning: Meaning,
    },
    /// Connect/transfer failure or timeout; the outcome of a write is unknown.
    #[error("{method} {path}: network error: {message}")]
    Network {
        method: String,
        path: String,
        message: String,
    },
    /// A body that does not parse as the expected model.
    #[error("{path}: unexpected response: {message}")]
    Decode { path: String, message: String },
    /// A body shorter than its Content-Length (the connection was cut).
    #[error("{path}: body truncated after {got} of {expected} bytes")]
    Truncated {
        path: String,
        expected: u64,
        got: u64,
    },
    /// No usable token (missing, malformed, expired and not refreshable).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A local problem (spool file unreadable...).
    #[error("{0}")]
    Local(String),
}

/// What an error means for the caller, whatever shape the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// The server understood the request and will not do it: a rule of Altinn's.
    Refused(Refusal),
    /// The instance, element or route does not exist (404, 410).
    NotFound,
    /// No usable token (401 after one refresh, or no token at all).
    Unauthorized,
    /// The token may not do this (403).
    Forbidden,
    /// Worth retrying: a network error, a cut body, 5xx, 429, or Storage's timeout-shaped 400.
    /// For a write, the outcome is unknown.
    Transient { retry_after: Option<Duration> },
    /// An answer this client does not understand (a body that does not parse, a 3xx, 405).
    Unexpected,
    /// A local problem before or after the request (spool unreadable, bad header value).
    Local,
}

/// Altinn's refusals, by meaning (altinn-api.md §1.3: the POST/PUT/DELETE status matrix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 409 "Max Count Exceeded": the data type holds `maxCount` elements.
    MaxCount,
    /// 409 from Storage: the element is locked (its task has ended).
    Locked,
    /// 409 "Instance Not Active": archived, soft- or hard-deleted.
    NotActive,
    /// 409: the process has ended or not started, so nothing can be written or moved.
    NoCurrentTask,
    /// 400 "Cannot Delete main data element".
    MainForm,
    /// 400 "User Create/Delete Disallowed", read-only: the app forbids it for this caller.
    Disallowed,
    /// An upload validation issue (`uploadValidationIssues[].code`, e.g.
    /// `ContentTypeNotAllowed`, `DataElementTooLarge`, `InvalidFileNameFormat`).
    Rule(String),
    /// 415: a body of a content type the endpoint does not take (form data not XML/JSON).
    ContentType,
    /// 413, or a 400 that says the body exceeds the limit.
    TooLarge,
    /// Any other 400 or 422: the request itself is malformed or empty.
    Invalid,
    /// Any other 409: a conflict that may pass (a concurrent process move, a lock held).
    Conflict,
}

/// A non-success answer as it came off the wire, before it is classified.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    pub status: u16,
    pub method: &'a str,
    /// URL path without query secrets; never a token.
    pub path: &'a str,
    pub message: String,
    pub problem: Option<ProblemDetails>,
    pub retry_after: Option<Duration>,
}

impl AltinnError {
    /// The error for a non-success answer, its meaning decided here once
    /// (`http::meaning_of`: status, ProblemDetails, issue codes, and only then the text).
    pub fn from_answer(a: Answer<'_>) -> Self {
        let meaning = crate::altinn::http::meaning_of(
            a.status,
            a.problem.as_ref(),
            &a.message,
            a.retry_after,
        );
        AltinnError::Status {
            status: a.status,
            method: a.method.to_string(),
            path: a.path.to_string(),
            message: a.message,
            problem: a.problem.map(Box::new),
            retry_after: a.retry_after,
            meaning,
        }
    }

    /// What this error means. For `Status` it is the meaning parsed with the answer; the
    /// other variants mean what their shape says.
    pub fn meaning(&self) -> Meaning {
        match self {
            AltinnError::Status { meaning, .. } => meaning.clone(),
            AltinnError::Network { .. } | AltinnError::Truncated { .. } => {
                Meaning::Transient { retry_after: None }
            }
            AltinnError::Decode { .. } => Meaning::Unexpected,
            AltinnError::Auth(_) => Meaning::Unauthorized,
            AltinnError::Local(_) => Meaning::Local,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AltinnError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AltinnError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// Upload validation issue codes (`uploadValidationIssues[].code`), if any.
    pub fn issue_codes(&self) -> Vec<String> {
        match self {
            AltinnError::Status {
                problem: Some(p), ..
            } => p
                .upload_validation_issues
                .iter()
                .chain(p.validation_issues.iter())
                .flatten()
                .filter_map(|i| i.code.clone())
                .collect(),
            _ => vec![],
        }
    }
    /// Worth retrying for an idempotent request: network errors, truncation, 5xx, 429 and
    /// Storage's timeout-shaped 400.
    pub fn is_transient(&self) -> bool {
        matches!(self.meaning(), Meaning::Transient { .. })
    }
}

pub type Result<T, E = AltinnError> = std::result::Result<T, E>;

/// A download in flight: the body as a stream of chunks, never a whole blob in memory.
pub struct Download {
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    /// True only when the server advertised `Accept-Ranges: bytes` (Altinn does not).
    pub accept_ranges: bool,
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

/// An upload body: a spool file (streamed from disk, exact Content-Length) or bytes.
#[derive(Debug, Clone)]
pub enum UploadBody {
    File { path: PathBuf, len: u64 },
    Bytes(Bytes),
}

impl UploadBody {
    pub fn len(&self) -> u64 {
        match self {
            UploadBody::File { len, .. } => *len,
            UploadBody::Bytes(b) => b.len() as u64,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new data element: its type and the name and content type of its upload.
#[derive(Debug, Clone, Copy)]
pub struct NewElement<'a> {
    pub data_type: &'a DataTypeId,
    pub filename: &'a str,
    pub content_type: &'a str,
}

/// New bytes for an existing element: the name and content type of the upload.
#[derive(Debug, Clone, Copy)]
pub struct Replacement<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
}

/// Query filters for the Storage instance query (`appId` is added by the client).
pub type QueryParams = Vec<(String, String)>;

/// Largest number of pages `query_instances` follows: a server whose `next` never ends must
/// not hang the mount.
pub const MAX_QUERY_PAGES: usize = 100_000;

#[async_trait]
pub trait AltinnClient: Send + Sync + 'static {
    /// App API `GET api/v1/applicationmetadata`.
    async fn application_metadata(&self) -> Result<ApplicationMetadata>;
    /// App API `GET api/v1/parties`: the parties the caller may act for.
    async fn parties(&self) -> Result<Vec<Party>>;
    /// One Storage query page: the first (`next` = None, built from `params`) or a `next` URL.
    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse>;
    /// Storage `GET instances/{p}/{g}`.
    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance>;
    /// Storage `GET instances/{p}/{g}/dataelements`.
    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>>;
    /// Storage `GET instances/{p}/{g}/data/{d}`: the raw blob as a stream.
    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download>;
    /// [`Self::download`] asked once, never retried: for a prefetch, whose failure costs
    /// nothing (the reader's own open asks again) while retries would hold its slot.
    async fn download_once(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        self.download(inst, data_id).await
    }
    /// App API `GET instances/{p}/{g}/data/{d}` with an `Accept` header (form data views).
    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes>;
    /// App API POST of a new element (`data/{dataType}`, falling back to `data?dataType=`).
    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement>;
    /// App API `PUT data/{d}`: replace an element's bytes.
    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement>;
    /// App API `DELETE data/{d}`.
    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()>;
    /// App API `POST instances?instanceOwnerPartyId=`.
    async fn create_instance(&self, party: PartyId) -> Result<Instance>;
    /// App API `DELETE instances/{p}/{g}?hard=`.
    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance>;
    /// App API `POST instances/{p}/{g}/complete`.
    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance>;
    /// App API `PUT instances/{p}/{g}/process/next` with an optional action.
    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState>;
    /// App API stateless `GET v1/data?dataType=` (create, prefilled); `accept` picks XML/JSON.
    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes>;
    /// App API stateless `POST v1/data?dataType=` (calculate).
    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes>;

    /// Every instance matching `params`, following `next` to the end. A `next` that repeats
    /// itself or more than MAX_QUERY_PAGES pages is a broken server: stop following it, log
    /// it, and keep what the pages so far returned (a listing, not an error).
    async fn query_instances(&self, params: &QueryParams) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_QUERY_PAGES {
            let page = self.query_page(params, next.as_deref()).await?;
            out.extend(page.instances);
            match page.next {
                Some(n) if !n.is_empty() => {
                    if !seen.insert(n.clone()) {
                        tracing::warn!(
                            "the instance query's `next` link repeats itself after {} pages; \
                             stopped following it (the listing has what the pages gave)",
                            seen.len()
                        );
                        return Ok(dedup_instances(out));
                    }
                    next = Some(n);
                }
                _ => return Ok(dedup_instances(out)),
            }
        }
        tracing::warn!(
            "more than {MAX_QUERY_PAGES} instance query pages; stopped following `next`"
        );
        Ok(dedup_instances(out))
    }
}

/// Drop repeated instances (a looping or overlapping server), keeping the first.
fn dedup_instances(v: Vec<Instance>) -> Vec<Instance> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter()
        .filter(|i| seen.insert(i.id.clone()))
        .collect()
}

/// A shared client is a client: decorators (`Retrying`, the fault wrapper) can wrap an
/// `Arc` whose other clones still reach the inner client's controls and counters.
#[async_trait]
impl<C: AltinnClient + ?Sized> AltinnClient for std::sync::Arc<C> {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        (**self).application_metadata().await
    }
    async fn parties(&self) -> Result<Vec<Party>> {
        (**self).parties().await
    }
    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        (**self).query_page(params, next).await
    }
    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        (**self).get_instance(inst).await
    }
    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        (**self).list_data_elements(inst).await
    }
    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        (**self).download(inst, data_id).await
    }
    async fn download_once(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        (**self).download_once(inst, data_id).await
    }
    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        (**self).get_form_data(inst, data_id, accept).await
    }
    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        (**self).create_data(inst, new, body).await
    }
    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        (**self)
            .replace_data(inst, data_id, replacement, body)
            .await
    }
    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        (**self).delete_data(inst, data_id).await
    }
    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        (**self).create_instance(party).await
    }
    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        (**self).delete_instance(inst, hard).await
    }
    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        (**self).complete_instance(inst).await
    }
    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState> {
        (**self).process_next(inst, action).await
    }
    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        (**self).stateless_create(data_type, party, accept).await
    }
    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        (**self)
            .stateless_calculate(data_type, party, content_type, body, accept)
            .await
    }
    async fn query_instances(&self, params: &QueryParams) -> Result<Vec<Instance>> {
        (**self).query_instances(params).await
    }
}
