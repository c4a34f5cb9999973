//! `altinnfs cache` and `altinnfs changes` (SPEC §7.1, §7.3) against the emulator, without a
//! mount: the index's place and privacy, the baseline, the feed lines of changes made by
//! someone else, `--since`, `--follow`, a corrupt index, and one index per identity.

mod mount_support;
use mount_support::*;

use altinnfs::altinn::NewElement;
use altinnfs::altinn::{AltinnClient, InstanceId};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_altinnfs");

struct Cli<'a> {
    emu: &'a TestEmulator,
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    token: PathBuf,
}

impl<'a> Cli<'a> {
    fn new(emu: &'a TestEmulator) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        Self {
            emu,
            cache: tmp.path().join("cache"),
            _tmp: tmp,
            token: emu.org_token_file(),
        }
    }
    fn cmd(&self, sub: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg(sub)
            .arg(APP)
            .args(["--app-url", &self.emu.emu().app_url()])
            .args(["--platform-url", &self.emu.emu().base_url()])
            .arg("--token-file")
            .arg(&self.token)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(extra)
            .env_remove("ALTINN_TOKEN")
            .stdin(Stdio::null());
        c
    }
    /// stdout, stderr; panics on failure.
    fn ok(&self, sub: &str, extra: &[&str]) -> (String, String) {
        let o = self.cmd(sub, extra).output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
        assert!(o.status.success(), "{sub} {extra:?} failed:\n{out}\n{err}");
        (out, err)
    }
    fn index_path(&self) -> PathBuf {
        let (out, _) = self.ok("cache", &["--show"]);
        let line = out.lines().find(|l| l.starts_with("index: ")).unwrap();
        PathBuf::from(line.trim_start_matches("index: "))
    }
}

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
        .to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_feed_shows_what_someone_else_changed_once_and_since_a_seq() {
    let emu = TestEmulator::start();
    let cli = Cli::new(&emu);
    let path = cli.index_path();
    assert!(cli.ok("cache", &["--show"]).0.contains("none yet"));

    let n = emu.instances().len() as u64;
    emu.reset_stats();
    let (out, err) = cli.ok("changes", &[]);
    assert!(
        emu.stats().queries <= n.div_ceil(100) + 1,
        "the baseline is one query per page of 100: {:?}",
        emu.stats().queries
    );
    assert!(out.is_empty(), "the first listing is a baseline: {out}");
    assert!(err.contains("first listing"), "{err}");
    let shown = cli.ok("cache", &["--show"]).0;
    let baseline: u64 = field(&shown, "instances").parse().unwrap();
    assert_eq!(baseline as usize, emu.instances().len());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&cli.cache.join("index")), 0o700);

    // Nothing changed: the poll is one query.
    emu.reset_stats();
    cli.ok("changes", &[]);
    assert_eq!(emu.stats().queries, 1);

    // Someone else creates a submission, adds an attachment, then deletes it.
    let inst = emu.new_instance("512345");
    let (out, _) = cli.ok("changes", &[]);
    let l = lines(&out);
    let events: Vec<&str> = l.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, vec!["instance.created", "element.created"], "{out}");
    assert_eq!(l[0]["seq"], 1);
    assert_eq!(l[0]["path"], format!("512345/{}", inst.guid()));
    let iref = InstanceId::of(&inst).unwrap();
    let client = emu.client();
    let pdf = bytes::Bytes::from_static(b"%PDF-1.4 test");
    let el = emu
        .rt
        .block_on(client.create_data(
            &iref,
            NewElement {
                data_type: &"attachment".parse().unwrap(),
                filename: "kvittering.pdf",
                content_type: "application/pdf",
            },
            altinnfs::altinn::UploadBody::Bytes(pdf),
        ))
        .unwrap();
    let (out, _) = cli.ok("changes", &["--since", "2"]);
    let l = lines(&out);
    assert_eq!(l.len(), 1, "{out}");
    assert_eq!(l[0]["event"], "element.created");
    assert_eq!(
        l[0]["path"],
        format!("512345/{}/attachment/kvittering.pdf", inst.guid())
    );
    emu.rt
        .block_on(client.delete_data(&iref, &el.id.parse().unwrap()))
        .unwrap();

    // Polled again: one new line, and nothing twice.
    let (out, _) = cli.ok("changes", &[]);
    let l = lines(&out);
    assert_eq!(l.len(), 4, "{out}");
    assert_eq!(l[3]["event"], "element.deleted");
    assert_eq!(l[3]["element"], el.id.as_str());
    let seqs: Vec<u64> = l.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    // --since prints exactly the lines after it.
    let (out, _) = cli.ok("changes", &["--since", "3"]);
    assert_eq!(out.lines().count(), 1);
    assert_eq!(lines(&out)[0]["seq"], 4);
    let (out, _) = cli.ok("changes", &["--since", "2000-01-01T00:00:00Z"]);
    assert_eq!(out.lines().count(), 4);

    let shown = cli.ok("cache", &["--show"]).0;
    assert_eq!(field(&shown, "last seq"), "4");
    assert_eq!(field(&shown, "instances"), (baseline + 1).to_string());
    assert!(shown.contains("cursor (app): "));

    let (out, _) = cli.ok("cache", &["--clear"]);
    assert!(out.contains("removed"), "{out}");
    assert!(!path.exists());
    assert!(cli.ok("cache", &["--show"]).0.contains("none yet"));
}

#[test]
fn follow_prints_a_change_made_while_it_runs() {
    let emu = TestEmulator::start();
    let cli = Cli::new(&emu);
    cli.ok("changes", &[]);
    let mut child = cli
        .cmd("changes", &["--follow", "--poll-interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let inst = emu.new_instance("512345");
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line within the poll interval");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "instance.created");
    assert_eq!(v["instance"], inst.guid());
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_corrupt_index_is_set_aside_and_rebuilt() {
    let emu = TestEmulator::start();
    let cli = Cli::new(&emu);
    cli.ok("changes", &[]);
    let path = cli.index_path();
    std::fs::write(&path, b"garbage, not SQLite".repeat(1000)).unwrap();
    let (_, err) = cli.ok("changes", &[]);
    assert!(err.contains("set aside"), "{err}");
    let aside = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".aside-"));
    assert!(aside);
    let shown = cli.ok("cache", &["--show"]).0;
    assert_eq!(
        field(&shown, "instances").parse::<usize>().unwrap(),
        emu.instances().len()
    );
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn another_identity_gets_another_index() {
    let emu = TestEmulator::start();
    let org = Cli::new(&emu);
    let mut user = Cli::new(&emu);
    user.cache = org.cache.clone();
    user.token = emu.token_file(emu.emu().user_token(1337));
    let (a, b) = (org.index_path(), user.index_path());
    let (a, b) = (a.to_string_lossy(), b.to_string_lossy());
    assert_ne!(a, b);
    assert!(a.contains("/org-ttd/"), "{a}");
    assert!(b.contains("/user-1337/"), "{b}");
    // The user's feed works through its own parties' cursors.
    let (_, err) = user.ok("changes", &[]);
    assert!(err.contains("first listing"), "{err}");
    assert!(user.ok("cache", &["--show"]).0.contains("cursor (party:"));
}
