//! Faults (issue 6): with the emulator injecting 5xx/429 (with Retry-After), dropped
//! connections, truncated bodies, stalls and a token that expires mid-run, trees copied out of
//! and into the mount end byte-identical, with no duplicate elements, and every failure either
//! retried to success or reported (at close() for writes, the spool kept in `unsent/`).
//!
//! Scale: the issue asks for 1,000 files each way; to keep this file under ~3 minutes on 2
//! cores the defaults are 300 files out and 200 in. `ALTINNFS_FAULT_FILES=1000` runs the full
//! size by hand (it scales both directions: N out, 2N/3 in).

#[path = "mount_support/mod.rs"]
mod common;
use common::*;

use altinnfs::altinn::model::{DataElement, Instance};
use altinnfs::altinn::AltinnClient;
use altinnfs::emulator::FaultConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn files_out() -> usize {
    std::env::var("ALTINNFS_FAULT_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn files_in() -> usize {
    files_out() * 2 / 3
}

fn inst_dir(m: &Mount, inst: &Instance) -> PathBuf {
    m.p(&format!("{}/{}", inst.party_id(), inst.guid()))
}

/// `n` files with deterministic pseudo-random content, 1 B .. ~96 KiB (a few of 1 MiB).
fn make_tree(dir: &Path, n: usize, seed: u64) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut total = 0u64;
    for i in 0..n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = if i % 50 == 7 {
            1 << 20
        } else {
            1 + (x >> 33) as usize % (96 * 1024)
        };
        let mut v = Vec::with_capacity(len);
        let mut y = x;
        while v.len() < len {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            v.extend_from_slice(&y.to_le_bytes());
        }
        v.truncate(len);
        total += len as u64;
        std::fs::write(dir.join(format!("f{i:05}.txt")), v).unwrap();
    }
    total
}

/// The fault mix of the issue: 20% 5xx/429 with Retry-After, dropped connections, truncated
/// bodies, 2 s stalls, and tokens that expire after `expiry` seconds.
fn faults(expiry: u64) -> FaultConfig {
    FaultConfig {
        error_rate: 0.2,
        retry_after_secs: 1,
        drop_rate: 0.03,
        truncate_rate: 0.05,
        stall_rate: 0.01,
        stall_ms: 2000,
        token_expiry_secs: Some(expiry),
        ..Default::default()
    }
}

/// Mount with a token minted under the fault config (so it expires mid-run).
fn faulty_mount(emu: &TestEmulator, expiry: u64) -> Mount {
    emu.set_faults(faults(expiry));
    let tf = emu.token_file(emu.emu().org_token("ttd"));
    Mount::with_token(emu, tf, &["--timeout", "10"])
}

/// Names that `rsync -rcn` (checksums) says differ between two trees; empty = identical.
fn rsync_diff(a: &Path, b: &Path) -> Vec<String> {
    let o = sh(&format!(
        "rsync -rcn --out-format=%n {}/ {}/",
        a.display(),
        b.display()
    ));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty() && *l != "./")
        .map(|s| s.to_string())
        .collect()
}

/// File names `cmd` complained about on stderr (cp/rsync quote them).
fn complained(stderr: &str) -> Vec<String> {
    let mut v: Vec<String> = stderr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .filter(|w| w.starts_with('f') && w.ends_with(".txt"))
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn tree_copied_out_under_faults_is_byte_identical_or_reported() {
    let n = files_out();
    let emu = TestEmulator::start();
    let t0 = Instant::now();
    // Three fresh instances of one party, n/3 files each in `other` (no limits), put there
    // through the mount without faults.
    let work = tempfile::tempdir().unwrap();
    let insts: Vec<Instance> = (0..3).map(|_| emu.new_instance("510001")).collect();
    let mut src_bytes = 0;
    {
        let m = Mount::new(&emu, &[]);
        for (k, inst) in insts.iter().enumerate() {
            let src = work.path().join(format!("src{k}"));
            src_bytes += make_tree(&src, n / 3, k as u64 + 1);
            sh_ok(&format!(
                "cp -r {}/. {}/other/",
                src.display(),
                inst_dir(&m, inst).display()
            ));
        }
    }
    for (k, inst) in insts.iter().enumerate() {
        assert_eq!(
            emu.elements(inst).len(),
            n / 3 + 1,
            "instance {k}: the files and the main form are stored"
        );
    }
    eprintln!(
        "setup: {} files, {src_bytes} bytes, {:?}",
        n / 3 * 3,
        t0.elapsed()
    );
    emu.reset_stats();
    let m = faulty_mount(&emu, 20);
    let mut reported = 0;
    let mut compared = 0u64;
    for (k, inst) in insts.iter().enumerate() {
        let src = work.path().join(format!("src{k}"));
        let other = inst_dir(&m, inst).join("other");
        // cp -r: every file it did not report is byte-identical.
        let dst = work.path().join(format!("cp{k}"));
        let t = Instant::now();
        let o = sh(&format!(
            "timeout 300 cp -r {} {}",
            other.display(),
            dst.display()
        ));
        assert_ne!(o.status.code(), Some(124), "cp -r hung");
        let errs = complained(&String::from_utf8_lossy(&o.stderr));
        reported += errs.len();
        let diff = rsync_diff(&src, &dst);
        let silent: Vec<&String> = diff.iter().filter(|d| !errs.contains(d)).collect();
        assert!(
            silent.is_empty(),
            "cp -r: files differ without an error: {silent:?}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        compared += src_bytes / 3;
        eprintln!(
            "cp -r out {k}: {:?}, {} reported errors",
            t.elapsed(),
            errs.len()
        );
        // rsync -a (a second, independent reader): same rule, then a second pass completes.
        let dst2 = work.path().join(format!("rsync{k}"));
        let o = sh(&format!(
            "timeout 300 rsync -a {}/ {}/",
            other.display(),
            dst2.display()
        ));
        assert_ne!(o.status.code(), Some(124), "rsync hung");
        let errs2 = complained(&String::from_utf8_lossy(&o.stderr));
        reported += errs2.len();
        let diff = rsync_diff(&src, &dst2);
        let silent: Vec<&String> = diff.iter().filter(|d| !errs2.contains(d)).collect();
        assert!(
            silent.is_empty(),
            "rsync -a: files differ without an error: {silent:?}"
        );
        // A retry pass (as a user would run) ends identical, still under faults.
        for _ in 0..3 {
            if rsync_diff(&src, &dst2).is_empty() {
                break;
            }
            let _ = sh(&format!(
                "timeout 300 rsync -a {}/ {}/",
                other.display(),
                dst2.display()
            ));
        }
        assert!(
            rsync_diff(&src, &dst2).is_empty(),
            "rsync retries end identical"
        );
        let o = sh(&format!("diff -r {} {}", src.display(), dst2.display()));
        assert!(o.status.success(), "diff -r after retries");
        compared += src_bytes / 3;
    }
    let s = emu.stats();
    eprintln!(
        "copy out: {} files x2 tools, ~{compared} bytes compared, {reported} reads reported as errors, {} requests, {:?}",
        n / 3 * 3,
        s.total,
        t0.elapsed()
    );
    // Reading never creates or changes elements.
    for inst in &insts {
        assert_eq!(emu.elements(inst).len(), n / 3 + 1);
    }
    assert_eq!(
        s.app_posts + s.app_puts + s.app_deletes,
        0,
        "reads wrote nothing"
    );
    assert!(is_mounted(&m.path), "mount stays up");
}

#[test]
fn tree_copied_in_under_faults_has_no_duplicates_and_keeps_failures() {
    let n = files_in();
    let emu = TestEmulator::start();
    let t0 = Instant::now();
    let inst = emu.new_instance("510002");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let src_bytes = make_tree(&src, n, 99);
    let m = faulty_mount(&emu, 20);
    let other = inst_dir(&m, &inst).join("other");
    // cp each file on its own so a failure is attributable to its close().
    let mut failed: Vec<String> = vec![];
    for i in 0..n {
        let name = format!("f{i:05}.txt");
        let t = Instant::now();
        let o = sh(&format!(
            "timeout 120 cp {}/{name} {}/{name}",
            src.display(),
            other.display()
        ));
        assert_ne!(o.status.code(), Some(124), "cp of {name} hung");
        assert!(t.elapsed() < Duration::from_secs(120));
        if !o.status.success() {
            failed.push(name);
        }
    }
    let took = t0.elapsed();
    let stats = emu.stats();
    emu.set_faults(FaultConfig::default());
    // The server: no duplicate filename, each stored element equals its source.
    let els = emu.elements(&inst);
    let mut by_name: BTreeMap<String, Vec<&DataElement>> = BTreeMap::new();
    for e in els.iter().filter(|e| e.data_type == "other") {
        by_name
            .entry(e.filename.clone().unwrap_or_default())
            .or_default()
            .push(e);
    }
    let dups: Vec<(&String, usize)> = by_name
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (k, v.len()))
        .collect();
    // Unsent: every failed cp left its bytes with a sidecar naming the file.
    let unsent = m.spool.join("unsent");
    let mut kept: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(&unsent) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("json") {
                let j: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                let f = j["filename"].as_str().unwrap_or_default().to_string();
                let data = p.with_extension("");
                let bytes = std::fs::read(&data).unwrap_or_default();
                kept.insert(f, bytes);
            }
        }
    }
    let mut stored_ok = 0;
    let mut lost = vec![];
    let mut corrupt = vec![];
    for i in 0..n {
        let name = format!("f{i:05}.txt");
        let want = std::fs::read(src.join(&name)).unwrap();
        match by_name.get(&name) {
            Some(v) => {
                if emu.blob(inst.guid(), &v[0].id) == want {
                    stored_ok += 1;
                } else {
                    corrupt.push(name.clone());
                }
            }
            None => {
                if kept.get(&name) != Some(&want) {
                    lost.push(name.clone());
                }
            }
        }
    }
    eprintln!(
        "copy in: {n} files ({src_bytes} bytes) in {took:?}; {stored_ok} stored identical, {} cp failures, {} unsent kept, {} duplicates, {} requests ({} POST, {} PUT)",
        failed.len(),
        kept.len(),
        dups.len(),
        stats.total,
        stats.app_posts,
        stats.app_puts
    );
    assert!(
        dups.is_empty(),
        "duplicate elements on the server: {dups:?}"
    );
    assert!(corrupt.is_empty(), "stored bytes differ: {corrupt:?}");
    assert!(
        lost.is_empty(),
        "neither stored nor kept in unsent/ with a sidecar: {lost:?}"
    );
    for f in &failed {
        assert!(
            kept.contains_key(f) || by_name.contains_key(f),
            "{f}: cp failed but nothing kept"
        );
    }
    // Every file not on the server was reported (cp failed).
    for (name, _) in kept.iter() {
        if !by_name.contains_key(name) {
            assert!(failed.contains(name), "{name} unsent but cp succeeded");
        }
    }
    // Retry the failures without faults: then the trees are identical.
    for f in &failed {
        if !by_name.contains_key(f) {
            sh_ok(&format!("cp {}/{f} {}/{f}", src.display(), other.display()));
        }
    }
    let back = work.path().join("back");
    sh_ok(&format!("cp -r {} {}", other.display(), back.display()));
    let o = sh(&format!("diff -r {} {}", src.display(), back.display()));
    assert!(
        o.status.success(),
        "diff -r after retrying: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(is_mounted(&m.path), "mount stays up");
}

#[test]
fn truncated_body_read_fails_with_eio() {
    let emu = TestEmulator::start();
    let all = emu
        .rt
        .block_on(emu.client().query_instances(&vec![]))
        .unwrap();
    let (inst, el) = all
        .iter()
        .flat_map(|i| i.data.iter().map(move |d| (i, d)))
        .max_by_key(|(_, d)| d.size)
        .unwrap();
    assert!(el.size > 1 << 20);
    let m = Mount::new(&emu, &["--timeout", "10"]);
    let dir = inst_dir(&m, inst).join(&el.data_type);
    let name = sh_ok(&format!(
        "cd {} && for f in *; do [ \"$(getfattr --only-values -n user.altinn.id \"$f\")\" = {} ] && echo \"$f\"; done",
        dir.display(),
        el.id
    ));
    let file = dir.join(name.trim());
    // Metadata is cached (the listing above); every blob body from now on is cut in half.
    emu.set_faults(FaultConfig {
        truncate_rate: 1.0,
        ..Default::default()
    });
    let t = Instant::now();
    let r = std::fs::read(&file);
    match r {
        Ok(b) => panic!(
            "a truncated body was returned as whole data: {} of {} bytes",
            b.len(),
            el.size
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(120), "{:?}", t.elapsed());
    // dd reading in blocks sees the error too (not a short, successful read).
    let o = sh(&format!(
        "dd if={} of=/dev/null bs=64k status=none",
        file.display()
    ));
    assert!(!o.status.success(), "dd of a truncated body succeeded");
    // Without faults the same file reads whole.
    emu.set_faults(FaultConfig::default());
    let b = std::fs::read(&file).unwrap();
    assert_eq!(b, emu.blob(inst.guid(), &el.id));
    assert!(is_mounted(&m.path));
}

#[test]
/// No hang: the read ends with EIO long before the 30 s stalls would add up.
fn a_stall_longer_than_the_timeout_gives_eio_in_bounded_time() {
    stall_read(Duration::from_secs(120));
}

/// The strict bound: at most 5 attempts of `--timeout` seconds each, plus backoff.
#[test]
fn a_stall_fails_within_the_attempts_times_the_timeout() {
    stall_read(Duration::from_secs(5 * 2 + 10));
}

fn stall_read(bound: Duration) {
    let emu = TestEmulator::start();
    let all = emu
        .rt
        .block_on(emu.client().query_instances(&vec![]))
        .unwrap();
    let (inst, el) = all
        .iter()
        .flat_map(|i| i.data.iter().map(move |d| (i, d)))
        .find(|(_, d)| d.data_type == "attachment")
        .unwrap();
    let timeout = 2u64;
    let m = Mount::new(&emu, &["--timeout", &timeout.to_string()]);
    let dir = inst_dir(&m, inst).join(&el.data_type);
    sh_ok(&format!("ls {} >/dev/null", dir.display()));
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    emu.set_faults(FaultConfig {
        stall_rate: 1.0,
        stall_ms: 30_000,
        ..Default::default()
    });
    let t = Instant::now();
    let r = std::fs::read(&file);
    let took = t.elapsed();
    emu.set_faults(FaultConfig::default());
    let e = r.expect_err("a read through a stalled server fails");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert!(took < bound, "took {took:?} with --timeout {timeout}");
    assert!(is_mounted(&m.path));
}
