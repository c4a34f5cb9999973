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
