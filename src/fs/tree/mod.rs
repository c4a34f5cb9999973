//! The tree: inode numbers and the kernel's lookup counts, the party and instance listings,
//! the instance documents (behind [`store::InstanceStore`]), `mkdir` aliases, the negative
//! cache, the Storage mode (org or user) and open directory handles. It owns this state behind
//! its own locks and answers questions about it; it never calls the server (the facade does,
//! and hands it the answers).

pub mod dirs;
pub mod instance;
pub mod store;

use crate::altinn::ids::{InstanceGuid, InstanceId, PartyId};
use crate::fs::cache::TtlCache;
use crate::fs::inode::{InodeLimits, InodeTable};
use crate::fs::layout::Node;
use crate::fs::local_edits::{Edit, LocalEdits};
use crate::fs::DirEntry;
pub use instance::InstEntry;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::InstanceStore;

struct PartyListing {
    at: Instant,
    guids: BTreeSet<InstanceGuid>,
}

struct TreeState {
    inodes: InodeTable,
    instances: Box<dyn InstanceStore>,
    parties: HashMap<PartyId, PartyListing>,
    root: Option<(Instant, BTreeSet<PartyId>)>,
    /// Some(true): an app owner (org) token; Some(false): a user token; None: not known yet.
    org_mode: Option<bool>,
    /// (party, name given to mkdir) → instance GUID
    aliases: HashMap<(PartyId, String), InstanceGuid>,
    negative: TtlCache<(u64, String), ()>,
    /// The last instance read from the metadata index: a miss on the one after it is a
    /// walk in listing order (`listing::instance_from_index`).
    last_index_read: Option<InstanceId>,
    /// Instances this mount created or deleted, replayed onto listings asked before.
    edits: LocalEdits,
}

pub struct Tree {
    st: Mutex<TreeState>,
    /// Directory snapshots: a lock of their own, so a long listing never waits on a lookup.
    dirs: Mutex<dirs::DirHandles>,
    /// How long a listing is fresh (`metadata_ttl`).
    ttl: Duration,
}

impl Tree {
    pub fn new(
        instances: Box<dyn InstanceStore>,
        negative_entries: usize,
        ttl: Duration,
        org_mode: Option<bool>,
    ) -> Self {
        Self {
            st: Mutex::new(TreeState {
                inodes: InodeTable::new(),
                instances,
                parties: HashMap::new(),
                root: None,
                org_mode,
                aliases: HashMap::new(),
                negative: TtlCache::new(negative_entries, ttl),
                last_index_read: None,
                edits: LocalEdits::default(),
            }),
            dirs: Mutex::new(dirs::DirHandles::default()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TreeState> {
        self.st.lock().unwrap()
    }

    // ------------------------------------------------------------ inodes

    pub fn node(&self, ino: u64) -> Option<Node> {
        self.lock().inodes.get(ino).cloned()
    }

    /// Make `node` resolvable by its inode number (no kernel reference).
    pub fn register(&self, node: &Node) -> u64 {
        self.lock().inodes.register(node)
    }

    /// [`Self::register`] of a node whose number `ino` is known.
    pub fn register_as(&self, ino: u64, node: &Node) -> u64 {
        self.lock().inodes.register_as(ino, node)
    }

    /// The kernel took a reference to `node` (lookup, create, mkdir).
    pub fn lookup_ref(&self, node: &Node) -> u64 {
        self.lock().inodes.lookup(node)
    }

    /// [`Self::lookup_ref`] of a node whose number `ino` is known.
    pub fn lookup_ref_as(&self, ino: u64, node: &Node) {
        let mut st = self.lock();
        st.inodes.register_as(ino, node);
        st.inodes.inc(ino);
    }

    /// The kernel took a reference through a readdirplus entry; false when the number is
    /// not in the table (the caller registers the node).
    pub fn remember(&self, ino: u64) -> bool {
        self.lock().inodes.inc(ino)
    }

    /// How many inodes the table keeps (`max_inodes`).
    pub fn set_inode_limits(&self, limits: InodeLimits) {
        self.lock().inodes.set_limits(limits);
    }

    /// Instance directories (parent inode, name) the kernel should drop, when it holds more
    /// inodes than the limit.
    pub fn inodes_over_limit(&self) -> Vec<(u64, String)> {
        self.lock().inodes.over_limit()
    }

    /// Inodes the kernel holds (status, tests).
    pub fn held_inodes(&self) -> usize {
        self.lock().inodes.held()
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.lock().inodes.forget(ino, n);
    }

    pub fn lookups(&self, ino: u64) -> u64 {
        self.lock().inodes.lookups(ino)
    }

    /// An inode the kernel holds now shows `node` (a local file became an element, a rename
    /// landed on another entry), and `node` is resolvable by its own number too.
    pub fn rebind(&self, ino: u64, node: &Node) {
        let mut st = self.lock();
        st.inodes.rebind(ino, node);
        st.inodes.register(node);
    }

    // ------------------------------------------------------------ instances

    /// A cached instance: any age, or only a fresh one when `need_fresh`.
    pub fn instance(&self, guid: InstanceGuid, need_fresh: bool) -> Option<Arc<InstEntry>> {
        match self.lock().instances.get_any(&guid) {
            Some((e, fresh)) if fresh || !need_fresh => Some(e),
            _ => None,
        }
    }

    /// The last instance read from the metadata index.
    pub fn last_index_read(&self) -> Option<InstanceId> {
        self.lock().last_index_read
    }

    pub fn set_last_index_read(&self, id: InstanceId) {
        self.lock().last_index_read = Some(id);
    }

    /// A cached instance, without touching recency or age.
    pub fn peek_instance(&self, guid: InstanceGuid) -> Option<Arc<InstEntry>> {
        self.lock().instances.peek(&guid)
    }

    /// Hold a new state of an instance (and list it under its party when that party is
    /// listed); returns the state it replaces.
    pub fn replace_instance(&self, entry: Arc<InstEntry>) -> Option<Arc<InstEntry>> {
        let id = match InstanceId::of(&entry.inst) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("an instance with a bad id is not listed: {e}");
                return None;
            }
        };
        let mut st = self.lock();
        let old = st.instances.peek(&id.guid);
        st.instances.insert(id.guid, entry);
        if let Some(l) = st.parties.get_mut(&id.party) {
            l.guids.insert(id.guid);
        }
        old
    }

    /// An instance was deleted: forget it, its listing entry and its aliases (whose names
    /// are returned, for invalidation).
    pub fn remove_instance(&self, party: PartyId, guid: InstanceGuid) -> Vec<String> {
        let mut st = self.lock();
        st.edits.record(party, guid, Edit::Deleted);
        st.instances.remove(&guid);
        if let Some(l) = st.parties.get_mut(&party) {
            l.guids.remove(&guid);
        }
        let gone: Vec<(PartyId, String)> = st
            .aliases
            .iter()
            .filter(|(_, g)| **g == guid)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            st.aliases.remove(k);
        }
        gone.into_iter().map(|(_, name)| name).collect()
    }

    /// Hold the instances of one listing asked for at `asked`, grouped by party; `parties`
    /// are listed even when they have no instance. What this mount created or deleted since
    /// `asked` stays as it made it.
    pub fn store_listing(&self, asked: Instant, parties: &[PartyId], entries: Vec<Arc<InstEntry>>) {
        let now = Instant::now();
        let mut by_party: HashMap<PartyId, BTreeSet<InstanceGuid>> = HashMap::new();
        for p in parties {
            by_party.entry(*p).or_default();
        }
        let mut st = self.lock();
        for e in entries {
            match InstanceId::of(&e.inst) {
                Ok(id) => {
                    by_party.entry(id.party).or_default().insert(id.guid);
                    st.instances.insert(id.guid, e);
                }
                Err(err) => tracing::warn!("an instance with a bad id is not listed: {err}"),
            }
        }
        for (party, guids) in by_party {
            st.parties.insert(party, PartyListing { at: now, guids });
        }
        let TreeState { edits, parties, .. } = &mut *st;
        for (party, guid, edit) in edits.since(asked) {
            if let Some(l) = parties.get_mut(&party) {
                match edit {
                    Edit::Created => l.guids.insert(guid),
                    Edit::Deleted => l.guids.remove(&guid),
                };
            }
        }
    }

    /// Every party listing is emptied (an app-wide listing follows: parties that no longer
    /// have instances lose their listing).
    pub fn clear_party_listings(&self) {
        let now = Instant::now();
        for l in self.lock().parties.values_mut() {
            l.guids.clear();
            l.at = now;
        }
    }

    /// The GUIDs of a party's listing when there is one (and it is fresh, if `need_fresh`).
    pub fn party_guids(&self, party: PartyId, need_fresh: bool) -> Option<BTreeSet<InstanceGuid>> {
        let st = self.lock();
        let l = st.parties.get(&party)?;
        (!need_fresh || l.at.elapsed() < self.ttl).then(|| l.guids.clone())
    }

    /// Up to `n` GUIDs that follow `guid` in a party's listing (readdir order), any age.
    pub fn guids_after(&self, party: PartyId, guid: InstanceGuid, n: usize) -> Vec<InstanceGuid> {
        use std::ops::Bound::{Excluded, Unbounded};
        let st = self.lock();
        st.parties.get(&party).map_or_else(Vec::new, |l| {
            l.guids
                .range((Excluded(guid), Unbounded))
                .take(n)
                .copied()
                .collect()
        })
    }

    /// Add a GUID to a party's listing; `create` makes the listing when there is none.
    pub fn add_to_party(&self, party: PartyId, guid: InstanceGuid, create: bool) {
        let mut st = self.lock();
        st.edits.record(party, guid, Edit::Created);
        if create {
            st.parties.entry(party).or_insert_with(|| PartyListing {
                at: Instant::now(),
                guids: BTreeSet::new(),
            });
        }
        if let Some(l) = st.parties.get_mut(&party) {
            l.guids.insert(guid);
        }
    }

    /// The party is in the root listing or has a listing of its own.
    pub fn party_known(&self, party: PartyId) -> bool {
        let st = self.lock();
        st.root.as_ref().is_some_and(|(_, p)| p.contains(&party)) || st.parties.contains_key(&party)
    }

    pub fn root_parties(&self) -> Option<BTreeSet<PartyId>> {
        let st = self.lock();
        let (at, parties) = st.root.as_ref()?;
        (at.elapsed() < self.ttl).then(|| parties.clone())
    }

    pub fn set_root_parties(&self, parties: BTreeSet<PartyId>) {
        self.lock().root = Some((Instant::now(), parties));
    }

    pub fn org_mode(&self) -> Option<bool> {
        self.lock().org_mode
    }

    pub fn set_org_mode(&self, org: bool) {
        self.lock().org_mode = Some(org);
    }

    // ------------------------------------------------------------ names

    pub fn alias(&self, party: PartyId, name: &str) -> Option<InstanceGuid> {
        self.lock().aliases.get(&(party, name.to_string())).copied()
    }

    pub fn add_alias(&self, party: PartyId, name: &str, guid: InstanceGuid) {
        self.lock().aliases.insert((party, name.to_string()), guid);
    }

    /// `name` under `parent` was looked up and missing less than `metadata_ttl` ago.
    pub fn known_missing(&self, parent: u64, name: &str) -> bool {
        self.lock()
            .negative
            .get_fresh(&(parent, name.to_string()))
            .is_some()
    }

    pub fn note_missing(&self, parent: u64, name: &str) {
        self.lock().negative.insert((parent, name.to_string()), ());
    }

    pub fn clear_missing(&self, parent: u64, name: &str) {
        self.lock().negative.remove(&(parent, name.to_string()));
    }

    // ------------------------------------------------------------ directory handles

    pub fn open_dir(&self) -> u64 {
        self.dirs.lock().unwrap().open()
    }

    pub fn dir_snapshot(&self, fh: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.dirs.lock().unwrap().snapshot(fh)
    }

    pub fn set_dir_snapshot(&self, fh: u64, entries: Arc<Vec<DirEntry>>) {
        self.dirs.lock().unwrap().set_snapshot(fh, entries);
    }

    pub fn release_dir(&self, fh: u64) {
        self.dirs.lock().unwrap().release(fh);
    }

    /// The shared snapshot of a handle-less read of `ino` (see [`dirs::listing_tag`]).
    pub fn shared_dir_snapshot(&self, ino: u64, tag: u64) -> Option<Arc<Vec<DirEntry>>> {
        self.dirs.lock().unwrap().shared(ino, tag)
    }

    pub fn set_shared_dir_snapshot(&self, ino: u64, tag: u64, entries: Arc<Vec<DirEntry>>) {
        self.dirs.lock().unwrap().set_shared(ino, tag, entries);
    }

    pub fn drop_shared_dir_snapshot(&self, ino: u64, tag: u64) {
        self.dirs.lock().unwrap().drop_shared(ino, tag);
    }

    /// Shared snapshots held now (tests: bounded, dropped at the end of a read).
    pub fn shared_dir_snapshots(&self) -> usize {
        self.dirs.lock().unwrap().shared_count()
    }
}

#[cfg(test)]
mod tests;
