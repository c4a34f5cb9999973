//! Open directory handles: the entries of a directory computed at offset 0 and reused for the
//! later offsets of the same handle, so offsets stay stable while the directory changes.

use crate::fs::DirEntry;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct DirHandles {
    next: u64,
    open: HashMap<u64, Option<Arc<Vec<DirEntry>>>>,
}

impl DirHandles {
    pub fn open(&mut self) -> u64 {
        self.next += 1;
        self.open.insert(self.next, None);
        self.next
    }

    /// The snapshot of `fh`, if one was taken.
    pub fn snapshot(&self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.open.get(&fh).cloned().flatten()
    }

    pub fn set_snapshot(&mut self, fh: u64, entries: Arc<Vec<DirEntry>>) {
        self.open.insert(fh, Some(entries));
    }

    pub fn release(&mut self, fh: u64) {
        self.open.remove(&fh);
    }
}
