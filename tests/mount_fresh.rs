//! The metadata index and the change cursor through a real mount (SPEC §7.1, §7.2): changes
//! made by someone else show in `ls` within one poll interval, and a warm remount answers
//! from the index with a cursor poll instead of a listing.

mod mount_support;

use altinnfs::altinn::{AltinnClient, InstanceId};
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
    let emu = TestEmulator::small();
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

/// The names of a directory read without a stat first (`read_dir`: open and getdents only),
/// as a program that lists a directory it has not looked at does.
fn names(m: &Mount, rel: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(m.p(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The kernel keeps listings once `opendir` answers ENOSYS (with the index): without a
/// poller, the first listing after `metadata_ttl` must still ask the server and show what
/// changed elsewhere, at once (not on a later try), whether read with `ls` or without a stat.
#[test]
fn a_kept_listing_shows_changes_elsewhere_once_metadata_ttl_passed() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, &["--poll-interval", "0", "--metadata-ttl", "1"]);
    let before = names(&m, &party);
    let (_, g0) = ids(&emu.act(
        Method::POST,
        &format!("submit?party={party}&attachments=1"),
        vec![],
    ));
    std::thread::sleep(Duration::from_millis(1500));
    let dir = format!("{party}/{g0}/attachment");
    assert!(
        ls(&m, &party).contains(&g0),
        "ls did not show the new instance"
    );
    assert_eq!(names(&m, &dir), vec!["vedlegg-1.pdf"]);
    // Read both again within the TTL: the kernel answers from what it keeps.
    assert!(names(&m, &party).contains(&g0));
    assert!(!before.contains(&g0));

    let i1 = emu.new_instance(&party);
    let g1 = InstanceId::of(&i1).unwrap().guid.to_string();
    let path = format!("instances/{party}/{g0}/data?dataType=attachment&filename=ny.pdf");
    let added = emu.act(Method::POST, &path, b"%PDF-1.4 added elsewhere".to_vec());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        names(&m, &party).contains(&g1),
        "a listing read without a stat did not show the new instance"
    );
    assert_eq!(names(&m, &dir), vec!["ny.pdf", "vedlegg-1.pdf"]);

    let added = added["id"].as_str().expect("the added element's id");
    emu.act(
        Method::DELETE,
        &format!("instances/{party}/{g0}/data/{added}"),
        vec![],
    );
    emu.delete_instance(&i1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !ls(&m, &party).contains(&g1),
        "a deleted instance still shows"
    );
    assert_eq!(
        names(&m, &dir),
        vec!["vedlegg-1.pdf"],
        "a deleted element still shows"
    );
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
    // Cold: the app's metadata, then the listing's pages (and an empty one after a full
    // last page); the walk asks nothing else (`.stateless/*/new.*` is made on read only).
    let pages = n.div_ceil(100) as u64 + u64::from(n.is_multiple_of(100));
    assert!(
        cold_stats.total <= 1 + pages,
        "cold: {:?}",
        cold_stats.per_path
    );
    // Warm: the app's metadata and one cursor poll (the poller's first, or the first
    // listing's, never both).
    assert!(warm_stats.queries <= 1, "warm: {:?}", warm_stats.per_path);
    assert!(warm_stats.total <= 2, "warm: {:?}", warm_stats.per_path);
    // The cold listing was the poller's first refresh (no poll right after it); the warm
    // remount's one query is a cursor poll, not a listing.
    assert_eq!(
        (cold_stats.cursor_queries, warm_stats.cursor_queries),
        (0, 1)
    );
    let single_gets = warm_stats
        .per_path
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains("/instances/") && !k.contains("/data"))
        .count();
    assert_eq!(single_gets, 0, "warm: {:?}", warm_stats.per_path);
}

#[test]
fn the_index_files_are_private() {
    let emu = TestEmulator::small();
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
    let emu = TestEmulator::small();
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
    let emu = TestEmulator::small();
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

#[test]
fn our_own_write_shows_at_once_and_appears_in_the_feed_once() {
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let (party, g) = (inst.party_id(), inst.guid().to_string());
    let m = Mount::new(&emu, &["--poll-interval", "1", "--metadata-ttl", "600"]);
    let dir = format!("{party}/{g}/attachment");
    ls(&m, &dir);
    let src = m.dir.path().join("egen.pdf");
    std::fs::write(&src, b"%PDF-1.4 written through the mount").unwrap();
    sh_ok(&format!(
        "cp '{}' '{}/'",
        src.display(),
        m.p(&dir).display()
    ));
    assert!(ls(&m, &dir).contains("egen.pdf"), "read-after-write");
    // Let several polls see the server's state of the instance.
    std::thread::sleep(Duration::from_secs(3));
    let created: Vec<_> = feed(&m)
        .into_iter()
        .filter(|l| l["event"] == "element.created" && l["instance"] == g.as_str())
        .collect();
    assert_eq!(created.len(), 1, "element.created once: {created:?}");
    assert!(created[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/attachment/egen.pdf"));
}

#[test]
fn a_user_token_mount_lists_its_parties_from_the_index() {
    let emu = TestEmulator::small();
    let token = emu.token_file(emu.emu().user_token(12345));
    let m = Mount::with_token(&emu, token, &[]);
    let root = sh_ok(&format!("ls '{}'", m.path.display()));
    assert!(root.contains("applicationmetadata.json"), "{root}");
    let parties: Vec<&str> = root
        .lines()
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(!parties.is_empty(), "no party listed: {root}");
    ls(&m, parties[0]);
}

/// A measurement, not a timed test: `cargo test --test mount_fresh -- --ignored --nocapture`
/// (ALTINNFS_SCALE_N instances, default 10,000). Cold `find` versus a warm remount's.
#[test]
#[ignore]
fn measure_cold_and_warm_find_at_scale() {
    let n: u64 = std::env::var("ALTINNFS_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let emu = TestEmulator::start_with(|c| {
        c.sample = false;
        c.synthetic_instances = n;
    });
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = ["--cache-dir", cache_dir.as_str(), "--page-size", "1000"];
    let find = |m: &Mount| {
        let t = Instant::now();
        let out = sh_ok(&format!("find '{}' | wc -l", m.path.display()));
        let peak = sh_ok(&format!(
            "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q -- '{}' && grep VmHWM $p/status; done | head -1",
            m.path.display()
        ));
        (t.elapsed(), format!("{} ({})", out.trim(), peak.trim()))
    };
    emu.reset_stats();
    let mut cold = Mount::new(&emu, &args);
    let (cold_t, cold_n) = find(&cold);
    let cold_s = emu.stats();
    assert!(cold.unmount());
    drop(cold);
    emu.reset_stats();
    let warm = Mount::new(&emu, &args);
    let (warm_t, warm_n) = find(&warm);
    let warm_s = emu.stats();
    eprintln!(
        "N={n}: cold find {cold_n} entries in {cold_t:?}, {} requests ({} queries); warm remount find {warm_n} entries in {warm_t:?}, {} requests ({} queries)",
        cold_s.total, cold_s.queries, warm_s.total, warm_s.queries
    );
    assert_eq!(cold_n.split(' ').next(), warm_n.split(' ').next());
    // One cursor poll, and one more per metadata_ttl (30 s) the walk takes.
    let polls = 1 + warm_t.as_secs() / 30;
    assert!(warm_s.queries <= polls, "{:?}", warm_s.per_path);
}

/// The index file of the mounts using `cache_dir` (after a first mount made it).
fn index_file(cache_dir: &str) -> std::path::PathBuf {
    let found = sh_ok(&format!("find '{cache_dir}' -name index.sqlite -type f"));
    std::path::PathBuf::from(found.lines().next().expect("an index file").trim())
}

#[test]
fn a_corrupt_index_is_set_aside_and_rebuilt_and_the_mount_works() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = ["--cache-dir", cache_dir.as_str()];
    let mut first = Mount::new(&emu, &args);
    let listed = ls(&first, &party);
    assert!(first.unmount());
    let file = index_file(&cache_dir);
    std::fs::write(
        &file,
        b"this is not a SQLite database, not at all; ".repeat(200),
    )
    .unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut p = file.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let again = Mount::new(&emu, &args);
    assert_eq!(ls(&again, &party), listed);
    let aside = sh_ok(&format!("ls '{}'", file.parent().unwrap().display()));
    assert!(aside.contains("index.sqlite.aside-"), "{aside}");
    assert!(again.log_text().contains("set aside"), "the log says so");
}

#[test]
fn without_a_usable_cache_dir_the_mount_works_from_memory_and_says_so() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let dir = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: nothing can be made below it.
    let not_a_dir = dir.path().join("cache");
    std::fs::write(&not_a_dir, b"x").unwrap();
    let cache_dir = not_a_dir.display().to_string();
    let m = Mount::new(&emu, &["--cache-dir", cache_dir.as_str()]);
    assert!(ls(&m, "").contains(&party));
    assert!(!ls(&m, &party).is_empty());
    let log = m.log_text();
    assert!(
        log.contains("WARN") && log.contains("metadata index"),
        "a warning says what is lost: {log}"
    );
}

#[test]
fn two_mounts_of_one_app_share_its_index() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = [
        "--cache-dir",
        cache_dir.as_str(),
        "--poll-interval",
        "1",
        "--metadata-ttl",
        "1",
    ];
    let a = Mount::new(&emu, &args);
    let b = Mount::new(&emu, &args);
    let inst = emu.act(Method::POST, &format!("submit?party={party}"), vec![]);
    let (_, g) = ids(&inst);
    let dir = format!("{party}/{g}/attachment");
    for m in [&a, &b] {
        assert!(within(ONE_INTERVAL, || ls(m, &party).contains(&g)));
        ls(m, &dir);
    }
    // Only one of them sees this as a change (the index is shared): both show it.
    let path = format!("instances/{party}/{g}/data?dataType=attachment&filename=delt.pdf");
    emu.act(Method::POST, &path, b"%PDF-1.4 shared".to_vec());
    for m in [&a, &b] {
        assert!(
            within(ONE_INTERVAL, || ls(m, &dir).contains("delt.pdf")),
            "{}",
            ls(m, &dir)
        );
    }
}

/// SPEC §7.1 "memory does not grow with the number of instances": above `--cache-entries`
/// inodes the kernel is asked to forget the least recently walked instance directories, and
/// a second walk sees every entry again under the same inode numbers.
#[test]
fn a_walk_past_the_inode_limit_drops_old_directories_and_keeps_inode_numbers() {
    let emu = TestEmulator::start_with(|c| {
        c.sample = false;
        c.synthetic_instances = 1500;
    });
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let args = ["--cache-dir", cache_dir.as_str(), "--cache-entries", "400"];
    let m = Mount::new(&emu, &args);
    let walk = || {
        let out = sh_ok(&format!(
            "cd '{}' && find . -printf '%i %p\\n' | sort",
            m.path.display()
        ));
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let first = walk();
    assert!(first.len() > 1500 * 6, "{} entries", first.len());
    assert!(
        within(Duration::from_secs(5), || m
            .log_text()
            .contains("asking the kernel to forget instance directories")),
        "no directory was dropped past the limit"
    );
    let second = walk();
    assert_eq!(first.len(), second.len());
    let differ: Vec<_> = first.iter().zip(&second).filter(|(a, b)| a != b).collect();
    assert!(differ.is_empty(), "{:?}", &differ[..differ.len().min(5)]);
}

/// Each reader of a directory has its own snapshot (handle): a party of
/// more instances than one readdir reply holds, listed by several readers at once, shows each
/// instance exactly once to each of them, and a second walk sees the same.
#[test]
fn concurrent_listings_of_a_big_directory_see_each_entry_once() {
    // About 440 instances in each of the emulator's nine parties.
    let emu = TestEmulator::start_with(|c| {
        c.sample = false;
        c.synthetic_instances = 4000;
    });
    let m = Mount::new(&emu, &[]);
    let party = sh_ok(&format!(
        "ls '{}' | grep -E '^[0-9]+$' | head -1",
        m.path.display()
    ));
    let dir = m.p(party.trim());
    let list = || {
        let out = sh_ok(&format!("ls -f '{}'", dir.display()));
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    for _ in 0..2 {
        let listings: Vec<Vec<String>> = std::thread::scope(|s| {
            let readers: Vec<_> = (0..4).map(|_| s.spawn(list)).collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for names in &listings {
            let mut unique = names.clone();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "a name twice");
            assert_eq!(names, &listings[0], "the readers disagree");
        }
        // Several readdir replies (a page holds about a hundred names).
        assert!(listings[0].len() > 300, "{} names", listings[0].len());
    }
}

/// An emulator with `n` synthetic instances, and their "party/guid", sorted.
fn synthetic_app(n: u64) -> (TestEmulator, Vec<String>) {
    let emu = TestEmulator::start_with(|c| {
        c.sample = false;
        c.synthetic_instances = n;
    });
    let mut ids: Vec<String> = emu
        .instances()
        .iter()
        .map(|i| format!("{}/{}", i.party_id(), i.guid()))
        .collect();
    ids.sort();
    (emu, ids)
}

/// The instance directories a `find` of the mount shows, as "party/guid", sorted.
fn instance_dirs(m: &Mount) -> Vec<String> {
    let found = sh_ok(&format!(
        "cd '{}' && find . -mindepth 2 -maxdepth 2 -type d | sed 's|^./||' | grep -E '^[0-9]+/' | sort",
        m.path.display()
    ));
    found.lines().map(str::to_string).collect()
}

/// Issue 12: a query page that fails the way Storage does under load (its timeout-shaped 400)
/// in the middle of the mount's listing is asked again from its own token at half the size:
/// the walk shows every instance once, and the listing never starts over.
#[test]
fn a_page_failing_mid_listing_is_asked_again_at_half_size_without_gaps_or_twins() {
    let n = 600;
    let (emu, want) = synthetic_app(n);
    assert_eq!(want.len(), n as usize);
    // Pages of 100 fail, pages of 50 pass: the first page fails, and so does each page
    // after the size grew back, with a continuation token (mid-listing).
    emu.set_faults(altinnfs::emulator::FaultConfig {
        query_timeout_rate: 1.0,
        query_timeout_min_size: 100,
        ..Default::default()
    });
    emu.reset_stats();
    let m = Mount::new(&emu, &["--page-size", "100", "--poll-interval", "0"]);
    let got = instance_dirs(&m);
    let s = emu.stats();
    emu.set_faults(altinnfs::emulator::FaultConfig::default());
    let twins: Vec<_> = got.windows(2).filter(|w| w[0] == w[1]).collect();
    assert!(twins.is_empty(), "listed twice: {twins:?}");
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    let log = m.log_text();
    let retried: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("retrying the page"))
        .collect();
    assert!(
        retried.len() >= 2,
        "pages failed and were asked again:\n{log}"
    );
    assert!(
        retried.iter().all(|l| l.contains("page_size=50")),
        "asked again at half the size: {retried:?}"
    );
    // Pages of 50 hold the listing; each failed page costs one more query, and a restart
    // from the first page would cost a whole listing more.
    let good = n.div_ceil(50) + 1;
    assert!(
        s.queries >= good + 2 && s.queries <= good + retried.len() as u64,
        "{} queries, {} retries: {:?}",
        s.queries,
        retried.len(),
        s.per_path
    );
}

/// Issue 12 "the disk is full", before the mount: the index cannot be made, and the mount
/// works from memory and says what is lost.
#[test]
fn with_the_index_disk_full_at_mount_the_mount_works_from_memory_and_says_so() {
    let Some(disk) = SmallDisk::new("1m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    };
    disk.fill();
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let cache_dir = disk.path().display().to_string();
    let m = Mount::new(&emu, &["--cache-dir", cache_dir.as_str()]);
    assert!(ls(&m, "").contains(&party));
    let listed = ls(&m, &party);
    assert!(listed.lines().count() > 2, "{listed}");
    let log = m.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("metadata in memory only")),
        "a warning says what is lost:\n{log}"
    );
}

/// Issue 12 "the disk is full", while mounted: the mount must go on from memory, so a
/// change made elsewhere still shows in `ls` within a poll interval, and the log warns.
/// (A small index moves to memory; `fs::index::fallback`.)
#[test]
fn with_the_index_disk_full_while_mounted_changes_still_show() {
    let Some(disk) = SmallDisk::new("4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    };
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let cache_dir = disk.path().display().to_string();
    let m = Mount::new(
        &emu,
        &[
            "--cache-dir",
            cache_dir.as_str(),
            "--poll-interval",
            "1",
            "--metadata-ttl",
            "600",
        ],
    );
    let before = ls(&m, &party);
    disk.fill();
    let inst = emu.act(
        Method::POST,
        &format!("submit?party={party}&attachments=1"),
        vec![],
    );
    let (_, g) = ids(&inst);
    assert!(!before.contains(&g));
    let log = || m.log_text();
    assert!(
        within(ONE_INTERVAL, || ls(&m, &party).contains(&g)),
        "a new instance did not show with the index disk full; log:\n{}",
        log()
    );
    assert!(
        log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("index") && l.contains("in memory")),
        "no warning that the index went to memory:\n{}",
        log()
    );
}

/// Issue 12 "... and one deleted by someone else": an instance deleted elsewhere (Storage's
/// soft delete, which moves its `lastChanged`) leaves `ls` within one poll interval.
#[test]
fn an_instance_deleted_elsewhere_leaves_ls_within_one_poll_interval() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let inst = emu.new_instance(&party);
    let g = inst.guid().to_string();
    let m = Mount::new(&emu, &["--poll-interval", "1", "--metadata-ttl", "600"]);
    assert!(ls(&m, &party).contains(&g));
    let id = InstanceId::of(&inst).unwrap();
    emu.rt
        .block_on(emu.client().delete_instance(&id, false))
        .expect("soft delete");
    assert!(
        within(ONE_INTERVAL, || !ls(&m, &party).contains(&g)),
        "a deleted instance still shows in ls {party}"
    );
}

/// Issue 12 at a million instances: a cold mount's first listing takes minutes (10,000
/// pages). Only what needs it waits: `stat` of the mountpoint (`mountpoint`, `df`, a file
/// manager) answers at once, `ls` of the root once the listing is done.
#[test]
fn a_cold_mount_answers_stat_at_once_and_ls_after_its_first_listing() {
    let (emu, ids) = synthetic_app(400);
    let parties: std::collections::BTreeSet<String> = ids
        .iter()
        .map(|id| id.split('/').next().unwrap().to_string())
        .collect();
    // 5 pages of 100 (the last one empty) at 600 ms each: the listing takes 3 s or more.
    emu.set_faults(altinnfs::emulator::FaultConfig {
        query_delay_ms: 600,
        ..Default::default()
    });
    let t0 = Instant::now();
    let m = Mount::new(&emu, &["--page-size", "100", "--poll-interval", "0"]);
    let mounted = Instant::now();
    let meta = std::fs::metadata(&m.path).expect("stat of the mountpoint");
    let stat_took = mounted.elapsed();
    assert!(meta.is_dir());
    assert!(
        stat_took < Duration::from_millis(1000),
        "stat waited for the listing: {stat_took:?} (mounted after {:?})",
        mounted - t0
    );
    // Once a page is in, the cursor moves page by page: still no waiting for the rest (after
    // the kernel's 1 s attribute timeout, so that the stat reaches the mount).
    std::thread::sleep(Duration::from_millis(1300).saturating_sub(mounted.elapsed()));
    let again = Instant::now();
    assert!(std::fs::metadata(&m.path).unwrap().is_dir());
    assert!(
        again.elapsed() < Duration::from_millis(600),
        "a stat mid-listing waited for it: {:?}",
        again.elapsed()
    );
    let listed: std::collections::BTreeSet<String> = ls(&m, "")
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    let ls_took = t0.elapsed();
    emu.set_faults(altinnfs::emulator::FaultConfig::default());
    assert_eq!(
        listed, parties,
        "ls shows every party, once the listing is done"
    );
    assert!(
        ls_took >= Duration::from_millis(2500),
        "ls answered before the listing could end: {ls_took:?}"
    );
    // And the root's attributes follow the listing: a later stat still answers.
    assert!(std::fs::metadata(&m.path).unwrap().is_dir());
}

/// `--list-parallel`: a cold mount's listing in slices of `lastChanged` side by side shows
/// every instance once, for a few queries more than one after another.
#[test]
fn a_listing_in_slices_shows_every_instance_once() {
    let n = 700;
    let (emu, want) = synthetic_app(n);
    emu.reset_stats();
    let m = Mount::new(
        &emu,
        &[
            "--page-size",
            "100",
            "--poll-interval",
            "0",
            "--list-parallel",
            "4",
        ],
    );
    let got = instance_dirs(&m);
    assert_eq!(got, want, "each instance once");
    let s = emu.stats();
    // 7 pages, the newest asked for once, and at most a short last page per slice.
    assert!(s.queries <= 7 + 1 + 4, "{} queries", s.queries);
}
