//! The filesystem core: knows Altinn concepts, not FUSE. `AltinnFs` answers with its own
//! types (`Attr`, `DirEntry`, `FsError`); `crate::fuse` turns them into kernel replies.
//!
//! Listing: one Storage query (paged by the client) fills every directory below it, so `ls -lR`,
//! `find`, `du` and `stat` never cost a request per name. Metadata is fresh for `metadata_ttl`;
//! a directory read after that asks again (one query per party, one GET per instance).
//!
//! `AltinnFs` is a facade of FUSE-shaped async methods over components that each own their
//! state behind their own lock and are asked through methods, never reached into:
//! - [`tree::Tree`]: inodes and lookup counts, listings, instance documents (behind
//!   [`tree::store::InstanceStore`]), aliases, the negative cache, directory handles;
//! - `writer::Writer`: spools, local files, sizes of files open for writing;
//! - `handles::Handles`: open file handles by number;
//! - `uploader::Uploader`: PUT, POST with the probe, `unsent/`, JSON views;
//! - [`read::BlobCache`]: downloads and the prefetch window;
//! - `actions::InstanceActions`: create, delete, complete, process/next;
//! - [`stateless::StatelessStore`]: `.stateless/` objects.
//!
//! The decisions with many cases are pure functions with unit tables
//! ([`rename_plan::plan_rename`], [`upload_verdict::upload_verdict`]); the facade gathers
//! their snapshot and executes one short step per answer.

// FsError carries the server's full answer (ProblemDetails, issues) to the one place that
// logs it; its size is deliberate.
#![allow(clippy::result_large_err)]

mod actions;
mod altinn_dir;
mod attr;
pub mod cache;
mod dir_stamps;
mod dirs;
pub mod error;
mod feed_file;
mod flags;
mod freshness;
mod handles;
pub mod index;
pub mod inode;
mod instance_ops;
mod kernel_refs;
pub mod layout;
mod listing;
pub mod local_edits;
mod lookup;
mod on_change;
mod open;
mod page_versions;
pub mod read;
pub mod refresh;
mod rename;
pub mod rename_plan;
pub mod stateless;
pub mod tree;
mod upload;
pub mod upload_verdict;
mod uploader;
mod views;
mod walk;
mod walk_plan;
pub mod write;
mod writer;

use crate::altinn::client::{AltinnClient, QueryParams};
use crate::altinn::ids::{DataTypeId, ElementId, InstanceGuid, InstanceId, PartyId};
use crate::altinn::model::{ApplicationMetadata, DataElement, DataType, Instance};
use bytes::Bytes;
pub use error::{ErrorKind, FsError, FsResult};
pub use flags::OpenFlags;
pub use freshness::IndexIdentity;
use inode::ROOT_INO;
use layout::{Node, APP_METADATA, INSTANCE_JSON, STATELESS};
pub use open::OpenFile;
pub use rename_plan::RenameFlags;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
pub use tree::InstEntry;
use tree::Tree;

/// Everything the core needs to know from the mount options.
#[derive(Debug, Clone)]
pub struct FsConfig {
    pub read_only: bool,
    pub metadata_ttl: Duration,
    pub cache_entries: usize,
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Restrict to these parties (empty: all visible).
    pub parties: Vec<String>,
    /// Extra Storage query filters.
    pub query: Vec<(String, String)>,
    pub hard_delete: bool,
    /// Holds `spool/`, `cache/` and `unsent/` (created 0700).
    pub spool_dir: PathBuf,
    pub cache_bytes: u64,
    /// Some(true): an app owner (org) token; Some(false): a user token; None: find out.
    pub org_mode: Option<bool>,
    /// Show `X.json` beside each form data file `X.xml` (SPEC §3).
    pub form_json: bool,
    /// The party of stateless requests (`party: partyid:N`), when one is known.
    pub stateless_party: Option<String>,
    /// The metadata index, cursor and feed options (SPEC §7); None: no cache directory
    /// could be found, so metadata stays in memory.
    pub index: Option<index::IndexConfig>,
    /// Files of a directory walk downloaded ahead in parallel (SPEC §4 "Many files"; 0: off).
    pub prefetch_files: usize,
    /// `--on-change CMD`: run once per batch of feed lines (SPEC §7.3).
    pub on_change: Option<String>,
}

impl FsConfig {
    pub fn new(spool_dir: impl Into<PathBuf>) -> Self {
        Self {
            read_only: false,
            metadata_ttl: Duration::from_secs(30),
            cache_entries: 100_000,
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            file_mode: 0o644,
            dir_mode: 0o755,
            parties: vec![],
            query: vec![],
            hard_delete: false,
            spool_dir: spool_dir.into(),
            cache_bytes: 2048 * 1024 * 1024,
            org_mode: None,
            form_json: false,
            stateless_party: None,
            index: None,
            prefetch_files: 16,
            on_change: None,
        }
    }
}

/// Instance documents held in memory when the metadata index holds them all.
const HOT_INSTANCES: usize = 4096;

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Attributes of one entry (converted to `fuser::FileAttr` by the adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub crtime: SystemTime,
}

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub attr: Attr,
}

/// A kernel cache invalidation the adapter sends (after its reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    Entry { parent: u64, name: String },
    Inode(u64),
}

/// Receives invalidations; `wait` asks to return only once the kernel has processed them
/// (bounded), for answers that must be visible when close() returns.
pub type InvalSink = Box<dyn Fn(Vec<Inval>, bool) + Send + Sync>;

pub struct AltinnFs<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    cfg: FsConfig,
    meta: ApplicationMetadata,
    meta_json: Bytes,
    tree: Tree,
    writer: writer::Writer,
    handles: handles::Handles,
    listing: tokio::sync::Mutex<()>,
    blobs: read::BlobCache,
    started: SystemTime,
    /// mtimes of the directories without a time of their own (the kernel's listing cache).
    dir_stamps: dir_stamps::DirStamps,
    /// The version of each file the kernel's page cache may hold (FOPEN_KEEP_CACHE).
    page_versions: page_versions::PageVersions,
    inval: Mutex<Option<InvalSink>>,
    inflight: AtomicUsize,
    /// `.stateless/` objects held in memory (SPEC §5).
    stateless: stateless::StatelessStore,
    uploader: uploader::Uploader<C>,
    actions: actions::InstanceActions<C>,
    walks: walk::Walks,
    /// The metadata index and its cursor, once opened (SPEC §7.1).
    index: std::sync::OnceLock<freshness::IndexLink<C>>,
    on_change: on_change::OnChange,
}

/// Create a directory (and parents) with mode 0700.
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Replace a file's contents atomically with a 0600 file (written beside it as `NAME.tmp`,
/// then renamed), whatever the umask.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

fn to_system(t: Option<chrono::DateTime<chrono::Utc>>, dflt: SystemTime) -> SystemTime {
    t.map(SystemTime::from).unwrap_or(dflt)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// Build the core. Fetches the app metadata first, so a bad URL, token or app fails here.
    pub async fn new(client: Arc<C>, cfg: FsConfig) -> FsResult<Self> {
        let meta = client
            .application_metadata()
            .await
            .map_err(|e| FsError::server(APP_METADATA, "GET applicationmetadata", e))?;
        Self::with_metadata(client, cfg, meta)
    }

    pub fn with_metadata(
        client: Arc<C>,
        cfg: FsConfig,
        meta: ApplicationMetadata,
    ) -> FsResult<Self> {
        let mut meta_json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
        meta_json.push(b'\n');
        make_private_dir(&cfg.spool_dir)
            .map_err(|e| FsError::io(cfg.spool_dir.display().to_string(), e))?;
        let spool = cfg.spool_dir.join("spool");
        let unsent = cfg.spool_dir.join("unsent");
        for d in [&spool, &unsent] {
            make_private_dir(d).map_err(|e| FsError::io(d.display().to_string(), e))?;
        }
        let blobs = read::BlobCache::new(cfg.spool_dir.join("cache"), cfg.cache_bytes)
            .map_err(|e| FsError::io("cache", e))?;
        // With the index on disk, memory holds only a hot set of instance documents.
        let hot = match cfg.index {
            Some(_) => cfg.cache_entries.min(HOT_INSTANCES),
            None => cfg.cache_entries,
        };
        let tree = Tree::new(
            Box::new(tree::store::MemoryStore::new(hot, cfg.metadata_ttl)),
            cfg.cache_entries.min(10_000),
            cfg.metadata_ttl,
            cfg.org_mode,
        );
        // The kernel's references are bounded like the metadata cache (SPEC §7.1).
        tree.set_inode_limits(inode::InodeLimits {
            max_held: cfg.cache_entries,
            ..Default::default()
        });
        let uploader = uploader::Uploader::new(client.clone(), unsent, cfg.cache_entries);
        let actions = actions::InstanceActions::new(client.clone(), cfg.hard_delete);
        let started = SystemTime::now();
        Ok(Self {
            client,
            meta,
            meta_json: Bytes::from(meta_json),
            tree,
            writer: writer::Writer::new(spool),
            handles: handles::Handles::default(),
            listing: tokio::sync::Mutex::new(()),
            blobs,
            started,
            dir_stamps: dir_stamps::DirStamps::new(started),
            page_versions: page_versions::PageVersions::default(),
            inval: Mutex::new(None),
            inflight: AtomicUsize::new(0),
            stateless: stateless::StatelessStore::new(),
            uploader,
            actions,
            walks: walk::Walks::new(cfg.prefetch_files),
            index: std::sync::OnceLock::new(),
            on_change: on_change::OnChange::new(cfg.on_change.clone()),
            cfg,
        })
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }
    pub fn metadata(&self) -> &ApplicationMetadata {
        &self.meta
    }
    pub fn unsent_dir(&self) -> &Path {
        self.uploader.unsent_dir()
    }

    /// Where kernel cache invalidations go (the adapter's Notifier).
    pub fn set_inval_sink(&self, sink: InvalSink) {
        *self.inval.lock().unwrap() = Some(sink);
    }

    fn notify(&self, v: Vec<Inval>) {
        self.notify_with(v, false)
    }

    /// Invalidate and wait (bounded) until the kernel has done it. Only from requests that
    /// hold no directory lock in the kernel (flush, fsync, release, setattr).
    fn notify_wait(&self, v: Vec<Inval>) {
        self.notify_with(v, true)
    }

    fn notify_with(&self, v: Vec<Inval>, wait: bool) {
        if v.is_empty() {
            return;
        }
        // A name came or went, or a directory changed: stamp it before the kernel hears of
        // it, so that a getattr answered meanwhile already reports the new mtime. Only the
        // directories the kernel knows whose mtime is a stamp (the others carry the server's).
        let stamped = |ino: u64| self.tree.node(ino).is_some_and(|n| n.mtime_is_stamped());
        self.dir_stamps.stamp(
            v.iter()
                .map(|i| match i {
                    Inval::Entry { parent, .. } => *parent,
                    Inval::Inode(ino) => *ino,
                })
                .filter(|ino| stamped(*ino)),
        );
        if let Some(s) = self.inval.lock().unwrap().as_ref() {
            s(v, wait);
        }
    }

    /// An element stored beside this mount's own writes (an `unsent/` retry): show it now.
    pub fn element_stored(&self, party: PartyId, guid: InstanceGuid, el: DataElement) {
        self.element_changed(party, guid, el)
    }

    /// Uploads and other writes in progress (unmount waits for them).
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Wait until no write is in progress, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let t = Instant::now();
        while self.inflight() > 0 && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn node(&self, ino: u64) -> FsResult<Node> {
        self.tree
            .node(ino)
            .ok_or_else(|| FsError::not_found(format!("inode {ino}")))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.tree.forget(ino, n);
    }

    /// The kernel took a reference through a readdirplus entry.
    pub fn remember(&self, ino: u64) {
        self.tree.remember(ino);
    }

    /// Inodes the kernel holds now (tests).
    pub fn held_inodes(&self) -> usize {
        self.tree.held_inodes()
    }

    pub fn lookup_count(&self, ino: u64) -> u64 {
        self.tree.lookups(ino)
    }

    /// The name an element is shown under, if its instance is cached.
    fn element_name(&self, guid: InstanceGuid, dt: &DataTypeId, id: &ElementId) -> Option<String> {
        self.tree
            .peek_instance(guid)
            .and_then(|e| e.name_of(dt, id).map(String::from))
    }

    /// A human path of a node (logs, sidecars).
    pub fn path_of(&self, node: &Node) -> String {
        match node {
            Node::Root => "/".into(),
            Node::AppMeta => format!("/{APP_METADATA}"),
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. } => {
                self.view_path(node)
            }
            Node::AltinnDir => format!("/{}", layout::ALTINN_DIR),
            Node::ChangeFeed => format!("/{}/{}", layout::ALTINN_DIR, layout::CHANGES),
            Node::Stateless => format!("/{STATELESS}"),
            Node::StatelessType { dt } => format!("/{STATELESS}/{dt}"),
            Node::StatelessFile { dt, name } => format!("/{STATELESS}/{dt}/{name}"),
            Node::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let name = self
                    .element_name(*guid, dt, id)
                    .and_then(|n| layout::json_view_name(&n))
                    .unwrap_or_else(|| format!("{id}.json"));
                format!("/{party}/{guid}/{dt}/{name}")
            }
            Node::Party { party } => format!("/{party}"),
            Node::Instance { party, guid } => format!("/{party}/{guid}"),
            Node::InstanceJson { party, guid } => format!("/{party}/{guid}/{INSTANCE_JSON}"),
            Node::DataTypeDir { party, guid, dt } => format!("/{party}/{guid}/{dt}"),
            Node::Element {
                party,
                guid,
                dt,
                id,
            } => {
                let name = self
                    .element_name(*guid, dt, id)
                    .unwrap_or_else(|| id.to_string());
                format!("/{party}/{guid}/{dt}/{name}")
            }
            Node::Local {
                party, guid, dt, ..
            } => {
                let ino = inode::ino_of(node);
                let name = self.writer.local(ino).map(|l| l.name).unwrap_or_default();
                format!("/{party}/{guid}/{dt}/{name}")
            }
        }
    }

    /// Count an operation that must finish before unmount.
    fn busy(&self) -> BusyGuard<'_> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        BusyGuard(&self.inflight)
    }

    fn data_type(&self, dt: &DataTypeId) -> FsResult<&DataType> {
        self.meta
            .data_type(dt.as_str())
            .ok_or_else(|| FsError::not_found(dt.to_string()))
    }
}

/// The typed id of an element in a server answer; a bad one is EINVAL (and logged).
pub(crate) fn answered_element_id(id: &str, path: &str) -> FsResult<ElementId> {
    ElementId::parse(id).map_err(|e| {
        tracing::warn!("{path}: {e}");
        FsError::new(ErrorKind::Invalid(e.to_string()), path)
    })
}

/// The typed id of an element the server listed; an odd one is logged and left out.
pub(crate) fn element_id(id: &str) -> Option<ElementId> {
    ElementId::parse(id)
        .inspect_err(|e| tracing::warn!("an element left out of the tree: {e}"))
        .ok()
}

struct BusyGuard<'a>(&'a AtomicUsize);
impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
