//! unlink, truncate and the attribute changes that change nothing (SPEC §4).

use crate::support::*;

#[tokio::test]
async fn unlink_deletes_the_element() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.unlink(&format!("{dir}/attachments/notes.txt"))
        .await
        .unwrap();
    assert_eq!(c.server_names(&dir, "attachments"), vec!["report.pdf"]);
    assert!(!c.exists(&format!("{dir}/attachments/notes.txt")).await);
    assert_eq!(
        c.unlink(&format!("{dir}/attachments/notes.txt")).await,
        Err(libc::ENOENT)
    );
}

#[tokio::test]
async fn the_main_form_cannot_be_deleted() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.unlink(&format!("{dir}/model/model.xml")).await,
        Err(libc::EPERM)
    );
    assert_eq!(c.client.count(Op::DeleteData), 0);
}

#[tokio::test]
async fn unlink_of_a_local_file_sends_nothing() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/anything/e.txt");
    c.touch(&p).await.unwrap();
    c.unlink(&p).await.unwrap();
    assert!(!c.exists(&p).await);
    assert_eq!(c.client.count(Op::DeleteData), 0);
}

#[tokio::test]
async fn unlink_of_directories_and_layout_files() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.unlink(&format!("{dir}/attachments")).await,
        Err(libc::EISDIR)
    );
    assert_eq!(
        c.unlink(&format!("{dir}/instance.json")).await,
        Err(libc::EPERM)
    );
    assert_eq!(c.unlink("applicationmetadata.json").await, Err(libc::EPERM));
}

#[tokio::test]
async fn truncating_an_element_to_zero_is_einval_and_leaves_it() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    assert_eq!(c.truncate(&p, 0).await.err(), Some(libc::EINVAL));
    assert_eq!(c.client.count(Op::ReplaceData), 0);
    assert_eq!(c.cat_str(&p).await.unwrap(), "hello\n");
    assert_eq!(c.stat(&p).await.unwrap().size, 6);
    // The same through O_TRUNC and close with nothing written.
    let f = c.open(&p, libc::O_WRONLY | libc::O_TRUNC).await.unwrap();
    assert_eq!(c.close(f).await, Err(libc::EINVAL));
    assert_eq!(c.cat_str(&p).await.unwrap(), "hello\n");
}

#[tokio::test]
async fn truncate_to_a_shorter_size_puts_the_prefix() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    assert_eq!(c.truncate(&p, 3).await.unwrap().size, 3);
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hel");
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    // Same size: nothing to send.
    c.truncate(&p, 3).await.unwrap();
    assert_eq!(c.client.count(Op::ReplaceData), 1);
}

#[tokio::test]
async fn ftruncate_works_on_the_spool() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/anything/fio.bin");
    let f = c.create(&p, libc::O_RDWR | libc::O_CREAT).await.unwrap();
    c.ftruncate(f, 4096).await.unwrap();
    c.write(f, 0, b"head").await.unwrap();
    assert_eq!(c.stat(&p).await.unwrap().size, 4096);
    c.close(f).await.unwrap();
    let got = c.server_bytes(&dir, "fio.bin").unwrap();
    assert_eq!(got.len(), 4096);
    assert_eq!(&got[..4], b"head");
    // Past maxSize is EFBIG.
    let q = format!("{dir}/attachments/big.pdf");
    let f = c.create(&q, libc::O_RDWR | libc::O_CREAT).await.unwrap();
    assert_eq!(
        c.ftruncate(f, 2 * 1024 * 1024).await.err(),
        Some(libc::EFBIG)
    );
    let _ = c.close(f).await;
}

#[tokio::test]
async fn chmod_chown_utimes_succeed_and_send_nothing() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    let before = c.stat(&p).await.unwrap();
    let after = c.touch_attrs(&p).await.unwrap();
    assert_eq!(before, after);
    c.touch_attrs(&dir).await.unwrap();
    assert_eq!(c.client.count(Op::ReplaceData), 0);
}

#[tokio::test]
async fn mkdir_and_rmdir_make_and_delete_instances() {
    let c = Core::sample().await;
    let before = c.client.instances().len();
    c.mkdir("50001/new-case").await.unwrap();
    assert_eq!(c.client.instances().len(), before + 1);
    c.write_file("50001/new-case/attachments/a.txt", b"attached")
        .await
        .unwrap();
    let inst = c
        .client
        .instances()
        .into_iter()
        .find(|i| {
            i.data
                .iter()
                .any(|d| d.filename.as_deref() == Some("a.txt"))
        })
        .expect("stored on the new instance");
    assert!(c
        .ls("50001")
        .await
        .unwrap()
        .contains(&inst.guid().to_string()));
    assert_eq!(c.mkdir("50001/new-case").await.err(), Some(libc::EEXIST));
    assert_eq!(
        c.mkdir("50001/new-case/attachments/sub").await.err(),
        Some(libc::EPERM)
    );
    assert_eq!(
        c.rmdir("50001/new-case/attachments").await,
        Err(libc::EPERM)
    );
    c.rmdir("50001/new-case").await.unwrap();
    assert!(
        c.client
            .instance(inst.guid())
            .unwrap()
            .status
            .is_soft_deleted
    );
    assert!(!c
        .ls("50001")
        .await
        .unwrap()
        .contains(&inst.guid().to_string()));
}

#[tokio::test]
async fn process_next_and_confirm_through_xattrs() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.setxattr(&dir, "user.altinn.process", "next")
        .await
        .unwrap();
    assert_eq!(
        c.getxattr(&dir, "user.altinn.process.currentTask")
            .await
            .unwrap(),
        "Task_2"
    );
    // Task_1's elements are locked now.
    let p = format!("{dir}/attachments/report.pdf");
    assert_eq!(c.stat(&p).await.unwrap().perm & 0o777, 0o444);
    assert_eq!(c.append(&p, b"x").await, Err(libc::EPERM));
    c.setxattr(&dir, "user.altinn.confirm", "complete")
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CompleteInstance), 1);
    assert_eq!(
        c.setxattr(&dir, "user.altinn.confirm", "bogus").await,
        Err(libc::EINVAL)
    );
    assert_eq!(c.setxattr(&p, "user.x", "1").await, Err(libc::ENOTSUP));
}

#[tokio::test]
async fn truncating_a_local_file_changes_its_size_within_max_size() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/pending.pdf");
    c.touch(&p).await.unwrap();
    assert_eq!(c.truncate(&p, 100).await.unwrap().size, 100);
    assert_eq!(c.stat(&p).await.unwrap().size, 100);
    assert_eq!(
        c.truncate(&p, 2 * 1024 * 1024).await.err(),
        Some(libc::EFBIG)
    );
    assert_eq!(
        c.client.count(Op::CreateData),
        0,
        "a truncate alone uploads nothing"
    );
}

#[tokio::test]
async fn directories_and_layout_files_refuse_size_changes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(c.truncate(&dir, 0).await.err(), Some(libc::EISDIR));
    assert_eq!(
        c.truncate(&format!("{dir}/instance.json"), 0).await.err(),
        Some(libc::EPERM)
    );
    assert_eq!(
        c.truncate("applicationmetadata.json", 1).await.err(),
        Some(libc::EPERM)
    );
}
