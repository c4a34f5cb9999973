//! The tree backed by the metadata index (SPEC §7.1, §7.2), without a kernel: listings come
//! from the index and the cursor's changes become invalidations of exactly what changed.
//! (A warm remount is measured in the mount tier, tests/mount_fresh.rs.)

use crate::support::*;
use altinnfs::emulator::inprocess::InProcessClient;
use altinnfs::fs::index::IndexConfig;
use altinnfs::fs::inode::ino_of;
use altinnfs::fs::layout::Node;
use altinnfs::fs::{IndexIdentity, Inval};
use std::path::Path;
use std::time::Duration;

fn index_config(dir: &Path, poll: Option<Duration>) -> IndexConfig {
    IndexConfig {
        cache_dir: dir.to_path_buf(),
        poll_interval: poll,
        full_refresh: None,
        feed_retention: Duration::from_secs(86_400),
        page_size: 100,
    }
}

async fn indexed_core(client: InProcessClient, dir: &Path, poll: Option<Duration>) -> Core {
    let cfg = index_config(dir, poll);
    let c = Core::with(client, move |f| f.index = Some(cfg)).await;
    let id = IndexIdentity {
        platform_url: "http://memory.test".into(),
        subject: "org-ttd".into(),
    };
    c.fs.open_index(&id).await.expect("index opens");
    assert!(c.fs.meta_index().is_some());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_invalidates_exactly_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let client = InProcessClient::sample();
    let c = indexed_core(client, dir.path(), Some(Duration::from_millis(50))).await;
    let guid = c.client.instances()[0].guid().to_string();
    let party = c.client.instances()[0].party_id();
    assert!(c.ls(&format!("/{party}")).await.unwrap().contains(&guid));
    let seen = c.record_invalidations();
    let _poller = c.fs.start_poller().expect("the poller runs");

    let new = c.client.add_instance(&party);
    let el = c.client.add_element(
        &guid,
        "attachments",
        Some("late.txt"),
        "text/plain",
        "late\n",
    );
    let mut waited = 0;
    let party_ino = ino_of(&Node::Party {
        party: party.parse().unwrap(),
    });
    let element_ino = ino_of(&Node::Element {
        party: party.parse().unwrap(),
        guid: guid.parse().unwrap(),
        dt: "attachments".parse().unwrap(),
        id: el.id.parse().unwrap(),
    });
    loop {
        let now = seen.lock().unwrap().clone();
        let has = |i: &Inval| now.iter().any(|(x, _)| x == i);
        if has(&Inval::Inode(party_ino)) && has(&Inval::Inode(element_ino)) {
            // Nothing about an instance that did not change.
            let other = c.client.instances()[1].guid().to_string();
            let other_ino = ino_of(&Node::Instance {
                party: c.client.instances()[1].party_id().parse().unwrap(),
                guid: other.parse().unwrap(),
            });
            assert!(!has(&Inval::Inode(other_ino)), "{now:?}");
            break;
        }
        waited += 1;
        assert!(waited < 100, "no invalidation from the cursor: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c
        .ls(&format!("/{party}"))
        .await
        .unwrap()
        .contains(&new.guid().to_string()));
    let files = c.ls(&format!("/{party}/{guid}/attachments")).await.unwrap();
    assert!(files.contains(&"late.txt".to_string()), "{files:?}");
}
