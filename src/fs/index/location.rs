//! Where an index lives: one per (platform host, ORG/APP, token subject) under the cache
//! directory, so two identities never share metadata (SPEC §7.1), and the options that tune
//! the index, the cursor and the feed.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the index inside its directory.
pub const INDEX_FILE: &str = "index.sqlite";

/// `$XDG_CACHE_HOME/altinnfs`, else `~/.cache/altinnfs`, as root without HOME
/// `/var/cache/altinnfs` (SPEC §7.1).
pub fn default_cache_dir() -> Result<PathBuf, String> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(x) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(x.join("altinnfs"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".cache/altinnfs"));
    }
    if unsafe { libc::geteuid() } == 0 {
        return Ok(PathBuf::from("/var/cache/altinnfs"));
    }
    Err("neither XDG_CACHE_HOME nor HOME is set; give --cache-dir".into())
}

/// Who an index belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexKey {
    /// `host` or `host:port` of the platform URL.
    pub host: String,
    /// `ORG/APP`.
    pub app_id: String,
    /// From the token's claims (`token_subject`).
    pub subject: String,
    /// The mount's extra Storage filters (`--query`), canonical: an index mirrors what its
    /// listings return, so another filter set needs another index (or its full listing
    /// would "delete" what the other filter selected).
    pub filters: String,
}

impl IndexKey {
    pub fn new(platform_url: &str, app_id: &str, subject: &str) -> Self {
        let host = reqwest::Url::parse(platform_url)
            .ok()
            .and_then(|u| {
                let h = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                })
            })
            .unwrap_or_else(|| platform_url.to_string());
        Self {
            host,
            app_id: app_id.to_string(),
            subject: subject.to_string(),
            filters: String::new(),
        }
    }

    /// The same key for a mount with these `--query` filters (order does not matter).
    pub fn with_filters(mut self, query: &[(String, String)]) -> Self {
        let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        q.sort();
        self.filters = q.join("&");
        self
    }

    /// `<cache_dir>/index/<host>/<org>/<app>/<subject>[~q-<hash of filters>]/index.sqlite`,
    /// each part made safe as one path component.
    pub fn path_in(&self, cache_dir: &Path) -> PathBuf {
        let mut p = cache_dir.join("index").join(component(&self.host));
        for part in self.app_id.splitn(2, '/') {
            p = p.join(component(part));
        }
        let mut who = component(&self.subject);
        if !self.filters.is_empty() {
            who = format!("{who}~q-{}", hex8(&Sha256::digest(self.filters.as_bytes())));
        }
        p.join(who).join(INDEX_FILE)
    }
}

/// One safe path component: `[A-Za-z0-9._-]` kept, the rest `_`; never `.`/`..`/empty; long
/// names shortened with a hash so that two long names stay apart.
fn component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.len() > 64 || out != s {
        let h = Sha256::digest(s.as_bytes());
        out.truncate(48);
        out = format!("{out}-{}", hex8(&h));
    }
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = format!("_{out}");
    }
    out
}

fn hex8(h: &[u8]) -> String {
    h[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// A name for the token's subject, from its JWT claims (no signature check): `org-<org>` for
/// an app owner, `user-<userid>` for a person, `party-<id>` for a party token, else
/// `sub-<hash of sub/client>`; `unknown` for an opaque token. Never the token itself.
pub fn token_subject(token: &str) -> String {
    let Some(claims) = jwt_claims(token) else {
        return "unknown".into();
    };
    let get = |k: &str| {
        claims.get(k).and_then(|v| match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    if let Some(org) = get("urn:altinn:org") {
        return format!("org-{org}");
    }
    if let Some(u) = get("urn:altinn:userid") {
        return format!("user-{u}");
    }
    if let Some(p) = get("urn:altinn:partyid") {
        return format!("party-{p}");
    }
    match get("sub")
        .or_else(|| get("client_id"))
        .or_else(|| get("consumer"))
    {
        Some(s) => format!("sub-{}", hex8(&Sha256::digest(s.as_bytes()))),
        None => "unknown".into(),
    }
}

fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The options of SPEC §7.1–7.3 (`--cache-dir`, `--poll-interval`, `--full-refresh-hours`,
/// `--feed-days`), as the tree and the commands use them.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexConfig {
    pub cache_dir: PathBuf,
    /// None: no poller (`--poll-interval 0`).
    pub poll_interval: Option<Duration>,
    /// None: only the first listing is full (`--full-refresh-hours 0`).
    pub full_refresh: Option<Duration>,
    pub feed_retention: Duration,
    /// Instances per query page (SPEC §7.2 `--page-size`; 100 until that flag exists).
    pub page_size: usize,
    /// Slices a full listing fetches side by side (`--list-parallel`; 1: one after another).
    pub list_parallel: usize,
}

impl IndexConfig {
    pub fn index_path(&self, key: &IndexKey) -> PathBuf {
        key.path_in(&self.cache_dir)
    }
}
