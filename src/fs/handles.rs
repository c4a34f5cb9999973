//! Open file handles by number: the one table `read`, `write`, `flush` and `release` find
//! their handle in, behind its own lock (held only to look up, insert or remove).

use super::write::{Handle, WriteHandle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type SharedWrite = Arc<tokio::sync::Mutex<WriteHandle>>;

pub struct Handles {
    open: Mutex<HashMap<u64, Handle>>,
    next: AtomicU64,
}

impl Default for Handles {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }
}

impl Handles {
    pub fn add(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::SeqCst);
        self.open.lock().unwrap().insert(fh, h);
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Handle> {
        self.open.lock().unwrap().get(&fh).cloned()
    }

    /// Put `h` in place of an open handle; None (and nothing changes) when `fh` is closed.
    pub fn replace(&self, fh: u64, h: Handle) -> Option<Handle> {
        self.open
            .lock()
            .unwrap()
            .get_mut(&fh)
            .map(|o| std::mem::replace(o, h))
    }

    pub fn remove(&self, fh: u64) -> Option<Handle> {
        self.open.lock().unwrap().remove(&fh)
    }

    /// Some write handle of `ino` that is not busy right now.
    pub fn idle_writer_of(&self, ino: u64) -> Option<SharedWrite> {
        self.open.lock().unwrap().values().find_map(|h| match h {
            Handle::Write(w) if w.try_lock().map(|w| w.ino == ino).unwrap_or(false) => {
                Some(w.clone())
            }
            _ => None,
        })
    }

    /// Every write handle of `ino` has nothing unsent (all were flushed since their last
    /// write). A handle busy right now counts as not clean.
    pub fn writers_clean(&self, ino: u64) -> bool {
        self.open.lock().unwrap().values().all(|h| match h {
            Handle::Write(w) => match w.try_lock() {
                Ok(w) => w.ino != ino || !w.dirty,
                Err(_) => false,
            },
            _ => true,
        })
    }

    /// Some write handle of `ino` is still open (a busy one may be, so it counts).
    pub fn any_writer_of(&self, ino: u64) -> bool {
        self.open.lock().unwrap().values().any(
            |h| matches!(h, Handle::Write(o) if o.try_lock().map(|o| o.ino == ino).unwrap_or(true)),
        )
    }
}
