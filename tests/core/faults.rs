//! Fault scenarios through the memory client's hooks: failed POSTs, lost answers, failed
//! query pages, an expired token. Nothing is lost and nothing is sent twice.

use crate::support::*;

#[tokio::test]
async fn a_refused_post_keeps_the_bytes_in_unsent_with_a_sidecar() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let data = pattern(4000, 5);
    c.client
        .fail_next(Op::CreateData, 10, http(503, "down"), FaultWhen::Before);
    let p = format!("{dir}/attachments/lost.pdf");
    assert_eq!(c.write_file(&p, &data).await, Err(libc::EIO));
    let (files, sidecars) = c.unsent();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), data);
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecars[0]).unwrap()).unwrap();
    assert_eq!(j["filename"], "lost.pdf");
    assert_eq!(j["dataType"], "attachments");
    assert_eq!(j["instance"], guid_of(&dir));
    assert_eq!(j["errno"], libc::EIO);
    assert!(j["path"]
        .as_str()
        .unwrap()
        .ends_with("attachments/lost.pdf"));
    assert!(!c
        .server_names(&dir, "attachments")
        .contains(&"lost.pdf".to_string()));
    assert!(!c.exists(&p).await, "a failed new file is not shown");
}

#[tokio::test]
async fn the_third_post_fails_and_only_its_bytes_land_in_unsent() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50002");
    let d = format!("{dir}/anything");
    c.write_file(&format!("{d}/1.txt"), b"one").await.unwrap();
    c.write_file(&format!("{d}/2.txt"), b"two").await.unwrap();
    c.client
        .fail_next(Op::CreateData, 1, http(400, "Rejected"), FaultWhen::Before);
    assert_eq!(
        c.write_file(&format!("{d}/3.txt"), b"three").await,
        Err(libc::EINVAL)
    );
    c.write_file(&format!("{d}/4.txt"), b"four").await.unwrap();
    assert_eq!(
        c.server_names(&dir, "anything"),
        vec!["1.txt", "2.txt", "4.txt"]
    );
    let (files, _) = c.unsent();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"three");
}

#[tokio::test]
async fn a_post_whose_answer_is_lost_is_not_sent_twice() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client.fail_next(
        Op::CreateData,
        1,
        network("connection reset"),
        FaultWhen::After,
    );
    c.write_file(&format!("{dir}/attachments/once.pdf"), b"%PDF once")
        .await
        .unwrap();
    let n = c
        .server_names(&dir, "attachments")
        .iter()
        .filter(|n| *n == "once.pdf")
        .count();
    assert_eq!(n, 1);
    assert_eq!(
        c.client.count(Op::CreateData),
        1,
        "the probe found it; no second POST"
    );
    assert_eq!(
        c.cat(&format!("{dir}/attachments/once.pdf")).await.unwrap(),
        b"%PDF once"
    );
}

#[tokio::test]
async fn a_post_that_failed_before_storing_is_sent_again() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client
        .fail_next(Op::CreateData, 1, network("refused"), FaultWhen::Before);
    c.write_file(&format!("{dir}/attachments/again.pdf"), b"%PDF")
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 2);
    assert_eq!(
        c.server_names(&dir, "attachments")
            .iter()
            .filter(|n| *n == "again.pdf")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_failed_put_keeps_the_bytes_and_leaves_the_element() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    c.client
        .fail_next(Op::ReplaceData, 10, http(503, "down"), FaultWhen::Before);
    assert_eq!(c.write_file(&p, b"new text\n").await, Err(libc::EIO));
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hello\n");
    let (files, _) = c.unsent();
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"new text\n");
    assert_eq!(c.cat_str(&p).await.unwrap(), "hello\n");
}

#[tokio::test]
async fn a_transient_put_failure_is_retried() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    c.client
        .fail_next(Op::ReplaceData, 1, http(503, "blip"), FaultWhen::Before);
    c.write_file(&p, b"new\n").await.unwrap();
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"new\n");
    assert!(c.unsent().0.is_empty());
}

#[tokio::test]
async fn a_failed_query_page_is_retried_and_the_listing_completes() {
    let c = Core::sample().await;
    c.client.set_page_size(1);
    c.client.fail_next(
        Op::QueryPage,
        1,
        http(503, "page failed"),
        FaultWhen::Before,
    );
    let mut all = Vec::new();
    for p in ["50001", "50002"] {
        all.extend(c.ls(p).await.unwrap());
    }
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn a_query_that_keeps_failing_is_eio_then_recovers() {
    let c = Core::sample().await;
    c.client
        .fail_next(Op::QueryPage, 100, http(500, "down"), FaultWhen::Before);
    assert_eq!(c.ls("50001").await.err(), Some(libc::EIO));
    // Replacing the fault with one of zero calls clears it: the server is back, and the
    // failure was not cached.
    c.client
        .fail_next(Op::QueryPage, 0, http(500, "down"), FaultWhen::Before);
    assert_eq!(c.ls("50001").await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_expired_token_is_eacces_and_nothing_is_lost() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.ls(&d).await.unwrap();
    c.client.fail_next(
        Op::CreateData,
        10,
        http(401, "token expired"),
        FaultWhen::Before,
    );
    assert_eq!(
        c.write_file(&format!("{d}/x.pdf"), b"%PDF x").await,
        Err(libc::EACCES)
    );
    assert_eq!(
        c.client.count(Op::CreateData),
        1,
        "401 is not retried by the core"
    );
    let (files, _) = c.unsent();
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"%PDF x");
    c.client
        .fail_next(Op::DeleteData, 1, http(403, "forbidden"), FaultWhen::Before);
    assert_eq!(c.unlink(&format!("{d}/notes.txt")).await, Err(libc::EACCES));
    assert!(c.exists(&format!("{d}/notes.txt")).await);
}

#[tokio::test]
async fn a_download_cut_short_is_an_error_not_short_data() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/report.pdf");
    let id = c.getxattr(&p, "user.altinn.id").await.unwrap();
    let size = c.stat(&p).await.unwrap().size;
    c.client.truncate_downloads(&id, Some(10));
    let r = c.cat(&p).await;
    assert!(
        r.is_err() || r.as_ref().unwrap().len() as u64 == size,
        "{:?}",
        r.map(|b| b.len())
    );
    c.client.truncate_downloads(&id, None);
    assert_eq!(c.cat(&p).await.unwrap().len() as u64, size);
}

#[tokio::test]
async fn server_refusals_map_to_errnos() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    let cases = [
        (http(409, "Max Count Exceeded"), libc::EDQUOT),
        (http(409, "Some conflict"), libc::EBUSY),
        (http(413, "Too large"), libc::EFBIG),
        (http(404, "Instance Not Found"), libc::ENOENT),
        (http(415, "Unsupported"), libc::EINVAL),
    ];
    for (i, (err, want)) in cases.into_iter().enumerate() {
        c.client
            .fail_next(Op::CreateData, 1, err, FaultWhen::Before);
        assert_eq!(
            c.write_file(&format!("{d}/f{i}.txt"), b"x").await,
            Err(want),
            "case {i}"
        );
    }
}

#[tokio::test]
async fn too_many_requests_is_retried_after_its_wait() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let mut busy = http(429, "Too Many Requests");
    if let AltinnError::Status { retry_after, .. } = &mut busy {
        *retry_after = Some(std::time::Duration::from_millis(2));
    }
    c.client
        .fail_next(Op::ReplaceData, 2, busy, FaultWhen::Before);
    c.write_file(&format!("{dir}/attachments/notes.txt"), b"after 429\n")
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::ReplaceData), 3);
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"after 429\n");
}

#[tokio::test]
async fn unsent_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client
        .fail_next(Op::CreateData, 10, http(500, "down"), FaultWhen::Before);
    let _ = c
        .write_file(&format!("{dir}/anything/secret.txt"), b"secret")
        .await;
    let (files, sidecars) = c.unsent();
    for p in files.iter().chain(&sidecars) {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
    }
    let dirmode = std::fs::metadata(c.fs.unsent_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dirmode, 0o700);
}

#[tokio::test]
async fn a_failed_delete_leaves_the_file_listed() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client
        .fail_next(Op::DeleteData, 10, http(503, "down"), FaultWhen::Before);
    assert_eq!(
        c.unlink(&format!("{dir}/attachments/notes.txt")).await,
        Err(libc::EIO)
    );
    assert_eq!(
        c.ls(&format!("{dir}/attachments")).await.unwrap(),
        vec!["notes.txt", "report.pdf"]
    );
}
