//! Issue 5: mounting the way mount(8) and /etc/fstab do it — `mount -t fuse.altinnfs ORG/APP MNT
//! -o key=value,...` through Debian's `mount.fuse3`, `mount -T FSTAB MNT`, then `umount MNT`.
//!
//! mount(8) runs `/sbin/mount.fuse` without the caller's PATH, and mount.fuse3 starts the
//! filesystem program with `/bin/sh -c 'altinnfs ...'`, so the shell's default PATH
//! (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`) decides which `altinnfs` runs
//! — which is why `scripts/install.sh` puts it in /usr/local/bin. To test the freshly built
//! binary without touching the system, the mount(8) tests run in a private mount namespace
//! (`unshare -m`) where `/usr/local/sbin` is a bind mount of a directory holding only a link to
//! `target/debug/altinnfs`. The helper itself (`mount.fuse3`) does honour PATH, which the last
//! test uses directly.

mod mount_support;
use mount_support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_altinnfs");

struct Fx {
    emu: TestEmulator,
    dir: tempfile::TempDir,
    token: PathBuf,
}

impl Fx {
    fn new() -> Self {
        let emu = TestEmulator::start();
        let token = emu.org_token_file();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let sbin = dir.path().join("sbin");
        std::fs::create_dir(&sbin).unwrap();
        std::os::unix::fs::symlink(BIN, sbin.join("altinnfs")).unwrap();
        Fx { emu, dir, token }
    }
    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
    fn log(&self) -> PathBuf {
        self.dir.path().join("altinnfs.log")
    }
    /// The `-o` string of an fstab line.
    fn opts(&self) -> String {
        format!(
            "app_url={},platform_url={},token_file={},spool_dir={},log_file={},log_level=debug",
            self.emu.emu().app_url(),
            self.emu.emu().base_url(),
            self.token.display(),
            self.dir.path().join("spool").display(),
            self.log().display()
        )
    }
    /// Run `script` with bash in a private mount namespace where `altinnfs` on the default PATH
    /// is this build. Bounded; returns (success, stdout, stderr).
    fn in_namespace(&self, script: &str) -> (bool, String, String) {
        let full = format!(
            "set -u\nmount --bind '{}' /usr/local/sbin || exit 99\n{script}",
            self.dir.path().join("sbin").display()
        );
        bounded(
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "bash", "-c"])
                .arg(full),
            Duration::from_secs(90),
        )
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        if is_mounted(&self.mnt()) {
            let _ = Command::new("umount").arg(self.mnt()).status();
        }
        if !wait_daemon_gone(&self.mnt()) {
            // Left behind in a namespace by a failed test: SIGTERM unmounts it there.
            for pid in daemons(&self.mnt()) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
    }
}

fn bounded(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("o"), dir.path().join("e"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
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
            panic!(
                "{cmd:?} hung; stderr:\n{}",
                std::fs::read_to_string(&e).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    (
        ok,
        std::fs::read_to_string(&o).unwrap_or_default(),
        std::fs::read_to_string(&e).unwrap_or_default(),
    )
}

/// Pids of altinnfs processes whose command line names `mnt`.
fn daemons(mnt: &Path) -> Vec<i32> {
    let want = mnt.to_string_lossy().to_string();
    let mut v = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let s = String::from_utf8_lossy(&cmd).to_string();
        if s.contains("altinnfs") && s.split('\0').any(|a| a == want) {
            v.push(pid);
        }
    }
    v
}

fn wait_daemon_gone(mnt: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if daemons(mnt).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-m", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! need_unshare {
    () => {
        if !can_unshare() {
            eprintln!("skipped: unshare -m is not permitted here (needs root/CAP_SYS_ADMIN)");
            return;
        }
    };
}

#[test]
fn mount_t_fuse_altinnfs_then_umount() {
    need_unshare!();
    let fx = Fx::new();
    let mnt = fx.mnt();
    let script = format!(
        r#"
mount -t fuse.altinnfs {APP} '{mnt}' -o '{opts},_netdev' || exit 1
echo "MOUNTED $(grep -c ' {mnt} ' /proc/self/mountinfo)"
grep ' {mnt} ' /proc/self/mountinfo
ls '{mnt}'
grep -q '"id": *"{APP}"' '{mnt}/applicationmetadata.json' && echo METADATA_OK
ls '{mnt}/510001' | head -2
umount '{mnt}' || exit 2
echo "UMOUNTED $(grep -c ' {mnt} ' /proc/self/mountinfo)"
"#,
        mnt = mnt.display(),
        opts = fx.opts()
    );
    let (ok, out, err) = fx.in_namespace(&script);
    assert!(
        ok,
        "stdout:\n{out}\nstderr:\n{err}\nlog:\n{}",
        fx.log_text()
    );
    assert!(out.contains("MOUNTED 1"), "{out}");
    assert!(
        out.contains("applicationmetadata.json") && out.contains("510001"),
        "{out}"
    );
    assert!(out.contains("METADATA_OK"), "{out}");
    assert!(out.contains("UMOUNTED 0"), "{out}");
    assert!(wait_daemon_gone(&mnt), "the daemon exits after umount");
    // The options mount.fuse3 adds (rw, dev, suid) were accepted and the ones given were used.
    let log = fx.log_text();
    assert!(log.contains("mounted ttd/altinnfs-demo"), "{log}");
    assert!(
        log.contains(&fx.emu.emu().base_url()),
        "app_url/platform_url used"
    );
}

#[test]
fn fstab_line_via_mount_capital_t() {
    need_unshare!();
    let fx = Fx::new();
    let mnt = fx.mnt();
    let fstab = fx.dir.path().join("fstab");
    // What a user puts in /etc/fstab: noauto and nofail, systemd and comment options, ro, a
    // query filter whose value contains '='.
    std::fs::write(
        &fstab,
        format!(
            "# altinnfs test fstab\n{APP}  {}  fuse.altinnfs  noauto,nofail,_netdev,x-systemd.automount,ro,metadata_ttl=5,query=excludeConfirmedBy=ttd,{}  0  0\n",
            mnt.display(),
            fx.opts()
        ),
    )
    .unwrap();
    let script = format!(
        r#"
mount -T '{fstab}' '{mnt}' || exit 1
findmnt -n -o FSTYPE,OPTIONS '{mnt}'
ls '{mnt}/510001' | wc -l
inst=$(ls '{mnt}/510001' | head -1)
if (echo x > "{mnt}/510001/$inst/attachment/new.pdf") 2>&1; then echo WROTE; fi
umount '{mnt}' || exit 2
echo UMOUNTED
"#,
        fstab = fstab.display(),
        mnt = mnt.display()
    );
    let (ok, out, err) = fx.in_namespace(&script);
    assert!(
        ok,
        "stdout:\n{out}\nstderr:\n{err}\nlog:\n{}",
        fx.log_text()
    );
    assert!(out.contains("UMOUNTED"), "{out}");
    assert!(!out.contains("WROTE"), "ro: {out}");
    assert!(
        out.contains("Read-only file system") || out.contains("Operation not permitted"),
        "{out}"
    );
    let log = fx.log_text();
    assert!(
        log.contains("excludeConfirmedBy=ttd"),
        "query filter from fstab used:\n{log}"
    );
    assert!(wait_daemon_gone(&mnt));
}

#[test]
fn mount_t_with_a_bad_option_fails_with_a_message() {
    need_unshare!();
    let fx = Fx::new();
    let mnt = fx.mnt();
    let script = format!(
        "mount -t fuse.altinnfs {APP} '{}' -o '{},no_such_option=1'; echo rc=$?",
        mnt.display(),
        fx.opts()
    );
    let (_, out, err) = fx.in_namespace(&script);
    assert!(!out.contains("rc=0"), "{out}");
    assert!(err.contains("no-such-option"), "names the option: {err}");
    assert!(!is_mounted(&mnt));
    // A server that is not there: mount(8) fails, no hang.
    let script = format!(
        "mount -t fuse.altinnfs {APP} '{}' -o app_url=http://127.0.0.1:1/{APP},platform_url=http://127.0.0.1:1,token_file={},timeout=2; echo rc=$?",
        mnt.display(),
        fx.token.display()
    );
    let (_, out, err) = fx.in_namespace(&script);
    assert!(!out.contains("rc=0"), "{out}");
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn mount_fuse3_helper_finds_altinnfs_in_path() {
    let fx = Fx::new();
    let mnt = fx.mnt();
    let bindir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bindir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (ok, out, err) = bounded(
        Command::new("/sbin/mount.fuse3")
            .arg(APP)
            .arg(&mnt)
            .args(["-t", "fuse.altinnfs", "-o"])
            .arg(format!("{},_netdev,rw", fx.opts()))
            .env("PATH", path),
        Duration::from_secs(60),
    );
    assert!(ok, "{out}\n{err}\nlog:\n{}", fx.log_text());
    assert!(is_mounted(&mnt));
    assert!(mnt.join("applicationmetadata.json").is_file());
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    assert!(!is_mounted(&mnt));
    assert!(wait_daemon_gone(&mnt));
}

/// `findmnt -t fuse.altinnfs` (and mount(8)'s `-t` filters, `umount -a -t fuse.altinnfs`) rely
/// on the kernel knowing the subtype.
#[test]
fn mount_type_is_fuse_altinnfs() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &[]);
    let out = sh_ok(&format!("findmnt -n -o FSTYPE,SOURCE {}", m.path.display()));
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["fuse.altinnfs", APP]
    );
}
