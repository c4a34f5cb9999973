//! `--synthetic-instances`: a million instances derived on demand, in bounded memory, and
//! materialised into the data dir when written.

use altinnfs::emulator::{Emulator, EmulatorConfig};
use reqwest::Client;
use serde_json::Value;

const MILLION: u64 = 1_000_000;

async fn start(dir: &std::path::Path, n: u64) -> Emulator {
    let mut cfg = EmulatorConfig::new(dir.to_path_buf());
    cfg.synthetic_instances = n;
    Emulator::start(cfg).await.unwrap()
}

async fn get_json(c: &Client, url: &str, tok: &str) -> Value {
    let r = c.get(url).bearer_auth(tok).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

fn query_url(emu: &Emulator, extra: &str) -> String {
    format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&{extra}",
        emu.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_of_a_big_app_is_a_filtered_query() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(dir.path(), 200_000).await;
    let c = Client::new();
    let tok = emu.org_token("ttd");
    let extra = "process.isComplete=true&excludeConfirmedBy=ttd&order=asc:lastChanged&size=500";
    let v = get_json(&c, &query_url(&emu, extra), &tok).await;
    let page = v["instances"].as_array().unwrap();
    assert_eq!(page.len(), 500);
    for i in page {
        assert!(i["process"]["ended"].is_string(), "{i}");
        let none = Vec::new();
        let confirmations = i["completeConfirmations"].as_array().unwrap_or(&none);
        assert!(confirmations.is_empty(), "{i}");
    }
    // One party's instances (as a user would list them).
    let party = get_json(
        &c,
        &query_url(&emu, "instanceOwner.partyId=512345&size=10"),
        &emu.user_token(12345),
    )
    .await;
    for i in party["instances"].as_array().unwrap() {
        assert_eq!(i["instanceOwner"]["partyId"], "512345");
    }
    assert_eq!(party["count"], 10);
    // The App's `active` list of that party: every open instance (index ≡ 2 mod 9, not ended).
    let url = format!("{}/instances/512345/active", emu.app_url());
    let active = get_json(&c, &url, &emu.user_token(12345)).await;
    let want = (0..200_000u64)
        .filter(|i| i % 9 == 2 && i % 10 != 9)
        .count();
    assert_eq!(active.as_array().unwrap().len(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_instance_is_materialised_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(dir.path(), MILLION).await;
    let c = Client::new();
    let org = emu.org_token("ttd");
    // Instance 5: party 500600, in Task_1, one model and one attachment.
    let id = "500600/5e000000-0000-4000-8000-000000000005";
    let before = get_json(
        &c,
        &format!("{}/storage/api/v1/instances/{id}", emu.base_url()),
        &org,
    )
    .await;
    assert_eq!(before["data"].as_array().unwrap().len(), 2);
    let r = c
        .post(format!("{}/instances/{id}/data/attachment", emu.app_url()))
        .bearer_auth(emu.party_token("500600"))
        .header("Content-Type", "application/pdf")
        .header("Content-Disposition", "attachment; filename=\"ny.pdf\"")
        .body(b"%PDF-1.4\nny\n%%EOF\n".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let since = before["lastChanged"].as_str().unwrap().to_string();
    emu.shutdown().await;

    let emu = start(dir.path(), MILLION).await;
    let feed = get_json(
        &c,
        &query_url(&emu, "lastChanged=gt:2025-01-01T00:00:00Z&size=10"),
        &org,
    )
    .await;
    let ids: Vec<&str> = feed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [id],
        "listed once, from the data dir (changed after {since})"
    );
    let after = &feed["instances"][0];
    let names: Vec<&str> = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["filename"].as_str())
        .collect();
    assert_eq!(names, ["vedlegg-5.pdf", "ny.pdf"]);
    // The derived elements' bytes were written too.
    for e in after["data"].as_array().unwrap() {
        let url = format!(
            "{}/storage/api/v1/instances/{id}/data/{}",
            emu.base_url(),
            e["id"].as_str().unwrap()
        );
        let r = c.get(url).bearer_auth(&org).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.bytes().await.unwrap().len() as i64,
            e["size"].as_i64().unwrap()
        );
    }
    assert!(
        dir.path()
            .join("blobs/ttd/altinnfs-demo/5e000000-0000-4000-8000-000000000005/data")
            .read_dir()
            .unwrap()
            .count()
            == 3
    );
    emu.shutdown().await;
}
