//! Directory handles as the kernel uses them: `opendir`, reads at offsets from one snapshot
//! per handle, the lookup references readdirplus hands out, `releasedir`.

use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    pub fn opendir(&self, _ino: u64) -> u64 {
        self.tree.open_dir()
    }

    pub fn releasedir(&self, fh: u64) {
        self.tree.release_dir(fh);
    }

    /// The entries of an open directory: computed at offset 0, reused for later offsets.
    pub async fn dir_entries(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
    ) -> FsResult<Arc<Vec<DirEntry>>> {
        if offset > 0 {
            if let Some(v) = self.tree.dir_snapshot(fh) {
                return Ok(v);
            }
        }
        let v = Arc::new(self.readdir(ino).await?);
        self.tree.set_dir_snapshot(fh, v.clone());
        Ok(v)
    }

    /// readdir from `offset`: `add(entry, next offset)` returns true when the reply is full.
    pub async fn readdir_into(
        &self,
        ino: u64,
        fh: u64,
        offset: i64,
        mut add: impl FnMut(&DirEntry, i64) -> bool,
    ) -> FsResult<()> {
        let entries = self.dir_entries(ino, fh, offset).await?;
        for (i, d) in entries.iter().enumerate().skip(offset.max(0) as usize) {
            if add(d, (i + 1) as i64) {
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
