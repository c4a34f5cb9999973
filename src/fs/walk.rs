//! Walk prefetch (SPEC §4 "Many files"): `cp -r`, `tar`, `rsync` and `restic` read the files of
//! a tree one after another, so over a network each file costs a round trip. When a reader
//! opens the first file of a directory, or goes on to the next file or instance, the next files
//! of its walk (`walk_plan`) are downloaded in parallel: the rest of the instance, then the
//! next instance directories in the order the reader goes (name or inode), and into the next
//! party once the reader has crossed from one party into the next itself. A pump task keeps
//! `prefetch_files` downloads in flight, up to twice that many files ahead of the reader and
//! within the blob cache's prefetch budget: it starts the next download as soon as one ends,
//! and never on the reader's `open` path (creating a cache file costs an inode allocation).
//! A walk moves (is planned, starts downloads) only once the file its reader opened has its
//! first bytes: that work would compete with the file's GET (server, connections, CPU) for
//! the reader's first byte, the one a reader waits for.
//! Opening a file elsewhere (a jump) stops the walk and its unfinished downloads. What a read
//! returns is unchanged, since the cache reuses a blob only while `lastChanged` and `size`
//! hold.

use super::read::{Blob, PrefetchLimits, PrefetchStats, Prefetched};
use super::walk_plan::{Course, InodeOrder, Order, Place, Step};
use super::write::Handle;
use super::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lru::LruCache;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;

/// Walks remembered at once (one per reading process).
const READERS: usize = 64;

/// A reader that opens a file this many instance directories further on (in name or inode
/// order) is still walking; further is a jump.
const NEAR: usize = 2;

/// Files planned ahead of a reader, as a multiple of `prefetch_files`: downloads that ended
/// wait there for the reader while the next ones run, so the slots stay busy.
const AHEAD_FACTOR: usize = 2;

/// How long a walk waits for the first bytes of the file its reader opened before it moves on
/// (a stalled GET must not hold up the walks of other readers for long).
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(500);

/// Instances read from the index for plans, kept for `walk_plan::PARSED_TTL`.
const PARSED: usize = 256;

/// Where one reader is in its walk.
struct Walk {
    /// The element it opened last, and its instance directory.
    at: String,
    place: Place,
    /// Whether prefetching runs for it (off until it shows it walks).
    active: bool,
    /// The order it visits instance directories in, and whether it crosses parties.
    course: Course,
    /// The next files after `at`, in walk order.
    ahead: Vec<Step>,
}

/// A reader's `open` of element `id` in instance directory `place`, waiting to move its walk.
struct Opened {
    reader: u32,
    place: Place,
    id: String,
}

/// Per-reader walks (readers are process ids; FUSE gives each request one).
pub struct Walks {
    pub(super) files: usize,
    readers: Mutex<LruCache<u32, Walk>>,
    pub(super) inode_order: Mutex<InodeOrder>,
    pub(super) parsed: Mutex<LruCache<String, (Instant, Arc<InstEntry>)>>,
    /// Opens not yet applied to their walks, oldest first; `following`: a task applies them.
    opened: Mutex<VecDeque<Opened>>,
    following: AtomicBool,
    /// The pump runs; `dirty`: a walk moved since it last looked; `nudge` wakes it.
    pumping: AtomicBool,
    dirty: AtomicBool,
    nudge: tokio::sync::Notify,
}

impl Walks {
    pub fn new(files: usize) -> Self {
        Self {
            files,
            readers: Mutex::new(LruCache::new(NonZeroUsize::new(READERS).unwrap())),
            inode_order: Mutex::new(InodeOrder::default()),
            parsed: Mutex::new(LruCache::new(NonZeroUsize::new(PARSED).unwrap())),
            opened: Mutex::new(VecDeque::new()),
            following: AtomicBool::new(false),
            pumping: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            nudge: tokio::sync::Notify::new(),
        }
    }

    fn ahead(&self) -> usize {
        self.files * AHEAD_FACTOR
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `open` by a known reader (the FUSE request's pid): the same, and the file may start or
    /// move on this reader's walk prefetch.
    pub async fn open_as(
        self: &Arc<Self>,
        ino: u64,
        flags: impl Into<OpenFlags>,
        reader: u32,
    ) -> FsResult<OpenFile> {
        let flags: OpenFlags = flags.into();
        let write = flags.write;
        let opened = self.open_file(ino, flags).await?;
        if !write && self.walks.files > 0 {
            if let Some(Node::Element {
                party, guid, id, ..
            }) = self.tree.node(ino)
            {
                self.walk_moved(Opened {
                    reader,
                    place: (party.to_string(), guid.to_string()),
                    id: id.to_string(),
                });
            }
        }
        Ok(opened)
    }

    /// A reader opened a file: its walk is brought up to date from a task, in the order of
    /// the opens, so `open` answers and the file's GET goes out at once (planning reads
    /// instances from the index, and took longer than the open itself).
    fn walk_moved(self: &Arc<Self>, opened: Opened) {
        self.walks.opened.lock().unwrap().push_back(opened);
        if !self.walks.following.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().follow_walks());
        }
    }

    /// Take the queued opens in order until none is left. Each waits for the first bytes of
    /// the file it opened (or the end of its download, at most `FIRST_BYTES_WAIT`): the
    /// planning and the downloads it starts would compete with that file's GET for the
    /// reader's first byte. A walk that runs has the file prefetched, so it waits for
    /// nothing, and the slot the file's prefetch held goes to the next download at once.
    async fn follow_walks(self: Arc<Self>) {
        loop {
            let next = self.walks.opened.lock().unwrap().pop_front();
            let Some(o) = next else {
                self.walks.following.store(false, Ordering::SeqCst);
                // An open queued after the look above finds the follower gone: go on for it.
                if !self.walks.opened.lock().unwrap().is_empty()
                    && !self.walks.following.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                return;
            };
            let first_bytes = self.blobs.first_bytes(&o.id);
            let _ = tokio::time::timeout(FIRST_BYTES_WAIT, first_bytes).await;
            let fs = self.clone();
            let moved = move || fs.walk_opened(o.reader, o.place, &o.id);
            if tokio::task::spawn_blocking(moved).await.unwrap_or(false) {
                self.nudge_pump();
            }
        }
    }

    /// What walk prefetching holds right now.
    pub fn prefetch_stats(&self) -> PrefetchStats {
        self.blobs.prefetch_stats()
    }

    /// Reader `reader` opened element `id` in instance directory `place` for reading: its
    /// walk starts, moves on or stops, and its plan is made again. True: it prefetches.
    fn walk_opened(&self, reader: u32, place: Place, id: &str) -> bool {
        let mut readers = self.walks.readers.lock().unwrap();
        let mut walk = match readers.pop(&reader) {
            Some(w) if w.at == id => w,
            // Inside one instance any order is followed (rsync and cp sort names their way).
            Some(w) if w.place == place => Walk {
                active: w.active
                    || self.first_in_dir(&place.1, id)
                    || w.ahead.first().is_some_and(|s| s.el.id == id),
                ..self.new_walk(place, id, w.course)
            },
            Some(w) => match self.orders_of_move(&w.place, &place, w.course.order, NEAR)[..] {
                // On to one of the next instances (or the next party), in name or inode order.
                [order, ref alt @ ..] => {
                    let course = Course {
                        order,
                        across: w.course.across || w.place.0 != place.0,
                        alt: alt.first().copied(),
                    };
                    Walk {
                        active: true,
                        ..self.new_walk(place, id, course)
                    }
                }
                [] => {
                    self.stop_walk(&w);
                    let course = Course::new(w.course.order, false);
                    self.new_walk(place, id, course)
                }
            },
            None => self.new_walk(place, id, Course::new(Order::Name, false)),
        };
        walk.ahead = self.plan(&walk.place, id, walk.course, self.walks.ahead());
        let active = walk.active;
        readers.put(reader, walk);
        active
    }

    /// A walk at `id`: prefetching starts at the first file of a directory; elsewhere only
    /// once the reader goes on to the next file.
    fn new_walk(&self, place: Place, id: &str, course: Course) -> Walk {
        Walk {
            at: id.to_string(),
            active: self.first_in_dir(&place.1, id),
            place,
            course,
            ahead: Vec::new(),
        }
    }

    /// The reader jumped: downloads it no longer needs stop.
    fn stop_walk(&self, w: &Walk) {
        if w.active {
            let ids: Vec<&str> = w.ahead.iter().map(|s| s.el.id.as_str()).collect();
            self.blobs.abandon(&ids);
        }
    }

    /// A walk moved: make sure the pump runs and looks again.
    fn nudge_pump(self: &Arc<Self>) {
        self.walks.dirty.store(true, Ordering::SeqCst);
        if self.walks.pumping.swap(true, Ordering::SeqCst) {
            self.walks.nudge.notify_one();
        } else {
            tokio::spawn(self.clone().pump());
        }
    }

    /// Keep the active walks' next downloads running: start what fits, then wait until a
    /// download ends or a walk moves, and again. Ends when nothing runs and nothing fits.
    async fn pump(self: Arc<Self>) {
        let mut ends = FuturesUnordered::new();
        loop {
            self.walks.dirty.store(false, Ordering::SeqCst);
            let wanted = self.wanted_prefetches();
            if !wanted.is_empty() {
                let fs = self.clone();
                let started = tokio::task::spawn_blocking(move || fs.start_prefetches(&wanted))
                    .await
                    .unwrap_or_default();
                for id in started {
                    if let Some(end) = self.blobs.download_end(&id) {
                        ends.push(end);
                    }
                }
            }
            if ends.is_empty() {
                self.walks.pumping.store(false, Ordering::SeqCst);
                // A walk that moved after the look above finds the pump gone: go on for it.
                if self.walks.dirty.load(Ordering::SeqCst)
                    && !self.walks.pumping.swap(true, Ordering::SeqCst)
                {
                    continue;
                }
                return;
            }
            tokio::select! {
                _ = ends.next() => {}
                _ = self.walks.nudge.notified() => {}
            }
        }
    }

    /// The planned files of each active walk, nearest first, up to its lookahead.
    fn wanted_prefetches(&self) -> Vec<Vec<Step>> {
        let readers = self.walks.readers.lock().unwrap();
        let n = self.walks.ahead();
        readers
            .iter()
            .filter(|(_, w)| w.active && !w.ahead.is_empty())
            .map(|(_, w)| w.ahead.iter().take(n).cloned().collect())
            .collect()
    }

    /// Start the downloads of each walk's next files, in order, until slots or budget run
    /// out; the ids of those started.
    fn start_prefetches(&self, walks: &[Vec<Step>]) -> Vec<String> {
        let limits = PrefetchLimits {
            slots: self.walks.files,
            bytes: self.blobs.prefetch_budget(),
        };
        let mut started = Vec::new();
        for steps in walks {
            for s in steps {
                let Ok(inst) = InstanceId::parse(format!("{}/{}", s.party, s.guid)) else {
                    continue;
                };
                match self
                    .blobs
                    .prefetch(self.client.clone(), inst, &s.el, limits)
                {
                    Prefetched::Started => started.push(s.el.id.clone()),
                    Prefetched::Skipped => {}
                    Prefetched::Full => break,
                }
            }
        }
        started
    }

    /// Read from a blob handle. When the blob was a prefetch whose download failed, the read
    /// starts a download of its own and tries again: a failed prefetch is never a failed read.
    pub(super) async fn read_blob(
        &self,
        fh: u64,
        blob: Arc<Blob>,
        off: u64,
        size: u32,
    ) -> FsResult<super::read::ReadData> {
        let what = || format!("data element {}", blob.id);
        match blob.read(off, size).await {
            Ok(v) => Ok(v),
            Err(e) if blob.was_prefetched() => {
                tracing::info!("prefetch of {} failed ({e}); downloading it again", what());
                let fresh = self
                    .blobs
                    .reopen(self.client.clone(), &blob)
                    .map_err(|e| FsError::io(what(), e))?;
                match self.handles.replace(fh, Handle::Blob(fresh.clone())) {
                    Some(Handle::Blob(old)) => self.blobs.release(&old),
                    // Closed meanwhile: the fresh blob has no handle to go with.
                    _ => self.blobs.release(&fresh),
                }
                fresh
                    .read(off, size)
                    .await
                    .map_err(|e| FsError::server(what(), "GET data", e))
            }
            Err(e) => Err(FsError::server(what(), "GET data", e)),
        }
    }
}
