//! Directory mtimes that move whenever a listing changes.
//!
//! With the metadata index, `opendir` answers ENOSYS and the kernel keeps every directory's
//! entries (FOPEN_CACHE_DIR). It reuses them while the directory's mtime stays the same:
//! FUSE_AUTO_INVAL_DATA has it ask for the mtime when a listing starts and its attributes are
//! older than their TTL. Instance and data type directories carry the instance's
//! `lastChanged`, which every change of the instance or its elements moves. The root, party
//! and view directories have no time of their own: they report the last time this mount saw
//! their listing change, never earlier than the mount itself.

use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Directories whose stamp is kept. A stamp that falls out raises every directory's floor
/// to it, so no reported mtime ever goes back to one the kernel may have kept a listing
/// under: correct, only slower (the kernel reads those listings once more).
const KEPT: usize = 65_536;

pub struct DirStamps {
    inner: Mutex<Stamps>,
}

struct Stamps {
    by_ino: LruCache<u64, SystemTime>,
    /// Every directory is at least this new: everything changed (more than a refresh
    /// itemised), or a stamp fell out of `by_ino`.
    all: SystemTime,
    /// The last stamp handed out: each new one is later, even within one clock tick.
    last: SystemTime,
}

impl DirStamps {
    pub fn new(started: SystemTime) -> Self {
        Self {
            inner: Mutex::new(Stamps {
                by_ino: LruCache::new(NonZeroUsize::new(KEPT).unwrap()),
                all: started,
                last: started,
            }),
        }
    }

    /// The listings of these directories changed now.
    pub fn stamp(&self, inos: impl IntoIterator<Item = u64>) {
        let mut s = self.inner.lock().unwrap();
        for ino in inos {
            let t = s.next();
            if let Some((old, dropped)) = s.by_ino.push(ino, t) {
                if old != ino {
                    s.all = s.all.max(dropped);
                }
            }
        }
    }

    /// Every listing may have changed.
    pub fn stamp_all(&self) {
        let mut s = self.inner.lock().unwrap();
        s.all = s.next();
    }

    /// The mtime to report for directory `ino` whose own time is `base`.
    pub fn mtime(&self, ino: u64, base: SystemTime) -> SystemTime {
        let mut s = self.inner.lock().unwrap();
        let own = s.by_ino.get(&ino).copied().unwrap_or(base);
        own.max(s.all).max(base)
    }
}

impl Stamps {
    fn next(&mut self) -> SystemTime {
        let now = SystemTime::now();
        self.last = if now > self.last {
            now
        } else {
            self.last + Duration::from_nanos(1)
        };
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_moves_only_its_directory() {
        let t0 = SystemTime::now();
        let s = DirStamps::new(t0);
        assert_eq!(s.mtime(1, t0), t0);
        s.stamp([1]);
        let m1 = s.mtime(1, t0);
        assert!(m1 > t0);
        assert_eq!(s.mtime(2, t0), t0, "another directory keeps its time");
        s.stamp([1]);
        assert!(s.mtime(1, t0) > m1, "every change moves it again");
    }

    #[test]
    fn stamps_are_strictly_increasing_within_one_clock_tick() {
        let t0 = SystemTime::now() + Duration::from_secs(3600); // a clock that seems stuck
        let s = DirStamps::new(t0);
        s.stamp([1]);
        s.stamp([2]);
        s.stamp([3]);
        let (a, b, c) = (s.mtime(1, t0), s.mtime(2, t0), s.mtime(3, t0));
        assert!(t0 < a && a < b && b < c);
    }

    #[test]
    fn a_stamp_that_falls_out_never_lets_an_mtime_go_back() {
        let t0 = SystemTime::now();
        let s = DirStamps::new(t0);
        s.stamp([1]);
        let kept_under = s.mtime(1, t0);
        s.stamp(2..(KEPT as u64 + 2)); // pushes 1 out
        assert!(s.mtime(1, t0) >= kept_under, "directory 1 went back");
        assert!(
            s.mtime(999_999_999, t0) >= kept_under,
            "the floor covers every directory"
        );
    }

    #[test]
    fn stamp_all_moves_every_directory_and_a_later_base_wins() {
        let t0 = SystemTime::now();
        let s = DirStamps::new(t0);
        s.stamp_all();
        assert!(s.mtime(7, t0) > t0);
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(s.mtime(7, later), later);
    }
}
