//! The blob cache's side of walk prefetch (SPEC §4 "Many files"): downloads started ahead of
//! a reader, bounded by a number of slots and by a share of the cache's bytes, evicted first
//! while nobody opened them, and dropped when the walk that wanted them jumped elsewhere.

use super::{Blob, BlobCache, Progress, PREFETCH_WINDOW};
use crate::altinn::client::AltinnClient;
use crate::altinn::ids::InstanceId;
use crate::altinn::model::DataElement;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How much prefetching may be under way.
#[derive(Debug, Clone, Copy)]
pub struct PrefetchLimits {
    /// Unfinished prefetch downloads at a time.
    pub slots: usize,
    /// Bytes of prefetched blobs that no reader opened yet.
    pub bytes: u64,
}

/// What prefetching holds right now (status, tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    /// Prefetched blobs no reader opened yet, and their bytes (by `size`).
    pub unclaimed: usize,
    pub unclaimed_bytes: u64,
    /// Of those, the ones still downloading.
    pub downloading: usize,
}

/// The answer to one prefetch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetched {
    /// A download was started.
    Started,
    /// The blob is cached or on its way already (or not worth a prefetch): go on.
    Skipped,
    /// No slot or no room left: stop for now.
    Full,
}

impl Blob {
    /// Started by the prefetcher: a failure of its download is the prefetch's, not a reader's.
    pub fn was_prefetched(&self) -> bool {
        self.prefetched
    }

    fn downloading(&self) -> bool {
        !self.shared.progress.borrow().done
    }

    fn idle_unclaimed(&self) -> bool {
        self.unclaimed.load(Ordering::SeqCst) && self.users() == 0
    }
}

impl BlobCache {
    /// The largest blob worth prefetching: bigger ones stream at wire speed by themselves, and
    /// a prefetch never runs further than one download window.
    pub const PREFETCH_MAX_BLOB: u64 = PREFETCH_WINDOW;

    /// The share of the cache that prefetched, unopened blobs may hold: half, so a walk never
    /// pushes out what readers have open or just read.
    pub fn prefetch_budget(&self) -> u64 {
        self.max_bytes / 2
    }

    /// A blob of `el` as it is now is cached or on its way (and did not fail).
    pub fn holds(&self, el: &DataElement) -> bool {
        let blobs = self.blobs.lock().unwrap();
        blobs
            .get(&el.id)
            .is_some_and(|b| b.matches(el) && b.progress().error.is_none())
    }

    pub fn prefetch_stats(&self) -> PrefetchStats {
        let blobs = self.blobs.lock().unwrap();
        let mut s = PrefetchStats::default();
        for b in blobs.values().filter(|b| b.idle_unclaimed()) {
            s.unclaimed += 1;
            s.unclaimed_bytes += b.size;
            s.downloading += b.downloading() as usize;
        }
        s
    }

    /// Start downloading `el` for a reader expected soon, within `limits`. A blob that is
    /// cached and still matches (`lastChanged`, `size`) is left as it is.
    pub fn prefetch<C: AltinnClient + ?Sized>(
        &self,
        client: Arc<C>,
        inst: InstanceId,
        el: &DataElement,
        limits: PrefetchLimits,
    ) -> Prefetched {
        let size = el.size.max(0) as u64;
        if size == 0 || size > Self::PREFETCH_MAX_BLOB {
            return Prefetched::Skipped;
        }
        let mut blobs = self.blobs.lock().unwrap();
        if let Some(b) = blobs.get(&el.id) {
            if b.matches(el) && b.progress().error.is_none() {
                return Prefetched::Skipped;
            }
            if b.users() > 0 {
                // An older state still being read: leave it to its readers.
                return Prefetched::Skipped;
            }
            if b.prefetched && b.matches(el) {
                // This state's prefetch failed: its reader downloads it anew at the open.
                // Starting it again here would loop on a lasting fault (a body of the wrong
                // size, a 404) as fast as the server answers, while the walk stays.
                return Prefetched::Skipped;
            }
        }
        let unclaimed: Vec<&Arc<Blob>> = blobs.values().filter(|b| b.idle_unclaimed()).collect();
        let downloading = unclaimed.iter().filter(|b| b.downloading()).count();
        let held: u64 = unclaimed.iter().map(|b| b.size).sum();
        if downloading >= limits.slots || held + size > limits.bytes.min(self.prefetch_budget()) {
            return Prefetched::Full;
        }
        if !Self::make_room(&mut blobs, self.max_bytes, size) {
            return Prefetched::Full;
        }
        match self.start(client, inst, el, 0) {
            Ok(b) => {
                blobs.insert(el.id.clone(), b);
                Prefetched::Started
            }
            Err(e) => {
                tracing::warn!("blob cache: cannot prefetch: {e}");
                Prefetched::Full
            }
        }
    }

    /// Evict read, idle blobs (least recently used first) until `extra` more bytes fit in
    /// `max`; unopened prefetches are never pushed out by another prefetch. False: no room.
    fn make_room(
        blobs: &mut std::collections::HashMap<String, Arc<Blob>>,
        max: u64,
        extra: u64,
    ) -> bool {
        // What each blob will hold: an unfinished prefetch counts with its whole size.
        let expected = |b: &Blob| {
            if b.unclaimed.load(Ordering::SeqCst) {
                b.size
            } else {
                b.progress().have
            }
        };
        let mut total: u64 = blobs.values().map(|b| expected(b)).sum();
        if total + extra <= max {
            return true;
        }
        let mut idle: Vec<(std::time::Instant, String, u64)> = blobs
            .values()
            .filter(|b| b.users() == 0 && !b.unclaimed.load(Ordering::SeqCst))
            .map(|b| (*b.last_used.lock().unwrap(), b.id.clone(), expected(b)))
            .collect();
        idle.sort();
        for (_, id, bytes) in idle {
            if total + extra <= max {
                break;
            }
            blobs.remove(&id);
            total -= bytes;
        }
        total + extra <= max
    }

    /// Resolves when the download of `id` ends (whole, failed, or dropped with its blob), so
    /// the walk prefetcher can start the next one at once. Holds no reference to the blob.
    pub fn download_end(&self, id: &str) -> Option<impl std::future::Future<Output = ()> + Send> {
        self.progress_reaches(id, |p| p.done)
    }

    /// Resolves when the download a reader's `open` started for `id` has its first bytes, or
    /// ended (at once when there is no such blob, or the prefetcher started it: that GET was
    /// under way before the reader came). A walk moves only then, so its planning and
    /// downloads never compete with that GET for the reader's first byte. Holds no reference
    /// to the blob.
    pub fn first_bytes(&self, id: &str) -> impl std::future::Future<Output = ()> + Send {
        let prefetched = self
            .blobs
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|b| b.prefetched);
        let wait = if prefetched {
            None
        } else {
            self.progress_reaches(id, |p| p.have > 0 || p.done)
        };
        async move {
            if let Some(w) = wait {
                w.await
            }
        }
    }

    /// Resolves once the progress of `id`'s download satisfies `reached`, or its blob is gone.
    fn progress_reaches(
        &self,
        id: &str,
        reached: fn(&Progress) -> bool,
    ) -> Option<impl std::future::Future<Output = ()> + Send> {
        let mut rx = self
            .blobs
            .lock()
            .unwrap()
            .get(id)?
            .shared
            .progress
            .subscribe();
        Some(async move {
            while !reached(&rx.borrow_and_update()) {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// The walk that wanted these blobs went elsewhere: stop their downloads nobody opened.
    /// Finished ones stay cached (and are evicted first).
    pub fn abandon(&self, ids: &[&str]) {
        let mut blobs = self.blobs.lock().unwrap();
        for id in ids {
            let stop = blobs
                .get(*id)
                .is_some_and(|b| b.idle_unclaimed() && b.downloading());
            if stop {
                blobs.remove(*id);
            }
        }
    }

    /// A fresh download of the element behind `failed`, for a reader whose prefetched blob
    /// failed under it (the failed one stays with its other readers until they close).
    pub fn reopen<C: AltinnClient + ?Sized>(
        &self,
        client: Arc<C>,
        failed: &Blob,
    ) -> std::io::Result<Arc<Blob>> {
        self.open(client, failed.inst, &failed.element)
    }
}
