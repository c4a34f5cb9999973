//! The filesystem core: knows Altinn concepts, not FUSE. `AltinnFs` answers with its own
//! types (`Attr`, `DirEntry`, `FsError`); `crate::fuse` turns them into kernel replies.
//!
//! Listing: one Storage query (paged by the client) fills every directory below it, so `ls -lR`,
//! `find`, `du` and `stat` never cost a request per name. Metadata is fresh for `metadata_ttl`;
//! a directory read after that asks again (one query per party, one GET per instance).

// FsError carries the server's full answer (ProblemDetails, issues) to the one place that
// logs it; its size is deliberate.
#![allow(clippy::result_large_err)]

pub mod cache;
pub mod error;
pub mod inode;
mod instance_ops;
pub mod layout;
mod open;
pub mod read;
mod rename;
pub mod stateless;
mod upload;
pub mod write;

use crate::altinn::client::{AltinnClient, InstanceRef, QueryParams};
use crate::altinn::model::{ApplicationMetadata, DataElement, DataType, Instance};
use bytes::Bytes;
use cache::TtlCache;
pub use error::{ErrorKind, FsError, FsResult};
use inode::{InodeTable, ROOT_INO};
use layout::{Node, APP_METADATA, INSTANCE_JSON, STATELESS};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use write::{Handle, LocalFile, Retry};

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
    pub retry: Retry,
    /// Show `X.json` beside each form data file `X.xml` (SPEC §3).
    pub form_json: bool,
    /// The party of stateless requests (`party: partyid:N`), when one is known.
    pub stateless_party: Option<String>,
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
            retry: Retry::default(),
            form_json: false,
            stateless_party: None,
        }
    }

    pub fn from_options(opts: &crate::cli::MountOptions) -> Result<Self, String> {
        let spool = match &opts.spool_dir {
            Some(d) => d.clone(),
            None => {
                let home = std::env::var_os("HOME").ok_or("HOME is not set; give --spool-dir")?;
                PathBuf::from(home).join(".cache/altinnfs")
            }
        };
        let mut c = Self::new(spool);
        c.read_only = opts.read_only;
        c.metadata_ttl = Duration::from_secs(opts.metadata_ttl);
        c.cache_entries = opts.cache_entries.max(16);
        if let Some(u) = opts.uid {
            c.uid = u;
        }
        if let Some(g) = opts.gid {
            c.gid = g;
        }
        c.file_mode = opts.file_mode & 0o7777;
        c.dir_mode = opts.dir_mode & 0o7777;
        c.parties = opts.party.clone();
        for q in &opts.query {
            let (k, v) = q
                .split_once('=')
                .ok_or_else(|| format!("--query {q}: expected KEY=VALUE"))?;
            c.query.push((k.to_string(), v.to_string()));
        }
        c.hard_delete = opts.hard;
        c.form_json = opts.form_json;
        c.stateless_party = opts
            .stateless_party
            .clone()
            .or_else(|| opts.party.first().cloned());
        if let Some(p) = &c.stateless_party {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "--stateless-party {p}: expected a party id (digits)"
                ));
            }
        }
        c.cache_bytes = opts.cache_size * 1024 * 1024;
        Ok(c)
    }
}

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

/// One instance as cached: the document, the size of `instance.json`, and the file names of
/// each data type directory.
#[derive(Debug)]
pub struct InstEntry {
    pub inst: Instance,
    /// Size of `instance.json`; its bytes are rendered again when read (deterministic), so
    /// a cached listing of many instances does not hold every document twice.
    pub json_len: u64,
    /// data type → (file name, index in `inst.data`)
    pub names: HashMap<String, Vec<(String, usize)>>,
}

impl InstEntry {
    /// The bytes of `instance.json`.
    pub fn render(inst: &Instance) -> Bytes {
        let mut json = serde_json::to_vec_pretty(inst).unwrap_or_default();
        json.push(b'\n');
        Bytes::from(json)
    }

    pub fn json(&self) -> Bytes {
        Self::render(&self.inst)
    }

    pub fn new(inst: Instance, meta: &ApplicationMetadata) -> Self {
        let json_len = Self::render(&inst).len() as u64;
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in inst.data.iter().enumerate() {
            by_type.entry(e.data_type.clone()).or_default().push(i);
        }
        let mut names = HashMap::new();
        for (dt, idx) in by_type {
            let els: Vec<&DataElement> = idx.iter().map(|&i| &inst.data[i]).collect();
            let mut n: Vec<(String, usize)> = layout::assign_names(&els, meta.data_type(&dt))
                .into_iter()
                .map(|(name, j)| (name, idx[j]))
                .collect();
            n.sort();
            names.insert(dt, n);
        }
        Self {
            inst,
            json_len,
            names,
        }
    }
    pub fn element(&self, id: &str) -> Option<&DataElement> {
        self.inst.data.iter().find(|e| e.id == id)
    }
    pub fn find(&self, dt: &str, name: &str) -> Option<&DataElement> {
        self.names
            .get(dt)?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| &self.inst.data[*i])
    }
    pub fn name_of(&self, dt: &str, id: &str) -> Option<&str> {
        self.names
            .get(dt)?
            .iter()
            .find(|(_, i)| self.inst.data[*i].id == id)
            .map(|(n, _)| n.as_str())
    }
    pub fn count(&self, dt: &str) -> usize {
        self.inst.data.iter().filter(|e| e.data_type == dt).count()
    }
}

struct PartyListing {
    at: Instant,
    guids: BTreeSet<String>,
}

struct State {
    inodes: InodeTable,
    instances: TtlCache<String, Arc<InstEntry>>,
    parties: HashMap<String, PartyListing>,
    root: Option<(Instant, BTreeSet<String>)>,
    org_mode: Option<bool>,
    /// (party, name given to mkdir) → instance GUID
    aliases: HashMap<(String, String), String>,
    negative: TtlCache<(u64, String), ()>,
    locals: HashMap<u64, LocalFile>,
    handles: HashMap<u64, Handle>,
    /// ino → size of an open, written handle (so stat agrees with the writer)
    writing: HashMap<u64, u64>,
    next_fh: u64,
    next_local: u64,
}

pub struct AltinnFs<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    cfg: FsConfig,
    meta: ApplicationMetadata,
    meta_json: Bytes,
    st: Mutex<State>,
    listing: tokio::sync::Mutex<()>,
    blobs: read::BlobCache,
    spool: PathBuf,
    unsent: PathBuf,
    started: SystemTime,
    inval: Mutex<Option<InvalSink>>,
    inflight: AtomicUsize,
    salt: u64,
    /// `.stateless/` objects held in memory (SPEC §5).
    stateless: stateless::StatelessStore,
    /// JSON views of form data (form_json): element id → (lastChanged, size, bytes).
    json_views: Mutex<HashMap<String, JsonView>>,
}

type JsonView = (Option<chrono::DateTime<chrono::Utc>>, i64, Bytes);

/// Create a directory (and parents) with mode 0700.
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn to_system(t: Option<chrono::DateTime<chrono::Utc>>, dflt: SystemTime) -> SystemTime {
    t.map(SystemTime::from).unwrap_or(dflt)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// Build the core. Fetches the app metadata first, so a bad URL, token or app fails here.
    pub async fn new(client: Arc<C>, cfg: FsConfig) -> FsResult<Self> {
        let meta = cfg
            .retry
            .run("GET applicationmetadata", || client.application_metadata())
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
        let st = State {
            inodes: InodeTable::new(),
            instances: TtlCache::new(cfg.cache_entries, cfg.metadata_ttl),
            parties: HashMap::new(),
            root: None,
            org_mode: cfg.org_mode,
            aliases: HashMap::new(),
            negative: TtlCache::new(cfg.cache_entries.min(10_000), cfg.metadata_ttl),
            locals: HashMap::new(),
            handles: HashMap::new(),
            writing: HashMap::new(),
            next_fh: 1,
            next_local: 1,
        };
        Ok(Self {
            client,
            meta,
            meta_json: Bytes::from(meta_json),
            st: Mutex::new(st),
            listing: tokio::sync::Mutex::new(()),
            blobs,
            spool,
            unsent,
            started: SystemTime::now(),
            inval: Mutex::new(None),
            inflight: AtomicUsize::new(0),
            salt: rand::random::<u32>() as u64,
            stateless: stateless::StatelessStore::new(),
            json_views: Mutex::new(HashMap::new()),
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
        &self.unsent
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
        if let Some(s) = self.inval.lock().unwrap().as_ref() {
            s(v, wait);
        }
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
        self.st
            .lock()
            .unwrap()
            .inodes
            .get(ino)
            .cloned()
            .ok_or_else(|| FsError::not_found(format!("inode {ino}")))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.st.lock().unwrap().inodes.forget(ino, n);
    }

    /// The kernel took a reference through a readdirplus entry.
    pub fn remember(&self, ino: u64) {
        self.st.lock().unwrap().inodes.inc(ino);
    }

    pub fn lookup_count(&self, ino: u64) -> u64 {
        self.st.lock().unwrap().inodes.lookups(ino)
    }

    /// A human path of a node (logs, sidecars).
    pub fn path_of(&self, node: &Node) -> String {
        let st = self.st.lock().unwrap();
        Self::path_locked(&st, node)
    }

    fn path_locked(st: &State, node: &Node) -> String {
        match node {
            Node::Root => "/".into(),
            Node::AppMeta => format!("/{APP_METADATA}"),
            Node::Stateless => format!("/{STATELESS}"),
            Node::StatelessType { dt } => format!("/{STATELESS}/{dt}"),
            Node::StatelessFile { dt, name } => format!("/{STATELESS}/{dt}/{name}"),
            Node::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let name = st
                    .instances
                    .peek(guid)
                    .and_then(|e| e.name_of(dt, id).and_then(layout::json_view_name))
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
                let name = st
                    .instances
                    .peek(guid)
                    .and_then(|e| e.name_of(dt, id).map(String::from))
                    .unwrap_or_else(|| id.clone());
                format!("/{party}/{guid}/{dt}/{name}")
            }
            Node::Local {
                party, guid, dt, ..
            } => {
                let ino = inode::ino_of(node);
                let name = st
                    .locals
                    .get(&ino)
                    .map(|l| l.name.clone())
                    .unwrap_or_default();
                format!("/{party}/{guid}/{dt}/{name}")
            }
        }
    }

    // ---------------------------------------------------------------- listing

    fn base_query(&self) -> QueryParams {
        let mut q: QueryParams = self.cfg.query.clone();
        if !q.iter().any(|(k, _)| k == "status.isSoftDeleted") {
            q.push(("status.isSoftDeleted".into(), "false".into()));
        }
        q
    }

    /// Put instances from a listing into the cache and their parties' listings.
    fn store_instances(&self, party_filter: Option<&str>, instances: Vec<Instance>) {
        let now = Instant::now();
        let mut st = self.st.lock().unwrap();
        let mut by_party: HashMap<String, BTreeSet<String>> = HashMap::new();
        if let Some(p) = party_filter {
            by_party.entry(p.to_string()).or_default();
        }
        for inst in instances {
            let party = inst.party_id();
            let guid = inst.guid().to_string();
            by_party.entry(party).or_default().insert(guid.clone());
            st.instances
                .insert(guid, Arc::new(InstEntry::new(inst, &self.meta)));
        }
        for (party, guids) in by_party {
            st.parties.insert(party, PartyListing { at: now, guids });
        }
    }

    async fn list_party(&self, party: &str) -> FsResult<()> {
        let mut q = self.base_query();
        q.push(("instanceOwner.partyId".into(), party.to_string()));
        let insts = self
            .cfg
            .retry
            .run("GET instances", || self.client.query_instances(&q))
            .await
            .map_err(|e| FsError::server(format!("/{party}"), "GET instances", e))?;
        self.store_instances(Some(party), insts);
        Ok(())
    }

    /// The parties of the root directory, listing everything when the listing is stale.
    async fn root_parties(&self) -> FsResult<BTreeSet<String>> {
        let fresh = |st: &State| {
            st.root
                .as_ref()
                .filter(|(t, _)| t.elapsed() < self.cfg.metadata_ttl)
                .map(|(_, p)| p.clone())
        };
        if let Some(p) = fresh(&self.st.lock().unwrap()) {
            return Ok(p);
        }
        let _g = self.listing.lock().await;
        if let Some(p) = fresh(&self.st.lock().unwrap()) {
            return Ok(p);
        }
        let parties = self.list_everything().await?;
        self.st.lock().unwrap().root = Some((Instant::now(), parties.clone()));
        Ok(parties)
    }

    async fn list_everything(&self) -> FsResult<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        if !self.cfg.parties.is_empty() {
            for p in &self.cfg.parties {
                self.list_party(p).await?;
                out.insert(p.clone());
            }
            return Ok(out);
        }
        let mode = self.st.lock().unwrap().org_mode;
        if mode != Some(false) {
            let q = self.base_query();
            match self
                .cfg
                .retry
                .run("GET instances", || self.client.query_instances(&q))
                .await
            {
                Ok(insts) => {
                    self.st.lock().unwrap().org_mode = Some(true);
                    for i in &insts {
                        out.insert(i.party_id());
                    }
                    let now = Instant::now();
                    {
                        // Parties that no longer have instances lose their listing.
                        let mut st = self.st.lock().unwrap();
                        for l in st.parties.values_mut() {
                            l.guids.clear();
                            l.at = now;
                        }
                    }
                    self.store_instances(None, insts);
                    return Ok(out);
                }
                Err(e)
                    if mode.is_none()
                        && matches!(e.status(), Some(400) | Some(401) | Some(403)) =>
                {
                    tracing::info!("app-wide query refused ({e}); listing the user's parties");
                    self.st.lock().unwrap().org_mode = Some(false);
                }
                Err(e) => return Err(FsError::server("/", "GET instances", e)),
            }
        }
        let parties = self
            .cfg
            .retry
            .run("GET parties", || self.client.parties())
            .await
            .map_err(|e| FsError::server("/", "GET parties", e))?;
        let mut ids = Vec::new();
        for p in &parties {
            if !p.is_deleted {
                ids.push(p.party_id.to_string());
            }
            for c in &p.child_parties {
                if !c.is_deleted {
                    ids.push(c.party_id.to_string());
                }
            }
        }
        for id in ids {
            match self.list_party(&id).await {
                Ok(()) => {
                    out.insert(id);
                }
                Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT) => {
                    tracing::debug!("party {id} not listable: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The instance GUIDs of a party, asking the server when its listing is stale or absent.
    async fn party_guids(&self, party: &str, need_fresh: bool) -> FsResult<BTreeSet<String>> {
        {
            let st = self.st.lock().unwrap();
            if let Some(l) = st.parties.get(party) {
                if !need_fresh || l.at.elapsed() < self.cfg.metadata_ttl {
                    return Ok(l.guids.clone());
                }
            }
        }
        self.list_party(party).await?;
        Ok(self
            .st
            .lock()
            .unwrap()
            .parties
            .get(party)
            .map(|l| l.guids.clone())
            .unwrap_or_default())
    }

    /// One instance, from the cache (any age unless `fresh`) or the server.
    async fn instance(&self, party: &str, guid: &str, fresh: bool) -> FsResult<Arc<InstEntry>> {
        {
            let mut st = self.st.lock().unwrap();
            if let Some((e, is_fresh)) = st.instances.get_any(&guid.to_string()) {
                if is_fresh || !fresh {
                    return Ok(e.clone());
                }
            }
        }
        let r = InstanceRef::new(party, guid);
        let inst = self
            .cfg
            .retry
            .run("GET instance", || self.client.get_instance(&r))
            .await
            .map_err(|e| FsError::server(format!("/{party}/{guid}"), "GET instance", e))?;
        Ok(self.put_instance(inst).0)
    }

    /// Cache a new state of an instance; returns it and the invalidations its names need.
    fn put_instance(&self, inst: Instance) -> (Arc<InstEntry>, Vec<Inval>) {
        let guid = inst.guid().to_string();
        let party = inst.party_id();
        let entry = Arc::new(InstEntry::new(inst, &self.meta));
        let mut inval = Vec::new();
        let mut st = self.st.lock().unwrap();
        if let Some(old) = st.instances.peek(&guid).cloned() {
            for (dt, names) in &old.names {
                let dir = inode::ino_of(&Node::DataTypeDir {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                });
                for (name, i) in names {
                    let id = &old.inst.data[*i].id;
                    let same = entry.find(dt, name).is_some_and(|e| &e.id == id);
                    if !same {
                        inval.push(Inval::Entry {
                            parent: dir,
                            name: name.clone(),
                        });
                    }
                }
            }
            for e in &entry.inst.data {
                let changed = old.element(&e.id).is_none_or(|o| {
                    o.last_changed != e.last_changed || o.size != e.size || o.locked != e.locked
                });
                if changed {
                    inval.push(Inval::Inode(inode::ino_of(&Node::Element {
                        party: party.clone(),
                        guid: guid.clone(),
                        dt: e.data_type.clone(),
                        id: e.id.clone(),
                    })));
                    if self.cfg.form_json {
                        inval.push(Inval::Inode(inode::ino_of(&Node::FormJson {
                            party: party.clone(),
                            guid: guid.clone(),
                            dt: e.data_type.clone(),
                            id: e.id.clone(),
                        })));
                    }
                }
            }
            inval.push(Inval::Inode(inode::ino_of(&Node::InstanceJson {
                party: party.clone(),
                guid: guid.clone(),
            })));
        }
        st.instances.insert(guid.clone(), entry.clone());
        if let Some(l) = st.parties.get_mut(&party) {
            l.guids.insert(guid);
        }
        (entry, inval)
    }

    // ---------------------------------------------------------------- attributes

    fn dir_attr(&self, ino: u64, mtime: SystemTime, crtime: SystemTime) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            perm: self.cfg.dir_mode as u16,
            nlink: 2,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            mtime,
            ctime: mtime,
            crtime,
        }
    }

    fn file_attr(
        &self,
        ino: u64,
        size: u64,
        writable: bool,
        mtime: SystemTime,
        crtime: SystemTime,
    ) -> Attr {
        let perm = if writable && !self.cfg.read_only {
            self.cfg.file_mode
        } else {
            self.cfg.file_mode & !0o222
        };
        Attr {
            ino,
            kind: Kind::File,
            size,
            perm: perm as u16,
            nlink: 1,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            mtime,
            ctime: mtime,
            crtime,
        }
    }

    fn element_attr(&self, ino: u64, inst: &Instance, el: &DataElement) -> Attr {
        let writable = !el.locked && inst.is_active();
        let size = self
            .st
            .lock()
            .unwrap()
            .writing
            .get(&ino)
            .copied()
            .unwrap_or(el.size.max(0) as u64);
        let m = to_system(el.last_changed, self.started);
        self.file_attr(ino, size, writable, m, to_system(el.created, m))
    }

    /// Attributes of `node`, reported under inode number `ino`.
    async fn attr_of(&self, ino: u64, node: &Node) -> FsResult<Attr> {
        let t0 = self.started;
        Ok(match node {
            Node::Root | Node::Stateless | Node::StatelessType { .. } | Node::Party { .. } => {
                self.dir_attr(ino, t0, t0)
            }
            Node::AppMeta => {
                let m = to_system(self.meta.last_changed, t0);
                self.file_attr(
                    ino,
                    self.meta_json.len() as u64,
                    false,
                    m,
                    to_system(self.meta.created, m),
                )
            }
            Node::Instance { party, guid } | Node::DataTypeDir { party, guid, .. } => {
                let e = self.instance(party, guid, false).await?;
                let m = to_system(e.inst.last_changed, t0);
                self.dir_attr(ino, m, to_system(e.inst.created, m))
            }
            Node::InstanceJson { party, guid } => {
                let e = self.instance(party, guid, false).await?;
                let m = to_system(e.inst.last_changed, t0);
                self.file_attr(ino, e.json_len, false, m, to_system(e.inst.created, m))
            }
            Node::Element {
                party, guid, id, ..
            } => {
                let mut e = self.instance(party, guid, false).await?;
                if e.element(id).is_none() {
                    e = self.instance(party, guid, true).await?;
                }
                let el = e
                    .element(id)
                    .ok_or_else(|| FsError::not_found(self.path_of(node)))?;
                self.element_attr(ino, &e.inst, el)
            }
            Node::Local { .. } => {
                let st = self.st.lock().unwrap();
                let l = st
                    .locals
                    .get(&inode::ino_of(node))
                    .ok_or_else(|| FsError::not_found(String::new()))?;
                let size = st.writing.get(&ino).copied().unwrap_or(l.len);
                self.file_attr(ino, size, true, l.mtime, l.created)
            }
            Node::StatelessFile { dt, name } => {
                let writing = self.st.lock().unwrap().writing.get(&ino).copied();
                let size = match writing {
                    Some(n) => n,
                    None => match self.stateless_bytes(dt, name).await? {
                        Some(b) => b.len() as u64,
                        None if self.stateless.is_pending(dt, name) => 0,
                        None => return Err(FsError::not_found(self.path_of(node))),
                    },
                };
                self.file_attr(ino, size, true, t0, t0)
            }
            Node::FormJson {
                party, guid, id, ..
            } => {
                let mut e = self.instance(party, guid, false).await?;
                if e.element(id).is_none() {
                    e = self.instance(party, guid, true).await?;
                }
                let el = e
                    .element(id)
                    .ok_or_else(|| FsError::not_found(self.path_of(node)))?;
                let mut a = self.element_attr(ino, &e.inst, el);
                let writing = self.st.lock().unwrap().writing.get(&ino).copied();
                a.size = match writing {
                    Some(n) => n,
                    None => self.json_view(party, guid, el).await?.len() as u64,
                };
                a
            }
        })
    }

    /// The JSON view of a form data element (App API GET with `Accept: application/json`),
    /// cached while the element's `lastChanged` and `size` are unchanged.
    async fn json_view(&self, party: &str, guid: &str, el: &DataElement) -> FsResult<Bytes> {
        if let Some((lc, size, b)) = self.json_views.lock().unwrap().get(&el.id) {
            if *lc == el.last_changed && *size == el.size {
                return Ok(b.clone());
            }
        }
        let r = InstanceRef::new(party, guid);
        let b = self
            .cfg
            .retry
            .run("GET data (json)", || {
                self.client.get_form_data(&r, &el.id, "application/json")
            })
            .await
            .map_err(|e| {
                FsError::server(
                    format!("/{party}/{guid}/{}", el.data_type),
                    "GET data (Accept: application/json)",
                    e,
                )
            })?;
        let mut views = self.json_views.lock().unwrap();
        if views.len() >= self.cfg.cache_entries {
            views.clear();
        }
        views.insert(el.id.clone(), (el.last_changed, el.size, b.clone()));
        Ok(b)
    }

    /// True for files whose bytes are made per read (`.stateless/`): the kernel reads them
    /// directly instead of through its page cache.
    pub fn direct_io(&self, ino: u64) -> bool {
        matches!(self.node(ino), Ok(Node::StatelessFile { .. }))
    }

    pub async fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let node = self.node(ino)?;
        self.attr_of(ino, &node).await
    }

    // ---------------------------------------------------------------- lookup

    /// The child `name` of `parent`, as a node (no kernel reference taken).
    async fn child(&self, parent: &Node, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        match parent {
            Node::Root => {
                if name == APP_METADATA {
                    return Ok(Node::AppMeta);
                }
                if name == STATELESS {
                    return Ok(Node::Stateless);
                }
                if !self.cfg.parties.is_empty() && !self.cfg.parties.iter().any(|p| p == name) {
                    return Err(nf());
                }
                let known = {
                    let st = self.st.lock().unwrap();
                    st.root.as_ref().is_some_and(|(_, p)| p.contains(name))
                        || st.parties.contains_key(name)
                };
                if known {
                    return Ok(Node::Party {
                        party: name.to_string(),
                    });
                }
                // Not listed: a party id can still be entered by name (SPEC §2).
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) || name.len() > 18 {
                    return Err(nf());
                }
                match self.list_party(name).await {
                    Ok(()) => Ok(Node::Party {
                        party: name.to_string(),
                    }),
                    Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT | libc::EINVAL) => {
                        tracing::debug!("party {name}: {e}");
                        Err(nf())
                    }
                    Err(e) => Err(e),
                }
            }
            Node::Party { party } => {
                let alias = self
                    .st
                    .lock()
                    .unwrap()
                    .aliases
                    .get(&(party.clone(), name.to_string()))
                    .cloned();
                if let Some(guid) = alias {
                    return Ok(Node::Instance {
                        party: party.clone(),
                        guid,
                    });
                }
                let guids = self.party_guids(party, false).await?;
                if guids.contains(name) {
                    return Ok(Node::Instance {
                        party: party.clone(),
                        guid: name.to_string(),
                    });
                }
                if uuid::Uuid::parse_str(name).is_err() {
                    return Err(nf());
                }
                // Not in the listing (made elsewhere since): one GET of that instance, not a
                // re-list; the negative cache keeps repeated misses from asking again.
                match self.instance(party, name, true).await {
                    Ok(e)
                        if e.inst.party_id() == *party
                            && e.inst.status.hard_deleted.is_none()
                            && e.inst.status.soft_deleted.is_none() =>
                    {
                        if let Some(l) = self.st.lock().unwrap().parties.get_mut(party) {
                            l.guids.insert(name.to_string());
                        }
                        Ok(Node::Instance {
                            party: party.clone(),
                            guid: name.to_string(),
                        })
                    }
                    Ok(_) => Err(nf()),
                    Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT) => Err(nf()),
                    Err(e) => Err(e),
                }
            }
            Node::Instance { party, guid } => {
                if name == INSTANCE_JSON {
                    return Ok(Node::InstanceJson {
                        party: party.clone(),
                        guid: guid.clone(),
                    });
                }
                if self.meta.data_type(name).is_some() {
                    return Ok(Node::DataTypeDir {
                        party: party.clone(),
                        guid: guid.clone(),
                        dt: name.to_string(),
                    });
                }
                Err(nf())
            }
            Node::DataTypeDir { party, guid, dt } => {
                if let Some(n) = self.local_named(guid, dt, name) {
                    return Ok(n);
                }
                let mut e = self.instance(party, guid, false).await?;
                let mut found = e.find(dt, name).map(|el| el.id.clone());
                if found.is_none() {
                    let stale = self.st.lock().unwrap().instances.get_fresh(guid).is_none();
                    if stale {
                        e = self.instance(party, guid, true).await?;
                        found = e.find(dt, name).map(|el| el.id.clone());
                    }
                }
                match found {
                    Some(id) => Ok(Node::Element {
                        party: party.clone(),
                        guid: guid.clone(),
                        dt: dt.clone(),
                        id,
                    }),
                    None => self
                        .json_view_named(&e, party, guid, dt, name)
                        .ok_or_else(nf),
                }
            }
            Node::Stateless => {
                if self.meta.data_type(name).is_some_and(|d| d.is_form()) {
                    Ok(Node::StatelessType {
                        dt: name.to_string(),
                    })
                } else {
                    Err(nf())
                }
            }
            Node::StatelessType { dt } => self.stateless_child(dt, name).ok_or_else(nf),
            Node::AppMeta
            | Node::InstanceJson { .. }
            | Node::Element { .. }
            | Node::StatelessFile { .. }
            | Node::FormJson { .. }
            | Node::Local { .. } => Err(FsError::new(ErrorKind::NotDir, name.to_string())),
        }
    }

    /// With form_json: `X.json` names the JSON view of the form data element `X.xml`, unless an
    /// element or a local file has that name itself.
    fn json_view_named(
        &self,
        e: &InstEntry,
        party: &str,
        guid: &str,
        dt: &str,
        name: &str,
    ) -> Option<Node> {
        if !self.cfg.form_json || !self.meta.data_type(dt).is_some_and(|d| d.is_form()) {
            return None;
        }
        let (stem, ext) = layout::split_ext(name);
        if !ext.eq_ignore_ascii_case(".json") {
            return None;
        }
        let names = e.names.get(dt)?;
        let (_, i) = names.iter().find(|(n, _)| {
            let (s, x) = layout::split_ext(n);
            s == stem && x.eq_ignore_ascii_case(".xml")
        })?;
        if self.local_named(guid, dt, name).is_some() {
            return None;
        }
        Some(Node::FormJson {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
            id: e.inst.data[*i].id.clone(),
        })
    }

    fn local_named(&self, guid: &str, dt: &str, name: &str) -> Option<Node> {
        let st = self.st.lock().unwrap();
        st.locals
            .values()
            .find(|l| l.guid == guid && l.dt == dt && l.name == name)
            .map(|l| l.node())
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let pnode = self.node(parent)?;
        let key = (parent, name.to_string());
        if self.st.lock().unwrap().negative.get_fresh(&key).is_some() {
            return Err(FsError::not_found(name.to_string()));
        }
        let node = match self.child(&pnode, name).await {
            Ok(n) => n,
            Err(e) => {
                if e.errno() == libc::ENOENT {
                    self.st.lock().unwrap().negative.insert(key, ());
                }
                return Err(e);
            }
        };
        let ino = inode::ino_of(&node);
        let attr = self.attr_of(ino, &node).await?;
        self.st.lock().unwrap().inodes.lookup(&node);
        Ok(attr)
    }

    fn clear_negative(&self, parent: u64, name: &str) {
        self.st
            .lock()
            .unwrap()
            .negative
            .remove(&(parent, name.to_string()));
    }

    // ---------------------------------------------------------------- readdir

    /// Every entry of a directory, `.` and `..` first, with attributes (for readdirplus).
    pub async fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let node = self.node(ino)?;
        let mut kids: Vec<(String, Node)> = Vec::new();
        let parent_ino;
        match &node {
            Node::Root => {
                parent_ino = ROOT_INO;
                kids.push((APP_METADATA.into(), Node::AppMeta));
                kids.push((STATELESS.into(), Node::Stateless));
                for p in self.root_parties().await? {
                    kids.push((p.clone(), Node::Party { party: p }));
                }
            }
            Node::Stateless => {
                parent_ino = ROOT_INO;
                for d in self.meta.data_types.iter().filter(|d| d.is_form()) {
                    kids.push((d.id.clone(), Node::StatelessType { dt: d.id.clone() }));
                }
            }
            Node::StatelessType { dt } => {
                parent_ino = inode::ino_of(&Node::Stateless);
                for name in self.stateless.names(dt) {
                    kids.push((
                        name.clone(),
                        Node::StatelessFile {
                            dt: dt.clone(),
                            name,
                        },
                    ));
                }
            }
            Node::Party { party } => {
                parent_ino = ROOT_INO;
                for g in self.party_guids(party, true).await? {
                    kids.push((
                        g.clone(),
                        Node::Instance {
                            party: party.clone(),
                            guid: g,
                        },
                    ));
                }
            }
            Node::Instance { party, guid } => {
                parent_ino = inode::ino_of(&Node::Party {
                    party: party.clone(),
                });
                self.instance(party, guid, true).await?;
                kids.push((
                    INSTANCE_JSON.into(),
                    Node::InstanceJson {
                        party: party.clone(),
                        guid: guid.clone(),
                    },
                ));
                for d in &self.meta.data_types {
                    kids.push((
                        d.id.clone(),
                        Node::DataTypeDir {
                            party: party.clone(),
                            guid: guid.clone(),
                            dt: d.id.clone(),
                        },
                    ));
                }
            }
            Node::DataTypeDir { party, guid, dt } => {
                parent_ino = inode::ino_of(&Node::Instance {
                    party: party.clone(),
                    guid: guid.clone(),
                });
                let e = self.instance(party, guid, true).await?;
                for (name, i) in e.names.get(dt).into_iter().flatten() {
                    kids.push((
                        name.clone(),
                        Node::Element {
                            party: party.clone(),
                            guid: guid.clone(),
                            dt: dt.clone(),
                            id: e.inst.data[*i].id.clone(),
                        },
                    ));
                }
                let st = self.st.lock().unwrap();
                for l in st
                    .locals
                    .values()
                    .filter(|l| l.guid == *guid && l.dt == *dt)
                {
                    kids.push((l.name.clone(), l.node()));
                }
                drop(st);
                if self.cfg.form_json {
                    let views: Vec<(String, Node)> = e
                        .names
                        .get(dt)
                        .into_iter()
                        .flatten()
                        .filter_map(|(n, _)| layout::json_view_name(n))
                        .filter(|j| !kids.iter().any(|(k, _)| k == j))
                        .filter_map(|j| {
                            let n = self.json_view_named(&e, party, guid, dt, &j)?;
                            Some((j, n))
                        })
                        .collect();
                    kids.extend(views);
                }
            }
            _ => return Err(FsError::new(ErrorKind::NotDir, self.path_of(&node))),
        }
        let mut out = Vec::with_capacity(kids.len() + 2);
        out.push(DirEntry {
            name: ".".into(),
            attr: self.attr_of(ino, &node).await?,
        });
        let pnode = self.node(parent_ino).unwrap_or(Node::Root);
        out.push(DirEntry {
            name: "..".into(),
            attr: self
                .attr_of(parent_ino, &pnode)
                .await
                .unwrap_or(out[0].attr),
        });
        for (name, n) in kids {
            let cino = inode::ino_of(&n);
            match self.attr_of(cino, &n).await {
                Ok(attr) => {
                    self.st.lock().unwrap().inodes.register(&n);
                    out.push(DirEntry { name, attr });
                }
                Err(e) if e.errno() == libc::ENOENT => {}
                // A generated view that cannot be fetched now must not hide the real files.
                Err(e) if matches!(n, Node::FormJson { .. } | Node::StatelessFile { .. }) => {
                    tracing::warn!("{name} left out of the listing: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- xattrs

    fn xattrs(&self, node: &Node, e: Option<&InstEntry>) -> Vec<(String, String)> {
        let mut v: Vec<(&str, Option<String>)> = Vec::new();
        let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
        match (node, e) {
            (Node::Element { id, .. }, Some(e)) => {
                if let Some(el) = e.element(id) {
                    v.push(("id", Some(el.id.clone())));
                    v.push(("dataType", Some(el.data_type.clone())));
                    v.push(("contentType", el.content_type.clone()));
                    v.push(("created", ts(el.created)));
                    v.push(("createdBy", el.created_by.clone()));
                    v.push(("lastChanged", ts(el.last_changed)));
                    v.push(("lastChangedBy", el.last_changed_by.clone()));
                    v.push(("locked", Some(el.locked.to_string())));
                    v.push(("fileScanResult", el.file_scan_result.clone()));
                    v.push(("tags", Some(el.tags.join(","))));
                }
            }
            (Node::Instance { .. }, Some(e)) => {
                let i = &e.inst;
                v.push(("id", Some(i.id.clone())));
                let p = i.process.as_ref();
                v.push((
                    "process.currentTask",
                    p.and_then(|p| p.current_task.as_ref())
                        .and_then(|t| t.element_id.clone()),
                ));
                v.push(("process.ended", ts(p.and_then(|p| p.ended))));
                v.push(("status.archived", ts(i.status.archived)));
                v.push(("lastChanged", ts(i.last_changed)));
            }
            (Node::Local { dt, .. }, _) => {
                v.push(("pending", Some("true".into())));
                v.push(("dataType", Some(dt.clone())));
            }
            _ => {}
        }
        v.into_iter()
            .filter_map(|(k, val)| val.map(|val| (format!("user.altinn.{k}"), val)))
            .collect()
    }

    async fn xattr_list(&self, ino: u64) -> FsResult<Vec<(String, String)>> {
        let node = self.node(ino)?;
        let e = match &node {
            Node::Element { party, guid, .. }
            | Node::FormJson { party, guid, .. }
            | Node::Instance { party, guid } => Some(self.instance(party, guid, false).await?),
            _ => None,
        };
        if let Node::FormJson {
            party,
            guid,
            dt,
            id,
        } = &node
        {
            // The element's attributes, in its JSON form.
            let el = Node::Element {
                party: party.clone(),
                guid: guid.clone(),
                dt: dt.clone(),
                id: id.clone(),
            };
            let mut v = self.xattrs(&el, e.as_deref());
            for (k, val) in v.iter_mut() {
                if k == "user.altinn.contentType" {
                    *val = "application/json".into();
                }
            }
            return Ok(v);
        }
        Ok(self.xattrs(&node, e.as_deref()))
    }

    pub async fn listxattr(&self, ino: u64) -> FsResult<Vec<String>> {
        Ok(self
            .xattr_list(ino)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    pub async fn getxattr(&self, ino: u64, name: &str) -> FsResult<Vec<u8>> {
        self.xattr_list(ino)
            .await?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_bytes())
            .ok_or_else(|| FsError::new(ErrorKind::NoAttr, name.to_string()))
    }

    /// `user.altinn.confirm=complete` and `user.altinn.process=next[:ACTION]` on an instance
    /// directory run those actions; every other attribute is read-only.
    pub async fn setxattr(&self, ino: u64, name: &str, value: &[u8]) -> FsResult<()> {
        let node = self.node(ino)?;
        let path = self.path_of(&node);
        let value = String::from_utf8_lossy(value).trim().to_string();
        let Node::Instance { party, guid } = &node else {
            return Err(FsError::new(ErrorKind::AttrNotSupported, path));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let r = InstanceRef::new(party.clone(), guid.clone());
        let _w = self.busy();
        match (name, value.as_str()) {
            ("user.altinn.confirm", "complete") => {
                let inst = self
                    .client
                    .complete_instance(&r)
                    .await
                    .map_err(|e| FsError::server(&path, "POST complete", e))?;
                let (_, inv) = self.put_instance(inst);
                self.notify(inv);
            }
            ("user.altinn.process", v) if v == "next" || v.starts_with("next:") => {
                let action = v.strip_prefix("next:").filter(|a| !a.is_empty());
                self.client.process_next(&r, action).await.map_err(|e| {
                    let e = FsError::server(&path, "PUT process/next", e);
                    if let ErrorKind::Server { err, .. } = &e.kind {
                        for i in err.issue_codes() {
                            tracing::warn!("{path}: process/next validation issue: {i}");
                        }
                        if matches!(err.status(), Some(400) | Some(403) | Some(409)) {
                            return FsError::refused(&path, format!("process/next refused: {err}"));
                        }
                    }
                    e
                })?;
                let inst = self
                    .cfg
                    .retry
                    .run("GET instance", || self.client.get_instance(&r))
                    .await
                    .map_err(|e| FsError::server(&path, "GET instance", e))?;
                let (_, inv) = self.put_instance(inst);
                self.notify(inv);
            }
            ("user.altinn.confirm", _) | ("user.altinn.process", _) => {
                return Err(FsError::new(
                    ErrorKind::Invalid(format!("{name}: unknown value {value:?}")),
                    path,
                ))
            }
            _ => return Err(FsError::new(ErrorKind::AttrNotSupported, path)),
        }
        Ok(())
    }

    /// Count an operation that must finish before unmount.
    fn busy(&self) -> BusyGuard<'_> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        BusyGuard(&self.inflight)
    }

    fn data_type(&self, dt: &str) -> FsResult<&DataType> {
        self.meta
            .data_type(dt)
            .ok_or_else(|| FsError::not_found(dt.to_string()))
    }
}

struct BusyGuard<'a>(&'a AtomicUsize);
impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
