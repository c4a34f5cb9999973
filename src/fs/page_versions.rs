//! Which version of each file the kernel's page cache may hold (libfuse's `auto_cache`).
//!
//! Without FOPEN_KEEP_CACHE the kernel drops a file's cached pages at every open, so a second
//! `cat`, `cp` or `sha256sum` of the same file goes back through the daemon. An element's
//! version is its `lastChanged` and `size` (Storage moves `lastChanged` on every change), so
//! an open of the version the pages were filled under keeps them, and any other open drops
//! them: a file that changed on the server is never read from stale pages. A file opened for
//! writing here forgets its version, so pages written through the mount but refused by the
//! server are dropped too.

use crate::altinn::model::{DataElement, Timestamp};
use lru::LruCache;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Files whose version is remembered. One that falls out only costs its pages at its next
/// open.
const KEPT: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    last_changed: Option<Timestamp>,
    size: i64,
}

impl Version {
    fn of(el: &DataElement) -> Self {
        Self {
            last_changed: el.last_changed,
            size: el.size,
        }
    }
}

pub struct PageVersions {
    state: Mutex<State>,
}

struct State {
    filled_under: LruCache<u64, Version>,
    /// Handles open on each file. A version is recorded only by an open that is alone: a
    /// reader still open at an older version would go on filling pages with its bytes.
    open: HashMap<u64, usize>,
}

impl Default for PageVersions {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                filled_under: LruCache::new(NonZeroUsize::new(KEPT).unwrap()),
                open: HashMap::new(),
            }),
        }
    }
}

impl PageVersions {
    /// `ino` is opened for reading at the version of `el`: true when the kernel may keep the
    /// pages it has of the file (they were filled under this version).
    pub fn open_for_reading(&self, ino: u64, el: &DataElement) -> bool {
        let now = Version::of(el);
        let mut s = self.state.lock().unwrap();
        let others = s.opened(ino);
        if s.filled_under.get(&ino) == Some(&now) {
            return true;
        }
        if others == 0 {
            s.filled_under.put(ino, now);
        } else {
            s.filled_under.pop(&ino);
        }
        false
    }

    /// `ino` is opened for writing: what its pages will hold is not a version the server has
    /// (yet), so no open keeps them until the writer is gone.
    pub fn open_for_writing(&self, ino: u64) {
        let mut s = self.state.lock().unwrap();
        s.opened(ino);
        s.filled_under.pop(&ino);
    }

    /// A handle of `ino` opened by [`Self::open_for_reading`] or [`Self::open_for_writing`] was
    /// closed (`wrote`: it was open for writing, and the server may have refused its bytes).
    pub fn closed(&self, ino: u64, wrote: bool) {
        let mut s = self.state.lock().unwrap();
        if let Some(n) = s.open.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                s.open.remove(&ino);
            }
        }
        if wrote {
            s.filled_under.pop(&ino);
        }
    }
}

impl State {
    /// Count one more handle of `ino`; returns how many were open before.
    fn opened(&mut self, ino: u64) -> usize {
        let n = self.open.entry(ino).or_default();
        *n += 1;
        *n - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(last_changed: &str, size: i64) -> DataElement {
        serde_json::from_value(serde_json::json!({
            "id": "0f9e8d7c-0000-4000-8000-000000000001",
            "instanceGuid": "0f9e8d7c-0000-4000-8000-000000000002",
            "dataType": "attachment",
            "contentType": "application/pdf",
            "size": size,
            "lastChanged": last_changed,
        }))
        .unwrap()
    }

    #[test]
    fn the_first_open_drops_pages_and_a_reopen_of_the_same_version_keeps_them() {
        let v = PageVersions::default();
        let el = element("2026-01-01T10:00:00Z", 100);
        assert!(
            !v.open_for_reading(7, &el),
            "pages of unknown origin are dropped"
        );
        assert!(v.open_for_reading(7, &el));
        assert!(v.open_for_reading(7, &el));
        assert!(
            !v.open_for_reading(8, &el),
            "another file has its own version"
        );
    }

    #[test]
    fn a_new_last_changed_or_size_drops_the_pages_once() {
        let v = PageVersions::default();
        v.open_for_reading(7, &element("2026-01-01T10:00:00Z", 100));
        v.closed(7, false);
        let changed = element("2026-01-01T10:00:01Z", 100);
        assert!(!v.open_for_reading(7, &changed), "lastChanged moved");
        v.closed(7, false);
        assert!(
            v.open_for_reading(7, &changed),
            "then the new pages are kept"
        );
        v.closed(7, false);
        let resized = element("2026-01-01T10:00:01Z", 101);
        assert!(!v.open_for_reading(7, &resized), "size moved");
    }

    #[test]
    fn a_write_open_forgets_the_version_even_if_the_server_keeps_it() {
        let v = PageVersions::default();
        let el = element("2026-01-01T10:00:00Z", 100);
        v.open_for_reading(7, &el);
        v.closed(7, false);
        v.open_for_writing(7);
        assert!(
            !v.open_for_reading(7, &el),
            "no keeping while a writer is open"
        );
        v.closed(7, false);
        v.closed(7, true);
        assert!(
            !v.open_for_reading(7, &el),
            "pages written here (and perhaps refused) are dropped"
        );
    }

    #[test]
    fn a_reader_still_open_at_an_older_version_keeps_the_next_opens_from_keeping_pages() {
        let v = PageVersions::default();
        let old = element("2026-01-01T10:00:00Z", 100);
        let new = element("2026-01-01T10:00:01Z", 100);
        v.open_for_reading(7, &old);
        v.closed(7, false);
        assert!(v.open_for_reading(7, &old), "reader A, at the old version");
        assert!(!v.open_for_reading(7, &new), "B: the element changed");
        assert!(
            !v.open_for_reading(7, &new),
            "C: A may have filled pages with old bytes since B opened"
        );
        v.closed(7, false); // A
        v.closed(7, false); // B
        v.closed(7, false); // C
        assert!(!v.open_for_reading(7, &new), "D, alone: drops, records");
        assert!(v.open_for_reading(7, &new), "E keeps what D filled");
    }
}
