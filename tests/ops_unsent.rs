//! `altinnfs unsent` and a mount's own retries (issue 15), against the emulator: an upload
//! made to fail with faults lands in `unsent/`; `list` shows it; `retry` sends it once the
//! server takes it (and keeps it, with the errno and the reason, while the data type refuses
//! it); `discard` asks and then leaves nothing; a restarted mount sends it by itself, once.

#[path = "mount_support/mod.rs"]
mod common;
use common::*;

use altinnfs::altinn::model::Instance;
use altinnfs::emulator::FaultConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Write `name` into `other/` of `inst` through a mount while every request touching the
/// instance's data fails; returns the spool dir (kept in `keep`).
fn failed_upload(
    emu: &TestEmulator,
    inst: &Instance,
    name: &str,
    bytes: &[u8],
) -> (PathBuf, tempfile::TempDir) {
    let mut m = Mount::new(emu, &["--retry-unsent", "false"]);
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        route_filter: Some(format!("{}/data", inst.guid())),
        ..Default::default()
    });
    let target = m.p(&format!("{}/{}/other/{name}", inst.party_id(), inst.guid()));
    // File's drop ignores close()'s error: ask through fsync, which uploads.
    let r = std::fs::File::create(&target).and_then(|mut f| {
        use std::io::Write;
        f.write_all(bytes)?;
        f.sync_all()
    });
    assert!(
        r.is_err(),
        "the upload should fail at close; log:\n{}",
        m.log_text()
    );
    emu.set_faults(FaultConfig::default());
    let spool = m.spool.clone();
    assert!(m.unmount(), "unmount failed; log:\n{}", m.log_text());
    let keep = std::mem::replace(&mut m.dir, tempfile::tempdir().unwrap());
    (spool, keep)
}

fn unsent(spool: &Path, conn: &[String], action: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_altinnfs"))
        .arg("unsent")
        .arg("--spool-dir")
        .arg(spool)
        .args(conn)
        .args(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn conn(emu: &TestEmulator) -> Vec<String> {
    vec![
        "--app".into(),
        APP.into(),
        "--app-url".into(),
        emu.emu().app_url(),
        "--platform-url".into(),
        emu.emu().base_url(),
        "--token-file".into(),
        emu.org_token_file().display().to_string(),
    ]
}

/// Elements of `inst` named `name`, with their bytes.
fn stored(emu: &TestEmulator, inst: &Instance, name: &str) -> Vec<Vec<u8>> {
    emu.elements(inst)
        .into_iter()
        .filter(|e| e.filename.as_deref() == Some(name))
        .map(|e| emu.blob(inst.guid(), &e.id))
        .collect()
}

fn entries(spool: &Path) -> usize {
    std::fs::read_dir(spool.join("unsent"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn failed_upload_is_listed_refused_then_retried_once() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let bytes = payload(70_000);
    let (spool, _keep) = failed_upload(&emu, &inst, "report.txt", &bytes);
    assert_eq!(entries(&spool), 2, "bytes and sidecar");
    assert!(stored(&emu, &inst, "report.txt").is_empty());

    let l = unsent(&spool, &[], &["list"], "");
    let out = text(&l);
    assert!(l.status.success(), "{out}");
    assert!(
        out.contains(&format!("{}/other/report.txt", inst.guid())),
        "{out}"
    );
    assert!(out.contains("70000 bytes"), "{out}");
    assert!(out.contains("POST data failed"), "{out}");

    // The data type stops accepting text: refused with the errno and the reason, bytes kept.
    emu.emu()
        .update_app(|m| {
            let dt = m.data_types.iter_mut().find(|d| d.id == "other").unwrap();
            dt.allowed_content_types = vec!["application/pdf".into()];
        })
        .unwrap();
    let r = unsent(&spool, &conn(&emu), &["retry"], "");
    let out = text(&r);
    assert!(!r.status.success(), "{out}");
    assert!(
        out.contains("EPERM") && out.contains("ContentTypeNotAllowed"),
        "{out}"
    );
    assert_eq!(entries(&spool), 2, "kept after a refusal");

    emu.emu()
        .update_app(|m| {
            let dt = m.data_types.iter_mut().find(|d| d.id == "other").unwrap();
            dt.allowed_content_types = vec![];
        })
        .unwrap();
    let r = unsent(&spool, &conn(&emu), &["retry"], "");
    let out = text(&r);
    assert!(r.status.success(), "{out}");
    assert!(out.contains("sent"), "{out}");
    assert_eq!(stored(&emu, &inst, "report.txt"), vec![bytes.clone()]);
    assert_eq!(entries(&spool), 0, "removed once the server took it");

    // Nothing left to send: a second retry changes nothing.
    let r = unsent(&spool, &conn(&emu), &["retry"], "");
    assert!(r.status.success());
    assert_eq!(stored(&emu, &inst, "report.txt").len(), 1);
}

#[test]
fn retry_finds_bytes_already_stored_and_does_not_send_them_again() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let bytes = payload(5000);
    let (spool, _keep) = failed_upload(&emu, &inst, "twice.txt", &bytes);
    // Someone (an earlier attempt) stored the same bytes under the same name meanwhile.
    let m = Mount::new(&emu, &["--retry-unsent", "false"]);
    std::fs::write(
        m.p(&format!(
            "{}/{}/other/twice.txt",
            inst.party_id(),
            inst.guid()
        )),
        &bytes,
    )
    .unwrap();
    drop(m);
    emu.reset_stats();
    let r = unsent(&spool, &conn(&emu), &["retry"], "");
    let out = text(&r);
    assert!(r.status.success(), "{out}");
    assert!(out.contains("already on the server"), "{out}");
    assert_eq!(emu.stats().app_posts, 0, "no POST");
    assert_eq!(stored(&emu, &inst, "twice.txt").len(), 1);
    assert_eq!(entries(&spool), 0);
}

#[test]
fn discard_asks_then_leaves_nothing() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let (spool, _keep) = failed_upload(&emu, &inst, "gone.txt", b"bytes to drop");
    let d = unsent(&spool, &[], &["discard"], "n\n");
    assert!(!d.status.success(), "{}", text(&d));
    assert_eq!(entries(&spool), 2, "answering no keeps it");
    let d = unsent(&spool, &[], &["discard", "--yes"], "");
    assert!(d.status.success(), "{}", text(&d));
    assert_eq!(entries(&spool), 0);
    assert!(text(&unsent(&spool, &[], &["list"], "")).contains("empty"));
}

#[test]
fn corrupt_and_foreign_sidecars_are_reported_and_never_sent() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let dir = tempfile::tempdir().unwrap();
    let unsent_dir = dir.path().join("unsent");
    std::fs::create_dir_all(&unsent_dir).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let put = |name: &str, body: &[u8]| {
        let p = unsent_dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
    };
    put("a-corrupt.txt", b"data");
    put("a-corrupt.txt.json", b"{\"path\": \"/x\", \"party\":");
    put("b-foreign.txt", b"data");
    put(
        "b-foreign.txt.json",
        br#"{"kind": "something else", "instance": "x"}"#,
    );
    let escape = serde_json::json!({
        "path": format!("/510001/{}/other/../../x", inst.guid()), "party": "510001",
        "instance": inst.guid(), "dataType": "../other", "filename": "x.txt", "error": "",
    });
    put("c-escape.txt", b"data");
    put("c-escape.txt.json", &serde_json::to_vec(&escape).unwrap());
    let l = text(&unsent(dir.path(), &[], &["list"], ""));
    for id in ["a-corrupt.txt", "b-foreign.txt", "c-escape.txt"] {
        assert!(l.contains(&format!("{id}\n  skipped:")), "{l}");
    }
    let before = emu.elements(&inst).len();
    emu.reset_stats();
    let r = unsent(dir.path(), &conn(&emu), &["retry"], "");
    let out = text(&r);
    assert!(out.contains("never sent"), "{out}");
    assert_eq!(emu.stats().app_posts + emu.stats().app_puts, 0, "{out}");
    assert_eq!(emu.elements(&inst).len(), before);
    assert_eq!(entries(dir.path()), 6, "nothing removed");
}

#[test]
fn restarted_mount_sends_unsent_once_by_itself() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    let bytes = payload(12_345);
    let (spool, _keep) = failed_upload(&emu, &inst, "auto.txt", &bytes);
    assert_eq!(entries(&spool), 2);
    emu.reset_stats();
    // A mount on the same spool dir (the harness's Mount picks a fresh one).
    let mnt = tempfile::tempdir().unwrap();
    let log = mnt.path().join("log");
    std::fs::create_dir(mnt.path().join("m")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_altinnfs"))
        .args(["mount", APP])
        .arg(mnt.path().join("m"))
        .args(conn(&emu)[2..].iter())
        .arg("--spool-dir")
        .arg(&spool)
        // Never the user's ~/.cache: the metadata index of this test alone.
        .arg("--cache-dir")
        .arg(mnt.path().join("cache"))
        .args(["--foreground", "--log-level", "debug", "--log-file"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while entries(&spool) > 0 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg(mnt.path().join("m"))
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(entries(&spool), 0, "{log}");
    assert_eq!(stored(&emu, &inst, "auto.txt"), vec![bytes]);
    assert_eq!(log.matches(": sent (element").count(), 1, "{log}");
    assert_eq!(emu.stats().app_posts, 1, "one POST in all");
}

#[test]
fn failed_replace_of_an_element_is_retried_onto_that_element() {
    let emu = TestEmulator::start();
    let inst = emu.new_instance("510001");
    {
        let m = Mount::new(&emu, &["--retry-unsent", "false"]);
        let p = m.p(&format!(
            "{}/{}/other/notes.txt",
            inst.party_id(),
            inst.guid()
        ));
        std::fs::write(p, b"first version\n").unwrap();
    }
    assert_eq!(
        stored(&emu, &inst, "notes.txt"),
        vec![b"first version\n".to_vec()]
    );
    let new = payload(30_000);
    let (spool, _keep) = failed_upload(&emu, &inst, "notes.txt", &new);
    let l = text(&unsent(&spool, &[], &["list"], ""));
    assert!(l.contains("PUT data failed"), "{l}");
    let r = unsent(&spool, &conn(&emu), &["retry"], "");
    assert!(r.status.success(), "{}", text(&r));
    assert_eq!(
        stored(&emu, &inst, "notes.txt"),
        vec![new],
        "replaced, not added"
    );
    assert_eq!(entries(&spool), 0);
}
