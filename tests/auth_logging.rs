//! Logging: a failing authentication never writes the token; `logging::init` writes a 0600
//! file.
mod auth_support;
use altinnfs::altinn::auth::{AltinnTokenProvider, TokenProvider};
use auth_support::*;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn failing_auth_logs_no_token() {
    let (logs, _g) = capture_logs();
    let m = start().await;
    m.refresh_fails.store(true, Ordering::SeqCst);
    let t = mint(-600, 30, "near");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    p.on_unauthorized(&t).await;
    let e = p.token().await.unwrap_err();
    tracing::error!("request failed: {e}");
    tracing::debug!(provider = ?p, "provider state");
    let text = logs.text();
    assert!(text.contains("token renewal failed"), "{text}");
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("redacted"), "{text}");
    assert!(!text.contains(&t), "token in the log:\n{text}");
    // Nor any part of it that would identify it (the signature).
    let sig = t.rsplit('.').next().unwrap();
    assert!(!text.contains(sig), "{text}");
}

#[test]
fn init_writes_an_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("altinnfs.log");
    altinnfs::logging::init(Some("auth_logging=debug,altinnfs=debug"), Some(&path)).unwrap();
    tracing::info!(url = %altinnfs::logging::redact_url("https://h/x?access_token=abc.def.ghi"), "hello");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("hello"), "{text}");
    assert!(text.contains("access_token=REDACTED"), "{text}");
    assert!(!text.contains("abc.def.ghi"), "{text}");
    // A second global subscriber is refused, not a panic.
    assert!(altinnfs::logging::init(None, None).is_err());
}
