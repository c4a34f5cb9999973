//! Directory snapshots: the entries of a directory computed at offset 0 and reused for the
//! later offsets of the same read, so offsets stay stable while the directory changes.
//!
//! Two kinds: per handle (`opendir`), and shared ones for the handle-less reads the kernel
//! makes once `opendir` answered ENOSYS. A shared snapshot is keyed by its directory and a
//! tag of its names ([`listing_tag`]), which the read's offsets carry: a snapshot never
//! changes under its key, so two readers of one directory never shift each other's offsets.

use crate::fs::DirEntry;
use lru::LruCache;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

/// Shared snapshots kept at most (a read that stops before its end leaves one behind).
pub const SHARED_SNAPSHOTS: usize = 64;

/// Tags are 31 bits: an offset is `tag << 32 | position`, positive in an i64.
const TAG_MASK: u64 = 0x7fff_ffff;

/// The tag of a listing: a hash of its names in order (positions stay valid exactly while
/// the names and their order do).
pub fn listing_tag(entries: &[DirEntry]) -> u64 {
    // SipHash with fixed keys: the same names give the same tag in every process.
    let mut h = DefaultHasher::new();
    for e in entries {
        e.name.hash(&mut h);
    }
    h.finish() & TAG_MASK
}

type Snapshot = Arc<Vec<DirEntry>>;

pub struct DirHandles {
    next: u64,
    open: HashMap<u64, Option<Snapshot>>,
    /// (directory inode, listing tag) → snapshot; the least recently set goes first.
    shared: LruCache<(u64, u64), Snapshot>,
}

impl Default for DirHandles {
    fn default() -> Self {
        Self {
            next: 0,
            open: HashMap::new(),
            shared: LruCache::new(NonZeroUsize::new(SHARED_SNAPSHOTS).unwrap()),
        }
    }
}

impl DirHandles {
    pub fn open(&mut self) -> u64 {
        self.next += 1;
        self.open.insert(self.next, None);
        self.next
    }

    /// The snapshot of `fh`, if one was taken.
    pub fn snapshot(&self, fh: u64) -> Option<Snapshot> {
        self.open.get(&fh).cloned().flatten()
    }

    pub fn set_snapshot(&mut self, fh: u64, entries: Snapshot) {
        self.open.insert(fh, Some(entries));
    }

    pub fn release(&mut self, fh: u64) {
        self.open.remove(&fh);
    }

    /// The shared snapshot of directory `ino` whose names have tag `tag`.
    pub fn shared(&self, ino: u64, tag: u64) -> Option<Snapshot> {
        self.shared.peek(&(ino, tag)).cloned()
    }

    /// Keep a shared snapshot (the oldest goes past [`SHARED_SNAPSHOTS`]).
    pub fn set_shared(&mut self, ino: u64, tag: u64, entries: Snapshot) {
        self.shared.put((ino, tag), entries);
    }

    /// A read reached the end: its snapshot goes (another reader of the same listing that
    /// comes later finds the names unchanged and goes on from a new one).
    pub fn drop_shared(&mut self, ino: u64, tag: u64) {
        self.shared.pop(&(ino, tag));
    }

    pub fn shared_count(&self) -> usize {
        self.shared.len()
    }
}
