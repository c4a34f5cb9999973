//! The read side through a real FUSE mount: listing, stat, read, xattrs, names, unmount.
mod common;

use altinnfs::altinn::memory::{MemoryClient, Op};
use common::{pattern, TestMount};
use std::time::{Duration, Instant};

#[test]
fn listing_fills_the_tree_with_one_query() {
    let m = TestMount::new(MemoryClient::sample());
    let root = m.ok("ls -a");
    for n in ["applicationmetadata.json", ".stateless", "50001", "50002"] {
        assert!(root.lines().any(|l| l == n), "root lacks {n}: {root}");
    }
    // 1 root + 2 files/dirs at root + 2 parties + 4 instances × (instance.json + 3 dt dirs
    // + model.xml + report.pdf + notes.txt) + .stateless/model with new.xml and new.json
    let n: usize = m.ok("find . | wc -l").trim().parse().unwrap();
    assert_eq!(n, 1 + 2 + 2 + 4 * (1 + 1 + 3 + 3) + 1 + 2);
    m.ok("ls -lR . > /dev/null && du -s . > /dev/null");
    assert_eq!(
        m.client.count(Op::Query),
        1,
        "one listing fills every directory"
    );
    assert_eq!(m.client.count(Op::GetInstance), 0);
    assert_eq!(m.client.count(Op::Download), 0, "listing reads no blobs");
}

#[test]
fn stat_size_and_bytes_match_the_server() {
    let m = TestMount::new(MemoryClient::sample());
    for inst in m.client.instances() {
        let dir = format!("{}/{}", inst.party_id(), inst.guid());
        for el in &inst.data {
            let name = el
                .filename
                .clone()
                .unwrap_or_else(|| format!("{}.xml", el.data_type));
            let p = format!("{dir}/{}/{name}", el.data_type);
            let size: i64 = m.ok(&format!("stat -c %s '{p}'")).trim().parse().unwrap();
            assert_eq!(size, el.size, "{p}");
            let bytes = std::fs::read(m.path(&p)).unwrap();
            assert_eq!(bytes, m.client.blob(&el.id).unwrap().to_vec(), "{p}");
        }
        // instance.json: st_size is exactly what a read returns
        let j = format!("{dir}/instance.json");
        let st: usize = m.ok(&format!("stat -c %s {j}")).trim().parse().unwrap();
        let bytes = std::fs::read(m.path(&j)).unwrap();
        assert_eq!(st, bytes.len());
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["id"], inst.id.as_str());
    }
    let out = tempfile::tempdir().unwrap();
    m.ok(&format!("cp -r 50001 {}/copy", out.path().display()));
    let d = m.ok(&format!(
        "diff -r 50001 {}/copy && echo same",
        out.path().display()
    ));
    assert!(d.contains("same"));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.path("applicationmetadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["id"], "ttd/altinnfs-demo");
    assert!(m
        .fails("echo x >> applicationmetadata.json")
        .contains("ermi"));
}

#[test]
fn xattrs_of_files_and_instances() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    let out = m.ok(&format!("getfattr -d -m - {dir}/attachments/report.pdf"));
    assert!(
        out.contains("user.altinn.dataType=\"attachments\""),
        "{out}"
    );
    assert!(
        out.contains("user.altinn.contentType=\"application/pdf\""),
        "{out}"
    );
    assert!(out.contains("user.altinn.locked=\"false\""), "{out}");
    let guid = dir.split('/').nth(1).unwrap();
    let el = m
        .client
        .elements(guid)
        .into_iter()
        .find(|e| e.filename.as_deref() == Some("report.pdf"))
        .unwrap();
    assert!(
        out.contains(&format!("user.altinn.id=\"{}\"", el.id)),
        "{out}"
    );
    let out = m.ok(&format!("getfattr -d -m - {dir}"));
    assert!(
        out.contains("user.altinn.process.currentTask=\"Task_1\""),
        "{out}"
    );
    assert!(m
        .fails(&format!("getfattr -n user.altinn.nope {dir}"))
        .contains("No such attribute"));
}

#[test]
fn random_offset_reads_come_from_one_download() {
    let c = MemoryClient::sample();
    let inst = c.instances()[0].clone();
    let data = pattern(3 * 1024 * 1024 + 123, 7);
    c.add_element(
        inst.guid(),
        "anything",
        Some("big.bin"),
        "application/octet-stream",
        data.clone(),
    );
    // Walk prefetch off: this counts the GETs of one file (it is first in its directory).
    let m = TestMount::with(c, |cfg| cfg.prefetch_files = 0);
    let p = format!("{}/{}/anything/big.bin", inst.party_id(), inst.guid());
    for skip in [700usize, 3, 0, 768, 100, 2] {
        let out = m.sh(&format!(
            "dd if={p} bs=4096 skip={skip} count=3 status=none"
        ));
        assert!(out.status.success());
        let s = skip * 4096;
        let e = (s + 3 * 4096).min(data.len());
        assert_eq!(out.stdout, data[s..e], "skip={skip}");
    }
    // The blob is cached while lastChanged/size hold: one GET in all.
    assert_eq!(m.client.count(Op::Download), 1);
    let sum = m.ok(&format!("sha256sum < {p}"));
    use sha2::Digest;
    let want = format!("{:x}", sha2::Sha256::digest(&data));
    assert!(sum.starts_with(&want));
}

#[test]
fn truncated_body_fails_with_eio_not_short_data() {
    let c = MemoryClient::sample();
    let inst = c.instances()[0].clone();
    let data = pattern(512 * 1024, 3);
    let el = c.add_element(
        inst.guid(),
        "anything",
        Some("cut.bin"),
        "application/octet-stream",
        data.clone(),
    );
    c.truncate_downloads(&el.id, Some(200 * 1024));
    let m = TestMount::new(c);
    let p = format!("{}/{}/anything/cut.bin", inst.party_id(), inst.guid());
    let err = m.fails(&format!("cat {p} > /dev/null"));
    assert!(err.contains("Input/output error"), "{err}");
    // The part before the cut reads fine.
    let out = m.sh(&format!("dd if={p} bs=4096 count=10 status=none"));
    assert_eq!(out.stdout, data[..40960]);
}

#[test]
fn hostile_names_stay_inside_their_directory() {
    let c = MemoryClient::sample();
    let inst = c.instances()[0].clone();
    let long = format!("{}.pdf", "n".repeat(300));
    for (i, name) in [
        "../../escape.txt",
        "..",
        "a\0b.txt",
        long.as_str(),
        "same.txt",
        "same.txt",
    ]
    .iter()
    .enumerate()
    {
        c.add_element(
            inst.guid(),
            "anything",
            Some(name),
            "text/plain",
            format!("{i}"),
        );
    }
    let m = TestMount::new(c);
    let dir = format!("{}/{}/anything", inst.party_id(), inst.guid());
    let names = m.ok(&format!("ls -a {dir}"));
    let names: Vec<&str> = names.lines().filter(|n| *n != "." && *n != "..").collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.contains(&".._.._escape.txt"));
    assert!(names.contains(&"_.."));
    assert!(names.contains(&"a_b.txt"));
    assert!(names.iter().any(|n| n.len() == 255 && n.ends_with(".pdf")));
    assert!(names.contains(&"same.txt"));
    assert!(names
        .iter()
        .any(|n| n.starts_with("same~") && n.ends_with(".txt")));
    // The earliest keeps the plain name.
    assert_eq!(m.ok(&format!("cat {dir}/same.txt")), "4");
    assert_eq!(m.ok(&format!("cat {dir}/_..")), "1");
    let n: usize = m
        .ok(&format!("find {dir} -mindepth 1 | wc -l"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n, 6);
    assert!(!m.path("escape.txt").exists());
}

#[test]
fn user_token_lists_its_parties_and_unlisted_party_by_name() {
    let c = MemoryClient::sample();
    c.set_user_parties(&[50001]);
    let m = TestMount::new(c);
    let root = m.ok("ls");
    assert!(root.contains("50001") && !root.contains("50002"), "{root}");
    m.fails("ls 50002");
    m.fails("ls notaparty");
    assert_eq!(m.ok("ls 50001 | wc -l").trim(), "2");
}

#[test]
fn many_files_read_in_parallel() {
    let c = MemoryClient::sample();
    c.set_chunk_delay(Some(Duration::from_millis(2)));
    let inst = c.instances()[0].clone();
    let mut want = vec![];
    for i in 0..6 {
        let d = pattern(700 * 1024 + i, i as u8);
        c.add_element(
            inst.guid(),
            "anything",
            Some(&format!("p{i}.bin")),
            "application/octet-stream",
            d.clone(),
        );
        want.push(d);
    }
    let m = TestMount::new(c);
    let dir = format!("{}/{}/anything", inst.party_id(), inst.guid());
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display();
    m.ok(&format!(
        "for i in 0 1 2 3 4 5; do cat {dir}/p$i.bin > {o}/p$i & done; wait"
    ));
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&std::fs::read(out.path().join(format!("p{i}"))).unwrap(), w);
    }
}

#[test]
fn unmount_with_a_reader_still_open() {
    let c = MemoryClient::sample();
    let mut m = TestMount::new(c);
    let dir = m.instance_dir("50001");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3< {dir}/attachments/report.pdf; sleep 30"))
        .current_dir(&m.mnt)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(m.is_mounted());
    let t = Instant::now();
    m.unmount();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(!m.is_mounted(), "still mounted");
    let _ = child.kill();
    let _ = child.wait();
}
