//! Instances this mount deleted, with when: a query page asked for before the delete still
//! holds the instance, and applying it would bring the instance back into the index (and
//! `ls`) until the next listing.

use crate::altinn::model::Instance;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longer than any page takes to come back.
const KEEP_FOR: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(super) struct DeletedHere(Mutex<HashMap<String, Instant>>);

impl DeletedHere {
    pub(super) fn record(&self, guid: &str) {
        let now = Instant::now();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| now.duration_since(*t) < KEEP_FOR);
        m.insert(guid.to_string(), now);
    }

    /// The instances of a page asked for at `asked`, less those this mount deleted since.
    pub(super) fn filter(&self, instances: Vec<Instance>, asked: Instant) -> Vec<Instance> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_empty() {
            return instances;
        }
        instances
            .into_iter()
            .filter(|i| m.get(i.guid()).is_none_or(|t| *t < asked))
            .collect()
    }
}
