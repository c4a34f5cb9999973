//! Walk prefetch through a real kernel mount (SPEC §4 "Many files"): `cp -r` of an app at
//! 20 ms per request (the emulator's latency fault) gets every file with the server's bytes
//! and downloads each element exactly once, prefetched or not. Correctness, not speed.

mod mount_support;
use mount_support::*;

use altinnfs::emulator::FaultConfig;

#[test]
fn cp_r_at_20_ms_downloads_each_element_exactly_once() {
    let emu = TestEmulator::start();
    let all = emu.instances();
    let party = all[0].party_id();
    let mine: Vec<_> = all.iter().filter(|i| i.party_id() == party).collect();
    let m = Mount::new(&emu, &[]);
    sh_ok(&format!("ls {} > /dev/null", m.path.display()));
    emu.set_faults(FaultConfig {
        latency_ms: 20,
        ..Default::default()
    });
    emu.reset_stats();
    let dest = m.dir.path().join("copy");
    sh_ok(&format!(
        "cp -r {} {}",
        m.p(&party).display(),
        dest.display()
    ));
    emu.set_faults(FaultConfig::default());
    let s = emu.stats();
    let elements: usize = mine.iter().map(|i| i.data.len()).sum();
    assert_eq!(s.blob_downloads as usize, elements, "one GET per element");
    let twice: Vec<_> = s
        .per_path
        .iter()
        .filter(|(k, n)| k.contains("/data/") && **n > 1)
        .collect();
    assert!(twice.is_empty(), "downloaded more than once: {twice:?}");
    for i in &mine {
        for d in &i.data {
            let src = emu.blob(i.guid(), &d.id);
            let copied = dest.join(i.guid()).join(&d.data_type);
            let found = std::fs::read_dir(&copied)
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .any(|b| b == src);
            assert!(found, "{}/{} has the server's bytes", i.guid(), d.id);
        }
    }
}

/// Every party of the small sample copied out by `copy` (run in the mount's root with the
/// party names and the destination) at 20 ms a request: the walk crosses from party to party,
/// and each element is downloaded exactly once, with the server's bytes in the copy.
fn copy_all_parties_at_20_ms(copy: impl Fn(&str, &std::path::Path) -> String) {
    let emu = TestEmulator::small();
    let all = emu.instances();
    let m = Mount::new(&emu, &[]);
    let parties = sh_ok(&format!("cd {} && ls -d [0-9]*", m.path.display()));
    let parties = parties.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(parties.contains(' '), "several parties: {parties}");
    emu.set_faults(FaultConfig {
        latency_ms: 20,
        ..Default::default()
    });
    emu.reset_stats();
    let dest = m.dir.path().join("copy");
    std::fs::create_dir_all(&dest).unwrap();
    sh_ok(&format!(
        "cd {} && {}",
        m.path.display(),
        copy(&parties, &dest)
    ));
    emu.set_faults(FaultConfig::default());
    let s = emu.stats();
    let elements: usize = all.iter().map(|i| i.data.len()).sum();
    assert_eq!(s.blob_downloads as usize, elements, "one GET per element");
    let twice: Vec<_> = s
        .per_path
        .iter()
        .filter(|(k, n)| k.contains("/data/") && **n > 1)
        .collect();
    assert!(twice.is_empty(), "downloaded more than once: {twice:?}");
    for i in &all {
        for d in &i.data {
            let src = emu.blob(i.guid(), &d.id);
            let copied = dest.join(i.party_id()).join(i.guid()).join(&d.data_type);
            let found = std::fs::read_dir(&copied)
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .any(|b| b == src);
            assert!(found, "{}/{} has the server's bytes", i.guid(), d.id);
        }
    }
}

#[test]
fn tar_of_every_party_at_20_ms_downloads_each_element_exactly_once() {
    // Through a pipe: GNU tar skips reading file contents when writing to /dev/null.
    copy_all_parties_at_20_ms(|parties, dest| {
        format!("tar cf - {parties} | tar xf - -C {}", dest.display())
    });
}

#[test]
fn rsync_of_every_party_at_20_ms_downloads_each_element_exactly_once() {
    copy_all_parties_at_20_ms(|parties, dest| format!("rsync -a {parties} {}/", dest.display()));
}

/// Read the first file of a party's walk (one `cat`) on a fresh mount with `extra`, at 20 ms
/// a request, and return how many blob downloads the server saw by a second later.
fn downloads_after_reading_one_file(extra: &[&str]) -> u64 {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, extra);
    // The walk's directories, listed (readdir order is the walk's order).
    let first = sh_ok(&format!(
        "find {} -type f -path '*/attachment/*' | head -1",
        m.p(&party).display()
    ));
    let first = first.trim();
    assert!(!first.is_empty(), "a file to read");
    emu.set_faults(FaultConfig {
        latency_ms: 20,
        ..Default::default()
    });
    emu.reset_stats();
    sh_ok(&format!("cat '{first}' > /dev/null"));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let n = emu.stats().blob_downloads;
    emu.set_faults(FaultConfig::default());
    n
}

/// Issue 14: `--prefetch-files 0` turns walk prefetch off through the command line: reading
/// one file downloads that file only, where the default prefetches the next ones.
#[test]
fn prefetch_files_0_on_the_command_line_downloads_only_what_is_read() {
    assert_eq!(
        downloads_after_reading_one_file(&["--prefetch-files", "0"]),
        1
    );
    let on = downloads_after_reading_one_file(&[]);
    assert!(
        on > 1,
        "the default prefetches the next files ({on} downloads)"
    );
}

/// Issue 14 "a stalled download in a prefetch slot frees the slot within the timeout": the
/// walk's next file stalls (the server never answers it). Its prefetch must give up after
/// one `--timeout`, so its slot serves the walk again; the reader's own open retries later.
/// (A prefetch's GET went through the whole retry policy: 5 GETs of `--timeout` each, the
/// slot held all along, minutes at the default 60 s.)
#[test]
fn a_stalled_prefetch_gives_up_its_slot_after_one_timeout() {
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let inst = emu.act(
        reqwest::Method::POST,
        &format!("submit?party={party}&attachments=4"),
        vec![],
    );
    let guid = inst["id"].as_str().unwrap().split_once('/').unwrap().1;
    let timeout = 2u64;
    let m = Mount::new(
        &emu,
        &["--timeout", &timeout.to_string(), "--prefetch-files", "1"],
    );
    let dir = m.p(&format!("{party}/{guid}/attachment"));
    let files = sh_ok(&format!("find '{}' -type f", dir.display()));
    let files: Vec<&str> = files.lines().collect();
    assert_eq!(files.len(), 4, "{files:?}");
    let name = files[1].rsplit('/').next().unwrap();
    let stalled = inst["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["filename"] == name)
        .and_then(|d| d["id"].as_str())
        .unwrap()
        .to_string();
    emu.set_faults(FaultConfig {
        stall_rate: 1.0,
        stall_ms: 60_000,
        route_filter: Some(stalled.clone()),
        ..Default::default()
    });
    emu.reset_stats();
    sh_ok(&format!("cat '{}' > /dev/null", files[0]));
    let gets = || {
        emu.stats()
            .per_path
            .iter()
            .filter(|(k, _)| k.starts_with("GET ") && k.ends_with(&stalled))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    // Long enough for several attempts of `--timeout` each.
    std::thread::sleep(std::time::Duration::from_secs(4 * timeout + 2));
    let n = gets();
    emu.set_faults(FaultConfig::default());
    assert!(n >= 1, "the stalled file was prefetched");
    assert_eq!(
        n, 1,
        "the stalled prefetch was asked {n} times: it held its slot past one timeout"
    );
}
