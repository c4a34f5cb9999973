//! Write path through a real kernel mount against the emulator (the one model of Altinn):
//! cp, rsync, sed -i, touch, truncate, `>>`, rm, mv, mkdir/rmdir, setfattr, checked on the
//! server and read back through the kernel's caches. Request counts are the emulator's.
//! Scenarios without the kernel live in `tests/core/` (see tests/README.md).

mod mount_support;
use mount_support::*;

use altinnfs::altinn::model::Instance;
use altinnfs::altinn::{AltinnClient, InstanceId};
use altinnfs::emulator::FaultConfig;

fn inst_dir(m: &Mount, inst: &Instance) -> std::path::PathBuf {
    m.p(&format!("{}/{}", inst.party_id(), inst.guid()))
}

fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn pdf(n: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n".to_vec();
    v.resize(n, b'p');
    v
}

#[test]
fn cp_allowed_file_is_stored_with_name_and_type() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let src = write_file(m.dir.path(), "Søknad 2026.pdf", &pdf(70_000));
    let dst = inst_dir(&m, &inst).join("attachment");
    emu.reset_stats();
    sh_ok(&format!("cp '{}' {}/", src.display(), dst.display()));
    assert_eq!(emu.stats().app_posts, 1, "one POST");
    let els = emu.elements(&inst);
    let el = els
        .iter()
        .find(|d| d.data_type == "attachment")
        .expect("stored");
    assert_eq!(el.filename.as_deref(), Some("Søknad 2026.pdf"));
    assert_eq!(el.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(emu.blob(inst.guid(), &el.id), pdf(70_000));
    // Read-after-write: ls and stat show it at once, with the right size.
    let ls = sh_ok(&format!("ls -l {}", dst.display()));
    assert!(ls.contains("Søknad 2026.pdf"), "{ls}");
    let size = sh_ok(&format!("stat -c %s '{}/Søknad 2026.pdf'", dst.display()));
    assert_eq!(size.trim(), "70000");
    assert_eq!(
        std::fs::read(dst.join("Søknad 2026.pdf")).unwrap(),
        pdf(70_000)
    );
    let id = sh_ok(&format!(
        "getfattr --only-values -n user.altinn.id '{}/Søknad 2026.pdf'",
        dst.display()
    ));
    assert_eq!(id, el.id);
    // Overwrite is one PUT of the same element, and the kernel shows the new bytes at once.
    let src2 = write_file(m.dir.path(), "short.pdf", &pdf(1000));
    sh_ok(&format!(
        "cp {} '{}/Søknad 2026.pdf'",
        src2.display(),
        dst.display()
    ));
    let s = emu.stats();
    assert_eq!((s.app_posts, s.app_puts), (1, 1), "no new POST, one PUT");
    assert_eq!(emu.blob(inst.guid(), &el.id), pdf(1000));
    let size = sh_ok(&format!("stat -c %s '{}/Søknad 2026.pdf'", dst.display()));
    assert_eq!(size.trim(), "1000");
    assert_eq!(
        std::fs::read(dst.join("Søknad 2026.pdf")).unwrap(),
        pdf(1000)
    );
}

#[test]
fn empty_files_truncate_setattr_and_append() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let f = inst_dir(&m, &inst).join("other/empty.txt");
    let f = f.display();
    emu.reset_stats();
    sh_ok(&format!("touch {f}"));
    assert_eq!(emu.stats().app_posts, 0, "an empty file stays local");
    let pending = sh_ok(&format!(
        "getfattr --only-values -n user.altinn.pending {f}"
    ));
    assert_eq!(pending, "true");
    // Giving it content uploads it.
    sh_ok(&format!("echo hello > {f}"));
    assert_eq!(emu.stats().app_posts, 1);
    // Truncating an element to zero fails and leaves it unchanged.
    let e = sh_err(&format!("truncate -s 0 {f}"));
    assert!(e.contains("Invalid argument"), "{e}");
    assert_eq!(emu.stats().app_puts, 0);
    assert_eq!(sh_ok(&format!("cat {f}")), "hello\n");
    // chmod, touch and chown succeed and send nothing.
    sh_ok(&format!("chmod 600 {f} && touch {f} && chown 0:0 {f}"));
    assert_eq!(emu.stats().app_puts, 0);
    // Append goes through the spool with the old bytes first: one PUT.
    sh_ok(&format!("echo more >> {f}"));
    assert_eq!(sh_ok(&format!("cat {f}")), "hello\nmore\n");
    let s = emu.stats();
    assert_eq!((s.app_posts, s.app_puts), (1, 1));
    let el = emu
        .elements(&inst)
        .into_iter()
        .find(|d| d.filename.as_deref() == Some("empty.txt"))
        .expect("stored");
    assert_eq!(emu.blob(inst.guid(), &el.id), b"hello\nmore\n");
}

#[test]
fn refusals_map_to_errnos_and_send_nothing() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let dir = inst_dir(&m, &inst);
    let before = emu.elements(&inst).len();
    emu.reset_stats();
    // Disallowed type: EPERM at open, nothing sent.
    let txt = write_file(m.dir.path(), "notes.txt", b"hello");
    let e = sh_err(&format!(
        "cp {} {}/attachment/",
        txt.display(),
        dir.display()
    ));
    assert!(e.contains("Operation not permitted"), "{e}");
    // No extension: EINVAL.
    let noext = write_file(m.dir.path(), "README", b"hello");
    let e = sh_err(&format!("cp {} {}/other/", noext.display(), dir.display()));
    assert!(e.contains("Invalid argument"), "{e}");
    assert_eq!(emu.stats().app_posts, 0, "refused at open, nothing sent");
    // Too large for maxSize 25 MiB: EFBIG.
    let big = m.dir.path().join("big.pdf");
    std::fs::write(&big, pdf(26 * 1024 * 1024)).unwrap();
    let e = sh_err(&format!(
        "cp {} {}/attachment/",
        big.display(),
        dir.display()
    ));
    assert!(e.contains("File too large"), "{e}");
    assert!(
        !dir.join("attachment/big.pdf").exists(),
        "nothing left behind"
    );
    assert_eq!(
        emu.stats().app_posts,
        0,
        "too large is refused while bytes arrive"
    );
    assert_eq!(emu.elements(&inst).len(), before, "nothing stored");
    // Over maxCount 5: EDQUOT on the 6th.
    for i in 0..5 {
        let f = write_file(m.dir.path(), &format!("a{i}.pdf"), &pdf(100));
        sh_ok(&format!("cp {} {}/attachment/", f.display(), dir.display()));
    }
    let f = write_file(m.dir.path(), "a5.pdf", &pdf(100));
    let e = sh_err(&format!("cp {} {}/attachment/", f.display(), dir.display()));
    assert!(e.contains("Disk quota exceeded"), "{e}");
    assert_eq!(
        emu.elements(&inst)
            .iter()
            .filter(|d| d.data_type == "attachment")
            .count(),
        5
    );
    // The main form cannot be removed.
    let form = sh_ok(&format!("ls {}/model", dir.display()));
    if let Some(name) = form.lines().next() {
        let e = sh_err(&format!("rm '{}/model/{}'", dir.display(), name));
        assert!(e.contains("Operation not permitted"), "{e}");
    }
    assert_eq!(emu.stats().app_deletes, 0, "refused rm sends nothing");
    // Other files can.
    sh_ok(&format!("rm {}/attachment/a0.pdf", dir.display()));
    assert_eq!(
        emu.elements(&inst)
            .iter()
            .filter(|d| d.data_type == "attachment")
            .count(),
        4
    );
    assert!(!dir.join("attachment/a0.pdf").exists());
}

#[test]
fn rsync_folder_into_a_data_type_dir() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let src = m.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..12 {
        std::fs::write(
            src.join(format!("file{i}.txt")),
            format!("content {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let dst = inst_dir(&m, &inst).join("other");
    emu.reset_stats();
    sh_ok(&format!("rsync -a {}/ {}/", src.display(), dst.display()));
    let s = emu.stats();
    assert_eq!(s.app_posts, 12, "one POST per file, temp names stay local");
    assert_eq!(s.app_deletes, 0, "temp names never reached the server");
    let els = emu.elements(&inst);
    let mut names: Vec<String> = els
        .iter()
        .filter(|d| d.data_type == "other")
        .map(|d| d.filename.clone().unwrap_or_default())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("file{i}.txt")).collect();
    want.sort();
    assert_eq!(
        names, want,
        "names right, no rsync temp names left on the server"
    );
    for el in els.iter().filter(|d| d.data_type == "other") {
        let i: usize = el.filename.as_ref().unwrap()[4..]
            .trim_end_matches(".txt")
            .parse()
            .unwrap();
        assert_eq!(
            emu.blob(inst.guid(), &el.id),
            format!("content {i}\n").repeat(i + 1).into_bytes()
        );
    }
    // Identical on a check pass.
    let diff = sh_ok(&format!(
        "rsync -rcn --out-format=%n {}/ {}/",
        src.display(),
        dst.display()
    ));
    assert!(
        diff.trim().is_empty(),
        "rsync -c sees no difference: {diff}"
    );
}

#[test]
fn sed_in_place_on_form_data_is_a_put() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let all = emu
        .rt
        .block_on(emu.client().query_instances(&vec![]))
        .unwrap();
    let inst = all
        .into_iter()
        .find(|i| {
            i.is_active()
                && i.process
                    .as_ref()
                    .and_then(|p| p.current_task.as_ref())
                    .is_some()
                && i.data.iter().any(|d| d.data_type == "model" && !d.locked)
        })
        .expect("an active instance with form data");
    let form = inst
        .data
        .iter()
        .find(|d| d.data_type == "model")
        .unwrap()
        .clone();
    let m = Mount::new(&emu, &[]);
    let dir = inst_dir(&m, &inst).join("model");
    let name = sh_ok(&format!("ls {}", dir.display()))
        .lines()
        .next()
        .unwrap()
        .to_string();
    let before = String::from_utf8(emu.blob(inst.guid(), &form.id)).unwrap();
    emu.reset_stats();
    sh_ok(&format!(
        "sed -i 's/<a>/<a>9/' '{}/{}'",
        dir.display(),
        name
    ));
    let s = emu.stats();
    assert_eq!(s.app_posts, 0, "no POST");
    assert_eq!(s.app_deletes, 0, "no DELETE");
    assert!(s.app_puts >= 1, "a PUT");
    let els = emu.elements(&inst);
    let forms: Vec<_> = els.iter().filter(|d| d.data_type == "model").collect();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0].id, form.id, "same element");
    assert_eq!(forms[0].content_type.as_deref(), Some("application/xml"));
    let after = String::from_utf8(emu.blob(inst.guid(), &form.id)).unwrap();
    assert_ne!(before, after);
    assert!(after.contains("<a>9"), "{after}");
}

#[test]
fn upload_fault_is_reported_at_close_kept_in_unsent_and_not_duplicated() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let dst = inst_dir(&m, &inst).join("other");
    let src = write_file(m.dir.path(), "report.txt", b"important bytes\n");
    emu.set_faults(FaultConfig {
        error_rate: 1.0,
        route_filter: Some("/data".into()),
        ..Default::default()
    });
    let e = sh_err(&format!("cp {} {}/", src.display(), dst.display()));
    assert!(e.contains("Input/output error"), "{e}");
    emu.set_faults(FaultConfig::default());
    let unsent = m.spool.join("unsent");
    let kept = sh_ok(&format!("grep -rl report.txt {} || true", unsent.display()));
    assert!(
        !kept.trim().is_empty(),
        "a JSON sidecar names the file in unsent/"
    );
    let spooled = sh_ok(&format!(
        "grep -rl 'important bytes' {} || true",
        unsent.display()
    ));
    assert!(!spooled.trim().is_empty(), "the bytes are kept in unsent/");
    let side = std::fs::read_dir(&unsent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("sidecar");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
    assert_eq!(j["filename"], "report.txt");
    assert_eq!(j["dataType"], "other");
    assert_eq!(j["instance"], inst.guid());
    assert!(
        j["path"].as_str().unwrap().ends_with("other/report.txt"),
        "{j}"
    );
    // Retry by copying again: exactly one element results.
    sh_ok(&format!("cp {} {}/", src.display(), dst.display()));
    let n = emu
        .elements(&inst)
        .iter()
        .filter(|d| d.filename.as_deref() == Some("report.txt"))
        .count();
    assert_eq!(n, 1, "no duplicate element");
}

#[test]
fn mkdir_cp_rmdir_instance() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let m = Mount::new(&emu, &[]);
    let party = m.p("510001");
    let count = |e: &TestEmulator| {
        e.instances()
            .iter()
            .filter(|i| i.party_id() == "510001")
            .count()
    };
    let before = count(&emu);
    sh_ok(&format!("mkdir {}/my-case", party.display()));
    assert_eq!(count(&emu), before + 1, "mkdir made one instance");
    // The alias works, and the instance shows under its GUID.
    let src = write_file(m.dir.path(), "scan.png", b"\x89PNG\r\n\x1a\nrest");
    sh_ok(&format!(
        "cp {} {}/my-case/attachment/",
        src.display(),
        party.display()
    ));
    let guid = sh_ok(&format!(
        "getfattr --only-values -n user.altinn.id {}/my-case",
        party.display()
    ));
    let guid = guid.trim().rsplit('/').next().unwrap().to_string();
    let ls = sh_ok(&format!("ls {}", party.display()));
    assert!(ls.contains(&guid), "{ls}");
    assert!(party.join(&guid).join("attachment/scan.png").exists());
    // Data type directories cannot be made or removed.
    let e = sh_err(&format!("mkdir {}/my-case/attachment/sub", party.display()));
    assert!(e.contains("ermi"), "EPERM or EACCES: {e}");
    let e = sh_err(&format!("rmdir {}/my-case/attachment", party.display()));
    assert!(e.contains("ermi"), "EPERM or EACCES: {e}");
    sh_ok(&format!("rmdir {}/{}", party.display(), guid));
    let ls = sh_ok(&format!("ls {}", party.display()));
    assert!(
        !ls.contains(&guid),
        "deleted instance leaves the listing: {ls}"
    );
    let gone = emu.emu().store().get(&guid).expect("soft deleted, kept");
    assert!(
        gone.status.is_soft_deleted,
        "rmdir deleted it on the server"
    );
    // No data type directory can be made in an instance either.
    let inst = emu.new_instance("510001");
    let e = sh_err(&format!("mkdir {}/newtype", inst_dir(&m, &inst).display()));
    assert!(
        e.contains("Operation not permitted") || e.contains("Permission denied"),
        "{e}\n{}",
        m.log_text()
    );
}

#[test]
fn mv_at_max_count_across_data_types_then_process_next_locks() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let idir = inst_dir(&m, &inst);
    let dir = idir.join("attachment");
    for i in 0..5 {
        let f = write_file(m.dir.path(), &format!("a{i}.pdf"), &pdf(100 + i));
        sh_ok(&format!("cp {} {}/", f.display(), dir.display()));
    }
    // maxCount is 5: the rename must delete the old element before it adds the new one.
    sh_ok(&format!("mv {0}/a1.pdf {0}/renamed.pdf", dir.display()));
    let names = |e: &TestEmulator, dt: &str| {
        let mut v: Vec<String> = e
            .elements(&inst)
            .iter()
            .filter(|d| d.data_type == dt)
            .map(|d| d.filename.clone().unwrap_or_default())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&emu, "attachment"),
        ["a0.pdf", "a2.pdf", "a3.pdf", "a4.pdf", "renamed.pdf"]
    );
    assert_eq!(std::fs::read(dir.join("renamed.pdf")).unwrap(), pdf(101));
    assert!(!dir.join("a1.pdf").exists());
    // Across data type directories rename is EXDEV: mv copies, then removes.
    sh_ok(&format!(
        "mv {}/renamed.pdf {}/other/",
        dir.display(),
        idir.display()
    ));
    assert_eq!(
        std::fs::read(idir.join("other/renamed.pdf")).unwrap(),
        pdf(101)
    );
    assert!(!dir.join("renamed.pdf").exists());
    assert_eq!(names(&emu, "other"), ["renamed.pdf"]);
    assert_eq!(names(&emu, "attachment").len(), 4);
    // process/next moves the task; the kernel then shows the elements locked (0444, EPERM).
    sh_ok(&format!(
        "setfattr -n user.altinn.process -v next {}",
        idir.display()
    ));
    let task = sh_ok(&format!(
        "getfattr --only-values -n user.altinn.process.currentTask {}",
        idir.display()
    ));
    assert_eq!(task, "Task_2");
    let mode = sh_ok(&format!("stat -c %a {}/a0.pdf", dir.display()));
    assert_eq!(mode.trim(), "444");
    let e = sh_err(&format!("echo x >> {}/a0.pdf", dir.display()));
    assert!(e.contains("ermi"), "EPERM or EACCES: {e}");
}

/// Deterministic bytes that differ per write (`seed`), so a misplaced piece shows.
fn odd_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64).wrapping_mul(2654435761) >> 9) as u8 ^ seed)
        .collect()
}

/// The tests of this file run one at a time: several hold a file open for writing while
/// they check what close/fsync report, and a process another test forks (cp, rsync, a
/// mount) holds a copy of every descriptor until its exec; closing it there flushes the
/// file, which uploads it early (a half-written file under faults, a replace before the
/// lock the test sets up).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// `close(2)` of `f`, with its errno (dropping a File ignores what close returns).
fn close(f: std::fs::File) -> Result<(), i32> {
    use std::os::fd::IntoRawFd;
    match unsafe { libc::close(f.into_raw_fd()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
    }
}

#[test]
fn big_writes_at_odd_offsets_store_exactly_the_written_bytes() {
    let _one_at_a_time = one_at_a_time();
    use std::os::unix::fs::FileExt;
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let path = inst_dir(&m, &inst).join("other").join("odd.bin");
    const MIB: usize = 1024 * 1024;
    // Bigger than one FUSE request (the kernel splits them), out of order, overlapping,
    // past a hole, and small ones between.
    let writes = [
        (0, 3 * MIB + 1),
        (5 * MIB + 17, MIB - 1),
        (MIB + 1, 128 * 1024 - 3),
        (4093, 2 * MIB + 3),
        (7 * MIB + 4097, 7),
        (MIB / 2 + 1, 1),
    ];
    let f = std::fs::File::create_new(&path).unwrap();
    let mut model = Vec::new();
    for (i, (off, len)) in writes.into_iter().enumerate() {
        let bytes = odd_bytes(len, i as u8 + 1);
        f.write_all_at(&bytes, off as u64).unwrap();
        if model.len() < off + len {
            model.resize(off + len, 0);
        }
        model[off..off + len].copy_from_slice(&bytes);
    }
    assert_eq!(f.metadata().unwrap().len(), model.len() as u64);
    assert_eq!(close(f), Ok(()));
    let els = emu.elements(&inst);
    let el = els
        .iter()
        .find(|d| d.filename.as_deref() == Some("odd.bin"))
        .expect("stored");
    let stored = emu.blob(inst.guid(), &el.id);
    assert_eq!(stored.len(), model.len());
    assert!(
        stored == model,
        "the stored bytes differ from the written ones"
    );
    assert!(std::fs::read(&path).unwrap() == model, "and so does a read");
}

#[test]
fn an_upload_lost_in_transit_fails_fsync_and_close_and_keeps_every_byte() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let path = inst_dir(&m, &inst).join("other").join("lost.bin");
    let data = odd_bytes(3 * 1024 * 1024 + 5, 9);
    // Every connection of an upload drops without an answer, through all retries.
    emu.set_faults(FaultConfig {
        drop_rate: 1.0,
        route_filter: Some("/data".into()),
        ..Default::default()
    });
    let mut f = std::fs::File::create_new(&path).unwrap();
    std::io::Write::write_all(&mut f, &data).unwrap();
    let e = f.sync_all().expect_err("fsync reports the lost upload");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    assert_eq!(close(f), Err(libc::EIO), "and so does close");
    emu.set_faults(FaultConfig::default());
    let unsent = m.spool.join("unsent");
    let kept: Vec<_> = std::fs::read_dir(&unsent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "json"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        std::fs::read(&kept[0]).unwrap() == data,
        "unsent/ holds every byte"
    );
    let n = emu
        .elements(&inst)
        .iter()
        .filter(|d| d.filename.as_deref() == Some("lost.bin"))
        .count();
    assert_eq!(n, 0, "nothing half-sent became an element");
}

#[test]
fn a_file_created_read_write_can_be_written_through_a_shared_mapping() {
    let _one_at_a_time = one_at_a_time();
    use std::os::fd::AsRawFd;
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let path = inst_dir(&m, &inst).join("other").join("mapped.bin");
    let data = odd_bytes(3 * 4096 + 123, 5);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    f.set_len(data.len() as u64).unwrap();
    // SAFETY: a fresh shared mapping of a file we hold open, unmapped before close.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            data.len(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        std::ptr::copy_nonoverlapping(data.as_ptr(), p as *mut u8, data.len());
        assert_eq!(libc::msync(p, data.len(), libc::MS_SYNC), 0);
        assert_eq!(libc::munmap(p, data.len()), 0);
    }
    assert_eq!(close(f), Ok(()));
    let els = emu.elements(&inst);
    let el = els
        .iter()
        .find(|d| d.filename.as_deref() == Some("mapped.bin"))
        .expect("stored");
    assert!(emu.blob(inst.guid(), &el.id) == data, "the mapped bytes");
}

/// The element is locked on the server while a file is open (its task ended elsewhere): the
/// App refuses the PUT with a bare 409 "Conflict", the mount asks Storage why and `close(2)`
/// returns EPERM (SPEC §4: locked element), with the bytes kept in `unsent/`.
#[test]
fn an_element_locked_while_open_fails_close_with_eperm_and_keeps_the_bytes() {
    let _one_at_a_time = one_at_a_time();
    let emu = TestEmulator::small();
    let inst = emu.new_instance("510001");
    let m = Mount::new(&emu, &[]);
    let dir = inst_dir(&m, &inst).join("attachment");
    let src = write_file(m.dir.path(), "lock.pdf", &pdf(300));
    sh_ok(&format!("cp {} {}/", src.display(), dir.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(dir.join("lock.pdf"))
        .unwrap();
    std::io::Write::write_all(&mut f, &pdf(400)).unwrap();
    let id = InstanceId::of(&inst).unwrap();
    emu.rt
        .block_on(emu.client().process_next(&id, None))
        .expect("the task ends beside the mount");
    assert_eq!(close(f), Err(libc::EPERM));
    let el = emu
        .elements(&inst)
        .into_iter()
        .find(|d| d.filename.as_deref() == Some("lock.pdf"))
        .unwrap();
    assert!(el.locked);
    assert_eq!(
        emu.blob(inst.guid(), &el.id),
        pdf(300),
        "the server kept its bytes"
    );
    let unsent = m.spool.join("unsent");
    let kept = std::fs::read_dir(&unsent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "json"))
        .map(|p| std::fs::read(p).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(kept, vec![pdf(400)], "the bytes are kept in unsent/");
    let mode = sh_ok(&format!("stat -c %a {}/lock.pdf", dir.display()));
    assert_eq!(mode.trim(), "444", "the lock is known now");
}
