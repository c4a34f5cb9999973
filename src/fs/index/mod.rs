//! The embedded, on-disk metadata index (SPEC §7.1): instances, data elements, the change
//! cursor, the change feed and the instances this mount confirmed, in one SQLite file per
//! (platform host, ORG/APP, token subject).
//!
//! SQLite (rusqlite, bundled): a user can inspect the index with `sqlite3`, WAL lets readers
//! go on while the poller writes, and two mounts of one app share a file safely through its
//! locking. The index is a cache: a corrupt file or one of another schema version is renamed
//! aside (logged) and rebuilt from the server, never migrated or trusted.
//!
//! File names of elements are not stored: `layout::assign_names` computes them from the
//! elements when an instance is loaded, so they are as stable as the set of elements.
//! Inode numbers are hashes of entity ids (`inode::ino_of`) and need no table either, and
//! `selfLinks` and blob paths are computed again on load (`compact`): ~1.7 KB per instance.

mod compact;
mod db;
mod fallback;
mod feed;
mod location;
mod schema;

pub use db::{Db, IndexCounts, InstanceSummary};
pub use feed::{EventKind, FeedEvent};
pub use location::{default_cache_dir, token_subject, IndexConfig, IndexKey};
pub use schema::SCHEMA_VERSION;

use crate::altinn::model::{Instance, InstanceStatus, Timestamp};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("metadata index: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("metadata index {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata index: a stored document does not parse: {0}")]
    Json(#[from] serde_json::Error),
}

pub type IndexResult<T> = Result<T, IndexError>;

fn io_err(path: &Path, source: std::io::Error) -> IndexError {
    IndexError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How long a writer waits for another process's lock (a second mount of the same app).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How far the write-ahead log grows before SQLite copies it into the database (and how
/// large a file it keeps afterwards). SQLite's default (4 MiB) checkpoints every few pages
/// of a first listing, each time writing again the pages the next commits dirty anew: about
/// half of the ingestion's time. 64 MiB checkpoints a few times per 100,000 instances.
pub const WAL_LIMIT_BYTES: i64 = 64 << 20;

/// More than the number of distinct statements in `Db`.
const STATEMENT_CACHE: usize = 64;

/// The index: one SQLite connection behind a mutex (statements are short; the tree reads
/// pages of 100s, the poller writes one page per transaction).
pub struct MetaIndex {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    /// The link bases, once a read found them stored (see `Db::remembering`).
    link_bases: OnceLock<compact::LinkBases>,
    /// The disk filled up while mounted and the index moved to memory (`fallback`).
    moved_to_memory: AtomicBool,
}

impl MetaIndex {
    /// Open (or create) the index file at `path`: parent directories 0700, files 0600.
    /// A file that is not an index of this version, or fails SQLite's quick check, is renamed
    /// to `<path>.aside-<unix time>` with a warning and a new index is created.
    pub fn open(path: &Path) -> IndexResult<Self> {
        if let Some(dir) = path.parent() {
            crate::fs::make_private_dir(dir).map_err(|e| io_err(dir, e))?;
        }
        if path.exists() {
            match Self::open_existing(path) {
                Ok(ix) => return Ok(ix),
                Err(reason) => set_aside(path, &reason)?,
            }
        }
        Self::create(path)
    }

    /// `open`, or an index in memory when the file cannot be used (directory not writable,
    /// disk full): the mount then works, without warm remounts. The second value says why.
    pub fn open_or_memory(path: &Path) -> (Self, Option<String>) {
        match Self::open(path) {
            Ok(ix) => (ix, None),
            Err(e) => {
                let why = format!(
                    "{e}; keeping metadata in memory only (a remount lists everything again)"
                );
                tracing::warn!("{why}");
                let ix = Self::open_in_memory().expect("an in-memory SQLite database opens");
                (ix, Some(why))
            }
        }
    }

    /// A private index that lives as long as this value (tests, and the fallback above).
    pub fn open_in_memory() -> IndexResult<Self> {
        let conn = Connection::open_in_memory()?;
        init_schema(&conn)?;
        Ok(Self::wrap(conn, None))
    }

    /// Use a WAL limit other than `WAL_LIMIT_BYTES` (tests: a small one).
    pub fn set_wal_limit(&self, bytes: i64) -> IndexResult<()> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(set_wal_limit(&conn, bytes)?)
    }

    /// Where the index lives (None: in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path
            .as_deref()
            .filter(|_| !self.moved_to_memory.load(Ordering::Relaxed))
    }

    /// Run `f` on the connection in one read transaction: one snapshot, and one set of
    /// WAL read locks instead of one per statement (an instance is several statements).
    /// A walk in an order other than the listing's (`find` visits a directory of more than
    /// 10,000 entries in inode order) reads its instances one transaction each: BEGIN and
    /// COMMIT stay prepared, and the link bases are read once, not twice per instance.
    pub fn read<T>(&self, f: impl FnOnce(&Db) -> IndexResult<T>) -> IndexResult<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = ReadTx::begin(&conn)?;
        let out = f(&Db::remembering(&conn, &self.link_bases))?;
        tx.commit()?;
        Ok(out)
    }

    /// Run `f` in one transaction: committed when it returns Ok, rolled back otherwise. A
    /// full disk moves the index to memory (`fallback`): this write fails, later ones work.
    pub fn write<T>(&self, f: impl FnOnce(&Db) -> IndexResult<T>) -> IndexResult<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let r = write_on(&mut conn, f);
        if let (Err(e), Some(path)) = (&r, self.path()) {
            if fallback::is_disk_full(e) {
                if let Some(mem) = fallback::to_memory(&conn, path, e) {
                    tune(&mem);
                    *conn = mem;
                    self.moved_to_memory.store(true, Ordering::Relaxed);
                }
            }
        }
        r
    }

    fn wrap(conn: Connection, path: Option<PathBuf>) -> Self {
        tune(&conn);
        Self {
            conn: Mutex::new(conn),
            path,
            link_bases: OnceLock::new(),
            moved_to_memory: AtomicBool::new(false),
        }
    }

    /// Open a file that exists; Err(reason) when it must be set aside.
    fn open_existing(path: &Path) -> Result<Self, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| format!("cannot open it ({e})"))?;
        configure(&conn).map_err(|e| format!("not a usable SQLite file ({e})"))?;
        let pages: i64 = pragma(&conn, "page_count").map_err(|e| format!("unreadable ({e})"))?;
        if pages == 0 {
            // Created but never initialised (a crash right after creating the file).
            init_schema(&conn).map_err(|e| format!("cannot initialise it ({e})"))?;
        } else {
            check_identity(&conn)?;
        }
        restrict_files(path);
        Ok(Self::wrap(conn, Some(path.to_path_buf())))
    }

    fn create(path: &Path) -> IndexResult<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let conn = Connection::open(path)?;
        configure(&conn)?;
        init_schema(&conn)?;
        restrict_files(path);
        Ok(Self::wrap(conn, Some(path.to_path_buf())))
    }
}

/// The tree's API: each call is one statement or one transaction.
impl MetaIndex {
    /// Store a page of instances (with their elements) in one transaction.
    pub fn upsert_instances(&self, instances: &[Instance]) -> IndexResult<()> {
        self.write(|db| {
            for i in instances {
                db.upsert_instance(i, None)?;
            }
            Ok(())
        })
    }

    pub fn get_instance(&self, guid: &str) -> IndexResult<Option<Instance>> {
        self.read(|db| db.get_instance(guid))
    }

    /// See `Db::status`.
    pub fn instance_status(&self, guid: &str) -> IndexResult<Option<InstanceStatus>> {
        self.read(|db| db.status(guid))
    }

    /// Up to `limit` instances of `party` from GUID `from` on (see `Db::instances_from`).
    pub fn instances_from(
        &self,
        party: &str,
        from: &str,
        limit: usize,
    ) -> IndexResult<Vec<Instance>> {
        self.read(|db| db.instances_from(party, from, limit))
    }

    pub fn delete_instance(&self, guid: &str) -> IndexResult<bool> {
        self.write(|db| db.delete_instance(guid))
    }

    /// A page of a party's instances in GUID order (see `Db::party_instances`).
    pub fn party_instances(
        &self,
        party: &str,
        after: Option<&str>,
        limit: usize,
    ) -> IndexResult<Vec<InstanceSummary>> {
        self.read(|db| db.party_instances(party, after, limit))
    }

    /// A page of a party's instance documents in GUID order.
    pub fn party_documents(
        &self,
        party: &str,
        after: Option<&str>,
        limit: usize,
    ) -> IndexResult<Vec<Instance>> {
        self.read(|db| db.party_documents(party, after, limit))
    }

    /// A page of (party, number of instances) in party order.
    pub fn parties(&self, after: Option<&str>, limit: usize) -> IndexResult<Vec<(String, u64)>> {
        self.read(|db| db.parties(after, limit))
    }

    pub fn counts(&self) -> IndexResult<IndexCounts> {
        self.read(|db| db.counts())
    }

    pub fn cursor(&self, scope: &str) -> IndexResult<Option<Timestamp>> {
        self.read(|db| db.cursor(scope))
    }

    pub fn set_cursor(&self, scope: &str, t: &Timestamp) -> IndexResult<()> {
        self.write(|db| db.set_cursor(scope, t))
    }

    /// Append events (seq and seen filled in) in one transaction; returns them.
    pub fn append_events(&self, mut events: Vec<FeedEvent>) -> IndexResult<Vec<FeedEvent>> {
        let now = chrono::Utc::now();
        self.write(|db| db.append_events(&mut events, &now))?;
        Ok(events)
    }

    pub fn feed_since(&self, seq: u64, limit: usize) -> IndexResult<Vec<FeedEvent>> {
        self.read(|db| db.feed_since(seq, limit))
    }

    pub fn feed_since_time(&self, t: &Timestamp, limit: usize) -> IndexResult<Vec<FeedEvent>> {
        self.read(|db| db.feed_since_time(t, limit))
    }

    pub fn last_seq(&self) -> IndexResult<u64> {
        self.read(|db| db.last_seq())
    }

    /// Drop feed rows older than `retention` and beyond `max_rows`.
    pub fn prune_feed(&self, retention: Duration, max_rows: u64) -> IndexResult<usize> {
        let back = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let before = chrono::Utc::now()
            .checked_sub_signed(back)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        self.write(|db| db.prune_feed(&before, max_rows))
    }
}

/// A read transaction through cached statements (rusqlite's `Transaction` prepares BEGIN
/// and COMMIT anew each time); rolled back when dropped uncommitted (an error, a panic).
struct ReadTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> ReadTx<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut s| s.execute([]));
        }
    }
}

fn write_on<T>(conn: &mut Connection, f: impl FnOnce(&Db) -> IndexResult<T>) -> IndexResult<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&Db::new(&tx))?;
    tx.commit()?;
    Ok(out)
}

/// Per-connection settings of every index, on disk or in memory.
fn tune(conn: &Connection) {
    // Every statement of `Db` stays prepared (rusqlite keeps 16 by default: a listing
    // page and a walk between them use more, and would prepare them again and again).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on bound values: without it SQLite (built with STAT4)
    // compiles a statement again whenever a parameter it compared with an index gets a
    // new value, i.e. on nearly every run (every instance a walk reads).
    if let Err(e) = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true) {
        tracing::debug!("metadata index: no stable query plans ({e})");
    }
}

fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
}

/// WAL (readers do not wait for the poller), NORMAL sync (a crash loses at most the last
/// transactions of a cache), foreign keys (elements go with their instance).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")?;
    set_wal_limit(conn, WAL_LIMIT_BYTES)
}

/// Checkpoint when the WAL holds `bytes`, and truncate it back to `bytes` after one.
fn set_wal_limit(conn: &Connection, bytes: i64) -> rusqlite::Result<()> {
    let page: i64 = pragma(conn, "page_size")?;
    let pages = (bytes / page.max(512)).max(1);
    conn.query_row(
        &format!("PRAGMA wal_autocheckpoint={pages}"),
        [],
        |_| Ok(()),
    )?;
    conn.query_row(
        &format!("PRAGMA journal_size_limit={bytes}"),
        [],
        |_| Ok(()),
    )
}

fn init_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys=ON;")?;
    conn.execute_batch(&format!(
        "BEGIN; {} PRAGMA application_id={}; PRAGMA user_version={}; COMMIT;",
        schema::SCHEMA,
        schema::APPLICATION_ID,
        schema::SCHEMA_VERSION
    ))
}

/// Our application id, our schema version, and an intact file.
fn check_identity(conn: &Connection) -> Result<(), String> {
    let id = pragma(conn, "application_id").map_err(|e| format!("unreadable ({e})"))?;
    if id != schema::APPLICATION_ID {
        return Err(format!("not an altinnfs index (application_id {id:#x})"));
    }
    let v = pragma(conn, "user_version").map_err(|e| format!("unreadable ({e})"))?;
    if v != schema::SCHEMA_VERSION {
        return Err(format!(
            "schema version {v}, this altinnfs uses {}",
            schema::SCHEMA_VERSION
        ));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| format!("corrupt ({e})"))?;
    if check != "ok" {
        return Err(format!("corrupt ({check})"));
    }
    Ok(())
}

/// The database and its WAL/SHM companions, 0600 whatever the umask was.
fn restrict_files(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for p in companions(path) {
        if p.exists() {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
    }
}

fn companions(path: &Path) -> [PathBuf; 3] {
    [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ]
}

/// Rename an unusable index (and its WAL, which must never be replayed into a new file) out
/// of the way, keeping it for inspection.
fn set_aside(path: &Path, reason: &str) -> IndexResult<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Unique even when two indexes are set aside within one second.
    let taken = |tag: &str| {
        companions(path)
            .iter()
            .any(|p| with_suffix(p, tag).exists())
    };
    let mut tag = format!(".aside-{secs}");
    let mut n = 1;
    while taken(&tag) {
        n += 1;
        tag = format!(".aside-{secs}-{n}");
    }
    for p in companions(path) {
        if p.exists() {
            std::fs::rename(&p, with_suffix(&p, &tag)).map_err(|e| io_err(&p, e))?;
        }
    }
    tracing::warn!(
        "metadata index {} is {reason}: set aside as {}; rebuilding it from the server",
        path.display(),
        with_suffix(path, &tag).display()
    );
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Delete the index files at `path` (and any set-aside copies). Returns the files removed.
pub fn remove_index_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(removed);
    };
    let name = name.to_string_lossy().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&name) {
            std::fs::remove_file(e.path())?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod walk_cost;
