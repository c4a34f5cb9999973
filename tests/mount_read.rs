//! Read path through a real kernel mount against the emulator (the one model of Altinn),
//! driven by real tools: what needs the kernel (readdirplus, the page cache, `ls`, `find`,
//! `du`, `cp`, `rsync`, `dd`, `getfattr`, unmount with a file open). Request counts are the
//! emulator's. Scenarios without the kernel live in `tests/core/` (see tests/README.md).

mod mount_support;
use mount_support::*;

use altinnfs::altinn::model::Instance;
use altinnfs::altinn::AltinnClient;
use std::collections::BTreeMap;

fn data_types(emu: &TestEmulator) -> Vec<String> {
    let meta = emu
        .rt
        .block_on(emu.client().application_metadata())
        .unwrap();
    meta.data_types.into_iter().map(|d| d.id).collect()
}

#[test]
fn listing_matches_the_server_and_costs_one_query_per_100() {
    let emu = TestEmulator::start();
    let all = emu.instances();
    let m = Mount::new(&emu, &[]);
    emu.reset_stats();
    let root = sh_ok(&format!("ls -a {}", m.path.display()));
    assert!(root.contains("applicationmetadata.json"), "{root}");
    assert!(root.contains(".stateless"), "{root}");
    let mut parties: Vec<String> = all.iter().map(|i| i.party_id()).collect();
    parties.sort();
    parties.dedup();
    for p in &parties {
        assert!(root.lines().any(|l| l == p), "party {p} listed");
    }
    // find over everything: instance dirs, instance.json, data type dirs, files.
    let n_files: usize = all.iter().map(|i| i.data.len()).sum();
    // root, applicationmetadata.json, party dirs, per instance: its dir, instance.json and one
    // dir per data type, then the files (.stateless is pruned: -prune does not print it).
    let expected = 2 + parties.len() + all.len() * (2 + data_types(&emu).len()) + n_files;
    let found: usize = sh_ok(&format!(
        "find {} -path '*/.stateless' -prune -o -print | wc -l",
        m.path.display()
    ))
    .trim()
    .parse()
    .unwrap();
    assert_eq!(found, expected, "find counts every entry");
    let s = emu.stats();
    let pages = all.len() / 100 + 1;
    assert!(
        s.queries as usize <= pages + 1,
        "listing used {} queries for {} instances",
        s.queries,
        all.len()
    );
    assert_eq!(s.blob_downloads, 0, "listing downloads no blob");
    assert_eq!(s.app_data_gets, 0, "listing reads no form data");
    let per_instance: Vec<&String> = s
        .per_path
        .keys()
        .filter(|k| k.starts_with("GET /storage/api/v1/instances/"))
        .collect();
    assert!(
        per_instance.is_empty(),
        "the query fills every directory, no GET per instance: {per_instance:?}"
    );
    // du and stat -c need no further requests (besides `.stateless/*/new.*`, which du
    // stats: their sizes are learned by creating one object each, SPEC §5).
    let not_stateless = |s: &altinnfs::emulator::Stats| {
        s.total
            - s.per_path
                .iter()
                .filter(|(k, _)| k.contains("/v1/data"))
                .map(|(_, n)| n)
                .sum::<u64>()
    };
    let before = not_stateless(&emu.stats());
    sh_ok(&format!(
        "du -s {} >/dev/null && ls -lR {} >/dev/null",
        m.path.display(),
        m.path.display()
    ));
    assert_eq!(
        not_stateless(&emu.stats()),
        before,
        "ls -lR and du are served from the listing"
    );
}

#[test]
fn stat_sizes_and_bytes_equal_the_server() {
    let emu = TestEmulator::with_big_files();
    let all = emu.instances();
    let m = Mount::new(&emu, &[]);
    // Take a handful of instances with data, including the largest element.
    let mut picked: Vec<&Instance> = all.iter().filter(|i| !i.data.is_empty()).take(6).collect();
    if let Some(big) = all
        .iter()
        .max_by_key(|i| i.data.iter().map(|d| d.size).max().unwrap_or(0))
    {
        picked.push(big);
    }
    for inst in picked {
        let dir = m.p(&format!("{}/{}", inst.party_id(), inst.guid()));
        let out = sh_ok(&format!(
            "cd {} && find . -type f ! -name instance.json -printf '%s %P\\n'",
            dir.display()
        ));
        let mut sizes_fs: Vec<i64> = out
            .lines()
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect();
        let mut sizes_srv: Vec<i64> = inst.data.iter().map(|d| d.size).collect();
        sizes_fs.sort();
        sizes_srv.sort();
        assert_eq!(
            sizes_fs,
            sizes_srv,
            "st_size equals metadata size in {}",
            dir.display()
        );
        // cp -r then compare each file with the emulator's blob, matched via the id xattr.
        let copy = m.dir.path().join(format!("copy-{}", inst.guid()));
        sh_ok(&format!("cp -r {} {}", dir.display(), copy.display()));
        sh_ok(&format!("diff -r {} {}", dir.display(), copy.display()));
        for line in out.lines() {
            let rel = line.split_once(' ').unwrap().1;
            let id = sh_ok(&format!(
                "getfattr --only-values -n user.altinn.id {}/{}",
                dir.display(),
                shell_quote(rel)
            ));
            let id = id.trim();
            let want = emu.blob(inst.guid(), id);
            let got = std::fs::read(copy.join(rel)).unwrap();
            assert!(
                got == want,
                "bytes of {rel} equal the server's ({} vs {})",
                got.len(),
                want.len()
            );
        }
        // instance.json is the instance document.
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("instance.json")).unwrap()).unwrap();
        assert_eq!(j["id"].as_str().unwrap(), inst.id);
        let st = std::fs::metadata(dir.join("instance.json")).unwrap();
        assert_eq!(
            st.len() as usize,
            std::fs::read(dir.join("instance.json")).unwrap().len()
        );
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The largest element of the sample: its file in the mount `m`, and the server's bytes.
fn largest_element(emu: &TestEmulator, m: &Mount) -> (std::path::PathBuf, Vec<u8>) {
    let all = emu.instances();
    let (inst, el) = all
        .iter()
        .flat_map(|i| i.data.iter().map(move |d| (i, d)))
        .max_by_key(|(_, d)| d.size)
        .unwrap();
    assert!(el.size > 4 * 1024 * 1024, "sample has a large element");
    let dir = m.p(&format!(
        "{}/{}/{}",
        inst.party_id(),
        inst.guid(),
        el.data_type
    ));
    let name = sh_ok(&format!("cd {} && for f in *; do [ \"$(getfattr --only-values -n user.altinn.id \"$f\")\" = {} ] && echo \"$f\"; done", dir.display(), el.id));
    (dir.join(name.trim()), emu.blob(inst.guid(), &el.id))
}

fn sha256_of(file: &std::path::Path, read_size: &str) -> String {
    let out = sh_ok(&format!(
        "dd if={} bs={read_size} status=none | sha256sum",
        shell_quote(&file.display().to_string())
    ));
    out.split(' ').next().unwrap().to_string()
}

/// Pages of `file` in the kernel's page cache as one process sees them after opening it and
/// (with `read_first`) reading it whole: mincore of a mapping of that same descriptor.
fn resident_pages(file: &std::path::Path, read_first: bool) -> u64 {
    const SCRIPT: &str = r#"
import ctypes, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
while sys.argv[2] == "read" and os.read(fd, 1 << 20):
    pass
size = os.fstat(fd).st_size
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
vec = (ctypes.c_ubyte * pages)()
assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0
print(sum(b & 1 for b in vec))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(file)
        .arg(if read_first { "read" } else { "open" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn resident_after_reading(file: &std::path::Path) -> u64 {
    resident_pages(file, true)
}

/// FOPEN_KEEP_CACHE by version (libfuse's auto_cache): a new open of an unchanged file keeps
/// the pages an earlier reader filled, and an open after the element changed on the server
/// drops them and reads the new bytes, even at the same size.
#[test]
fn an_unchanged_file_is_reread_from_the_page_cache_and_a_changed_one_anew() {
    use altinnfs::altinn::{InstanceId, Replacement, UploadBody};
    use reqwest::Method;
    let emu = TestEmulator::small();
    let party = emu.instances()[0].party_id();
    let m = Mount::new(&emu, &["--poll-interval", "0", "--metadata-ttl", "1"]);
    let inst = InstanceId::of(&emu.new_instance(&party)).unwrap();
    let first: Vec<u8> = b"%PDF-1.4 first version "
        .iter()
        .copied()
        .cycle()
        .take(20_000)
        .collect();
    let added = emu.act(
        Method::POST,
        &format!("instances/{inst}/data?dataType=attachment&filename=a.pdf"),
        first.clone(),
    );
    let file = m.p(&format!("{inst}/attachment/a.pdf"));
    assert!(std::fs::read(&file).unwrap() == first);
    let pages = (first.len() as u64).div_ceil(4096);
    assert_eq!(
        resident_pages(&file, false),
        pages,
        "a new open keeps the pages"
    );

    let mut second = first.clone();
    second[first.len() - 2] ^= 0x55; // same size: only lastChanged tells them apart
    let id = added["id"].as_str().unwrap().parse().unwrap();
    let as_pdf = Replacement {
        filename: "a.pdf",
        content_type: "application/pdf",
    };
    let body = UploadBody::Bytes(second.clone().into());
    emu.rt
        .block_on(emu.client().replace_data(&inst, &id, as_pdf, body))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        std::fs::read(&file).unwrap() == second,
        "the element changed on the server: its new bytes, not the kept pages"
    );
}

#[test]
fn direct_io_reads_skip_the_page_cache_and_mmap_still_works() {
    use sha2::Digest;
    let emu = TestEmulator::with_big_files();
    let mut cached = Mount::new(&emu, &[]);
    let (file, _) = largest_element(&emu, &cached);
    assert!(
        resident_after_reading(&file) > 0,
        "without --direct-io a read fills the page cache"
    );
    cached.unmount();

    let m = Mount::new(&emu, &["--direct-io"]);
    let (file, src) = largest_element(&emu, &m);
    assert_eq!(
        resident_after_reading(&file),
        0,
        "no page cache behind reads"
    );
    let want = format!("{:x}", sha2::Sha256::digest(&src));
    for read_size in ["1M", "10k", "4097"] {
        assert_eq!(sha256_of(&file, read_size), want, "reads of {read_size}");
    }
    // A shared read-only mapping (Python's mmap default) still works: the kernel maps such
    // files through the page cache (FUSE_DIRECT_IO_ALLOW_MMAP).
    let mapped = sh_ok(&format!(
        "python3 -c 'import mmap, sys, hashlib; f = open(sys.argv[1], \"rb\"); \
         print(hashlib.sha256(mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)).hexdigest())' {}",
        shell_quote(&file.display().to_string())
    ));
    assert_eq!(mapped.trim(), want, "bytes through a shared mapping");
}

#[test]
fn random_offset_reads_equal_the_source() {
    let emu = TestEmulator::with_big_files();
    // Walk prefetch off: this counts the GETs of one file.
    let m = Mount::new(&emu, &["--prefetch-files", "0"]);
    let (file, src) = largest_element(&emu, &m);
    emu.reset_stats();
    // Backwards and far-ahead jumps, in 4 KiB blocks.
    for skip in [1000usize, 3, 0, 777, 50, 1023] {
        let blocks = src.len() / 4096;
        let skip = skip % blocks.max(1);
        let out = std::process::Command::new("dd")
            .arg(format!("if={}", file.display()))
            .args(["bs=4096", "count=2", "status=none", &format!("skip={skip}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        let end = (skip * 4096 + 8192).min(src.len());
        assert_eq!(out.stdout, src[skip * 4096..end], "bytes at block {skip}");
    }
    assert!(
        emu.stats().blob_downloads <= 2,
        "random reads are served from one streaming GET and the blob cache, not one GET per read ({})",
        emu.stats().blob_downloads
    );
    use sha2::Digest;
    let sum = sh_ok(&format!(
        "sha256sum < {}",
        shell_quote(&file.display().to_string())
    ));
    let want = format!("{:x}", sha2::Sha256::digest(&src));
    assert!(sum.starts_with(&want), "whole file equals the source");
}

#[test]
fn rsync_twice_second_pass_downloads_nothing() {
    let emu = TestEmulator::small();
    let all = emu.instances();
    let party = all[0].party_id();
    let m = Mount::new(&emu, &[]);
    let dest = m.dir.path().join("backup");
    sh_ok(&format!(
        "rsync -a {}/{}/ {}/",
        m.path.display(),
        party,
        dest.display()
    ));
    let n: usize = sh_ok(&format!("find {} -type f | wc -l", dest.display()))
        .trim()
        .parse()
        .unwrap();
    let expected: usize = all
        .iter()
        .filter(|i| i.party_id() == party)
        .map(|i| i.data.len() + 1)
        .sum();
    assert_eq!(n, expected, "rsync copied every file");
    emu.reset_stats();
    sh_ok(&format!(
        "rsync -a {}/{}/ {}/",
        m.path.display(),
        party,
        dest.display()
    ));
    assert_eq!(
        emu.stats().blob_downloads,
        0,
        "second rsync downloads no blob"
    );
}

#[test]
fn xattrs_describe_elements_and_instances() {
    let emu = TestEmulator::small();
    let all = emu.instances();
    let task_of = |i: &Instance| {
        i.process
            .as_ref()
            .and_then(|p| p.current_task.as_ref())
            .and_then(|t| t.element_id.clone())
    };
    let inst = all
        .iter()
        .find(|i| task_of(i).is_some() && i.data.iter().any(|d| d.data_type == "model"))
        .expect("an instance at a task, with form data");
    let el = inst.data.iter().find(|d| d.data_type == "model").unwrap();
    let m = Mount::new(&emu, &[]);
    let dir = m.p(&format!("{}/{}", inst.party_id(), inst.guid()));
    let out = sh_ok(&format!("getfattr -d -m - {}/model/*", dir.display()));
    assert!(
        out.contains(&format!("user.altinn.id=\"{}\"", el.id)),
        "{out}"
    );
    assert!(out.contains("user.altinn.dataType=\"model\""), "{out}");
    let ct = el.content_type.as_deref().unwrap();
    assert!(
        out.contains(&format!("user.altinn.contentType=\"{ct}\"")),
        "{out}"
    );
    assert!(
        out.contains(&format!("user.altinn.locked=\"{}\"", el.locked)),
        "{out}"
    );
    let out = sh_ok(&format!("getfattr -d -m - {}", dir.display()));
    assert!(
        out.contains(&format!("user.altinn.id=\"{}\"", inst.id)) || out.contains(inst.guid()),
        "{out}"
    );
    let task = task_of(inst).unwrap();
    assert!(
        out.contains(&format!("user.altinn.process.currentTask=\"{task}\"")),
        "{out}"
    );
    let e = sh_err(&format!("getfattr -n user.altinn.nope {}", dir.display()));
    assert!(e.contains("No such attribute"), "{e}");
}

#[test]
fn unlisted_party_lookup_and_missing_instance() {
    let emu = TestEmulator::small();
    let all = emu.instances();
    let m = Mount::new(&emu, &[]);
    let inst = &all[0];
    // Entering a party by name works even before the root was listed.
    let out = sh_ok(&format!("ls {}/{}", m.path.display(), inst.party_id()));
    assert!(out.contains(inst.guid()), "{out}");
    // An instance the server does not have, or a name that cannot be a party, is ENOENT.
    let e = sh_err(&format!(
        "ls {}/{}/00000000-0000-4000-8000-000000000000",
        m.path.display(),
        inst.party_id()
    ));
    assert!(e.contains("No such file"), "{e}");
    let e = sh_err(&format!("ls {}/not-a-party", m.path.display()));
    assert!(e.contains("No such file"), "{e}");
}

#[test]
fn unmount_with_a_reader_open() {
    let emu = TestEmulator::small();
    let all = emu.instances();
    let inst = all.iter().find(|i| !i.data.is_empty()).unwrap();
    let mut m = Mount::new(&emu, &[]);
    let dir = m.p(&format!("{}/{}", inst.party_id(), inst.guid()));
    let mut reader = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("exec 3<{}/instance.json; sleep 30", dir.display()))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(is_mounted(&m.path), "mounted while the reader holds a file");
    // A busy mount refuses a plain unmount; a lazy one detaches at once.
    let t = std::time::Instant::now();
    let _ = sh(&format!("fusermount3 -u -z {}", m.path.display()));
    assert!(!is_mounted(&m.path), "unmounted");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    // The daemon exits once the reader lets go (its exit status is not the point here).
    let _ = reader.kill();
    let _ = reader.wait();
    let _ = m.unmount();
    assert!(!is_mounted(&m.path), "still unmounted");
}

#[test]
fn applicationmetadata_is_read_only() {
    let emu = TestEmulator::small();
    let m = Mount::new(&emu, &[]);
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.p("applicationmetadata.json")).unwrap()).unwrap();
    assert_eq!(j["id"], APP);
    let e = sh_err(&format!(
        "echo x > {}",
        m.p("applicationmetadata.json").display()
    ));
    assert!(
        e.contains("Permission denied")
            || e.contains("Operation not permitted")
            || e.contains("Read-only"),
        "{e}"
    );
    let e = sh_err(&format!(
        "echo x >> {}",
        m.p("applicationmetadata.json").display()
    ));
    assert!(
        e.contains("Permission denied") || e.contains("Operation not permitted"),
        "append is refused too: {e}"
    );
    let mut counts = BTreeMap::new();
    for t in j["dataTypes"].as_array().unwrap() {
        counts.insert(t["id"].as_str().unwrap().to_string(), 1);
    }
    assert!(counts.contains_key("attachment"));
}

/// Issue 14 "disk full in the blob cache": the spool, where the blob cache keeps its files,
/// is a small disk that is full. A big file still reads whole with the server's bytes (from
/// memory), and the log warns that the cache file could not be written.
#[test]
fn with_the_blob_cache_disk_full_reads_go_on_from_memory_and_warn() {
    use sha2::Digest;
    let Some(disk) = SmallDisk::new("2m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)");
        return;
    };
    let emu = TestEmulator::with_big_files();
    let spool = disk.path().join("spool");
    let spool_dir = spool.display().to_string();
    let m = Mount::new(&emu, &["--spool-dir", spool_dir.as_str()]);
    let (file, src) = largest_element(&emu, &m);
    disk.fill();
    let want = format!("{:x}", sha2::Sha256::digest(&src));
    assert_eq!(sha256_of(&file, "1M"), want, "the server's bytes");
    let log = m.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("reading on from memory only")),
        "no warning about the full cache disk:\n{}",
        log.lines()
            .filter(|l| l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
