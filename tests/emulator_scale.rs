//! Scale and hostile mode.

use altinnfs::emulator::{Emulator, EmulatorConfig};
use serde_json::Value;
use std::time::{Duration, Instant};

/// 10,000 instances: generation takes ~20 s in a debug build, so run it on demand
/// (`cargo test --test emulator_scale -- --ignored`); the 2,500 version runs always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ten_thousand_instances_load_and_query_fast() {
    scale(10_000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_load_and_query_fast() {
    scale(2_500).await
}

async fn scale(total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    cfg.sample_instances = total;
    let t0 = Instant::now();
    let emu = Emulator::start(cfg).await.unwrap();
    eprintln!("generate: {:?}", t0.elapsed());
    emu.shutdown().await;
    let t0 = Instant::now();
    let emu = Emulator::start(EmulatorConfig::new(dir.path().to_path_buf()))
        .await
        .unwrap();
    let load = t0.elapsed();
    eprintln!("load: {load:?}");
    assert!(load < Duration::from_secs(10), "{load:?}");
    let c = reqwest::Client::new();
    let tok = emu.org_token("ttd");
    let t0 = Instant::now();
    let mut url = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&size=1000",
        emu.base_url()
    );
    let mut n = 0;
    loop {
        let v: Value = c
            .get(&url)
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        n += v["instances"].as_array().unwrap().len();
        match v["next"].as_str() {
            Some(u) => url = u.to_string(),
            None => break,
        }
    }
    eprintln!("page through: {:?}", t0.elapsed());
    assert_eq!(n, total);
}

#[tokio::test]
async fn hostile_mode_serves_bad_names_and_looping_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::new(dir.path().to_path_buf());
    cfg.sample = true;
    cfg.sample_instances = 5;
    cfg.hostile = true;
    let emu = Emulator::start(cfg).await.unwrap();
    let c = reqwest::Client::new();
    let tok = emu.org_token("ttd");
    let url = format!(
        "{}/storage/api/v1/instances?appId=ttd/altinnfs-demo&size=5",
        emu.base_url()
    );
    let v: Value = c
        .get(&url)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<String> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["data"].as_array().unwrap().clone())
        .filter_map(|e| e["filename"].as_str().map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n.contains('/')));
    assert!(names.iter().any(|n| n.contains('\0')));
    assert!(names.iter().any(|n| n.len() > 10_000));
    let next = v["next"].as_str().unwrap().to_string();
    let v2: Value = c
        .get(&next)
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["count"], 0);
    assert_eq!(v2["next"].as_str(), Some(next.as_str()), "next loops");
    // A blob of an element with a hostile name still downloads with a valid header.
    let i = &v["instances"].as_array().unwrap()[0];
    for e in i["data"].as_array().unwrap() {
        let u = format!(
            "{}/storage/api/v1/instances/{}/data/{}",
            emu.base_url(),
            i["id"].as_str().unwrap(),
            e["id"].as_str().unwrap()
        );
        let r = c.get(&u).bearer_auth(&tok).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
