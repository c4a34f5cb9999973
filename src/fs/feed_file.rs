//! `MOUNTPOINT/.altinn/changes` (SPEC §7.3): the change feed as a read-only file of JSON
//! lines. Its bytes are mirrored, as lines are appended to the index, into an unnamed spool
//! file (0600, gone with the mount), so reads at any offset are plain `pread`s and the size
//! only grows: `tail -f` sees new lines as `stat` reports the new size.
//! The mirror is append-only for the life of the mount: pruning the index (`--feed-days`)
//! never rewrites it, so an offset once read means the same bytes until unmount (a reader that
//! resumes at an offset, or sits at a pruned line, reads whole lines, none skipped or twice).
//! The price is spool space for the lines seen while mounted; it goes with the mount.

use crate::fs::index::{IndexResult, MetaIndex};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Feed rows rendered per step.
const STEP: usize = 1000;

struct Mirror {
    file: Arc<File>,
    /// The last seq written to the file.
    last_seq: u64,
    size: u64,
    changed: SystemTime,
}

/// The file's state; created on first use.
#[derive(Default)]
pub struct FeedFile {
    mirror: Mutex<Option<Mirror>>,
}

/// What `stat` and `open` need.
pub struct FeedSnapshot {
    pub file: Arc<File>,
    pub size: u64,
    pub changed: SystemTime,
}

impl FeedFile {
    /// Bring the file up to the index's last line and describe it.
    pub fn current(&self, ix: &MetaIndex, spool_dir: &Path) -> IndexResult<FeedSnapshot> {
        let mut guard = self.mirror.lock().unwrap();
        if guard.is_none() {
            let file =
                tempfile::tempfile_in(spool_dir).map_err(|e| crate::fs::index::IndexError::Io {
                    path: spool_dir.display().to_string(),
                    source: e,
                })?;
            *guard = Some(Mirror {
                file: Arc::new(file),
                last_seq: 0,
                size: 0,
                changed: SystemTime::now(),
            });
        }
        let m = guard.as_mut().expect("made above");
        catch_up(m, ix)?;
        Ok(FeedSnapshot {
            file: m.file.clone(),
            size: m.size,
            changed: m.changed,
        })
    }
}

fn catch_up(m: &mut Mirror, ix: &MetaIndex) -> IndexResult<()> {
    loop {
        let rows = ix.feed_since(m.last_seq, STEP)?;
        let Some(last) = rows.last().map(|e| e.seq) else {
            return Ok(());
        };
        let mut text = String::new();
        for e in &rows {
            text.push_str(&e.to_line());
            text.push('\n');
        }
        (&*m.file)
            .write_all(text.as_bytes())
            .map_err(|e| crate::fs::index::IndexError::Io {
                path: "the change feed's spool file".into(),
                source: e,
            })?;
        m.size += text.len() as u64;
        m.last_seq = last;
        m.changed = SystemTime::now();
        if rows.len() < STEP {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::index::{EventKind, FeedEvent};
    use std::os::unix::fs::FileExt;

    fn event(n: u64) -> FeedEvent {
        FeedEvent {
            seq: 0,
            seen: String::new(),
            event: EventKind::ElementCreated,
            party: "500".into(),
            instance: format!("g{n}"),
            data_type: Some("attachment".into()),
            element: Some(format!("e{n}")),
            path: format!("500/g{n}/attachment/f{n}.pdf"),
            last_changed: None,
        }
    }

    #[test]
    fn the_file_grows_with_the_feed_and_reads_at_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let ix = MetaIndex::open_in_memory().unwrap();
        let feed = FeedFile::default();
        assert_eq!(feed.current(&ix, dir.path()).unwrap().size, 0);
        ix.append_events(vec![event(1), event(2)]).unwrap();
        let a = feed.current(&ix, dir.path()).unwrap();
        let mut buf = vec![0u8; a.size as usize];
        a.file.read_exact_at(&mut buf, 0).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("{\"seq\":1,"), "{}", lines[0]);
        assert!(lines[1].contains("\"path\":\"500/g2/attachment/f2.pdf\""));

        ix.append_events(vec![event(3)]).unwrap();
        let b = feed.current(&ix, dir.path()).unwrap();
        assert!(b.size > a.size);
        let mut tail = vec![0u8; (b.size - a.size) as usize];
        b.file.read_exact_at(&mut tail, a.size).unwrap();
        let tail = String::from_utf8(tail).unwrap();
        assert!(
            tail.starts_with("{\"seq\":3,") && tail.ends_with('\n'),
            "{tail}"
        );
        // Nothing new: the same size, nothing written twice.
        assert_eq!(feed.current(&ix, dir.path()).unwrap().size, b.size);
    }
}
