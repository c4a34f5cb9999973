//! The disk under the index filled up while mounted: the mount goes on with its metadata in
//! memory, as it does when the index cannot be opened at mount time, instead of failing
//! every poll (so changes made elsewhere would never show) until someone frees space.
//!
//! An index of up to `COPY_LIMIT` bytes is copied into memory (SQLite's backup API), so
//! the cursor and the change feed carry on. A bigger one stays where it is: in memory it
//! would hold the whole app (1.7 GB at a million instances), against the mount's memory
//! bound; its polls fail, each with a warning that says what to do, and `ls` shows what it
//! held until there is room. The file on disk keeps its last committed state either way,
//! so a later mount with room is warm from there.

use super::{pragma, IndexError};
use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::time::Duration;

/// The largest index copied into memory (about 20,000 instances).
const COPY_LIMIT: i64 = 32 * 1024 * 1024;

/// Whether `e` says the index's disk is full.
pub(super) fn is_disk_full(e: &IndexError) -> bool {
    matches!(e, IndexError::Sql(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::DiskFull)
}

/// A connection in memory to go on with, holding what `disk` holds, when it is small enough
/// to copy.
pub(super) fn to_memory(disk: &Connection, path: &Path, why: &IndexError) -> Option<Connection> {
    let dir = path.parent().unwrap_or(path).display();
    let size = pragma(disk, "page_count")
        .ok()
        .zip(pragma(disk, "page_size").ok())
        .map_or(i64::MAX, |(n, page)| n.saturating_mul(page));
    if size > COPY_LIMIT {
        tracing::warn!(
            "metadata index {}: {why}; the disk is full and the index ({} MiB) is too big to \
             keep in memory: `ls` shows what it holds, and changes made elsewhere show once \
             there is room in {dir} again",
            path.display(),
            size >> 20
        );
        return None;
    }
    match copy(disk) {
        Ok(mem) => {
            tracing::warn!(
                "metadata index {}: {why}; the disk is full, so this mount keeps its metadata \
                 in memory from now on (the change cursor and feed go on). Lost: a warm \
                 remount from what this mount sees from now on. Free space in {dir} and remount.",
                path.display()
            );
            Some(mem)
        }
        Err(e) => {
            tracing::warn!(
                "metadata index {}: {why}; the disk is full and the index could not move to \
                 memory ({e}); polls fail until there is room in {dir}",
                path.display()
            );
            None
        }
    }
}

fn copy(disk: &Connection) -> rusqlite::Result<Connection> {
    let mut mem = Connection::open_in_memory()?;
    rusqlite::backup::Backup::new(disk, &mut mem)?.run_to_completion(1024, Duration::ZERO, None)?;
    mem.execute_batch("PRAGMA foreign_keys=ON;")?;
    Ok(mem)
}

#[cfg(test)]
mod tests {
    use super::super::tests::instance;
    use super::super::{IndexResult, MetaIndex};
    use super::*;

    /// An index whose file may not grow (`max_page_count`: SQLite's own SQLITE_FULL, the
    /// error a full disk gives) fills up after a few instances.
    fn capped_index(dir: &Path) -> MetaIndex {
        let ix = MetaIndex::open(&dir.join("index.sqlite")).unwrap();
        ix.upsert_instances(&[instance("500", 1, 10, 2)]).unwrap();
        {
            let conn = ix.conn.lock().unwrap();
            let pages = pragma(&conn, "page_count").unwrap();
            conn.query_row(&format!("PRAGMA max_page_count={pages}"), [], |_| Ok(()))
                .unwrap();
        }
        ix
    }

    #[test]
    fn a_full_disk_moves_a_small_index_to_memory_with_what_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let ix = capped_index(dir.path());
        let many: Vec<_> = (2..400).map(|n| instance("500", n, 10, 3)).collect();
        let e = ix
            .upsert_instances(&many)
            .expect_err("the file may not grow");
        assert!(is_disk_full(&e), "{e}");
        assert_eq!(ix.path(), None, "the index now lives in memory");
        ix.upsert_instances(&many).expect("memory takes the write");
        assert_eq!(ix.counts().unwrap().instances, 399, "instance 1 came along");
    }

    #[test]
    fn other_errors_leave_the_index_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let ix = MetaIndex::open(&dir.path().join("index.sqlite")).unwrap();
        let e = ix
            .write(|_| -> IndexResult<()> {
                Err(serde_json::from_str::<u8>("x").unwrap_err().into())
            })
            .expect_err("the write fails");
        assert!(!is_disk_full(&e));
        assert!(ix.path().is_some(), "still on disk");
    }
}
