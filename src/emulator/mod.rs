//! The local, disk-backed Altinn emulator (SPEC §6).
//!
//! One HTTP server serves the App API (`/{org}/{app}/...`), the Storage API
//! (`/storage/api/v1/...`), localtest's token endpoints (`/Home/GetTest*Token/...`,
//! `/authentication/api/v1/refresh`) and control routes (`/_emulator/...`: `stats`, `faults`,
//! `info`, and `act/...` to change data as someone else, see `routes::act`).
//!
//! - `service/`: the HTTP-free model (query, write checks, instantiation, process, the
//!   synthetic app, acting as someone else); `store`: the disk-backed store it works on.
//! - `routes/`: axum handlers that parse, call the service and render Altinn's JSON;
//!   `server`: shared state, dispatch, token routes and the two JSON dialects;
//!   `faults`: request counters and fault injection (random and targeted).
//! - `inprocess`: the same service as an `AltinnClient` with no HTTP (tests' model of Altinn).
//! - `sample`: the deterministic `--sample` app on disk; `auth`: localtest's users and tokens.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod auth;
mod faults;
mod http;
#[cfg(any(test, feature = "test-support"))]
pub mod inprocess;
mod routes;
pub mod sample;
mod server;
pub mod service;
pub mod store;
pub mod xml;

pub use sample::{SAMPLE_APP, SAMPLE_ORG};

pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub sample: bool,
    pub sample_instances: usize,
    /// Serve the sample app with this many instances derived on demand (0 = off); see
    /// `service::synthetic`. Replaces `sample`'s on-disk generation.
    pub synthetic_instances: u64,
    pub token_lifetime: Duration,
    pub faults: FaultConfig,
    pub hostile: bool,
    /// The stateless controller of older apps (the seed's documented forms): GET answers 405,
    /// POST creates, PUT calculates.
    pub seed_stateless: bool,
}

impl EmulatorConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        EmulatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir,
            sample: false,
            sample_instances: 260,
            synthetic_instances: 0,
            token_lifetime: Duration::from_secs(3600),
            faults: FaultConfig::default(),
            hostile: false,
            seed_stateless: false,
        }
    }
}

/// Fault injection; all off by default.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Fraction of requests answered 500/503/429 (429 and 503 carry Retry-After).
    pub error_rate: f64,
    pub retry_after_secs: u64,
    /// Fraction of requests whose connection is dropped without a response.
    pub drop_rate: f64,
    /// Fraction of blob downloads whose body is cut short (Content-Length kept).
    pub truncate_rate: f64,
    /// Added to every request.
    pub latency_ms: u64,
    pub stall_rate: f64,
    pub stall_ms: u64,
    /// Apply only to request paths containing this substring.
    pub route_filter: Option<String>,
    /// Tokens minted from now on expire after this many seconds.
    pub token_expiry_secs: Option<u64>,
    /// Fraction of Storage query pages answered with Storage's timeout-shaped 400
    /// ("Exception while reading from stream", altinn-api.md §3.1.1).
    pub query_timeout_rate: f64,
    /// ...only for pages that ask for at least this many instances (production fails above a
    /// handful while small pages pass); 0 = every page.
    pub query_timeout_min_size: usize,
    /// Added to every Storage query page (a slow database).
    pub query_delay_ms: u64,
    /// Answer every POST `.../complete` with this status (e.g. 403, 409, 500, 503) and a
    /// ProblemDetails, confirming nothing.
    pub complete_status: Option<u16>,
}

/// Request counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub total: u64,
    /// Storage GET `.../data/{d}`.
    pub blob_downloads: u64,
    /// Storage GET `instances`.
    pub queries: u64,
    /// Those of `queries` with a `lastChanged=gt:` filter (a change cursor's polls).
    #[serde(default)]
    pub cursor_queries: u64,
    pub app_posts: u64,
    pub app_puts: u64,
    pub app_deletes: u64,
    /// App GET `.../data/{d}`.
    pub app_data_gets: u64,
    /// "METHOD /path" → count.
    pub per_path: BTreeMap<String, u64>,
}

pub struct Emulator {
    pub addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Bind, load the data dir (creating sample data if `cfg.sample` and the dir is empty),
    /// and serve in a spawned task.
    pub async fn start(cfg: EmulatorConfig) -> std::io::Result<Emulator> {
        let shared = server::Shared::load(cfg).await?;
        let listener = tokio::net::TcpListener::bind(shared.cfg.listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(shared);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service())
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator {
            addr,
            shared,
            shutdown: tx,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (the platform URL).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/ttd/altinnfs-demo`.
    pub fn app_url(&self) -> String {
        format!("{}/{}", self.base_url(), self.app_id())
    }

    /// The served app's id: the sample app, else the first app in the data dir.
    pub fn app_id(&self) -> String {
        self.shared.default_app_id()
    }

    pub fn user_token(&self, user_id: u32) -> String {
        self.shared.user_token(user_id)
    }

    pub fn party_token(&self, party_id: &str) -> String {
        self.shared
            .party_token(party_id.parse().unwrap_or_default())
    }

    /// Service-owner token with scopes `altinn:serviceowner/instances.read` + `.write`.
    pub fn org_token(&self, org: &str) -> String {
        self.shared.org_token(
            org,
            None,
            &format!("{} {}", auth::SERVICEOWNER_READ, auth::SERVICEOWNER_WRITE),
        )
    }

    pub fn set_faults(&self, f: FaultConfig) {
        *self.shared.faults.write().unwrap() = f;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().unwrap() = Stats::default();
    }

    /// Change the served app's metadata (tests: `minCount`, `preventInstanceDeletionForDays`...).
    /// Takes effect for the next request; a mount that already read the metadata keeps its copy.
    pub fn update_app(
        &self,
        f: impl FnOnce(&mut crate::altinn::model::ApplicationMetadata),
    ) -> std::io::Result<()> {
        let id = self.app_id();
        let mut meta = self.shared.store.app(&id).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("no app {id}"))
        })?;
        f(&mut meta);
        self.shared.store.put_app(&meta)
    }

    /// The emulator's store (tests: set up states the API cannot reach, e.g. an archived
    /// instance of a given age).
    pub fn store(&self) -> &store::Store {
        &self.shared.store
    }

    /// Act as someone else (`service::act`, also served at `/_emulator/act/...`): a user of
    /// `party` submits an instance of the served app with its form data and `files`, process
    /// ended, unconfirmed.
    pub async fn act_submit(
        &self,
        party: u32,
        files: &[service::act::NewFile],
    ) -> Result<crate::altinn::model::Instance, service::act::ActError> {
        service::act::submit(&self.shared.store, &self.app_id(), party, files).await
    }

    /// A user adds `file` to the instance `guid`; bumps its lastChanged.
    pub async fn act_add_element(
        &self,
        guid: &str,
        file: &service::act::NewFile,
    ) -> Result<crate::altinn::model::DataElement, service::act::ActError> {
        service::act::add_element(&self.shared.store, guid, file).await
    }

    /// A user deletes element `element` of instance `guid`; bumps its lastChanged.
    pub async fn act_delete_element(
        &self,
        guid: &str,
        element: &str,
    ) -> Result<crate::altinn::model::Instance, service::act::ActError> {
        service::act::delete_element(&self.shared.store, guid, element).await
    }

    /// `org` confirms instance `guid` (as its POST `complete`); bumps its lastChanged.
    pub async fn act_confirm(
        &self,
        guid: &str,
        org: &str,
    ) -> Result<crate::altinn::model::Instance, service::act::ActError> {
        service::act::confirm(&self.shared.store, guid, org).await
    }

    /// A client that calls this emulator's service in process (no HTTP, no socket) with
    /// the caller's `token`: the same store, checks and refusals as over HTTP.
    #[cfg(any(test, feature = "test-support"))]
    pub fn in_process(&self, token: &str) -> inprocess::InProcessClient {
        inprocess::InProcessClient::over(self.shared.clone(), self.app_id(), token)
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.cfg.data_dir
    }

    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        // In-flight streams may keep connections open; don't wait forever.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// `altinnfs emulator`: serve until Ctrl-C, printing the base URL, the app URL and the app.
pub async fn run(cfg: EmulatorConfig) -> Result<(), String> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let emu = Emulator::start(cfg)
        .await
        .map_err(|e| format!("emulator: {e}"))?;
    println!("{}", emu.base_url());
    println!("{}", emu.app_url());
    println!("{}", emu.app_id());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    emu.shutdown().await;
    Ok(())
}

/// Whom a test token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestTokenFor {
    /// An app-owner (service owner) token for this org.
    Org(String),
    /// A localtest user id.
    User(String),
    /// A user token for this party.
    Party(String),
}

/// `altinnfs token`: a test token from the emulator (or localtest) at `base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestTokenRequest {
    pub base_url: String,
    pub who: TestTokenFor,
}

/// `altinnfs token`: call the emulator's (or localtest's) token endpoints and print the JWT.
pub async fn token_command(req: TestTokenRequest) -> Result<(), String> {
    let base = req.base_url.trim_end_matches('/');
    let url = match &req.who {
        TestTokenFor::Org(org) => format!(
            "{base}/Home/GetTestOrgToken/{org}?orgNumber=991825827&scopes={}",
            percent_encoding::utf8_percent_encode(
                &format!("{} {}", auth::SERVICEOWNER_READ, auth::SERVICEOWNER_WRITE),
                percent_encoding::NON_ALPHANUMERIC
            )
        ),
        TestTokenFor::User(u) => format!("{base}/Home/GetTestUserToken/{u}"),
        TestTokenFor::Party(p) => format!("{base}/Home/GetTestPartyToken/{p}"),
    };
    let resp = reqwest::Client::new()
        .get(&url)
        .header("Accept", "text/plain")
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {body}"));
    }
    println!("{}", body.trim().trim_matches('"'));
    Ok(())
}
