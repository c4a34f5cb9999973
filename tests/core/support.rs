//! The core tier's harness: an `AltinnFs` over the emulator's service in process
//! (`InProcessClient`: the same checks and refusals as the emulator over HTTP), driven through
//! its facade as the kernel would drive it, with no `/dev/fuse` and no mount.
//!
//! Tests act as a user does (`write_file`, `cat`, `ls`, `mv`, `rm`) and get errnos back, so a
//! test reads like the shell session it stands for. This file is the one place that knows the
//! facade's signatures: when the core's API changes, adapt it here.
#![allow(dead_code)]

use altinnfs::altinn::faults::FaultClient;
use altinnfs::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
use altinnfs::emulator::inprocess::InProcessClient;
use altinnfs::fs::inode::ROOT_INO;
use altinnfs::fs::{AltinnFs, Attr, FsConfig, FsError, Inval};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use altinnfs::altinn::client::AltinnError;
pub use altinnfs::altinn::faults::Op;
/// The fault wrapper's operations are `Call`s, the model's counters `Op`s: the same enum.
pub use altinnfs::altinn::faults::{Fault, Op as Call};
pub use altinnfs::emulator::inprocess::{status_error, FaultWhen, UploadSeen};
pub use altinnfs::fs::Kind;

/// A result as a process sees it: a value or an errno.
pub type R<T> = Result<T, i32>;

fn errno(e: FsError) -> i32 {
    e.errno()
}

/// An open file: the handle the kernel would hold and the inode it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Open {
    pub fh: u64,
    pub ino: u64,
}

/// The model of Altinn behind the fault wrapper: what tests script and count.
pub type Faults = FaultClient<InProcessClient>;

/// The client the core talks to: the one retry policy (as a mount has it, but fast) over the
/// fault wrapper, so fault scenarios exercise the retries a mount really makes.
pub type Client = Retrying<Arc<Faults>>;

/// The "server" side of a core: derefs to the `InProcessClient` (its state, counters, elements).
pub struct Server(Arc<Faults>);

impl std::ops::Deref for Server {
    type Target = InProcessClient;
    fn deref(&self) -> &InProcessClient {
        self.0.inner()
    }
}

pub struct Core {
    pub fs: Arc<AltinnFs<Client>>,
    /// The model of Altinn (what was stored, request counts).
    pub client: Server,
    /// The fault wrapper between the core and the model: `faults.fail_call(Call::CreateData,
    /// 3, Fault::transient(None))` fails the third POST.
    pub faults: Arc<Faults>,
    pub spool: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Retries that wait milliseconds, so fault scenarios stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(50),
    }
}

impl Core {
    pub async fn new(client: InProcessClient) -> Self {
        Self::with(client, |_| {}).await
    }

    /// The sample app (main form `model`, `attachments` pdf/png/txt ≤ 1 MiB ≤ 5, `anything`).
    pub async fn sample() -> Self {
        Self::new(InProcessClient::sample()).await
    }

    pub async fn with(client: InProcessClient, f: impl FnOnce(&mut FsConfig)) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("altinnfs-core-")
            .tempdir_in(scratch_dir())
            .unwrap();
        let spool = tmp.path().join("spool");
        let faults = Arc::new(FaultClient::new(client));
        let retrying = Retrying::new(faults.clone(), fast_retry(), PagePolicy::default());
        let mut cfg = FsConfig::new(&spool);
        f(&mut cfg);
        let fs = AltinnFs::new(Arc::new(retrying), cfg).await.expect("core");
        Self {
            fs: Arc::new(fs),
            client: Server(faults.clone()),
            faults,
            spool,
            _tmp: tmp,
        }
    }

    /// Fail the next `n` calls of `op` with `fault` (a server that stays down).
    pub fn fail_next_calls(&self, op: Call, n: usize, fault: Fault) {
        let first = self.faults.calls(op) + 1;
        for k in first..first + n {
            self.faults.fail_call(op, k, fault.clone());
        }
    }

    /// Record the kernel cache invalidations the core sends from now on: (invalidation,
    /// whether the sender waits for the kernel).
    pub fn record_invalidations(&self) -> Arc<std::sync::Mutex<Vec<(Inval, bool)>>> {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        self.fs
            .set_inval_sink(Box::new(move |v: Vec<Inval>, wait: bool| {
                let mut seen = sink.lock().unwrap();
                seen.extend(v.into_iter().map(|i| (i, wait)));
            }));
        seen
    }

    // ------------------------------------------------------------------ paths

    /// The inode of a path relative to the mount's root, looked up name by name.
    pub async fn ino(&self, path: &str) -> R<u64> {
        let mut ino = ROOT_INO;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            ino = self.fs.lookup(ino, name).await.map_err(errno)?.ino;
        }
        Ok(ino)
    }

    /// The parent's inode and the last name of a path.
    pub async fn parent_of<'a>(&self, path: &'a str) -> R<(u64, &'a str)> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok((self.ino(dir).await?, name))
    }

    // ------------------------------------------------------------------ syscalls

    pub async fn stat(&self, path: &str) -> R<Attr> {
        let ino = self.ino(path).await?;
        self.fs.getattr(ino).await.map_err(errno)
    }

    pub async fn exists(&self, path: &str) -> bool {
        self.stat(path).await.is_ok()
    }

    /// `open(2)` of an existing file.
    pub async fn open(&self, path: &str, flags: i32) -> R<Open> {
        let ino = self.ino(path).await?;
        let fh = self.fs.open(ino, flags).await.map_err(errno)?;
        Ok(Open { fh, ino })
    }

    /// `open(2)` with `O_CREAT`: the kernel looks the name up first and sends `create` only
    /// when it is missing (`O_EXCL` on an existing name is the kernel's EEXIST).
    pub async fn create(&self, path: &str, flags: i32) -> R<Open> {
        match self.ino(path).await {
            Ok(_) if flags & libc::O_EXCL != 0 => Err(libc::EEXIST),
            Ok(_) => self.open(path, flags).await,
            Err(libc::ENOENT) => {
                let (parent, name) = self.parent_of(path).await?;
                let (attr, fh) = self
                    .fs
                    .create(parent, name, flags | libc::O_CREAT)
                    .await
                    .map_err(errno)?;
                Ok(Open { fh, ino: attr.ino })
            }
            Err(e) => Err(e),
        }
    }

    pub async fn write(&self, f: Open, off: u64, bytes: &[u8]) -> R<usize> {
        let n = self.fs.write(f.fh, off, bytes).await.map_err(errno)?;
        Ok(n as usize)
    }

    pub async fn read(&self, f: Open, off: u64, size: u32) -> R<Vec<u8>> {
        self.fs.read(f.fh, off, size).await.map_err(errno)
    }

    pub async fn fsync(&self, f: Open) -> R<()> {
        self.fs.fsync(f.fh).await.map_err(errno)
    }

    /// `close(2)`: the kernel flushes (whose errno close returns), then releases.
    pub async fn close(&self, f: Open) -> R<()> {
        let flushed = self.fs.flush(f.fh).await.map_err(errno);
        let released = self.fs.release(f.fh).await.map_err(errno);
        flushed.and(released)
    }

    pub async fn readdir(&self, path: &str) -> R<Vec<(String, Attr)>> {
        let ino = self.ino(path).await?;
        let entries = self.fs.readdir(ino).await.map_err(errno)?;
        Ok(entries.into_iter().map(|e| (e.name, e.attr)).collect())
    }

    pub async fn rename(&self, from: &str, to: &str) -> R<()> {
        self.rename_flags(from, to, 0).await
    }

    /// `renameat2(2)`: the kernel looks the source up first (ENOENT before anything else).
    pub async fn rename_flags(&self, from: &str, to: &str, flags: u32) -> R<()> {
        self.ino(from).await?;
        let (p1, n1) = self.parent_of(from).await?;
        let (p2, n2) = self.parent_of(to).await?;
        self.fs.rename(p1, n1, p2, n2, flags).await.map_err(errno)
    }

    pub async fn unlink(&self, path: &str) -> R<()> {
        let (parent, name) = self.parent_of(path).await?;
        self.fs.unlink(parent, name).await.map_err(errno)
    }

    pub async fn mkdir(&self, path: &str) -> R<Attr> {
        let (parent, name) = self.parent_of(path).await?;
        self.fs.mkdir(parent, name).await.map_err(errno)
    }

    pub async fn rmdir(&self, path: &str) -> R<()> {
        let (parent, name) = self.parent_of(path).await?;
        self.fs.rmdir(parent, name).await.map_err(errno)
    }

    /// `truncate(2)` by path (no open handle).
    pub async fn truncate(&self, path: &str, size: u64) -> R<Attr> {
        let ino = self.ino(path).await?;
        self.fs.setattr(ino, Some(size), None).await.map_err(errno)
    }

    /// `ftruncate(2)` on an open handle.
    pub async fn ftruncate(&self, f: Open, size: u64) -> R<Attr> {
        self.fs
            .setattr(f.ino, Some(size), Some(f.fh))
            .await
            .map_err(errno)
    }

    /// `chmod`/`chown`/`utimes`: a setattr that changes no size.
    pub async fn touch_attrs(&self, path: &str) -> R<Attr> {
        let ino = self.ino(path).await?;
        self.fs.setattr(ino, None, None).await.map_err(errno)
    }

    pub async fn getxattr(&self, path: &str, name: &str) -> R<String> {
        let ino = self.ino(path).await?;
        let v = self.fs.getxattr(ino, name).await.map_err(errno)?;
        Ok(String::from_utf8(v).unwrap())
    }

    pub async fn listxattr(&self, path: &str) -> R<Vec<String>> {
        let ino = self.ino(path).await?;
        self.fs.listxattr(ino).await.map_err(errno)
    }

    pub async fn setxattr(&self, path: &str, name: &str, value: &str) -> R<()> {
        let ino = self.ino(path).await?;
        self.fs
            .setxattr(ino, name, value.as_bytes())
            .await
            .map_err(errno)
    }

    // ------------------------------------------------------------------ what tools do

    /// `cp SRC path` / `echo > path`: open (create or truncate), write, close. The first errno
    /// wins; a failed write still closes the file, as a process exiting would.
    pub async fn write_file(&self, path: &str, bytes: &[u8]) -> R<()> {
        let f = self
            .create(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
            .await?;
        let wrote = self.write_chunks(f, 0, bytes).await;
        let closed = self.close(f).await;
        wrote.and(closed)
    }

    /// `echo >> path`: open for append (the old bytes first), write at the end, close.
    pub async fn append(&self, path: &str, bytes: &[u8]) -> R<()> {
        let f = self.open(path, libc::O_WRONLY | libc::O_APPEND).await?;
        let end = self.fs.getattr(f.ino).await.map_err(errno)?.size;
        let wrote = self.write_chunks(f, end, bytes).await;
        let closed = self.close(f).await;
        wrote.and(closed)
    }

    /// Writes in 128 KiB pieces, as the kernel splits them.
    async fn write_chunks(&self, f: Open, off: u64, bytes: &[u8]) -> R<()> {
        for (i, chunk) in bytes.chunks(128 * 1024).enumerate() {
            self.write(f, off + (i * 128 * 1024) as u64, chunk).await?;
        }
        Ok(())
    }

    /// `touch path` of a new file: create and close with no bytes.
    pub async fn touch(&self, path: &str) -> R<()> {
        let f = self.create(path, libc::O_WRONLY | libc::O_CREAT).await?;
        self.close(f).await
    }

    /// `cat path`.
    pub async fn cat(&self, path: &str) -> R<Vec<u8>> {
        let f = self.open(path, libc::O_RDONLY).await?;
        let mut out = Vec::new();
        let r = loop {
            match self.read(f, out.len() as u64, 128 * 1024).await {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(e),
            }
        };
        let _ = self.close(f).await;
        r.map(|_| out)
    }

    pub async fn cat_str(&self, path: &str) -> R<String> {
        Ok(String::from_utf8(self.cat(path).await?).unwrap())
    }

    /// `ls path`: the names, sorted.
    pub async fn ls(&self, path: &str) -> R<Vec<String>> {
        let mut v: Vec<String> = self
            .readdir(path)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n != "." && n != "..")
            .collect();
        v.sort();
        Ok(v)
    }

    // ------------------------------------------------------------------ the server's side

    /// `PARTY/GUID` of the first instance of a party (sorted by GUID).
    pub fn instance_dir(&self, party: &str) -> String {
        let mut v: Vec<String> = self
            .client
            .instances()
            .into_iter()
            .filter(|i| i.party_id() == party)
            .map(|i| i.guid().to_string())
            .collect();
        v.sort();
        format!("{party}/{}", v[0])
    }

    /// The file names of one data type of an instance, on the server, sorted.
    pub fn server_names(&self, dir: &str, data_type: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .client
            .elements(guid_of(dir))
            .into_iter()
            .filter(|e| e.data_type == data_type)
            .map(|e| e.filename.unwrap_or_default())
            .collect();
        v.sort();
        v
    }

    /// The bytes of the element named `filename` of an instance, on the server.
    pub fn server_bytes(&self, dir: &str, filename: &str) -> Option<Vec<u8>> {
        let el = self
            .client
            .elements(guid_of(dir))
            .into_iter()
            .find(|e| e.filename.as_deref() == Some(filename))?;
        self.client.blob(&el.id).map(|b| b.to_vec())
    }

    /// Files kept in `unsent/`: (bytes files, sidecars).
    pub fn unsent(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let dir = self.fs.unsent_dir();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .partition(|p| p.extension().is_none_or(|e| e != "json"))
    }
}

/// Where spools live: `ALTINNFS_TEST_TMP`, else `/dev/shm` (a tmpfs: thousands of model
/// cases make thousands of spool files, and a disk under load makes each `open` cost ~0.3 ms),
/// else the system's temp dir.
fn scratch_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("ALTINNFS_TEST_TMP") {
            return d.into();
        }
        let shm = PathBuf::from("/dev/shm");
        if tempfile::tempdir_in(&shm).is_ok() {
            shm
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

/// The GUID of `PARTY/GUID[/...]`.
pub fn guid_of(dir: &str) -> &str {
    dir.split('/').nth(1).unwrap()
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (((i as u64 * 2654435761u64) >> 7) as u8) ^ seed)
        .collect()
}

/// A server error of a given status, as the client reports it.
pub fn http(status: u16, message: &str) -> AltinnError {
    status_error(status, "X", "test", message)
}

/// A lost connection (the outcome of a write unknown).
pub fn network(message: &str) -> AltinnError {
    AltinnError::Network {
        method: "X".into(),
        path: "test".into(),
        message: message.into(),
    }
}
