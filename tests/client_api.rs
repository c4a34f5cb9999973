//! The client and the emulator agree with altinn-api.md: every status-code rule of the App
//! and Storage APIs, driven through `HttpClient` over real HTTP on loopback.

use altinnfs::altinn::auth::StaticToken;
use altinnfs::altinn::http::{HttpClient, HttpConfig};
use altinnfs::altinn::model::{DataElement, Instance};
use altinnfs::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
use altinnfs::altinn::{AltinnClient, AltinnError, InstanceId, UploadBody};
use altinnfs::altinn::{NewElement, Replacement};
use altinnfs::emulator::{Emulator, EmulatorConfig, FaultConfig};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const APP: &str = "ttd/altinnfs-demo";

async fn emulator(dir: &tempfile::TempDir) -> Emulator {
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    Emulator::start(cfg).await.expect("emulator starts")
}

/// A bare client: each request sent once, every answer seen as it came.
fn client(emu: &Emulator, token: String) -> HttpClient {
    let cfg = HttpConfig::new(&emu.app_url(), &emu.base_url(), APP);
    HttpClient::new(cfg, Arc::new(StaticToken(token))).unwrap()
}

/// A client inside the one retry policy (quick backoff), as a mount has it.
fn retrying(emu: &Emulator, token: String) -> Retrying<HttpClient> {
    let policy = RetryPolicy {
        base: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(3),
        ..RetryPolicy::default()
    };
    Retrying::new(client(emu, token), policy, PagePolicy::default())
}

fn status(e: &AltinnError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("expected an HTTP status, got {e}"))
}

async fn all_instances(c: &HttpClient) -> Vec<Instance> {
    c.query_instances(&vec![]).await.expect("query")
}

/// An active instance (process at Task_1, not archived) with no locked elements.
async fn writable_instance(c: &HttpClient) -> Instance {
    all_instances(c)
        .await
        .into_iter()
        .find(|i| {
            i.is_active()
                && i.process
                    .as_ref()
                    .and_then(|p| p.current_task.as_ref())
                    .is_some()
                && i.data.iter().all(|d| !d.locked)
                && i.data
                    .iter()
                    .filter(|d| d.data_type == "attachment")
                    .count()
                    == 0
        })
        .expect("an active sample instance without attachments")
}

async fn download_all(c: &HttpClient, inst: &InstanceId, id: &str) -> Vec<u8> {
    let mut d = c
        .download(inst, &id.parse().unwrap())
        .await
        .expect("download");
    let mut out = Vec::new();
    while let Some(chunk) = d.stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

fn pdf(n: usize) -> Bytes {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.resize(n, b'x');
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_follows_next_across_260_instances() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    emu.reset_stats();
    let all = all_instances(&c).await;
    assert!(
        all.len() >= 250,
        "sample has 250+ instances, got {}",
        all.len()
    );
    let mut ids: Vec<_> = all.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no instance twice across pages");
    let pages = emu.stats().queries;
    assert_eq!(
        pages as usize,
        all.len().div_ceil(100).max(1) + usize::from(all.len() % 100 == 0)
    );
    // Each page but the last is full; `next` only on full pages.
    let first = c.query_page(&vec![], None).await.unwrap();
    assert_eq!(first.count, 100);
    assert!(first.next.is_some());
    // Instances come with their data elements filled.
    assert!(all.iter().any(|i| !i.data.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let all = all_instances(&c).await;
    let party = all[0].party_id();
    let mine = c
        .query_instances(&vec![("instanceOwner.partyId".into(), party.clone())])
        .await
        .unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|i| i.party_id() == party));
    let future = c
        .query_instances(&vec![(
            "lastChanged".into(),
            "gt:2100-01-01T00:00:00Z".into(),
        )])
        .await
        .unwrap();
    assert!(future.is_empty());
    let bad = c
        .query_page(&vec![("lastChanged".into(), "soon".into())], None)
        .await
        .unwrap_err();
    assert_eq!(status(&bad), 400);
    // Confirming an instance removes it from an excludeConfirmedBy listing.
    let inst = InstanceId::of(&all[0]).unwrap();
    let before = c
        .query_instances(&vec![("excludeConfirmedBy".into(), "ttd".into())])
        .await
        .unwrap();
    c.complete_instance(&inst).await.unwrap();
    let after = c
        .query_instances(&vec![("excludeConfirmedBy".into(), "ttd".into())])
        .await
        .unwrap();
    assert_eq!(after.len() + 1, before.len());
    assert!(after.iter().all(|i| inst.guid != i.guid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let org = client(&emu, emu.org_token("ttd"));
    let all = all_instances(&org).await;
    let inst = InstanceId::of(&all[0]).unwrap();
    // 401 without a valid token (App and Storage).
    let anon = client(&emu, "not-a-token".into());
    assert_eq!(status(&anon.get_instance(&inst).await.unwrap_err()), 401);
    assert_eq!(
        status(&anon.query_page(&vec![], None).await.unwrap_err()),
        401
    );
    assert_eq!(
        status(
            &anon
                .create_data(
                    &inst,
                    NewElement {
                        data_type: &"other".parse().unwrap(),
                        filename: "a.txt",
                        content_type: "text/plain"
                    },
                    UploadBody::Bytes(Bytes::from_static(b"x"))
                )
                .await
                .unwrap_err()
        ),
        401
    );
    // 403 for a party outside the token's parties.
    let other_party = all
        .iter()
        .find(|i| i.party_id() != all[0].party_id())
        .map(|i| i.party_id())
        .unwrap();
    let user = client(&emu, emu.party_token(&other_party));
    assert_eq!(status(&user.get_instance(&inst).await.unwrap_err()), 403);
    assert_eq!(
        status(
            &user
                .create_data(
                    &inst,
                    NewElement {
                        data_type: &"other".parse().unwrap(),
                        filename: "a.txt",
                        content_type: "text/plain"
                    },
                    UploadBody::Bytes(Bytes::from_static(b"x"))
                )
                .await
                .unwrap_err()
        ),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_unknown_data_type() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let inst = writable_instance(&c).await;
    let r = InstanceId::of(&inst).unwrap();
    let missing = InstanceId::new(
        r.party,
        "00000000-0000-4000-8000-00000000dead".parse().unwrap(),
    );
    let e = c.get_instance(&missing).await.unwrap_err();
    assert!(
        matches!(status(&e), 404 | 403),
        "Storage answers 404/403, got {e}"
    );
    let e = c
        .create_data(
            &missing,
            NewElement {
                data_type: &"other".parse().unwrap(),
                filename: "a.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"nosuchtype".parse().unwrap(),
                filename: "a.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(e.to_string().contains("Data Type Not Found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_rules_and_nothing_changes_on_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let inst = writable_instance(&c).await;
    let r = InstanceId::of(&inst).unwrap();
    let before = c.list_data_elements(&r).await.unwrap();

    // Disallowed content type.
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "notes.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"hello")),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert_eq!(e.issue_codes(), vec!["ContentTypeNotAllowed"]);
    // Header that disagrees with the extension.
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "a.pdf",
                content_type: "image/png",
            },
            UploadBody::Bytes(pdf(100)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.issue_codes(), vec!["InvalidFileNameFormat"]);
    // No extension.
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"other".parse().unwrap(),
                filename: "README",
                content_type: "application/octet-stream",
            },
            UploadBody::Bytes(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    // Zero bytes.
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"other".parse().unwrap(),
                filename: "empty.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::new()),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(e.to_string().contains("zero bytes"), "{e}");
    // Too large: maxSize 25 MiB on `attachment`.
    let big = Bytes::from(vec![b'x'; 25 * 1024 * 1024 + 1]);
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "big.pdf",
                content_type: "application/pdf",
            },
            UploadBody::Bytes(big),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    assert_eq!(e.issue_codes(), vec!["DataElementTooLarge"]);
    // Form data must be XML or JSON.
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"model".parse().unwrap(),
                filename: "model.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"x")),
        )
        .await
        .unwrap_err();
    assert!(matches!(status(&e), 415 | 409), "{e}");

    // None of these changed anything.
    let after = c.list_data_elements(&r).await.unwrap();
    assert_eq!(before, after);

    // An allowed upload is stored with the right name, type and bytes.
    let body = pdf(5000);
    let el: DataElement = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "Søknad 2026.pdf",
                content_type: "application/pdf",
            },
            UploadBody::Bytes(body.clone()),
        )
        .await
        .unwrap();
    assert_eq!(el.filename.as_deref(), Some("Søknad 2026.pdf"));
    assert_eq!(el.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(el.size, 5000);
    assert_eq!(download_all(&c, &r, &el.id).await, body.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_count_locked_and_main_form() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let inst = writable_instance(&c).await;
    let r = InstanceId::of(&inst).unwrap();
    // maxCount 5 on `attachment` → the 6th is 409.
    for n in 0..5 {
        let name = format!("a{n}.pdf");
        let new = NewElement {
            data_type: &"attachment".parse().unwrap(),
            filename: &name,
            content_type: "application/pdf",
        };
        c.create_data(&r, new, UploadBody::Bytes(pdf(20)))
            .await
            .unwrap();
    }
    let e = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "a5.pdf",
                content_type: "application/pdf",
            },
            UploadBody::Bytes(pdf(20)),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 409);
    assert!(e.to_string().contains("Max Count"), "{e}");
    // Main form delete → 400.
    let form = inst
        .data
        .iter()
        .find(|d| d.data_type == "model")
        .expect("form element");
    let e = c
        .delete_data(&r, &form.id.parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    // A locked element refuses PUT with 409.
    let all = all_instances(&c).await;
    let (li, locked) = all
        .iter()
        .find_map(|i| {
            i.data
                .iter()
                .find(|d| d.locked)
                .map(|d| (InstanceId::of(i).unwrap(), d.clone()))
        })
        .expect("sample has a locked element");
    let e = c
        .replace_data(
            &li,
            &locked.id.parse().unwrap(),
            Replacement {
                filename: locked.filename.as_deref().unwrap_or("x.xml"),
                content_type: locked.content_type.as_deref().unwrap_or("application/xml"),
            },
            UploadBody::Bytes(Bytes::from_static(b"<x/>")),
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 409);
    // An archived instance refuses new data with 409.
    if let Some(arch) = all.iter().find(|i| !i.is_active()) {
        let e = c
            .create_data(
                &InstanceId::of(arch).unwrap(),
                NewElement {
                    data_type: &"other".parse().unwrap(),
                    filename: "a.txt",
                    content_type: "text/plain",
                },
                UploadBody::Bytes(Bytes::from_static(b"x")),
            )
            .await
            .unwrap_err();
        assert_eq!(status(&e), 409, "{e}");
    } else {
        panic!("sample has archived instances");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_and_delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let inst = writable_instance(&c).await;
    let r = InstanceId::of(&inst).unwrap();
    let el = c
        .create_data(
            &r,
            NewElement {
                data_type: &"other".parse().unwrap(),
                filename: "notes.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"one")),
        )
        .await
        .unwrap();
    let el2 = c
        .replace_data(
            &r,
            &el.id.parse().unwrap(),
            Replacement {
                filename: "notes.txt",
                content_type: "text/plain",
            },
            UploadBody::Bytes(Bytes::from_static(b"two two")),
        )
        .await
        .unwrap();
    assert_eq!(el2.id, el.id);
    assert_eq!(el2.size, 7);
    assert_eq!(download_all(&c, &r, &el.id).await, b"two two");
    c.delete_data(&r, &el.id.parse().unwrap()).await.unwrap();
    assert!(c
        .list_data_elements(&r)
        .await
        .unwrap()
        .iter()
        .all(|d| d.id != el.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (guid, id, count) = {
        let emu = emulator(&dir).await;
        let c = client(&emu, emu.org_token("ttd"));
        let inst = writable_instance(&c).await;
        let r = InstanceId::of(&inst).unwrap();
        let el = c
            .create_data(
                &r,
                NewElement {
                    data_type: &"other".parse().unwrap(),
                    filename: "keep.txt",
                    content_type: "text/plain",
                },
                UploadBody::Bytes(Bytes::from_static(b"kept bytes")),
            )
            .await
            .unwrap();
        let count = all_instances(&c).await.len();
        emu.shutdown().await;
        (r, el.id, count)
    };
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true; // must not re-seed a non-empty data dir
    let emu = Emulator::start(cfg).await.unwrap();
    let c = client(&emu, emu.org_token("ttd"));
    assert_eq!(all_instances(&c).await.len(), count);
    assert_eq!(download_all(&c, &guid, &id).await, b"kept bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_for_get() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let bare = client(&emu, emu.org_token("ttd"));
    let inst = InstanceId::of(&all_instances(&bare).await[0]).unwrap();
    let c = retrying(&emu, emu.org_token("ttd"));
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        retry_after_secs: 1,
        ..Default::default()
    });
    let e = c.get_instance(&inst).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    emu.set_faults(FaultConfig {
        error_rate: 0.5,
        retry_after_secs: 0,
        ..Default::default()
    });
    // With half the requests failing, 5 attempts get through nearly always; do several.
    let mut ok = 0;
    for _ in 0..10 {
        if c.get_instance(&inst).await.is_ok() {
            ok += 1;
        }
    }
    assert!(
        ok >= 8,
        "retries should hide most transient faults, {ok}/10 ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_create_and_calculate() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = client(&emu, emu.org_token("ttd"));
    let fresh = c
        .stateless_create(&"model".parse().unwrap(), None, "application/json")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fresh).expect("JSON model");
    assert!(v.is_object());
    let calc = c
        .stateless_calculate(
            &"model".parse().unwrap(),
            None,
            "application/xml",
            Bytes::from_static(b"<model><a>2</a><b>3</b></model>"),
            "application/xml",
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&calc);
    assert!(text.contains("5"), "calculation applied: {text}");
    let e = c
        .stateless_calculate(
            &"model".parse().unwrap(),
            None,
            "application/xml",
            Bytes::from_static(b"<model><a>2</"),
            "application/xml",
        )
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    cfg.sample_instances = 10;
    cfg.token_lifetime = Duration::from_secs(1);
    let emu = Emulator::start(cfg).await.unwrap();
    let c = client(&emu, emu.org_token("ttd"));
    let inst = InstanceId::of(&all_instances(&c).await[0]).unwrap();
    c.get_instance(&inst).await.expect("valid while fresh");
    // Past exp plus the platform's 10 s clock skew.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(status(&c.get_instance(&inst).await.unwrap_err()), 401);
    assert_eq!(status(&c.query_page(&vec![], None).await.unwrap_err()), 401);
}
