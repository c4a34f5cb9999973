//! `altinnfs cache ORG/APP [connection options] --show|--clear` (SPEC §7.1): where the
//! metadata index of this app and this token lives, what it holds, or delete it. Also the
//! connection setup that `altinnfs changes` shares.

use crate::altinn::auth::provider_from_options;
use crate::altinn::http::{HttpClient, HttpConfig};
use crate::altinn::retry::Retrying;
use crate::cli::{CacheArgs, MountOptions};
use crate::fs::index::{remove_index_files, token_subject, IndexConfig, IndexKey, MetaIndex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A client for one app with the caller's token, and the index that belongs to them.
pub struct Connection {
    /// The HTTP client inside the one retry policy, as a mount has it.
    pub client: Arc<Retrying<HttpClient>>,
    /// `ORG/APP`.
    pub app_id: String,
    pub org: String,
    /// Who the token is (`org-ttd`, `user-1337`...), never the token.
    pub subject: String,
    pub index_path: PathBuf,
    pub index_cfg: IndexConfig,
}

impl Connection {
    /// An app owner (org) token: one app-wide cursor; else one per party.
    pub fn is_org(&self) -> bool {
        self.subject.starts_with("org-")
    }
}

/// Resolve the hosts, get a token (it names the index) and build the client.
pub async fn connect(app: &str, opts: &MountOptions) -> Result<Connection, String> {
    let (org, name) = crate::mount::parse_app(app)?;
    let (app_url, platform_url) = opts.endpoints(&org, &name)?;
    let timeout = Duration::from_secs(opts.timeout.max(1));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let tokens = provider_from_options(opts, &platform_url, http)
        .await
        .map_err(|e| e.to_string())?;
    let token = tokens.token().await.map_err(|e| e.to_string())?;
    let subject = token_subject(&token);
    let index_cfg = crate::mount::index_config(opts)?;
    let key = IndexKey::new(&platform_url, app, &subject).with_filters(&parse_query(opts)?);
    let index_path = index_cfg.index_path(&key);
    let mut cfg = HttpConfig::new(&app_url, &platform_url, app);
    cfg.timeout = timeout;
    let client = HttpClient::new(cfg, tokens).map_err(|e| e.to_string())?;
    Ok(Connection {
        client: Arc::new(crate::mount::retrying(client, opts.page_size as usize)),
        app_id: app.to_string(),
        org,
        subject,
        index_path,
        index_cfg,
    })
}

/// `--query KEY=VALUE` filters as pairs.
pub fn parse_query(opts: &MountOptions) -> Result<Vec<(String, String)>, String> {
    opts.query
        .iter()
        .map(|q| {
            q.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("--query {q}: expected KEY=VALUE"))
        })
        .collect()
}

pub async fn run(args: CacheArgs) -> Result<(), String> {
    let _ = crate::logging::init(
        args.opts.log_level.as_deref(),
        args.opts.log_file.as_deref(),
    );
    let conn = connect(&args.app, &args.opts).await?;
    let path = &conn.index_path;
    if args.clear {
        return clear(path);
    }
    println!("index: {}", path.display());
    if !path.exists() {
        println!("state: none yet (a mount or `altinnfs changes` creates it)");
        return Ok(());
    }
    let ix = MetaIndex::open(path).map_err(|e| e.to_string())?;
    print!("{}", describe(&ix, &conn).map_err(|e| e.to_string())?);
    println!("size: {} bytes", disk_size(path));
    Ok(())
}

fn clear(path: &Path) -> Result<(), String> {
    let removed =
        remove_index_files(path).map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
    if removed.is_empty() {
        println!("no index at {}", path.display());
    }
    for p in removed {
        println!("removed {}", p.display());
    }
    Ok(())
}

/// The counts, the cursors and the last full listings, one `key: value` per line.
fn describe(ix: &MetaIndex, conn: &Connection) -> crate::fs::index::IndexResult<String> {
    let c = ix.counts()?;
    let mut out = format!(
        "app: {}\nsubject: {}\ninstances: {}\nelements: {}\nparties: {}\nfeed lines: {}\nlast seq: {}\nconfirmed here: {}\n",
        conn.app_id, conn.subject, c.instances, c.elements, c.parties, c.feed_rows, c.last_seq, c.done
    );
    for (k, v) in ix.read(|db| db.meta_all())? {
        if let Some(scope) = k.strip_prefix("cursor:") {
            out.push_str(&format!("cursor ({scope}): {v}\n"));
        } else if let Some(scope) = k.strip_prefix("full:") {
            out.push_str(&format!("last full listing ({scope}): {v}\n"));
        }
    }
    Ok(out)
}

/// Bytes of the index and its WAL/SHM files.
fn disk_size(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum()
}
