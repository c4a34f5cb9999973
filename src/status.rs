//! `altinnfs status`: a running mount answers over a unix socket, `run/<hash>.sock` in its
//! spool directory (0600 in a 0700 directory), with one JSON object and closes.
//!
//! Why a socket and not a virtual file beside `.altinn/changes`: a file read goes through the
//! kernel's FUSE queue, so it hangs exactly when status matters most (a stuck upload, a
//! wedged server); a file in the mount is readable by every user `allow_other` admits, while
//! the socket is the mounting user's alone; and it adds nothing to the mount's layout (a
//! public interface). The cost: `status` must know the spool directory; it looks in the
//! default ones and takes `--spool-dir`, and names mounts that did not answer.

use crate::metrics::{Counters, TokenWatch};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What one mount reports. Never holds a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountStatus {
    pub mountpoint: String,
    pub pid: u32,
    pub app: String,
    pub environment: String,
    pub app_url: String,
    pub platform_url: String,
    pub read_only: bool,
    pub spool_dir: String,
    pub started: String,
    pub uptime_secs: u64,
    pub token_expires: Option<String>,
    pub token_expires_in_secs: Option<i64>,
    pub pending_uploads: usize,
    pub unsent_files: usize,
    pub unsent_bytes: u64,
    /// Entries of `unsent/` that cannot be sent (bad sidecar).
    pub unsent_skipped: usize,
    pub cache_bytes: u64,
    pub requests: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// The metadata index (SPEC §7.1), when the mount has one.
    #[serde(default)]
    pub index: Option<IndexStatus>,
}

/// The metadata index and the change cursor of a mount.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexStatus {
    pub path: String,
    /// The database with its WAL and shared-memory files.
    pub bytes: u64,
    pub instances: u64,
    pub feed_last_seq: u64,
    /// The newest server `lastChanged` the cursor has seen (app-wide scope).
    pub cursor: Option<String>,
    /// How far the cursor is behind now: an upper bound of the staleness of listings.
    pub cursor_lag_secs: Option<i64>,
    /// Listings under way: the first one of a big app takes minutes to hours.
    #[serde(default)]
    pub listings: Vec<crate::fs::refresh::ListingProgress>,
}

impl IndexStatus {
    /// Read from an open index; None when it cannot be read.
    pub fn of(index: &crate::fs::index::MetaIndex) -> Option<Self> {
        let path = index.path()?.to_path_buf();
        let counts = index.counts().ok()?;
        let cursor = index.cursor("app").ok().flatten();
        let bytes = ["", "-wal", "-shm"]
            .iter()
            .filter_map(|sfx| {
                let mut p = path.clone().into_os_string();
                p.push(sfx);
                std::fs::metadata(p).ok().map(|m| m.len())
            })
            .sum();
        Some(Self {
            path: path.display().to_string(),
            bytes,
            instances: counts.instances,
            feed_last_seq: counts.last_seq,
            cursor_lag_secs: cursor.map(|c| (chrono::Utc::now() - c).num_seconds()),
            cursor: cursor.map(|c| c.to_rfc3339()),
            listings: vec![],
        })
    }
}

/// Where a mount's status comes from.
pub struct StatusSource {
    pub mountpoint: PathBuf,
    pub app: String,
    pub environment: String,
    pub app_url: String,
    pub platform_url: String,
    pub read_only: bool,
    pub spool_dir: PathBuf,
    pub started: chrono::DateTime<chrono::Utc>,
    pub counters: Option<Arc<Counters>>,
    pub token: Option<Arc<TokenWatch>>,
    /// Uploads (and other writes) in flight.
    pub inflight: Box<dyn Fn() -> usize + Send + Sync>,
    /// The index and cursor, read when asked.
    pub index: Box<dyn Fn() -> Option<IndexStatus> + Send + Sync>,
}

/// Bytes of the regular files below `dir` (the blob cache).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

impl StatusSource {
    pub fn report(&self) -> MountStatus {
        let now = chrono::Utc::now();
        let (entries, bad) = crate::unsent::scan(&self.spool_dir.join("unsent"));
        let exp = self.token.as_ref().and_then(|t| t.expires_at());
        let (requests, errors, last) = match &self.counters {
            Some(c) => (
                c.requests.load(std::sync::atomic::Ordering::Relaxed),
                c.errors.load(std::sync::atomic::Ordering::Relaxed),
                c.last_error.lock().unwrap().clone(),
            ),
            None => (0, 0, None),
        };
        MountStatus {
            mountpoint: self.mountpoint.display().to_string(),
            pid: std::process::id(),
            app: self.app.clone(),
            environment: self.environment.clone(),
            app_url: crate::logging::redact_url(&self.app_url),
            platform_url: crate::logging::redact_url(&self.platform_url),
            read_only: self.read_only,
            spool_dir: self.spool_dir.display().to_string(),
            started: self.started.to_rfc3339(),
            uptime_secs: (now - self.started).num_seconds().max(0) as u64,
            token_expires: exp.map(|t| t.to_rfc3339()),
            token_expires_in_secs: exp.map(|t| (t - now).num_seconds()),
            pending_uploads: (self.inflight)(),
            unsent_files: entries.len(),
            unsent_bytes: entries.iter().map(|e| e.size).sum(),
            unsent_skipped: bad.len(),
            cache_bytes: tree_bytes(&self.spool_dir.join("cache")),
            requests,
            errors,
            last_error_at: last.as_ref().map(|(t, _)| t.to_rfc3339()),
            last_error: last.map(|(_, e)| e),
            index: (self.index)(),
        }
    }
}

/// `<spool>/run/<16 hex digits of the mountpoint's hash>.sock`: one per mount, short enough
/// for `sun_path`.
pub fn socket_path(spool_dir: &Path, mountpoint: &Path) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let h = sha2::Sha256::digest(mountpoint.as_os_str().as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    spool_dir.join("run").join(format!("{hex}.sock"))
}

/// The listening socket; removed when dropped.
pub struct StatusServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listen at [`socket_path`] and answer each connection with the report.
pub fn serve(
    source: Arc<StatusSource>,
    rt: &tokio::runtime::Handle,
) -> std::io::Result<StatusServer> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&source.spool_dir, &source.mountpoint);
    if let Some(dir) = path.parent() {
        crate::fs::make_private_dir(dir)?;
    }
    let _ = std::fs::remove_file(&path); // a stale socket of a process that died
    let std_listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std_listener.set_nonblocking(true)?;
    let _guard = rt.enter();
    let listener = tokio::net::UnixListener::from_std(std_listener)?;
    let task = rt.spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let src = source.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let Ok(report) = tokio::task::spawn_blocking(move || src.report()).await else {
                    return;
                };
                let mut line = serde_json::to_vec(&report).unwrap_or_default();
                line.push(b'\n');
                let _ = conn.write_all(&line).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(StatusServer { path, task })
}

/// Ask the mount listening at `socket`.
pub fn query(socket: &Path) -> std::io::Result<MountStatus> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Mountpoints of type `fuse.altinnfs` in /proc/self/mountinfo.
pub fn altinnfs_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mountpoint = left.split(' ').nth(4)?;
            (fstype == "fuse.altinnfs").then(|| PathBuf::from(unescape(mountpoint)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything `altinnfs status` prints with `--json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusAll {
    pub mounts: Vec<MountStatus>,
    /// altinnfs mounts whose socket was not found in the spool directories looked at.
    pub unreachable: Vec<String>,
}

/// Ask every mount with a socket under `spool_dirs`, keep those at `only` (when given), and
/// name the altinnfs mounts that did not answer.
pub fn gather(spool_dirs: &[PathBuf], only: Option<&Path>) -> StatusAll {
    let mut mounts = vec![];
    for dir in spool_dirs {
        let Ok(rd) = std::fs::read_dir(dir.join("run")) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            if e.path().extension().is_some_and(|x| x == "sock") {
                if let Ok(s) = query(&e.path()) {
                    mounts.push(s);
                }
            }
        }
    }
    let answered: Vec<PathBuf> = mounts
        .iter()
        .map(|m| PathBuf::from(&m.mountpoint))
        .collect();
    let mut unreachable: Vec<String> = altinnfs_mounts()
        .into_iter()
        .filter(|m| !answered.contains(m))
        .map(|m| m.display().to_string())
        .collect();
    if let Some(only) = only {
        mounts.retain(|m| Path::new(&m.mountpoint) == only);
        unreachable.retain(|m| Path::new(m) == only);
    }
    mounts.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
    StatusAll {
        mounts,
        unreachable,
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", n as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", n as f64 / 1_073_741_824.0),
    }
}

/// The human form of one mount's status.
pub fn render(m: &MountStatus) -> String {
    let token = match (&m.token_expires, m.token_expires_in_secs) {
        (Some(t), Some(s)) if s >= 0 => format!("expires {t} (in {}m)", s / 60),
        (Some(t), Some(_)) => format!("EXPIRED at {t}"),
        _ => "expiry unknown (not a JWT, or no request yet)".into(),
    };
    let mut out = format!(
        "{}: {} ({}){}\n  pid {}, up {}s, spool {}\n  token: {token}\n  uploads in flight: {}\n  unsent: {} file(s), {}{}\n  cache: {}\n  requests: {}, errors: {}\n",
        m.mountpoint,
        m.app,
        m.environment,
        if m.read_only { ", read-only" } else { "" },
        m.pid,
        m.uptime_secs,
        m.spool_dir,
        m.pending_uploads,
        m.unsent_files,
        human_bytes(m.unsent_bytes),
        if m.unsent_skipped > 0 { format!(" ({} unreadable, see `altinnfs unsent list`)", m.unsent_skipped) } else { String::new() },
        human_bytes(m.cache_bytes),
        m.requests,
        m.errors,
    );
    if let (Some(t), Some(e)) = (&m.last_error_at, &m.last_error) {
        out.push_str(&format!("  last error ({t}): {e}\n"));
    }
    if let Some(i) = &m.index {
        let lag = i
            .cursor_lag_secs
            .map_or("no cursor yet".into(), |s| format!("cursor {s}s behind"));
        out.push_str(&format!(
            "  index: {} instances, {}, feed seq {}, {lag}\n    {}\n",
            i.instances,
            human_bytes(i.bytes),
            i.feed_last_seq,
            i.path
        ));
        for l in &i.listings {
            out.push_str(&format!("  {}\n", l.describe()));
        }
    }
    out
}

/// `altinnfs status [MOUNTPOINT] [--json] [--spool-dir DIR]...`.
pub fn run_command(args: crate::cli::StatusArgs) -> Result<(), String> {
    let mut dirs = args.spool_dir.clone();
    if dirs.is_empty() {
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(PathBuf::from(home).join(".cache/altinnfs"));
        }
        // The systemd unit gives each instance its own /var/cache/altinnfs/NAME.
        let system = PathBuf::from("/var/cache/altinnfs");
        if let Ok(rd) = std::fs::read_dir(&system) {
            dirs.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
        dirs.push(system);
    }
    let only = match &args.mountpoint {
        Some(m) => Some(
            m.canonicalize()
                .map_err(|e| format!("{}: {e}", m.display()))?,
        ),
        None => None,
    };
    let all = gather(&dirs, only.as_deref());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?
        );
    } else {
        for m in &all.mounts {
            print!("{}", render(m));
        }
        for u in &all.unreachable {
            println!("{u}: altinnfs mount without an answer (its spool dir is not among those looked at; give --spool-dir)");
        }
        if all.mounts.is_empty() && all.unreachable.is_empty() {
            println!("no altinnfs mounts");
        }
    }
    match (&only, all.mounts.is_empty()) {
        (Some(m), true) => Err(format!("no status from {}", m.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_and_socket_names() {
        assert_eq!(unescape(r"/mnt/my\040app"), "/mnt/my app");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
        let a = socket_path(Path::new("/s"), Path::new("/mnt/a"));
        let b = socket_path(Path::new("/s"), Path::new("/mnt/b"));
        assert_ne!(a, b);
        assert!(a.starts_with("/s/run") && a.to_str().unwrap().ends_with(".sock"));
    }

    #[test]
    fn socket_answers_one_json_object_without_the_token() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let src = Arc::new(StatusSource {
            mountpoint: PathBuf::from("/mnt/x"),
            app: "ttd/app".into(),
            environment: "tt02".into(),
            app_url: "https://u:secret@h/ttd/app".into(),
            platform_url: "https://p".into(),
            read_only: false,
            spool_dir: dir.path().to_path_buf(),
            started: chrono::Utc::now(),
            counters: None,
            token: None,
            inflight: Box::new(|| 3),
            index: Box::new(|| None),
        });
        let server = serve(src, rt.handle()).unwrap();
        let sock = socket_path(dir.path(), Path::new("/mnt/x"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let s = query(&sock).unwrap();
        assert_eq!(s.pending_uploads, 3);
        assert_eq!(s.app, "ttd/app");
        assert!(!s.app_url.contains("secret"));
        drop(server);
        assert!(!sock.exists(), "removed at unmount");
    }
}
