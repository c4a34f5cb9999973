//! Inode numbers derived from entity ids (stable across remounts) and the kernel's lookup
//! counts, in a table whose size does not grow with the app.
//!
//! The kernel keeps every inode it was handed (lookup, readdirplus) until it forgets it, and
//! after a `find` over a big app that is every entry. So the table counts the entries the
//! kernel holds per instance directory, and once more than `max_held` are held it names the
//! least recently used instance directories to invalidate: the kernel drops their dentries and
//! sends FORGET for the whole subtree. Inode numbers are hashes of ids, so a later lookup of
//! the same name gets the same number. Entries the kernel does not hold (registered by a
//! listing) are kept in a bounded LRU of their own.

use super::layout::Node;
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const ROOT_INO: u64 = 1;

/// Default for how many inodes the kernel may hold before the oldest subtrees are invalidated
/// (~100 bytes each in this table: a few MiB).
pub const MAX_HELD_INODES: usize = 50_000;
/// Registered inodes the kernel holds no reference to (names of small listings).
pub const MAX_UNHELD_INODES: usize = 16_384;
/// After an invalidation the kernel forgets asynchronously; entries still counted as
/// "releasing" after this long are assumed kept (in use) and counted as held again.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Inode number of a node: 1 for the root, else 63 bits of SHA-256 of its identity (never 0/1).
pub fn ino_of(node: &Node) -> u64 {
    if *node == Node::Root {
        return ROOT_INO;
    }
    let mut hasher = HashWriter(Sha256::new());
    let _ = node.write_identity(&mut hasher);
    let h = hasher.0.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    let n = u64::from_le_bytes(b) & 0x7fff_ffff_ffff_ffff;
    if n <= ROOT_INO {
        n + 2
    } else {
        n
    }
}

/// Feeds formatted text straight into the hash (no String per inode number).
struct HashWriter(Sha256);

impl std::fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// The instance directory (in the main tree or a view) that holds `node`, if any: the unit
/// the table asks the kernel to drop.
fn subtree_of(node: &Node) -> Option<Node> {
    match node {
        Node::InView { view, inner } => subtree_of(inner).map(|i| Node::InView {
            view: *view,
            inner: Box::new(i),
        }),
        _ => node.instance_id().map(|id| Node::Instance {
            party: id.party,
            guid: id.guid,
        }),
    }
}

/// The directory entry (parent inode, name) of an instance directory.
fn dentry_of(dir: &Node) -> Option<(u64, String)> {
    match dir {
        Node::Instance { party, guid } => {
            Some((ino_of(&Node::Party { party: *party }), guid.to_string()))
        }
        Node::InView { view, inner } => match inner.as_ref() {
            Node::Instance { party, guid } => Some((
                ino_of(&Node::ViewParty {
                    view: *view,
                    party: *party,
                }),
                guid.to_string(),
            )),
            _ => None,
        },
        _ => None,
    }
}

/// How many inodes the table keeps (`-o max_inodes=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InodeLimits {
    /// Held by the kernel before the least recently used instance directories are dropped.
    pub max_held: usize,
    /// Registered by listings, not held by the kernel.
    pub max_unheld: usize,
}

impl Default for InodeLimits {
    fn default() -> Self {
        Self {
            max_held: MAX_HELD_INODES,
            max_unheld: MAX_UNHELD_INODES,
        }
    }
}

#[derive(Debug)]
struct Entry {
    node: Node,
    lookups: u64,
    /// Inode of the instance directory it belongs to (0: none).
    subtree: u64,
}

#[derive(Debug)]
pub struct InodeTable {
    map: HashMap<u64, Entry>,
    limits: InodeLimits,
    /// Entries with no kernel reference, least recently registered first.
    unheld: LruCache<u64, ()>,
    /// Entries with a kernel reference.
    held: usize,
    /// Instance directories with held entries: their inode → how many, least recently used
    /// first.
    subtrees: LruCache<u64, usize>,
    /// Held entries an invalidation asked the kernel to forget (an estimate), and since when.
    releasing: usize,
    released_at: Option<Instant>,
    /// The last instance directory an entry was registered under, and its number: a
    /// listing registers every entry of one instance in a row, and hashing that directory's
    /// identity again for each was a SHA-256 per entry.
    last_subtree: Option<(Node, u64)>,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    pub fn new() -> Self {
        Self::with_limits(InodeLimits::default())
    }

    pub fn with_limits(limits: InodeLimits) -> Self {
        let mut t = Self {
            map: HashMap::new(),
            limits,
            unheld: LruCache::unbounded(),
            held: 0,
            subtrees: LruCache::unbounded(),
            releasing: 0,
            released_at: None,
            last_subtree: None,
        };
        t.map.insert(
            ROOT_INO,
            Entry {
                node: Node::Root,
                lookups: 1,
                subtree: 0,
            },
        );
        t
    }

    pub fn set_limits(&mut self, limits: InodeLimits) {
        self.limits = limits;
        self.trim_unheld();
    }

    /// Make `node` resolvable by its inode number (without counting a kernel reference).
    pub fn register(&mut self, node: &Node) -> u64 {
        self.register_as(ino_of(node), node)
    }

    /// [`Self::register`] with `ino_of(node)` already computed (a listing computes it for
    /// the entry's attributes; hashing it again was a tenth of a walk's time).
    pub fn register_as(&mut self, ino: u64, node: &Node) -> u64 {
        debug_assert_eq!(ino, ino_of(node));
        match self.map.get_mut(&ino) {
            Some(e) if e.node == *node => {
                if e.lookups == 0 {
                    self.unheld.promote(&ino);
                }
            }
            Some(e) => {
                // A different node with the same identity hash: keep the newer one (the
                // identity includes the entity id, so this means the entity was replaced).
                tracing::warn!(ino, old = ?e.node, new = ?node, "inode hash collision");
                self.set_node(ino, node);
            }
            None => {
                let subtree = self.subtree_ino(node);
                let node = node.clone();
                self.map.insert(
                    ino,
                    Entry {
                        node,
                        lookups: 0,
                        subtree,
                    },
                );
                self.unheld.put(ino, ());
                self.trim_unheld();
            }
        }
        ino
    }

    /// The inode of the instance directory that holds `node` (0: none).
    fn subtree_ino(&mut self, node: &Node) -> u64 {
        let Some(dir) = subtree_of(node) else {
            return 0;
        };
        match &self.last_subtree {
            Some((last, ino)) if *last == dir => *ino,
            _ => {
                let ino = ino_of(&dir);
                self.last_subtree = Some((dir, ino));
                ino
            }
        }
    }

    /// Drop the oldest entries nobody holds beyond `max_unheld`.
    fn trim_unheld(&mut self) {
        while self.unheld.len() > self.limits.max_unheld {
            let Some((ino, ())) = self.unheld.pop_lru() else {
                return;
            };
            if self.map.get(&ino).is_some_and(|e| e.lookups == 0) {
                self.map.remove(&ino);
            }
        }
    }

    /// The kernel now holds one more reference (lookup, create, mkdir, readdirplus entry).
    pub fn lookup(&mut self, node: &Node) -> u64 {
        let ino = self.register(node);
        self.inc(ino);
        ino
    }

    /// One more kernel reference to a known inode; false when the number is unknown.
    pub fn inc(&mut self, ino: u64) -> bool {
        let Some(e) = self.map.get_mut(&ino) else {
            return false;
        };
        e.lookups += 1;
        let (first, subtree) = (e.lookups == 1, e.subtree);
        if first {
            self.unheld.pop(&ino);
            self.held += 1;
        }
        if subtree != 0 {
            match self.subtrees.get_mut(&subtree) {
                Some(n) => *n += usize::from(first),
                None => {
                    self.subtrees.put(subtree, 1);
                }
            }
        }
        true
    }

    /// Point an inode number the kernel holds at another node (a local file that became an
    /// element keeps answering under its old number until the kernel forgets it).
    pub fn rebind(&mut self, ino: u64, node: &Node) {
        if self.map.contains_key(&ino) {
            self.set_node(ino, node);
        }
    }

    /// Replace the node of an entry, moving its count to its new instance directory.
    fn set_node(&mut self, ino: u64, node: &Node) {
        let subtree = self.subtree_ino(node);
        let Some(e) = self.map.get_mut(&ino) else {
            return;
        };
        let (old, held) = (e.subtree, e.lookups > 0);
        e.node = node.clone();
        e.subtree = subtree;
        if held && old != subtree {
            self.uncount(old);
            if subtree != 0 {
                *self.subtrees.get_or_insert_mut(subtree, || 0) += 1;
            }
        }
    }

    /// A held entry of instance directory `subtree` is gone.
    fn uncount(&mut self, subtree: u64) {
        if let Some(n) = self.subtrees.peek_mut(&subtree) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.subtrees.pop(&subtree);
            }
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.map.get(&ino).map(|e| &e.node)
    }

    /// The kernel dropped `n` references; the entry goes when none are left.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(e) = self.map.get_mut(&ino) else {
            return;
        };
        let was_held = e.lookups > 0;
        e.lookups = e.lookups.saturating_sub(n);
        if e.lookups > 0 {
            return;
        }
        let subtree = e.subtree;
        self.map.remove(&ino);
        self.unheld.pop(&ino);
        if was_held {
            self.held -= 1;
            self.releasing = self.releasing.saturating_sub(1);
            self.uncount(subtree);
        }
    }

    /// When the kernel holds more than `max_held` entries: the (parent inode, name) of the
    /// least recently used instance directories whose invalidation brings it down to 3/4 of
    /// that (the kernel then forgets their subtrees). Empty when nothing is to be dropped.
    pub fn over_limit(&mut self) -> Vec<(u64, String)> {
        if self
            .released_at
            .is_some_and(|t| t.elapsed() > RELEASE_GRACE)
        {
            self.releasing = 0;
            self.released_at = None;
        }
        let mut out = Vec::new();
        if self.held.saturating_sub(self.releasing) <= self.limits.max_held {
            return out;
        }
        let target = self.limits.max_held / 4 * 3;
        while self.held.saturating_sub(self.releasing) > target {
            let Some((dir, n)) = self.subtrees.pop_lru() else {
                break;
            };
            if let Some(d) = self.map.get(&dir).and_then(|e| dentry_of(&e.node)) {
                self.releasing += n;
                out.push(d);
            }
        }
        if !out.is_empty() {
            self.released_at = Some(Instant::now());
        }
        out
    }

    pub fn lookups(&self, ino: u64) -> u64 {
        self.map.get(&ino).map(|e| e.lookups).unwrap_or(0)
    }

    /// Entries the kernel holds a reference to (the root included).
    pub fn held(&self) -> usize {
        self.held + 1
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests;
