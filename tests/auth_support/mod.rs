//! Shared by the `auth_*` tests: a tiny axum server playing the platform's refresh and exchange
//! endpoints and a Maskinporten token endpoint, test JWT minting, and log capture.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT (HS256, the signature is never checked by altinnfs) with `iat`/`exp` relative to now.
pub fn mint(iat_offset: i64, exp_offset: i64, sub: &str) -> String {
    let n = now();
    let claims = serde_json::json!({
        "iat": n + iat_offset,
        "exp": n + exp_offset,
        "sub": sub,
        "urn:altinn:org": "ttd",
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"test"),
    )
    .unwrap()
}

pub fn data(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[derive(Default)]
pub struct Mock {
    pub base: Mutex<String>,
    pub refreshes: AtomicUsize,
    pub grants: AtomicUsize,
    pub exchanges: AtomicUsize,
    /// The refresh endpoint answers 401.
    pub refresh_fails: AtomicBool,
    /// (iat offset, exp offset) of the tokens the refresh and exchange endpoints issue.
    pub issue_iat: AtomicI64,
    pub issue_exp: AtomicI64,
    /// Bearer tokens the refresh endpoint saw.
    pub refresh_bearers: Mutex<Vec<String>>,
    /// `test` query values the exchange endpoint saw ("" when absent).
    pub exchange_test: Mutex<Vec<String>>,
    /// Problems the token endpoint found with grants.
    pub grant_errors: Mutex<Vec<String>>,
    /// What the token endpoint expects.
    pub expect_client_id: Mutex<String>,
    pub expect_scope: Mutex<String>,
    pub expect_kid: Mutex<Option<String>>,
    pub issued: Mutex<Vec<String>>,
}

impl Mock {
    pub fn base(&self) -> String {
        self.base.lock().unwrap().clone()
    }
    fn issue(&self, sub: &str) -> String {
        let t = mint(
            self.issue_iat.load(Ordering::SeqCst),
            self.issue_exp.load(Ordering::SeqCst),
            sub,
        );
        self.issued.lock().unwrap().push(t.clone());
        t
    }
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

async fn refresh(State(m): State<Arc<Mock>>, h: HeaderMap) -> Response {
    m.refreshes.fetch_add(1, Ordering::SeqCst);
    let Some(b) = bearer(&h) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    m.refresh_bearers.lock().unwrap().push(b.clone());
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    if m.refresh_fails.load(Ordering::SeqCst) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // The real endpoint refuses expired tokens.
    let exp = altinnfs::altinn::auth::parse_jwt(&b).map(|t| t.exp);
    if exp.map(|e| e <= now()).unwrap_or(true) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Quoted, as a JSON-preferring formatter would answer.
    format!("\"{}\"", m.issue("refreshed")).into_response()
}

async fn token_endpoint(State(m): State<Arc<Mock>>, body: Bytes) -> Response {
    m.grants.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url_form(&body);
    let fail = |m: &Mock, e: String| {
        m.grant_errors.lock().unwrap().push(e.clone());
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": e})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return fail(&m, format!("bad grant_type {:?}", form.get("grant_type")));
    }
    let Some(assertion) = form.get("assertion") else {
        return fail(&m, "no assertion".into());
    };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(e) => return fail(&m, format!("header: {e}")),
    };
    if header.alg != Algorithm::RS256 {
        return fail(&m, format!("alg {:?}", header.alg));
    }
    if header.kid != *m.expect_kid.lock().unwrap() {
        return fail(&m, format!("kid {:?}", header.kid));
    }
    let key = DecodingKey::from_rsa_pem(&std::fs::read(data("mp_test_pub.pem")).unwrap()).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    let aud = format!("{}/", m.base());
    v.set_audience(&[aud.as_str()]);
    v.set_issuer(&[m.expect_client_id.lock().unwrap().as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return fail(&m, format!("signature/claims: {e}")),
    };
    if claims["scope"].as_str() != Some(m.expect_scope.lock().unwrap().as_str()) {
        return fail(&m, format!("scope {}", claims["scope"]));
    }
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    if exp - iat != 120 || (iat - now()).abs() > 5 {
        return fail(&m, format!("iat {iat} exp {exp}"));
    }
    if claims["jti"].as_str().map(|j| j.len() < 16).unwrap_or(true) {
        return fail(&m, "jti".into());
    }
    let n = m.grants.load(Ordering::SeqCst);
    axum::Json(serde_json::json!({
        "access_token": format!("mp-access-{n}"),
        "token_type": "Bearer",
        "expires_in": 119,
        "scope": claims["scope"],
    }))
    .into_response()
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    let s = String::from_utf8_lossy(body);
    s.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let d = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect()
}

async fn exchange(
    State(m): State<Arc<Mock>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    m.exchanges.fetch_add(1, Ordering::SeqCst);
    m.exchange_test
        .lock()
        .unwrap()
        .push(q.get("test").cloned().unwrap_or_default());
    match bearer(&h) {
        Some(b) if b.starts_with("mp-access-") => {
            format!("\"{}\"", m.issue("exchanged")).into_response()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Start the mock on 127.0.0.1:0; issued tokens live an hour unless changed.
pub async fn start() -> Arc<Mock> {
    let m = Arc::new(Mock::default());
    m.issue_exp.store(3600, Ordering::SeqCst);
    *m.expect_client_id.lock().unwrap() = "test-client".into();
    *m.expect_scope.lock().unwrap() = "altinn:serviceowner/instances.read".into();
    let app = Router::new()
        .route("/authentication/api/v1/refresh", get(refresh))
        .route(
            "/authentication/api/v1/exchange/maskinporten",
            get(exchange),
        )
        .route("/token", post(token_endpoint))
        .with_state(m.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *m.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    m
}

/// Log capture: a subscriber for the current thread writing into a shared buffer.
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl LogBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Capture logs (all levels) of this thread until the guard drops.
pub fn capture_logs() -> (LogBuf, tracing::subscriber::DefaultGuard) {
    let buf = LogBuf::default();
    let sub = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(buf.clone())
        .finish();
    let g = tracing::subscriber::set_default(sub);
    (buf, g)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
