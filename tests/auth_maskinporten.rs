//! Maskinporten: signed grant (verified by the mock with the public key), token endpoint,
//! exchange (`?test=true` for tt02), renewal.
mod auth_support;
use altinnfs::altinn::auth::provider_from_options;
use altinnfs::altinn::maskinporten::{self, SigningKey};
use altinnfs::cli::{Env, MountOptions};
use auth_support::*;
use std::sync::atomic::Ordering;

fn mp_opts(m: &Mock, key: &str, env: Env) -> MountOptions {
    MountOptions {
        env: Some(env),
        maskinporten_client_id: Some("test-client".into()),
        maskinporten_key: Some(data(key)),
        scope: Some("altinn:serviceowner/instances.read".into()),
        maskinporten_url: Some(format!("{}/token", m.base())),
        ..Default::default()
    }
}

#[tokio::test]
async fn pem_key_grant_and_exchange_in_prod_mode() {
    let m = start().await;
    let p = provider_from_options(
        &mp_opts(&m, "mp_test_key.pem", Env::Prod),
        &m.base(),
        http(),
    )
    .await
    .unwrap();
    let t = p.token().await.unwrap();
    assert_eq!(m.grant_errors.lock().unwrap().as_slice(), &[] as &[String]);
    assert_eq!(m.grants.load(Ordering::SeqCst), 1);
    assert_eq!(m.exchanges.load(Ordering::SeqCst), 1);
    assert_eq!(m.exchange_test.lock().unwrap().as_slice(), &[String::new()]);
    assert_eq!(
        m.issued.lock().unwrap().as_slice(),
        std::slice::from_ref(&t),
        "quotes stripped"
    );
    // Fresh for an hour: no new grant.
    assert_eq!(p.token().await.unwrap(), t);
    assert_eq!(m.grants.load(Ordering::SeqCst), 1);
    // 401: a new grant and exchange, not a platform refresh.
    p.on_unauthorized(&t).await;
    let t2 = p.token().await.unwrap();
    assert_ne!(t2, t);
    assert_eq!(m.grants.load(Ordering::SeqCst), 2);
    assert_eq!(m.exchanges.load(Ordering::SeqCst), 2);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn jwk_key_with_kid_in_tt02_mode() {
    let m = start().await;
    *m.expect_kid.lock().unwrap() = Some("altinnfs-test-kid".into());
    let p = provider_from_options(
        &mp_opts(&m, "mp_test_key.jwk.json", Env::Tt02),
        &m.base(),
        http(),
    )
    .await
    .unwrap();
    p.token().await.unwrap();
    assert_eq!(m.grant_errors.lock().unwrap().as_slice(), &[] as &[String]);
    assert_eq!(
        m.exchange_test.lock().unwrap().as_slice(),
        &["true".to_string()]
    );
}

#[tokio::test]
async fn pkcs1_pem_works_too() {
    let m = start().await;
    let p = provider_from_options(
        &mp_opts(&m, "mp_test_key_rsa.pem", Env::Tt02),
        &m.base(),
        http(),
    )
    .await
    .unwrap();
    p.token().await.unwrap();
    assert_eq!(m.grant_errors.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn exchanged_token_is_renewed_with_a_new_grant_before_expiry() {
    let m = start().await;
    // Exchanged tokens: lifetime 5 s, margin 1 s.
    m.issue_iat.store(-2, Ordering::SeqCst);
    m.issue_exp.store(3, Ordering::SeqCst);
    let p = provider_from_options(
        &mp_opts(&m, "mp_test_key.pem", Env::Prod),
        &m.base(),
        http(),
    )
    .await
    .unwrap();
    let t = p.token().await.unwrap();
    m.issue_iat.store(0, Ordering::SeqCst);
    m.issue_exp.store(3600, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let t2 = p.token().await.unwrap();
    assert_ne!(t, t2);
    assert_eq!(m.grants.load(Ordering::SeqCst), 2);
    assert_eq!(m.exchanges.load(Ordering::SeqCst), 2);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refused_grant_is_a_clear_error() {
    let m = start().await;
    *m.expect_scope.lock().unwrap() = "altinn:serviceowner/instances.write".into();
    let msg = provider_from_options(
        &mp_opts(&m, "mp_test_key.pem", Env::Prod),
        &m.base(),
        http(),
    )
    .await
    .err()
    .expect("an error")
    .to_string();
    assert!(
        msg.contains("Maskinporten") && msg.contains("invalid_grant"),
        "{msg}"
    );
    assert!(msg.contains("400"), "{msg}");
}

#[tokio::test]
async fn missing_pieces_are_named() {
    let m = start().await;
    let mut o = mp_opts(&m, "mp_test_key.pem", Env::Prod);
    o.scope = None;
    let msg = provider_from_options(&o, &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("--scope"), "{msg}");
    let mut o = mp_opts(&m, "nope.pem", Env::Prod);
    o.maskinporten_key = Some(data("nope.pem"));
    let msg = provider_from_options(&o, &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("cannot read --maskinporten-key"), "{msg}");
    let msg = provider_from_options(
        &mp_opts(&m, "mp_test_pub.pem", Env::Prod),
        &m.base(),
        http(),
    )
    .await
    .err()
    .expect("an error")
    .to_string();
    assert!(
        msg.contains("public key") && msg.contains("private key"),
        "{msg}"
    );
}

#[test]
fn default_endpoints_follow_the_environment() {
    let key = || SigningKey::from_file(&data("mp_test_key.pem")).unwrap();
    let c = maskinporten::MaskinportenConfig::new("c".into(), "s".into(), key(), None, true);
    assert_eq!(c.token_url, "https://test.maskinporten.no/token");
    assert_eq!(c.audience, "https://test.maskinporten.no/");
    let c = maskinporten::MaskinportenConfig::new("c".into(), "s".into(), key(), None, false);
    assert_eq!(c.token_url, "https://maskinporten.no/token");
    assert_eq!(c.audience, "https://maskinporten.no/");
    assert!(!format!("{c:?}").contains("BEGIN"));
    let mp = maskinporten::Maskinporten::new(c, http(), "https://platform.tt02.altinn.no/", true);
    assert_eq!(
        mp.exchange_url(),
        "https://platform.tt02.altinn.no/authentication/api/v1/exchange/maskinporten?test=true"
    );
    assert!(altinnfs::altinn::auth::is_test_env(
        None,
        "https://platform.tt02.altinn.no"
    ));
    assert!(!altinnfs::altinn::auth::is_test_env(
        None,
        "https://platform.altinn.no"
    ));
}
