//! The references the kernel holds (SPEC §7.1: memory does not grow with the app): readdirplus
//! entries become lookups, and when the kernel holds more inodes than `cache_entries` the least
//! recently used instance directories are invalidated so that it forgets their subtrees.

use super::*;
use crate::altinn::ids::InstanceGuid;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// The kernel took a reference through a readdirplus entry of directory `dir`. A party's
    /// listing does not register its (many) instances: they are registered here, as the
    /// kernel takes them.
    pub(super) fn remember_entry(&self, dir: &Node, d: &DirEntry) {
        if self.tree.remember(d.attr.ino) {
            return;
        }
        match listed_child(dir, &d.name) {
            Some(n) if inode::ino_of(&n) == d.attr.ino => {
                self.tree.lookup_ref(&n);
            }
            _ => {
                tracing::warn!(ino = d.attr.ino, name = %d.name, "readdirplus entry not in the inode table")
            }
        }
    }

    /// Ask the kernel to drop the least recently used instance directories when it holds
    /// more inodes than the limit (it sends FORGET for them; their numbers stay the same).
    pub(super) fn trim_inodes(&self) {
        let drop = self.tree.inodes_over_limit();
        if drop.is_empty() {
            return;
        }
        tracing::debug!(
            directories = drop.len(),
            held = self.tree.held_inodes(),
            "asking the kernel to forget instance directories"
        );
        let inv = drop
            .into_iter()
            .map(|(parent, name)| Inval::Entry { parent, name })
            .collect();
        self.notify(inv);
    }
}

/// The node of entry `name` of a directory whose listing does not register its entries.
fn listed_child(dir: &Node, name: &str) -> Option<Node> {
    match dir {
        Node::Party { party } => Some(Node::Instance {
            party: *party,
            guid: InstanceGuid::parse(name).ok()?,
        }),
        _ => None,
    }
}
