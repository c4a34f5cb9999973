//! fuser::Filesystem adapter over the filesystem core; thin. The session thread never waits
//! on the network: every request is answered from a task on the tokio runtime (fuser's reply
//! objects are Send), and cache invalidations go out from their own thread.

use crate::altinn::client::AltinnClient;
use crate::busy_poll::BusyPoll;
use crate::fs::{AltinnFs, Attr, FsError, Inval, Kind, OpenFile, OpenFlags, RenameFlags};
use fuser::{
    consts, FileAttr, FileType, Filesystem, KernelConfig, Notifier, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use std::ffi::OsStr;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime};
use tracing::Instrument;

/// How long the kernel may cache entries and attributes.
pub const KERNEL_TTL: Duration = Duration::from_secs(1);

pub struct FuseAdapter<C: AltinnClient + ?Sized> {
    fs: Arc<AltinnFs<C>>,
    rt: tokio::runtime::Handle,
    /// Global budget for request buffers (read replies, write payloads) in KiB: past it a
    /// request waits for others to finish; memory never grows with the number of requests.
    budget: Arc<tokio::sync::Semaphore>,
    busy_poll: BusyPoll,
    /// `--direct-io`: files opened read-only bypass the kernel's page cache.
    direct_io: bool,
}

/// How the adapter answers, from the mount options.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdapterOptions {
    /// How long the session thread watches for the next request after an answer before it
    /// sleeps (`--busy-poll-us`; zero: never).
    pub busy_poll: Duration,
    /// `--direct-io`: reads of files opened read-only go straight into the reader's buffer.
    pub direct_io: bool,
}

/// FUSE_DIRECT_IO_ALLOW_MMAP (protocol 7.39, Linux 6.6; fuser has no name for it): files
/// opened with `FOPEN_DIRECT_IO` can still be mapped shared, through the page cache.
const FUSE_DIRECT_IO_ALLOW_MMAP: u64 = 1 << 36;

/// The largest FUSE request (max_write) and the I/O size files advertise (st_blksize).
pub const PREFERRED_IO: usize = 1024 * 1024;

/// Bytes of request buffers in flight at most.
pub const BUFFER_BUDGET: usize = 64 * 1024 * 1024;

fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).max(1) as u32
}

impl<C: AltinnClient + ?Sized> FuseAdapter<C> {
    pub fn new(fs: Arc<AltinnFs<C>>, rt: tokio::runtime::Handle, opts: AdapterOptions) -> Self {
        Self {
            fs,
            rt,
            budget: Arc::new(tokio::sync::Semaphore::new(BUFFER_BUDGET / 1024)),
            busy_poll: BusyPoll::new(opts.busy_poll),
            direct_io: opts.direct_io,
        }
    }

    /// Where the session's device fd goes once the session exists (for busy polling).
    pub fn device_slot(&self) -> Arc<std::sync::atomic::AtomicI32> {
        self.busy_poll.device_slot()
    }

    /// Answer a request from a task, inside a span naming it (log lines inherit it).
    fn spawn<F: Future<Output = ()> + Send + 'static>(
        &self,
        req: &Request<'_>,
        op: &'static str,
        ino: u64,
        f: F,
    ) {
        self.rt.spawn(f.instrument(span(req, op, ino)));
    }

    /// Answer a metadata request on the session thread when it needs no waiting (served
    /// from memory or the index): one poll, no task and no thread hop, which halves the
    /// cost of a warm `find`. A request that must wait goes on to a task as [`Self::spawn`];
    /// the task polls it again with its own waker, so nothing is lost. After an answer given
    /// here, the thread watches briefly for the next request (`busy_poll`).
    fn answer<F: Future<Output = ()> + Send + 'static>(&self, asked: Asked, f: F) {
        self.busy_poll.on_request();
        let mut f = Box::pin(f.instrument(asked.span()));
        let _runtime = self.rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        if f.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(f);
        } else {
            drop(_runtime);
            self.busy_poll.after_answer();
        }
    }
}

/// Send kernel cache invalidations from a thread of their own (a notification can block while
/// the kernel takes a directory lock; it must never hold up a reply).
pub fn start_notifier<C: AltinnClient + ?Sized>(fs: &AltinnFs<C>, notifier: Notifier) {
    type Msg = (Vec<Inval>, Option<std::sync::mpsc::Sender<()>>);
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    std::thread::Builder::new()
        .name("altinnfs-notify".into())
        .spawn(move || {
            for (batch, ack) in rx {
                for i in batch {
                    let r = match &i {
                        Inval::Entry { parent, name } => {
                            notifier.inval_entry(*parent, OsStr::new(name))
                        }
                        Inval::Inode(ino) => notifier.inval_inode(*ino, 0, 0),
                    };
                    if let Err(e) = r {
                        if e.raw_os_error() != Some(libc::ENOENT) {
                            tracing::debug!("invalidate {i:?}: {e}");
                        }
                    }
                }
                if let Some(a) = ack {
                    let _ = a.send(());
                }
            }
        })
        .expect("notifier thread");
    let tx = Mutex::new(tx);
    fs.set_inval_sink(Box::new(move |v, wait| {
        if wait {
            let (atx, arx) = std::sync::mpsc::channel();
            if tx.lock().unwrap().send((v, Some(atx))).is_ok() {
                let _ = arx.recv_timeout(Duration::from_millis(500));
            }
        } else {
            let _ = tx.lock().unwrap().send((v, None));
        }
    }));
}

pub fn to_file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: a.ino,
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: match a.kind {
            Kind::Dir => FileType::Directory,
            Kind::File => FileType::RegularFile,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: blksize(a.kind),
        flags: 0,
    }
}

/// st_blksize of directories: glibc's `opendir` sizes its getdents buffer from it (32 KiB
/// at least, 1 MiB at most), and the kernel allocates and maps a buffer of that size for
/// every FUSE readdir. With 1 MiB that was 256 pages per directory read, most of a `find`'s
/// system time; 32 KiB holds any instance or data type directory in one reply.
pub const DIR_BLKSIZE: u32 = 4096;

/// The I/O size tools pick (cp, cat, dd use st_blksize): for files one 1 MiB FUSE request
/// per write(2) or read(2) instead of eight of 128 KiB.
fn blksize(kind: Kind) -> u32 {
    match kind {
        Kind::Dir => DIR_BLKSIZE,
        Kind::File => PREFERRED_IO as u32,
    }
}

fn kind_of(a: &Attr) -> FileType {
    match a.kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
    }
}

/// The span of one kernel request: what it is, on which inode, from which process.
fn span(req: &Request<'_>, op: &'static str, ino: u64) -> tracing::Span {
    tracing::info_span!("fuse", op, ino, pid = req.pid())
}

/// A metadata request of a walk (lookup, getattr, opendir, readdir, releasedir, forget): a
/// `find` makes about 20 per instance, so its span is debug-level (an info span is formatted
/// for every request, ~15% of the daemon's time), and its failures name op, inode and pid.
#[derive(Clone, Copy)]
struct Asked {
    op: &'static str,
    ino: u64,
    pid: u32,
}

impl Asked {
    fn new(req: &Request<'_>, op: &'static str, ino: u64) -> Self {
        Self {
            op,
            ino,
            pid: req.pid(),
        }
    }

    fn span(self) -> tracing::Span {
        tracing::debug_span!("fuse", op = self.op, ino = self.ino, pid = self.pid)
    }

    /// [`errno`], with what was asked on the log line.
    fn errno(self, e: FsError) -> i32 {
        if e.should_log() {
            tracing::warn!(op = self.op, ino = self.ino, pid = self.pid, "{e}");
        } else {
            tracing::debug!("{e}");
        }
        e.errno()
    }
}

/// The errno of an error, logged once here (with its path, rule, server reason and hint).
fn errno(e: FsError) -> i32 {
    if e.should_log() {
        tracing::warn!("{e}");
    } else {
        tracing::debug!("{e}");
    }
    e.errno()
}

fn name_str(name: &OsStr) -> Option<String> {
    name.to_str().map(String::from)
}

impl<C: AltinnClient + ?Sized> Filesystem for FuseAdapter<C> {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        for cap in [
            consts::FUSE_DO_READDIRPLUS,
            // readdirplus only where it pays (the start of a listing, or a directory whose
            // entries are being looked up): a walk of a party of 100,000 instances does not
            // hand the kernel 100,000 inodes at once.
            consts::FUSE_READDIRPLUS_AUTO,
            consts::FUSE_ATOMIC_O_TRUNC,
            consts::FUSE_PARALLEL_DIROPS,
            // A directory's cached entries are checked against its mtime when a listing
            // starts (see `opendir`); files' cached pages against their mtime and size.
            consts::FUSE_AUTO_INVAL_DATA,
            // Requests of up to max_write bytes (1 MiB) instead of 128 KiB: fewer round trips
            // (fuser always asks for FUSE_BIG_WRITES, which older kernels need for it).
            consts::FUSE_MAX_PAGES,
        ] {
            let _ = config.add_capabilities(cap);
        }
        let mmap_ok = config.add_capabilities(FUSE_DIRECT_IO_ALLOW_MMAP).is_ok();
        if self.direct_io && !mmap_ok {
            tracing::warn!(
                "--direct-io: this kernel cannot map such files (it needs Linux 6.6): a program \
                 that mmaps a file opened read-only gets ENODEV; remount without --direct-io \
                 if one must"
            );
        }
        let _ = config.set_max_write(PREFERRED_IO as u32);
        // As much readahead as the kernel allows (it offers its own maximum).
        if let Err(max) = config.set_max_readahead(1024 * 1024) {
            let _ = config.set_max_readahead(max);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::debug!("filesystem destroyed");
    }

    fn lookup(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        let fs = self.fs.clone();
        let asked = Asked::new(req, "lookup", parent);
        self.answer(asked, async move {
            match fs.lookup(parent, &name).await {
                Ok(a) => reply.entry(&KERNEL_TTL, &to_file_attr(&a), 0),
                Err(e) => reply.error(asked.errno(e)),
            }
        });
    }

    fn forget(&mut self, req: &Request<'_>, ino: u64, nlookup: u64) {
        let _span = Asked::new(req, "forget", ino).span().entered();
        self.fs.forget(ino, nlookup);
    }

    fn getattr(&mut self, req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        let asked = Asked::new(req, "getattr", ino);
        self.answer(asked, async move {
            match fs.getattr(ino).await {
                Ok(a) => reply.attr(&KERNEL_TTL, &to_file_attr(&a)),
                Err(e) => reply.error(asked.errno(e)),
            }
        });
    }

    fn setattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let fs = self.fs.clone();
        self.spawn(req, "setattr", ino, async move {
            match fs.setattr(ino, size, fh).await {
                Ok(a) => reply.attr(&KERNEL_TTL, &to_file_attr(&a)),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn mkdir(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::EINVAL);
        };
        let fs = self.fs.clone();
        self.spawn(req, "mkdir", parent, async move {
            match fs.mkdir(parent, &name).await {
                Ok(a) => reply.entry(&KERNEL_TTL, &to_file_attr(&a), 0),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn unlink(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        let fs = self.fs.clone();
        self.spawn(req, "unlink", parent, async move {
            match fs.unlink(parent, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rmdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOENT);
        };
        let fs = self.fs.clone();
        self.spawn(req, "rmdir", parent, async move {
            match fs.rmdir(parent, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn rename(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let (Some(name), Some(newname)) = (name_str(name), name_str(newname)) else {
            return reply.error(libc::EINVAL);
        };
        let fs = self.fs.clone();
        self.spawn(req, "rename", parent, async move {
            match fs
                .rename(
                    parent,
                    &name,
                    newparent,
                    &newname,
                    RenameFlags::from_raw(flags),
                )
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn open(&mut self, req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let direct = self.direct_io;
        let pid = req.pid();
        self.spawn(req, "open", ino, async move {
            match fs.open_as(ino, OpenFlags::from_raw(flags), pid).await {
                Ok(f) => reply.opened(
                    f.fh,
                    open_flags(&fs, ino) | read_only_direct(direct, flags) | keep_cache(f),
                ),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn read(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        let budget = self.budget.clone();
        let work = async move {
            let _permit = budget.acquire_many_owned(kib(size as usize)).await;
            match fs.read_data(fh, offset.max(0) as u64, size).await {
                Ok(d) => d.with_slice(|s| reply.data(s)),
                Err(e) => reply.error(errno(e)),
            }
        };
        if read_only_direct(self.direct_io, flags) != 0 {
            // No readahead: the reader waits for each request, so a hop to a task is pure
            // latency. A read that needs no waiting (bytes in memory, or in the blob cache
            // file) is answered here, and the thread watches for the next one (tar-sized
            // reads ran 1.6-4x faster when it caught them, else the same).
            self.answer(Asked::new(req, "read", ino), work);
        } else {
            self.spawn(req, "read", ino, work);
        }
    }

    fn write(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let off = offset.max(0) as u64;
        let span = span(req, "write", ino);
        // The usual case: the handle takes the bytes, the kernel gets its answer, then one
        // pwrite from fuser's buffer into the spool (no copy, no allocation). Answering
        // first lets the spool write overlap the writer preparing its next write(2).
        // Nothing can see the bytes missing: this thread reads the
        // next request only after the pwrite, and a failed one fails the handle, so the
        // next write, fsync or close returns its error and nothing is uploaded.
        self.busy_poll.on_request();
        let accepted = {
            let _span = span.enter();
            self.fs.try_accept_write(fh, off, data.len())
        };
        match accepted {
            Some(Ok(a)) => {
                reply.written(data.len() as u32);
                let _span = span.enter();
                if let Err(e) = self.fs.spool_accepted(a, data) {
                    // Said now, when it happened: the kernel already has its answer, and the
                    // file's next write, fsync and close return this error.
                    tracing::warn!("{e}; nothing of this file is uploaded, its next write, fsync and close fail");
                }
                // `cp`'s next write(2) is usually queued by now, or comes within microseconds.
                self.busy_poll.after_answer();
                return;
            }
            Some(Err(e)) => return reply.error(errno(e)),
            None => {}
        }
        // The handle is busy (an upload holds it): copy the bytes and wait in a task. The
        // session thread never waits; the copies are bounded by the kernel, as each write(2)
        // waits for its answer (no writeback cache), and they count against the budget.
        let fs = self.fs.clone();
        let budget = self.budget.clone();
        let data = data.to_vec();
        self.spawn(req, "write", ino, async move {
            let _permit = budget.acquire_many_owned(kib(data.len())).await;
            match fs.write(fh, off, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn flush(&mut self, req: &Request<'_>, ino: u64, fh: u64, _lock: u64, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.spawn(req, "flush", ino, async move {
            match fs.flush(fh).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn release(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        fh: u64,
        flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.spawn(req, "release", ino, async move {
            let released = fs.release(fh).await;
            fs.file_closed(ino, flags & libc::O_ACCMODE != libc::O_RDONLY);
            match released {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn fsync(&mut self, req: &Request<'_>, ino: u64, fh: u64, _ds: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.spawn(req, "fsync", ino, async move {
            match fs.fsync(fh).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    /// With the metadata index, ENOSYS: the kernel stops sending opendir and releasedir
    /// (FUSE_NO_OPENDIR_SUPPORT, Linux 5.1), two round trips less per directory, half of a
    /// `find`'s requests. The kernel then keeps each directory's entries (FOPEN_CACHE_DIR)
    /// and checks them against the directory's mtime when a listing starts
    /// (FUSE_AUTO_INVAL_DATA): `fs::dir_stamps` makes that mtime move with every change, and
    /// a directory's getattr or lookup asks the server first when the index is older than
    /// `metadata_ttl`. Reads come with handle 0; their offsets name their snapshot
    /// (`fs::dirs`). Without the index (no cursor), every opendir is answered.
    fn opendir(&mut self, req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let _span = Asked::new(req, "opendir", ino).span().entered();
        if self.fs.kernel_caches_dirs() {
            return reply.error(libc::ENOSYS);
        }
        reply.opened(self.fs.opendir(ino), 0);
    }

    fn readdir(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        reply: ReplyDirectory,
    ) {
        let fs = self.fs.clone();
        let asked = Asked::new(req, "readdir", ino);
        self.answer(asked, async move {
            let mut reply = reply;
            let r = fs
                .readdir_into(ino, fh, offset, |d, next| {
                    reply.add(d.attr.ino, next, kind_of(&d.attr), &d.name)
                })
                .await;
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(asked.errno(e)),
            }
        });
    }

    fn readdirplus(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        reply: ReplyDirectoryPlus,
    ) {
        let fs = self.fs.clone();
        let asked = Asked::new(req, "readdirplus", ino);
        self.answer(asked, async move {
            let mut reply = reply;
            let r = fs
                .readdirplus_into(ino, fh, offset, |d, next| {
                    let attr = to_file_attr(&d.attr);
                    reply.add(d.attr.ino, next, &d.name, &KERNEL_TTL, &attr, 0)
                })
                .await;
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(asked.errno(e)),
            }
        });
    }

    fn releasedir(&mut self, req: &Request<'_>, ino: u64, fh: u64, _flags: i32, reply: ReplyEmpty) {
        let _span = Asked::new(req, "releasedir", ino).span().entered();
        self.fs.releasedir(fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn setxattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENOTSUP);
        };
        let fs = self.fs.clone();
        let value = value.to_vec();
        self.spawn(req, "setxattr", ino, async move {
            match fs.setxattr(ino, &name, &value).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn getxattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::ENODATA);
        };
        let fs = self.fs.clone();
        self.spawn(req, "getxattr", ino, async move {
            match fs.getxattr(ino, &name).await {
                Ok(v) => xattr_reply(reply, size, &v),
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn listxattr(&mut self, req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let fs = self.fs.clone();
        self.spawn(req, "listxattr", ino, async move {
            match fs.listxattr(ino).await {
                Ok(names) => {
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(n.as_bytes());
                        buf.push(0);
                    }
                    xattr_reply(reply, size, &buf)
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }

    fn removexattr(&mut self, _req: &Request<'_>, _ino: u64, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(libc::ENOTSUP);
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(name) = name_str(name) else {
            return reply.error(libc::EINVAL);
        };
        let fs = self.fs.clone();
        self.spawn(req, "create", parent, async move {
            match fs.create(parent, &name, OpenFlags::from_raw(flags)).await {
                Ok((a, fh)) => {
                    let reply_flags = open_flags(&fs, a.ino) | write_only_direct(flags);
                    reply.created(&KERNEL_TTL, &to_file_attr(&a), 0, fh, reply_flags)
                }
                Err(e) => reply.error(errno(e)),
            }
        });
    }
}

/// `FOPEN_DIRECT_IO` for a file created write-only (`cp`, `>`): its writes go from the
/// writer's buffer straight into our requests instead of through the kernel's page cache
/// first, one copy and one page cache fill less (256 MiB spooled in ~0.13 s instead of
/// ~0.25 s). Nothing is lost: a write-only descriptor can neither read nor be mapped, so
/// `mmap` (fsx, linkers) and reads keep the page cache on descriptors opened read-write.
fn write_only_direct(flags: i32) -> u32 {
    if flags & libc::O_ACCMODE == libc::O_WRONLY {
        consts::FOPEN_DIRECT_IO
    } else {
        0
    }
}

/// `FOPEN_DIRECT_IO` for a file opened read-only under `--direct-io`: each read goes from the
/// bytes in flight straight into the reader's buffer, without filling and copying out the
/// page cache (a third faster for `cp` or `dd bs=1M` of a big file), but every read is then a
/// request of its own, so small reads (tar's 10 KiB) are slower than with readahead.
/// Descriptors opened for writing keep the page cache (fsx, editors, `mmap` writers).
fn read_only_direct(direct_io: bool, flags: i32) -> u32 {
    if direct_io && flags & libc::O_ACCMODE == libc::O_RDONLY {
        consts::FOPEN_DIRECT_IO
    } else {
        0
    }
}

/// `FOPEN_KEEP_CACHE` when the kernel's pages of the file are of the version it was opened
/// at (libfuse's auto_cache): a second `cat` or `cp` of an unchanged file reads from memory.
fn keep_cache(f: OpenFile) -> u32 {
    if f.keep_cache {
        consts::FOPEN_KEEP_CACHE
    } else {
        0
    }
}

/// `FOPEN_DIRECT_IO` for files made per read (a fresh `new.xml` each time): the kernel's page
/// cache never shows an older object.
fn open_flags<C: AltinnClient + ?Sized>(fs: &AltinnFs<C>, ino: u64) -> u32 {
    if fs.direct_io(ino) {
        consts::FOPEN_DIRECT_IO
    } else {
        0
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(libc::ERANGE);
    } else {
        reply.data(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: Kind) -> Attr {
        Attr {
            ino: 5,
            kind,
            size: 3,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime: std::time::UNIX_EPOCH,
            ctime: std::time::UNIX_EPOCH,
            crtime: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn files_advertise_big_io_and_directories_small_getdents_buffers() {
        let f = to_file_attr(&attr(Kind::File));
        assert_eq!(f.blksize, 1024 * 1024, "cp/cat/dd move 1 MiB per call");
        assert_eq!(f.kind, FileType::RegularFile);
        let d = to_file_attr(&attr(Kind::Dir));
        assert_eq!(d.blksize, 4096, "glibc's readdir buffer stays at 32 KiB");
        assert_eq!(d.kind, FileType::Directory);
    }
}
