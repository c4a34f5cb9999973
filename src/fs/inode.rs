//! Inode numbers derived from entity ids (stable across remounts) and the kernel's lookup
//! counts. An inode is dropped from the table when the kernel forgets it.

use super::layout::Node;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const ROOT_INO: u64 = 1;

/// Inode number of a node: 1 for the root, else 63 bits of SHA-256 of its identity (never 0/1).
pub fn ino_of(node: &Node) -> u64 {
    if *node == Node::Root {
        return ROOT_INO;
    }
    let h = Sha256::digest(node.identity().as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    let n = u64::from_le_bytes(b) & 0x7fff_ffff_ffff_ffff;
    if n <= ROOT_INO {
        n + 2
    } else {
        n
    }
}

#[derive(Debug)]
struct Entry {
    node: Node,
    lookups: u64,
}

#[derive(Debug, Default)]
pub struct InodeTable {
    map: HashMap<u64, Entry>,
}

impl InodeTable {
    pub fn new() -> Self {
        let mut t = Self::default();
        t.map.insert(
            ROOT_INO,
            Entry {
                node: Node::Root,
                lookups: 1,
            },
        );
        t
    }

    /// Make `node` resolvable by its inode number (without counting a kernel reference).
    pub fn register(&mut self, node: &Node) -> u64 {
        let ino = ino_of(node);
        match self.map.get_mut(&ino) {
            Some(e) if e.node == *node => {}
            Some(e) => {
                // A different node with the same identity hash: keep the newer one (the
                // identity includes the entity id, so this means the entity was replaced).
                tracing::warn!(ino, old = ?e.node, new = ?node, "inode hash collision");
                e.node = node.clone();
            }
            None => {
                self.map.insert(
                    ino,
                    Entry {
                        node: node.clone(),
                        lookups: 0,
                    },
                );
            }
        }
        ino
    }

    /// The kernel now holds one more reference (lookup, create, mkdir, readdirplus entry).
    pub fn lookup(&mut self, node: &Node) -> u64 {
        let ino = self.register(node);
        if let Some(e) = self.map.get_mut(&ino) {
            e.lookups += 1;
        }
        ino
    }

    pub fn inc(&mut self, ino: u64) {
        if let Some(e) = self.map.get_mut(&ino) {
            e.lookups += 1;
        }
    }

    /// Point an inode number the kernel holds at another node (a local file that became an
    /// element keeps answering under its old number until the kernel forgets it).
    pub fn rebind(&mut self, ino: u64, node: &Node) {
        if let Some(e) = self.map.get_mut(&ino) {
            e.node = node.clone();
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
        if let Some(e) = self.map.get_mut(&ino) {
            e.lookups = e.lookups.saturating_sub(n);
            if e.lookups == 0 {
                self.map.remove(&ino);
            }
        }
    }

    pub fn lookups(&self, ino: u64) -> u64 {
        self.map.get(&ino).map(|e| e.lookups).unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_counted() {
        let n = Node::Element {
            party: "1".parse().unwrap(),
            guid: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".parse().unwrap(),
            dt: "d".parse().unwrap(),
            id: "e1".parse().unwrap(),
        };
        let a = ino_of(&n);
        assert_eq!(a, ino_of(&n.clone()));
        assert_ne!(a, ino_of(&Node::Party { party: 1.into() }));
        let mut t = InodeTable::new();
        t.lookup(&n);
        t.lookup(&n);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        t.forget(ROOT_INO, 5);
        assert!(t.get(ROOT_INO).is_some());
    }
}
