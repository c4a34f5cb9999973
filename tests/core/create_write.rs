//! create / write / flush / close of new and existing files (SPEC §4).

use crate::support::*;

#[tokio::test]
async fn a_new_file_is_posted_at_close_with_its_name_and_type() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let data = pattern(300 * 1024, 1);
    c.write_file(&format!("{dir}/attachments/scan.pdf"), &data)
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
    assert_eq!(c.server_bytes(&dir, "scan.pdf").unwrap(), data);
    let up = c.client.uploads();
    assert_eq!(
        up.last().unwrap(),
        &UploadSeen {
            method: "POST",
            filename: "scan.pdf".to_string(),
            content_type: "application/pdf".to_string(),
            size: data.len() as u64
        }
    );
    // Read-after-write: stat and cat agree at once.
    let st = c
        .stat(&format!("{dir}/attachments/scan.pdf"))
        .await
        .unwrap();
    assert_eq!(st.size, data.len() as u64);
    assert_eq!(st.kind, Kind::File);
    assert_eq!(
        c.cat(&format!("{dir}/attachments/scan.pdf")).await.unwrap(),
        data
    );
    let id = c
        .getxattr(&format!("{dir}/attachments/scan.pdf"), "user.altinn.id")
        .await
        .unwrap();
    let el = c
        .client
        .elements(guid_of(&dir))
        .into_iter()
        .find(|e| e.filename.as_deref() == Some("scan.pdf"))
        .unwrap();
    assert_eq!(id, el.id);
}

#[tokio::test]
async fn overwriting_an_element_is_one_put_of_the_same_element() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/attachments/notes.txt");
    let before = c.getxattr(&path, "user.altinn.id").await.unwrap();
    c.write_file(&path, b"replaced\n").await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(c.getxattr(&path, "user.altinn.id").await.unwrap(), before);
    assert_eq!(c.cat_str(&path).await.unwrap(), "replaced\n");
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"replaced\n");
}

#[tokio::test]
async fn append_copies_the_old_bytes_first() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/attachments/notes.txt");
    c.append(&path, b"more\n").await.unwrap();
    assert_eq!(c.cat_str(&path).await.unwrap(), "hello\nmore\n");
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(c.stat(&path).await.unwrap().size, 11);
}

#[tokio::test]
async fn refusals_at_create_before_any_byte_moves() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let at = |n: &str| format!("{dir}/attachments/{n}");
    assert_eq!(c.write_file(&at("tool.exe"), b"MZ").await, Err(libc::EPERM));
    assert_eq!(c.write_file(&at("README"), b"x").await, Err(libc::EINVAL));
    assert_eq!(
        c.write_file(&at("big.pdf"), &pattern(1024 * 1024 + 1, 2))
            .await,
        Err(libc::EFBIG)
    );
    let long = format!("{}.pdf", "x".repeat(260));
    assert_eq!(c.write_file(&at(&long), b"x").await, Err(libc::EINVAL));
    assert_eq!(c.client.count(Op::CreateData), 0, "nothing sent");
    assert!(
        !c.exists(&at("big.pdf")).await,
        "a too large file leaves nothing"
    );
    assert!(!c.exists(&at("tool.exe")).await);
    // Files are created in data type directories only.
    assert_eq!(c.touch(&format!("{dir}/x.txt")).await, Err(libc::EPERM));
    assert_eq!(c.touch("50001/x.txt").await, Err(libc::EPERM));
}

#[tokio::test]
async fn max_count_counts_files_not_yet_uploaded() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let at = |n: &str| format!("{dir}/attachments/{n}");
    // The sample has 2 attachments of at most 5: two uploads and one empty local file fit.
    c.write_file(&at("n1.txt"), b"a").await.unwrap();
    c.write_file(&at("n2.txt"), b"b").await.unwrap();
    c.touch(&at("pending.txt")).await.unwrap();
    assert_eq!(c.write_file(&at("n3.txt"), b"c").await, Err(libc::EDQUOT));
    assert_eq!(c.client.count(Op::CreateData), 2);
    // A temporary name is not counted: rsync's temp file may exist beside the fifth.
    c.touch(&at(".n3.txt.AbC123")).await.unwrap();
    // Removing the local file frees its place.
    c.unlink(&at("pending.txt")).await.unwrap();
    c.write_file(&at("n3.txt"), b"c").await.unwrap();
    assert_eq!(c.server_names(&dir, "attachments").len(), 5);
}

#[tokio::test]
async fn the_main_form_already_exists_so_a_second_form_is_edquot() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.write_file(&format!("{dir}/model/second.xml"), b"<a/>")
            .await,
        Err(libc::EDQUOT)
    );
    assert_eq!(c.client.count(Op::CreateData), 0);
}

#[tokio::test]
async fn an_empty_new_file_stays_local_until_it_gets_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/anything/empty.txt");
    c.touch(&path).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert_eq!(
        c.getxattr(&path, "user.altinn.pending").await.unwrap(),
        "true"
    );
    assert!(c
        .ls(&format!("{dir}/anything"))
        .await
        .unwrap()
        .contains(&"empty.txt".into()));
    assert_eq!(c.stat(&path).await.unwrap().size, 0);
    assert_eq!(c.cat(&path).await.unwrap(), b"");
    c.write_file(&path, b"hello\n").await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
    assert_eq!(c.server_bytes(&dir, "empty.txt").unwrap(), b"hello\n");
    assert_eq!(
        c.getxattr(&path, "user.altinn.pending").await,
        Err(libc::ENODATA)
    );
}

#[tokio::test]
async fn fsync_uploads_and_close_after_it_sends_nothing_more() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let f = c
        .create(
            &format!("{dir}/anything/log.txt"),
            libc::O_WRONLY | libc::O_CREAT,
        )
        .await
        .unwrap();
    c.write(f, 0, b"line 1\n").await.unwrap();
    c.fsync(f).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
    assert_eq!(c.server_bytes(&dir, "log.txt").unwrap(), b"line 1\n");
    // More bytes after the fsync replace the element (PUT), they do not make a second one.
    c.write(f, 7, b"line 2\n").await.unwrap();
    c.close(f).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(
        c.server_bytes(&dir, "log.txt").unwrap(),
        b"line 1\nline 2\n"
    );
    // A clean close sends nothing.
    let f = c
        .open(&format!("{dir}/anything/log.txt"), libc::O_RDWR)
        .await
        .unwrap();
    c.close(f).await.unwrap();
    assert_eq!(c.client.count(Op::ReplaceData), 1);
}

#[tokio::test]
async fn o_excl_on_an_existing_name_is_eexist() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let (parent, _) = c.parent_of(&format!("{dir}/attachments/x")).await.unwrap();
    let r =
        c.fs.create(
            parent,
            "notes.txt",
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
        )
        .await;
    assert_eq!(r.err().map(|e| e.errno()), Some(libc::EEXIST));
}

#[tokio::test]
async fn read_only_files_and_mounts_refuse_writes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.open(&format!("{dir}/instance.json"), libc::O_WRONLY)
            .await
            .err(),
        Some(libc::EPERM)
    );
    assert_eq!(
        c.open("applicationmetadata.json", libc::O_RDWR).await.err(),
        Some(libc::EPERM)
    );
    let ro = Core::with(
        altinnfs::emulator::inprocess::InProcessClient::sample(),
        |cfg| cfg.read_only = true,
    )
    .await;
    let dir = ro.instance_dir("50001");
    assert_eq!(
        ro.write_file(&format!("{dir}/anything/a.txt"), b"x").await,
        Err(libc::EPERM)
    );
    assert_eq!(
        ro.write_file(&format!("{dir}/attachments/notes.txt"), b"x")
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        ro.unlink(&format!("{dir}/attachments/notes.txt")).await,
        Err(libc::EPERM)
    );
    assert_eq!(
        ro.client.count(Op::CreateData) + ro.client.count(Op::ReplaceData),
        0
    );
}

#[tokio::test]
async fn a_locked_element_is_0444_and_refuses_writes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/attachments/report.pdf");
    // Locked on the server before this mount first sees it.
    let el = c
        .client
        .elements(guid_of(&dir))
        .into_iter()
        .find(|e| e.filename.as_deref() == Some("report.pdf"))
        .unwrap();
    c.client.update_element(&el.id, |e| e.locked = true);
    let st = c.stat(&path).await.unwrap();
    assert_eq!(st.perm & 0o777, 0o444);
    assert_eq!(c.open(&path, libc::O_WRONLY).await.err(), Some(libc::EPERM));
    assert_eq!(
        c.getxattr(&path, "user.altinn.locked").await.unwrap(),
        "true"
    );
    assert_eq!(c.client.count(Op::ReplaceData), 0);
}

/// `model` after writing `bytes` at `off` (a hole reads as zeros), as a file would hold it.
fn write_model(model: &mut Vec<u8>, off: usize, bytes: &[u8]) {
    if model.len() < off + bytes.len() {
        model.resize(off + bytes.len(), 0);
    }
    model[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Big writes at odd offsets and sizes, out of order, overlapping and past a hole, through
/// both write paths (the adapter's immediate `try_write` and the waiting `write`): the server
/// gets exactly the bytes the file holds, and `stat` agrees before and after close.
#[tokio::test]
async fn big_writes_at_odd_offsets_upload_exactly_the_written_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/anything/odd.bin");
    let f = c.create(&path, libc::O_WRONLY).await.unwrap();
    const MIB: usize = 1024 * 1024;
    let writes = [
        (0, MIB + 1),
        (3 * MIB + 17, MIB - 1),
        (MIB + 1, 128 * 1024 - 3),
        (4093, 2 * MIB + 3),
        (5 * MIB + 4097, 7),
        (MIB / 2 + 1, 1),
    ];
    let mut model = Vec::new();
    for (i, (off, len)) in writes.into_iter().enumerate() {
        let bytes = pattern(len, i as u8 + 1);
        let n = if i % 2 == 0 {
            let now = c.fs.try_write(f.fh, off as u64, &bytes);
            now.expect("an idle handle is written at once").unwrap() as usize
        } else {
            c.write(f, off as u64, &bytes).await.unwrap()
        };
        assert_eq!(n, len, "write {i} is whole");
        write_model(&mut model, off, &bytes);
    }
    assert_eq!(c.stat(&path).await.unwrap().size, model.len() as u64);
    c.close(f).await.unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
    let sent = c.server_bytes(&dir, "odd.bin").unwrap();
    assert_eq!(sent.len(), model.len());
    assert!(
        sent == model,
        "the uploaded bytes differ from the written ones"
    );
    assert_eq!(c.stat(&path).await.unwrap().size, model.len() as u64);
}

/// The adapter answers a write before its bytes reach the spool: a spool write that fails
/// afterwards (here a pwrite past the largest file any file system holds) fails the handle. The next
/// write and close return the error, nothing is uploaded and the new file goes away.
#[tokio::test]
async fn a_spool_write_failing_after_its_answer_fails_the_next_write_and_close() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let path = format!("{dir}/anything/late.bin");
    let f = c.create(&path, libc::O_WRONLY).await.unwrap();
    c.write(f, 0, b"first bytes").await.unwrap();
    let past_any_file = i64::MAX as u64 - 1;
    let accepted = c.fs.try_accept_write(f.fh, past_any_file, 3);
    let accepted = accepted.expect("an idle handle answers at once");
    let late =
        c.fs.spool_accepted(accepted.expect("taken before a byte moved"), b"abc");
    assert!(late.is_err(), "a pwrite past the largest file fails");
    assert_eq!(c.write(f, 11, b"more").await, Err(libc::EIO));
    assert_eq!(c.close(f).await, Err(libc::EIO));
    assert_eq!(c.client.count(Op::CreateData), 0, "nothing was sent");
    assert!(!c.exists(&path).await, "the new file went away");
}
