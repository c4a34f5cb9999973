//! Issue 5: the mount command's failures and its daemon. Each bad input fails `altinnfs mount`
//! with one clear message and a non-zero exit, within a deadline (never a hang); without
//! `--foreground` the parent returns 0 only once the mount is up; SIGTERM unmounts; the token
//! never shows up in logs, messages or `ps`.

mod mount_support;
use mount_support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_altinnfs");
/// Every failing mount must be done within this (the slowest, connection refused, retries a
/// few times with backoff).
const LIMIT: Duration = Duration::from_secs(45);

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Run with a deadline; a hang fails the test (and the child is killed).
fn run(cmd: &mut Command, limit: Duration) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("o"), dir.path().join("e"));
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawns");
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} hung for {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    Run {
        ok: st.success(),
        code: st.code(),
        stdout: std::fs::read_to_string(&o).unwrap_or_default(),
        stderr: std::fs::read_to_string(&e).unwrap_or_default(),
        took: start.elapsed(),
    }
}

/// A mountpoint, spool and log of one test.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        Place { dir }
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("altinnfs.log")
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
    /// `altinnfs mount APP MNT` with a private spool and log (daemonising: no --foreground).
    fn mount(&self, app: &str, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("mount")
            .arg(app)
            .arg(self.mnt())
            .arg("--spool-dir")
            .arg(self.dir.path().join("spool"))
            // Never the user's ~/.cache: the metadata index of this test alone.
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--log-file")
            .arg(self.log())
            .args(args)
            .env_remove("ALTINN_TOKEN");
        c
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if is_mounted(&self.mnt()) {
            unmount_and_wait(&self.mnt());
        }
    }
}

fn urls(emu: &TestEmulator) -> Vec<String> {
    vec![
        "--app-url".into(),
        emu.emu().app_url(),
        "--platform-url".into(),
        emu.emu().base_url(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// The daemon serving `mnt` (found by its command line), if any.
fn daemon_pid(mnt: &Path) -> Option<i32> {
    let want = mnt.to_string_lossy().to_string();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        if args.first().is_some_and(|a| a.ends_with("altinnfs")) && args.contains(&want) {
            return Some(pid);
        }
    }
    None
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn unmount_and_wait(mnt: &Path) {
    let pid = daemon_pid(mnt);
    let _ = Command::new("fusermount3").arg("-u").arg(mnt).status();
    if let Some(pid) = pid {
        wait_until(Duration::from_secs(20), || {
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
    }
}

/// A failed mount: non-zero exit, exactly one line on stderr, containing every `want`, within
/// the deadline, and nothing mounted.
fn assert_one_clear_error(r: &Run, p: &Place, want: &[&str]) {
    assert!(!r.ok, "should fail; stderr: {}", r.stderr);
    assert_eq!(r.code, Some(1), "exit code; stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "one message, got:\n{}\nstdout: {}",
        r.stderr,
        r.stdout
    );
    assert!(lines[0].starts_with("altinnfs: "), "{}", lines[0]);
    for w in want {
        assert!(lines[0].contains(w), "message lacks {w:?}: {}", lines[0]);
    }
    assert!(!is_mounted(&p.mnt()), "nothing stays mounted");
    assert!(r.took < LIMIT, "took {:?}", r.took);
    println!("{:?}: {}", r.took, lines[0]);
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn unreachable_server_is_connection_refused() {
    let emu = TestEmulator::start();
    let p = Place::new();
    let port = free_port();
    let tok = emu.org_token_file();
    let r = run(
        p.mount(
            APP,
            &[
                "--app-url",
                &format!("http://127.0.0.1:{port}/{APP}"),
                "--platform-url",
                &format!("http://127.0.0.1:{port}"),
                "--token-file",
                tok.to_str().unwrap(),
            ],
        )
        .arg("--timeout")
        .arg("5"),
        LIMIT,
    );
    assert_one_clear_error(
        &r,
        &p,
        &["Connection refused", &format!("127.0.0.1:{port}")],
    );
}

#[test]
fn malformed_token_is_refused_without_echoing_it() {
    let emu = TestEmulator::start();
    let p = Place::new();
    let secret = "s3cr3t-n0t-a-jwt-XYZZY";
    let tok = emu.token_file(secret.into());
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert_one_clear_error(&r, &p, &["not a JWT", &tok.display().to_string()]);
    assert!(!r.stderr.contains(secret) && !p.log_text().contains(secret));
}

#[test]
fn expired_token_is_refused() {
    let emu = TestEmulator::start();
    emu.set_faults(altinnfs::emulator::FaultConfig {
        token_expiry_secs: Some(1),
        ..Default::default()
    });
    let token = emu.emu().org_token("ttd");
    emu.set_faults(Default::default());
    std::thread::sleep(Duration::from_millis(2100));
    let tok = emu.token_file(token.clone());
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert_one_clear_error(&r, &p, &["expired"]);
    assert!(!r.stderr.contains(&token) && !p.log_text().contains(&token));
}

#[test]
fn unreadable_or_missing_token_file() {
    let emu = TestEmulator::start();
    // A directory cannot be read as a file, even by root.
    for bad in [
        emu.dir.path().to_path_buf(),
        emu.dir.path().join("no-such-token"),
    ] {
        let p = Place::new();
        let mut a = urls(&emu);
        a.extend(["--token-file".into(), bad.display().to_string()]);
        let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
        assert_one_clear_error(&r, &p, &[&bad.display().to_string()]);
    }
}

#[test]
fn loose_token_file_permissions_mount_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(r.ok, "mounts: {}", r.stderr);
    assert!(is_mounted(&p.mnt()));
    assert!(p.mnt().join("applicationmetadata.json").is_file());
    let log = p.log_text();
    assert!(
        log.contains("WARN") && log.contains("chmod 600"),
        "warning logged:\n{log}"
    );
    unmount_and_wait(&p.mnt());
}

#[test]
fn wrong_org_or_app_fails_with_the_servers_answer() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    for app in ["ttd/no-such-app", "nosuchorg/altinnfs-demo"] {
        let p = Place::new();
        let r = run(
            &mut p.mount(
                app,
                &[
                    "--app-url",
                    &format!("{}/{app}", emu.emu().base_url()),
                    "--platform-url",
                    &emu.emu().base_url(),
                    "--token-file",
                    tok.to_str().unwrap(),
                ],
            ),
            LIMIT,
        );
        assert_one_clear_error(&r, &p, &["applicationmetadata", app]);
    }
    // An app URL where no app answers: 404.
    let p = Place::new();
    let r = run(
        &mut p.mount(
            APP,
            &[
                "--app-url",
                &format!("{}/no-app-here", emu.emu().base_url()),
                "--platform-url",
                &emu.emu().base_url(),
                "--token-file",
                tok.to_str().unwrap(),
            ],
        ),
        LIMIT,
    );
    assert_one_clear_error(&r, &p, &["applicationmetadata", "404"]);
    // A well-formed but bogus ORG/APP argument.
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount("just-a-name", &strs(&a)), LIMIT);
    assert!(!r.ok);
    assert!(r.stderr.contains("ORG/APP"), "{}", r.stderr);
}

#[test]
fn missing_mountpoint() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    let p = Place::new();
    std::fs::remove_dir(p.mnt()).unwrap();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(!r.ok);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].contains(&p.mnt().display().to_string()) && lines[0].contains("No such file"),
        "{}",
        lines[0]
    );
    // A file is not a mountpoint either.
    std::fs::write(p.mnt(), b"x").unwrap();
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(
        !r.ok && r.stderr.contains("not a directory"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(p.mnt()).unwrap();
    std::fs::create_dir(p.mnt()).unwrap();
}

#[test]
fn no_env_and_no_urls() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    let p = Place::new();
    let r = run(
        &mut p.mount(APP, &["--token-file", tok.to_str().unwrap()]),
        LIMIT,
    );
    assert_one_clear_error(&r, &p, &["--env", "--app-url"]);
    // Half of the pair is not enough.
    let r = run(
        &mut p.mount(
            APP,
            &[
                "--token-file",
                tok.to_str().unwrap(),
                "--app-url",
                &emu.emu().app_url(),
            ],
        ),
        LIMIT,
    );
    assert_one_clear_error(&r, &p, &["--platform-url"]);
}

#[test]
fn foreground_failure_says_it_once() {
    let emu = TestEmulator::start();
    let tok = emu.token_file("garbage".into());
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend([
        "--token-file".into(),
        tok.display().to_string(),
        "--foreground".into(),
    ]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(!r.ok);
    assert_eq!(
        r.stderr.matches("altinnfs: ").count(),
        1,
        "stderr:\n{}",
        r.stderr
    );
}

#[test]
fn daemon_parent_returns_once_mounted_and_sigterm_unmounts() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    // The shell idiom of the SPEC: mount && ls.
    let mut cmd = p.mount(APP, &strs(&a));
    let line = format!(
        "{} && ls {} && ls {}/510001 | head -1",
        shell_words(&cmd),
        p.mnt().display(),
        p.mnt().display()
    );
    let r = run(Command::new("bash").arg("-c").arg(&line), LIMIT);
    assert!(r.ok, "{line}\nstderr: {}\nlog: {}", r.stderr, p.log_text());
    assert!(
        r.stdout.contains("applicationmetadata.json"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("510001"), "{}", r.stdout);
    assert_eq!(r.stderr, "", "a quiet success");
    let pid = daemon_pid(&p.mnt()).expect("a daemon serves the mount");
    // It is detached: its own session, not our child.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "session leader: {stat}");
    assert_ne!(fields[1], std::process::id().to_string());
    // SIGTERM: unmounts and exits.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(20), || !is_mounted(&p.mnt())),
        "still mounted after SIGTERM; log:\n{}",
        p.log_text()
    );
    assert!(
        wait_until(Duration::from_secs(20), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "daemon still running after SIGTERM"
    );
    assert!(p.log_text().contains("unmounting"), "{}", p.log_text());
    let _ = &mut cmd;
}

#[test]
fn daemon_without_log_file_logs_under_the_spool_dir() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    let p = Place::new();
    let spool = p.dir.path().join("spool2");
    let mut c = Command::new(BIN);
    c.arg("mount")
        .arg(APP)
        .arg(p.mnt())
        .args(urls(&emu))
        .arg("--token-file")
        .arg(&tok)
        .arg("--spool-dir")
        .arg(&spool)
        .arg("--cache-dir")
        .arg(p.dir.path().join("cache"));
    let r = run(&mut c, LIMIT);
    assert!(r.ok, "{}", r.stderr);
    assert!(is_mounted(&p.mnt()));
    unmount_and_wait(&p.mnt());
    let log = std::fs::read_to_string(spool.join("altinnfs.log")).unwrap_or_default();
    assert!(log.contains("mounted"), "{log}");
}

#[test]
fn token_never_appears_in_logs_messages_or_ps() {
    let emu = TestEmulator::start();
    let token = emu.emu().org_token("ttd");
    let tok = emu.token_file(token.clone());
    // The signature part alone must not leak either.
    let sig = token.rsplit('.').next().unwrap().to_string();
    let leaks = |s: &str| s.contains(&token) || s.contains(&sig);
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend([
        "--token-file".into(),
        tok.display().to_string(),
        "--log-level".into(),
        "trace".into(),
    ]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(r.ok, "{}", r.stderr);
    // Exercise it: listings, reads, a refused write, a 404.
    let inst = sh_ok(&format!("ls {}/510001 | head -1", p.mnt().display()));
    let inst = p.mnt().join("510001").join(inst.trim());
    sh_ok(&format!(
        "cat {}/instance.json {}/model/* >/dev/null",
        inst.display(),
        inst.display()
    ));
    let _ = sh(&format!("echo x > {}/attachment/x.txt", inst.display()));
    let _ = sh(&format!(
        "ls {}/510001/00000000-0000-0000-0000-000000000000",
        p.mnt().display()
    ));
    let ps = sh_ok("ps -eo pid,args; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '");
    assert!(!leaks(&ps), "the token is in ps output");
    let pid = daemon_pid(&p.mnt()).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(!leaks(&String::from_utf8_lossy(&environ)));
    unmount_and_wait(&p.mnt());
    let log = p.log_text();
    assert!(log.len() > 1000, "trace log written: {} bytes", log.len());
    assert!(!leaks(&log), "the token is in the log");
    assert!(!leaks(&r.stderr) && !leaks(&r.stdout));

    // ALTINN_TOKEN: in the environment, not in argv; an error message does not echo it.
    let p = Place::new();
    let mut c = p.mount(
        APP,
        &[
            "--app-url",
            "http://127.0.0.1:1/ttd/x",
            "--platform-url",
            "http://127.0.0.1:1",
        ],
    );
    c.env("ALTINN_TOKEN", &token).arg("--timeout").arg("2");
    let r = run(&mut c, LIMIT);
    assert!(!r.ok);
    assert!(!leaks(&r.stderr) && !leaks(&p.log_text()), "{}", r.stderr);
    // An expired/invalid token the server rejects: the 401 message does not echo it.
    let bad = format!("{}.{}", token.rsplit_once('.').unwrap().0, "AAAA");
    let tokf = emu.token_file(bad.clone());
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tokf.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    if r.ok {
        unmount_and_wait(&p.mnt());
    }
    assert!(
        !r.stderr.contains(&bad) && !p.log_text().contains(&bad),
        "{}",
        r.stderr
    );
}

/// The command line of `cmd` quoted for bash.
fn shell_words(cmd: &Command) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    std::iter::once(q(&cmd.get_program().to_string_lossy()))
        .chain(cmd.get_args().map(|a| q(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A server that keeps failing: the metadata GET is retried a bounded number of times (one
/// retry loop, with backoff), and the mount then fails with the server's answer.
#[test]
fn failing_server_is_retried_a_bounded_number_of_times() {
    let emu = TestEmulator::start();
    emu.set_faults(altinnfs::emulator::FaultConfig {
        error_rate: 1.0,
        route_filter: Some("applicationmetadata".into()),
        ..Default::default()
    });
    let tok = emu.org_token_file();
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), Duration::from_secs(120));
    let n = emu.stats().total;
    println!("{n} requests in {:?}: {}", r.took, r.stderr.trim());
    assert!(!r.ok);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(n >= 2, "retried");
    assert!(
        n <= 6,
        "{n} GETs of the metadata in {:?}: the retries are nested (HTTP client × fs)",
        r.took
    );
}

/// SIGTERM while an upload is on its way: the upload finishes (the writer's close() succeeds and
/// the element is stored), then the daemon unmounts and exits.
#[test]
fn sigterm_waits_for_a_pending_upload() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    let p = Place::new();
    let mut a = urls(&emu);
    a.extend(["--token-file".into(), tok.display().to_string()]);
    let r = run(&mut p.mount(APP, &strs(&a)), LIMIT);
    assert!(r.ok, "{}", r.stderr);
    let pid = daemon_pid(&p.mnt()).unwrap();
    // A fresh instance to upload into, by mkdir.
    let inst = p.mnt().join("510001/sigterm");
    std::fs::create_dir(&inst).unwrap();
    let src = p.dir.path().join("v.pdf");
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(300_000, b'x');
    std::fs::write(&src, &pdf).unwrap();
    // Uploads take 2 s from now on.
    emu.set_faults(altinnfs::emulator::FaultConfig {
        latency_ms: 2000,
        route_filter: Some("/data".into()),
        ..Default::default()
    });
    let mut cp = Command::new("cp")
        .arg(&src)
        .arg(inst.join("attachment/"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the POST is under way, then SIGTERM.
    assert!(wait_until(Duration::from_secs(10), || emu
        .stats()
        .per_path
        .keys()
        .any(
            |k| k.starts_with("POST") && k.ends_with("/data/attachment")
        )));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = cp.wait().unwrap();
    assert!(st.success(), "cp's close() succeeded");
    assert!(
        wait_until(Duration::from_secs(30), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "daemon exits"
    );
    assert!(!is_mounted(&p.mnt()));
    let stored = emu.emu().store().select(|i| {
        i.data
            .iter()
            .any(|e| e.filename.as_deref() == Some("v.pdf") && e.size == 300_000)
    });
    assert_eq!(stored.len(), 1, "the upload reached the server");
}

/// The hint after a mount-time failure should fit a mount, not a file operation.
#[test]
fn mount_errors_have_mount_hints() {
    let emu = TestEmulator::start();
    let tok = emu.org_token_file();
    for (app_url, platform) in [
        (
            format!("{}/no-app-here", emu.emu().base_url()),
            emu.emu().base_url(),
        ),
        (
            format!("{}/ttd/other", emu.emu().base_url()),
            emu.emu().base_url(),
        ),
        (
            format!("http://127.0.0.1:{}/{APP}", free_port()),
            "http://127.0.0.1:1".to_string(),
        ),
    ] {
        let p = Place::new();
        let r = run(
            &mut p.mount(
                APP,
                &[
                    "--app-url",
                    &app_url,
                    "--platform-url",
                    &platform,
                    "--token-file",
                    tok.to_str().unwrap(),
                ],
            ),
            LIMIT,
        );
        assert!(!r.ok);
        for bad in ["list the directory again", "try again later", "unsent"] {
            assert!(!r.stderr.contains(bad), "{}", r.stderr);
        }
    }
}
