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
        list_parallel: 1,
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

/// A walk into every instance (each directory and `instance.json` looked up, as `find` does).
async fn walk_instances(c: &Core, instances: &[altinnfs::altinn::model::Instance]) {
    for i in instances {
        let dir = format!("/{}/{}", i.party_id(), i.guid());
        c.ino(&format!("{dir}/instance.json")).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_limit_the_kernel_is_asked_to_forget_the_least_recently_walked_instances() {
    let client = InProcessClient::sample();
    let party = client.instances()[0].party_id();
    for _ in 0..30 {
        client.add_instance(&party);
    }
    let c = Core::with(client, |f| f.cache_entries = 40).await;
    let seen = c.record_invalidations();
    let all = c.client.instances();
    walk_instances(&c, &all).await;
    let dropped: Vec<(u64, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(i, _)| match i {
            Inval::Entry { parent, name } => Some((*parent, name.clone())),
            _ => None,
        })
        .collect();
    assert!(
        !dropped.is_empty(),
        "{} instances walked, none dropped",
        all.len()
    );
    let entry = |i: &altinnfs::altinn::model::Instance| {
        let party = ino_of(&Node::Party {
            party: i.party_id().parse().unwrap(),
        });
        (party, i.guid().to_string())
    };
    assert_eq!(dropped[0], entry(&all[0]), "the first walked goes first");
    assert!(
        !dropped.contains(&entry(all.last().unwrap())),
        "the one walked last stays"
    );
    // The kernel forgets what it was asked to: its numbers come back the same on a lookup.
    let first = &all[0];
    let path = format!("/{}/{}/instance.json", first.party_id(), first.guid());
    let ino = c.ino(&path).await.unwrap();
    assert_eq!(
        ino,
        ino_of(&Node::InstanceJson {
            party: first.party_id().parse().unwrap(),
            guid: first.guid().parse().unwrap(),
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdirplus_of_a_party_registers_exactly_the_instances_the_kernel_takes() {
    let tmp = tempfile::tempdir().unwrap();
    let c = indexed_core(InProcessClient::sample(), tmp.path(), None).await;
    let party = c.client.instances()[0].party_id();
    let pino = c.ino(&format!("/{party}")).await.unwrap();
    let fh = c.fs.opendir(pino);
    let mut taken = Vec::new();
    c.fs.readdirplus_into(pino, fh, 0, |d, _| {
        taken.push((d.name.clone(), d.attr.ino));
        // The reply is full at the second instance: the first is taken, the second is not.
        taken.len() >= 4
    })
    .await
    .unwrap();
    c.fs.releasedir(fh);
    let guids: Vec<&(String, u64)> = taken.iter().filter(|(n, _)| !n.starts_with('.')).collect();
    assert_eq!(guids.len(), 2, "{taken:?}");
    for (name, ino) in &guids[..guids.len() - 1] {
        assert_eq!(c.fs.lookup_count(*ino), 1, "{name} was taken once");
    }
    let (name, ino) = guids[guids.len() - 1];
    assert_eq!(
        c.fs.lookup_count(*ino),
        0,
        "{name} did not fit in the reply"
    );
}

/// Files created in one instance (the `1000 small files` benchmark's pattern): each upload
/// is one `element.created` line of the feed, the index holds what the server holds, and the
/// cursor's later polls report none of them again (SPEC §7.2, §7.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_uploads_into_one_instance_are_fed_once_and_the_poll_stays_quiet() {
    use altinnfs::fs::index::EventKind;
    let dir = tempfile::tempdir().unwrap();
    let c = indexed_core(
        InProcessClient::sample(),
        dir.path(),
        Some(Duration::from_millis(30)),
    )
    .await;
    let inst = c.instance_dir("50001");
    let guid = guid_of(&inst).to_string();
    assert!(!c.ls(&inst).await.unwrap().is_empty());
    let ix = c.fs.meta_index().unwrap().clone();
    let seq0 = ix.last_seq().unwrap();
    for n in 0..30 {
        let path = format!("{inst}/anything/small-{n}.txt");
        c.write_file(&path, format!("{n}\n").as_bytes())
            .await
            .unwrap();
    }
    c.unlink(&format!("{inst}/anything/small-7.txt"))
        .await
        .unwrap();
    let feed = ix.feed_since(seq0, 1_000).unwrap();
    let kinds: Vec<(EventKind, String)> = feed.iter().map(|e| (e.event, e.path.clone())).collect();
    let mut want: Vec<(EventKind, String)> = (0..30)
        .map(|n| {
            (
                EventKind::ElementCreated,
                format!("{inst}/anything/small-{n}.txt"),
            )
        })
        .collect();
    want.push((
        EventKind::ElementDeleted,
        format!("{inst}/anything/small-7.txt"),
    ));
    assert_eq!(kinds, want);

    // The index holds the instance as the server does (elements in any order).
    let server = c
        .client
        .instances()
        .into_iter()
        .find(|i| i.guid() == guid)
        .unwrap();
    let stored = ix.get_instance(&guid).unwrap().unwrap();
    let ids = |i: &altinnfs::altinn::model::Instance| {
        let mut v: Vec<(String, i64)> = i.data.iter().map(|e| (e.id.clone(), e.size)).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&stored), ids(&server));

    // Polls that reach the server's lastChanged of the instance add nothing.
    let last = ix.last_seq().unwrap();
    let _poller = c.fs.start_poller().expect("the poller runs");
    let mut waited = 0;
    while ix.cursor("app").unwrap() < server.last_changed {
        waited += 1;
        assert!(waited < 200, "the poll never caught up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = ix.feed_since(last, 100).unwrap();
    assert!(again.is_empty(), "{again:?}");
}

/// A walk into the instances of a party in listing (GUID) order reads the index a batch at a
/// time: after the second instance the next ones are in memory already; a jump elsewhere
/// reads just the one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_in_listing_order_reads_the_index_ahead_and_a_jump_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let client = InProcessClient::sample();
    let party = client.instances()[0].party_id();
    for _ in 0..100 {
        client.add_instance(&party);
    }
    let c = indexed_core(client, tmp.path(), None).await;
    let listed = c.ls(&format!("/{party}")).await.unwrap();
    let mut guids: Vec<String> = listed.into_iter().filter(|n| n.contains('-')).collect();
    guids.sort();
    assert!(guids.len() > 100, "{} instances", guids.len());
    let held = |i: usize| c.fs.holds_instance(guids[i].parse().unwrap());
    assert!(!held(0) && !held(10), "a listing loads no document");
    for g in &guids[..2] {
        c.stat(&format!("/{party}/{g}")).await.unwrap();
    }
    // The second read is a walk: it and the 63 after it come in one batch.
    assert!((2..1 + 64).all(held), "the next ones are read ahead");
    assert!(!held(1 + 64), "64 in all, no more");
    // A jump: not the one after the last read, so only itself.
    c.stat(&format!("/{party}/{}", guids[90])).await.unwrap();
    assert!(held(90) && !held(91));
    // The documents read ahead are the instances' own.
    let g = &guids[30];
    let json = c
        .cat_str(&format!("/{party}/{g}/instance.json"))
        .await
        .unwrap();
    assert!(json.contains(g.as_str()), "{json}");
}

/// The kernel keeps a listing while the directory's mtime stays the same (opendir answers
/// ENOSYS with the index): a party directory's getattr after `metadata_ttl` asks the server
/// first, and its mtime moves exactly when its listing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_directory_mtime_moves_with_its_listing_after_metadata_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = index_config(dir.path(), None);
    let ttl = Duration::from_millis(200);
    let c = Core::with(InProcessClient::sample(), move |f| {
        f.index = Some(cfg);
        f.metadata_ttl = ttl;
    })
    .await;
    let id = IndexIdentity {
        platform_url: "http://memory.test".into(),
        subject: "org-ttd".into(),
    };
    c.fs.open_index(&id).await.expect("index opens");
    assert!(c.fs.kernel_caches_dirs());
    let party = c.client.instances()[0].party_id();
    let path = format!("/{party}");
    c.ls(&path).await.unwrap();
    let ino = c.ino(&path).await.unwrap();
    let before = c.fs.getattr(ino).await.unwrap().mtime;

    tokio::time::sleep(ttl * 2).await;
    let unchanged = c.fs.getattr(ino).await.unwrap().mtime;
    assert_eq!(
        unchanged, before,
        "nothing changed: the kernel may keep its listing"
    );

    let new = c.client.add_instance(&party);
    let within_ttl = c.fs.getattr(ino).await.unwrap().mtime;
    tokio::time::sleep(ttl * 2).await;
    let after = c.fs.getattr(ino).await.unwrap().mtime;
    assert!(
        after > within_ttl,
        "the listing changed: the mtime must move"
    );
    assert!(c.ls(&path).await.unwrap().contains(&new.guid().to_string()));
}
