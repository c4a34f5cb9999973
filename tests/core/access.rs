//! Who sees and may write what: user tokens, party filters, instance aliases, refusals of instance actions.

use crate::support::*;
use altinnfs::altinn::model::ApplicationLogic;
use altinnfs::emulator::inprocess::InProcessClient;

#[tokio::test]
async fn a_user_token_sees_its_parties_only() {
    let client = InProcessClient::sample();
    client.set_user_parties(&[50001]);
    let c = Core::new(client).await;
    assert_eq!(
        c.ls("").await.unwrap(),
        vec![".stateless", "50001", "applicationmetadata.json"]
    );
    assert_eq!(c.ls("50001").await.unwrap().len(), 2);
    let other = c.stat("50002").await.err();
    assert!(
        matches!(other, Some(libc::ENOENT) | Some(libc::EACCES)),
        "{other:?}"
    );
}

#[tokio::test]
async fn a_party_filter_restricts_the_root() {
    let c = Core::with(InProcessClient::sample(), |cfg| {
        cfg.parties = vec!["50002".into()]
    })
    .await;
    assert_eq!(
        c.ls("").await.unwrap(),
        vec![".stateless", "50002", "applicationmetadata.json"]
    );
}

#[tokio::test]
async fn a_contributors_only_type_refuses_user_creates_before_any_byte() {
    let mut meta = InProcessClient::sample_metadata();
    let mut signed = meta.data_type("anything").unwrap().clone();
    signed.id = "signed".into();
    signed.allowed_contributors = Some(vec!["org:ttd".into()]);
    let mut receipt = signed.clone();
    receipt.id = "receipt".into();
    receipt.allowed_contributors = None;
    receipt.app_logic = Some(ApplicationLogic {
        disallow_user_create: Some(true),
        ..Default::default()
    });
    meta.data_types.push(signed);
    meta.data_types.push(receipt);
    let client = InProcessClient::new(meta);
    let inst = client.add_instance("50001");
    client.set_user_parties(&[50001]);
    let c = Core::new(client).await;
    let dir = format!("50001/{}", inst.guid());
    assert_eq!(
        c.write_file(&format!("{dir}/signed/a.txt"), b"x").await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.write_file(&format!("{dir}/receipt/a.txt"), b"x").await,
        Err(libc::EPERM)
    );
    c.write_file(&format!("{dir}/anything/a.txt"), b"x")
        .await
        .unwrap();
    assert_eq!(c.client.count(Op::CreateData), 1);
}

#[tokio::test]
async fn a_mkdir_name_stays_an_alias_of_the_new_instance() {
    let c = Core::sample().await;
    let attr = c.mkdir("50001/case-17").await.unwrap();
    assert_eq!(c.stat("50001/case-17").await.unwrap().ino, attr.ino);
    let guid = c.getxattr("50001/case-17", "user.altinn.id").await.unwrap();
    let guid = guid.split('/').nth(1).unwrap().to_string();
    assert_eq!(
        c.stat(&format!("50001/{guid}")).await.unwrap().ino,
        attr.ino
    );
    assert!(c.ls("50001").await.unwrap().contains(&guid));
    assert_eq!(c.mkdir("50001/case-17").await.err(), Some(libc::EEXIST));
    assert_eq!(
        c.mkdir(&format!("50001/{guid}")).await.err(),
        Some(libc::EEXIST)
    );
    // Not in a party directory, nor in a read-only mount.
    assert_eq!(c.mkdir("x").await.err(), Some(libc::EPERM));
    let ro = Core::with(InProcessClient::sample(), |cfg| cfg.read_only = true).await;
    assert_eq!(ro.mkdir("50001/x").await.err(), Some(libc::EPERM));
}

#[tokio::test]
async fn process_next_refused_by_the_app_is_eperm() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client.fail_next(
        Op::ProcessNext,
        1,
        http(409, "validation failed"),
        FaultWhen::Before,
    );
    assert_eq!(
        c.setxattr(&dir, "user.altinn.process", "next").await,
        Err(libc::EPERM)
    );
    assert_eq!(
        c.getxattr(&dir, "user.altinn.process.currentTask")
            .await
            .unwrap(),
        "Task_1"
    );
}

#[tokio::test]
async fn rmdir_refused_by_the_server_is_eperm_and_keeps_the_instance() {
    let c = Core::sample().await;
    let dir = c.instance_dir("50001");
    c.client.fail_next(
        Op::DeleteInstance,
        1,
        http(403, "Forbidden"),
        FaultWhen::Before,
    );
    assert_eq!(c.rmdir(&dir).await, Err(libc::EPERM));
    assert!(c.exists(&dir).await);
    assert!(c.client.instance(guid_of(&dir)).is_some());
}
