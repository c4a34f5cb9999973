//! The writer: spool files (0600), the files that exist only in this mount (`LocalFile`),
//! and the sizes of files open for writing (so `stat` agrees with the writer while bytes
//! arrive). It owns that state behind its own lock; uploads are the uploader's.

use super::inode::ino_of;
use super::layout::{self, Node};
use super::write::{LocalFile, Target, WriteHandle};
use crate::altinn::ids::{DataTypeId, InstanceGuid, PartyId};
use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

#[derive(Default)]
struct WriterState {
    locals: HashMap<u64, LocalFile>,
    /// ino → size of an open, written handle
    writing: HashMap<u64, u64>,
    next_local: u64,
}

/// Where a new local file goes and what it is called.
pub struct NewLocal<'a> {
    pub party: PartyId,
    pub guid: InstanceGuid,
    pub dt: &'a DataTypeId,
    pub name: &'a str,
    pub spool: PathBuf,
}

pub struct Writer {
    st: Mutex<WriterState>,
    spool_dir: PathBuf,
    /// Local file ids differ per mount, so a stale inode of another mount never matches.
    salt: u64,
}

impl Writer {
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            st: Mutex::new(WriterState {
                next_local: 1,
                ..Default::default()
            }),
            spool_dir,
            salt: rand::random::<u32>() as u64,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        self.st.lock().unwrap()
    }

    /// A new empty spool file (0600).
    pub fn new_spool(&self) -> std::io::Result<(PathBuf, std::fs::File)> {
        let p = self
            .spool_dir
            .join(format!("spool-{}", uuid::Uuid::new_v4().simple()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)?;
        Ok((p, f))
    }

    // ------------------------------------------------------------ local files

    /// A new local file with one writer; returns its inode number and node.
    pub fn add_local(&self, new: NewLocal<'_>) -> (u64, Node) {
        let now = SystemTime::now();
        let mut st = self.lock();
        let local = (self.salt << 32) | st.next_local;
        st.next_local += 1;
        let l = LocalFile {
            party: new.party,
            guid: new.guid,
            dt: new.dt.clone(),
            local,
            name: new.name.to_string(),
            spool: new.spool,
            len: 0,
            created: now,
            mtime: now,
            writers: 1,
        };
        let node = l.node();
        let ino = ino_of(&node);
        st.locals.insert(ino, l);
        (ino, node)
    }

    pub fn local(&self, ino: u64) -> Option<LocalFile> {
        self.lock().locals.get(&ino).cloned()
    }

    /// The local file named `name` in one data type directory.
    pub fn local_named(&self, guid: InstanceGuid, dt: &DataTypeId, name: &str) -> Option<Node> {
        self.lock()
            .locals
            .values()
            .find(|l| l.guid == guid && l.dt == *dt && l.name == name)
            .map(|l| l.node())
    }

    /// (name, node) of every local file in one data type directory.
    pub fn locals_in(&self, guid: InstanceGuid, dt: &DataTypeId) -> Vec<(String, Node)> {
        self.lock()
            .locals
            .values()
            .filter(|l| l.guid == guid && l.dt == *dt)
            .map(|l| (l.name.clone(), l.node()))
            .collect()
    }

    /// Local files that will become elements (no temporary name), but those in `exclude`.
    pub fn pending_count(&self, guid: InstanceGuid, dt: &DataTypeId, exclude: &[u64]) -> usize {
        self.lock()
            .locals
            .iter()
            .filter(|(ino, l)| {
                l.guid == guid
                    && l.dt == *dt
                    && !layout::is_temp_name(&l.name)
                    && !exclude.contains(ino)
            })
            .count()
    }

    /// Give a local file a new name; returns it as renamed.
    pub fn rename_local(&self, ino: u64, name: &str) -> Option<LocalFile> {
        let mut st = self.lock();
        let l = st.locals.get_mut(&ino)?;
        l.name = name.to_string();
        Some(l.clone())
    }

    pub fn remove_local(&self, ino: u64, delete_spool: bool) -> Option<LocalFile> {
        let l = self.lock().locals.remove(&ino);
        if let Some(l) = &l {
            if delete_spool {
                let _ = std::fs::remove_file(&l.spool);
            }
        }
        l
    }

    /// The instance was deleted: its local files go.
    pub fn drop_instance(&self, guid: InstanceGuid) {
        self.lock().locals.retain(|_, l| l.guid != guid);
    }

    /// One more writer of a local file, whose spool now holds `len` bytes.
    pub fn open_local_writer(&self, ino: u64, len: u64) {
        if let Some(l) = self.lock().locals.get_mut(&ino) {
            l.writers += 1;
            l.len = len;
        }
    }

    pub fn close_local_writer(&self, ino: u64) {
        if let Some(l) = self.lock().locals.get_mut(&ino) {
            l.writers = l.writers.saturating_sub(1);
        }
    }

    /// Truncate or extend a local file nobody has open.
    pub fn resize_local(&self, ino: u64, size: u64) -> Option<std::io::Result<()>> {
        let mut st = self.lock();
        let l = st.locals.get_mut(&ino)?;
        let r = std::fs::OpenOptions::new()
            .write(true)
            .open(&l.spool)
            .and_then(|f| f.set_len(size));
        if r.is_ok() {
            l.len = size;
        }
        Some(r)
    }

    // ------------------------------------------------------------ sizes while writing

    /// The size of `ino` as its open writer has it.
    pub fn written_size(&self, ino: u64) -> Option<u64> {
        self.lock().writing.get(&ino).copied()
    }

    /// Length of a local file's spool, its mtime and creation time.
    pub fn local_stat(&self, ino: u64) -> Option<(u64, SystemTime, SystemTime)> {
        let st = self.lock();
        let l = st.locals.get(&ino)?;
        Some((l.len, l.mtime, l.created))
    }

    pub fn start_writing(&self, ino: u64, len: u64) {
        self.lock().writing.insert(ino, len);
    }

    pub fn stop_writing(&self, ino: u64) {
        self.lock().writing.remove(&ino);
    }

    /// A write handle's length changed: `stat` shows it (and a local file's mtime moves).
    pub fn note_len(&self, w: &WriteHandle) {
        let mut st = self.lock();
        st.writing.insert(w.ino, w.len);
        if let Target::Local { ino } = w.target {
            if let Some(l) = st.locals.get_mut(&ino) {
                l.len = w.len;
                l.mtime = SystemTime::now();
            }
        }
    }
}

/// Bytes of spool reserved at a time ahead of a growing file.
const RESERVE_STEP: u64 = 8 * 1024 * 1024;
/// Files smaller than this get no reservation (a small file would waste a whole step).
const RESERVE_FROM: u64 = 1024 * 1024;

/// Reserve the spool's disk space in steps as a write grows it past `old_len` to `end`:
/// one `fallocate` per 8 MiB instead of ext4's delayed allocation per 4 KiB page, which
/// was most of the cost of spooling a big file (256 MiB: 43 → 26 ms of `pwrite`). The
/// size does not change (`FALLOC_FL_KEEP_SIZE`); a step past the end is freed with the
/// spool. A failure (no support, disk full) is ignored: the write itself then reports it.
pub fn reserve_spool(file: &std::fs::File, old_len: u64, end: u64) {
    use std::os::fd::AsRawFd;
    let step_of = |len: u64| (len >= RESERVE_FROM).then(|| (len - 1) / RESERVE_STEP);
    let Some(step) = step_of(end) else { return };
    if end <= old_len || step_of(old_len) == Some(step) {
        return;
    }
    let start = step * RESERVE_STEP;
    // SAFETY: fallocate on an open descriptor we own; it changes no memory of ours.
    unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            start as libc::off_t,
            RESERVE_STEP as libc::off_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::write::Target;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::new(dir.path().to_path_buf());
        (dir, w)
    }

    const G: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

    fn g() -> InstanceGuid {
        G.parse().unwrap()
    }

    fn dt(s: &str) -> DataTypeId {
        s.parse().unwrap()
    }

    fn add(w: &Writer, name: &str) -> u64 {
        let (spool, _) = w.new_spool().unwrap();
        let new = NewLocal {
            party: "1".parse().unwrap(),
            guid: g(),
            dt: &dt("attachments"),
            name,
            spool,
        };
        w.add_local(new).0
    }

    #[test]
    fn spools_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, w) = writer();
        let (p, _) = w.new_spool().unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn local_files_by_name_count_and_rename() {
        let (_d, w) = writer();
        let a = add(&w, "a.pdf");
        let t = add(&w, ".a.pdf.XyZ123");
        let b = add(&w, "b.pdf");
        assert_ne!(a, b);
        assert_eq!(
            w.local_named(g(), &dt("attachments"), "a.pdf"),
            w.local(a).map(|l| l.node())
        );
        assert!(w.local_named(g(), &dt("other"), "a.pdf").is_none());
        assert_eq!(w.locals_in(g(), &dt("attachments")).len(), 3);
        assert_eq!(
            w.pending_count(g(), &dt("attachments"), &[]),
            2,
            "temp names do not count"
        );
        assert_eq!(w.pending_count(g(), &dt("attachments"), &[a]), 1);
        assert_eq!(w.rename_local(t, "c.pdf").unwrap().name, "c.pdf");
        assert_eq!(w.pending_count(g(), &dt("attachments"), &[]), 3);
        let spool = w.local(b).unwrap().spool;
        assert!(w.remove_local(b, true).is_some());
        assert!(!spool.exists(), "its spool went with it");
        w.drop_instance(g());
        assert!(w.locals_in(g(), &dt("attachments")).is_empty());
    }

    #[test]
    fn a_growing_spool_is_reserved_in_steps_and_keeps_its_size() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let (_d, w) = writer();
        let (_, small) = w.new_spool().unwrap();
        reserve_spool(&small, 0, 4096);
        small.write_all_at(&[7; 4096], 0).unwrap();
        let m = small.metadata().unwrap();
        assert!(
            m.blocks() * 512 < RESERVE_STEP,
            "a small file reserves nothing"
        );

        let (_, big) = w.new_spool().unwrap();
        let mib = vec![9u8; 1024 * 1024];
        let mut len = 0;
        for _ in 0..3 {
            reserve_spool(&big, len, len + mib.len() as u64);
            big.write_all_at(&mib, len).unwrap();
            len += mib.len() as u64;
        }
        let m = big.metadata().unwrap();
        assert_eq!(m.len(), len, "the reservation does not change the size");
        assert!(m.blocks() * 512 >= RESERVE_STEP, "one step is reserved");
        let mut back = vec![0u8; len as usize];
        big.read_exact_at(&mut back, 0).unwrap();
        assert!(back.iter().all(|&b| b == 9));
    }

    #[test]
    fn sizes_while_writing() {
        let (_d, w) = writer();
        let ino = add(&w, "a.pdf");
        let (spool, file) = w.new_spool().unwrap();
        let h = WriteHandle {
            ino,
            target: Target::Local { ino },
            file,
            spool,
            len: 42,
            dirty: true,
            failed: None,
            max: None,
            owns_spool: true,
        };
        assert_eq!(w.written_size(ino), None);
        w.note_len(&h);
        assert_eq!(w.written_size(ino), Some(42));
        assert_eq!(
            w.local_stat(ino).unwrap().0,
            42,
            "the local file's length follows"
        );
        w.stop_writing(ino);
        assert_eq!(w.written_size(ino), None);
        assert_eq!(w.resize_local(ino, 7).unwrap().ok(), Some(()));
        assert_eq!(w.local_stat(ino).unwrap().0, 7);
    }
}
