//! `.inbox/` and `.done/` through a real mount (SPEC §7.4): submissions made as someone else
//! arrive within one poll interval, copy byte-identical, are read-only, and `mv` into
//! `.done/` confirms them on the server.

mod mount_support;

use altinnfs::altinn::{AltinnClient, InstanceId};
use altinnfs::emulator::FaultConfig;
use mount_support::*;
use reqwest::Method;
use std::time::{Duration, Instant};

fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// `ls -U` (the directory's own order).
fn ls(m: &Mount, rel: &str) -> Vec<String> {
    sh_ok(&format!("ls -U '{}'", m.p(rel).display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn ids(inst: &serde_json::Value) -> (String, String) {
    let id = inst["id"].as_str().expect("instance id");
    let (p, g) = id.split_once('/').expect("party/guid");
    (p.to_string(), g.to_string())
}

const ONE_INTERVAL: Duration = Duration::from_secs(4);

fn submit(emu: &TestEmulator, party: &str) -> (String, serde_json::Value) {
    let inst = emu.act(
        Method::POST,
        &format!("submit?party={party}&attachments=1"),
        vec![],
    );
    (ids(&inst).1, inst)
}

fn confirmed_by_org(emu: &TestEmulator, party: &str, guid: &str) -> bool {
    let inst = emu
        .rt
        .block_on(
            emu.client()
                .get_instance(&InstanceId::parse(format!("{}/{}", party, guid)).unwrap()),
        )
        .unwrap();
    inst.complete_confirmations
        .iter()
        .any(|c| c.stakeholder_id == "ttd")
}

#[test]
fn submissions_arrive_copy_byte_identical_and_mv_to_done_confirms_them() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, &["--poll-interval", "1"]);
    let root = sh_ok(&format!("ls -a '{}'", m.path.display()));
    assert!(
        !root.contains(".inbox") && !root.contains(".done"),
        "{root}"
    );
    let _ = ls(&m, ".inbox");

    let subs: Vec<(String, serde_json::Value)> = (0..3)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            submit(&emu, &party)
        })
        .collect();
    let guids: Vec<String> = subs.iter().map(|(g, _)| g.clone()).collect();
    let dir = format!(".inbox/{party}");
    assert!(
        within(ONE_INTERVAL, || {
            let now = sh(&format!("ls -U '{}'", m.p(&dir).display()));
            let now = String::from_utf8_lossy(&now.stdout).to_string();
            guids.iter().all(|g| now.contains(g.as_str()))
        }),
        "the submissions did not arrive in {dir}"
    );
    // Oldest first: the three in the order they were submitted, after older ones.
    let order = ls(&m, &dir);
    let pos: Vec<usize> = guids
        .iter()
        .map(|g| order.iter().position(|x| x == g).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?} in {order:?}");

    // A copy of the inbox is byte-identical with the server.
    let archive = m.dir.path().join("archive");
    sh_ok(&format!(
        "rsync -a '{}/' '{}/'",
        m.p(".inbox").display(),
        archive.display()
    ));
    for (g, inst) in &subs {
        for d in inst["data"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap();
            let dt = d["dataType"].as_str().unwrap();
            let files = sh_ok(&format!("ls '{}/{party}/{g}/{dt}'", archive.display()));
            let name = files.lines().next().expect("a copied file");
            let copied = std::fs::read(archive.join(format!("{party}/{g}/{dt}/{name}"))).unwrap();
            assert_eq!(copied, emu.blob(g, id), "{party}/{g}/{dt}/{name}");
        }
        assert!(archive.join(format!("{party}/{g}/instance.json")).exists());
    }

    // Read-only: rm -r deletes nothing.
    let err = sh_err(&format!("rm -rf '{}'", m.p(&dir).display()));
    assert!(err.contains("Read-only file system"), "{err}");
    let err = sh_err(&format!(
        "echo x > '{}/{}/new.txt'",
        m.p(&dir).display(),
        guids[0]
    ));
    assert!(!err.is_empty());
    let server = emu.instances();
    for g in &guids {
        let i = server
            .iter()
            .find(|i| i.guid() == g.as_str())
            .expect("still on the server");
        assert_eq!(i.data.len(), 2, "{g} lost elements");
    }

    // mv into .done confirms: the server shows the org's confirmation.
    for g in &guids {
        sh_ok(&format!(
            "mv '{}/{g}' '{}/'",
            m.p(&dir).display(),
            m.p(".done").display()
        ));
        assert!(confirmed_by_org(&emu, &party, g), "{g} not confirmed");
        assert!(!ls(&m, &dir).contains(g), "{g} still in the inbox");
    }
    let done = ls(&m, &format!(".done/{party}"));
    for g in &guids {
        assert!(done.contains(g), "{g} not under .done: {done:?}");
    }
    // Newest first.
    assert_eq!(done[0], guids[2], "{done:?}");
    // The feed says so once per instance, even after the polls that follow.
    std::thread::sleep(Duration::from_secs(2));
    let feed = std::fs::read_to_string(m.p(".altinn/changes")).unwrap();
    for g in &guids {
        let n = feed
            .lines()
            .filter(|l| l.contains("\"instance.confirmed\"") && l.contains(g.as_str()))
            .count();
        assert_eq!(n, 1, "instance.confirmed of {g}:\n{feed}");
    }
}

#[test]
fn a_refused_confirm_leaves_the_instance_in_the_inbox() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, &["--poll-interval", "1"]);
    let (g, _) = submit(&emu, &party);
    let dir = format!(".inbox/{party}");
    assert!(within(ONE_INTERVAL, || m.p(&format!("{dir}/{g}")).exists()));
    emu.set_faults(FaultConfig {
        complete_status: Some(403),
        ..Default::default()
    });
    let err = sh_err(&format!(
        "mv '{}/{g}' '{}/'",
        m.p(&dir).display(),
        m.p(".done").display()
    ));
    assert!(!err.is_empty());
    emu.set_faults(FaultConfig::default());
    assert!(ls(&m, &dir).contains(&g), "left the inbox after a refusal");
    assert!(!confirmed_by_org(&emu, &party, &g));
    assert!(!m.p(&format!(".done/{party}/{g}")).exists());
}

#[test]
fn a_user_token_has_no_inbox() {
    let emu = TestEmulator::small();
    let token = emu.token_file(emu.emu().user_token(12345));
    let m = Mount::with_token(&emu, token, &[]);
    let err = sh_err(&format!("ls '{}'", m.p(".inbox").display()));
    assert!(err.contains("No such file"), "{err}");
    let err = sh_err(&format!("ls '{}'", m.p(".done").display()));
    assert!(err.contains("No such file"), "{err}");
}
