//! Handle-less directory reads (the mount answers opendir with ENOSYS, so the kernel reads
//! with handle 0): offsets name their snapshot, so a read goes on from where it was whatever
//! the directory or other readers of it do, and the next read from offset 0 sees changes.

use crate::support::*;

/// One request of a handle-less read: at most `max` names from `offset`, and the offset
/// after the last name taken.
async fn read_some(c: &Core, ino: u64, offset: i64, max: usize) -> (Vec<String>, i64) {
    let mut names = Vec::new();
    let mut next = offset;
    c.fs.readdir_into(ino, 0, offset, |d, off| {
        if names.len() == max {
            return true;
        }
        names.push(d.name.clone());
        next = off;
        false
    })
    .await
    .unwrap();
    (names, next)
}

/// A whole handle-less read, `max` names per request.
async fn read_all(c: &Core, ino: u64, max: usize) -> Vec<String> {
    let (mut all, mut off) = (Vec::new(), 0);
    loop {
        let (names, next) = read_some(c, ino, off, max).await;
        if names.is_empty() {
            return all;
        }
        all.extend(names);
        off = next;
    }
}

#[tokio::test]
async fn a_read_keeps_its_offsets_through_a_change_and_the_next_read_sees_it() {
    let c = Core::sample().await;
    let dir = format!("{}/attachments", c.instance_dir("50002"));
    let ino = c.ino(&dir).await.unwrap();
    let (first, off) = read_some(&c, ino, 0, 3).await;
    assert_eq!(first, vec![".", "..", "notes.txt"]);
    assert!(off > 3, "offsets carry the listing's tag: {off}");
    c.write_file(&format!("{dir}/a-added.txt"), b"new")
        .await
        .unwrap();
    let (rest, end) = read_some(&c, ino, off, 10).await;
    assert_eq!(rest, vec!["report.pdf"], "the rest of the same read");
    assert_eq!(read_some(&c, ino, end, 10).await.0, Vec::<String>::new());
    assert_eq!(c.fs.shared_dir_snapshots(), 0, "the end drops the snapshot");
    let again = read_all(&c, ino, 2).await;
    assert!(again.contains(&"a-added.txt".to_string()), "{again:?}");
}

#[tokio::test]
async fn two_readers_of_one_directory_never_shift_each_others_offsets() {
    let c = Core::sample().await;
    let dir = format!("{}/attachments", c.instance_dir("50002"));
    let ino = c.ino(&dir).await.unwrap();
    let (a_first, a_off) = read_some(&c, ino, 0, 3).await;
    // Another reader starts after a change (an entry sorted before A's position) ...
    c.write_file(&format!("{dir}/a-added.txt"), b"new")
        .await
        .unwrap();
    let b = read_all(&c, ino, 2).await;
    assert!(b.contains(&"a-added.txt".to_string()), "{b:?}");
    // ... and A goes on from its own snapshot: no name twice, none left out.
    let (a_rest, _) = read_some(&c, ino, a_off, 10).await;
    let mut a = a_first;
    a.extend(a_rest);
    assert_eq!(a, vec![".", "..", "notes.txt", "report.pdf"]);
}

#[tokio::test]
async fn a_reader_whose_snapshot_another_reader_ended_goes_on_from_the_same_names() {
    let c = Core::sample().await;
    let dir = format!("{}/attachments", c.instance_dir("50002"));
    let ino = c.ino(&dir).await.unwrap();
    let (a_first, a_off) = read_some(&c, ino, 0, 3).await;
    // B reads the same (unchanged) listing to its end, which drops the shared snapshot.
    assert_eq!(read_all(&c, ino, 10).await.len(), 4);
    assert_eq!(c.fs.shared_dir_snapshots(), 0);
    let (a_rest, _) = read_some(&c, ino, a_off, 10).await;
    let mut a = a_first;
    a.extend(a_rest);
    assert_eq!(a, vec![".", "..", "notes.txt", "report.pdf"]);
}

#[tokio::test]
async fn reads_of_an_unchanged_directory_share_one_snapshot() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50002");
    let ino = c.ino(&dir).await.unwrap();
    let att = c.ino(&format!("{dir}/attachments")).await.unwrap();
    // Every read of an unchanged directory shares one snapshot.
    for _ in 0..10 {
        read_some(&c, ino, 0, 1).await;
    }
    assert_eq!(c.fs.shared_dir_snapshots(), 1);
    read_some(&c, att, 0, 1).await;
    assert_eq!(c.fs.shared_dir_snapshots(), 2);
    // The end of a read drops only its own snapshot.
    read_all(&c, att, 1).await;
    assert_eq!(c.fs.shared_dir_snapshots(), 1);
}
