//! Token sources and refresh. The HTTP client asks a `TokenProvider` for a bearer token before
//! every request and tells it about a 401, so refresh logic lives in one place.
//!
//! Sources, first that is given wins (SPEC §1): `--token-file`, `ALTINN_TOKEN`,
//! `--token-command`, Maskinporten (`--maskinporten-client-id` + `--maskinporten-key` +
//! `--scope`). Whatever the source, the token's `exp` is read from the JWT payload (no signature
//! check) and the token is renewed a margin before it expires: from its source where that can
//! give a new one (a changed file, the command run again, a new Maskinporten grant), else through
//! the platform's `GET /authentication/api/v1/refresh`. Renewal is single-flight: every caller
//! waits on one `tokio::sync::Mutex`, so 50 concurrent requests cause one refresh.
//!
//! A token never appears in a log line, an error message or a `Debug` output.

use crate::altinn::client::AltinnError;
use crate::altinn::maskinporten::{self, Maskinporten};
use async_trait::async_trait;
use base64::Engine;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

#[async_trait]
pub trait TokenProvider: Send + Sync + 'static {
    /// A token that is valid now (refreshing first when it is near expiry; one refresh at a
    /// time however many requests wait).
    async fn token(&self) -> Result<String, AltinnError>;
    /// A request with `failed` got 401: the next `token()` must not return it again if a
    /// fresh one can be had.
    async fn on_unauthorized(&self, failed: &str);
}

/// A fixed token (tests, `ALTINN_TOKEN` without refresh).
pub struct StaticToken(pub String);

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<String, AltinnError> {
        Ok(self.0.clone())
    }
    async fn on_unauthorized(&self, _failed: &str) {}
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticToken").field(&"<redacted>").finish()
    }
}

/// The environment variable that holds a token (second in SPEC §1's order).
pub const ENV_TOKEN: &str = "ALTINN_TOKEN";

/// Renew at most this long before `exp` (or a third of the lifetime, whichever is smaller).
pub const MAX_REFRESH_MARGIN_SECS: i64 = 300;
/// After a failed renewal, wait this long before trying again (the old token is used meanwhile
/// while it is still valid).
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Timeout of each request to the refresh, token and exchange endpoints (every caller waits on
/// a renewal, so it must not hang).
pub const AUTH_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `--token-command` may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What the JWT payload says about lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwtTimes {
    /// `exp`, seconds since the epoch.
    pub exp: i64,
    /// `iat`, seconds since the epoch, when present.
    pub iat: Option<i64>,
}

/// Read `exp`/`iat` from a JWT without checking its signature. The error text describes what is
/// wrong and never contains the token.
pub fn parse_jwt(token: &str) -> Result<JwtTimes, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
    };
    if parts.len() != 3
        || !b64(parts[0])
        || !b64(parts[1])
        || !(parts[2].is_empty() || b64(parts[2]))
    {
        return Err(format!(
            "not a JWT (expected three base64url parts separated by '.', got {} characters in {} part(s))",
            token.len(),
            parts.len()
        ));
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |s: &str| engine.decode(s.trim_end_matches('='));
    let header = decode(parts[0]).map_err(|_| "not a JWT (header is not base64url)".to_string())?;
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&header)
        .map_err(|_| "not a JWT (header is not a JSON object)".to_string())?;
    let payload =
        decode(parts[1]).map_err(|_| "not a JWT (payload is not base64url)".to_string())?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload)
        .map_err(|_| "not a JWT (payload is not a JSON object)".to_string())?;
    let num = |k: &str| {
        claims.get(k).and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let exp = num("exp").ok_or_else(|| "the JWT has no numeric `exp` claim".to_string())?;
    Ok(JwtTimes {
        exp,
        iat: num("iat"),
    })
}

/// Trim whitespace, a `Bearer ` prefix and surrounding quotes (the refresh and exchange
/// endpoints may answer a JSON string).
pub fn clean_token(raw: &str) -> String {
    let mut t = raw.trim();
    loop {
        let before = t;
        if t.len() >= 2
            && ((t.starts_with('"') && t.ends_with('"'))
                || (t.starts_with('\'') && t.ends_with('\'')))
        {
            t = t[1..t.len() - 1].trim();
        }
        if t.len() > 7 && t[..7].eq_ignore_ascii_case("bearer ") {
            t = t[7..].trim();
        }
        if t == before {
            return t.to_string();
        }
    }
}

/// Replace anything that looks like a JWT or a long secret in free text (command stderr, a
/// server's error body) before it goes into an error message or a log line.
pub fn scrub(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let core = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let looks_secret = (core.matches('.').count() >= 2 && core.len() >= 20)
            || (core.len() >= 40
                && core
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+/=".contains(&b)));
        out.push(if looks_secret {
            "<redacted>".to_string()
        } else {
            word.to_string()
        });
    }
    let mut s = out.join(" ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// Where tokens come from.
enum Source {
    File(PathBuf),
    Env,
    Command(String),
    Maskinporten(Box<Maskinporten>),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(p) => format!("--token-file {}", p.display()),
            Source::Env => ENV_TOKEN.to_string(),
            Source::Command(_) => "--token-command".to_string(),
            Source::Maskinporten(_) => "Maskinporten".to_string(),
        }
    }
}

struct Held {
    token: String,
    times: JwtTimes,
    obtained: i64,
}

impl Held {
    fn new(token: String, times: JwtTimes) -> Self {
        Held {
            token,
            times,
            obtained: now_secs(),
        }
    }
    /// When to renew: `exp` minus min(5 min, a third of the lifetime).
    fn renew_at(&self) -> i64 {
        let start = self.times.iat.unwrap_or(self.obtained).min(self.obtained);
        let lifetime = (self.times.exp - start).max(0);
        self.times.exp - (lifetime / 3).min(MAX_REFRESH_MARGIN_SECS)
    }
    fn expired(&self, now: i64) -> bool {
        now >= self.times.exp
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

#[derive(Default)]
struct State {
    current: Option<Held>,
    /// `--token-file`: the stamp and cleaned contents last read.
    file_stamp: Option<FileStamp>,
    file_token: Option<String>,
    /// A token that got 401 and must be replaced before it is handed out again.
    rejected: Option<String>,
    /// The last failed renewal: when, and why.
    last_failure: Option<(Instant, String)>,
    refreshes: u64,
}

impl State {
    /// The current token if it is unexpired and the server did not refuse it.
    fn still_usable(&self, now: i64) -> Option<&Held> {
        self.current
            .as_ref()
            .filter(|h| !h.expired(now) && self.rejected.as_deref() != Some(h.token.as_str()))
    }
}

/// The token provider for a mount: one source, renewal before `exp`, single-flight.
pub struct AltinnTokenProvider {
    source: Source,
    platform_url: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl fmt::Debug for AltinnTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self
            .state
            .try_lock()
            .ok()
            .and_then(|s| s.current.as_ref().map(|h| fmt_time(h.times.exp)));
        f.debug_struct("AltinnTokenProvider")
            .field("source", &self.source.describe())
            .field("platform_url", &self.platform_url)
            .field("token", &"<redacted>")
            .field("exp", &exp)
            .finish()
    }
}

/// Where tokens come from, as the command line gives them (SPEC §1): the first source given
/// wins. Built by the CLI; nothing here knows its flags' types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenConfig {
    /// `--token-file`
    pub token_file: Option<PathBuf>,
    /// `--token-command`
    pub token_command: Option<String>,
    /// `--maskinporten-client-id`
    pub maskinporten_client_id: Option<String>,
    /// `--maskinporten-key` (a JWK or PEM file)
    pub maskinporten_key: Option<PathBuf>,
    /// `--maskinporten-kid`
    pub maskinporten_kid: Option<String>,
    /// `--maskinporten-url`
    pub maskinporten_url: Option<String>,
    /// `--scope`
    pub scope: Option<String>,
    /// From `--env`: Some(true) for tt02 (Maskinporten's test environment), Some(false) for
    /// another named one, None to judge by the platform URL.
    pub test_env: Option<bool>,
    /// `--env local` (app-localtest, which has no Maskinporten of its own).
    pub local_env: bool,
}

/// Pick the token source SPEC §1 names first among those given and get a first token from it
/// (so a missing, malformed or expired token fails the mount with a clear message).
pub async fn provider_from_options(
    opts: impl Into<TokenConfig>,
    platform_url: &str,
    http: reqwest::Client,
) -> Result<Arc<dyn TokenProvider>, AltinnError> {
    let env_token = std::env::var(ENV_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let p = provider_from_options_with_env(&opts.into(), platform_url, http, env_token).await?;
    Ok(p)
}

/// `provider_from_options` with the value of `ALTINN_TOKEN` passed in (tests, embedding).
pub async fn provider_from_options_with_env(
    opts: &TokenConfig,
    platform_url: &str,
    http: reqwest::Client,
    env_token: Option<String>,
) -> Result<Arc<AltinnTokenProvider>, AltinnError> {
    if let Some(path) = &opts.token_file {
        return AltinnTokenProvider::from_file(path, platform_url, http).await;
    }
    if let Some(t) = env_token {
        return AltinnTokenProvider::from_token(t, platform_url, http).await;
    }
    if let Some(cmd) = &opts.token_command {
        return AltinnTokenProvider::from_command(cmd.clone(), platform_url, http).await;
    }
    if opts.maskinporten_client_id.is_some() || opts.maskinporten_key.is_some() {
        let test = is_test_env(opts.test_env, platform_url);
        if opts.local_env && opts.maskinporten_url.is_none() {
            return Err(AltinnError::Auth(
                "Maskinporten has no endpoint for --env local; give --maskinporten-url".into(),
            ));
        }
        let client_id = opts.maskinporten_client_id.clone().ok_or_else(|| {
            AltinnError::Auth("--maskinporten-key needs --maskinporten-client-id".into())
        })?;
        let key_path = opts.maskinporten_key.as_ref().ok_or_else(|| {
            AltinnError::Auth(
                "--maskinporten-client-id needs --maskinporten-key (a JWK or PEM file)".into(),
            )
        })?;
        let scope = opts
            .scope
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                AltinnError::Auth(
                    "--maskinporten-client-id needs --scope (for example \
                 \"altinn:serviceowner/instances.read altinn:serviceowner/instances.write\")"
                        .into(),
                )
            })?;
        let key =
            maskinporten::SigningKey::from_file_with_kid(key_path, opts.maskinporten_kid.clone())?;
        let cfg = maskinporten::MaskinportenConfig::new(
            client_id,
            scope,
            key,
            opts.maskinporten_url.as_deref(),
            test,
        );
        let mp = Maskinporten::new(cfg, http.clone(), platform_url, test);
        return AltinnTokenProvider::from_maskinporten(mp, platform_url, http).await;
    }
    Err(AltinnError::Auth(format!(
        "no token: give --token-file PATH, set {ENV_TOKEN}, give --token-command CMD, or \
         --maskinporten-client-id with --maskinporten-key and --scope"
    )))
}

/// tt02 is Maskinporten's test environment and the exchange's `?test=true`: as `--env` says
/// (`test_env`), else by the platform's host name.
pub fn is_test_env(test_env: Option<bool>, platform_url: &str) -> bool {
    test_env.unwrap_or_else(|| platform_url.contains(".tt02."))
}

impl AltinnTokenProvider {
    fn new(source: Source, platform_url: &str, http: reqwest::Client) -> Self {
        AltinnTokenProvider {
            source,
            platform_url: platform_url.trim_end_matches('/').to_string(),
            http,
            state: Mutex::new(State::default()),
        }
    }

    async fn start(self) -> Result<Arc<Self>, AltinnError> {
        self.token_inner().await?;
        Ok(Arc::new(self))
    }

    /// Read the token from `path`, again whenever the file changes.
    pub async fn from_file(
        path: &Path,
        platform_url: &str,
        http: reqwest::Client,
    ) -> Result<Arc<Self>, AltinnError> {
        Self::new(Source::File(path.to_path_buf()), platform_url, http)
            .start()
            .await
    }

    /// A fixed token (`ALTINN_TOKEN`), refreshed through the platform before it expires.
    pub async fn from_token(
        token: String,
        platform_url: &str,
        http: reqwest::Client,
    ) -> Result<Arc<Self>, AltinnError> {
        let p = Self::new(Source::Env, platform_url, http);
        let token = clean_token(&token);
        let times = parse_jwt(&token).map_err(|m| p.err(&m))?;
        p.state.lock().await.current = Some(Held::new(token, times));
        p.start().await
    }

    /// Run `sh -c CMD` for a token, again near expiry or after a 401.
    pub async fn from_command(
        cmd: String,
        platform_url: &str,
        http: reqwest::Client,
    ) -> Result<Arc<Self>, AltinnError> {
        Self::new(Source::Command(cmd), platform_url, http)
            .start()
            .await
    }

    /// A Maskinporten grant exchanged for an Altinn token, a new one before each expires.
    pub async fn from_maskinporten(
        mp: Maskinporten,
        platform_url: &str,
        http: reqwest::Client,
    ) -> Result<Arc<Self>, AltinnError> {
        Self::new(Source::Maskinporten(Box::new(mp)), platform_url, http)
            .start()
            .await
    }

    /// How many times a token was obtained through the platform refresh endpoint.
    pub async fn refresh_count(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    fn err(&self, msg: &str) -> AltinnError {
        AltinnError::Auth(format!("the token from {}: {msg}", self.source.describe()))
    }

    fn needs_renewal(st: &State, now: i64) -> bool {
        match &st.current {
            None => true,
            Some(h) => st.rejected.as_deref() == Some(h.token.as_str()) || now >= h.renew_at(),
        }
    }

    /// The token to send now: the current one while it is good, else a renewed one, else the
    /// current one as long as it is still valid and was not refused.
    async fn token_inner(&self) -> Result<String, AltinnError> {
        let mut st = self.state.lock().await;
        if let Source::File(path) = &self.source {
            self.reread_token_file(&mut st, path)?;
        }
        let now = now_secs();
        if !Self::needs_renewal(&st, now) {
            return Ok(st
                .current
                .as_ref()
                .map(|h| h.token.clone())
                .unwrap_or_default());
        }
        match self.renew_token(&mut st).await {
            Ok(token) => Ok(token),
            Err(failure) => self.token_despite_failure(&st, &failure),
        }
    }

    /// `--token-file`: takes in a changed file. A file that cannot be read or holds no good
    /// token is an error only once the token read before can no longer serve.
    fn reread_token_file(&self, st: &mut State, path: &Path) -> Result<(), AltinnError> {
        let Err(m) = self.check_file(st, path, false) else {
            return Ok(());
        };
        if st.still_usable(now_secs()).is_none() {
            return Err(self.err(&m));
        }
        tracing::warn!(file = %path.display(), "{m}; using the token read before");
        Ok(())
    }

    /// A renewed token, or why there is none. A failure answers again for [`RETRY_AFTER`]
    /// without asking the source, so a broken source is not hammered by every request.
    async fn renew_token(&self, st: &mut State) -> Result<String, String> {
        if let Some((at, m)) = &st.last_failure {
            if at.elapsed() < RETRY_AFTER {
                return Err(m.clone());
            }
        }
        match self.renew(st).await {
            Ok(()) => {
                st.last_failure = None;
                st.rejected = None;
                let h = st.current.as_ref().ok_or_else(|| "no token".to_string())?;
                tracing::debug!(
                    source = %self.source.describe(),
                    exp = %fmt_time(h.times.exp),
                    "token renewed"
                );
                Ok(h.token.clone())
            }
            Err(m) => {
                tracing::warn!(source = %self.source.describe(), "token renewal failed: {m}");
                st.last_failure = Some((Instant::now(), m.clone()));
                Err(m)
            }
        }
    }

    /// Renewal failed: the old token still serves while it is valid and was not refused;
    /// otherwise the error says which of the two it was, and why renewal failed.
    fn token_despite_failure(&self, st: &State, failure: &str) -> Result<String, AltinnError> {
        let now = now_secs();
        if let Some(h) = st.still_usable(now) {
            return Ok(h.token.clone());
        }
        match &st.current {
            Some(h) if h.expired(now) => {
                Err(self.err(&format!("expired and could not be renewed: {failure}")))
            }
            Some(_) => Err(self.err(&format!(
                "the server refused it (401) and no new token could be had: {failure}"
            ))),
            None => Err(self.err(failure)),
        }
    }

    /// Get a fresh token into `st.current`: from the source where it can give one, else (or when
    /// the source's token is itself near expiry) from the platform refresh endpoint.
    async fn renew(&self, st: &mut State) -> Result<(), String> {
        match &self.source {
            Source::File(path) => {
                self.check_file(st, path, true)?;
            }
            Source::Env => {}
            Source::Command(cmd) => {
                let token = run_command(cmd).await?;
                let times = parse_jwt(&token).map_err(|m| format!("the command printed {m}"))?;
                if st.rejected.as_deref() == Some(token.as_str()) {
                    // Fetched once again after a 401; the same answer is all there is.
                    st.rejected = None;
                }
                st.current = Some(Held::new(token, times));
            }
            Source::Maskinporten(mp) => {
                let token = mp.altinn_token().await.map_err(maskinporten::message)?;
                let times =
                    parse_jwt(&token).map_err(|m| format!("the exchange endpoint answered {m}"))?;
                st.current = Some(Held::new(token, times));
                return Ok(());
            }
        }
        let now = now_secs();
        if Self::needs_renewal(st, now) {
            match &st.current {
                Some(h) if h.expired(now) => {
                    return Err(format!(
                        "it expired at {} and the refresh endpoint only takes a token that is \
                         still valid; provide a new token",
                        fmt_time(h.times.exp)
                    ));
                }
                Some(_) => self.platform_refresh(st).await?,
                None => return Err("no token".into()),
            }
        }
        Ok(())
    }

    /// `GET {platform}/authentication/api/v1/refresh` with the current token.
    async fn platform_refresh(&self, st: &mut State) -> Result<(), String> {
        let Some(cur) = &st.current else {
            return Err("no token to refresh".into());
        };
        let url = format!("{}/authentication/api/v1/refresh", self.platform_url);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&cur.token)
            .timeout(AUTH_HTTP_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("refresh at {url} failed: {}", scrub(&e.to_string())))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("refresh at {url} failed: {}", scrub(&e.to_string())))?;
        if !status.is_success() {
            return Err(format!(
                "refresh at {url} answered {}{}",
                status.as_u16(),
                if body.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", scrub(&body))
                }
            ));
        }
        let token = clean_token(&body);
        let times = parse_jwt(&token).map_err(|m| format!("refresh at {url} answered {m}"))?;
        st.current = Some(Held::new(token, times));
        st.refreshes += 1;
        Ok(())
    }

    /// `--token-file`: read it when it changed since last time (or always with `force`).
    fn check_file(&self, st: &mut State, path: &Path, force: bool) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e))?;
        let stamp = FileStamp {
            mtime: meta.modified().ok(),
            len: meta.len(),
            ino: meta.ino(),
        };
        if !force && st.file_stamp == Some(stamp) && st.current.is_some() {
            return Ok(());
        }
        let changed_stamp = st.file_stamp != Some(stamp);
        if changed_stamp && meta.mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.mode() & 0o777),
                "the token file is readable by group or others; chmod 600 it"
            );
        }
        let raw = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {}", path.display(), e))?;
        let token = clean_token(&raw);
        if token.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        if st.current.is_some() && st.file_token.as_deref() == Some(token.as_str()) {
            // Same contents: keep what we hold (it may be a refreshed descendant).
            st.file_stamp = Some(stamp);
            return Ok(());
        }
        let times = parse_jwt(&token).map_err(|m| format!("{} holds {m}", path.display()))?;
        st.file_stamp = Some(stamp);
        st.file_token = Some(token.clone());
        st.current = Some(Held::new(token, times));
        st.last_failure = None;
        Ok(())
    }
}

/// `sh -c CMD`; stdout (cleaned) is the token.
async fn run_command(cmd: &str) -> Result<String, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| format!("the command ran longer than {}s", COMMAND_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot run the command with sh -c: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = scrub(stderr.trim());
        return Err(format!(
            "the command failed ({}){}",
            out.status,
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        ));
    }
    let token = clean_token(&String::from_utf8_lossy(&out.stdout));
    if token.is_empty() {
        return Err("the command printed nothing".into());
    }
    Ok(token)
}

#[async_trait]
impl TokenProvider for AltinnTokenProvider {
    async fn token(&self) -> Result<String, AltinnError> {
        self.token_inner().await
    }

    async fn on_unauthorized(&self, failed: &str) {
        let mut st = self.state.lock().await;
        if st.current.as_ref().map(|h| h.token.as_str()) == Some(failed) {
            tracing::info!(source = %self.source.describe(), "token refused (401); getting a new one");
            st.rejected = Some(failed.to_string());
            st.last_failure = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.c2ln",
            e.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn parses_exp_and_iat() {
        let t = jwt(r#"{"exp":2000000000,"iat":1999990000}"#);
        assert_eq!(
            parse_jwt(&t).unwrap(),
            JwtTimes {
                exp: 2000000000,
                iat: Some(1999990000)
            }
        );
    }

    #[test]
    fn malformed_tokens_are_described_without_the_token() {
        for bad in ["secretsecret", "a.b", "a.b.c.d", "!!.??.x"] {
            let m = parse_jwt(bad).unwrap_err();
            assert!(m.contains("not a JWT"), "{m}");
            assert!(!m.contains(bad), "{m}");
        }
        let no_exp = jwt(r#"{"sub":"x"}"#);
        assert!(parse_jwt(&no_exp).unwrap_err().contains("exp"));
    }

    #[test]
    fn cleans_quotes_whitespace_and_bearer() {
        assert_eq!(clean_token("  \"a.b.c\"\n"), "a.b.c");
        assert_eq!(clean_token("Bearer a.b.c\n"), "a.b.c");
        assert_eq!(clean_token("'a.b.c'"), "a.b.c");
    }

    #[test]
    fn scrub_removes_jwts() {
        let t = jwt(r#"{"exp":1}"#);
        let s = scrub(&format!("bad token {t} here"));
        assert!(!s.contains(&t));
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn margin_is_min_of_five_minutes_and_a_third() {
        let h = Held {
            token: String::new(),
            times: JwtTimes {
                exp: 1000 + 3600,
                iat: Some(1000),
            },
            obtained: 1000,
        };
        assert_eq!(h.renew_at(), 1000 + 3600 - 300);
        let h = Held {
            token: String::new(),
            times: JwtTimes {
                exp: 1000 + 60,
                iat: Some(1000),
            },
            obtained: 1000,
        };
        assert_eq!(h.renew_at(), 1000 + 40);
    }
}
