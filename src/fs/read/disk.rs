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
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Blocks waiting to be written past which a slow disk's blocks go through the page cache
/// until the writer has caught up (a quarter of the ring).
const BACKLOG_FOR_BUFFERED: usize = (super::RING_MAX as usize / super::ring::BLOCK) / 4;

/// An O_DIRECT write of one block slower than this is the disk's doing (below ~100 MB/s),
/// not a busy CPU's: only then does the page cache take over. A writer that is merely short
/// of CPU must stay direct, since buffered writes cost several times the CPU.
const SLOW_DIRECT_WRITE: std::time::Duration = std::time::Duration::from_millis(20);

/// Blocks handed to the writer at once, and written with one `pwritev`: each hand-over wakes
/// the writer thread, and each write is a syscall and a disk request (measured: the writer
/// cost 0.09 s of CPU per GiB a block at a time, a fifth of the daemon's).
pub(super) const BATCH_BLOCKS: usize = 2;

/// The download's side of the writer: blocks with their offsets, handed over in batches.
pub(super) struct ToDisk {
    tx: mpsc::UnboundedSender<Vec<(u64, Bytes)>>,
    pending: Vec<(u64, Bytes)>,
}

impl ToDisk {
    /// Queue a complete block; a full batch goes to the writer.
    pub(super) fn push(&mut self, block: (u64, Bytes)) {
        self.pending.push(block);
        if self.pending.len() >= BATCH_BLOCKS {
            self.flush();
        }
    }

    /// Hand what is queued to the writer now (at the end of the blob, or before the download
    /// pauses: memory is freed only once the blocks are in the file).
    pub(super) fn flush(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.pending));
        }
    }
}

/// Start the writer of one blob's cache file (made in `dir` by the writer itself, so `open`
/// waits for no file system call); it ends when the sender is dropped.
pub(super) fn spawn_writer(dir: PathBuf, shared: Arc<Shared>) -> ToDisk {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<(u64, Bytes)>>();
    tokio::task::spawn_blocking(move || {
        let file = match tempfile::Builder::new().prefix("blob-").tempfile_in(&dir) {
            Ok(f) => shared.file.get_or_init(|| f),
            Err(e) => return disk_failed(&shared, e),
        };
        let mut out = BlockWriter::new(file.as_file(), file.path());
        while let Some(batch) = rx.blocking_recv() {
            // A disk slower than the network (a spinning disk, a busy one): batches that queue
            // up go through the page cache, which takes them at memory speed, rather than
            // hold up the download once the ring is full.
            let behind = rx.len() * BATCH_BLOCKS >= BACKLOG_FOR_BUFFERED && out.direct_is_slow();
            for (off, blocks) in contiguous_runs(&batch) {
                if let Err(e) = write_blocks(&mut out, off, blocks, behind, &shared) {
                    return disk_failed(&shared, e);
                }
            }
            let Some((off, last)) = batch.last() else {
                continue;
            };
            let end = off + last.len() as u64;
            shared.set_quietly(|p| p.on_disk = end);
            shared.trim();
            // Only a reader behind memory, or a download waiting for memory, needs to hear.
            if shared.want_disk.swap(false, Ordering::SeqCst) {
                shared.progress.send_modify(|_| {});
            }
        }
    });
    ToDisk {
        tx,
        pending: Vec::with_capacity(BATCH_BLOCKS),
    }
}

/// The blocks of a batch in runs that follow each other in the file, with each run's offset.
fn contiguous_runs(batch: &[(u64, Bytes)]) -> Vec<(u64, Vec<&[u8]>)> {
    let mut runs: Vec<(u64, Vec<&[u8]>)> = Vec::new();
    let mut end = None;
    for (off, block) in batch {
        match runs.last_mut() {
            Some((_, blocks)) if end == Some(*off) => blocks.push(block),
            _ => runs.push((*off, vec![block])),
        }
        end = Some(off + block.len() as u64);
    }
    runs
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

fn write_blocks(
    out: &mut BlockWriter<'_>,
    off: u64,
    blocks: Vec<&[u8]>,
    buffered: bool,
    shared: &Shared,
) -> std::io::Result<()> {
    if shared.disk_fault.load(Ordering::SeqCst) {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    if buffered {
        let mut at = off;
        for b in blocks {
            out.write_buffered_at(at, b)?;
            at += b.len() as u64;
        }
        Ok(())
    } else {
        out.write_vectored_at(off, &blocks)
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

    /// `blocks` one after the other from `off`: with one O_DIRECT `pwritev` when all are
    /// aligned, else one write each.
    pub(super) fn write_vectored_at(&mut self, off: u64, blocks: &[&[u8]]) -> std::io::Result<()> {
        let aligned = off.is_multiple_of(ALIGN as u64)
            && blocks.iter().all(|b| {
                b.len().is_multiple_of(ALIGN) && (b.as_ptr() as usize).is_multiple_of(ALIGN)
            });
        let Some(direct) = self.direct.as_ref().filter(|_| aligned && blocks.len() > 1) else {
            let mut at = off;
            for b in blocks {
                self.write_at(at, b)?;
                at += b.len() as u64;
            }
            return Ok(());
        };
        let start = std::time::Instant::now();
        let iov: Vec<libc::iovec> = blocks
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: every iovec points into a live slice of `blocks` for the length of the call.
        let n = unsafe {
            libc::pwritev(
                direct.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                off as libc::off_t,
            )
        };
        let total: usize = blocks.iter().map(|b| b.len()).sum();
        if n >= 0 && n as usize == total {
            self.last_direct = start.elapsed() / blocks.len() as u32;
            return Ok(());
        }
        // Refused or short (EINVAL, a signal, a full disk): the ordinary writes, block by
        // block, say which it is; what lands in the file is the same either way.
        let mut at = off;
        for b in blocks {
            self.write_at(at, b)?;
            at += b.len() as u64;
        }
        Ok(())
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

    #[test]
    fn a_batch_is_written_in_runs_and_lands_where_it_belongs() {
        let dir = tempfile::tempdir().unwrap();
        let f = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let mut w = BlockWriter::new(f.as_file(), f.path());
        let blocks = [aligned(ALIGN, 1), aligned(ALIGN, 2), aligned(ALIGN, 3)];
        let tail = Bytes::from_static(b"tail");
        // Two runs: blocks 0 and 1 together, then block 3 and the short tail after a gap.
        let batch = vec![
            (0, blocks[0].clone()),
            (ALIGN as u64, blocks[1].clone()),
            (3 * ALIGN as u64, blocks[2].clone()),
            (4 * ALIGN as u64, tail.clone()),
        ];
        let runs = contiguous_runs(&batch);
        let shape: Vec<(u64, usize)> = runs.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(shape, [(0, 2), (3 * ALIGN as u64, 2)]);
        for (off, run) in &runs {
            w.write_vectored_at(*off, run).unwrap();
        }
        // The gap, written last and out of order, through one aligned pwritev of one block.
        w.write_vectored_at(2 * ALIGN as u64, &[&blocks[2][..]])
            .unwrap();
        let got = std::fs::read(f.path()).unwrap();
        let mut want = blocks[0].to_vec();
        want.extend_from_slice(&blocks[1]);
        want.extend_from_slice(&blocks[2]);
        want.extend_from_slice(&blocks[2]);
        want.extend_from_slice(&tail);
        assert_eq!(got, want);
    }
}
