//! Which version of each file the kernel's page cache may hold (libfuse's `auto_cache`).
//!
//! Without FOPEN_KEEP_CACHE the kernel drops a file's cached pages at every open, so a second
//! `cat`, `cp` or `sha256sum` of the same file goes back through the daemon. An element's
//! version is its `lastChanged` and `size` (Storage moves `lastChanged` on every change), so
//! an open of the version the pages were filled under keeps them, and any other open drops
//! them: a file that changed on the server is never read from stale pages. A file opened for
//! writing here forgets its version until the next open for reading, so pages written
//! through the mount but refused by the server are dropped too.

use crate::altinn::model::{DataElement, Timestamp};
use lru::LruCache;
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
    filled_under: Mutex<LruCache<u64, Version>>,
}

impl Default for PageVersions {
    fn default() -> Self {
        Self {
            filled_under: Mutex::new(LruCache::new(NonZeroUsize::new(KEPT).unwrap())),
        }
    }
}

impl PageVersions {
    /// `ino` is opened for reading at the version of `el`: true when the kernel may keep the
    /// pages it has of the file (they were filled under this version).
    pub fn open_for_reading(&self, ino: u64, el: &DataElement) -> bool {
        let now = Version::of(el);
        let mut seen = self.filled_under.lock().unwrap();
        if seen.get(&ino) == Some(&now) {
            return true;
        }
        seen.put(ino, now);
        false
    }

    /// `ino` is opened for writing, or its writer closed: what its pages hold is not a
    /// version the server has (yet), so the next open for reading drops them.
    pub fn forget(&self, ino: u64) {
        self.filled_under.lock().unwrap().pop(&ino);
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
        let changed = element("2026-01-01T10:00:01Z", 100);
        assert!(!v.open_for_reading(7, &changed), "lastChanged moved");
        assert!(
            v.open_for_reading(7, &changed),
            "then the new pages are kept"
        );
        let resized = element("2026-01-01T10:00:01Z", 101);
        assert!(!v.open_for_reading(7, &resized), "size moved");
    }

    #[test]
    fn a_write_open_forgets_the_version_even_if_the_server_keeps_it() {
        let v = PageVersions::default();
        let el = element("2026-01-01T10:00:00Z", 100);
        v.open_for_reading(7, &el);
        v.forget(7);
        assert!(
            !v.open_for_reading(7, &el),
            "pages written here (and perhaps refused) are dropped"
        );
    }
}
