//! SPEC §4 writes: checks at create before a byte moves, spool files (0600), maxSize as bytes
//! arrive, upload on flush/fsync/release (POST new, PUT existing), local pending files,
//! rename inside a data type directory, unlink, instance mkdir/rmdir, and `unsent/`.

use super::*;
use crate::altinn::client::{AltinnError, UploadBody};
use crate::altinn::rules;
use std::future::Future;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Retries with exponential backoff for idempotent requests (GET/PUT/DELETE), honouring
/// `Retry-After`, on network errors, 5xx and 429.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    pub base: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(200),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl Retry {
    pub fn wait(&self, attempt: u32, e: &AltinnError) -> Duration {
        let ra = match e {
            AltinnError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        ra.unwrap_or(self.base * 2u32.pow(attempt.min(10)))
            .min(self.max_wait)
    }

    pub async fn run<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, AltinnError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AltinnError>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && attempt + 1 < self.attempts => {
                    let wait = self.wait(attempt, &e);
                    tracing::info!("{what}: {e}; retry in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A file that exists only in this mount: created and not uploaded yet (empty, or with a
/// temporary name), marked by `user.altinn.pending`.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub party: String,
    pub guid: String,
    pub dt: String,
    pub local: u64,
    pub name: String,
    pub spool: PathBuf,
    pub len: u64,
    pub created: SystemTime,
    pub mtime: SystemTime,
    pub writers: usize,
}

impl LocalFile {
    pub fn node(&self) -> Node {
        Node::Local {
            party: self.party.clone(),
            guid: self.guid.clone(),
            dt: self.dt.clone(),
            local: self.local,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Existing {
        party: String,
        guid: String,
        dt: String,
        id: String,
    },
    Local {
        ino: u64,
    },
    /// `.stateless/<dt>/<name>`: calculated on close, held in memory.
    Stateless {
        dt: String,
        name: String,
    },
    /// `X.json` of a form data element: PUT as JSON on close.
    FormJson {
        party: String,
        guid: String,
        dt: String,
        id: String,
    },
}

pub struct WriteHandle {
    pub ino: u64,
    pub target: Target,
    pub file: std::fs::File,
    pub spool: PathBuf,
    pub len: u64,
    pub dirty: bool,
    pub failed: Option<FsError>,
    pub max: Option<u64>,
    /// Delete the spool at release (true unless it belongs to a local file).
    pub owns_spool: bool,
}

#[derive(Clone)]
pub enum Handle {
    Static(Bytes),
    Blob(Arc<read::Blob>),
    File(Arc<std::fs::File>),
    Write(Arc<tokio::sync::Mutex<WriteHandle>>),
}

fn spool_err(path: &str, e: std::io::Error) -> FsError {
    FsError::io(path, e)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    fn new_spool(&self) -> std::io::Result<(PathBuf, std::fs::File)> {
        let p = self
            .spool
            .join(format!("spool-{}", uuid::Uuid::new_v4().simple()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)?;
        Ok((p, f))
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let mut st = self.st.lock().unwrap();
        let fh = st.next_fh;
        st.next_fh += 1;
        st.handles.insert(fh, h);
        fh
    }

    fn handle(&self, fh: u64) -> FsResult<Handle> {
        self.st
            .lock()
            .unwrap()
            .handles
            .get(&fh)
            .cloned()
            .ok_or_else(|| FsError::new(ErrorKind::Invalid(format!("no open file {fh}")), ""))
    }

    fn instance_ref(party: &str, guid: &str) -> InstanceRef {
        InstanceRef::new(party, guid)
    }

    /// Refusals that apply to every change inside an instance.
    fn check_writable(&self, path: &str, inst: &Instance) -> FsResult<()> {
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        if !inst.is_active() {
            return Err(FsError::refused(
                path,
                "the instance is archived or deleted",
            ));
        }
        Ok(())
    }

    /// The data type accepts new elements from this caller (contributors, user create).
    fn check_type_writable(&self, path: &str, dt: &DataType) -> FsResult<()> {
        let org = self.st.lock().unwrap().org_mode == Some(true);
        let contributors = dt
            .allowed_contributers
            .as_ref()
            .filter(|l| !l.is_empty())
            .or(dt.allowed_contributors.as_ref())
            .filter(|l| !l.is_empty());
        if contributors.is_some() && !org {
            return Err(FsError::refused(
                path,
                format!("data type {} only accepts its listed contributors", dt.id),
            ));
        }
        if dt
            .app_logic
            .as_ref()
            .and_then(|l| l.disallow_user_create)
            .unwrap_or(false)
            && !org
        {
            return Err(FsError::refused(
                path,
                format!("data type {} disallows user create", dt.id),
            ));
        }
        Ok(())
    }

    /// Altinn's rules for a new element named `name` (unless it is a temporary name).
    fn check_new(
        &self,
        path: &str,
        e: &InstEntry,
        dt: &DataType,
        name: &str,
        exclude_local: Option<u64>,
    ) -> FsResult<()> {
        self.check_type_writable(path, dt)?;
        rules::check_new_file(dt, name).map_err(|v| FsError::new(ErrorKind::Rule(v), path))?;
        let locals = {
            let st = self.st.lock().unwrap();
            st.locals
                .iter()
                .filter(|(ino, l)| {
                    l.guid == e.inst.guid()
                        && l.dt == dt.id
                        && !layout::is_temp_name(&l.name)
                        && Some(**ino) != exclude_local
                })
                .count()
        };
        if !rules::count_allows_one_more(dt, e.count(&dt.id) + locals) {
            return Err(FsError::new(
                ErrorKind::MaxCount {
                    data_type: dt.id.clone(),
                    max: dt.max_count,
                },
                path,
            ));
        }
        Ok(())
    }

    // ---------------------------------------------------------------- open / read

    pub async fn open(&self, ino: u64, flags: i32) -> FsResult<u64> {
        let node = self.node(ino)?;
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let trunc = flags & libc::O_TRUNC != 0;
        let path = self.path_of(&node);
        if node.is_dir() {
            return Err(FsError::new(ErrorKind::IsDir, path));
        }
        let h = match &node {
            Node::AppMeta | Node::InstanceJson { .. } if write => {
                return Err(FsError::refused(path, "read-only file"))
            }
            Node::AppMeta => Handle::Static(self.meta_json.clone()),
            Node::InstanceJson { party, guid } => {
                Handle::Static(self.instance(party, guid, true).await?.json())
            }
            Node::Element { .. } if write => self.open_write_existing(ino, &node, trunc).await?,
            Node::StatelessFile { .. } | Node::FormJson { .. } if write => {
                self.open_write_view(ino, &node, trunc).await?
            }
            Node::StatelessFile { dt, name } => Handle::Static(
                self.stateless_bytes(dt, name)
                    .await?
                    .ok_or_else(|| FsError::not_found(&path))?,
            ),
            Node::FormJson {
                party, guid, id, ..
            } => {
                let e = self.instance(party, guid, true).await?;
                let el = e.element(id).ok_or_else(|| FsError::not_found(&path))?;
                Handle::Static(self.json_view(party, guid, el).await?)
            }
            Node::Element {
                party, guid, id, ..
            } => {
                let e = self.instance(party, guid, true).await?;
                let el = e.element(id).ok_or_else(|| FsError::not_found(&path))?;
                if el.size <= 0 {
                    Handle::Static(Bytes::new())
                } else {
                    let b = self
                        .blobs
                        .open(
                            self.client.clone(),
                            Self::instance_ref(party, guid),
                            el,
                            self.cfg.retry,
                        )
                        .map_err(|e| FsError::io(&path, e))?;
                    Handle::Blob(b)
                }
            }
            Node::Local { .. } => {
                let (spool, len) = {
                    let st = self.st.lock().unwrap();
                    let l = st
                        .locals
                        .get(&ino)
                        .ok_or_else(|| FsError::not_found(&path))?;
                    (l.spool.clone(), l.len)
                };
                if write {
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&spool)
                        .map_err(|e| spool_err(&path, e))?;
                    let mut len = len;
                    if trunc {
                        file.set_len(0).map_err(|e| spool_err(&path, e))?;
                        len = 0;
                    }
                    let Node::Local { dt, .. } = &node else {
                        unreachable!()
                    };
                    let max = self.data_type(dt)?.max_size_bytes();
                    let mut st = self.st.lock().unwrap();
                    if let Some(l) = st.locals.get_mut(&ino) {
                        l.writers += 1;
                        l.len = len;
                    }
                    Handle::Write(Arc::new(tokio::sync::Mutex::new(WriteHandle {
                        ino,
                        target: Target::Local { ino },
                        file,
                        spool,
                        len,
                        dirty: trunc,
                        failed: None,
                        max,
                        owns_spool: false,
                    })))
                } else {
                    let f = std::fs::File::open(&spool).map_err(|e| spool_err(&path, e))?;
                    Handle::File(Arc::new(f))
                }
            }
            _ => return Err(FsError::new(ErrorKind::IsDir, path)),
        };
        Ok(self.add_handle(h))
    }

    async fn open_write_existing(&self, ino: u64, node: &Node, trunc: bool) -> FsResult<Handle> {
        let Node::Element {
            party,
            guid,
            dt,
            id,
        } = node
        else {
            unreachable!()
        };
        let path = self.path_of(node);
        let e = self.instance(party, guid, true).await?;
        let el = e
            .element(id)
            .ok_or_else(|| FsError::not_found(&path))?
            .clone();
        self.check_writable(&path, &e.inst)?;
        if el.locked {
            return Err(FsError::refused(
                &path,
                "the data element is locked (its task has ended)",
            ));
        }
        let max = self.data_type(dt)?.max_size_bytes();
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let mut len = 0;
        if !trunc && el.size > 0 {
            // A write into an existing file starts from its old bytes.
            if let Err(e) = self.copy_blob_into(party, guid, &el, &file).await {
                let _ = std::fs::remove_file(&spool);
                return Err(e.with_path(&path));
            }
            len = el.size as u64;
        }
        self.st.lock().unwrap().writing.insert(ino, len);
        Ok(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            WriteHandle {
                ino,
                target: Target::Existing {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                    id: id.clone(),
                },
                file,
                spool,
                len,
                dirty: trunc,
                failed: None,
                max,
                owns_spool: true,
            },
        ))))
    }

    /// A write handle on a generated file (a stateless object, a JSON view), starting from
    /// its current bytes unless truncated.
    async fn open_write_view(&self, ino: u64, node: &Node, trunc: bool) -> FsResult<Handle> {
        let path = self.path_of(node);
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let (target, old, max) = match node {
            Node::StatelessFile { dt, name } => {
                let old = if trunc {
                    None
                } else {
                    self.stateless_bytes(dt, name).await?
                };
                (
                    Target::Stateless {
                        dt: dt.clone(),
                        name: name.clone(),
                    },
                    old,
                    Some(super::stateless::MAX_STATELESS_BYTES),
                )
            }
            Node::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let e = self.instance(party, guid, true).await?;
                let el = e
                    .element(id)
                    .ok_or_else(|| FsError::not_found(&path))?
                    .clone();
                self.check_writable(&path, &e.inst)?;
                if el.locked {
                    return Err(FsError::refused(
                        &path,
                        "the data element is locked (its task has ended)",
                    ));
                }
                let old = if trunc {
                    None
                } else {
                    Some(self.json_view(party, guid, &el).await?)
                };
                (
                    Target::FormJson {
                        party: party.clone(),
                        guid: guid.clone(),
                        dt: dt.clone(),
                        id: id.clone(),
                    },
                    old,
                    self.data_type(dt)?.max_size_bytes(),
                )
            }
            _ => return Err(FsError::refused(path, "read-only file")),
        };
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let len = old.as_ref().map(|b| b.len() as u64).unwrap_or(0);
        if let Some(b) = &old {
            if let Err(e) = file.write_all_at(b, 0) {
                let _ = std::fs::remove_file(&spool);
                return Err(spool_err(&path, e));
            }
        }
        if let Target::Stateless { dt, name } = &target {
            self.stateless.begin_write(dt, name);
        }
        self.st.lock().unwrap().writing.insert(ino, len);
        Ok(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            WriteHandle {
                ino,
                target,
                file,
                spool,
                len,
                dirty: trunc,
                failed: None,
                max,
                owns_spool: true,
            },
        ))))
    }

    /// Stream an element's bytes into `file` (through the blob cache).
    async fn copy_blob_into(
        &self,
        party: &str,
        guid: &str,
        el: &DataElement,
        file: &std::fs::File,
    ) -> FsResult<()> {
        let path = format!("/{party}/{guid}/{}", el.data_type);
        let blob = self
            .blobs
            .open(
                self.client.clone(),
                Self::instance_ref(party, guid),
                el,
                self.cfg.retry,
            )
            .map_err(|e| FsError::io(&path, e))?;
        let size = el.size.max(0) as u64;
        let mut off = 0u64;
        let r = async {
            while off < size {
                let b = blob
                    .read(off, 1 << 20)
                    .await
                    .map_err(|e| FsError::server(&path, "GET data", e))?;
                if b.is_empty() {
                    break;
                }
                file.write_all_at(&b, off)
                    .map_err(|e| FsError::io(&path, e))?;
                off += b.len() as u64;
            }
            Ok(())
        }
        .await;
        self.blobs.release(&blob);
        r
    }

    pub async fn read(&self, fh: u64, off: u64, size: u32) -> FsResult<Vec<u8>> {
        match self.handle(fh)? {
            Handle::Static(b) => {
                let s = (off as usize).min(b.len());
                let e = (s + size as usize).min(b.len());
                Ok(b[s..e].to_vec())
            }
            Handle::Blob(b) => b
                .read(off, size)
                .await
                .map_err(|e| FsError::server(format!("data element {}", b.id), "GET data", e)),
            Handle::File(f) => read_file_at(&f, off, size),
            Handle::Write(w) => {
                let w = w.lock().await;
                let size = (w.len.saturating_sub(off)).min(size as u64) as u32;
                read_file_at(&w.file, off, size)
            }
        }
    }

    // ---------------------------------------------------------------- create / write

    pub async fn create(&self, parent: u64, name: &str, flags: i32) -> FsResult<(Attr, u64)> {
        let pnode = self.node(parent)?;
        if let Node::StatelessType { dt } = &pnode {
            return self.create_stateless(parent, dt, name, flags).await;
        }
        let Node::DataTypeDir { party, guid, dt } = &pnode else {
            return Err(FsError::refused(
                format!("{}/{name}", self.path_of(&pnode)),
                "files can only be created in a data type directory",
            ));
        };
        let path = format!("{}/{name}", self.path_of(&pnode));
        if name.len() > layout::NAME_MAX {
            return Err(FsError::new(
                ErrorKind::Invalid("name too long".into()),
                path,
            ));
        }
        if let Ok(existing) = self.child(&pnode, name).await {
            if flags & libc::O_EXCL != 0 {
                return Err(FsError::new(ErrorKind::Exists, path));
            }
            let ino = self.st.lock().unwrap().inodes.lookup(&existing);
            let fh = self.open(ino, flags).await?;
            return Ok((self.attr_of(ino, &existing).await?, fh));
        }
        let e = self.instance(party, guid, false).await?;
        self.check_writable(&path, &e.inst)?;
        let dtype = self.data_type(dt)?.clone();
        if !layout::is_temp_name(name) {
            self.check_new(&path, &e, &dtype, name, None)?;
        }
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let now = SystemTime::now();
        let ino = {
            let mut st = self.st.lock().unwrap();
            let local = (self.salt << 32) | st.next_local;
            st.next_local += 1;
            let l = LocalFile {
                party: party.clone(),
                guid: guid.clone(),
                dt: dt.clone(),
                local,
                name: name.to_string(),
                spool: spool.clone(),
                len: 0,
                created: now,
                mtime: now,
                writers: 1,
            };
            let ino = st.inodes.lookup(&l.node());
            st.locals.insert(ino, l);
            st.negative.remove(&(parent, name.to_string()));
            ino
        };
        let h = Handle::Write(Arc::new(tokio::sync::Mutex::new(WriteHandle {
            ino,
            target: Target::Local { ino },
            file,
            spool,
            len: 0,
            dirty: false,
            failed: None,
            max: dtype.max_size_bytes(),
            owns_spool: false,
        })));
        let fh = self.add_handle(h);
        let attr = self.getattr(ino).await?;
        Ok((attr, fh))
    }

    /// `open(O_CREAT)` in `.stateless/<dt>/`: only `NAME.xml` and `NAME.json`.
    async fn create_stateless(
        &self,
        parent: u64,
        dt: &str,
        name: &str,
        flags: i32,
    ) -> FsResult<(Attr, u64)> {
        let path = format!("/{}/{dt}/{name}", layout::STATELESS);
        if super::stateless::Format::of(name).is_none() || name.len() > layout::NAME_MAX {
            return Err(FsError::new(
                ErrorKind::Invalid(
                    "stateless data is written as NAME.xml or NAME.json (the format of its body)"
                        .into(),
                ),
                path,
            ));
        }
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let node = Node::StatelessFile {
            dt: dt.to_string(),
            name: name.to_string(),
        };
        let existed = self.stateless.exists(dt, name);
        if existed && flags & libc::O_EXCL != 0 {
            return Err(FsError::new(ErrorKind::Exists, path));
        }
        self.clear_negative(parent, name);
        let ino = self.st.lock().unwrap().inodes.lookup(&node);
        let trunc = !existed || flags & libc::O_TRUNC != 0;
        let h = self.open_write_view(ino, &node, trunc).await?;
        let fh = self.add_handle(h);
        let attr = self.attr_of(ino, &node).await?;
        Ok((attr, fh))
    }

    pub async fn write(&self, fh: u64, off: u64, data: &[u8]) -> FsResult<u32> {
        let Handle::Write(w) = self.handle(fh)? else {
            return Err(FsError::new(
                ErrorKind::Invalid("not open for writing".into()),
                "",
            ));
        };
        let mut w = w.lock().await;
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        let end = off + data.len() as u64;
        if let Some(max) = w.max {
            if end > max {
                let node = self.node(w.ino).ok();
                let path = node.map(|n| self.path_of(&n)).unwrap_or_default();
                let e = FsError::new(ErrorKind::TooLarge { max }, path);
                // The file can never be sent whole: nothing of it is uploaded at close.
                w.failed = Some(e.clone());
                w.dirty = false;
                if let Target::Local { ino } = w.target {
                    self.remove_local(ino, false);
                }
                return Err(e);
            }
        }
        w.file
            .write_all_at(data, off)
            .map_err(|e| FsError::io(w.spool.display().to_string(), e))?;
        w.len = w.len.max(end);
        w.dirty = true;
        self.note_len(&w);
        Ok(data.len() as u32)
    }

    fn note_len(&self, w: &WriteHandle) {
        let mut st = self.st.lock().unwrap();
        st.writing.insert(w.ino, w.len);
        if let Target::Local { ino } = w.target {
            if let Some(l) = st.locals.get_mut(&ino) {
                l.len = w.len;
                l.mtime = SystemTime::now();
            }
        }
    }

    fn truncate_handle(&self, w: &mut WriteHandle, size: u64) -> FsResult<()> {
        if let Some(max) = w.max {
            if size > max {
                return Err(FsError::new(ErrorKind::TooLarge { max }, ""));
            }
        }
        w.file
            .set_len(size)
            .map_err(|e| FsError::io(w.spool.display().to_string(), e))?;
        w.len = size;
        w.dirty = true;
        self.note_len(w);
        Ok(())
    }

    // ---------------------------------------------------------------- flush / release

    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        if let Handle::Write(w) = self.handle(fh)? {
            let mut w = w.lock().await;
            self.upload(&mut w).await?;
        }
        Ok(())
    }

    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        self.flush(fh).await
    }

    /// Every write handle of `ino` has nothing unsent (all were flushed since their last
    /// write). A handle busy right now counts as not clean.
    fn write_handles_clean(&self, ino: u64) -> bool {
        let st = self.st.lock().unwrap();
        st.handles.values().all(|h| match h {
            Handle::Write(w) => match w.try_lock() {
                Ok(w) => w.ino != ino || !w.dirty,
                Err(_) => false,
            },
            _ => true,
        })
    }

    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let h = self.st.lock().unwrap().handles.remove(&fh);
        match h {
            Some(Handle::Blob(b)) => self.blobs.release(&b),
            Some(Handle::Write(w)) => {
                let mut w = w.lock().await;
                // A failure already returned (by flush) is not reported (nor logged) again.
                let reported = w.failed.is_some();
                let r = self.upload(&mut w).await;
                let r = if reported { Ok(()) } else { r };
                if let Target::Stateless { dt, name } = &w.target {
                    self.stateless.end_write(dt, name);
                    self.st.lock().unwrap().writing.remove(&w.ino);
                    let _ = std::fs::remove_file(&w.spool);
                    return r;
                }
                let mut st = self.st.lock().unwrap();
                let still_writing = st.handles.values().any(|h| matches!(h, Handle::Write(o) if o.try_lock().map(|o| o.ino == w.ino).unwrap_or(true)));
                if !still_writing {
                    st.writing.remove(&w.ino);
                }
                if let Target::Local { ino } = w.target {
                    if let Some(l) = st.locals.get_mut(&ino) {
                        l.writers = l.writers.saturating_sub(1);
                    }
                }
                let kept_unsent =
                    matches!(&w.failed, Some(e) if matches!(e.kind, ErrorKind::Server { .. }));
                if (w.owns_spool || w.failed.is_some()) && !kept_unsent {
                    let _ = std::fs::remove_file(&w.spool);
                }
                return r;
            }
            _ => {}
        }
        Ok(())
    }

    /// Send a dirty handle's spool: PUT for an element, POST for a new local file (unless it is
    /// empty or has a temporary name: then it stays local).
    async fn upload(&self, w: &mut WriteHandle) -> FsResult<()> {
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        if !w.dirty {
            return Ok(());
        }
        let _busy = self.busy();
        match w.target.clone() {
            Target::Existing {
                party,
                guid,
                dt,
                id,
            } => {
                let node = Node::Element {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                    id: id.clone(),
                };
                let path = self.path_of(&node);
                if w.len == 0 {
                    // Altinn refuses empty data: the element stays as it is, and the kernel
                    // forgets the size it saw while the file was open.
                    w.dirty = false;
                    self.st.lock().unwrap().writing.remove(&w.ino);
                    self.notify_wait(vec![Inval::Inode(w.ino)]);
                    return Err(FsError::new(ErrorKind::Empty, path));
                }
                let e = self.instance(&party, &guid, false).await?;
                let filename = e
                    .element(&id)
                    .and_then(|el| el.filename.clone())
                    .or_else(|| e.name_of(&dt, &id).map(String::from))
                    .unwrap_or_else(|| format!("{dt}.xml"));
                let el = self
                    .put_file(&party, &guid, &id, &filename, &w.spool, w.len)
                    .await
                    .map_err(|err| {
                        let fe = FsError::server(&path, "PUT data", err);
                        self.save_unsent(&w.spool, &path, &party, &guid, &dt, &filename, &fe);
                        fe
                    });
                match el {
                    Ok(el) => {
                        w.dirty = false;
                        self.element_changed(&party, &guid, el);
                        self.notify_wait(vec![Inval::Inode(w.ino)]);
                        Ok(())
                    }
                    Err(fe) => {
                        w.failed = Some(fe.clone());
                        w.owns_spool = false;
                        Err(fe)
                    }
                }
            }
            Target::Stateless { dt, name } => {
                w.dirty = false;
                let r = self
                    .stateless_calculate(w.ino, &dt, &name, &w.spool, w.len)
                    .await;
                if let Err(e) = &r {
                    w.failed = Some(e.clone());
                }
                r
            }
            Target::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let node = Node::FormJson {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                    id: id.clone(),
                };
                let path = self.path_of(&node);
                if w.len == 0 {
                    w.dirty = false;
                    self.st.lock().unwrap().writing.remove(&w.ino);
                    self.notify_wait(vec![Inval::Inode(w.ino)]);
                    return Err(FsError::new(ErrorKind::Empty, path));
                }
                let e = self.instance(&party, &guid, false).await?;
                let filename = e
                    .element(&id)
                    .and_then(|el| el.filename.clone())
                    .or_else(|| e.name_of(&dt, &id).map(String::from))
                    .unwrap_or_else(|| format!("{dt}.xml"));
                let r = Self::instance_ref(&party, &guid);
                let body = UploadBody::File {
                    path: w.spool.clone(),
                    len: w.len,
                };
                let res = self
                    .cfg
                    .retry
                    .run("PUT data", || {
                        self.client.replace_data(
                            &r,
                            &id,
                            &filename,
                            "application/json",
                            body.clone(),
                        )
                    })
                    .await;
                match res {
                    Ok(el) => {
                        w.dirty = false;
                        self.json_views.lock().unwrap().remove(&id);
                        self.element_changed(&party, &guid, el);
                        self.st.lock().unwrap().writing.remove(&w.ino);
                        let xml = inode::ino_of(&Node::Element {
                            party,
                            guid,
                            dt,
                            id,
                        });
                        self.notify_wait(vec![Inval::Inode(w.ino), Inval::Inode(xml)]);
                        Ok(())
                    }
                    Err(err) => {
                        let fe = FsError::server(&path, "PUT data (JSON)", err);
                        let name = layout::json_view_name(&filename).unwrap_or(filename);
                        self.save_unsent(&w.spool, &path, &party, &guid, &dt, &name, &fe);
                        w.failed = Some(fe.clone());
                        w.owns_spool = false;
                        Err(fe)
                    }
                }
            }
            Target::Local { ino } => {
                let Some(l) = self.st.lock().unwrap().locals.get(&ino).cloned() else {
                    // Unlinked or renamed into an element meanwhile.
                    w.dirty = false;
                    return Ok(());
                };
                if layout::is_temp_name(&l.name) || w.len == 0 {
                    w.dirty = false;
                    return Ok(());
                }
                let path = self.path_of(&l.node());
                match self
                    .post_file(&l.party, &l.guid, &l.dt, &l.name, &w.spool, w.len)
                    .await
                {
                    Ok(el) => {
                        w.dirty = false;
                        w.owns_spool = true;
                        w.target = Target::Existing {
                            party: l.party.clone(),
                            guid: l.guid.clone(),
                            dt: l.dt.clone(),
                            id: el.id.clone(),
                        };
                        self.local_became_element(ino, &l, el);
                        Ok(())
                    }
                    Err(err) => {
                        let fe = FsError::server(&path, "POST data", err);
                        self.save_unsent(&w.spool, &path, &l.party, &l.guid, &l.dt, &l.name, &fe);
                        self.remove_local(ino, false);
                        w.failed = Some(fe.clone());
                        Err(fe)
                    }
                }
            }
        }
    }

    /// A local file was uploaded as `el`: its inode now shows the element, and the kernel is
    /// told to look its name up again (to get the element's stable inode number).
    fn local_became_element(&self, ino: u64, l: &LocalFile, el: DataElement) {
        let enode = Node::Element {
            party: l.party.clone(),
            guid: l.guid.clone(),
            dt: l.dt.clone(),
            id: el.id.clone(),
        };
        {
            let mut st = self.st.lock().unwrap();
            st.locals.remove(&ino);
            st.inodes.rebind(ino, &enode);
            st.inodes.register(&enode);
        }
        self.element_changed(&l.party, &l.guid, el);
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: l.party.clone(),
            guid: l.guid.clone(),
            dt: l.dt.clone(),
        });
        self.notify(vec![Inval::Entry {
            parent: dir,
            name: l.name.clone(),
        }]);
    }

    /// After a rename the kernel holds the source's inode under the new name: point it at the
    /// element that now has that name, and have the kernel look the name up again.
    fn renamed_onto(
        &self,
        src_ino: u64,
        party: &str,
        guid: &str,
        dt: &str,
        id: &str,
        newname: &str,
    ) {
        let enode = Node::Element {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
            id: id.to_string(),
        };
        {
            let mut st = self.st.lock().unwrap();
            st.inodes.rebind(src_ino, &enode);
            st.inodes.register(&enode);
        }
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
        });
        self.notify(vec![
            Inval::Inode(src_ino),
            Inval::Entry {
                parent: dir,
                name: newname.to_string(),
            },
        ]);
    }

    fn remove_local(&self, ino: u64, delete_spool: bool) -> Option<LocalFile> {
        let l = self.st.lock().unwrap().locals.remove(&ino);
        if let Some(l) = &l {
            if delete_spool {
                let _ = std::fs::remove_file(&l.spool);
            }
        }
        l
    }

    async fn put_file(
        &self,
        party: &str,
        guid: &str,
        id: &str,
        filename: &str,
        spool: &Path,
        len: u64,
    ) -> Result<DataElement, AltinnError> {
        let r = Self::instance_ref(party, guid);
        let ct = rules::mime_for(filename);
        self.cfg
            .retry
            .run("PUT data", || {
                self.client.replace_data(
                    &r,
                    id,
                    filename,
                    &ct,
                    UploadBody::File {
                        path: spool.to_path_buf(),
                        len,
                    },
                )
            })
            .await
    }

    /// POST a new element. A POST whose outcome is unknown (network error, 5xx, 429) is retried
    /// only after the instance's elements show that no element with this name and size
    /// appeared, so a retry never makes a duplicate.
    async fn post_file(
        &self,
        party: &str,
        guid: &str,
        dt: &str,
        filename: &str,
        spool: &Path,
        len: u64,
    ) -> Result<DataElement, AltinnError> {
        let r = Self::instance_ref(party, guid);
        let ct = rules::mime_for(filename);
        let before: std::collections::HashSet<String> = self
            .st
            .lock()
            .unwrap()
            .instances
            .peek(&guid.to_string())
            .map(|e| e.inst.data.iter().map(|d| d.id.clone()).collect())
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            let res = self
                .client
                .create_data(
                    &r,
                    dt,
                    filename,
                    &ct,
                    UploadBody::File {
                        path: spool.to_path_buf(),
                        len,
                    },
                )
                .await;
            let err = match res {
                Ok(el) => return Ok(el),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            tokio::time::sleep(self.cfg.retry.wait(attempt, &err)).await;
            let els = match self
                .cfg
                .retry
                .run("GET dataelements", || self.client.list_data_elements(&r))
                .await
            {
                Ok(els) => els,
                Err(e2) => {
                    tracing::warn!(
                        "{filename}: cannot check whether the failed POST stored it: {e2}"
                    );
                    return Err(err);
                }
            };
            if let Some(el) = els.into_iter().find(|e| {
                !before.contains(&e.id)
                    && e.data_type == dt
                    && e.filename.as_deref() == Some(filename)
                    && e.size as u64 == len
            }) {
                tracing::info!(
                    "{filename}: the POST that failed ({err}) had stored it; not sending again"
                );
                return Ok(el);
            }
            attempt += 1;
            if attempt >= self.cfg.retry.attempts {
                return Err(err);
            }
            tracing::info!("{filename}: POST failed ({err}), nothing stored; sending again");
        }
    }

    /// Keep a spool that could not be sent under `unsent/` with a JSON sidecar.
    #[allow(clippy::too_many_arguments)]
    fn save_unsent(
        &self,
        spool: &Path,
        path: &str,
        party: &str,
        guid: &str,
        dt: &str,
        filename: &str,
        err: &FsError,
    ) {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let base = format!(
            "{stamp}-{}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8],
            layout::sanitize(filename)
        );
        let base = layout::shorten(&base, 240);
        let dest = self.unsent.join(&base);
        if std::fs::rename(spool, &dest).is_err() {
            if let Err(e) = std::fs::copy(spool, &dest) {
                tracing::error!("{path}: upload failed ({err}) and the spool cannot be kept: {e}");
                return;
            }
        }
        let sidecar = serde_json::json!({
            "path": path,
            "party": party,
            "instance": guid,
            "dataType": dt,
            "filename": filename,
            "error": err.to_string(),
            "errno": err.errno(),
            "time": chrono::Utc::now().to_rfc3339(),
        });
        let side = self.unsent.join(format!("{base}.json"));
        let _ = std::fs::write(
            &side,
            serde_json::to_vec_pretty(&sidecar).unwrap_or_default(),
        );
        tracing::error!(
            "{err}; the bytes are kept in {} (details in {})",
            dest.display(),
            side.display()
        );
    }

    /// The server answered with a new state of an element: cache it and invalidate.
    fn element_changed(&self, party: &str, guid: &str, el: DataElement) {
        self.blobs.invalidate(&el.id);
        let cur = self
            .st
            .lock()
            .unwrap()
            .instances
            .peek(&guid.to_string())
            .cloned();
        let Some(cur) = cur else { return };
        let mut inst = cur.inst.clone();
        if let Some(lc) = el.last_changed {
            if inst.last_changed.is_none_or(|t| t < lc) {
                inst.last_changed = Some(lc);
            }
        }
        match inst.data.iter_mut().find(|d| d.id == el.id) {
            Some(d) => *d = el,
            None => inst.data.push(el),
        }
        let _ = party;
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
    }

    fn element_removed(&self, guid: &str, id: &str) {
        self.blobs.invalidate(id);
        let cur = self
            .st
            .lock()
            .unwrap()
            .instances
            .peek(&guid.to_string())
            .cloned();
        let Some(cur) = cur else { return };
        let mut inst = cur.inst.clone();
        inst.data.retain(|d| d.id != id);
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
    }

    // ---------------------------------------------------------------- setattr

    /// Size changes work on the spool; mode, owner and times succeed and change nothing.
    pub async fn setattr(&self, ino: u64, size: Option<u64>, fh: Option<u64>) -> FsResult<Attr> {
        if let Some(size) = size {
            let node = self.node(ino)?;
            let path = self.path_of(&node);
            let by_fh = fh.and_then(|f| self.handle(f).ok()).and_then(|h| match h {
                Handle::Write(w) => Some(w),
                _ => None,
            });
            let w = by_fh.or_else(|| {
                self.st
                    .lock()
                    .unwrap()
                    .handles
                    .values()
                    .find_map(|h| match h {
                        Handle::Write(w) if w.try_lock().map(|w| w.ino == ino).unwrap_or(false) => {
                            Some(w.clone())
                        }
                        _ => None,
                    })
            });
            if let Some(w) = w {
                let mut w = w.lock().await;
                self.truncate_handle(&mut w, size)
                    .map_err(|e| e.with_path(&path))?;
            } else {
                match &node {
                    Node::Local { dt, .. } => {
                        if let Some(max) = self.data_type(dt)?.max_size_bytes() {
                            if size > max {
                                return Err(FsError::new(ErrorKind::TooLarge { max }, path));
                            }
                        }
                        let mut st = self.st.lock().unwrap();
                        let l = st
                            .locals
                            .get_mut(&ino)
                            .ok_or_else(|| FsError::not_found(&path))?;
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&l.spool)
                            .and_then(|f| f.set_len(size))
                            .map_err(|e| FsError::io(&path, e))?;
                        l.len = size;
                    }
                    Node::Element { .. } => {
                        let cur = self.getattr(ino).await?.size;
                        if cur != size {
                            let h = self.open_write_existing(ino, &node, size == 0).await?;
                            let Handle::Write(w) = h else { unreachable!() };
                            let mut w = w.lock().await;
                            let r = match self.truncate_handle(&mut w, size) {
                                Ok(()) => self.upload(&mut w).await,
                                Err(e) => Err(e),
                            };
                            self.st.lock().unwrap().writing.remove(&ino);
                            if w.owns_spool {
                                let _ = std::fs::remove_file(&w.spool);
                            }
                            r?;
                        }
                    }
                    Node::StatelessFile { .. } | Node::FormJson { .. } => {
                        let cur = self.getattr(ino).await?.size;
                        if cur != size {
                            let h = self.open_write_view(ino, &node, size == 0).await?;
                            let Handle::Write(w) = h else { unreachable!() };
                            let mut w = w.lock().await;
                            let r = match self.truncate_handle(&mut w, size) {
                                Ok(()) => self.upload(&mut w).await,
                                Err(e) => Err(e),
                            };
                            self.st.lock().unwrap().writing.remove(&ino);
                            if let Target::Stateless { dt, name } = &w.target {
                                self.stateless.end_write(dt, name);
                            }
                            if w.owns_spool {
                                let _ = std::fs::remove_file(&w.spool);
                            }
                            r?;
                        }
                    }
                    n if n.is_dir() => return Err(FsError::new(ErrorKind::IsDir, path)),
                    _ => return Err(FsError::refused(path, "read-only file")),
                }
            }
        }
        self.getattr(ino).await
    }

    // ---------------------------------------------------------------- unlink / rename

    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let node = self.child(&pnode, name).await?;
        match &node {
            Node::StatelessFile { dt, name } => {
                self.stateless_unlink(dt, name)?;
                self.notify(vec![Inval::Inode(inode::ino_of(&node))]);
                Ok(())
            }
            Node::FormJson { .. } => Err(FsError::refused(
                path,
                "X.json is the JSON view of X.xml; remove X.xml to delete the element",
            )),
            Node::Local { .. } => {
                let ino = inode::ino_of(&node);
                self.remove_local(ino, true);
                Ok(())
            }
            Node::Element {
                party,
                guid,
                dt,
                id,
            } => {
                let e = self.instance(party, guid, false).await?;
                self.check_writable(&path, &e.inst)?;
                if self.data_type(dt)?.is_main_form() {
                    return Err(FsError::refused(&path, "the main form of an instance cannot be deleted (Altinn: Cannot Delete main data element)"));
                }
                let _busy = self.busy();
                let r = Self::instance_ref(party, guid);
                self.cfg
                    .retry
                    .run("DELETE data", || self.client.delete_data(&r, id))
                    .await
                    .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                self.element_removed(guid, id);
                Ok(())
            }
            n if n.is_dir() => Err(FsError::new(ErrorKind::IsDir, path)),
            _ => Err(FsError::refused(path, "read-only file")),
        }
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        flags: u32,
    ) -> FsResult<()> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(FsError::new(
                ErrorKind::Invalid("RENAME_EXCHANGE".into()),
                path,
            ));
        }
        let Node::DataTypeDir { party, guid, dt } = pnode.clone() else {
            return Err(FsError::refused(
                path,
                "only files inside a data type directory can be renamed",
            ));
        };
        if parent != newparent {
            return Err(FsError::new(ErrorKind::CrossDevice, path));
        }
        if newname.len() > layout::NAME_MAX {
            return Err(FsError::new(
                ErrorKind::Invalid("name too long".into()),
                path,
            ));
        }
        let src = self.child(&pnode, name).await?;
        let dst = match self.child(&pnode, newname).await {
            Ok(n) => Some(n),
            Err(e) if e.errno() == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        if dst.as_ref() == Some(&src) {
            return Ok(());
        }
        if matches!(src, Node::FormJson { .. }) {
            return Err(FsError::refused(
                path,
                "X.json is the JSON view of X.xml and cannot be renamed",
            ));
        }
        if dst.is_some() && flags & libc::RENAME_NOREPLACE != 0 {
            return Err(FsError::new(
                ErrorKind::Exists,
                format!("{}/{newname}", self.path_of(&pnode)),
            ));
        }
        let newpath = format!("{}/{newname}", self.path_of(&pnode));
        let e = self.instance(&party, &guid, false).await?;
        self.check_writable(&newpath, &e.inst)?;
        let dtype = self.data_type(&dt)?.clone();
        let _busy = self.busy();
        self.clear_negative(parent, newname);
        // A local target is simply replaced.
        let dst = match dst {
            Some(d @ Node::Local { .. }) => {
                self.remove_local(inode::ino_of(&d), true);
                None
            }
            d => d,
        };
        match (&src, &dst) {
            (Node::Local { .. }, None) => {
                let ino = inode::ino_of(&src);
                if !layout::is_temp_name(newname) {
                    self.check_new(&newpath, &e, &dtype, newname, Some(ino))?;
                }
                let l = {
                    let mut st = self.st.lock().unwrap();
                    let l = st
                        .locals
                        .get_mut(&ino)
                        .ok_or_else(|| FsError::not_found(&path))?;
                    l.name = newname.to_string();
                    l.clone()
                };
                // rsync and editors close the temporary file, then rename it; the kernel's
                // release may come after the rename. Bytes flushed at close are complete, so
                // upload now and let rename return once the element exists.
                let flushed = l.writers == 0 || self.write_handles_clean(ino);
                if flushed && l.len > 0 && !layout::is_temp_name(newname) {
                    match self
                        .post_file(&party, &guid, &dt, newname, &l.spool, l.len)
                        .await
                    {
                        Ok(el) => {
                            let _ = std::fs::remove_file(&l.spool);
                            self.local_became_element(ino, &l, el);
                        }
                        Err(err) => {
                            let fe = FsError::server(&newpath, "POST data", err);
                            self.save_unsent(&l.spool, &newpath, &party, &guid, &dt, newname, &fe);
                            self.remove_local(ino, false);
                            return Err(fe);
                        }
                    }
                }
                Ok(())
            }
            (Node::Local { .. }, Some(Node::FormJson { id: did, .. })) => {
                // An editor's temporary file saved over X.json: PUT it as JSON.
                let ino = inode::ino_of(&src);
                let l = self
                    .st
                    .lock()
                    .unwrap()
                    .locals
                    .get(&ino)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&path))?;
                let del = e
                    .element(did)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&newpath))?;
                if del.locked {
                    return Err(FsError::refused(&newpath, "the data element is locked"));
                }
                if l.len == 0 {
                    return Err(FsError::new(ErrorKind::Empty, newpath));
                }
                let filename = del.filename.clone().unwrap_or_else(|| format!("{dt}.xml"));
                let r = Self::instance_ref(&party, &guid);
                let body = UploadBody::File {
                    path: l.spool.clone(),
                    len: l.len,
                };
                let el = self
                    .cfg
                    .retry
                    .run("PUT data", || {
                        self.client.replace_data(
                            &r,
                            did,
                            &filename,
                            "application/json",
                            body.clone(),
                        )
                    })
                    .await
                    .map_err(|err| FsError::server(&newpath, "PUT data (JSON)", err))?;
                self.remove_local(ino, true);
                self.json_views.lock().unwrap().remove(did);
                let jnode = dst.clone().unwrap();
                self.element_changed(&party, &guid, el);
                {
                    let mut st = self.st.lock().unwrap();
                    st.inodes.rebind(ino, &jnode);
                    st.inodes.register(&jnode);
                }
                self.notify(vec![
                    Inval::Inode(ino),
                    Inval::Entry {
                        parent,
                        name: newname.to_string(),
                    },
                ]);
                Ok(())
            }
            (Node::Local { .. }, Some(Node::Element { id: did, .. })) => {
                let ino = inode::ino_of(&src);
                let l = self
                    .st
                    .lock()
                    .unwrap()
                    .locals
                    .get(&ino)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&path))?;
                let del = e
                    .element(did)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&newpath))?;
                if del.locked {
                    return Err(FsError::refused(&newpath, "the data element is locked"));
                }
                if l.len == 0 {
                    return Err(FsError::new(ErrorKind::Empty, newpath));
                }
                let filename = del.filename.clone().unwrap_or_else(|| newname.to_string());
                let el = self
                    .put_file(&party, &guid, did, &filename, &l.spool, l.len)
                    .await
                    .map_err(|err| FsError::server(&newpath, "PUT data", err))?;
                self.remove_local(ino, true);
                let id = el.id.clone();
                self.element_changed(&party, &guid, el);
                self.renamed_onto(inode::ino_of(&src), &party, &guid, &dt, &id, newname);
                Ok(())
            }
            (Node::Element { id: sid, .. }, dst) => {
                let sel = e
                    .element(sid)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&path))?;
                if dtype.is_main_form() && dst.is_none() {
                    return Err(FsError::refused(
                        &path,
                        "the main form cannot be renamed (it would be deleted)",
                    ));
                }
                let (spool, file) = self.new_spool().map_err(|e| FsError::io(&path, e))?;
                let len = sel.size.max(0) as u64;
                let res = async {
                    self.copy_blob_into(&party, &guid, &sel, &file).await?;
                    drop(file);
                    let r = Self::instance_ref(&party, &guid);
                    match dst {
                        Some(Node::Element { id: did, .. }) => {
                            let del = e
                                .element(did)
                                .cloned()
                                .ok_or_else(|| FsError::not_found(&newpath))?;
                            if del.locked {
                                return Err(FsError::refused(
                                    &newpath,
                                    "the data element is locked",
                                ));
                            }
                            let filename =
                                del.filename.clone().unwrap_or_else(|| newname.to_string());
                            let el = self
                                .put_file(&party, &guid, did, &filename, &spool, len)
                                .await
                                .map_err(|err| FsError::server(&newpath, "PUT data", err))?;
                            let id = el.id.clone();
                            self.element_changed(&party, &guid, el);
                            self.renamed_onto(
                                inode::ino_of(&src),
                                &party,
                                &guid,
                                &dt,
                                &id,
                                newname,
                            );
                        }
                        _ => {
                            rules::check_new_file(&dtype, newname)
                                .map_err(|v| FsError::new(ErrorKind::Rule(v), &newpath))?;
                            // At maxCount the new element only fits once the old one is gone:
                            // delete first; the bytes are in the spool, and go to unsent/ if
                            // the POST then fails, so nothing is lost.
                            let n = e.inst.data.iter().filter(|d| d.data_type == dt).count();
                            let delete_first = !rules::count_allows_one_more(&dtype, n);
                            if delete_first {
                                self.cfg
                                    .retry
                                    .run("DELETE data", || self.client.delete_data(&r, sid))
                                    .await
                                    .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                                self.element_removed(&guid, sid);
                            }
                            let el = match self
                                .post_file(&party, &guid, &dt, newname, &spool, len)
                                .await
                            {
                                Ok(el) => el,
                                Err(err) => {
                                    let fe = FsError::server(&newpath, "POST data", err);
                                    if delete_first {
                                        self.save_unsent(
                                            &spool, &newpath, &party, &guid, &dt, newname, &fe,
                                        );
                                    }
                                    return Err(fe);
                                }
                            };
                            let id = el.id.clone();
                            self.element_changed(&party, &guid, el);
                            self.renamed_onto(
                                inode::ino_of(&src),
                                &party,
                                &guid,
                                &dt,
                                &id,
                                newname,
                            );
                            if delete_first {
                                return Ok(());
                            }
                        }
                    }
                    self.cfg
                        .retry
                        .run("DELETE data", || self.client.delete_data(&r, sid))
                        .await
                        .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                    self.element_removed(&guid, sid);
                    Ok(())
                }
                .await;
                let _ = std::fs::remove_file(&spool);
                res
            }
            _ => Err(FsError::refused(path, "cannot rename this entry")),
        }
    }

    // ---------------------------------------------------------------- instances

    /// `mkdir PARTY/NAME` creates an instance; NAME stays an alias of its GUID directory.
    pub async fn mkdir(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let Node::Party { party } = &pnode else {
            return Err(FsError::refused(
                path,
                "directories can only be made in a party directory (they create instances)",
            ));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        if self.child(&pnode, name).await.is_ok() {
            return Err(FsError::new(ErrorKind::Exists, path));
        }
        let _busy = self.busy();
        let inst = self
            .client
            .create_instance(party)
            .await
            .map_err(|e| FsError::server(&path, "POST instances", e))?;
        let guid = inst.guid().to_string();
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
        let node = Node::Instance {
            party: party.clone(),
            guid: guid.clone(),
        };
        {
            let mut st = self.st.lock().unwrap();
            st.parties
                .entry(party.clone())
                .or_insert_with(|| PartyListing {
                    at: Instant::now(),
                    guids: BTreeSet::new(),
                })
                .guids
                .insert(guid.clone());
            if name != guid {
                st.aliases
                    .insert((party.clone(), name.to_string()), guid.clone());
            }
            st.negative.remove(&(parent, name.to_string()));
            st.inodes.lookup(&node);
        }
        tracing::info!("{path}: created instance {party}/{guid}");
        self.attr_of(inode::ino_of(&node), &node).await
    }

    /// `rmdir` of an instance directory deletes the instance (EPERM when Altinn refuses).
    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let node = self.child(&pnode, name).await?;
        let Node::Instance { party, guid } = &node else {
            return Err(FsError::refused(
                path,
                "only instance directories can be removed",
            ));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let _busy = self.busy();
        let r = Self::instance_ref(party, guid);
        let hard = self.cfg.hard_delete;
        self.cfg
            .retry
            .run("DELETE instance", || self.client.delete_instance(&r, hard))
            .await
            .map_err(|err| match err.status() {
                Some(400) | Some(403) | Some(409) => FsError::refused(
                    &path,
                    format!("Altinn refused to delete the instance: {err}"),
                ),
                _ => FsError::server(&path, "DELETE instance", err),
            })?;
        let mut inv = vec![];
        {
            let mut st = self.st.lock().unwrap();
            st.instances.remove(guid);
            if let Some(l) = st.parties.get_mut(party) {
                l.guids.remove(guid);
            }
            let gone: Vec<(String, String)> = st
                .aliases
                .iter()
                .filter(|(_, g)| *g == guid)
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                st.aliases.remove(&k);
                inv.push(Inval::Entry { parent, name: k.1 });
            }
            if name != guid {
                inv.push(Inval::Entry {
                    parent,
                    name: guid.clone(),
                });
            }
            st.locals.retain(|_, l| l.guid != *guid);
        }
        self.notify(inv);
        Ok(())
    }
}

fn read_file_at(f: &std::fs::File, off: u64, size: u32) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return Err(FsError::io("spool", e)),
        }
    }
    buf.truncate(done);
    Ok(buf)
}
