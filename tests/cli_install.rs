//! `scripts/install.sh`: installs the binary, the man page and completions (staged with DESTDIR
//! so the test leaves the system alone), and `--uninstall` removes them.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_altinnfs");

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh")
}

#[test]
fn install_and_uninstall_into_a_staging_root() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg("--no-build")
        .env("DESTDIR", root.path())
        .env("BIN", BIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = root.path().join("usr/local/bin/altinnfs");
    let man = root.path().join("usr/local/share/man/man1/altinnfs.1");
    let comp = root.path().join("etc/bash_completion.d/altinnfs");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::metadata(&man).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(BIN).unwrap());
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("altinnfs "));
    let c = std::fs::read_to_string(&comp).unwrap();
    assert!(
        c.contains("altinnfs") && c.contains("complete"),
        "bash completions"
    );
    // The man page renders (man-db's `man -l`), when man is there.
    if let Ok(o) = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&man)
        .env("MANWIDTH", "80")
        .output()
    {
        if o.status.success() {
            let t = String::from_utf8_lossy(&o.stdout);
            assert!(t.contains("fuse.altinnfs") && t.contains("fstab"), "{t}");
        }
    }
    // A PREFIX elsewhere puts completions under it.
    let root2 = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg("--no-build")
        .env("DESTDIR", root2.path())
        .env("PREFIX", "/opt/altinnfs")
        .env("BIN", BIN)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(root2.path().join("opt/altinnfs/bin/altinnfs").is_file());
    assert!(root2
        .path()
        .join("opt/altinnfs/share/bash-completion/completions/altinnfs")
        .is_file());
    // Uninstall.
    let out = Command::new("bash")
        .arg(script())
        .arg("--uninstall")
        .env("DESTDIR", root.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!bin.exists() && !man.exists() && !comp.exists());
}

#[test]
fn install_refuses_bad_input() {
    let out = Command::new("bash")
        .arg(script())
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg("--no-build")
        .env("DESTDIR", root.path())
        .env("BIN", root.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an executable"));
}
