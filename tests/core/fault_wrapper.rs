//! Fault scenarios through `FaultClient`, the wrapper that works over any client (the same
//! faults will apply when the model of Altinn behind it changes): the Nth call of an operation
//! fails with an answer Altinn would give, parsed as a real answer is.

use crate::support::*;
use altinnfs::altinn::client::Refusal;
use std::time::Duration;

#[tokio::test]
async fn the_third_post_is_refused_and_only_its_bytes_land_in_unsent() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50002");
    let d = format!("{dir}/anything");
    let too_large = Fault::refusal(Refusal::Rule("DataElementTooLarge".into()));
    c.faults.fail_call(Call::CreateData, 3, too_large);
    for (i, want) in [(1, Ok(())), (2, Ok(())), (3, Err(libc::EFBIG)), (4, Ok(()))] {
        let bytes = format!("file {i}");
        let got = c
            .write_file(&format!("{d}/{i}.txt"), bytes.as_bytes())
            .await;
        assert_eq!(got, want, "file {i}");
    }
    assert_eq!(
        c.server_names(&dir, "anything"),
        vec!["1.txt", "2.txt", "4.txt"]
    );
    let (files, sidecars) = c.unsent();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"file 3");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecars[0]).unwrap()).unwrap();
    assert_eq!(j["errno"], libc::EFBIG);
}

#[tokio::test]
async fn one_transient_post_failure_is_probed_then_sent_again() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.faults
        .fail_call(Call::CreateData, 1, Fault::transient(None));
    c.write_file(&format!("{dir}/anything/a.txt"), b"a")
        .await
        .unwrap();
    assert_eq!(c.faults.calls(Call::CreateData), 2);
    assert!(
        c.faults.calls(Call::ListElements) >= 1,
        "the probe looked first"
    );
    assert_eq!(c.server_names(&dir, "anything"), vec!["a.txt"]);
}

#[tokio::test]
async fn a_lost_post_answer_never_makes_a_duplicate() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.faults
        .fail_call(Call::CreateData, 1, Fault::lost_answer());
    c.write_file(&format!("{dir}/anything/once.txt"), b"once")
        .await
        .unwrap();
    assert_eq!(c.faults.calls(Call::CreateData), 1);
    assert_eq!(c.server_names(&dir, "anything"), vec!["once.txt"]);
    assert!(c.unsent().0.is_empty());
}

#[tokio::test]
async fn a_server_that_stays_down_keeps_the_bytes() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.fail_next_calls(
        Call::CreateData,
        20,
        Fault::transient(Some(Duration::from_millis(1))),
    );
    let p = format!("{dir}/anything/kept.txt");
    assert_eq!(c.write_file(&p, b"kept").await, Err(libc::EIO));
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"kept");
    assert!(c.server_names(&dir, "anything").is_empty());
}

#[tokio::test]
async fn a_storage_timeout_on_a_page_does_not_fail_the_listing() {
    let c = Core::sample().await;
    c.client.set_page_size(1);
    c.faults
        .fail_call(Call::QueryPage, 2, Fault::storage_timeout());
    let mut all = Vec::new();
    for p in ["50001", "50002"] {
        all.extend(c.ls(p).await.unwrap());
    }
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn an_expired_token_is_eacces_and_the_bytes_are_kept() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/notes.txt");
    c.ls(&format!("{dir}/attachments")).await.unwrap();
    c.faults
        .fail_next(Call::ReplaceData, Fault::token_expired());
    assert_eq!(c.write_file(&p, b"mine\n").await, Err(libc::EACCES));
    assert_eq!(std::fs::read(&c.unsent().0[0]).unwrap(), b"mine\n");
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"hello\n");
    // The next request has a good token again.
    c.write_file(&p, b"mine\n").await.unwrap();
    assert_eq!(c.server_bytes(&dir, "notes.txt").unwrap(), b"mine\n");
}

#[tokio::test]
async fn altinns_refusals_map_to_the_spec_errnos() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    let rows = [
        (Refusal::MaxCount, libc::EDQUOT),
        (Refusal::Locked, libc::EPERM),
        (Refusal::NotActive, libc::EPERM),
        (Refusal::NoCurrentTask, libc::EPERM),
        (Refusal::Disallowed, libc::EPERM),
        (Refusal::Rule("ContentTypeNotAllowed".into()), libc::EPERM),
        (Refusal::Rule("InvalidFileNameFormat".into()), libc::EINVAL),
        (Refusal::ContentType, libc::EINVAL),
        (Refusal::TooLarge, libc::EFBIG),
        (Refusal::Invalid, libc::EINVAL),
        (Refusal::Conflict, libc::EBUSY),
    ];
    for (i, (refusal, errno)) in rows.into_iter().enumerate() {
        let what = format!("{refusal:?}");
        c.faults
            .fail_next(Call::CreateData, Fault::refusal(refusal));
        let got = c.write_file(&format!("{d}/f{i}.txt"), b"x").await;
        assert_eq!(got, Err(errno), "{what}");
    }
    assert!(c
        .server_names(&d.replace("/anything", ""), "anything")
        .is_empty());
}

#[tokio::test]
async fn a_refused_delete_of_the_old_element_after_a_rename_post() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/attachments");
    c.faults
        .fail_next(Call::DeleteData, Fault::refusal(Refusal::Locked));
    // The POST of the new name worked; the DELETE of the old one was refused: rename fails and
    // both names exist on the server (nothing lost; the user sees both).
    assert_eq!(
        c.rename(&format!("{d}/notes.txt"), &format!("{d}/renamed.txt"))
            .await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.server_names(&dir, "attachments"),
        vec!["notes.txt", "renamed.txt", "report.pdf"]
    );
}
