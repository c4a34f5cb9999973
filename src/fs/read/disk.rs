//! Filling a blob's cache file off the hot path: the download hands each complete block to a
//! blocking writer thread and goes on; readers are answered from memory meanwhile. Once a
//! block is in the file it may leave memory. A write that fails (disk full) is logged once,
//! and the blob goes on from memory only.
//!
//! Blocks are written with O_DIRECT where the file system takes it: the page cache copy and
//! its per-page bookkeeping were the largest cost of a sequential read (perf: ~40% of the
//! daemon's time, on the machine's few cores that the download, the kernel's FUSE copy and the
//! reader share). A block that is not aligned (the short last one), or a file system that
//! refuses O_DIRECT, takes the ordinary buffered write.

use super::ring::ALIGN;
use super::Shared;
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Blocks waiting to be written past which a slow disk's blocks go through the page cache
/// until the writer has caught up (a quarter of the ring).
const BACKLOG_FOR_BUFFERED: usize = 8;

/// An O_DIRECT write of one block slower than this is the disk's doing (below ~100 MB/s),
/// not a busy CPU's: only then does the page cache take over. A writer that is merely short
/// of CPU must stay direct, since buffered writes cost several times the CPU.
const SLOW_DIRECT_WRITE: std::time::Duration = std::time::Duration::from_millis(10);

/// Blocks to write, with their offsets.
pub(super) type ToDisk = mpsc::UnboundedSender<(u64, Bytes)>;

/// Start the writer of one blob's cache file (made in `dir` by the writer itself, so `open`
/// waits for no file system call); it ends when the sender is dropped.
pub(super) fn spawn_writer(dir: PathBuf, shared: Arc<Shared>) -> ToDisk {
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Bytes)>();
    tokio::task::spawn_blocking(move || {
        let file = match tempfile::Builder::new().prefix("blob-").tempfile_in(&dir) {
            Ok(f) => shared.file.get_or_init(|| f),
            Err(e) => return disk_failed(&shared, e),
        };
        let mut out = BlockWriter::new(file.as_file(), file.path());
        while let Some((off, block)) = rx.blocking_recv() {
            // A disk slower than the network (a spinning disk, a busy one): blocks that queue
            // up go through the page cache, which takes them at memory speed, rather than
            // hold up the download once the ring is full.
            let behind = rx.len() >= BACKLOG_FOR_BUFFERED && out.direct_is_slow();
            if let Err(e) = write_block(&mut out, off, &block, behind, &shared) {
                return disk_failed(&shared, e);
            }
            let end = off + block.len() as u64;
            shared.progress.send_modify(|p| p.on_disk = end);
            shared.trim();
        }
    });
    tx
}

fn disk_failed(shared: &Shared, e: std::io::Error) {
    tracing::warn!(
        "blob cache: cannot write data element {} to its cache file ({e}); reading on from \
         memory only (is the spool disk full?)",
        shared.id
    );
    shared.progress.send_modify(|p| p.disk_failed = true);
    shared.trim();
}

fn write_block(
    out: &mut BlockWriter<'_>,
    off: u64,
    block: &[u8],
    buffered: bool,
    shared: &Shared,
) -> std::io::Result<()> {
    if shared.disk_fault.load(Ordering::SeqCst) {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    if buffered {
        out.write_buffered_at(off, block)
    } else {
        out.write_at(off, block)
    }
}

/// Writes to one cache file: aligned blocks through a second descriptor opened with
/// O_DIRECT, the rest through the file's own.
pub(super) struct BlockWriter<'a> {
    buffered: &'a File,
    direct: Option<File>,
    /// How long the last O_DIRECT write took.
    last_direct: std::time::Duration,
}

impl<'a> BlockWriter<'a> {
    pub(super) fn new(buffered: &'a File, path: &Path) -> Self {
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| tracing::debug!("blob cache: no O_DIRECT ({e}); buffered writes"))
            .ok();
        Self {
            buffered,
            direct,
            last_direct: std::time::Duration::ZERO,
        }
    }

    pub(super) fn write_at(&mut self, off: u64, bytes: &[u8]) -> std::io::Result<()> {
        let aligned = off.is_multiple_of(ALIGN as u64)
            && bytes.len().is_multiple_of(ALIGN)
            && (bytes.as_ptr() as usize).is_multiple_of(ALIGN);
        if let Some(direct) = self.direct.as_ref().filter(|_| aligned) {
            let start = std::time::Instant::now();
            match direct.write_all_at(bytes, off) {
                Ok(()) => {
                    self.last_direct = start.elapsed();
                    return Ok(());
                }
                // The file system takes O_DIRECT at open but not these writes: buffered from
                // now on (what is written stays right either way).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!("blob cache: O_DIRECT write refused ({e}); buffered writes");
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.write_buffered_at(off, bytes)
    }

    /// The disk took longer than `SLOW_DIRECT_WRITE` for the last direct write.
    pub(super) fn direct_is_slow(&self) -> bool {
        self.last_direct > SLOW_DIRECT_WRITE
    }

    /// Through the page cache, whatever the alignment.
    pub(super) fn write_buffered_at(&self, off: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.buffered.write_all_at(bytes, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer of `len` bytes starting `ALIGN`-aligned, with a pattern.
    fn aligned(len: usize, seed: u8) -> Bytes {
        let mut v = vec![0u8; len + ALIGN];
        let pad = v.as_ptr().align_offset(ALIGN);
        for (i, b) in v[pad..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(13).wrapping_add(seed);
        }
        Bytes::from(v).slice(pad..pad + len)
    }

    #[test]
    fn aligned_and_unaligned_writes_land_where_they_belong() {
        let dir = tempfile::tempdir().unwrap();
        let f = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let mut w = BlockWriter::new(f.as_file(), f.path());
        let a = aligned(2 * ALIGN, 1);
        let b = aligned(2 * ALIGN, 2);
        let tail = Bytes::from_static(b"the short last block");
        // Out of order, and the short tail through the buffered descriptor.
        w.write_at(2 * ALIGN as u64, &b).unwrap();
        w.write_at(4 * ALIGN as u64, &tail).unwrap();
        w.write_at(0, &a).unwrap();
        // Not aligned in memory: must still be written (buffered), not refused.
        w.write_at(ALIGN as u64, &a.slice(1..ALIGN + 1)).unwrap();
        // Aligned, but through the page cache (the writer is behind): same bytes.
        w.write_buffered_at(3 * ALIGN as u64, &b[ALIGN..]).unwrap();
        let got = std::fs::read(f.path()).unwrap();
        let mut want = a.to_vec();
        want[ALIGN..2 * ALIGN].copy_from_slice(&a[1..ALIGN + 1]);
        want.extend_from_slice(&b);
        want.extend_from_slice(&tail);
        assert_eq!(got, want);
    }
}
