//! Walk prefetch (SPEC §4 "Many files"): `cp -r`, `tar`, `rsync` and `restic` read the files of
//! a tree one after another, so over a network each file costs a round trip. When a reader
//! opens the first file of a directory, or the file that follows the one it read last, the
//! next files of the walk are downloaded in parallel (`prefetch_files` at a time, within the
//! blob cache's prefetch budget): the rest of the directory, the next data type directories,
//! then the next instance directories of the party, in readdir order. Opening a file ahead in
//! the walk (or elsewhere in the same instance) moves it on; opening anything else (a jump)
//! stops it and its unfinished downloads. The plan comes from cached metadata only, never a request; what a read returns
//! is unchanged, since the cache reuses a blob only while `lastChanged` and `size` hold.

use super::read::{Blob, PrefetchLimits, PrefetchStats, Prefetched};
use super::write::Handle;
use super::*;
use lru::LruCache;
use std::num::NonZeroUsize;

/// Walks remembered at once (one per reading process).
const READERS: usize = 64;

/// One element in walk order.
#[derive(Debug, Clone)]
struct Step {
    party: String,
    guid: String,
    el: DataElement,
}

impl Step {
    fn is(&self, id: &str) -> bool {
        self.el.id == id
    }
}

/// Where one reader is in its walk.
struct Walk {
    /// The element it opened last, and its instance.
    at: String,
    guid: String,
    /// Whether prefetching runs for it (off until it shows it walks).
    active: bool,
    /// The next `prefetch_files` elements after `at`, in walk order.
    ahead: Vec<Step>,
}

/// Per-reader walks (readers are process ids; FUSE gives each request one).
pub struct Walks {
    files: usize,
    readers: Mutex<LruCache<u32, Walk>>,
}

impl Walks {
    pub fn new(files: usize) -> Self {
        Self {
            files,
            readers: Mutex::new(LruCache::new(NonZeroUsize::new(READERS).unwrap())),
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
                self.walk_opened(reader, &party, &guid, &id);
            }
        }
        Ok(fh)
    }

    /// What walk prefetching holds right now.
    pub fn prefetch_stats(&self) -> PrefetchStats {
        self.blobs.prefetch_stats()
    }

    /// Reader `reader` opened element `id` for reading.
    fn walk_opened(&self, reader: u32, party: &str, guid: &str, id: &str) {
        let mut readers = self.walks.readers.lock().unwrap();
        let previous = readers.pop(&reader);
        let walk = match previous {
            Some(w) if w.at == id => w,
            Some(w) => match w.ahead.iter().position(|s| s.is(id)) {
                // On the walk (files skipped over stay cached, evicted first).
                Some(i) => Walk {
                    at: id.to_string(),
                    guid: guid.to_string(),
                    active: w.active || i == 0,
                    ahead: self.plan_after(party, guid, id),
                },
                // Another file of this instance or of one the walk reached: tools that sort
                // names (rsync) visit directories in another order; the walk goes on.
                None if w.guid == guid || w.ahead.iter().any(|s| s.guid == guid) => {
                    let mut next = self.start_walk(party, guid, id);
                    next.active |= w.active;
                    next
                }
                None => {
                    self.stop_walk(&w);
                    self.start_walk(party, guid, id)
                }
            },
            None => self.start_walk(party, guid, id),
        };
        if walk.active {
            self.prefetch_ahead(&walk);
        }
        readers.put(reader, walk);
    }

    /// A walk starts at the first file of a directory; elsewhere only once the reader goes
    /// on to the next file.
    fn start_walk(&self, party: &str, guid: &str, id: &str) -> Walk {
        let first = self.tree.peek_instance(guid).is_some_and(|e| {
            e.element(id)
                .and_then(|el| e.names.get(&el.data_type))
                .and_then(|names| names.first())
                .is_some_and(|(_, i)| e.inst.data[*i].id == id)
        });
        Walk {
            at: id.to_string(),
            guid: guid.to_string(),
            active: first,
            ahead: self.plan_after(party, guid, id),
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
            let inst = Self::instance_ref(&s.party, &s.guid);
            let r = self
                .blobs
                .prefetch(self.client.clone(), inst, &s.el, self.cfg.retry, limits);
            if r == Prefetched::Full {
                break;
            }
        }
    }

    /// The next `prefetch_files` elements after `id` in walk (readdir) order, from cached
    /// metadata: the rest of its directory, the next data type directories of its instance,
    /// then the next instances of the party.
    fn plan_after(&self, party: &str, guid: &str, id: &str) -> Vec<Step> {
        let n = self.walks.files;
        let mut out = Vec::with_capacity(n);
        let Some(e) = self.tree.peek_instance(guid) else {
            return out;
        };
        let Some(dt) = e.element(id).map(|el| el.data_type.clone()) else {
            return out;
        };
        let types = self.meta.data_types.iter().map(|d| d.id.as_str());
        let after_dt = types.skip_while(|t| *t != dt);
        let mut past = false;
        for t in after_dt {
            for (_, i) in e.names.get(t).into_iter().flatten() {
                let el = &e.inst.data[*i];
                if past || t != dt {
                    out.push(Step::new(party, guid, el));
                }
                past |= el.id == id;
            }
        }
        let mut from = guid.to_string();
        while out.len() < n {
            let next = self.tree.guids_after(party, &from, n);
            if next.is_empty() {
                break;
            }
            for g in next {
                let Some(e) = self.tree.peek_instance(&g) else {
                    // Not listed here yet: the walk does not ask the server.
                    out.truncate(n);
                    return out;
                };
                self.push_instance(&mut out, party, &e);
                from = g;
                if out.len() >= n {
                    break;
                }
            }
        }
        out.truncate(n);
        out
    }

    /// Every element of an instance, in readdir order.
    fn push_instance(&self, out: &mut Vec<Step>, party: &str, e: &InstEntry) {
        for t in &self.meta.data_types {
            for (_, i) in e.names.get(&t.id).into_iter().flatten() {
                out.push(Step::new(party, e.inst.guid(), &e.inst.data[*i]));
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
    ) -> FsResult<Vec<u8>> {
        let what = || format!("data element {}", blob.id);
        match blob.read(off, size).await {
            Ok(v) => Ok(v),
            Err(e) if blob.was_prefetched() => {
                tracing::info!("prefetch of {} failed ({e}); downloading it again", what());
                let fresh = self
                    .blobs
                    .reopen(self.client.clone(), &blob, self.cfg.retry)
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

impl Step {
    fn new(party: &str, guid: &str, el: &DataElement) -> Self {
        Self {
            party: party.to_string(),
            guid: guid.to_string(),
            el: el.clone(),
        }
    }
}
