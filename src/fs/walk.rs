//! Walk prefetch (SPEC §4 "Many files"): `cp -r`, `tar`, `rsync` and `restic` read the files of
//! a tree one after another, so over a network each file costs a round trip. When a reader
//! opens the first file of a directory, or goes on to the next file or instance, the next files
//! of its walk (`walk_plan`) are downloaded in parallel (`prefetch_files` at a time, within the
//! blob cache's prefetch budget): the rest of the instance, then the next instance directories
//! of the party, in the order the reader goes (name or inode). Opening a file elsewhere (a
//! jump) stops the walk and its unfinished downloads. What a read returns is unchanged, since
//! the cache reuses a blob only while `lastChanged` and `size` hold.

use super::read::{Blob, PrefetchLimits, PrefetchStats, Prefetched};
use super::walk_plan::{InodeOrder, Order, Step};
use super::write::Handle;
use super::*;
use lru::LruCache;
use std::num::NonZeroUsize;

/// Walks remembered at once (one per reading process).
const READERS: usize = 64;

/// A reader that opens a file this many instances further on (in name or inode order) is
/// still walking; further is a jump.
const NEAR: usize = 2;

/// Where one reader is in its walk.
struct Walk {
    /// The element it opened last, and its instance.
    at: String,
    party: String,
    guid: String,
    /// Whether prefetching runs for it (off until it shows it walks).
    active: bool,
    /// The order it visits instance directories in.
    order: Order,
    /// The next `prefetch_files` elements after `at`.
    ahead: Vec<Step>,
}

/// Per-reader walks (readers are process ids; FUSE gives each request one).
pub struct Walks {
    pub(super) files: usize,
    readers: Mutex<LruCache<u32, Walk>>,
    pub(super) inode_order: Mutex<InodeOrder>,
}

impl Walks {
    pub fn new(files: usize) -> Self {
        Self {
            files,
            readers: Mutex::new(LruCache::new(NonZeroUsize::new(READERS).unwrap())),
            inode_order: Mutex::new(InodeOrder::default()),
        }
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `open` by a known reader (the FUSE request's pid): the same, and the file may start or
    /// move on this reader's walk prefetch.
    pub async fn open_as(
        &self,
        ino: u64,
        flags: impl Into<OpenFlags>,
        reader: u32,
    ) -> FsResult<u64> {
        let flags: OpenFlags = flags.into();
        let write = flags.write;
        let fh = self.open(ino, flags).await?;
        if !write && self.walks.files > 0 {
            if let Some(Node::Element {
                party, guid, id, ..
            }) = self.tree.node(ino)
            {
                let (party, guid, id) = (party.to_string(), guid.to_string(), id.to_string());
                self.walk_opened(reader, &party, &guid, &id);
            }
        }
        Ok(fh)
    }

    /// What walk prefetching holds right now.
    pub fn prefetch_stats(&self) -> PrefetchStats {
        self.blobs.prefetch_stats()
    }

    /// Reader `reader` opened element `id` for reading: its walk starts, moves on or stops,
    /// and the downloads of its next files start.
    fn walk_opened(&self, reader: u32, party: &str, guid: &str, id: &str) {
        let mut readers = self.walks.readers.lock().unwrap();
        let mut walk = match readers.pop(&reader) {
            Some(w) if w.at == id => w,
            // Inside one instance any order is followed (rsync and cp sort names their way).
            Some(w) if w.party == party && w.guid == guid => Walk {
                active: w.active
                    || self.first_in_dir(guid, id)
                    || w.ahead.first().is_some_and(|s| s.el.id == id),
                ..self.new_walk(party, guid, id, w.order)
            },
            Some(w) if w.party == party => {
                match self.order_of_move(party, &w.guid, guid, NEAR) {
                    // On to one of the next instances, in name or inode order.
                    Some(order) => Walk {
                        active: true,
                        ..self.new_walk(party, guid, id, order)
                    },
                    None => {
                        self.stop_walk(&w);
                        self.new_walk(party, guid, id, w.order)
                    }
                }
            }
            Some(w) => {
                self.stop_walk(&w);
                self.new_walk(party, guid, id, w.order)
            }
            None => self.new_walk(party, guid, id, Order::Name),
        };
        walk.ahead = self.plan(party, guid, id, walk.order);
        if walk.active {
            self.prefetch_ahead(&walk);
        }
        readers.put(reader, walk);
    }

    /// A walk at `id`: prefetching starts at the first file of a directory; elsewhere only
    /// once the reader goes on to the next file.
    fn new_walk(&self, party: &str, guid: &str, id: &str, order: Order) -> Walk {
        Walk {
            at: id.to_string(),
            party: party.to_string(),
            guid: guid.to_string(),
            active: self.first_in_dir(guid, id),
            order,
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

    /// Start the downloads of the walk's next files, in order, until slots or budget run out.
    fn prefetch_ahead(&self, w: &Walk) {
        let limits = PrefetchLimits {
            slots: self.walks.files,
            bytes: self.blobs.prefetch_budget(),
        };
        for s in &w.ahead {
            let Ok(inst) = InstanceId::parse(format!("{}/{}", s.party, s.guid)) else {
                continue;
            };
            let r = self
                .blobs
                .prefetch(self.client.clone(), inst, &s.el, limits);
            if r == Prefetched::Full {
                break;
            }
        }
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
