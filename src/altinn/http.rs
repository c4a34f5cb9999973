//! reqwest (rustls) implementation of `AltinnClient`: URLs, exact headers, streaming, paging
//! by continuation token, and the one place where Altinn's answers are read for meaning.
//!
//! Writes go to the App API (it enforces the data type rules), listings and blob reads to
//! Storage (it pages and streams). An error answer is parsed once (`meaning_of`: status,
//! ProblemDetails, issue codes, and the words Altinn uses where it has no code) into a
//! `Meaning` carried by the error. Every request runs in an `http` tracing span. Each request
//! is sent once (a 401 refreshes the token and sends once more): retrying is the `Retrying`
//! decorator's job (retry.rs), for every caller that wants it.

use crate::altinn::auth::TokenProvider;
use crate::altinn::client::*;
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the app and the platform live, and how patient to be.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// App base, path included: `https://ttd.apps.tt02.altinn.no/ttd/myapp`.
    pub app_url: String,
    /// Platform base: `https://platform.tt02.altinn.no`.
    pub platform_url: String,
    /// `org/app`.
    pub app_id: String,
    /// Per-request timeout (a whole blob stream is bounded per chunk instead).
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl HttpConfig {
    pub fn new(app_url: &str, platform_url: &str, app_id: &str) -> Self {
        Self {
            app_url: app_url.trim_end_matches('/').to_string(),
            platform_url: platform_url.trim_end_matches('/').to_string(),
            app_id: app_id.to_string(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
    fn storage(&self) -> String {
        format!("{}/storage/api/v1", self.platform_url)
    }
}

pub struct HttpClient {
    cfg: HttpConfig,
    http: reqwest::Client,
    tokens: Arc<dyn TokenProvider>,
    /// The app's stateless controller has the seed's documented forms (POST create, PUT
    /// calculate): learned from a 404/405 to the current forms, then used directly.
    stateless_seed: std::sync::atomic::AtomicBool,
}

impl HttpClient {
    pub fn new(cfg: HttpConfig, tokens: Arc<dyn TokenProvider>) -> Result<Self> {
        // Connections are kept alive and pooled (a walk prefetch runs 16 downloads at once),
        // and HTTP/2 is used where the server offers it (ALPN), with a flow-control window
        // that grows with the link so one connection carries many blobs at wire speed.
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(64)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .http2_adaptive_window(true)
            .user_agent(concat!("altinnfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AltinnError::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            cfg,
            http,
            tokens,
            stateless_seed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &HttpConfig {
        &self.cfg
    }

    /// One request to the stateless controller `v1/data?dataType=` with the `party` header
    /// (`partyid:N`) when a party is given, and an optional body.
    async fn stateless_send(
        &self,
        method: Method,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<Bytes> {
        let dt = percent_encoding::utf8_percent_encode(
            data_type.as_str(),
            percent_encoding::NON_ALPHANUMERIC,
        );
        let url = format!("{}/v1/data?dataType={}", self.cfg.app_url, dt);
        let party = party.map(|p| format!("partyid:{p}"));
        let accept = accept.to_string();
        let body = body.map(|(ct, b)| (ct.to_string(), b));
        let m = method.clone();
        let mname = method.to_string();
        let r = self
            .request(method, &url, &move |rb| {
                let rb = rb.header(ACCEPT, accept.as_str());
                let rb = match &body {
                    Some((ct, b)) => rb.header(CONTENT_TYPE, ct.as_str()).body(b.clone()),
                    None if m != Method::GET => rb.header(CONTENT_LENGTH, 0),
                    None => rb,
                };
                Ok(match &party {
                    Some(p) => rb.header("party", p.as_str()),
                    None => rb,
                })
            })
            .await?;
        r.bytes().await.map_err(|e| AltinnError::Network {
            method: mname,
            path: redact(&url),
            message: describe_reqwest(&e),
        })
    }

    fn inst_url(&self, inst: &InstanceId) -> String {
        format!(
            "{}/instances/{}/{}",
            self.cfg.app_url, inst.party, inst.guid
        )
    }

    fn storage_inst_url(&self, inst: &InstanceId) -> String {
        format!(
            "{}/instances/{}/{}",
            self.cfg.storage(),
            inst.party,
            inst.guid
        )
    }

    /// Send once with the current token; after a 401 ask the provider for a new token and
    /// send once more. `build` makes a fresh request each time (bodies are not reusable).
    async fn send_authed(
        &self,
        method: &Method,
        url: &str,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Send + Sync),
    ) -> Result<Response> {
        let mut retried_auth = false;
        loop {
            let token = self.tokens.token().await?;
            let rb = self.http.request(method.clone(), url).bearer_auth(&token);
            let rb = build(rb)?;
            let started = Instant::now();
            let res = rb.send().await;
            let path = redact(url);
            match res {
                Ok(r) => {
                    tracing::trace!(
                        status = r.status().as_u16(),
                        ms = started.elapsed().as_millis() as u64,
                        "sent"
                    );
                    if r.status() == StatusCode::UNAUTHORIZED && !retried_auth {
                        tracing::debug!("401: asking for a new token, then once more");
                        retried_auth = true;
                        self.tokens.on_unauthorized(&token).await;
                        continue;
                    }
                    return Ok(r);
                }
                Err(e) => {
                    tracing::debug!(error = %describe_reqwest(&e), "not sent");
                    return Err(AltinnError::Network {
                        method: method.to_string(),
                        path,
                        message: describe_reqwest(&e),
                    });
                }
            }
        }
    }

    /// Send and turn a non-success status into `AltinnError::Status`, inside one `http` span
    /// (method, path without secrets, status, duration) that every log line of the request,
    /// its token refresh and its retries inherits.
    async fn request(
        &self,
        method: Method,
        url: &str,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Send + Sync),
    ) -> Result<Response> {
        use tracing::field::Empty;
        use tracing::Instrument;
        let span = tracing::info_span!(
            "http", method = %method, path = %span_path(url), status = Empty, ms = Empty
        );
        let started = Instant::now();
        let res = self
            .send_once(&method, url, build)
            .instrument(span.clone())
            .await;
        span.record("ms", started.elapsed().as_millis() as u64);
        let status = match &res {
            Ok(r) => Some(r.status().as_u16()),
            Err(e) => e.status(),
        };
        if let Some(s) = status {
            span.record("status", s);
        }
        span.in_scope(|| match &res {
            Ok(_) => tracing::debug!("answered"),
            Err(e) => tracing::debug!(error = %e, "failed"),
        });
        res
    }

    /// Send once; a non-success answer becomes the error that carries its meaning.
    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        build: &(dyn Fn(RequestBuilder) -> Result<RequestBuilder> + Send + Sync),
    ) -> Result<Response> {
        match self.send_authed(method, url, build).await? {
            r if r.status().is_success() => Ok(r),
            r => Err(error_from_response(method, url, r).await),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T> {
        let r = self
            .request(Method::GET, url, &|rb| {
                Ok(rb.header(ACCEPT, "application/json"))
            })
            .await?;
        json_body(url, r).await
    }

    async fn upload(
        &self,
        method: Method,
        url: &str,
        label: UploadLabel<'_>,
        body: &UploadBody,
    ) -> Result<Response> {
        let disposition = crate::altinn::rules::content_disposition(label.filename);
        let ct = label.content_type.to_string();
        let body = body.clone();
        self.request(method, url, &move |rb| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, header(&ct)?);
            headers.insert(CONTENT_DISPOSITION, header(&disposition)?);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            let rb = rb.headers(headers);
            Ok(match &body {
                UploadBody::Bytes(b) => rb.body(b.clone()),
                UploadBody::File { path, len } => {
                    rb.body(super::spool_body::file_body(path, *len)?)
                }
            })
        })
        .await
    }
}

/// How an upload's bytes are labelled: Content-Disposition's file name and Content-Type.
#[derive(Clone, Copy)]
struct UploadLabel<'a> {
    filename: &'a str,
    content_type: &'a str,
}

fn header(v: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(v)
        .map_err(|_| AltinnError::Local(format!("not a valid header value: {v:?}")))
}

/// What an `http` span shows of a URL: path and query with secrets redacted, no host.
fn span_path(url: &str) -> String {
    let clean = redact(url);
    match clean.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        },
        None => clean,
    }
}

/// The URL without secrets (userinfo, token-like query values), for logs and errors.
pub fn redact(url: &str) -> String {
    crate::logging::redact_url(url)
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "transfer failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs))
}

/// A Storage `next` link that asks for `size` items: its `size` parameter replaced in place
/// (or added), everything else, the twice-encoded continuation token included, verbatim.
pub fn with_page_size(next: &str, size: usize) -> String {
    let (base, query) = next.split_once('?').unwrap_or((next, ""));
    let is_size = |p: &&str| {
        p.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("size"))
    };
    let sized = format!("size={size}");
    let mut parts: Vec<&str> = Vec::new();
    let mut replaced = false;
    for p in query.split('&').filter(|p| !p.is_empty()) {
        if !is_size(&p) {
            parts.push(p);
        } else if !replaced {
            parts.push(&sized);
            replaced = true;
        }
    }
    if !replaced {
        parts.push(&sized);
    }
    format!("{base}?{}", parts.join("&"))
}

/// Turn an error response into `AltinnError::Status` with the server's own words and its
/// meaning.
async fn error_from_response(method: &Method, url: &str, r: Response) -> AltinnError {
    let status = r.status().as_u16();
    let retry_after = retry_after(r.headers());
    let body = r.bytes().await.unwrap_or_default();
    let (message, problem) = describe_body(status, &body);
    AltinnError::from_answer(Answer {
        status,
        method: method.as_str(),
        path: &redact(url),
        message,
        problem,
        retry_after,
    })
}

/// The human text and the ProblemDetails of an error body. Altinn answers with a
/// ProblemDetails, a JSON array of validation issues (apps with `JsonObjectInDataResponse`),
/// plain text, or nothing (altinn-api.md §1.0, "Error body shapes"). An issue array is kept
/// as a ProblemDetails with `uploadValidationIssues`, so its codes are read like the others.
pub(crate) fn describe_body(status: u16, body: &[u8]) -> (String, Option<ProblemDetails>) {
    let problem: Option<ProblemDetails> = match serde_json::from_slice(body) {
        Ok(p) => Some(p),
        Err(_) => serde_json::from_slice::<Vec<ValidationIssue>>(body)
            .ok()
            .map(|issues| ProblemDetails {
                upload_validation_issues: Some(issues),
                ..Default::default()
            }),
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_string();
    let message = match &problem {
        Some(p) => {
            let mut parts: Vec<String> = Vec::new();
            parts.extend(p.title.clone());
            parts.extend(p.detail.clone());
            for i in p
                .upload_validation_issues
                .iter()
                .chain(p.validation_issues.iter())
                .flatten()
            {
                parts.push(format!(
                    "{}: {}",
                    i.code.as_deref().unwrap_or("issue"),
                    i.description.as_deref().unwrap_or("")
                ));
            }
            parts.join("; ")
        }
        None if text.trim().is_empty() => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string(),
        None => text.trim().chars().take(500).collect(),
    };
    (message, problem)
}

/// What an error answer means: the status first, then ProblemDetails issue codes, and only
/// where Altinn says it in words alone, the words (matched here once, never later).
pub fn meaning_of(
    status: u16,
    problem: Option<&ProblemDetails>,
    message: &str,
    retry_after: Option<Duration>,
) -> Meaning {
    let text = message.to_ascii_lowercase();
    match status {
        400 if is_storage_timeout(&text) => Meaning::Transient { retry_after },
        400 => Meaning::Refused(refusal_of_400(problem, &text)),
        401 => Meaning::Unauthorized,
        403 => Meaning::Forbidden,
        404 | 410 => Meaning::NotFound,
        408 | 429 => Meaning::Transient { retry_after },
        409 => Meaning::Refused(refusal_of_409(&text)),
        413 => Meaning::Refused(Refusal::TooLarge),
        415 => Meaning::Refused(Refusal::ContentType),
        422 => Meaning::Refused(Refusal::Invalid),
        s if s >= 500 => Meaning::Transient { retry_after },
        _ => Meaning::Unexpected,
    }
}

/// Storage answers a database timeout on `GET instances` with a 400 "Exception while reading
/// from stream" (altinn-storage#634, altinn-api.md §3.1.1): a slow query, not a bad request.
fn is_storage_timeout(text: &str) -> bool {
    text.contains("exception while reading from stream")
}

/// 400: an upload validation issue code if there is one, else what the title says
/// (altinn-api.md §1.3.1 steps 9, 11b, 15; §1.3.2; §1.3.3).
fn refusal_of_400(problem: Option<&ProblemDetails>, text: &str) -> Refusal {
    let code = problem.and_then(|p| {
        p.upload_validation_issues
            .iter()
            .chain(p.validation_issues.iter())
            .flatten()
            .find_map(|i| i.code.clone())
    });
    if let Some(code) = code {
        return Refusal::Rule(code);
    }
    if text.contains("too large") || text.contains("exceeds limit") {
        Refusal::TooLarge
    } else if text.contains("main data element") {
        Refusal::MainForm
    } else if text.contains("not active") {
        Refusal::NotActive
    } else if text.contains("disallowed")
        || text.contains("read-only")
        || text.contains("read only")
    {
        Refusal::Disallowed
    } else if text.contains("invalid content type") && text.contains("permitted content types") {
        // The binary PUT's plain-text form of the `ContentTypeNotAllowed` issue.
        Refusal::Rule("ContentTypeNotAllowed".into())
    } else {
        Refusal::Invalid
    }
}

/// 409: which conflict (altinn-api.md §1.3.1 steps 6, 8, 10; §1.3.3 locks; §1.5 process).
fn refusal_of_409(text: &str) -> Refusal {
    if text.contains("max count") {
        Refusal::MaxCount
    } else if text.contains("locked") {
        Refusal::Locked
    } else if text.contains("not active") {
        Refusal::NotActive
    } else if text.contains("process is ended")
        || text.contains("no current task")
        || text.contains("process is not started")
    {
        Refusal::NoCurrentTask
    } else {
        Refusal::Conflict
    }
}

async fn json_body<T: DeserializeOwned>(url: &str, r: Response) -> Result<T> {
    let body = r.bytes().await.map_err(|e| AltinnError::Network {
        method: "GET".into(),
        path: redact(url),
        message: describe_reqwest(&e),
    })?;
    serde_json::from_slice(&body).map_err(|e| AltinnError::Decode {
        path: redact(url),
        message: e.to_string(),
    })
}

/// A response header's value, when it is text.
fn header_text(r: &Response, name: reqwest::header::HeaderName) -> Option<&str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A GET's body that counts its bytes against the Content-Length, so a cut connection is an
/// error, never short data taken as whole.
struct CountedBody<S> {
    inner: S,
    /// The URL, redacted, for the errors.
    path: String,
    /// The Content-Length, when the server sent one.
    expected: Option<u64>,
    got: u64,
    /// The body ended or failed: nothing more comes.
    done: bool,
}

impl<S> CountedBody<S> {
    /// A transport error: a short body when its length is known, else a network error.
    fn failed(&self, e: &reqwest::Error) -> AltinnError {
        match self.expected {
            Some(expected) => AltinnError::Truncated {
                path: self.path.clone(),
                expected,
                got: self.got,
            },
            None => AltinnError::Network {
                method: "GET".into(),
                path: self.path.clone(),
                message: describe_reqwest(e),
            },
        }
    }

    /// The end of the body: an error when it brought other than the announced length.
    fn ended(&self) -> Option<Result<Bytes>> {
        match self.expected {
            Some(expected) if self.got != expected => Some(Err(AltinnError::Truncated {
                path: self.path.clone(),
                expected,
                got: self.got,
            })),
            _ => None,
        }
    }
}

impl<S> futures_util::Stream for CountedBody<S>
where
    S: futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    type Item = Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return std::task::Poll::Ready(None);
        }
        let item = match std::task::ready!(this.inner.poll_next_unpin(cx)) {
            Some(Ok(b)) => {
                this.got += b.len() as u64;
                Some(Ok(b))
            }
            Some(Err(e)) => {
                this.done = true;
                Some(Err(this.failed(&e)))
            }
            None => {
                this.done = true;
                this.ended()
            }
        };
        std::task::Poll::Ready(item)
    }
}

#[async_trait]
impl AltinnClient for HttpClient {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        self.get_json(&format!("{}/api/v1/applicationmetadata", self.cfg.app_url))
            .await
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        self.get_json(&format!(
            "{}/api/v1/parties?allowedToInstantiateFilter=false",
            self.cfg.app_url
        ))
        .await
    }

    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        let url = match next {
            // `next` is absolute and already encoded: follow it verbatim.
            Some(n) => n.to_string(),
            None => {
                let mut u = reqwest::Url::parse(&format!("{}/instances", self.cfg.storage()))
                    .map_err(|e| AltinnError::Local(format!("bad platform URL: {e}")))?;
                {
                    let mut q = u.query_pairs_mut();
                    if !params.iter().any(|(k, _)| k == "appId") {
                        q.append_pair("appId", &self.cfg.app_id);
                    }
                    for (k, v) in params {
                        q.append_pair(k, v);
                    }
                }
                u.to_string()
            }
        };
        self.get_json(&url).await
    }

    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        self.get_json(&self.storage_inst_url(inst)).await
    }

    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        let l: DataElementList = self
            .get_json(&format!("{}/dataelements", self.storage_inst_url(inst)))
            .await?;
        Ok(l.data_elements)
    }

    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        let url = format!("{}/data/{}", self.storage_inst_url(inst), data_id);
        let r = self.request(Method::GET, &url, &|rb| Ok(rb)).await?;
        let content_length = r.content_length();
        let content_type = header_text(&r, CONTENT_TYPE).map(str::to_string);
        let accept_ranges = header_text(&r, reqwest::header::ACCEPT_RANGES)
            .is_some_and(|v| v.eq_ignore_ascii_case("bytes"));
        let body = CountedBody {
            path: redact(&url),
            expected: content_length,
            got: 0,
            done: false,
            inner: r.bytes_stream(),
        };
        Ok(Download {
            content_length,
            content_type,
            accept_ranges,
            stream: Box::pin(body),
        })
    }

    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        let url = format!("{}/data/{}", self.inst_url(inst), data_id);
        let accept = accept.to_string();
        let r = self
            .request(Method::GET, &url, &move |rb| {
                Ok(rb.header(ACCEPT, accept.as_str()))
            })
            .await?;
        r.bytes().await.map_err(|e| AltinnError::Network {
            method: "GET".into(),
            path: redact(&url),
            message: describe_reqwest(&e),
        })
    }

    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let NewElement {
            data_type,
            filename,
            content_type,
        } = new;
        let dt = percent_encoding::utf8_percent_encode(
            data_type.as_str(),
            percent_encoding::NON_ALPHANUMERIC,
        );
        let label = UploadLabel {
            filename,
            content_type,
        };
        let url = format!("{}/data/{}", self.inst_url(inst), dt);
        match self.upload(Method::POST, &url, label, &body).await {
            Ok(r) => {
                let resp: DataPostResponse = json_body(&url, r).await?;
                resp.instance
                    .data
                    .into_iter()
                    .find(|d| d.id == resp.new_data_element_id)
                    .ok_or_else(|| AltinnError::Decode {
                        path: redact(&url),
                        message: "the new data element is missing from the answer".into(),
                    })
            }
            // Older app backends (< 8.5) have no typed POST route: routing answers 404/405
            // with no ProblemDetails (a missing instance has one). Nothing was created; use the
            // obsolete `data?dataType=` form.
            Err(AltinnError::Status {
                status, problem, ..
            }) if status == 405 || (status == 404 && problem.is_none()) => {
                let url = format!("{}/data?dataType={}", self.inst_url(inst), dt);
                let r = self.upload(Method::POST, &url, label, &body).await?;
                json_body(&url, r).await
            }
            Err(e) => Err(e),
        }
    }

    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let Replacement {
            filename,
            content_type,
        } = replacement;
        let label = UploadLabel {
            filename,
            content_type,
        };
        let url = format!("{}/data/{}", self.inst_url(inst), data_id);
        let r = self.upload(Method::PUT, &url, label, &body).await?;
        let v: serde_json::Value = json_body(&url, r).await?;
        // 201 DataElement, or 200 CalculationResult (a DataElement plus changedFields).
        serde_json::from_value(v).map_err(|e| AltinnError::Decode {
            path: redact(&url),
            message: e.to_string(),
        })
    }

    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        let url = format!("{}/data/{}", self.inst_url(inst), data_id);
        self.request(Method::DELETE, &url, &|rb| Ok(rb)).await?;
        Ok(())
    }

    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        let url = format!(
            "{}/instances?instanceOwnerPartyId={}",
            self.cfg.app_url, party
        );
        let r = self
            .request(Method::POST, &url, &|rb| Ok(rb.header(CONTENT_LENGTH, 0)))
            .await?;
        json_body(&url, r).await
    }

    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        let url = format!("{}?hard={}", self.inst_url(inst), hard);
        let r = self.request(Method::DELETE, &url, &|rb| Ok(rb)).await?;
        json_body(&url, r).await
    }

    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        let url = format!("{}/complete", self.inst_url(inst));
        let r = self
            .request(Method::POST, &url, &|rb| Ok(rb.header(CONTENT_LENGTH, 0)))
            .await?;
        json_body(&url, r).await
    }

    async fn process_next(&self, inst: &InstanceId, action: Option<&str>) -> Result<ProcessState> {
        let url = format!("{}/process/next", self.inst_url(inst));
        let body = action.map(|a| serde_json::json!({ "action": a }).to_string());
        let r = self
            .request(Method::PUT, &url, &move |rb| {
                Ok(match &body {
                    Some(b) => rb.header(CONTENT_TYPE, "application/json").body(b.clone()),
                    None => rb.header(CONTENT_LENGTH, 0),
                })
            })
            .await?;
        json_body(&url, r).await
    }

    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        if !self.stateless_seed.load(Ordering::Relaxed) {
            match self
                .stateless_send(Method::GET, data_type, party, accept, None)
                .await
            {
                Err(e) if is_missing_route(&e) => {
                    tracing::info!(
                        "stateless GET v1/data answered {e}; using the older POST (create) / PUT (calculate) forms"
                    );
                    self.stateless_seed.store(true, Ordering::Relaxed);
                }
                r => return r,
            }
        }
        // The seed's form: POST with no body creates.
        self.stateless_send(Method::POST, data_type, party, accept, None)
            .await
    }

    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        let b = Some((content_type, body));
        if !self.stateless_seed.load(Ordering::Relaxed) {
            match self
                .stateless_send(Method::POST, data_type, party, accept, b.clone())
                .await
            {
                Err(e) if is_missing_route(&e) => {
                    tracing::info!(
                        "stateless POST v1/data answered {e}; using the older PUT (calculate) form"
                    );
                    self.stateless_seed.store(true, Ordering::Relaxed);
                }
                r => return r,
            }
        }
        self.stateless_send(Method::PUT, data_type, party, accept, b)
            .await
    }
}

/// A route the server does not have: 405, or a 404 without ProblemDetails (routing, not a
/// missing resource).
fn is_missing_route(e: &AltinnError) -> bool {
    matches!(e, AltinnError::Status { status, problem, .. }
        if *status == 405 || (*status == 404 && problem.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_userinfo() {
        assert_eq!(
            redact("https://user:secret@platform.altinn.no/storage/api/v1/instances?appId=a/b"),
            "https://platform.altinn.no/storage/api/v1/instances?appId=a/b"
        );
    }

    /// The meaning of an answer given as its status and body, as `error_from_response` sees it.
    fn meaning(status: u16, body: &str) -> Meaning {
        let (message, problem) = describe_body(status, body.as_bytes());
        meaning_of(status, problem.as_ref(), &message, None)
    }

    fn refused(r: Refusal) -> Meaning {
        Meaning::Refused(r)
    }

    #[test]
    fn problem_details_with_an_issue_code_is_that_rule() {
        let body = r#"{"title":"File validation failed","status":400,"detail":"Common checks failed","uploadValidationIssues":[{"severity":1,"code":"MissingFileName","description":"Invalid data provided. Error: The Content-Disposition header must contain a valid filename","source":"DataRestrictionValidation"}]}"#;
        assert_eq!(
            meaning(400, body),
            refused(Refusal::Rule("MissingFileName".into()))
        );
        let too_large = r#"{"title":"File validation failed","uploadValidationIssues":[{"code":"DataElementTooLarge","description":"Binary attachment exceeds limit of 10"}]}"#;
        assert_eq!(
            meaning(400, too_large),
            refused(Refusal::Rule("DataElementTooLarge".into()))
        );
    }

    #[test]
    fn an_issue_array_body_is_read_for_its_codes() {
        // Apps with the JsonObjectInDataResponse flag answer a bare array of issues.
        let body = r#"[{"severity":1,"code":"ContentTypeNotAllowed","description":"Invalid content type"}]"#;
        assert_eq!(
            meaning(400, body),
            refused(Refusal::Rule("ContentTypeNotAllowed".into()))
        );
        let (message, _) = describe_body(400, body.as_bytes());
        assert!(message.contains("ContentTypeNotAllowed"), "{message}");
    }

    #[test]
    fn bad_requests_by_their_words() {
        let cases = [
            (r#"{"title":"Cannot Delete main data element"}"#, Refusal::MainForm),
            ("The request body is too large", Refusal::TooLarge),
            ("Binary attachment exceeds limit of 1024", Refusal::TooLarge),
            (r#"{"title":"User Create Disallowed"}"#, Refusal::Disallowed),
            (r#"{"title":"User Delete Disallowed"}"#, Refusal::Disallowed),
            ("the data type is read-only", Refusal::Disallowed),
            ("Instance Not Active", Refusal::NotActive),
            (
                "Invalid content type: text/plain. Permitted content types include: application/pdf",
                Refusal::Rule("ContentTypeNotAllowed".into()),
            ),
            (r#"{"title":"Data Type Not Found"}"#, Refusal::Invalid),
            ("Invalid data provided. Error: The file is zero bytes.", Refusal::Invalid),
            ("", Refusal::Invalid),
        ];
        for (body, want) in cases {
            assert_eq!(meaning(400, body), refused(want), "{body}");
        }
    }

    #[test]
    fn storages_timeout_shaped_400_is_transient() {
        let body = r#"{"title":"Bad Request","detail":"Exception while reading from stream"}"#;
        assert_eq!(meaning(400, body), Meaning::Transient { retry_after: None });
        assert_eq!(
            meaning(400, "Npgsql: Exception while reading from stream"),
            Meaning::Transient { retry_after: None }
        );
    }

    #[test]
    fn conflicts_by_their_words() {
        let cases = [
            (r#"{"title":"Max Count Exceeded"}"#, Refusal::MaxCount),
            (
                "Data element 1 is locked and cannot be updated",
                Refusal::Locked,
            ),
            (r#"{"title":"Instance Not Active"}"#, Refusal::NotActive),
            (
                r#"{"title":"Conflict","detail":"Process is ended."}"#,
                Refusal::NoCurrentTask,
            ),
            ("No current task", Refusal::NoCurrentTask),
            ("Process is not started. Use start!", Refusal::NoCurrentTask),
            ("Lock is already held", Refusal::Conflict),
            (r#"{"title":"Conflict"}"#, Refusal::Conflict),
            ("", Refusal::Conflict),
        ];
        for (body, want) in cases {
            assert_eq!(meaning(409, body), refused(want), "{body}");
        }
    }

    #[test]
    fn statuses_with_one_meaning() {
        assert_eq!(meaning(401, ""), Meaning::Unauthorized);
        assert_eq!(meaning(403, r#"{"title":"Forbidden"}"#), Meaning::Forbidden);
        assert_eq!(
            meaning(404, r#"{"title":"Instance Not Found"}"#),
            Meaning::NotFound
        );
        assert_eq!(meaning(410, ""), Meaning::NotFound);
        assert_eq!(meaning(413, ""), refused(Refusal::TooLarge));
        assert_eq!(
            meaning(415, "Unsupported content type"),
            refused(Refusal::ContentType)
        );
        assert_eq!(
            meaning(422, "Could not process attached file"),
            refused(Refusal::Invalid)
        );
        assert_eq!(
            meaning(500, "boom"),
            Meaning::Transient { retry_after: None }
        );
        assert_eq!(meaning(503, ""), Meaning::Transient { retry_after: None });
        assert_eq!(meaning(405, ""), Meaning::Unexpected);
        assert_eq!(meaning(302, ""), Meaning::Unexpected);
        let ra = Some(Duration::from_secs(2));
        assert_eq!(
            meaning_of(429, None, "", ra),
            Meaning::Transient { retry_after: ra }
        );
    }

    #[test]
    fn the_meaning_is_kept_with_the_error_and_the_text_is_not_read_again() {
        let e = AltinnError::from_answer(Answer {
            status: 409,
            method: "POST",
            path: "/x",
            message: "Max Count Exceeded".into(),
            problem: None,
            retry_after: None,
        });
        assert_eq!(e.meaning(), refused(Refusal::MaxCount));
        assert!(!e.is_transient());
        // Rewording the message afterwards does not change what the error means.
        let AltinnError::Status {
            status,
            method,
            path,
            problem,
            retry_after,
            meaning,
            ..
        } = e
        else {
            unreachable!()
        };
        let reworded = AltinnError::Status {
            status,
            method,
            path,
            message: "something else".into(),
            problem,
            retry_after,
            meaning,
        };
        assert_eq!(reworded.meaning(), refused(Refusal::MaxCount));
    }

    #[test]
    fn empty_bodies_get_the_reason_phrase() {
        assert_eq!(describe_body(404, b"").0, "Not Found");
        assert_eq!(describe_body(409, b"  ").0, "Conflict");
    }

    #[test]
    fn page_size_in_a_next_link_is_replaced_and_the_token_kept_verbatim() {
        let next = "https://p/storage/api/v1/instances?appId=ttd%2Fa&size=100&continuationToken=638%253B12";
        assert_eq!(
            with_page_size(next, 50),
            "https://p/storage/api/v1/instances?appId=ttd%2Fa&size=50&continuationToken=638%253B12"
        );
        assert_eq!(
            with_page_size("memory://instances?continuationToken=4", 10),
            "memory://instances?continuationToken=4&size=10"
        );
        assert_eq!(with_page_size("https://p/x", 10), "https://p/x?size=10");
        assert_eq!(
            with_page_size("https://p/x?Size=1&a=b&size=2", 20),
            "https://p/x?size=20&a=b"
        );
    }

    /// Log output captured from the current thread's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_request_has_a_span_without_secrets_that_its_log_lines_inherit() {
        // The first answer is a 401 (the client refreshes and sends once more, a log line
        // inside the span), then 503s, which a bare client does not retry.
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => (axum::http::StatusCode::UNAUTHORIZED, "who are you"),
                    _ => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "down for a moment",
                    ),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let cfg = HttpConfig::new(&format!("{base}/ttd/app"), &base, "ttd/app");
        let token = crate::altinn::auth::StaticToken("tok-SECRET-1".into());
        let c = HttpClient::new(cfg, Arc::new(token)).unwrap();
        let next = format!("{base}/storage/api/v1/instances?continuationToken=SECRET-2&size=5");
        let e = c.query_page(&vec![], Some(&next)).await.unwrap_err();
        assert_eq!(e.status(), Some(503));
        assert!(e.is_transient());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "sent once, once more after the 401, and the 503 not retried"
        );

        let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("SECRET"), "a secret in the logs:\n{out}");
        let refresh = out.lines().find(|l| l.contains("401")).expect(&out);
        // The refresh line inherits the request's span: method and path.
        assert!(
            refresh.contains("http{method=GET path=/storage/api/v1/instances?"),
            "{refresh}"
        );
        assert!(refresh.contains("continuationToken=REDACTED"), "{refresh}");
        assert!(!out.contains("retrying"), "a bare client retried:\n{out}");
        let done = out.lines().find(|l| l.contains("failed")).expect(&out);
        assert!(done.contains("status=503"), "{done}");
        assert!(done.contains("ms="), "{done}");
    }

    #[test]
    fn span_paths_drop_the_host_and_the_secrets() {
        assert_eq!(
            span_path("https://u:p@platform.altinn.no/storage/api/v1/instances?appId=a/b&token=x"),
            "/storage/api/v1/instances?appId=a/b&token=REDACTED"
        );
        assert_eq!(span_path("http://h"), "/");
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(0)));
    }
}
