//! lookup, readdir, stat and xattrs of the layout (SPEC §2, §3).

use crate::support::*;

#[tokio::test]
async fn the_layout() {
    let c = Core::sample().await;
    assert_eq!(
        c.ls("").await.unwrap(),
        vec![".stateless", "50001", "50002", "applicationmetadata.json"]
    );
    let dir = c.instance_dir("50001");
    assert_eq!(
        c.ls(&dir).await.unwrap(),
        vec!["anything", "attachments", "instance.json", "model"]
    );
    assert_eq!(
        c.ls(&format!("{dir}/anything")).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        c.ls(&format!("{dir}/model")).await.unwrap(),
        vec!["model.xml"]
    );
    assert_eq!(
        c.ls(&format!("{dir}/attachments")).await.unwrap(),
        vec!["notes.txt", "report.pdf"]
    );
    assert_eq!(c.stat(&dir).await.unwrap().kind, Kind::Dir);
    assert_eq!(c.stat(&dir).await.unwrap().perm & 0o777, 0o755);
    assert_eq!(
        c.stat(&format!("{dir}/attachments/notes.txt"))
            .await
            .unwrap()
            .perm
            & 0o777,
        0o644
    );
    assert_eq!(c.stat("nope").await.err(), Some(libc::ENOENT));
    assert_eq!(
        c.stat(&format!("{dir}/attachments/nope.pdf")).await.err(),
        Some(libc::ENOENT)
    );
}

#[tokio::test]
async fn readdir_sizes_equal_what_reads_return() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50002");
    for (name, attr) in c.readdir(&format!("{dir}/attachments")).await.unwrap() {
        if name == "." || name == ".." {
            continue;
        }
        let bytes = c.cat(&format!("{dir}/attachments/{name}")).await.unwrap();
        assert_eq!(attr.size, bytes.len() as u64, "{name}");
    }
}

#[tokio::test]
async fn a_listing_is_one_query_per_page_not_a_request_per_instance() {
    let c = Core::sample().await;
    c.client.set_page_size(1);
    c.client.reset_counts();
    for p in ["50001", "50002"] {
        for g in c.ls(p).await.unwrap() {
            c.ls(&format!("{p}/{g}/attachments")).await.unwrap();
        }
    }
    assert_eq!(c.client.count(Op::GetInstance), 0);
    assert_eq!(c.client.count(Op::ListElements), 0);
    // Four instances at one per page: four full pages, the empty page after the last full
    // one (Storage gives `next` whenever a page is full), and one spare.
    assert!(
        c.client.count(Op::QueryPage) <= 6,
        "{}",
        c.client.count(Op::QueryPage)
    );
}

#[tokio::test]
async fn same_names_get_the_id_suffix_and_the_first_keeps_the_name() {
    let c = altinnfs::emulator::inprocess::InProcessClient::sample();
    let inst = c.instances()[0].clone();
    let g = inst.guid().to_string();
    let first = c.add_element(&g, "anything", Some("same.txt"), "text/plain", "first");
    let second = c.add_element(&g, "anything", Some("same.txt"), "text/plain", "second!");
    let c = Core::new(c).await;
    let d = format!("{}/{g}/anything", inst.party_id());
    let hex: String = second
        .id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .take(8)
        .collect();
    let suffixed = format!("same~{}.txt", hex.to_ascii_lowercase());
    assert_eq!(
        c.ls(&d).await.unwrap(),
        vec!["same.txt".to_string(), suffixed.clone()]
    );
    assert_eq!(c.cat_str(&format!("{d}/same.txt")).await.unwrap(), "first");
    assert_eq!(
        c.cat_str(&format!("{d}/{suffixed}")).await.unwrap(),
        "second!"
    );
    assert_eq!(
        c.getxattr(&format!("{d}/same.txt"), "user.altinn.id")
            .await
            .unwrap(),
        first.id
    );
    // Stable: a new file in the directory does not move the names.
    c.write_file(&format!("{d}/other.txt"), b"x").await.unwrap();
    assert!(c.ls(&d).await.unwrap().contains(&suffixed));
}

#[tokio::test]
async fn element_xattrs_and_instance_xattrs() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let p = format!("{dir}/attachments/report.pdf");
    let names = c.listxattr(&p).await.unwrap();
    for k in [
        "id",
        "dataType",
        "contentType",
        "created",
        "lastChanged",
        "locked",
    ] {
        assert!(
            names.contains(&format!("user.altinn.{k}")),
            "{k}: {names:?}"
        );
    }
    assert_eq!(
        c.getxattr(&p, "user.altinn.dataType").await.unwrap(),
        "attachments"
    );
    assert_eq!(
        c.getxattr(&p, "user.altinn.contentType").await.unwrap(),
        "application/pdf"
    );
    assert_eq!(c.getxattr(&p, "user.altinn.nope").await, Err(libc::ENODATA));
    assert_eq!(c.getxattr(&dir, "user.altinn.id").await.unwrap(), dir);
}

#[tokio::test]
async fn json_views_of_form_data() {
    let c = Core::with(
        altinnfs::emulator::inprocess::InProcessClient::sample(),
        |cfg| cfg.form_json = true,
    )
    .await;
    let dir = c.instance_dir("50001");
    let m = format!("{dir}/model");
    assert_eq!(c.ls(&m).await.unwrap(), vec!["model.json", "model.xml"]);
    let json = c.cat_str(&format!("{m}/model.json")).await.unwrap();
    assert!(json.contains("50001"), "{json}");
    assert_eq!(
        c.stat(&format!("{m}/model.json")).await.unwrap().size,
        json.len() as u64
    );
    assert_eq!(
        c.getxattr(&format!("{m}/model.json"), "user.altinn.contentType")
            .await
            .unwrap(),
        "application/json"
    );
    // The view cannot be deleted or renamed; the element is deleted through X.xml.
    assert_eq!(c.unlink(&format!("{m}/model.json")).await, Err(libc::EPERM));
    assert_eq!(
        c.rename(&format!("{m}/model.json"), &format!("{m}/x.json"))
            .await,
        Err(libc::EPERM)
    );
}

#[tokio::test]
async fn local_files_are_listed_with_their_sizes_and_go_with_unlink() {
    let c = Core::sample().await;
    let d = format!("{}/anything", c.instance_dir("50001"));
    c.touch(&format!("{d}/a.txt")).await.unwrap();
    c.write_file(&format!("{d}/.b.txt.Zx98Yw"), b"12345")
        .await
        .unwrap();
    let listed: Vec<(String, u64)> = c
        .readdir(&d)
        .await
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n != "." && n != "..")
        .map(|(n, a)| (n, a.size))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        vec![(".b.txt.Zx98Yw".to_string(), 5), ("a.txt".to_string(), 0)]
    );
    c.unlink(&format!("{d}/a.txt")).await.unwrap();
    assert_eq!(c.ls(&d).await.unwrap(), vec![".b.txt.Zx98Yw"]);
}

#[tokio::test]
async fn a_file_is_not_a_directory() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    let f = format!("{dir}/attachments/notes.txt");
    assert!(
        matches!(c.ls(&f).await, Err(libc::ENOTDIR)),
        "{:?}",
        c.ls(&f).await
    );
    assert!(matches!(
        c.stat(&format!("{f}/x")).await.err(),
        Some(libc::ENOTDIR) | Some(libc::ENOENT)
    ));
}

#[tokio::test]
async fn what_another_client_changed_shows_after_the_metadata_ttl() {
    let c = Core::with(
        altinnfs::emulator::inprocess::InProcessClient::sample(),
        |cfg| cfg.metadata_ttl = std::time::Duration::from_millis(50),
    )
    .await;
    let dir = c.instance_dir("50001");
    let d = format!("{dir}/anything");
    assert!(c.ls(&d).await.unwrap().is_empty());
    c.client.add_element(
        guid_of(&dir),
        "anything",
        Some("theirs.txt"),
        "text/plain",
        "x",
    );
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(c.ls(&d).await.unwrap(), vec!["theirs.txt"]);
    assert_eq!(c.cat_str(&format!("{d}/theirs.txt")).await.unwrap(), "x");
}
