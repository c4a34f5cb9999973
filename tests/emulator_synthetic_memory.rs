//! A million synthetic instances: startup time and memory. Alone in its file (its own
//! process), so that the RSS it measures is its own.

use altinnfs::emulator::{Emulator, EmulatorConfig};
use reqwest::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

const MILLION: u64 = 1_000_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

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

/// Start an emulator of `n` synthetic instances and read two pages of 1000; the startup time,
/// the time of the first page, and the pages.
async fn start_and_page(
    dir: &std::path::Path,
    n: u64,
) -> (Emulator, Duration, Duration, Vec<Value>) {
    let t0 = Instant::now();
    let emu = start(dir, n).await;
    let startup = t0.elapsed();
    let c = Client::new();
    let tok = emu.org_token("ttd");
    let t0 = Instant::now();
    let page = get_json(
        &c,
        &query_url(&emu, "size=1000&order=asc:lastChanged"),
        &tok,
    )
    .await;
    let first_page = t0.elapsed();
    let page2 = get_json(&c, page["next"].as_str().unwrap(), &tok).await;
    (emu, startup, first_page, vec![page, page2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_instances_start_at_once_in_little_memory() {
    // The same work over 2,000 instances first: what a million adds on top is what grows with N.
    let small_dir = tempfile::tempdir().unwrap();
    let (small, _, _, _) = start_and_page(small_dir.path(), 2_000).await;
    small.shutdown().await;
    let rss_small = rss_kib();
    let dir = tempfile::tempdir().unwrap();
    let (emu, startup, first_page, pages) = start_and_page(dir.path(), MILLION).await;
    let grown = rss_kib().saturating_sub(rss_small);
    eprintln!(
        "1M synthetic: startup {startup:?}, first page of 1000 {first_page:?}, \
         RSS {} KiB (+{grown} KiB over 2,000 instances)",
        rss_kib()
    );
    assert!(startup < Duration::from_secs(2), "{startup:?}");
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
    let (page, page2) = (&pages[0], &pages[1]);
    assert_eq!(page["count"], 1000);
    assert_eq!(page2["count"], 1000);
    // Ascending lastChanged across the two pages, no instance twice.
    let all: Vec<&Value> = page["instances"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["instances"].as_array().unwrap())
        .collect();
    let stamps: Vec<chrono::DateTime<chrono::Utc>> = all
        .iter()
        .map(|i| i["lastChanged"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2000);
    // The last instance exists; one past the end does not.
    let (c, tok) = (Client::new(), emu.org_token("ttd"));
    let last = "510001/5e000000-0000-4000-8000-0000000f423f";
    let url = format!("{}/storage/api/v1/instances/{last}", emu.base_url());
    let v = get_json(&c, &url, &tok).await;
    assert_eq!(v["data"][0]["dataType"], "model");
    let past = format!(
        "{}/storage/api/v1/instances/510001/5e000000-0000-4000-8000-0000000f4240",
        emu.base_url()
    );
    let r = c.get(past).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 404);
    emu.shutdown().await;
}
