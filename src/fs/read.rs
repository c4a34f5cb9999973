//! Streaming reads. One streaming GET per blob feeds an on-disk cache file of that blob
//! (0600 in a 0700 dir) and runs ahead of the furthest reader by a bounded window; every read,
//! forwards or backwards, is served from that file once the stream has passed its end, and a
//! reader ahead of the stream waits for it. Altinn sends no ETag and honours no Range, so the
//! cache is keyed by the element's `lastChanged` and `size`. A body that ends early fails the
//! reads past that point with EIO; it never looks like a shorter whole file.

use crate::altinn::client::{AltinnClient, AltinnError};
use crate::altinn::ids::{ElementId, InstanceId};
use crate::altinn::model::DataElement;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod prefetch;
pub use prefetch::{PrefetchLimits, PrefetchStats, Prefetched};

/// How far the download may run ahead of the furthest read.
pub const PREFETCH_WINDOW: u64 = 64 * 1024 * 1024;

/// Readers waiting for a download are woken at least every this many bytes.
const NOTIFY_STEP: u64 = 256 * 1024;

/// How long an unfinished download outlives its last reader.
pub const IDLE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes in the cache file, from offset 0.
    pub have: u64,
    pub done: bool,
    pub error: Option<AltinnError>,
}

/// One blob being (or having been) downloaded into a cache file.
pub struct Blob {
    pub id: String,
    pub last_changed: Option<chrono::DateTime<chrono::Utc>>,
    pub size: u64,
    file: tempfile::NamedTempFile,
    progress: watch::Receiver<Progress>,
    wanted: watch::Sender<u64>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Open file handles using this blob.
    users: AtomicUsize,
    last_used: Mutex<Instant>,
    /// Where the bytes come from, so a failed prefetch can start over under its reader.
    inst: InstanceId,
    element: DataElement,
    /// Started by the walk prefetcher (`prefetch`), not by a reader.
    prefetched: bool,
    /// Prefetched and not opened by any reader yet: evicted first.
    unclaimed: AtomicBool,
}

impl Blob {
    fn matches(&self, el: &DataElement) -> bool {
        self.last_changed == el.last_changed && self.size == el.size.max(0) as u64
    }

    fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    fn complete(&self) -> bool {
        let p = self.progress.borrow();
        p.done && p.error.is_none()
    }

    /// Read `len` bytes at `off`, waiting for the stream when it has not got there yet.
    pub async fn read(&self, off: u64, len: u32) -> Result<Vec<u8>, AltinnError> {
        *self.last_used.lock().unwrap() = Instant::now();
        if off >= self.size {
            return Ok(Vec::new());
        }
        let need = (off + len as u64).min(self.size);
        self.wanted.send_if_modified(|w| {
            if need > *w {
                *w = need;
                true
            } else {
                false
            }
        });
        let mut rx = self.progress.clone();
        loop {
            let p = rx.borrow_and_update().clone();
            if p.have >= need {
                break;
            }
            if let Some(e) = p.error {
                return Err(e);
            }
            if p.done {
                // The stream ended early without saying so: never pass it off as whole.
                return Err(AltinnError::Truncated {
                    path: format!("data/{}", self.id),
                    expected: self.size,
                    got: p.have,
                });
            }
            if rx.changed().await.is_err() {
                return Err(AltinnError::Local("download stopped".into()));
            }
        }
        read_uninit(self.file.as_file(), off, (need - off) as usize)
            .map_err(|e| AltinnError::Local(format!("cache file: {e}")))
    }

    fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `len` bytes at `off` (fewer at end of file) into a fresh buffer that is not zeroed first:
/// read replies are up to 1 MiB each, and clearing them cost as much as the read.
fn read_uninit(f: &std::fs::File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let mut done = 0usize;
    while done < len {
        // SAFETY: pread writes at most `len - done` bytes into the spare capacity starting at
        // `done`; only the bytes it reports are then counted as initialised.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                buf.as_mut_ptr().add(done) as *mut libc::c_void,
                len - done,
                (off + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    // SAFETY: the first `done` bytes were written by pread.
    unsafe { buf.set_len(done) };
    Ok(buf)
}

/// All blobs in the cache directory, bounded by `max_bytes` of complete, unused blobs.
pub struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    blobs: Mutex<HashMap<String, Arc<Blob>>>,
}

impl BlobCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        super::make_private_dir(&dir)?;
        Ok(Self {
            dir,
            max_bytes,
            blobs: Mutex::new(HashMap::new()),
        })
    }

    /// The blob of `el` for a new reader: the cached one while `lastChanged` and `size` match
    /// (and it did not fail), else a fresh download.
    pub fn open<C: AltinnClient + ?Sized>(
        &self,
        client: Arc<C>,
        inst: InstanceId,
        el: &DataElement,
    ) -> std::io::Result<Arc<Blob>> {
        self.drop_idle_partials();
        let mut blobs = self.blobs.lock().unwrap();
        if let Some(b) = blobs.get(&el.id) {
            let p = b.progress();
            if b.matches(el) && p.error.is_none() {
                b.users.fetch_add(1, Ordering::SeqCst);
                b.unclaimed.store(false, Ordering::SeqCst);
                return Ok(b.clone());
            }
        }
        let blob = self.start(client, inst, el, 1)?;
        blobs.insert(el.id.clone(), blob.clone());
        drop(blobs);
        self.evict();
        Ok(blob)
    }

    /// A new blob of `el` with its download running, used by `users` readers (0: a prefetch).
    fn start<C: AltinnClient + ?Sized>(
        &self,
        client: Arc<C>,
        inst: InstanceId,
        el: &DataElement,
        users: usize,
    ) -> std::io::Result<Arc<Blob>> {
        let id = ElementId::parse(&el.id)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.dir)?;
        let writer = file.reopen()?;
        let size = el.size.max(0) as u64;
        let (ptx, prx) = watch::channel(Progress::default());
        let (wtx, wrx) = watch::channel(0u64);
        let prefetched = users == 0;
        let blob = Arc::new(Blob {
            id: el.id.clone(),
            last_changed: el.last_changed,
            size,
            file,
            progress: prx,
            wanted: wtx,
            task: Mutex::new(None),
            users: AtomicUsize::new(users),
            last_used: Mutex::new(Instant::now()),
            inst,
            element: el.clone(),
            prefetched,
            unclaimed: AtomicBool::new(prefetched),
        });
        let task = tokio::spawn(download(client, inst, id, size, writer, ptx, wrx));
        *blob.task.lock().unwrap() = Some(task);
        Ok(blob)
    }

    /// A reader closed. An unfinished download nobody reads any more is kept for
    /// `IDLE_GRACE` (paused by the prefetch window), so tools that open a file many times
    /// (`dd skip=` in a loop, `file`, thumbnailers) share one GET; after that it is dropped.
    pub fn release(&self, blob: &Arc<Blob>) {
        blob.users.fetch_sub(1, Ordering::SeqCst);
        *blob.last_used.lock().unwrap() = Instant::now();
        self.drop_idle_partials();
        self.evict();
    }

    /// Stop and forget unfinished downloads that nobody has read for `IDLE_GRACE`.
    fn drop_idle_partials(&self) {
        let mut blobs = self.blobs.lock().unwrap();
        blobs.retain(|_, b| {
            let stale = b.users.load(Ordering::SeqCst) == 0
                && !b.complete()
                && b.last_used.lock().unwrap().elapsed() > IDLE_GRACE;
            if stale {
                b.stop();
            }
            !stale
        });
    }

    /// Forget a blob (its element changed or went away).
    pub fn invalidate(&self, id: &str) {
        let mut blobs = self.blobs.lock().unwrap();
        if let Some(b) = blobs.get(id) {
            if b.users.load(Ordering::SeqCst) == 0 {
                blobs.remove(id);
            }
        }
    }

    /// Drop least recently used complete blobs nobody reads until under `max_bytes`.
    fn evict(&self) {
        let mut blobs = self.blobs.lock().unwrap();
        let mut total: u64 = blobs.values().map(|b| b.progress().have).sum();
        if total <= self.max_bytes {
            return;
        }
        // Prefetched blobs nobody opened go first, then the least recently used.
        let mut idle: Vec<(bool, Instant, String, u64)> = blobs
            .values()
            .filter(|b| b.users.load(Ordering::SeqCst) == 0)
            .map(|b| {
                (
                    !b.unclaimed.load(Ordering::SeqCst),
                    *b.last_used.lock().unwrap(),
                    b.id.clone(),
                    b.progress().have,
                )
            })
            .collect();
        idle.sort();
        for (_, _, id, have) in idle {
            if total <= self.max_bytes {
                break;
            }
            blobs.remove(&id);
            total -= have;
        }
    }

    pub fn len(&self) -> usize {
        self.blobs.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[allow(clippy::too_many_arguments)]
async fn download<C: AltinnClient + ?Sized>(
    client: Arc<C>,
    inst: InstanceId,
    id: ElementId,
    size: u64,
    file: std::fs::File,
    progress: watch::Sender<Progress>,
    mut wanted: watch::Receiver<u64>,
) {
    // Readers learn of the bytes written so far together with the error.
    let fail = |e: AltinnError, have: u64| {
        progress.send_modify(|p| {
            p.have = have;
            p.error = Some(e);
            p.done = true;
        });
    };
    let dl = match client.download(&inst, &id).await {
        Ok(d) => d,
        Err(e) => return fail(e, 0),
    };
    let mut stream = dl.stream;
    let mut have = 0u64;
    let mut notified = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return fail(e, have),
        };
        if have + chunk.len() as u64 > size {
            // More bytes than the element's size: which of them are right is unknown, so
            // the reads past what is known good fail rather than return a cut-off body.
            let got = have + chunk.len() as u64;
            let path = format!("data/{id}");
            return fail(
                AltinnError::Truncated {
                    path,
                    expected: size,
                    got,
                },
                have,
            );
        }
        if let Err(e) = file.write_all_at(&chunk, have) {
            return fail(AltinnError::Local(format!("cache file: {e}")), have);
        }
        have += chunk.len() as u64;
        // Wake the waiting readers every NOTIFY_STEP bytes, or at once when this chunk
        // reaches what the furthest reader asked for, not on every small network chunk.
        if have - notified >= NOTIFY_STEP || have >= *wanted.borrow() || have >= size {
            notified = have;
            progress.send_modify(|p| p.have = have);
        }
        // Stay at most PREFETCH_WINDOW ahead of the furthest reader (telling the readers
        // everything written before pausing, or a reader could wait on a paused download).
        if have > *wanted.borrow() + PREFETCH_WINDOW && notified < have {
            notified = have;
            progress.send_modify(|p| p.have = have);
        }
        while have > *wanted.borrow() + PREFETCH_WINDOW {
            if wanted.changed().await.is_err() {
                return;
            }
        }
    }
    if have < size {
        return fail(
            AltinnError::Truncated {
                path: format!("data/{id}"),
                expected: size,
                got: have,
            },
            have,
        );
    }
    progress.send_modify(|p| {
        p.have = have;
        p.done = true;
    });
}

#[cfg(test)]
mod read_uninit_tests {
    use super::read_uninit;
    use std::io::Write;

    #[test]
    fn reads_exact_ranges_and_stops_at_end_of_file() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        assert_eq!(read_uninit(&f, 0, 10).unwrap(), data[..10]);
        assert_eq!(read_uninit(&f, 4096, 3000).unwrap(), data[4096..7096]);
        assert_eq!(read_uninit(&f, 9_990, 100).unwrap(), data[9_990..]);
        assert!(read_uninit(&f, 20_000, 10).unwrap().is_empty());
    }
}
