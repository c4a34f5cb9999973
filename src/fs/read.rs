//! Streaming reads. One streaming GET per blob. A reader that moves forward is answered from
//! the bytes in flight, gathered in memory into aligned 2 MiB blocks (`ring`, `block_mem`); a
//! writer thread fills an on-disk cache file of the blob (0600 in a 0700 dir) off that path,
//! a few blocks at a time with O_DIRECT (`disk`), and a read behind what memory
//! holds, forwards or backwards, is served from the file. The download runs ahead of the
//! furthest reader by a bounded window, and a reader ahead of it waits. Altinn sends no ETag
//! and honours no Range, so the cache is keyed by the element's `lastChanged` and `size`. A
//! body that ends early or runs long fails the reads past the good bytes with EIO; it never
//! looks like a shorter or padded whole file.

use crate::altinn::client::{AltinnClient, AltinnError};
use crate::altinn::ids::{ElementId, InstanceId};
use crate::altinn::model::DataElement;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod block_mem;
mod disk;
mod prefetch;
mod ring;
pub use prefetch::{PrefetchLimits, PrefetchStats, Prefetched};
pub use ring::ReadData;

/// How far the download may run ahead of the furthest read when nobody reads it yet (a walk
/// prefetch), into the cache file.
pub const PREFETCH_WINDOW: u64 = 64 * 1024 * 1024;

/// How far the download runs ahead of the furthest read while a reader has the blob open:
/// those bytes wait in memory, so the reader never goes to the cache file.
pub const RING_AHEAD: u64 = 16 * 1024 * 1024;

/// Bytes of one blob held in memory at most: `RING_AHEAD` ahead of the furthest read and the
/// rest behind it, for readers that overlap or lag a little.
pub const RING_MAX: u64 = 32 * 1024 * 1024;

/// Watchers of a download's progress (the walk prefetcher, `status`) hear of it at least
/// every this many bytes; a waiting reader hears as soon as its bytes are there.
const NOTIFY_STEP: u64 = 4 * 1024 * 1024;

/// How long an unfinished download outlives its last reader.
pub const IDLE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes downloaded (in memory or in the cache file), from offset 0.
    pub have: u64,
    /// Bytes written to the cache file, from offset 0.
    pub on_disk: u64,
    /// The cache file could not be written: memory is all there is.
    pub disk_failed: bool,
    pub done: bool,
    pub error: Option<AltinnError>,
}

/// What a blob's download, its disk writer and its readers share.
struct Shared {
    id: String,
    ring: Mutex<ring::Ring>,
    progress: watch::Sender<Progress>,
    /// The end of the furthest read asked for.
    wanted: watch::Sender<u64>,
    /// Open file handles using this blob.
    users: AtomicUsize,
    /// Set by tests to make cache file writes fail as on a full disk.
    disk_fault: Arc<AtomicBool>,
    /// The cache file (0600), made by the writer thread, off the path of `open`.
    file: std::sync::OnceLock<tempfile::NamedTempFile>,
    /// The smallest end of the bytes a waiting reader needs (u64::MAX: nobody waits). The
    /// download updates `have` silently and wakes the readers only once it reaches this: a
    /// wake-up per network chunk and per waiting reader cost more than the reads themselves
    /// with several kernel readahead requests in flight.
    waiting_for: AtomicU64,
    /// Someone waits for the cache file to grow (a reader behind memory, or the download for
    /// memory to be freed): only then does the writer wake the watchers of `progress`.
    want_disk: AtomicBool,
}

impl Shared {
    /// Let chunks go from memory: those in the cache file (or, with no cache file, those the
    /// readers left `RING_MAX - RING_AHEAD` behind), down to `RING_MAX` while someone reads
    /// and to nothing while nobody does.
    fn trim(&self) {
        let p = self.progress.borrow().clone();
        let keep = if self.users.load(Ordering::SeqCst) > 0 {
            RING_MAX
        } else {
            0
        };
        let upto = if p.disk_failed {
            self.wanted.borrow().saturating_sub(RING_MAX - RING_AHEAD)
        } else {
            p.on_disk
        };
        self.ring.lock().unwrap().trim(keep, upto);
    }

    /// Set `progress` without waking anyone (the waiters asked through `waiting_for` and
    /// `want_disk`; the rest only look).
    fn set_quietly(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_if_modified(|p| {
            f(p);
            false
        });
        // Pairs with the fence in `ask_to_be_woken`: either the reader sees the new value, or
        // the download sees the reader's wish.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Whether a reader waits for bytes this download has now (then the caller wakes the
    /// watchers of `progress`).
    fn readers_wait_for(&self, have: u64) -> bool {
        let asked = self.waiting_for.load(Ordering::SeqCst);
        if asked > have {
            return false;
        }
        // The woken readers ask again for what they still miss.
        let _ =
            self.waiting_for
                .compare_exchange(asked, u64::MAX, Ordering::SeqCst, Ordering::SeqCst);
        true
    }

    /// A reader is about to wait for the bytes up to `need`, or (`disk`) for them to reach
    /// the cache file. False: they came meanwhile, look again instead.
    fn ask_to_be_woken(&self, need: u64, disk: bool) -> bool {
        if disk {
            self.want_disk.store(true, Ordering::SeqCst);
        } else {
            self.waiting_for.fetch_min(need, Ordering::SeqCst);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        let p = self.progress.borrow();
        if disk {
            p.on_disk < need && !p.disk_failed
        } else {
            p.have < need && !p.done
        }
    }
}

/// One blob being (or having been) downloaded.
pub struct Blob {
    pub id: String,
    pub last_changed: Option<chrono::DateTime<chrono::Utc>>,
    pub size: u64,
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        self.shared.progress.borrow().clone()
    }

    fn users(&self) -> usize {
        self.shared.users.load(Ordering::SeqCst)
    }

    fn complete(&self) -> bool {
        let p = self.shared.progress.borrow();
        p.done && p.error.is_none()
    }

    /// Read `len` bytes at `off`, waiting for the stream when it has not got there yet: from
    /// memory when the bytes are still there, else from the cache file.
    pub async fn read(&self, off: u64, len: u32) -> Result<ReadData, AltinnError> {
        *self.last_used.lock().unwrap() = Instant::now();
        if off >= self.size {
            return Ok(ReadData::default());
        }
        let need = (off + len as u64).min(self.size);
        self.shared.wanted.send_if_modified(|w| {
            if need > *w {
                *w = need;
                true
            } else {
                false
            }
        });
        let mut rx = self.shared.progress.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            if p.have >= need {
                if let Some(d) = self.shared.ring.lock().unwrap().slice(off, need) {
                    return Ok(d);
                }
                if let Some(file) = self.shared.file.get().filter(|_| p.on_disk >= need) {
                    return read_uninit(file.as_file(), off, (need - off) as usize)
                        .map(ReadData::from)
                        .map_err(|e| AltinnError::Local(format!("cache file: {e}")));
                }
                if p.disk_failed {
                    return Err(AltinnError::Local(format!(
                        "bytes {off}..{need} of data element {} are neither in memory nor in \
                         the cache file, which could not be written (disk full?)",
                        self.id
                    )));
                }
                // Gone from memory and not yet seen in the file: the writer is about to say so.
                if !self.shared.ask_to_be_woken(need, true) {
                    continue;
                }
            } else if let Some(e) = p.error {
                return Err(e);
            } else if p.done {
                // The stream ended early without saying so: never pass it off as whole.
                return Err(AltinnError::Truncated {
                    path: format!("data/{}", self.id),
                    expected: self.size,
                    got: p.have,
                });
            } else if !self.shared.ask_to_be_woken(need, false) {
                continue;
            }
            if rx.changed().await.is_err() {
                return Err(AltinnError::Local("download stopped".into()));
            }
        }
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
    /// Tests: cache file writes fail as on a full disk.
    disk_fault: Arc<AtomicBool>,
}

impl BlobCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        super::make_private_dir(&dir)?;
        Ok(Self {
            dir,
            max_bytes,
            blobs: Mutex::new(HashMap::new()),
            disk_fault: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Make writes to cache files fail from now on, as on a full disk (for tests).
    pub fn fail_disk_writes(&self, fail: bool) {
        self.disk_fault.store(fail, Ordering::SeqCst);
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
                b.shared.users.fetch_add(1, Ordering::SeqCst);
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
        let size = el.size.max(0) as u64;
        let shared = Arc::new(Shared {
            id: el.id.clone(),
            ring: Mutex::new(ring::Ring::for_size(size)),
            progress: watch::Sender::new(Progress::default()),
            wanted: watch::Sender::new(0),
            users: AtomicUsize::new(users),
            disk_fault: self.disk_fault.clone(),
            file: std::sync::OnceLock::new(),
            waiting_for: AtomicU64::new(u64::MAX),
            want_disk: AtomicBool::new(false),
        });
        let prefetched = users == 0;
        let blob = Arc::new(Blob {
            id: el.id.clone(),
            last_changed: el.last_changed,
            size,
            shared: shared.clone(),
            task: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            inst,
            element: el.clone(),
            prefetched,
            unclaimed: AtomicBool::new(prefetched),
        });
        let dir = self.dir.clone();
        let task = tokio::spawn(download(client, inst, id, size, shared, dir, prefetched));
        *blob.task.lock().unwrap() = Some(task);
        Ok(blob)
    }

    /// A reader closed. An unfinished download nobody reads any more is kept for
    /// `IDLE_GRACE` (paused by the prefetch window), so tools that open a file many times
    /// (`dd skip=` in a loop, `file`, thumbnailers) share one GET; after that it is dropped.
    pub fn release(&self, blob: &Arc<Blob>) {
        blob.shared.users.fetch_sub(1, Ordering::SeqCst);
        *blob.last_used.lock().unwrap() = Instant::now();
        // Nobody reads it now: what is in the cache file leaves memory.
        blob.shared.trim();
        self.drop_idle_partials();
        self.evict();
    }

    /// Stop and forget unfinished downloads that nobody has read for `IDLE_GRACE`.
    fn drop_idle_partials(&self) {
        let mut blobs = self.blobs.lock().unwrap();
        blobs.retain(|_, b| {
            let stale = b.users() == 0
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
            if b.users() == 0 {
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
            .filter(|b| b.users() == 0)
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

/// The one GET of a blob: each chunk goes into memory for the readers and to the cache file's
/// writer, and the download stays within its window ahead of the readers. A prefetch asks
/// once: retries (a stalled or refused GET, `--timeout` each) would hold its slot, and its
/// failure costs nothing, as the reader's own open asks again.
async fn download<C: AltinnClient + ?Sized>(
    client: Arc<C>,
    inst: InstanceId,
    id: ElementId,
    size: u64,
    shared: Arc<Shared>,
    cache_dir: PathBuf,
    prefetched: bool,
) {
    // Readers learn of an end the download did not reach, even when it is aborted.
    let _finish = Finish(shared.clone());
    let answer = if prefetched {
        client.download_once(&inst, &id).await
    } else {
        client.download(&inst, &id).await
    };
    let mut stream = match answer {
        Ok(d) => d.stream,
        Err(e) => return fail_download(&shared, e, 0),
    };
    // The writer starts once the server answered: `open` and the GET wait for no thread.
    let to_disk = disk::spawn_writer(cache_dir, shared.clone());
    let mut intake = Intake {
        shared: &shared,
        id: &id,
        size,
        have: 0,
        notified: 0,
        to_disk,
    };
    while let Some(chunk) = stream.next().await {
        if let Err(e) = chunk.and_then(|c| intake.take(c)) {
            return fail_download(&shared, e, intake.have);
        }
        if !intake.keep_pace().await {
            return;
        }
    }
    intake.end();
}

/// The download stopped on `e` after `have` good bytes: the reads past them fail.
fn fail_download(shared: &Shared, e: AltinnError, have: u64) {
    shared.progress.send_modify(|p| {
        p.have = have;
        p.error = Some(e);
        p.done = true;
    });
}

/// Where a running download stands: the bytes received, how far the watchers of `progress`
/// were told of them, and the cache file's writer.
struct Intake<'a> {
    shared: &'a Shared,
    id: &'a ElementId,
    size: u64,
    have: u64,
    notified: u64,
    to_disk: disk::ToDisk,
}

impl Intake<'_> {
    /// One chunk of the body: into memory and towards the cache file, then the readers hear
    /// of it. Err: the body is longer than the element's size.
    fn take(&mut self, chunk: Bytes) -> Result<(), AltinnError> {
        let len = chunk.len() as u64;
        if self.have + len > self.size {
            // More bytes than the element's size: which of them are right is unknown, so
            // the reads past what is known good fail rather than return a cut-off body.
            return Err(self.truncated(self.have + len));
        }
        self.store(chunk, len);
        self.tell_watchers();
        Ok(())
    }

    /// The chunk goes into the ring; whole blocks go to the cache file: aligned writes of a
    /// few blocks, not per chunk. The last chunk seals the ring and flushes the writer.
    fn store(&mut self, chunk: Bytes, len: u64) {
        let mut blocks = self.shared.ring.lock().unwrap().push(self.have, chunk);
        self.have += len;
        let last = self.have == self.size;
        if last {
            blocks.extend(self.shared.ring.lock().unwrap().seal());
        }
        for b in blocks {
            self.to_disk.push(b);
        }
        if last {
            self.to_disk.flush();
        }
    }

    /// Readers waiting for bytes are woken once theirs are here; other watchers hear of
    /// the first bytes, the end, and every NOTIFY_STEP.
    fn tell_watchers(&mut self) {
        let have = self.have;
        self.shared.set_quietly(|p| p.have = have);
        if self.shared.readers_wait_for(have)
            || self.notified == 0
            || have - self.notified >= NOTIFY_STEP
            || have >= self.size
        {
            self.notified = have;
            self.shared.progress.send_modify(|_| {});
        }
    }

    /// Wait while far enough ahead of the readers (see [`pace`]). False: the blob is gone.
    async fn keep_pace(&mut self) -> bool {
        pace(
            self.shared,
            self.have,
            &mut self.notified,
            &mut self.to_disk,
        )
        .await
    }

    /// The body ended: the blob is complete, or it fails past the bytes that came.
    fn end(self) {
        if self.have < self.size {
            return fail_download(self.shared, self.truncated(self.have), self.have);
        }
        self.shared.progress.send_modify(|p| {
            p.have = self.have;
            p.done = true;
        });
    }

    /// The body did not bring the element's `size` bytes (`got` of them).
    fn truncated(&self, got: u64) -> AltinnError {
        AltinnError::Truncated {
            path: format!("data/{}", self.id),
            expected: self.size,
            got,
        }
    }
}

/// Wait while the download is far enough ahead of the readers, or memory holds as much as it
/// may (the cache file's writer is behind), with the blocks still queued for the cache
/// file handed to its writer. False: the blob is gone.
async fn pace(shared: &Shared, have: u64, notified: &mut u64, to_disk: &mut disk::ToDisk) -> bool {
    let mut wanted = shared.wanted.subscribe();
    let mut progress = shared.progress.subscribe();
    loop {
        shared.trim();
        let window = if shared.users.load(Ordering::SeqCst) > 0 {
            RING_AHEAD
        } else {
            PREFETCH_WINDOW
        };
        let ahead = have > *wanted.borrow_and_update() + window;
        let mut full = shared.ring.lock().unwrap().held() > RING_MAX;
        if full {
            // Memory is freed as the writer goes on: ask it to say so, then look once more.
            shared.want_disk.store(true, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            shared.trim();
            full = shared.ring.lock().unwrap().held() > RING_MAX;
        }
        progress.borrow_and_update();
        if !ahead && !full {
            return true;
        }
        // Tell the readers everything received before pausing, or one could wait on a
        // paused download.
        if *notified < have {
            *notified = have;
            shared.progress.send_modify(|p| p.have = have);
        }
        // Memory is freed only once its blocks are in the file.
        to_disk.flush();
        tokio::select! {
            r = wanted.changed() => if r.is_err() { return false },
            r = progress.changed() => if r.is_err() { return false },
        }
    }
}

/// Marks a download that stopped without finishing (aborted) as failed, so no reader waits on
/// it for ever.
struct Finish(Arc<Shared>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.progress.send_if_modified(|p| {
            if p.done {
                return false;
            }
            p.error = Some(AltinnError::Local("download stopped".into()));
            p.done = true;
            true
        });
    }
}

impl<C: AltinnClient + ?Sized> super::AltinnFs<C> {
    /// Make writes to the blob cache's files fail from now on, as on a full disk (for tests).
    #[doc(hidden)]
    pub fn fail_blob_cache_writes(&self, fail: bool) {
        self.blobs.fail_disk_writes(fail);
    }
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
