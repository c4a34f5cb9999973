//! Instances this mount created or deleted, with when: a listing (or a query page) asked for
//! before such a change cannot know it, so storing that listing replays the change instead
//! of losing a new instance (or bringing a deleted one back) until the next listing. The tree
//! keeps one for its listings, the index's refresher one for its pages.

use crate::altinn::ids::{InstanceGuid, PartyId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Longer than any listing runs (a million instances list in about fifteen minutes).
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// A bound on memory when a script creates instances by the thousand.
const MAX_EDITS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    Created,
    Deleted,
}

#[derive(Default)]
pub struct LocalEdits {
    log: VecDeque<(Instant, PartyId, InstanceGuid, Edit)>,
}

impl LocalEdits {
    pub fn record(&mut self, party: PartyId, guid: InstanceGuid, edit: Edit) {
        let now = Instant::now();
        while self
            .log
            .front()
            .is_some_and(|(t, ..)| now.duration_since(*t) > KEEP_FOR)
            || self.log.len() >= MAX_EDITS
        {
            self.log.pop_front();
        }
        self.log.push_back((now, party, guid, edit));
    }

    /// The GUIDs deleted at or after `asked`.
    pub fn deleted_since(&self, asked: Instant) -> std::collections::HashSet<InstanceGuid> {
        self.since(asked)
            .filter(|(_, _, e)| *e == Edit::Deleted)
            .map(|(_, g, _)| g)
            .collect()
    }

    /// The edits made at or after `asked`, oldest first.
    pub fn since(
        &self,
        asked: Instant,
    ) -> impl Iterator<Item = (PartyId, InstanceGuid, Edit)> + '_ {
        self.log
            .iter()
            .filter(move |(t, ..)| *t >= asked)
            .map(|(_, p, g, e)| (*p, *g, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_edits_from_the_time_asked_on_are_replayed() {
        let mut e = LocalEdits::default();
        let g = |n: u8| {
            InstanceGuid::parse(format!("00000000-0000-4000-8000-0000000000{n:02}")).unwrap()
        };
        let p = PartyId::from(1);
        e.record(p, g(1), Edit::Created);
        let asked = Instant::now();
        e.record(p, g(2), Edit::Created);
        e.record(p, g(1), Edit::Deleted);
        let got: Vec<_> = e.since(asked).collect();
        assert_eq!(
            got,
            vec![(p, g(2), Edit::Created), (p, g(1), Edit::Deleted)]
        );
    }

    #[test]
    fn the_log_is_bounded() {
        let mut e = LocalEdits::default();
        let g = InstanceGuid::parse("00000000-0000-4000-8000-000000000001").unwrap();
        for _ in 0..MAX_EDITS + 5 {
            e.record(PartyId::from(1), g, Edit::Created);
        }
        assert_eq!(e.log.len(), MAX_EDITS);
    }
}
