//! Load (issue 6): 8 parallel readers and 8 parallel writers, each on its own instance, for
//! `ALTINNFS_LOAD_SECS` seconds (default 20; the full run is 60). No operation may fail
//! and the daemon's peak RSS (VmHWM) stays under 256 MiB.

#[path = "mount_support/mod.rs"]
mod common;
use common::*;

use altinnfs::altinn::model::Instance;
use altinnfs::altinn::AltinnClient;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The pid of the `altinnfs mount` process serving `mnt`.
fn daemon_pid(mnt: &Path) -> u32 {
    let want = mnt.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect();
        if args.iter().any(|a| a == "mount") && args.contains(&want) {
            return pid;
        }
    }
    panic!("no daemon for {want}");
}

fn vm_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn eight_readers_and_eight_writers() {
    let secs: u64 = std::env::var("ALTINNFS_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let emu = TestEmulator::start();
    let all: Vec<Instance> = emu
        .rt
        .block_on(emu.client().query_instances(&vec![]))
        .unwrap();
    // Readers: the 8 instances with the most bytes.
    let mut readable: Vec<&Instance> = all.iter().filter(|i| !i.data.is_empty()).collect();
    readable.sort_by_key(|i| std::cmp::Reverse(i.data.iter().map(|d| d.size).sum::<i64>()));
    let readers: Vec<PathBuf> = readable[..8]
        .iter()
        .map(|i| PathBuf::from(format!("{}/{}", i.party_id(), i.guid())))
        .collect();
    // Writers: 8 fresh instances.
    let writers: Vec<PathBuf> = (0..8)
        .map(|_| {
            let i = emu
                .rt
                .block_on(emu.client().create_instance("510001".parse().unwrap()))
                .unwrap();
            PathBuf::from(format!("{}/{}", i.party_id(), i.guid()))
        })
        .collect();
    let m = Mount::new(&emu, &[]);
    let pid = daemon_pid(&m.path);
    let root = m.path.clone();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut hs = vec![];
    for (k, rel) in readers.into_iter().enumerate() {
        let dir = root.join(rel);
        hs.push(std::thread::spawn(move || {
            let (mut ops, mut bytes, mut errs) = (0u64, 0u64, vec![]);
            while Instant::now() < deadline {
                let files = sh(&format!(
                    "find {} -mindepth 2 -type f -print0 | xargs -0 stat -c '%s %n'",
                    dir.display()
                ));
                for l in String::from_utf8_lossy(&files.stdout).lines() {
                    let (size, path) = l.split_once(' ').unwrap();
                    match std::fs::read(path) {
                        Ok(b) if b.len().to_string() == size => {
                            bytes += b.len() as u64;
                            ops += 1
                        }
                        Ok(b) => errs.push(format!("reader {k}: {path}: {} of {size}", b.len())),
                        Err(e) => errs.push(format!("reader {k}: {path}: {e}")),
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
            (ops, bytes, errs)
        }));
    }
    for (k, rel) in writers.into_iter().enumerate() {
        let dir = root.join(rel).join("other");
        hs.push(std::thread::spawn(move || {
            let (mut ops, mut bytes, mut errs) = (0u64, 0u64, vec![]);
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let len = 1000 + ((n * 7919 + k as u64 * 104729) % 300_000) as usize;
                let data: Vec<u8> = (0..len)
                    .map(|i| (i as u64 * 31 + n + k as u64) as u8)
                    .collect();
                let p = dir.join(format!("w{k}-{n}.txt"));
                if let Err(e) = std::fs::write(&p, &data) {
                    errs.push(format!("writer {k}: write {}: {e}", p.display()));
                    continue;
                }
                match std::fs::read(&p) {
                    Ok(b) if b == data => {}
                    Ok(b) => errs.push(format!("writer {k}: read back {} of {len}", b.len())),
                    Err(e) => errs.push(format!("writer {k}: read back: {e}")),
                }
                // Keep the instance small: remove every other file.
                if n.is_multiple_of(2) {
                    if let Err(e) = std::fs::remove_file(&p) {
                        errs.push(format!("writer {k}: unlink: {e}"));
                    }
                }
                ops += 1;
                bytes += len as u64;
            }
            (ops, bytes, errs)
        }));
    }
    let mut peak = 0;
    while Instant::now() < deadline {
        peak = peak.max(vm_kib(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(250));
    }
    let (mut ops, mut bytes, mut errs) = (0u64, 0u64, vec![]);
    for h in hs {
        let (o, b, e) = h.join().unwrap();
        ops += o;
        bytes += b;
        errs.extend(e);
    }
    let hwm = vm_kib(pid, "VmHWM:");
    eprintln!(
        "load: {secs}s, {ops} ops, {bytes} bytes, {} errors, RSS peak {peak} KiB, VmHWM {hwm} KiB",
        errs.len()
    );
    assert!(errs.is_empty(), "errors under load:\n{}", errs.join("\n"));
    assert!(ops > 16, "every worker made progress ({ops} ops)");
    assert!(hwm < 256 * 1024, "VmHWM {hwm} KiB >= 256 MiB");
    assert!(is_mounted(&m.path));
}
