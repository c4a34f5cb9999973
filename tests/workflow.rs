//! Issue 8: instance workflow through a real kernel mount against the emulator — mkdir creates,
//! `user.altinn.process=next` moves the process, `user.altinn.confirm=complete` confirms,
//! rmdir deletes; each refusal's errno.

mod mount_support;
use mount_support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PARTY: &str = "510001";

/// Run a command with a deadline; returns (success, stdout+stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let f = std::fs::File::create(&out).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .expect("spawns");
    let start = Instant::now();
    let ok = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.success();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            panic!("{cmd:?} did not finish within {limit:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (ok, std::fs::read_to_string(&out).unwrap_or_default())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workflow.sh")
}

fn xattr(p: &Path, name: &str) -> Option<String> {
    let o = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(p)
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

/// `mkdir PARTY/NAME` and the GUID it became.
fn mkdir_instance(m: &Mount, name: &str) -> String {
    let p = m.p(&format!("{PARTY}/{name}"));
    std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    let id = xattr(&p, "user.altinn.id").expect("new instance has an id");
    id.split_once('/').unwrap().1.to_string()
}

#[test]
fn app_owner_round_trip_by_script() {
    let emu = TestEmulator::start();
    emu.emu()
        .update_app(|m| {
            // Task_1 needs one attachment; archived instances are kept 30 days.
            for dt in m.data_types.iter_mut() {
                if dt.id == "attachment" {
                    dt.min_count = 1;
                }
            }
            m.prevent_instance_deletion_for_days = Some(30);
        })
        .unwrap();
    let m = Mount::new(
        &emu,
        &["--metadata-ttl", "1", "-o", "query=excludeConfirmedBy=ttd"],
    );
    let (ok, out) = run_bounded(
        Command::new("bash").arg(script()).arg(&m.path).arg(PARTY),
        Duration::from_secs(120),
    );
    println!("{out}");
    assert!(
        ok,
        "workflow.sh failed:\n{out}\nlog:\n{}",
        tail(&m.log_text(), 60)
    );
    for step in [
        "next without the required attachment is refused",
        "rmdir of a freshly archived instance is refused",
        "it leaves the unconfirmed listing",
    ] {
        assert!(out.contains(step), "step skipped: {step}\n{out}");
    }
    let last = out.lines().last().unwrap_or_default();
    let mut ids = last
        .strip_prefix("WORKFLOW OK ")
        .expect("summary line")
        .split(' ');
    let guid = ids.next().unwrap().split_once('/').unwrap().1.to_string();
    let guid2 = ids.next().unwrap().split_once('/').unwrap().1.to_string();

    // The server agrees with what the mount showed.
    let inst = emu.emu().store().get(&guid).expect("instance kept");
    let p = inst.process.as_ref().unwrap();
    assert!(p.ended.is_some() && p.current_task.is_none(), "{p:?}");
    assert!(inst.status.is_archived);
    assert!(inst
        .complete_confirmations
        .iter()
        .any(|c| c.stakeholder_id == "ttd"));
    assert!(!inst.status.is_soft_deleted, "the refused rmdir deleted it");
    assert!(inst.data.iter().all(|e| e.locked), "{:?}", inst.data);
    let form = inst.data.iter().find(|e| e.data_type == "model").unwrap();
    let bytes = emu.blob(&guid, &form.id);
    assert!(
        String::from_utf8_lossy(&bytes).contains("altinnfs workflow"),
        "form stored"
    );
    assert_eq!(
        inst.data
            .iter()
            .filter(|e| e.data_type == "attachment")
            .count(),
        1,
        "the refused second attachment was not stored"
    );
    let gone = emu.emu().store().get(&guid2).expect("soft deleted, kept");
    assert!(gone.status.is_soft_deleted && !gone.status.is_hard_deleted);

    // The refused `next` logged the app's validation issue.
    let log = m.log_text();
    assert!(
        log.contains("TooFewDataElementsOfType"),
        "{}",
        tail(&log, 40)
    );
}

#[test]
fn next_is_refused_while_the_form_is_missing() {
    let emu = TestEmulator::start();
    // The form is not created with the instance, so it is missing until someone writes it.
    emu.emu()
        .update_app(|m| {
            for dt in m.data_types.iter_mut() {
                if let Some(l) = dt.app_logic.as_mut() {
                    l.auto_create = Some(false);
                }
            }
        })
        .unwrap();
    let m = Mount::new(&emu, &[]);
    let guid = mkdir_instance(&m, "uten-skjema");
    let inst = m.p(&format!("{PARTY}/{guid}"));
    assert_eq!(sh_ok(&format!("ls {}/model", inst.display())), "");
    emu.reset_stats();
    let e = sh_err(&format!(
        "setfattr -n user.altinn.process -v next {}",
        inst.display()
    ));
    assert!(e.contains("Operation not permitted"), "{e}");
    assert_eq!(
        emu.stats()
            .per_path
            .iter()
            .filter(|(k, _)| k.starts_with("PUT ") && k.ends_with("/process/next"))
            .map(|(_, n)| *n)
            .sum::<u64>(),
        1,
        "one PUT, not retried: {:?}",
        emu.stats().per_path
    );
    assert_eq!(
        xattr(&inst, "user.altinn.process.currentTask").as_deref(),
        Some("Task_1")
    );
    let log = m.log_text();
    assert!(
        log.contains("TooFewDataElementsOfType") && log.contains("process/next"),
        "{}",
        tail(&log, 30)
    );
    // Writing the form (a POST) makes `next` go through.
    let src = m.dir.path().join("model.xml");
    std::fs::write(
        &src,
        "<?xml version=\"1.0\"?><Model><navn>Ola</navn><a>1</a><b>2</b><sum>0</sum></Model>",
    )
    .unwrap();
    sh_ok(&format!(
        "cp {} {}/model/model.xml",
        src.display(),
        inst.display()
    ));
    sh_ok(&format!(
        "setfattr -n user.altinn.process -v next {}",
        inst.display()
    ));
    assert_eq!(
        xattr(&inst, "user.altinn.process.currentTask").as_deref(),
        Some("Task_2")
    );
    let json = std::fs::read_to_string(inst.join("instance.json")).unwrap();
    assert!(
        json.contains("\"Task_2\""),
        "instance.json refreshed: {json}"
    );
}

#[test]
fn rmdir_soft_deletes_by_default_and_hard_with_the_option() {
    let emu = TestEmulator::start();
    {
        let m = Mount::new(&emu, &[]);
        let guid = mkdir_instance(&m, "soft");
        sh_ok(&format!(
            "rmdir {}",
            m.p(&format!("{PARTY}/{guid}")).display()
        ));
        let i = emu.emu().store().get(&guid).unwrap();
        assert!(i.status.is_soft_deleted && !i.status.is_hard_deleted);
        assert!(!m.p(&format!("{PARTY}/soft")).exists());
        assert!(!m.p(&format!("{PARTY}/{guid}")).exists());
    }
    let m = Mount::new(&emu, &["--hard"]);
    let guid = mkdir_instance(&m, "hard");
    // rmdir by alias.
    sh_ok(&format!(
        "rmdir {}",
        m.p(&format!("{PARTY}/hard")).display()
    ));
    let i = emu.emu().store().get(&guid).unwrap();
    assert!(i.status.is_hard_deleted, "{:?}", i.status);
    assert!(!m.p(&format!("{PARTY}/{guid}")).exists());
}

#[test]
fn rmdir_refused_by_the_app_is_eperm_and_keeps_the_instance() {
    let emu = TestEmulator::start();
    emu.emu()
        .update_app(|m| m.prevent_instance_deletion_for_days = Some(3650))
        .unwrap();
    // A sample instance archived in 2026 is within ten years of now.
    let archived = emu
        .emu()
        .store()
        .select(|i| i.party_id() == PARTY && i.status.archived.is_some())
        .into_iter()
        .next()
        .expect("an archived sample instance");
    let guid = archived.id.split_once('/').unwrap().1.to_string();
    let m = Mount::new(&emu, &[]);
    let dir = m.p(&format!("{PARTY}/{guid}"));
    let e = sh_err(&format!("rmdir {}", dir.display()));
    assert!(e.contains("Operation not permitted"), "{e}");
    assert!(dir.is_dir());
    assert!(!emu.emu().store().get(&guid).unwrap().status.is_soft_deleted);
    assert!(
        m.log_text().contains("cannot be deleted yet"),
        "the app's reason is logged"
    );
}

#[test]
fn workflow_actions_on_a_read_only_mount_are_eperm() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &["--read-only"]);
    let e = sh_err(&format!("mkdir {}", m.p(&format!("{PARTY}/ny")).display()));
    assert!(
        e.contains("Operation not permitted") || e.contains("Read-only"),
        "{e}"
    );
    let guid = sh_ok(&format!("ls {}", m.p(PARTY).display()))
        .lines()
        .next()
        .unwrap()
        .to_string();
    let inst = m.p(&format!("{PARTY}/{guid}"));
    emu.reset_stats();
    for cmd in [
        format!("setfattr -n user.altinn.process -v next {}", inst.display()),
        format!(
            "setfattr -n user.altinn.confirm -v complete {}",
            inst.display()
        ),
        format!("rmdir {}", inst.display()),
    ] {
        let e = sh_err(&cmd);
        assert!(
            e.contains("Operation not permitted") || e.contains("Read-only"),
            "{cmd}: {e}"
        );
    }
    let s = emu.stats();
    assert_eq!(
        s.app_puts + s.app_posts + s.app_deletes,
        0,
        "{:?}",
        s.per_path
    );
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

#[test]
fn mkdir_alias_lives_until_unmount() {
    let emu = TestEmulator::start();
    let guid = {
        let m = Mount::new(&emu, &[]);
        let guid = mkdir_instance(&m, "min-sak");
        let alias = m.p(&format!("{PARTY}/min-sak"));
        let real = m.p(&format!("{PARTY}/{guid}"));
        assert!(alias.join("instance.json").is_file());
        let listing = sh_ok(&format!("ls {}", m.p(PARTY).display()));
        assert!(listing.lines().any(|l| l == guid), "listed by GUID");
        assert!(
            !listing.lines().any(|l| l == "min-sak"),
            "the alias is not listed"
        );
        assert_eq!(
            sh_ok(&format!(
                "stat -c %i {} {}",
                alias.display(),
                real.display()
            ))
            .lines()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
            1,
            "one inode"
        );
        // The name is taken now; other mkdirs are refused where they cannot create instances.
        let e = sh_err(&format!("mkdir {}", alias.display()));
        assert!(e.contains("File exists"), "{e}");
        let e = sh_err(&format!("mkdir {}", real.join("newtype").display()));
        assert!(e.contains("Operation not permitted"), "{e}");
        let e = sh_err(&format!("mkdir {}", m.p("not-a-party").display()));
        assert!(
            e.contains("Operation not permitted") || e.contains("No such file"),
            "{e}"
        );
        guid
    };
    let m = Mount::new(&emu, &[]);
    assert!(m.p(&format!("{PARTY}/{guid}/instance.json")).is_file());
    assert!(
        !m.p(&format!("{PARTY}/min-sak")).exists(),
        "the alias ends with the mount"
    );
    assert_eq!(
        emu.emu()
            .store()
            .select(|i| i.party_id() == PARTY && i.id.ends_with(&guid))
            .len(),
        1,
        "one instance created"
    );
}

#[test]
fn a_user_creates_and_submits_an_instance_of_their_own() {
    let emu = TestEmulator::start();
    let tok = emu.token_file(emu.emu().party_token(PARTY));
    let m = Mount::with_token(&emu, tok, &[]);
    let guid = mkdir_instance(&m, "egen");
    let inst = m.p(&format!("{PARTY}/{guid}"));
    let src = m.dir.path().join("model.xml");
    std::fs::write(
        &src,
        "<?xml version=\"1.0\"?><Model><navn>Ola</navn><a>1</a><b>2</b><sum>0</sum></Model>",
    )
    .unwrap();
    sh_ok(&format!(
        "cp {} {}/model/model.xml",
        src.display(),
        inst.display()
    ));
    for _ in 0..2 {
        sh_ok(&format!(
            "setfattr -n user.altinn.process -v next {}",
            inst.display()
        ));
    }
    assert!(xattr(&inst, "user.altinn.process.ended").is_some());
    // Confirming is for the app owner: Altinn answers 403.
    let e = sh_err(&format!(
        "setfattr -n user.altinn.confirm -v complete {}",
        inst.display()
    ));
    assert!(e.contains("Permission denied"), "{e}");
    assert!(emu
        .emu()
        .store()
        .get(&guid)
        .unwrap()
        .complete_confirmations
        .is_empty());
}
