//! `--token-file`: re-read on change, permissions warning, cleaning, clear errors.
mod auth_support;
use altinnfs::altinn::auth::provider_from_options;
use altinnfs::cli::MountOptions;
use auth_support::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

fn write(path: &std::path::Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn opts(path: &std::path::Path) -> MountOptions {
    MountOptions {
        token_file: Some(path.to_path_buf()),
        ..Default::default()
    }
}

#[tokio::test]
async fn token_file_is_reread_after_it_changes() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let a = mint(0, 3600, "a");
    write(&path, &format!("\"{a}\"\n"), 0o600);
    let p = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), a, "quotes and newline stripped");
    assert_eq!(p.token().await.unwrap(), a);

    // An external refresher replaces the file (in place, as `echo > file` does).
    let b = mint(0, 7200, "bb-longer-subject");
    write(&path, &format!("{b}\n\n"), 0o600);
    assert_eq!(p.token().await.unwrap(), b);

    // ... or writes a new file and renames it over the old one.
    let c = mint(0, 3600, "c");
    let tmp = dir.path().join("token.tmp");
    write(&tmp, &c, 0o600);
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(p.token().await.unwrap(), c);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn group_or_other_readable_file_warns() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("loose");
    let tight = dir.path().join("tight");
    let t = mint(0, 3600, "x");
    write(&loose, &t, 0o644);
    write(&tight, &t, 0o600);

    let (logs, _g) = capture_logs();
    let p = provider_from_options(&opts(&tight), &m.base(), http())
        .await
        .unwrap();
    p.token().await.unwrap();
    assert!(
        !logs.text().contains("readable by group or others"),
        "{}",
        logs.text()
    );

    let p = provider_from_options(&opts(&loose), &m.base(), http())
        .await
        .unwrap();
    p.token().await.unwrap();
    let text = logs.text();
    assert!(text.contains("readable by group or others"), "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("644"), "{text}");
    assert!(!text.contains(&t), "token in the log");
}

#[tokio::test]
async fn unauthorized_rereads_then_refreshes() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let a = mint(0, 3600, "a");
    write(&path, &a, 0o600);
    let p = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), a);
    // 401 and the file has nothing new: the platform refresh gives a new token.
    p.on_unauthorized(&a).await;
    let r = p.token().await.unwrap();
    assert_ne!(r, a);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(m.refresh_bearers.lock().unwrap()[0], a);
    // A stale 401 report (for a token no longer current) changes nothing.
    p.on_unauthorized(&a).await;
    assert_eq!(p.token().await.unwrap(), r);
    // Same file contents (new mtime): the refreshed token stays.
    write(&path, &a, 0o600);
    assert_eq!(p.token().await.unwrap(), r);
    // 401 after the file got a new token: the file's token, no refresh.
    let b = mint(0, 3600, "b-new");
    write(&path, &b, 0o600);
    p.on_unauthorized(&r).await;
    assert_eq!(p.token().await.unwrap(), b);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn missing_empty_and_malformed_files_fail_clearly() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");

    let e = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .err()
        .expect("an error");
    let msg = e.to_string();
    assert!(matches!(e, altinnfs::altinn::AltinnError::Auth(_)));
    assert!(
        msg.contains("cannot read") && msg.contains("token-file"),
        "{msg}"
    );

    write(&path, "\n  \n", 0o600);
    let msg = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("empty"), "{msg}");

    let secret = "s3cr3t-opaque-token-value-not-a-jwt";
    write(&path, secret, 0o600);
    let msg = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("not a JWT"), "{msg}");
    assert!(!msg.contains(secret), "{msg}");

    // Expired: the refresh endpoint would refuse it, so it is not even asked.
    let old = mint(-7200, -3600, "old");
    write(&path, &old, 0o600);
    let msg = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("expired"), "{msg}");
    assert!(!msg.contains(&old), "{msg}");
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_valid_token_survives_a_file_briefly_gone() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let a = mint(0, 3600, "a");
    write(&path, &a, 0o600);
    let p = provider_from_options(&opts(&path), &m.base(), http())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(p.token().await.unwrap(), a);
    // A half-written (malformed) file does not replace a good token either.
    write(&path, "eyJhbGciOi", 0o600);
    assert_eq!(p.token().await.unwrap(), a);
}
