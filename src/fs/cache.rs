//! LRU + TTL metadata cache (sized by `cache_entries`, fresh for `metadata_ttl`), also used
//! as the bounded negative cache.

use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

pub struct TtlCache<K: Hash + Eq, V> {
    lru: LruCache<K, (Instant, V)>,
    ttl: Duration,
}

impl<K: Hash + Eq, V> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            lru: LruCache::new(NonZeroUsize::new(capacity.max(1)).unwrap()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn insert(&mut self, k: K, v: V) {
        self.lru.put(k, (Instant::now(), v));
    }

    /// The value when it is younger than the TTL.
    pub fn get_fresh(&mut self, k: &K) -> Option<&V> {
        let ttl = self.ttl;
        match self.lru.get(k) {
            Some((t, v)) if t.elapsed() < ttl => Some(v),
            _ => None,
        }
    }

    /// The value of any age, with whether it is still fresh.
    pub fn get_any(&mut self, k: &K) -> Option<(&V, bool)> {
        let ttl = self.ttl;
        self.lru.get(k).map(|(t, v)| (v, t.elapsed() < ttl))
    }

    /// Look without touching recency or checking age.
    pub fn peek(&self, k: &K) -> Option<&V> {
        self.lru.peek(k).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.lru.get_mut(k).map(|(_, v)| v)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.lru.pop(k).map(|(_, v)| v)
    }

    /// Mark an entry stale so the next fresh read asks the server.
    pub fn expire(&mut self, k: &K) {
        let ttl = self.ttl;
        if let Some((t, _)) = self.lru.get_mut(k) {
            *t = Instant::now()
                .checked_sub(ttl + Duration::from_secs(1))
                .unwrap_or(*t);
        }
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    pub fn clear(&mut self) {
        self.lru.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_lru() {
        let mut c = TtlCache::new(2, Duration::from_millis(50));
        c.insert(1, "a");
        c.insert(2, "b");
        c.insert(3, "c");
        assert!(c.get_fresh(&1).is_none(), "evicted");
        assert_eq!(c.get_fresh(&3), Some(&"c"));
        c.expire(&3);
        assert!(c.get_fresh(&3).is_none());
        assert_eq!(c.get_any(&3).map(|(v, f)| (*v, f)), Some(("c", false)));
    }
}
