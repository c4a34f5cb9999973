//! Refresh through the platform before `exp`, single-flight, and the errors when it cannot be.
mod auth_support;
use altinnfs::altinn::auth::{AltinnTokenProvider, TokenProvider};
use auth_support::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn no_refresh_far_from_expiry() {
    let m = start().await;
    let t = mint(0, 3600, "far");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(p.token().await.unwrap(), t);
    }
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refreshes_within_the_margin_before_exp() {
    let m = start().await;
    // Lifetime 630 s, margin min(300, 210) = 210 s; 30 s left: refresh now, while still valid.
    let t = mint(-600, 30, "near");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    let r = p.token().await.unwrap();
    assert_ne!(r, t);
    assert_eq!(
        m.issued.lock().unwrap().as_slice(),
        std::slice::from_ref(&r),
        "quotes stripped"
    );
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(m.refresh_bearers.lock().unwrap().as_slice(), &[t]);
    assert_eq!(p.refresh_count().await, 1);
    // The new token is good for an hour: no more refreshes.
    assert_eq!(p.token().await.unwrap(), r);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_callers_cause_one_refresh() {
    let m = start().await;
    // Lifetime 30 s, margin 10 s: fresh now, due for refresh in ~4 s, and still valid for
    // ~10 s after that, so a slow machine (seconds are whole in the JWT) cannot let it expire.
    let t = mint(-16, 14, "short");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), t);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let p: Arc<dyn TokenProvider> = p;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.token().await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    let issued = m.issued.lock().unwrap()[0].clone();
    assert!(got.iter().all(|g| *g == issued));
}

#[tokio::test]
async fn unauthorized_env_token_is_refreshed_once() {
    let m = start().await;
    let t = mint(0, 3600, "env");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    p.on_unauthorized(&t).await;
    let r = p.token().await.unwrap();
    assert_ne!(r, t);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(p.token().await.unwrap(), r);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_token_that_cannot_be_refreshed_is_an_auth_error() {
    let m = start().await;
    m.refresh_fails.store(true, Ordering::SeqCst);
    let t = mint(0, 3600, "env");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    p.on_unauthorized(&t).await;
    let e = p.token().await.unwrap_err();
    assert!(matches!(e, altinnfs::altinn::AltinnError::Auth(_)));
    let msg = e.to_string();
    assert!(msg.contains("401"), "{msg}");
    assert!(!msg.contains(&t), "{msg}");
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
    // Within the retry pause no new refresh is attempted.
    assert!(p.token().await.is_err());
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failing_refresh_keeps_serving_a_still_valid_token() {
    let m = start().await;
    m.refresh_fails.store(true, Ordering::SeqCst);
    let t = mint(-600, 30, "near");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), t);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn token_that_expires_unrefreshed_becomes_an_error() {
    let m = start().await;
    m.refresh_fails.store(true, Ordering::SeqCst);
    let t = mint(-2, 2, "dying");
    let p = AltinnTokenProvider::from_token(t.clone(), &m.base(), http())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let msg = p.token().await.unwrap_err().to_string();
    assert!(msg.contains("expired"), "{msg}");
    assert!(!msg.contains(&t), "{msg}");
}

#[tokio::test]
async fn malformed_tokens_fail_clearly() {
    let m = start().await;
    for bad in ["opaque-secret-value", "a.b", "abc.def.ghi"] {
        let msg = AltinnTokenProvider::from_token(bad.into(), &m.base(), http())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("authentication failed: the token from ALTINN_TOKEN"),
            "{msg}"
        );
        assert!(msg.contains("not a JWT"), "{msg}");
        assert!(!msg.contains(bad), "{msg}");
    }
    // A JWT without exp.
    use base64::Engine;
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let no_exp = format!(
        "{}.{}.sig",
        e.encode(r#"{"alg":"none"}"#),
        e.encode(r#"{"sub":"x"}"#)
    );
    let msg = AltinnTokenProvider::from_token(no_exp.clone(), &m.base(), http())
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no numeric `exp`"), "{msg}");
    assert!(!msg.contains(&no_exp), "{msg}");
}
