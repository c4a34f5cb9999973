//! Where the tree keeps instance documents: a small interface so that the in-memory LRU of
//! today and the on-disk metadata index (`fs/index.rs`) can stand behind the same tree.

use super::InstEntry;
use crate::altinn::ids::InstanceGuid;
use crate::fs::cache::TtlCache;
use std::sync::Arc;
use std::time::Duration;

/// Instance documents by GUID, each with the time it was fetched. Keyed by the parsed GUID:
/// a walk asks several times per entry, and formatting a GUID costs more than the lookup.
pub trait InstanceStore: Send {
    /// The entry of any age, with whether it is still fresh.
    fn get_any(&mut self, guid: &InstanceGuid) -> Option<(Arc<InstEntry>, bool)>;
    /// The entry without touching recency or checking age.
    fn peek(&self, guid: &InstanceGuid) -> Option<Arc<InstEntry>>;
    fn insert(&mut self, guid: InstanceGuid, entry: Arc<InstEntry>);
    fn remove(&mut self, guid: &InstanceGuid);
}

/// The bounded in-memory store: `cache_entries` documents, fresh for `metadata_ttl`.
pub struct MemoryStore(TtlCache<InstanceGuid, Arc<InstEntry>>);

impl MemoryStore {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self(TtlCache::new(capacity, ttl))
    }
}

impl InstanceStore for MemoryStore {
    fn get_any(&mut self, guid: &InstanceGuid) -> Option<(Arc<InstEntry>, bool)> {
        self.0.get_any(guid).map(|(e, fresh)| (e.clone(), fresh))
    }
    fn peek(&self, guid: &InstanceGuid) -> Option<Arc<InstEntry>> {
        self.0.peek(guid).cloned()
    }
    fn insert(&mut self, guid: InstanceGuid, entry: Arc<InstEntry>) {
        self.0.insert(guid, entry);
    }
    fn remove(&mut self, guid: &InstanceGuid) {
        self.0.remove(guid);
    }
}
