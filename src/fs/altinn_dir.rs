//! `MOUNTPOINT/.altinn/` (SPEC §7.3): the mount's own files, reachable by name and not
//! listed in the root (so `rsync`/`tar` of the mount leave them out). It holds `changes`,
//! the change feed, and exists only when the mount has its metadata index.

use super::feed_file::FeedSnapshot;
use super::layout::{ALTINN_DIR, CHANGES};
use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `.altinn` in the root: there when the index is.
    pub(super) fn altinn_in_root(&self) -> FsResult<Node> {
        match self.index_link() {
            Some(_) => Ok(Node::AltinnDir),
            None => Err(FsError::not_found(ALTINN_DIR)),
        }
    }

    pub(super) fn altinn_dir_child(&self, name: &str) -> FsResult<Node> {
        match (name, self.index_link()) {
            (CHANGES, Some(_)) => Ok(Node::ChangeFeed),
            _ => Err(FsError::not_found(name.to_string())),
        }
    }

    pub(super) fn altinn_dir_children(&self) -> Vec<(String, Node)> {
        match self.index_link() {
            Some(_) => vec![(CHANGES.to_string(), Node::ChangeFeed)],
            None => vec![],
        }
    }

    /// The feed file, brought up to the last line of the index.
    pub(super) fn change_feed(&self) -> FsResult<FeedSnapshot> {
        let path = format!("/{ALTINN_DIR}/{CHANGES}");
        let link = self
            .index_link()
            .ok_or_else(|| FsError::not_found(path.clone()))?;
        link.feed
            .current(link.refresher.index(), &self.cfg.spool_dir)
            .map_err(|e| FsError::io(path, e))
    }

    /// Read-only; its size is the feed's now (`tail -f` polls it).
    pub(super) fn change_feed_attr(&self, ino: u64) -> FsResult<Attr> {
        let f = self.change_feed()?;
        Ok(self.file_attr(ino, f.size, false, f.changed, self.started))
    }

    /// New feed lines: the kernel's copy of the file's size is dropped.
    pub(super) fn change_feed_grew(&self) -> Vec<Inval> {
        vec![Inval::Inode(inode::ino_of(&Node::ChangeFeed))]
    }
}
