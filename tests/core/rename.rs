//! rename(2) inside and across data type directories (SPEC §4).

use crate::support::*;

#[tokio::test]
async fn renaming_an_element_posts_the_new_name_then_deletes_the_old() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.rename(&format!("{d}/notes.txt"), &format!("{d}/renamed.txt"))
        .await
        .unwrap();
    assert_eq!(
        c.server_names(&dir, "attachments"),
        vec!["renamed.txt", "report.pdf"]
    );
    assert_eq!(
        c.cat_str(&format!("{d}/renamed.txt")).await.unwrap(),
        "hello\n"
    );
    assert!(!c.exists(&format!("{d}/notes.txt")).await);
    assert_eq!(
        (
            c.client.count(Op::CreateData),
            c.client.count(Op::DeleteData)
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn renaming_an_element_over_another_puts_its_bytes_there() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    let target_id = c
        .getxattr(&format!("{d}/report.pdf"), "user.altinn.id")
        .await
        .unwrap();
    c.write_file(&format!("{d}/new.pdf"), b"%PDF new")
        .await
        .unwrap();
    c.rename(&format!("{d}/new.pdf"), &format!("{d}/report.pdf"))
        .await
        .unwrap();
    assert_eq!(
        c.server_names(&dir, "attachments"),
        vec!["notes.txt", "report.pdf"]
    );
    assert_eq!(c.server_bytes(&dir, "report.pdf").unwrap(), b"%PDF new");
    // The target keeps its element (PUT), the source element is deleted.
    assert_eq!(
        c.getxattr(&format!("{d}/report.pdf"), "user.altinn.id")
            .await
            .unwrap(),
        target_id
    );
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(c.client.count(Op::DeleteData), 1);
}

#[tokio::test]
async fn an_editor_save_through_a_temp_name_is_one_put() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    // vim/sed/rsync: write a temporary name, then rename it over the file.
    c.write_file(&format!("{d}/sedAb12Cd"), b"edited\n")
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0, "a temp name stays local");
    c.rename(&format!("{d}/sedAb12Cd"), &format!("{d}/notes.txt"))
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert_eq!(c.client.count(Op::ReplaceData), 1);
    assert_eq!(c.client.count(Op::DeleteData), 0);
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"edited\n");
    assert!(!c.exists(&format!("{d}/sedAb12Cd")).await);
    assert_eq!(
        c.cat_str(&format!("{d}/notes.txt")).await.unwrap(),
        "edited\n"
    );
}

#[tokio::test]
async fn rsync_temp_file_renamed_to_a_new_name_is_one_post() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50002");
    let d = format!("{dir}/anything");
    c.write_file(&format!("{d}/.f1.txt.Xy12Zw"), b"synced")
        .await
        .unwrap();
    c.rename(&format!("{d}/.f1.txt.Xy12Zw"), &format!("{d}/f1.txt"))
        .await
        .unwrap();
    assert_eq!(c.server_names(&dir, "anything"), vec!["f1.txt"]);
    assert_eq!(c.client.count(Op::CreateData), 1);
    assert_eq!(
        c.client.count(Op::DeleteData),
        0,
        "the temp name never reached the server"
    );
    assert_eq!(c.ls(&d).await.unwrap(), vec!["f1.txt"]);
}

#[tokio::test]
async fn a_temp_name_renamed_to_a_refused_name_is_refused_and_kept() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.write_file(&format!("{d}/x.tmp"), b"MZ").await.unwrap();
    assert_eq!(
        c.rename(&format!("{d}/x.tmp"), &format!("{d}/tool.exe"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.rename(&format!("{d}/x.tmp"), &format!("{d}/noext")).await,
        Err(libc::EINVAL)
    );
    assert!(c.exists(&format!("{d}/x.tmp")).await);
    assert_eq!(c.client.count(Op::CreateData), 0);
}

#[tokio::test]
async fn an_empty_local_file_cannot_replace_an_element() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.touch(&format!("{d}/empty.txt")).await.unwrap();
    assert_eq!(
        c.rename(&format!("{d}/empty.txt"), &format!("{d}/notes.txt"))
            .await,
        Err(libc::EINVAL)
    );
    assert_eq!(
        c.cat_str(&format!("{d}/notes.txt")).await.unwrap(),
        "hello\n"
    );
    assert!(c.exists(&format!("{d}/empty.txt")).await);
    // Renamed to a new name, it stays local (nothing to upload).
    c.rename(&format!("{d}/empty.txt"), &format!("{d}/later.txt"))
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 0);
    assert_eq!(
        c.getxattr(&format!("{d}/later.txt"), "user.altinn.pending")
            .await
            .unwrap(),
        "true"
    );
}

#[tokio::test]
async fn across_data_types_instances_and_parties_is_exdev() {
    let c = Core::sample().await;
    let a = c.instance_dir("50001");
    let b = c.instance_dir("50002");
    let src = format!("{a}/attachments/notes.txt");
    for dst in [
        format!("{a}/anything/notes.txt"),
        format!("{b}/attachments/notes.txt"),
    ] {
        assert_eq!(c.rename(&src, &dst).await, Err(libc::EXDEV), "{dst}");
    }
    assert_eq!(
        c.client.count(Op::CreateData) + c.client.count(Op::DeleteData),
        0
    );
}

#[tokio::test]
async fn layout_entries_cannot_be_renamed() {
    let c = Core::sample().await;
    let a = c.instance_dir("50001");
    assert_eq!(
        c.rename(&format!("{a}/instance.json"), &format!("{a}/i.json"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.rename(&format!("{a}/attachments"), &format!("{a}/att2"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.rename("applicationmetadata.json", "x.json").await,
        Err(libc::EPERM)
    );
}

#[tokio::test]
async fn noreplace_and_exchange() {
    let c = Core::sample().await;
    let d = format!("{}/attachments", c.instance_dir("50001"));
    assert_eq!(
        c.rename_flags(
            &format!("{d}/notes.txt"),
            &format!("{d}/report.pdf"),
            libc::RENAME_NOREPLACE
        )
        .await,
        Err(libc::EEXIST)
    );
    assert_eq!(
        c.rename_flags(
            &format!("{d}/notes.txt"),
            &format!("{d}/report.pdf"),
            libc::RENAME_EXCHANGE
        )
        .await,
        Err(libc::EINVAL)
    );
    c.rename_flags(
        &format!("{d}/notes.txt"),
        &format!("{d}/n2.txt"),
        libc::RENAME_NOREPLACE,
    )
    .await
    .unwrap();
    assert!(c.exists(&format!("{d}/n2.txt")).await);
}

#[tokio::test]
async fn renaming_onto_itself_changes_nothing() {
    let c = Core::sample().await;
    let d = format!("{}/attachments", c.instance_dir("50001"));
    c.rename(&format!("{d}/notes.txt"), &format!("{d}/notes.txt"))
        .await
        .unwrap();
    assert_eq!(
        c.client.total_requests() - c.client.count(Op::QueryPage) - c.client.count(Op::Metadata),
        0
    );
}

#[tokio::test]
async fn the_main_form_cannot_be_renamed_to_a_new_name() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.rename(
            &format!("{dir}/model/model.xml"),
            &format!("{dir}/model/other.xml")
        )
        .await,
        Err(libc::EPERM)
    );
    assert_eq!(c.client.count(Op::DeleteData), 0);
}

#[tokio::test]
async fn at_max_count_an_element_rename_deletes_first_and_keeps_the_bytes_if_the_post_fails() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    for i in 0..3 {
        c.write_file(&format!("{d}/n{i}.txt"), b"n").await.unwrap();
    }
    assert_eq!(c.server_names(&dir, "attachments").len(), 5);
    // At maxCount a rename still works: the old element goes first.
    c.rename(&format!("{d}/n0.txt"), &format!("{d}/m0.txt"))
        .await
        .unwrap();
    assert!(c
        .server_names(&dir, "attachments")
        .contains(&"m0.txt".to_string()));
    assert_eq!(c.server_names(&dir, "attachments").len(), 5);
    // When the POST after that DELETE fails, the bytes land in unsent/.
    c.client
        .fail_next(Op::CreateData, 10, http(503, "down"), FaultWhen::Before);
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/kept.txt"))
            .await,
        Err(libc::EIO)
    );
    let (files, sidecars) = c.unsent();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"hello\n");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecars[0]).unwrap()).unwrap();
    assert_eq!(j["filename"], "kept.txt");
}

#[tokio::test]
async fn below_max_count_a_failed_post_leaves_the_old_element() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.client
        .fail_next(Op::CreateData, 10, http(503, "down"), FaultWhen::Before);
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/x.txt"))
            .await,
        Err(libc::EIO)
    );
    assert_eq!(
        c.server_names(&dir, "attachments"),
        vec!["notes.txt", "report.pdf"]
    );
    assert_eq!(c.client.count(Op::DeleteData), 0);
    assert!(c.unsent().0.is_empty(), "the element still holds the bytes");
}

#[tokio::test]
async fn renaming_an_element_to_a_refused_name() {
    let c = Core::sample().await;
    let d = format!("{}/attachments", c.instance_dir("50001"));
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/notes.exe"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/notes"))
            .await,
        Err(libc::EINVAL)
    );
    assert_eq!(
        c.client.count(Op::CreateData) + c.client.count(Op::DeleteData),
        0
    );
}

#[tokio::test]
async fn renaming_over_a_locked_element_is_eperm() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let el = c
        .client
        .elements(guid_of(&dir))
        .into_iter()
        .find(|e| e.filename.as_deref() == Some("report.pdf"))
        .unwrap();
    c.client.update_element(&el.id, |e| e.locked = true);
    let d = format!("{dir}/attachments");
    c.write_file(&format!("{d}/a.tmp"), b"x").await.unwrap();
    assert_eq!(
        c.rename(&format!("{d}/a.tmp"), &format!("{d}/report.pdf"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/report.pdf"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(c.client.count(Op::ReplaceData), 0);
}

#[tokio::test]
async fn in_an_archived_instance_rename_is_eperm() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client.update_instance(guid_of(&dir), |i| {
        i.status.archived = Some(chrono::Utc::now());
        i.status.is_archived = true;
    });
    let d = format!("{dir}/attachments");
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/x.txt"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.write_file(&format!("{d}/y.txt"), b"y").await,
        Err(libc::EPERM)
    );
}

#[tokio::test]
async fn a_local_file_over_another_local_file_replaces_it() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/anything");
    c.touch(&format!("{d}/old.txt")).await.unwrap();
    c.write_file(&format!("{d}/new.tmp"), b"new bytes")
        .await
        .unwrap();
    c.rename(&format!("{d}/new.tmp"), &format!("{d}/old.txt"))
        .await
        .unwrap();
    assert_eq!(c.ls(&d).await.unwrap(), vec!["old.txt"]);
    assert_eq!(c.server_bytes(&dir, "old.txt").unwrap(), b"new bytes");
    assert_eq!(c.client.count(Op::CreateData), 1);
}

#[tokio::test]
async fn an_element_over_a_pending_local_file_replaces_it() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.touch(&format!("{d}/pending.txt")).await.unwrap();
    c.rename(&format!("{d}/notes.txt"), &format!("{d}/pending.txt"))
        .await
        .unwrap();
    assert_eq!(c.ls(&d).await.unwrap(), vec!["pending.txt", "report.pdf"]);
    assert_eq!(
        c.server_names(&dir, "attachments"),
        vec!["pending.txt", "report.pdf"]
    );
    assert_eq!(
        c.cat_str(&format!("{d}/pending.txt")).await.unwrap(),
        "hello\n"
    );
    assert_eq!(
        c.getxattr(&format!("{d}/pending.txt"), "user.altinn.pending")
            .await,
        Err(libc::ENODATA)
    );
}

#[tokio::test]
async fn noreplace_onto_a_local_file_is_eexist() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    c.touch(&format!("{d}/a.txt")).await.unwrap();
    c.touch(&format!("{d}/b.txt")).await.unwrap();
    assert_eq!(
        c.rename_flags(
            &format!("{d}/a.txt"),
            &format!("{d}/b.txt"),
            libc::RENAME_NOREPLACE
        )
        .await,
        Err(libc::EEXIST)
    );
    assert_eq!(c.ls(&d).await.unwrap(), vec!["a.txt", "b.txt"]);
}

#[tokio::test]
async fn a_missing_source_is_enoent() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    assert_eq!(
        c.rename(&format!("{d}/nope.txt"), &format!("{d}/x.txt"))
            .await,
        Err(libc::ENOENT)
    );
}
