//! Shared harness of the integration tests: a real emulator on a loopback port (in-process,
//! its own runtime) and a real `altinnfs mount` process mounted through the kernel.
#![allow(dead_code)]

use altinnfs::altinn::auth::StaticToken;
use altinnfs::altinn::http::{HttpClient, HttpConfig};
use altinnfs::altinn::model::{DataElement, Instance};
use altinnfs::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
use altinnfs::altinn::{AltinnClient, InstanceId, PartyId};
use altinnfs::emulator::{Emulator, EmulatorConfig, FaultConfig, Stats};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const APP: &str = "ttd/altinnfs-demo";

/// The client a test uses to look at the emulator beside a mount.
pub type SideClient = Retrying<HttpClient>;

/// An emulator with the sample app, served from its own tokio runtime so sync tests can use it.
pub struct TestEmulator {
    pub rt: tokio::runtime::Runtime,
    pub emu: Option<Emulator>,
    pub dir: tempfile::TempDir,
}

impl TestEmulator {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }
    /// The sample app with 20 instances: for tests that need no paging and no big file
    /// (the full sample writes ~75 MB and takes ~1.5 s to start, per test).
    pub fn small() -> Self {
        Self::start_with(|c| c.sample_instances = 20)
    }
    /// The smallest sample that holds the big PDFs (20 and 12 MiB, instances 1 and 2).
    pub fn with_big_files() -> Self {
        Self::start_with(|c| c.sample_instances = 100)
    }
    pub fn start_with(f: impl FnOnce(&mut EmulatorConfig)) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = EmulatorConfig::new(dir.path().join("data"));
        cfg.sample = true;
        f(&mut cfg);
        let emu = rt.block_on(Emulator::start(cfg)).expect("emulator starts");
        Self {
            rt,
            emu: Some(emu),
            dir,
        }
    }
    pub fn emu(&self) -> &Emulator {
        self.emu.as_ref().unwrap()
    }
    pub fn stats(&self) -> Stats {
        self.emu().stats()
    }
    pub fn reset_stats(&self) {
        self.emu().reset_stats()
    }
    pub fn set_faults(&self, f: FaultConfig) {
        self.emu().set_faults(f)
    }
    /// An HTTP client with the app owner's token, to look at the server beside the mount;
    /// inside the one retry policy, so injected faults do not fail the test's own look.
    pub fn client(&self) -> SideClient {
        let cfg = HttpConfig::new(&self.emu().app_url(), &self.emu().base_url(), APP);
        let http =
            HttpClient::new(cfg, Arc::new(StaticToken(self.emu().org_token("ttd")))).unwrap();
        Retrying::new(http, RetryPolicy::default(), PagePolicy::default())
    }
    /// Every instance of the app, as Storage lists them.
    pub fn instances(&self) -> Vec<Instance> {
        self.rt
            .block_on(self.client().query_instances(&vec![]))
            .unwrap()
    }
    /// A fresh instance for `party`, so a test does not share state with others.
    pub fn new_instance(&self, party: &str) -> Instance {
        self.rt
            .block_on(
                self.client()
                    .create_instance(PartyId::parse(party).unwrap()),
            )
            .unwrap()
    }
    /// The app owner deletes `inst` for good (as another client of the app would).
    pub fn delete_instance(&self, inst: &Instance) {
        self.rt
            .block_on(
                self.client()
                    .delete_instance(&InstanceId::of(inst).unwrap(), true),
            )
            .unwrap();
    }
    /// The data elements the server holds for `inst` now.
    pub fn elements(&self, inst: &Instance) -> Vec<DataElement> {
        self.rt
            .block_on(
                self.client()
                    .list_data_elements(&InstanceId::of(inst).unwrap()),
            )
            .unwrap()
    }
    /// A test-only `/_emulator/act/...` request: change the store as someone else.
    pub fn act(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> serde_json::Value {
        let url = format!("{}/_emulator/act/{path}", self.emu().base_url());
        self.rt.block_on(async {
            let r = reqwest::Client::new()
                .request(method, &url)
                .header("content-type", "application/pdf")
                .body(body)
                .send()
                .await
                .expect("act request");
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            assert!(status.is_success(), "{url}: {status} {text}");
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        })
    }
    /// Write an org token to a 0600 file and return its path.
    pub fn org_token_file(&self) -> PathBuf {
        self.token_file(self.emu().org_token("ttd"))
    }
    pub fn token_file(&self, token: String) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(format!("token-{}", rand_suffix()));
        std::fs::write(&p, token).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }
    /// The emulator's stored bytes of one element.
    pub fn blob(&self, guid: &str, data_id: &str) -> Vec<u8> {
        let p = self
            .emu()
            .data_dir()
            .join("blobs")
            .join(APP)
            .join(guid)
            .join("data")
            .join(data_id);
        std::fs::read(&p).unwrap_or_else(|e| panic!("blob {}: {e}", p.display()))
    }
}

impl Drop for TestEmulator {
    fn drop(&mut self) {
        if let Some(e) = self.emu.take() {
            self.rt.block_on(e.shutdown());
        }
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// A real `altinnfs mount` process; unmounts on drop.
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub spool: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Mount {
    pub fn new(emu: &TestEmulator, extra: &[&str]) -> Self {
        Self::with_token(emu, emu.org_token_file(), extra)
    }
    pub fn with_token(emu: &TestEmulator, token_file: PathBuf, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        let spool = match extra.iter().position(|a| *a == "--spool-dir") {
            Some(i) => PathBuf::from(extra[i + 1]),
            None => dir.path().join("spool"),
        };
        let log = dir.path().join("altinnfs.log");
        std::fs::create_dir_all(&path).unwrap();
        let app_url = emu.emu().app_url();
        let platform_url = emu.emu().base_url();
        let mut args: Vec<String> = vec![
            "mount".into(),
            APP.into(),
            path.display().to_string(),
            "--app-url".into(),
            app_url,
            "--platform-url".into(),
            platform_url,
            "--token-file".into(),
            token_file.display().to_string(),
            "--foreground".into(),
            "--log-file".into(),
            log.display().to_string(),
            "--log-level".into(),
            "debug".into(),
        ];
        if !extra.contains(&"--spool-dir") {
            args.push("--spool-dir".into());
            args.push(spool.display().to_string());
        }
        if !extra.contains(&"--cache-dir") {
            // The metadata index of this mount alone (a test that remounts warm passes its own).
            args.push("--cache-dir".into());
            args.push(dir.path().join("cache").display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_altinnfs"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("altinnfs runs");
        let m = Mount {
            dir,
            path,
            spool,
            log,
            child: Some(child),
        };
        m.wait_ready();
        m
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if is_mounted(&self.path) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mount did not come up; log:\n{}", self.log_text());
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmount and wait for the daemon to exit; returns its exit status success.
    pub fn unmount(&mut self) -> bool {
        let mut unmounted = self.fusermount_u();
        if let Some(mut c) = self.child.take() {
            // A loaded CI machine (2 cores, other mounts) can take a while to end a session.
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut next_try = Instant::now();
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    return st.success();
                }
                // EBUSY: a process another test forked (before its exec closed the
                // descriptors) can hold a file of this mount open for a moment.
                if !unmounted && Instant::now() >= next_try {
                    unmounted = self.fusermount_u();
                    next_try = Instant::now() + Duration::from_millis(200);
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        true
    }

    fn fusermount_u(&self) -> bool {
        Command::new("fusermount3")
            .arg("-u")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.unmount();
        }
        if is_mounted(&self.path) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let want = std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).map(Path::new) == Some(want.as_path()))
}

/// Run a shell command line; returns the Output (never panics on failure).
pub fn sh(cmd: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash runs")
}

/// Run and require success; returns stdout.
pub fn sh_ok(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "`{cmd}` failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Run and require failure; returns stderr.
pub fn sh_err(cmd: &str) -> String {
    let o = sh(cmd);
    assert!(
        !o.status.success(),
        "`{cmd}` should have failed:\nstdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A small tmpfs of its own (the "disk" a test fills up); unmounted on drop. None where this
/// process may not mount one.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn new(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let o = sh(&format!(
            "mount -t tmpfs -o size={size},mode=0700 tmpfs '{}'",
            dir.path().display()
        ));
        o.status.success().then_some(Self { dir })
    }
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
    /// Fill what is left (dd stops at ENOSPC).
    pub fn fill(&self) {
        sh(&format!(
            "dd if=/dev/zero of='{}/filler' bs=64k 2>/dev/null",
            self.path().display()
        ));
        let free = sh_ok(&format!(
            "df --output=avail -k '{}' | tail -1",
            self.path().display()
        ));
        assert_eq!(free.trim(), "0", "the disk is full");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        sh(&format!("umount -l '{}'", self.dir.path().display()));
    }
}
