//! SPEC §4 writes: checks at create before a byte moves, spool files (0600), maxSize as bytes
//! arrive, write handles, local pending files and size changes. Opening is in `open`, the
//! upload on flush/fsync/release (POST new, PUT existing) and `unsent/` in `upload`, rename
//! and unlink in `rename`, instance mkdir/rmdir in `instance_ops`.

use super::*;
use crate::altinn::rules;
use std::os::unix::fs::FileExt;

/// A file that exists only in this mount: created and not uploaded yet (empty, or with a
/// temporary name), marked by `user.altinn.pending`.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub party: PartyId,
    pub guid: InstanceGuid,
    pub dt: DataTypeId,
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
            party: self.party,
            guid: self.guid,
            dt: self.dt.clone(),
            local: self.local,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    Existing {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
        id: ElementId,
    },
    Local {
        ino: u64,
    },
    /// `.stateless/<dt>/<name>`: calculated on close, held in memory.
    Stateless {
        dt: DataTypeId,
        name: String,
    },
    /// `X.json` of a form data element: PUT as JSON on close.
    FormJson {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
        id: ElementId,
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

/// A write its handle took (see [`AltinnFs::try_accept_write`]), its bytes not spooled yet;
/// it holds the handle until they are.
pub struct AcceptedWrite {
    w: tokio::sync::OwnedMutexGuard<WriteHandle>,
    off: u64,
}

#[derive(Clone)]
pub enum Handle {
    Static(Bytes),
    Blob(Arc<read::Blob>),
    File(Arc<std::fs::File>),
    Write(Arc<tokio::sync::Mutex<WriteHandle>>),
}

pub(super) fn spool_err(path: &str, e: std::io::Error) -> FsError {
    FsError::io(path, e)
}

/// The write handle of a file just created: empty, its spool kept for the local file.
fn new_local_write_handle(
    ino: u64,
    file: std::fs::File,
    spool: PathBuf,
    max: Option<u64>,
) -> WriteHandle {
    WriteHandle {
        ino,
        target: Target::Local { ino },
        file,
        spool,
        len: 0,
        dirty: false,
        failed: None,
        max,
        owns_spool: false,
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    pub(super) fn new_spool(&self) -> std::io::Result<(PathBuf, std::fs::File)> {
        self.writer.new_spool()
    }

    pub(super) fn add_handle(&self, h: Handle) -> u64 {
        self.handles.add(h)
    }

    pub(super) fn handle(&self, fh: u64) -> FsResult<Handle> {
        self.handles
            .get(fh)
            .ok_or_else(|| FsError::new(ErrorKind::Invalid(format!("no open file {fh}")), ""))
    }

    /// Refusals that apply to every change inside an instance.
    pub(super) fn check_writable(&self, path: &str, inst: &Instance) -> FsResult<()> {
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
        let org = self.tree.org_mode() == Some(true);
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
    pub(super) fn check_new(
        &self,
        path: &str,
        e: &InstEntry,
        dt: &DataType,
        name: &str,
        exclude_local: Option<u64>,
    ) -> FsResult<()> {
        self.check_type_writable(path, dt)?;
        rules::check_new_file(dt, name).map_err(|v| FsError::new(ErrorKind::Rule(v), path))?;
        let ids = (
            InstanceGuid::parse(e.inst.guid()),
            DataTypeId::parse(&dt.id),
        );
        let (Ok(guid), Ok(dt_id)) = ids else {
            return Err(FsError::not_found(path));
        };
        let locals = self
            .writer
            .pending_count(guid, &dt_id, exclude_local.as_slice());
        if !rules::count_allows_one_more(dt, e.count(&dt_id) + locals) {
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

    // ---------------------------------------------------------------- create / write

    /// `open(O_CREAT)`: opens the file if the name exists, else makes a local file (uploaded
    /// on close) once the checks that need no bytes have passed.
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        flags: impl Into<OpenFlags>,
    ) -> FsResult<(Attr, u64)> {
        let flags: OpenFlags = flags.into();
        self.refuse_in_view(parent)?;
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
        let path = self.new_file_path(&pnode, name)?;
        if let Ok(existing) = self.child(&pnode, name).await {
            return self.open_existing_for_create(path, &existing, flags).await;
        }
        let inst = InstanceId::new(*party, *guid);
        let dtype = self.check_create(&path, inst, dt, name).await?;
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let ino = self.add_local(parent, inst, dt, name, spool.clone());
        let fh = self.add_handle(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            new_local_write_handle(ino, file, spool, dtype.max_size_bytes()),
        ))));
        let attr = self.getattr(ino).await?;
        Ok((attr, fh))
    }

    /// The path of a file `name` to create in `dir`; refused when the name is too long.
    fn new_file_path(&self, dir: &Node, name: &str) -> FsResult<String> {
        let path = format!("{}/{name}", self.path_of(dir));
        if name.len() > layout::NAME_MAX {
            return Err(FsError::new(
                ErrorKind::Invalid("name too long".into()),
                path,
            ));
        }
        Ok(path)
    }

    /// `create` of a name that exists: `O_EXCL` fails, otherwise it is an `open`.
    async fn open_existing_for_create(
        &self,
        path: String,
        existing: &Node,
        flags: OpenFlags,
    ) -> FsResult<(Attr, u64)> {
        if flags.exclusive {
            return Err(FsError::new(ErrorKind::Exists, path));
        }
        let ino = self.tree.lookup_ref(existing);
        let fh = self.open(ino, flags).await?;
        Ok((self.attr_of(ino, existing).await?, fh))
    }

    /// Everything that must hold before a new file `name` exists: the instance can change, and
    /// (unless the name is temporary) the data type accepts one more file of that name.
    /// Returns the data type.
    async fn check_create(
        &self,
        path: &str,
        inst: InstanceId,
        dt: &DataTypeId,
        name: &str,
    ) -> FsResult<DataType> {
        let e = self.instance(inst.party, inst.guid, false).await?;
        self.check_writable(path, &e.inst)?;
        let dtype = self.data_type(dt)?.clone();
        // A temporary name is checked when it is renamed to its final one.
        if !layout::is_temp_name(name) {
            self.check_new(path, &e, &dtype, name, None)?;
        }
        Ok(dtype)
    }

    /// Registers a new local file with the writer and the tree; returns its inode.
    fn add_local(
        &self,
        parent: u64,
        inst: InstanceId,
        dt: &DataTypeId,
        name: &str,
        spool: PathBuf,
    ) -> u64 {
        let (ino, node) = self.writer.add_local(writer::NewLocal {
            party: inst.party,
            guid: inst.guid,
            dt,
            name,
            spool,
        });
        self.tree.lookup_ref(&node);
        // The name may be cached as missing from an earlier lookup.
        self.tree.clear_missing(parent, name);
        ino
    }

    /// `open(O_CREAT)` in `.stateless/<dt>/`: only `NAME.xml` and `NAME.json`.
    async fn create_stateless(
        &self,
        parent: u64,
        dt: &DataTypeId,
        name: &str,
        flags: OpenFlags,
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
            dt: dt.clone(),
            name: name.to_string(),
        };
        let existed = self.stateless.exists(dt.as_str(), name);
        if existed && flags.exclusive {
            return Err(FsError::new(ErrorKind::Exists, path));
        }
        self.clear_negative(parent, name);
        let ino = self.tree.lookup_ref(&node);
        let trunc = !existed || flags.truncate;
        let h = self.open_write_view(ino, &node, trunc).await?;
        let fh = self.add_handle(h);
        let attr = self.attr_of(ino, &node).await?;
        Ok((attr, fh))
    }

    /// The write handle open as `fh`.
    fn write_handle(&self, fh: u64) -> FsResult<Arc<tokio::sync::Mutex<WriteHandle>>> {
        match self.handle(fh)? {
            Handle::Write(w) => Ok(w),
            _ => Err(FsError::new(
                ErrorKind::Invalid("not open for writing".into()),
                "",
            )),
        }
    }

    pub async fn write(&self, fh: u64, off: u64, data: &[u8]) -> FsResult<u32> {
        let w = self.write_handle(fh)?;
        let mut w = w.lock().await;
        self.write_into(&mut w, off, data)
    }

    /// `write` without waiting: the bytes go straight from `data` (the kernel request's own
    /// buffer) into the spool with one `pwrite`, on the caller's thread. None when the handle
    /// is busy (an upload holds it): then the caller copies the bytes and waits in a task.
    pub fn try_write(&self, fh: u64, off: u64, data: &[u8]) -> Option<FsResult<u32>> {
        let accepted = self.try_accept_write(fh, off, data.len());
        Some(accepted?.and_then(|a| self.spool_accepted(a, data)))
    }

    /// The first half of [`Self::try_write`]: whether the handle takes `len` bytes at `off`
    /// (no earlier failure, within `maxSize`), decided before a byte moves, so the adapter
    /// can answer the kernel and then spool the bytes while the writer prepares its next
    /// write(2). None when the handle is busy.
    pub fn try_accept_write(
        &self,
        fh: u64,
        off: u64,
        len: usize,
    ) -> Option<FsResult<AcceptedWrite>> {
        let w = match self.write_handle(fh) {
            Ok(w) => w,
            Err(e) => return Some(Err(e)),
        };
        let mut w = w.try_lock_owned().ok()?;
        Some(
            self.accept_write(&mut w, off, len as u64)
                .map(|()| AcceptedWrite { w, off }),
        )
    }

    /// The second half: spool the accepted bytes. A failure is kept in the handle (the next
    /// write, `fsync` and `close` return it, and nothing is uploaded), as it may come after
    /// the write was answered.
    pub fn spool_accepted(&self, a: AcceptedWrite, data: &[u8]) -> FsResult<u32> {
        let AcceptedWrite { mut w, off } = a;
        self.spool_into(&mut w, off, data)
    }

    /// Spool `data` at `off`, enforcing `maxSize` as the bytes arrive.
    fn write_into(&self, w: &mut WriteHandle, off: u64, data: &[u8]) -> FsResult<u32> {
        self.accept_write(w, off, data.len() as u64)?;
        self.spool_into(w, off, data)
    }

    /// Refuse a write to a failed handle or past `maxSize` (which fails the handle: the file
    /// can never be sent whole).
    fn accept_write(&self, w: &mut WriteHandle, off: u64, len: u64) -> FsResult<()> {
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        if let Some(max) = w.max {
            if off + len > max {
                let e = FsError::new(ErrorKind::TooLarge { max }, "");
                return Err(self.fail_write(w, e));
            }
        }
        Ok(())
    }

    fn spool_into(&self, w: &mut WriteHandle, off: u64, data: &[u8]) -> FsResult<u32> {
        let end = off + data.len() as u64;
        writer::reserve_spool(&w.file, w.len, end);
        if let Err(e) = w.file.write_all_at(data, off) {
            return Err(self.fail_write(w, FsError::io("", e)));
        }
        w.len = w.len.max(end);
        w.dirty = true;
        self.note_len(w);
        Ok(data.len() as u32)
    }

    /// A write that cannot be taken whole: the handle keeps the error (with the file's
    /// path) and sends nothing at close; a new local file goes away.
    fn fail_write(&self, w: &mut WriteHandle, e: FsError) -> FsError {
        let path = self.node(w.ino).map(|n| self.path_of(&n));
        let e = e.with_path(path.unwrap_or_default());
        w.failed = Some(e.clone());
        w.dirty = false;
        if let Target::Local { ino } = w.target {
            self.remove_local(ino, false);
        }
        e
    }

    fn note_len(&self, w: &WriteHandle) {
        self.writer.note_len(w);
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

    // ---------------------------------------------------------------- setattr

    /// Size changes work on the spool; mode, owner and times succeed and change nothing.
    pub async fn setattr(&self, ino: u64, size: Option<u64>, fh: Option<u64>) -> FsResult<Attr> {
        self.refuse_in_view(ino)?;
        if let Some(size) = size {
            let node = self.node(ino)?;
            let path = self.path_of(&node);
            let by_fh = fh.and_then(|f| self.handle(f).ok()).and_then(|h| match h {
                Handle::Write(w) => Some(w),
                _ => None,
            });
            let w = by_fh.or_else(|| self.handles.idle_writer_of(ino));
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
                        self.writer
                            .resize_local(ino, size)
                            .ok_or_else(|| FsError::not_found(&path))?
                            .map_err(|e| FsError::io(&path, e))?;
                    }
                    Node::Element { .. } => {
                        let cur = self.getattr(ino).await?.size;
                        if cur != size {
                            let h = self.open_write_existing(ino, &node, size == 0).await?;
                            self.resize_through(ino, h, size).await?;
                        }
                    }
                    Node::StatelessFile { .. } | Node::FormJson { .. } => {
                        let cur = self.getattr(ino).await?.size;
                        if cur != size {
                            let h = self.open_write_view(ino, &node, size == 0).await?;
                            self.resize_through(ino, h, size).await?;
                        }
                    }
                    n if n.is_dir() => return Err(FsError::new(ErrorKind::IsDir, path)),
                    _ => return Err(FsError::refused(path, "read-only file")),
                }
            }
        }
        self.getattr(ino).await
    }

    /// Resize an element or a view through a write handle opened for it: truncate the spool,
    /// upload, and end the write (the spool goes unless `unsent/` kept it).
    async fn resize_through(&self, ino: u64, h: Handle, size: u64) -> FsResult<()> {
        let Handle::Write(w) = h else { unreachable!() };
        let mut w = w.lock().await;
        let r = match self.truncate_handle(&mut w, size) {
            Ok(()) => self.upload(&mut w).await,
            Err(e) => Err(e),
        };
        self.writer.stop_writing(ino);
        if let Target::Stateless { dt, name } = &w.target {
            self.stateless.end_write(dt.as_str(), name);
        }
        if w.owns_spool {
            let _ = std::fs::remove_file(&w.spool);
        }
        r
    }
}
