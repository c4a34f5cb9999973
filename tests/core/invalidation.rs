//! Read-after-write through the kernel's caches: what the core tells the kernel to forget.
//! (The kernel side of it is tested in the mount tier; here: that the core asks.)

use crate::support::*;
use altinnfs::fs::Inval;

#[tokio::test]
async fn an_overwrite_invalidates_the_file_before_close_returns() {
    let c = Core::sample().await;
    let p = format!("{}/attachments/notes.txt", c.instance_dir("50001"));
    let ino = c.ino(&p).await.unwrap();
    let seen = c.record_invalidations();
    c.write_file(&p, b"new\n").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&(Inval::Inode(ino), true)),
        "the file's pages are dropped, and close waits for it: {seen:?}"
    );
}

#[tokio::test]
async fn a_rename_invalidates_the_new_name() {
    let c = Core::sample().await;
    let d = format!("{}/attachments", c.instance_dir("50001"));
    let parent = c.ino(&d).await.unwrap();
    let seen = c.record_invalidations();
    c.rename(&format!("{d}/notes.txt"), &format!("{d}/renamed.txt"))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let entry = Inval::Entry {
        parent,
        name: "renamed.txt".into(),
    };
    assert!(seen.iter().any(|(i, _)| *i == entry), "{seen:?}");
}

#[tokio::test]
async fn a_new_file_posted_at_close_invalidates_its_name() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    let parent = c.ino(&d).await.unwrap();
    let seen = c.record_invalidations();
    c.write_file(&format!("{d}/new.txt"), b"x").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let entry = Inval::Entry {
        parent,
        name: "new.txt".into(),
    };
    assert!(
        seen.iter().any(|(i, _)| *i == entry),
        "the kernel looks the name up again to get the element's inode: {seen:?}"
    );
}
