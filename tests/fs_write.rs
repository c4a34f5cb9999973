//! The write side through a real FUSE mount (SPEC §4), checked on the server.
mod common;

use altinnfs::altinn::client::AltinnError;
use altinnfs::altinn::memory::{status_error, FaultWhen, MemoryClient, Op};
use common::{pattern, TestMount};

fn src_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn guid_of(dir: &str) -> String {
    dir.split('/').nth(1).unwrap().to_string()
}

#[test]
fn cp_of_an_allowed_file_is_stored_with_name_and_type() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    let t = tempfile::tempdir().unwrap();
    let data = pattern(300 * 1024, 1);
    let src = src_file(&t, "scan.pdf", &data);
    m.ok(&format!("cp {src} {dir}/attachments/"));
    let el = m
        .client
        .elements(&guid_of(&dir))
        .into_iter()
        .find(|e| e.filename.as_deref() == Some("scan.pdf"))
        .expect("stored");
    assert_eq!(el.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(m.client.blob(&el.id).unwrap().to_vec(), data);
    assert_eq!(m.client.count(Op::Create), 1);
    // Read-after-write: stat, ls and cat show it at once.
    assert_eq!(
        m.ok(&format!("stat -c %s {dir}/attachments/scan.pdf"))
            .trim(),
        data.len().to_string()
    );
    assert_eq!(
        std::fs::read(m.path(&format!("{dir}/attachments/scan.pdf"))).unwrap(),
        data
    );
    let x = m.ok(&format!(
        "getfattr -n user.altinn.id --only-values {dir}/attachments/scan.pdf"
    ));
    assert_eq!(x, el.id);
    // Overwrite is a PUT of the same element.
    let data2 = pattern(1000, 9);
    let src2 = src_file(&t, "scan2.pdf", &data2);
    m.ok(&format!("cp {src2} {dir}/attachments/scan.pdf"));
    assert_eq!(m.client.count(Op::Create), 1);
    assert_eq!(m.client.count(Op::Replace), 1);
    assert_eq!(m.client.blob(&el.id).unwrap().to_vec(), data2);
    assert_eq!(
        m.ok(&format!("stat -c %s {dir}/attachments/scan.pdf"))
            .trim(),
        "1000"
    );
}

#[test]
fn refusals_before_any_byte_moves() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    let t = tempfile::tempdir().unwrap();
    let exe = src_file(&t, "tool.exe", b"MZ");
    let err = m.fails(&format!("cp {exe} {dir}/attachments/"));
    assert!(err.contains("Operation not permitted"), "{err}");
    let big = src_file(&t, "big.pdf", &pattern(1024 * 1024 + 1, 2));
    let err = m.fails(&format!("cp {big} {dir}/attachments/"));
    assert!(err.contains("File too large"), "{err}");
    let noext = src_file(&t, "README", b"x");
    let err = m.fails(&format!("cp {noext} {dir}/attachments/"));
    assert!(err.contains("Invalid argument"), "{err}");
    let err = m.fails(&format!("rm {dir}/model/model.xml"));
    assert!(err.contains("Operation not permitted"), "{err}");
    assert_eq!(m.client.count(Op::Create), 0, "nothing sent");
    assert_eq!(m.client.count(Op::Delete), 0, "nothing sent");
    assert!(!m.path(&format!("{dir}/attachments/big.pdf")).exists());
    // maxCount 5: the sample has 2 attachments; 3 more fit, the 4th does not.
    for i in 0..3 {
        let f = src_file(&t, &format!("n{i}.txt"), b"note");
        m.ok(&format!("cp {f} {dir}/attachments/"));
    }
    let f = src_file(&t, "n9.txt", b"note");
    let err = m.fails(&format!("cp {f} {dir}/attachments/"));
    assert!(err.contains("Disk quota exceeded"), "{err}");
    assert_eq!(m.client.count(Op::Create), 3);
}

#[test]
fn empty_files_and_truncation() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    m.ok(&format!("touch {dir}/anything/empty.txt"));
    assert_eq!(m.client.count(Op::Create), 0, "empty file stays local");
    let v = m.ok(&format!(
        "getfattr -n user.altinn.pending --only-values {dir}/anything/empty.txt"
    ));
    assert_eq!(v, "true");
    // Giving it content uploads it.
    m.ok(&format!("echo hello > {dir}/anything/empty.txt"));
    assert_eq!(m.client.count(Op::Create), 1);
    // Truncating an existing element to zero fails and leaves it unchanged.
    let err = m.fails(&format!("truncate -s 0 {dir}/attachments/notes.txt"));
    assert!(err.contains("Invalid argument"), "{err}");
    assert_eq!(m.client.count(Op::Replace), 0);
    assert_eq!(m.ok(&format!("cat {dir}/attachments/notes.txt")), "hello\n");
    // chmod/chown/touch succeed and change nothing.
    m.ok(&format!("chmod 600 {dir}/attachments/notes.txt && touch {dir}/attachments/notes.txt && chown 0:0 {dir}/attachments/notes.txt"));
    assert_eq!(m.client.count(Op::Replace), 0);
    // Append goes through the spool with the old bytes first.
    m.ok(&format!("echo more >> {dir}/attachments/notes.txt"));
    assert_eq!(
        m.ok(&format!("cat {dir}/attachments/notes.txt")),
        "hello\nmore\n"
    );
    assert_eq!(m.client.count(Op::Replace), 1);
}

#[test]
fn rsync_leaves_no_temporary_names_on_the_server() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50002");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..4 {
        std::fs::write(src.join(format!("f{i}.txt")), pattern(5000 + i, i as u8)).unwrap();
    }
    m.ok(&format!("rsync -a {}/ {dir}/anything/", src.display()));
    let mut names: Vec<String> = m
        .client
        .elements(&guid_of(&dir))
        .into_iter()
        .filter(|e| e.data_type == "anything")
        .filter_map(|e| e.filename)
        .collect();
    names.sort();
    assert_eq!(names, vec!["f0.txt", "f1.txt", "f2.txt", "f3.txt"]);
    assert_eq!(
        m.client.count(Op::Delete),
        0,
        "temp names never reached the server"
    );
    let diff = m.ok(&format!(
        "rsync -rcn --out-format=%n {}/ {dir}/anything/",
        src.display()
    ));
    assert_eq!(diff.trim(), "", "identical after the copy");
}

#[test]
fn sed_in_place_replaces_the_form_with_put() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    m.ok(&format!("sed -i 's/party/owner/g' {dir}/model/model.xml"));
    assert_eq!(m.client.count(Op::Replace), 1);
    assert_eq!(m.client.count(Op::Create), 0);
    assert_eq!(m.client.count(Op::Delete), 0);
    let out = m.ok(&format!("cat {dir}/model/model.xml"));
    assert!(out.contains("<owner>50001</owner>"), "{out}");
    let up = m.client.uploads();
    assert_eq!(up[0].0, "PUT");
    assert_eq!(up[0].2, "application/xml");
}

#[test]
fn failed_upload_is_kept_in_unsent_and_retry_never_duplicates() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    let t = tempfile::tempdir().unwrap();
    let data = pattern(4000, 5);
    let src = src_file(&t, "lost.pdf", &data);
    m.client.fail_next(
        Op::Create,
        10,
        status_error(503, "POST", "data", "down"),
        FaultWhen::Before,
    );
    let err = m.fails(&format!("cp {src} {dir}/attachments/"));
    assert!(err.contains("Input/output error"), "{err}");
    let unsent = m.spool.join("unsent");
    let files: Vec<_> = std::fs::read_dir(&unsent)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let blob = files
        .iter()
        .find(|p| p.extension().is_none_or(|e| e != "json"))
        .expect("spool kept");
    assert_eq!(std::fs::read(blob).unwrap(), data);
    let side = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("sidecar");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
    assert_eq!(j["filename"], "lost.pdf");
    assert_eq!(j["dataType"], "attachments");
    assert_eq!(j["instance"], guid_of(&dir));
    assert!(j["path"]
        .as_str()
        .unwrap()
        .ends_with("attachments/lost.pdf"));
    assert!(!m
        .client
        .elements(&guid_of(&dir))
        .iter()
        .any(|e| e.filename.as_deref() == Some("lost.pdf")));
    // The answer of a POST that did store the file is lost: no second POST, no duplicate.
    let net = AltinnError::Network {
        method: "POST".into(),
        path: "data".into(),
        message: "connection reset".into(),
    };
    m.client.fail_next(Op::Create, 1, net, FaultWhen::After);
    let src2 = src_file(&t, "once.pdf", &data);
    m.ok(&format!("cp {src2} {dir}/attachments/"));
    let n = m
        .client
        .elements(&guid_of(&dir))
        .iter()
        .filter(|e| e.filename.as_deref() == Some("once.pdf"))
        .count();
    assert_eq!(n, 1);
    // A POST that failed before storing is sent again.
    let net = AltinnError::Network {
        method: "POST".into(),
        path: "data".into(),
        message: "refused".into(),
    };
    m.client.fail_next(Op::Create, 1, net, FaultWhen::Before);
    let src3 = src_file(&t, "again.pdf", &data);
    m.ok(&format!("cp {src3} {dir}/attachments/"));
    let n = m
        .client
        .elements(&guid_of(&dir))
        .iter()
        .filter(|e| e.filename.as_deref() == Some("again.pdf"))
        .count();
    assert_eq!(n, 1);
}

#[test]
fn mkdir_cp_rmdir_make_and_delete_an_instance() {
    let m = TestMount::new(MemoryClient::sample());
    let before = m.client.instances().len();
    m.ok("mkdir 50001/new-case");
    assert_eq!(m.client.count(Op::CreateInstance), 1);
    assert_eq!(m.client.instances().len(), before + 1);
    let t = tempfile::tempdir().unwrap();
    let src = src_file(&t, "a.txt", b"attached");
    m.ok(&format!("cp {src} 50001/new-case/attachments/"));
    let inst = m
        .client
        .instances()
        .into_iter()
        .find(|i| {
            i.data
                .iter()
                .any(|d| d.filename.as_deref() == Some("a.txt"))
        })
        .expect("stored on the new instance");
    let listed = m.ok("ls 50001");
    assert!(listed.contains(inst.guid()), "{listed}");
    assert!(m
        .fails("mkdir 50001/new-case/attachments/sub")
        .contains("ermi"));
    assert!(m.fails("rmdir 50001/new-case/attachments").contains("ermi"));
    m.ok("rmdir 50001/new-case");
    assert_eq!(m.client.count(Op::DeleteInstance), 1);
    assert!(m.client.instance(inst.guid()).is_none());
    assert!(!m.ok("ls 50001").contains(inst.guid()));
}

#[test]
fn rename_rules_and_process_actions() {
    let m = TestMount::new(MemoryClient::sample());
    let dir = m.instance_dir("50001");
    // Rename of an uploaded element: a new POST, then DELETE of the old one.
    m.ok(&format!(
        "mv {dir}/attachments/notes.txt {dir}/attachments/renamed.txt"
    ));
    let names: Vec<String> = m
        .client
        .elements(&guid_of(&dir))
        .into_iter()
        .filter_map(|e| e.filename)
        .collect();
    assert!(
        names.contains(&"renamed.txt".to_string()) && !names.contains(&"notes.txt".to_string())
    );
    assert_eq!(
        m.ok(&format!("cat {dir}/attachments/renamed.txt")),
        "hello\n"
    );
    // Across data type directories is EXDEV: mv copies, then removes.
    m.ok(&format!("mv {dir}/attachments/renamed.txt {dir}/anything/"));
    assert_eq!(m.ok(&format!("cat {dir}/anything/renamed.txt")), "hello\n");
    assert!(!m.path(&format!("{dir}/attachments/renamed.txt")).exists());
    // process/next moves the task, then the elements are locked (0444, EPERM on write).
    m.ok(&format!("setfattr -n user.altinn.process -v next {dir}"));
    let task = m.ok(&format!(
        "getfattr -n user.altinn.process.currentTask --only-values {dir}"
    ));
    assert_eq!(task, "Task_2");
    assert_eq!(
        m.ok(&format!("stat -c %a {dir}/attachments/report.pdf"))
            .trim(),
        "444"
    );
    assert!(m
        .fails(&format!("echo x >> {dir}/attachments/report.pdf"))
        .contains("ermi"));
    m.ok(&format!(
        "setfattr -n user.altinn.confirm -v complete {dir}"
    ));
    assert_eq!(m.client.count(Op::Complete), 1);
}
