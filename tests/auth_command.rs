//! `--token-command`: run via `sh -c`, again near expiry or after a 401.
mod auth_support;
use altinnfs::altinn::auth::provider_from_options;
use altinnfs::cli::MountOptions;
use auth_support::*;
use std::sync::atomic::Ordering;

fn runs(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn cmd_opts(dir: &std::path::Path) -> MountOptions {
    MountOptions {
        token_command: Some(format!(
            "echo run >> '{d}/runs'; cat '{d}/tok'",
            d = dir.display()
        )),
        ..Default::default()
    }
}

#[tokio::test]
async fn command_is_rerun_after_unauthorized() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = mint(0, 3600, "a");
    std::fs::write(dir.path().join("tok"), format!("{a}\n")).unwrap();
    let p = provider_from_options(&cmd_opts(dir.path()), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), a);
    assert_eq!(p.token().await.unwrap(), a);
    assert_eq!(runs(dir.path()), 1, "not re-run while the token is fresh");

    let b = mint(0, 3600, "b");
    std::fs::write(dir.path().join("tok"), &b).unwrap();
    p.on_unauthorized(&a).await;
    assert_eq!(p.token().await.unwrap(), b);
    assert_eq!(runs(dir.path()), 2);
    assert_eq!(p.token().await.unwrap(), b);
    assert_eq!(runs(dir.path()), 2);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn command_is_rerun_near_expiry() {
    let m = start().await;
    let dir = tempfile::tempdir().unwrap();
    // Lifetime 5 s, margin 1 s: due in 2 s.
    let a = mint(-2, 3, "a");
    std::fs::write(dir.path().join("tok"), &a).unwrap();
    let p = provider_from_options(&cmd_opts(dir.path()), &m.base(), http())
        .await
        .unwrap();
    assert_eq!(p.token().await.unwrap(), a);
    let b = mint(0, 3600, "b");
    std::fs::write(dir.path().join("tok"), &b).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(p.token().await.unwrap(), b);
    assert_eq!(runs(dir.path()), 2);
    assert_eq!(m.refreshes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failing_command_is_a_clear_error() {
    let m = start().await;
    let o = MountOptions {
        token_command: Some("echo 'no session, run login first' >&2; exit 3".into()),
        ..Default::default()
    };
    let msg = provider_from_options(&o, &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("--token-command"), "{msg}");
    assert!(msg.contains("no session, run login first"), "{msg}");
    assert!(msg.contains("3"), "{msg}");

    // A command that prints a token to stderr while failing: it is scrubbed.
    let t = mint(0, 3600, "leak");
    let o = MountOptions {
        token_command: Some(format!("echo 'got {t}' >&2; exit 1")),
        ..Default::default()
    };
    let msg = provider_from_options(&o, &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(!msg.contains(&t), "{msg}");

    let o = MountOptions {
        token_command: Some("true".into()),
        ..Default::default()
    };
    let msg = provider_from_options(&o, &m.base(), http())
        .await
        .err()
        .expect("an error")
        .to_string();
    assert!(msg.contains("printed nothing"), "{msg}");
}
