//! `Retrying` over the real HTTP client and the emulator, with faults aimed by `FaultClient`:
//! a query page that fails the way Storage does under load is fetched again from its own
//! `next` link at half the size (the emulator honours it), and a POST whose answer is lost
//! leaves exactly one element. No kernel, no mount.

use altinnfs::altinn::auth::StaticToken;
use altinnfs::altinn::faults::{Fault, FaultClient, Op};
use altinnfs::altinn::http::{HttpClient, HttpConfig};
use altinnfs::altinn::model::Instance;
use altinnfs::altinn::NewElement;
use altinnfs::altinn::{AltinnClient, InstanceId, PagePolicy, RetryPolicy, Retrying, UploadBody};
use altinnfs::emulator::{Emulator, EmulatorConfig};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

const APP: &str = "ttd/altinnfs-demo";

async fn emulator(dir: &tempfile::TempDir) -> Emulator {
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    Emulator::start(cfg).await.expect("emulator starts")
}

/// The mount's stack: Retrying around (faults around) an HTTP client that sends once.
fn stack(emu: &Emulator, page_size: usize) -> Retrying<FaultClient<HttpClient>> {
    let cfg = HttpConfig::new(&emu.app_url(), &emu.base_url(), APP);
    let http = HttpClient::new(cfg, Arc::new(StaticToken(emu.org_token("ttd")))).unwrap();
    let policy = RetryPolicy {
        base: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    Retrying::new(
        FaultClient::new(http),
        policy,
        PagePolicy::with_size(page_size),
    )
}

fn sorted_ids(v: &[Instance]) -> Vec<String> {
    let mut ids: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_failing_mid_listing_is_fetched_again_at_half_size_from_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = stack(&emu, 40);
    let clean = c.query_instances(&vec![]).await.unwrap();
    let clean_pages = c.inner().calls(Op::QueryPage);
    assert_eq!(clean_pages, clean.len().div_ceil(40));

    let c = stack(&emu, 40);
    c.inner()
        .fail_call(Op::QueryPage, 3, Fault::storage_timeout());
    emu.reset_stats();
    let listed = c.query_instances(&vec![]).await.unwrap();
    let ids = sorted_ids(&listed);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an instance listed twice");
    assert_eq!(ids, sorted_ids(&clean), "a gap or an extra instance");
    // Never restarted: the failed page is retried (not counted by the emulator: it never
    // reached it), then pages of 20 until the size grows back.
    let queries = emu.stats().queries as usize;
    assert!(
        queries > clean_pages,
        "{queries} pages, as many as a clean listing"
    );
    assert!(
        queries < 2 * clean_pages,
        "{queries} pages: the listing started over"
    );
    assert_eq!(c.inner().calls(Op::QueryPage), queries + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_is_lost_leaves_exactly_one_element() {
    let dir = tempfile::tempdir().unwrap();
    let emu = emulator(&dir).await;
    let c = stack(&emu, 100);
    let inst = c
        .query_instances(&vec![])
        .await
        .unwrap()
        .into_iter()
        .find(|i| {
            i.is_active()
                && i.process
                    .as_ref()
                    .and_then(|p| p.current_task.as_ref())
                    .is_some()
                && !i.data.iter().any(|d| d.data_type == "attachment")
        })
        .expect("an active sample instance without attachments");
    let r = InstanceId::of(&inst).unwrap();
    c.inner().fail_next(Op::CreateData, Fault::lost_answer());
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(4096, b'x');
    let el = c
        .create_data(
            &r,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "once.pdf",
                content_type: "application/pdf",
            },
            UploadBody::Bytes(Bytes::from(pdf)),
        )
        .await
        .expect("found by the probe");
    assert_eq!(el.size, 4096);
    assert_eq!(c.inner().calls(Op::CreateData), 1, "sent again");
    let same_name = c
        .list_data_elements(&r)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.filename.as_deref() == Some("once.pdf"))
        .count();
    assert_eq!(same_name, 1);
}
