//! `altinnfs status` (issue 15): a mount answers over a 0600 socket in its spool dir; `--json`
//! parses, shows an upload in flight (held by the emulator's latency fault), and never
//! contains the token.

#[path = "mount_support/mod.rs"]
mod common;
use common::*;

use altinnfs::emulator::FaultConfig;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn status(spool: &Path, mountpoint: Option<&Path>, json: bool) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_altinnfs"));
    c.arg("status").arg("--spool-dir").arg(spool);
    if let Some(m) = mountpoint {
        c.arg(m);
    }
    if json {
        c.arg("--json");
    }
    let o = c.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), all)
}

fn parse(out: &str) -> serde_json::Value {
    serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("status --json does not parse ({e}):\n{out}"))
}

#[test]
fn status_json_shows_an_upload_in_flight_and_never_the_token() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let token_file = emu.org_token_file();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let m = Mount::with_token(&emu, token_file, &[]);

    // The socket: one per mount, 0600. A --foreground mount opens it just after the mount
    // shows (a daemonised one before its parent returns).
    use std::os::unix::fs::PermissionsExt;
    let run = m.spool.join("run");
    let t = std::time::Instant::now();
    let has_socket = || std::fs::read_dir(&run).is_ok_and(|mut d| d.next().is_some());
    while !has_socket() && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let socks: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(socks.len(), 1);
    assert_eq!(
        std::fs::metadata(&socks[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );

    emu.set_faults(FaultConfig {
        latency_ms: 4000,
        route_filter: Some(format!("{}/data", inst.guid())),
        ..Default::default()
    });
    let target = m.p(&format!(
        "{}/{}/other/slow.txt",
        inst.party_id(),
        inst.guid()
    ));
    let writer = std::thread::spawn(move || std::fs::write(target, b"slow bytes\n"));

    let t = Instant::now();
    let mut seen = None;
    while t.elapsed() < Duration::from_secs(4) {
        let (ok, out) = status(&m.spool, Some(&m.path), true);
        assert!(ok, "{out}");
        assert!(!out.contains(token.trim()), "the token is printed:\n{out}");
        let v = parse(&out);
        if v["mounts"][0]["pending_uploads"].as_u64().unwrap_or(0) >= 1 {
            seen = Some(v);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = seen.expect("status showed the upload in flight");
    let s = &v["mounts"][0];
    assert_eq!(s["app"], APP);
    assert_eq!(
        s["mountpoint"],
        m.path.canonicalize().unwrap().display().to_string()
    );
    let expires_in = s["token_expires_in_secs"]
        .as_i64()
        .expect("token expiry known");
    assert!(expires_in > 60, "{s}");
    assert!(s["requests"].as_u64().unwrap() > 0);
    // The metadata index and the change cursor: where, how big, how far behind.
    let idx = &s["index"];
    assert!(idx["instances"].as_u64().unwrap() > 0, "{s}");
    assert!(idx["bytes"].as_u64().unwrap() > 0, "{s}");
    assert!(
        idx["path"].as_str().unwrap().ends_with("index.sqlite"),
        "{s}"
    );
    assert!(idx["cursor_lag_secs"].as_i64().is_some(), "{s}");
    writer.join().unwrap().unwrap();
    emu.set_faults(FaultConfig::default());

    // After: nothing pending; the human form carries the same facts, and no token either.
    let (ok, out) = status(&m.spool, None, false);
    assert!(ok, "{out}");
    assert!(
        out.contains(APP) && out.contains("uploads in flight: 0"),
        "{out}"
    );
    assert!(out.contains("token: expires"), "{out}");
    assert!(out.contains("index: ") && out.contains("cursor "), "{out}");
    assert!(!out.contains(token.trim()));
}

#[test]
fn status_of_a_path_that_is_no_mount_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = status(dir.path(), Some(dir.path()), true);
    assert!(!ok, "{out}");
    assert_eq!(
        parse(
            out.lines()
                .take_while(|l| !l.starts_with("altinnfs:"))
                .collect::<Vec<_>>()
                .join("\n")
                .as_str()
        )["mounts"],
        serde_json::json!([])
    );
}

/// Issue 12: the first listing of a big app takes minutes; `status` says how far it got.
#[test]
fn status_shows_a_first_listing_under_way_and_nothing_once_it_ended() {
    let emu = TestEmulator::start_with(|c| {
        c.sample = false;
        c.synthetic_instances = 600;
    });
    // 7 pages of 100 (the last one empty) at 500 ms each.
    emu.set_faults(FaultConfig {
        query_delay_ms: 500,
        ..Default::default()
    });
    let m = Mount::new(&emu, &["--page-size", "100", "--poll-interval", "0"]);
    let t = Instant::now();
    let mut seen = None;
    while seen.is_none() && t.elapsed() < Duration::from_secs(3) {
        let (ok, out) = status(&m.spool, Some(&m.path), true);
        if ok {
            let j = parse(&out);
            let l = &j["mounts"][0]["index"]["listings"];
            if l.as_array().is_some_and(|a| !a.is_empty()) {
                seen = Some(l[0].clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = seen.expect("a listing under way in status --json");
    assert_eq!(l["kind"], "first", "{l}");
    assert_eq!(l["scope"], "the app", "{l}");
    assert!(l["pages"].as_u64().unwrap() >= 1, "{l}");
    assert_eq!(
        l["instances"].as_u64().unwrap(),
        100 * l["pages"].as_u64().unwrap()
    );
    let (_, text) = status(&m.spool, Some(&m.path), false);
    assert!(text.contains("for the first time"), "{text}");
    // `ls` waits for the listing; then nothing is under way.
    let out = sh_ok(&format!("ls '{}' | wc -l", m.path.display()));
    assert!(out.trim().parse::<u32>().unwrap() > 1, "{out}");
    emu.set_faults(FaultConfig::default());
    let j = parse(&status(&m.spool, Some(&m.path), true).1);
    assert_eq!(
        j["mounts"][0]["index"]["listings"],
        serde_json::json!([]),
        "{j}"
    );
}
