//! The metadata index and the change cursor through a real mount (SPEC §7.1, §7.2): changes
//! made by someone else show in `ls` within one poll interval, and a warm remount answers
//! from the index with a cursor poll instead of a listing.

mod mount_support;

use mount_support::*;
use reqwest::Method;
use std::time::{Duration, Instant};

/// Poll `cond` until it holds or `limit` passes; returns whether it held.
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

fn ls(m: &Mount, rel: &str) -> String {
    sh_ok(&format!("ls -a '{}'", m.p(rel).display()))
}

/// "party/guid" of a Storage instance document.
fn ids(inst: &serde_json::Value) -> (String, String) {
    let id = inst["id"].as_str().expect("instance id");
    let (p, g) = id.split_once('/').expect("party/guid");
    (p.to_string(), g.to_string())
}

/// One poll interval (1 s) and the time a listing and the kernel take.
const ONE_INTERVAL: Duration = Duration::from_secs(4);

#[test]
fn changes_made_elsewhere_show_in_ls_within_one_poll_interval() {
    let emu = TestEmulator::start();
    let party = emu.instances()[0].party_id();
    // A long TTL: only the poller can make these changes visible.
    let m = Mount::new(&emu, &["--poll-interval", "1", "--metadata-ttl", "600"]);
    let before = ls(&m, &party);

    let inst = emu.act(
        Method::POST,
        &format!("submit?party={party}&attachments=1"),
        vec![],
    );
    let (p, g) = ids(&inst);
    assert_eq!(p, party);
    assert!(!before.contains(&g));
    assert!(
        within(ONE_INTERVAL, || ls(&m, &party).contains(&g)),
        "a new instance did not show in ls {party}"
    );
    let dir = format!("{party}/{g}/attachment");
    assert!(ls(&m, &dir).contains("vedlegg-1.pdf"), "{}", ls(&m, &dir));

    let path = format!("instances/{party}/{g}/data?dataType=attachment&filename=ny.pdf");
    emu.act(Method::POST, &path, b"%PDF-1.4 added elsewhere".to_vec());
    assert!(
        within(ONE_INTERVAL, || ls(&m, &dir).contains("ny.pdf")),
        "an added element did not show: {}",
        ls(&m, &dir)
    );
    let got = std::fs::read(m.p(&format!("{dir}/ny.pdf"))).unwrap();
    assert_eq!(got, b"%PDF-1.4 added elsewhere");

    let first = inst["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["filename"] == "vedlegg-1.pdf")
        .expect("the submitted attachment");
    let id = first["id"].as_str().unwrap();
    emu.act(
        Method::DELETE,
        &format!("instances/{party}/{g}/data/{id}"),
        vec![],
    );
    assert!(
        within(ONE_INTERVAL, || !ls(&m, &dir).contains("vedlegg-1.pdf")),
        "a deleted element still shows: {}",
        ls(&m, &dir)
    );
    assert!(ls(&m, &dir).contains("ny.pdf"));
}

#[test]
fn a_warm_remount_answers_find_and_stat_without_a_listing() {
    let emu = TestEmulator::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = ["--cache-dir", cache_dir.as_str()];
    let n = emu.instances().len();

    emu.reset_stats();
    let mut cold = Mount::new(&emu, &args);
    let cold_find = sh_ok(&format!("cd '{}' && find . | sort", cold.path.display()));
    let cold_stats = emu.stats();
    assert!(cold.unmount());
    drop(cold);

    emu.reset_stats();
    let warm = Mount::new(&emu, &args);
    let warm_find = sh_ok(&format!("cd '{}' && find . | sort", warm.path.display()));
    let one = warm_find
        .lines()
        .find(|l| l.ends_with(".pdf") || l.ends_with(".xml"));
    if let Some(f) = one {
        sh_ok(&format!("stat '{}/{}'", warm.path.display(), f));
    }
    let warm_stats = emu.stats();
    assert_eq!(warm_find, cold_find, "the warm remount shows another tree");
    assert!(cold_find.lines().count() > n, "the tree is listed");
    eprintln!(
        "instances {n}: cold find {} requests ({} queries); warm remount find+stat {} requests ({} queries): {:?}",
        cold_stats.total, cold_stats.queries, warm_stats.total, warm_stats.queries, warm_stats.per_path
    );
    assert!(warm_stats.queries <= 1, "warm: {:?}", warm_stats.per_path);
    assert!(warm_stats.total <= 5, "warm: {:?}", warm_stats.per_path);
    let single_gets = warm_stats
        .per_path
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains("/instances/") && !k.contains("/data"))
        .count();
    assert_eq!(single_gets, 0, "warm: {:?}", warm_stats.per_path);
}

#[test]
fn the_index_files_are_private() {
    let emu = TestEmulator::start();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let m = Mount::new(&emu, &["--cache-dir", cache_dir.as_str()]);
    ls(&m, "");
    let files = sh_ok(&format!("find '{cache_dir}' -name 'index.sqlite*' -type f"));
    assert!(!files.trim().is_empty(), "no index under {cache_dir}");
    for f in files.lines() {
        let mode = sh_ok(&format!("stat -c %a '{f}'"));
        assert_eq!(mode.trim(), "600", "{f}");
    }
}

/// The feed lines of `.altinn/changes`, parsed.
fn feed(m: &Mount) -> Vec<serde_json::Value> {
    std::fs::read_to_string(m.p(".altinn/changes"))
        .expect("read .altinn/changes")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn the_change_feed_file_is_reachable_by_name_and_follows_changes() {
    let emu = TestEmulator::start();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, &["--poll-interval", "1"]);
    let root = ls(&m, "");
    assert!(!root.contains(".altinn"), "listed in the root: {root}");
    assert!(ls(&m, ".altinn").contains("changes"));
    let mode = sh_ok(&format!(
        "stat -c %a '{}'",
        m.p(".altinn/changes").display()
    ));
    assert_eq!(mode.trim(), "444");
    let err = sh_err(&format!("echo x >> '{}'", m.p(".altinn/changes").display()));
    assert!(!err.is_empty());

    // tail -f sees a change made while it runs.
    let out = m.dir.path().join("tail.out");
    let mut tail = std::process::Command::new("tail")
        .args(["-n", "+1", "-s", "0.2", "-f"])
        .arg(m.p(".altinn/changes"))
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let inst = emu.act(
        Method::POST,
        &format!("submit?party={party}&attachments=1"),
        vec![],
    );
    let (_, g) = ids(&inst);
    let seen = within(ONE_INTERVAL + Duration::from_secs(2), || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains(&g)
    });
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(
        seen,
        "tail -f did not see {g}: {}",
        std::fs::read_to_string(&out).unwrap()
    );

    let lines = feed(&m);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq grows: {seqs:?}");
    let created: Vec<_> = lines
        .iter()
        .filter(|l| l["instance"] == g.as_str() && l["event"] == "instance.created")
        .collect();
    assert_eq!(created.len(), 1, "instance.created once: {lines:?}");
    assert_eq!(created[0]["path"], format!("{party}/{g}"));
    let size = std::fs::metadata(m.p(".altinn/changes")).unwrap().len();
    let bytes = std::fs::read(m.p(".altinn/changes")).unwrap().len() as u64;
    assert_eq!(size, bytes, "stat reports the size a read returns");
}

#[test]
fn on_change_gets_each_batch_and_a_hanging_hook_does_not_stall_ls() {
    let emu = TestEmulator::start();
    let party = emu.instances()[0].party_id();
    let hooked = tempfile::tempdir().unwrap();
    let out = hooked.path().join("batches");
    let hook = format!("cat >> '{}'; sleep 15", out.display());
    let m = Mount::new(
        &emu,
        &["--poll-interval", "1", "--on-change", hook.as_str()],
    );
    ls(&m, &party);
    let first = emu.act(Method::POST, &format!("submit?party={party}"), vec![]);
    let (_, g1) = ids(&first);
    assert!(
        within(ONE_INTERVAL, || std::fs::read_to_string(&out)
            .unwrap_or_default()
            .contains(&g1)),
        "the hook did not get the batch; log:\n{}",
        m.log_text()
            .lines()
            .filter(|l| l.contains("on-change") || l.contains("changes from"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let line = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(v["seq"].as_u64().is_some(), "{line}");
    // The hook now sleeps; the mount goes on.
    let second = emu.act(Method::POST, &format!("submit?party={party}"), vec![]);
    let (_, g2) = ids(&second);
    assert!(
        within(ONE_INTERVAL, || ls(&m, &party).contains(&g2)),
        "a hanging hook stalled the mount"
    );
}
