//! `ALTINN_TOKEN` and the order of sources. One test function: the environment is global.
mod auth_support;
use altinnfs::altinn::auth::{provider_from_options, ENV_TOKEN};
use altinnfs::cli::MountOptions;
use auth_support::*;
use std::sync::atomic::Ordering;

#[tokio::test]
async fn env_token_and_source_order() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();

    // Nothing given: a clear error naming the ways.
    std::env::remove_var(ENV_TOKEN);
    let msg = provider_from_options(&MountOptions::default(), &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(
        msg.contains("--token-file") && msg.contains(ENV_TOKEN),
        "{msg}"
    );

    let env = mint(0, 3600, "env");
    std::env::set_var(ENV_TOKEN, format!("{env}\n"));
    let p = provider_from_options(&MountOptions::default(), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), env);
    let direct =
        altinnfs::altinn::auth::AltinnTokenProvider::from_token(env.clone(), &m.base(), http())
            .await
            .unwrap();
    let dbg = format!("{direct:?}");
    assert!(!dbg.contains(&env) && dbg.contains("redacted"), "{dbg}");

    // ALTINN_TOKEN wins over --token-command.
    let cmd = MountOptions {
        token_command: Some("echo not-used; exit 1".into()),
        ..Default::default()
    };
    let p = provider_from_options(&cmd, &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), env);

    // --token-file wins over ALTINN_TOKEN.
    let file = dir.path().join("t");
    let ft = mint(0, 3600, "file");
    std::fs::write(&file, &ft).unwrap();
    let o = MountOptions {
        token_file: Some(file),
        ..Default::default()
    };
    let p = provider_from_options(&o, &m.base(), http()).await.unwrap();
    assert_eq!(p.token().await.unwrap(), ft);

    // An expired ALTINN_TOKEN cannot be refreshed: Auth error without the token.
    let old = mint(-7200, -60, "old");
    std::env::set_var(ENV_TOKEN, &old);
    let e = provider_from_options(&MountOptions::default(), &m.base(), http())
        .await
        .err()
        .expect("an error");
    assert!(matches!(e, altinnfs::altinn::AltinnError::Auth(_)));
    let msg = e.to_string();
    assert!(msg.contains("expired") && msg.contains(ENV_TOKEN), "{msg}");
    assert!(!msg.contains(&old), "{msg}");
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);

    // Malformed.
    std::env::set_var(ENV_TOKEN, "hunter2hunter2");
    let msg = provider_from_options(&MountOptions::default(), &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(
        msg.contains("not a JWT") && !msg.contains("hunter2"),
        "{msg}"
    );
    std::env::remove_var(ENV_TOKEN);
}
