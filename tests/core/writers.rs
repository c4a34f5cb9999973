//! Open handles: several writers, renames and unlinks while a file is open, failures that
//! stick to a handle, sizes while writing.

use crate::support::*;

#[tokio::test]
async fn stat_follows_the_writer_before_close() {
    let c = Core::sample().await;
    let p = format!("{}/anything/grow.bin", c.instance_dir("50001"));
    let f = c.create(&p, libc::O_WRONLY | libc::O_CREAT).await.unwrap();
    c.write(f, 0, &pattern(5000, 1)).await.unwrap();
    assert_eq!(c.stat(&p).await.unwrap().size, 5000);
    c.write(f, 5000, &pattern(3000, 2)).await.unwrap();
    assert_eq!(c.stat(&p).await.unwrap().size, 8000);
    assert_eq!(
        c.read(f, 4990, 20).await.unwrap().len(),
        20,
        "a write handle reads its spool"
    );
    c.close(f).await.unwrap();
    assert_eq!(c.stat(&p).await.unwrap().size, 8000);
}

#[tokio::test]
async fn a_write_past_max_size_fails_and_nothing_is_uploaded() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/big.pdf");
    let f = c.create(&p, libc::O_WRONLY | libc::O_CREAT).await.unwrap();
    c.write(f, 0, &pattern(1024 * 1024, 1)).await.unwrap();
    assert_eq!(c.write(f, 1024 * 1024, b"x").await, Err(libc::EFBIG));
    // The handle stays failed: later writes fail too, and close sends nothing.
    assert_eq!(c.write(f, 0, b"y").await, Err(libc::EFBIG));
    let _ = c.close(f).await;
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert!(!c.exists(&p).await);
    assert!(
        c.unsent().0.is_empty(),
        "bytes that can never be sent are not kept"
    );
}

#[tokio::test]
async fn a_file_renamed_while_open_is_uploaded_under_its_new_name_at_close() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/anything");
    let f = c
        .create(&format!("{d}/draft.txt"), libc::O_WRONLY | libc::O_CREAT)
        .await
        .unwrap();
    c.write(f, 0, b"draft").await.unwrap();
    c.rename(&format!("{d}/draft.txt"), &format!("{d}/final.txt"))
        .await
        .unwrap();
    assert_eq!(
        c.client.count(Op::CreateData),
        0,
        "bytes not flushed yet: nothing sent"
    );
    c.close(f).await.unwrap();
    assert_eq!(c.server_names(&dir, "anything"), vec!["final.txt"]);
    assert_eq!(c.server_bytes(&dir, "final.txt").unwrap(), b"draft");
}

#[tokio::test]
async fn a_flushed_file_renamed_before_release_is_posted_by_the_rename() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/anything");
    // rsync: write the temp name, close (flush), rename before the kernel's release.
    let f = c
        .create(
            &format!("{d}/.x.txt.Qw12Er"),
            libc::O_WRONLY | libc::O_CREAT,
        )
        .await
        .unwrap();
    c.write(f, 0, b"synced").await.unwrap();
    c.fs.flush(f.fh).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0, "a temp name stays local");
    c.rename(&format!("{d}/.x.txt.Qw12Er"), &format!("{d}/x.txt"))
        .await
        .unwrap();
    assert_eq!(c.server_bytes(&dir, "x.txt").unwrap(), b"synced");
    c.fs.release(f.fh).await.unwrap();
    assert_eq!(
        c.client.count(Op::CreateData),
        1,
        "release sends nothing more"
    );
}

#[tokio::test]
async fn a_file_unlinked_while_open_is_not_uploaded() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/anything/gone.txt");
    let f = c.create(&p, libc::O_WRONLY | libc::O_CREAT).await.unwrap();
    c.write(f, 0, b"bytes").await.unwrap();
    c.unlink(&p).await.unwrap();
    c.close(f).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert!(!c.exists(&p).await);
}

#[tokio::test]
async fn a_failed_flush_is_reported_once_and_the_handle_stays_failed() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/anything/f.txt");
    c.client
        .fail_next(Op::CreateData, 10, http(503, "down"), FaultWhen::Before);
    let f = c.create(&p, libc::O_WRONLY | libc::O_CREAT).await.unwrap();
    c.write(f, 0, b"one").await.unwrap();
    assert_eq!(c.fsync(f).await, Err(libc::EIO));
    assert_eq!(c.write(f, 3, b"two").await, Err(libc::EIO));
    assert_eq!(
        c.fs.release(f.fh).await.map_err(|e| e.errno()),
        Ok(()),
        "not reported twice"
    );
    assert_eq!(c.unsent().0.len(), 1);
}

#[tokio::test]
async fn two_writers_of_one_element_each_put_what_they_hold() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    let a = c.open(&p, libc::O_WRONLY).await.unwrap();
    let b = c.open(&p, libc::O_WRONLY).await.unwrap();
    c.write(a, 0, b"AAAAAA").await.unwrap();
    c.close(a).await.unwrap();
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"AAAAAA");
    c.write(b, 0, b"BB").await.unwrap();
    c.close(b).await.unwrap();
    // b started from the old bytes "hello\n": last close wins, whole file.
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"BBllo\n");
    assert_eq!(c.client.count(Op::ReplaceData), 2);
}

#[tokio::test]
async fn a_read_handle_sees_the_bytes_it_opened() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/report.pdf");
    let size = c.stat(&p).await.unwrap().size;
    let f = c.open(&p, libc::O_RDONLY).await.unwrap();
    let head = c.read(f, 0, 8).await.unwrap();
    assert_eq!(&head, b"%PDF-1.4");
    let tail = c.read(f, size - 10, 100).await.unwrap();
    assert_eq!(tail.len(), 10, "a read at the end returns what is left");
    assert!(c.read(f, size, 100).await.unwrap().is_empty());
    c.close(f).await.unwrap();
}

#[tokio::test]
async fn an_element_locked_while_open_refuses_the_close_and_keeps_the_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    let f = c.open(&p, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
    c.write(f, 0, b"too late\n").await.unwrap();
    let id = c.getxattr(&p, "user.altinn.id").await.unwrap();
    c.client.update_element(&id, |e| e.locked = true);
    // Storage refuses the PUT of a locked element and the App passes it on as a bare
    // `Conflict()` (altinn-api.md §1.3.2); the mount asks Storage why: locked, EPERM.
    let puts = c.client.count(Op::ReplaceData);
    assert_eq!(c.close(f).await, Err(libc::EPERM));
    assert_eq!(
        c.client.count(Op::ReplaceData),
        puts + 1,
        "one PUT, no retry"
    );
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hello\n");
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"too late\n");
    // The lock is now known: the file shows 0444 and the next open is refused locally.
    assert_eq!(c.stat(&p).await.unwrap().perm & 0o777, 0o444);
    assert_eq!(c.open(&p, libc::O_WRONLY).await.err(), Some(libc::EPERM));
    assert_eq!(c.client.count(Op::ReplaceData), puts + 1);
}

#[tokio::test]
async fn a_bare_conflict_on_an_unlocked_element_stays_ebusy_and_keeps_the_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    c.ls(&format!("{dir}/attachments")).await.unwrap();
    c.client
        .fail_next(Op::ReplaceData, 1, http(409, "Conflict"), FaultWhen::Before);
    assert_eq!(c.write_file(&p, b"mine\n").await, Err(libc::EBUSY));
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hello\n");
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"mine\n");
    // Not locked: the file stays writable and the next write goes through.
    assert_eq!(c.stat(&p).await.unwrap().perm & 0o222, 0o200);
    c.write_file(&p, b"mine\n").await.unwrap();
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"mine\n");
}

#[tokio::test]
async fn a_bare_conflict_from_an_instance_archived_meanwhile_is_eperm() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    let f = c.open(&p, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
    c.write(f, 0, b"late\n").await.unwrap();
    c.client.update_instance(guid_of(&dir), |i| {
        i.status.archived = Some(chrono::Utc::now());
        i.status.is_archived = true;
    });
    // The mount has not seen the archive; the server's answer is a bare 409.
    c.client
        .fail_next(Op::ReplaceData, 1, http(409, "Conflict"), FaultWhen::Before);
    assert_eq!(c.close(f).await, Err(libc::EPERM));
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"late\n");
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hello\n");
}

#[tokio::test]
async fn an_instance_archived_while_a_new_file_is_open_keeps_the_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/anything/late.txt");
    let f = c.create(&p, libc::O_WRONLY | libc::O_CREAT).await.unwrap();
    c.write(f, 0, b"late").await.unwrap();
    c.client.update_instance(guid_of(&dir), |i| {
        i.status.archived = Some(chrono::Utc::now());
        i.status.is_archived = true;
    });
    assert_eq!(c.close(f).await, Err(libc::EPERM));
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"late");
    assert!(c.server_names(&dir, "anything").is_empty());
}

#[tokio::test]
async fn a_temp_name_closed_with_bytes_stays_local_and_readable() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/report.pdf.swp");
    // Not a temp name by the rules (".swp" needs a leading dot), so it is checked: EPERM.
    assert_eq!(c.write_file(&p, b"x").await, Err(libc::EPERM));
    let p = format!("{dir}/attachments/.report.pdf.swp");
    c.write_file(&p, b"swap bytes").await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert_eq!(c.cat(&p).await.unwrap(), b"swap bytes");
    assert_eq!(c.getxattr(&p, "user.altinn.pending").await.unwrap(), "true");
}
