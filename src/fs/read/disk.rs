//! Filling a blob's cache file off the hot path: the download hands each chunk to a blocking
//! writer thread and goes on; readers are answered from memory meanwhile. Once a chunk is in
//! the file it may leave memory. A write that fails (disk full) is logged once, and the blob
//! goes on from memory only.

use super::Shared;
use bytes::Bytes;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Chunks to write, with their offsets.
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
        while let Some((off, chunk)) = rx.blocking_recv() {
            if let Err(e) = write_chunk(file.as_file(), off, &chunk, &shared) {
                return disk_failed(&shared, e);
            }
            let end = off + chunk.len() as u64;
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

fn write_chunk(
    file: &std::fs::File,
    off: u64,
    chunk: &[u8],
    shared: &Shared,
) -> std::io::Result<()> {
    if shared.disk_fault.load(Ordering::SeqCst) {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    file.write_all_at(chunk, off)
}
