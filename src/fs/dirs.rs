//! Directory reads as the kernel makes them: reads at offsets from one snapshot per read, the
//! lookup references readdirplus hands out.
//!
//! The mount answers `opendir` with ENOSYS, so the kernel sends neither `opendir` nor
//! `releasedir` (two requests less per directory: half of a `find`'s requests), and reads
//! come with handle 0. Such a read takes a shared snapshot at offset 0 whose offsets carry a
//! tag of its names (`tag << 32 | position`): a later offset finds that very snapshot, or,
//! when it is gone, a new listing with the same names, so positions never shift under a
//! reader, whatever other readers of the directory do. A handle from [`AltinnFs::opendir`]
//! (callers in process) keeps its own snapshot with plain positions, as before.

use super::*;
use tree::dirs::listing_tag;

/// One read of a directory: its entries, where this request starts, and the tag its offsets
/// carry (0 for a read through a handle).
struct DirRead {
    entries: Arc<Vec<DirEntry>>,
    start: usize,
    tag: u64,
}

impl DirRead {
    /// The offset of the entry after position `i`.
    fn next_offset(&self, i: usize) -> i64 {
        ((self.tag << 32) | (i as u64 + 1)) as i64
    }
}

/// (tag, position) of a handle-less read's offset.
fn split_offset(offset: i64) -> (u64, usize) {
    let o = offset.max(0) as u64;
    (o >> 32, (o & 0xffff_ffff) as usize)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    pub fn opendir(&self, _ino: u64) -> u64 {
        self.tree.open_dir()
    }

    pub fn releasedir(&self, fh: u64) {
        self.tree.release_dir(fh);
    }

    /// The entries of a directory opened with a handle: computed at offset 0, reused for
    /// later offsets.
    async fn handle_read(&self, ino: u64, fh: u64, offset: i64) -> FsResult<DirRead> {
        let start = offset.max(0) as usize;
        if offset > 0 {
            if let Some(entries) = self.tree.dir_snapshot(fh) {
                return Ok(DirRead {
                    entries,
                    start,
                    tag: 0,
                });
            }
        }
        let entries = Arc::new(self.readdir(ino).await?);
        self.tree.set_dir_snapshot(fh, entries.clone());
        Ok(DirRead {
            entries,
            start,
            tag: 0,
        })
    }

    /// A handle-less read: the shared snapshot its offset names, else a new listing (whose
    /// positions are the same when its names are). The snapshot goes at the end of the read.
    async fn shared_read(&self, ino: u64, offset: i64) -> FsResult<DirRead> {
        let (tag, start) = split_offset(offset);
        let kept = (offset > 0)
            .then(|| self.tree.shared_dir_snapshot(ino, tag))
            .flatten();
        let (entries, tag, new) = match kept {
            Some(entries) => (entries, tag, false),
            None => {
                let entries = Arc::new(self.readdir(ino).await?);
                let now = listing_tag(&entries);
                if offset > 0 && now != tag {
                    tracing::debug!(ino, "directory changed within a read: new offsets");
                }
                (entries, now, true)
            }
        };
        if start >= entries.len() {
            self.tree.drop_shared_dir_snapshot(ino, tag);
        } else if new {
            self.tree.set_shared_dir_snapshot(ino, tag, entries.clone());
        }
        Ok(DirRead {
            entries,
            start,
            tag,
        })
    }

    async fn dir_read(&self, ino: u64, fh: u64, offset: i64) -> FsResult<DirRead> {
        if fh == 0 {
            self.shared_read(ino, offset).await
        } else {
            self.handle_read(ino, fh, offset).await
        }
    }

    /// readdir from `offset`: `add(entry, next offset)` returns true when the reply is full.
    pub async fn readdir_into(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
        mut add: impl FnMut(&DirEntry, i64) -> bool,
    ) -> FsResult<()> {
        let read = self.dir_read(ino, fh, offset).await?;
        for (i, d) in read.entries.iter().enumerate().skip(read.start) {
            if add(d, read.next_offset(i)) {
                break;
            }
        }
        Ok(())
    }

    /// readdirplus from `offset`: like [`Self::readdir_into`], and every entry the reply took
    /// (but `.` and `..`) counts as a lookup the kernel will forget later.
    pub async fn readdirplus_into(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
        mut add: impl FnMut(&DirEntry, i64) -> bool,
    ) -> FsResult<()> {
        let dir = self.node(ino)?;
        self.readdir_into(ino, fh, offset, |d, next| {
            if add(d, next) {
                return true;
            }
            if d.name != "." && d.name != ".." {
                self.remember_entry(&dir, d);
            }
            false
        })
        .await?;
        self.trim_inodes();
        Ok(())
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// Snapshots of handle-less reads held now (tests: bounded, gone at the end of a read).
    pub fn shared_dir_snapshots(&self) -> usize {
        self.tree.shared_dir_snapshots()
    }
}
