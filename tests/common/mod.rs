//! Shared helpers: a real FUSE mount of a `MemoryClient` in a temp dir, driven by real tools.
#![allow(dead_code)]

use altinnfs::altinn::memory::MemoryClient;
use altinnfs::altinn::retry::{PagePolicy, RetryPolicy, Retrying};
use altinnfs::fs::{AltinnFs, FsConfig};
use altinnfs::mount::{mount_background, mount_options, MountHandle};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

pub struct TestMount {
    pub client: Arc<MemoryClient>,
    pub mnt: PathBuf,
    pub spool: PathBuf,
    handle: Option<MountHandle<Retrying<Arc<MemoryClient>>>>,
    rt: Option<tokio::runtime::Runtime>,
    _tmp: tempfile::TempDir,
}

impl TestMount {
    pub fn new(client: MemoryClient) -> Self {
        Self::with(client, |_| {})
    }

    pub fn with(client: MemoryClient, f: impl FnOnce(&mut FsConfig)) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("altinnfs-test-")
            .tempdir()
            .unwrap();
        let mnt = tmp.path().join("mnt");
        let spool = tmp.path().join("spool");
        std::fs::create_dir(&mnt).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let client = Arc::new(client);
        // The one retry policy a mount has, waiting milliseconds.
        let policy = RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(50),
        };
        let retrying = Retrying::new(client.clone(), policy, PagePolicy::default());
        let mut cfg = FsConfig::new(&spool);
        f(&mut cfg);
        let read_only = cfg.read_only;
        let fs = rt
            .block_on(AltinnFs::new(Arc::new(retrying), cfg))
            .expect("core");
        let handle = mount_background(
            Arc::new(fs),
            rt.handle().clone(),
            &mnt,
            &mount_options(read_only, false),
        )
        .expect("mount");
        let mnt = mnt.canonicalize().unwrap();
        Self {
            client,
            mnt,
            spool,
            handle: Some(handle),
            rt: Some(rt),
            _tmp: tmp,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Run `sh -c cmd` in the mount's root.
    pub fn sh(&self, cmd: &str) -> Output {
        Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&self.mnt)
            .output()
            .expect("sh")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, cmd: &str) -> String {
        let o = self.sh(cmd);
        assert!(
            o.status.success(),
            "`{cmd}` failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, cmd: &str) -> String {
        let o = self.sh(cmd);
        assert!(!o.status.success(), "`{cmd}` should have failed");
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.mnt)
    }

    pub fn unmount(&mut self) {
        if let (Some(mut h), Some(rt)) = (self.handle.take(), self.rt.as_ref()) {
            h.unmount_with(rt.handle(), Duration::from_secs(30));
        }
    }

    /// `PARTY/GUID` of the first instance of a party (sorted by GUID).
    pub fn instance_dir(&self, party: &str) -> String {
        let mut v: Vec<String> = self
            .client
            .instances()
            .into_iter()
            .filter(|i| i.party_id() == party)
            .map(|i| i.guid().to_string())
            .collect();
        v.sort();
        format!("{party}/{}", v[0])
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        self.unmount();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let m = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = p.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(4) == Some(&p))
}

/// Deterministic test bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (((i as u64 * 2654435761u64) >> 7) as u8) ^ seed)
        .collect()
}
