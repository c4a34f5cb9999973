use super::store::MemoryStore;
use super::*;
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use crate::fs::inode::ino_of;
use crate::fs::Inval;

fn tree(ttl_ms: u64) -> Tree {
    let ttl = Duration::from_millis(ttl_ms);
    Tree::new(Box::new(MemoryStore::new(100, ttl)), 100, ttl, None)
}

fn element(id: &str, name: &str, size: i64) -> DataElement {
    DataElement {
        id: id.parse().unwrap(),
        data_type: "attachments".into(),
        filename: Some(name.into()),
        size,
        ..Default::default()
    }
}

/// A test instance guid named by a short tag: "g1" is ...0001.
fn g(tag: &str) -> InstanceGuid {
    let n = tag.trim_start_matches('g');
    format!("00000000-0000-4000-8000-{n:0>12}").parse().unwrap()
}

fn p(party: &str) -> PartyId {
    party.parse().unwrap()
}

fn entry(party: &str, guid: &str, data: Vec<DataElement>) -> Arc<InstEntry> {
    let guid = g(guid);
    let mut inst = Instance {
        id: format!("{party}/{guid}"),
        data,
        ..Default::default()
    };
    inst.instance_owner.party_id = party.into();
    Arc::new(InstEntry::new(inst, &ApplicationMetadata::default()))
}

#[test]
fn listings_hold_instances_by_party_and_go_stale() {
    let t = tree(60_000);
    t.store_listing(
        Instant::now(),
        &[p("9")],
        vec![entry("1", "g1", vec![]), entry("2", "g2", vec![])],
    );
    assert_eq!(t.party_guids(p("1"), true).unwrap().len(), 1);
    assert!(
        t.party_guids(p("9"), true).unwrap().is_empty(),
        "listed with no instance"
    );
    assert!(t.party_guids(p("3"), false).is_none());
    assert!(t.party_known(p("2")) && !t.party_known(p("3")));
    assert!(t.instance(g("g1"), true).is_some());
    t.clear_party_listings();
    assert!(t.party_guids(p("1"), false).unwrap().is_empty());
    let stale = tree(0);
    stale.store_listing(Instant::now(), &[], vec![entry("1", "g1", vec![])]);
    assert!(
        stale.party_guids(p("1"), true).is_none(),
        "stale listing is asked again"
    );
    assert!(stale.party_guids(p("1"), false).is_some());
    assert!(stale.instance(g("g1"), true).is_none() && stale.instance(g("g1"), false).is_some());
}

#[test]
fn removing_an_instance_drops_its_listing_entry_and_aliases() {
    let t = tree(60_000);
    t.store_listing(Instant::now(), &[], vec![entry("1", "g1", vec![])]);
    t.add_alias(p("1"), "my-case", g("g1"));
    t.add_alias(p("1"), "other", g("g2"));
    assert_eq!(t.alias(p("1"), "my-case"), Some(g("g1")));
    assert_eq!(
        t.remove_instance(p("1"), g("g1")),
        vec!["my-case".to_string()]
    );
    assert!(t.alias(p("1"), "my-case").is_none());
    assert_eq!(t.alias(p("1"), "other"), Some(g("g2")));
    assert!(t.peek_instance(g("g1")).is_none());
    assert!(!t.party_guids(p("1"), false).unwrap().contains(&g("g1")));
}

#[test]
fn negative_entries_inodes_and_dir_handles() {
    let t = tree(60_000);
    assert!(!t.known_missing(5, "x"));
    t.note_missing(5, "x");
    assert!(t.known_missing(5, "x") && !t.known_missing(5, "y"));
    t.clear_missing(5, "x");
    assert!(!t.known_missing(5, "x"));

    let a = Node::Party { party: p("1") };
    let ino = t.lookup_ref(&a);
    t.remember(ino);
    assert_eq!(t.lookups(ino), 2);
    let b = Node::Party { party: p("2") };
    t.rebind(ino, &b);
    assert_eq!(t.node(ino), Some(b.clone()));
    assert_eq!(
        t.node(ino_of(&b)),
        Some(b),
        "the new node resolves by its own number"
    );
    t.forget(ino, 2);
    assert!(t.node(ino).is_none());

    let fh = t.open_dir();
    assert!(t.dir_snapshot(fh).is_none());
    t.set_dir_snapshot(fh, Arc::new(vec![]));
    assert!(t.dir_snapshot(fh).is_some());
    t.release_dir(fh);
    assert!(t.dir_snapshot(fh).is_none());
    assert_ne!(t.open_dir(), fh);
}

#[test]
fn a_replaced_instance_invalidates_changed_names_and_elements_only() {
    let t = tree(60_000);
    let a = element("e1", "a.pdf", 10);
    let b = element("e2", "b.pdf", 20);
    t.store_listing(
        Instant::now(),
        &[],
        vec![entry("1", "g1", vec![a.clone(), b.clone()])],
    );
    let b2 = element("e2", "b.pdf", 21);
    let new = entry("1", "g1", vec![b2]);
    let old = t.replace_instance(new.clone()).expect("old state");
    let inv = instance::invalidations(&old, &new, false);
    let dir = ino_of(&Node::DataTypeDir {
        party: p("1"),
        guid: g("g1"),
        dt: "attachments".parse().unwrap(),
    });
    let el = |id: &str| {
        Inval::Inode(ino_of(&Node::Element {
            party: p("1"),
            guid: g("g1"),
            dt: "attachments".parse().unwrap(),
            id: id.parse().unwrap(),
        }))
    };
    assert!(inv.contains(&Inval::Entry {
        parent: dir,
        name: "a.pdf".into()
    }));
    assert!(!inv
        .iter()
        .any(|i| matches!(i, Inval::Entry { name, .. } if name == "b.pdf")));
    assert!(inv.contains(&el("e2")), "size changed");
    assert!(
        !inv.contains(&el("e1")),
        "gone: its name is invalidated, not its inode"
    );
    assert!(inv.contains(&Inval::Inode(ino_of(&Node::InstanceJson {
        party: p("1"),
        guid: g("g1")
    }))));
}

#[test]
fn the_size_of_instance_json_is_the_length_of_its_bytes() {
    let e = entry(
        "1",
        "g1",
        vec![
            element("e1", "a \"quoted\" æøå.pdf", 10),
            element("e2", "b.pdf", 20),
        ],
    );
    assert_eq!(e.json_len, e.json().len() as u64);
    assert!(e.json().ends_with(b"\n"));
    let empty = entry("2", "g2", vec![]);
    assert_eq!(empty.json_len, empty.json().len() as u64);
    assert!(empty.json_len < e.json_len);
}

#[test]
fn a_listing_asked_before_a_mkdir_or_rmdir_keeps_what_they_did() {
    let t = tree(60_000);
    t.store_listing(Instant::now(), &[], vec![entry("1", "g1", vec![])]);
    let asked = Instant::now();
    t.add_to_party(p("1"), g("g2"), true);
    t.remove_instance(p("1"), g("g1"));
    // The server's answer to a query sent before both: g1 still there, g2 not yet.
    t.store_listing(asked, &[p("1")], vec![entry("1", "g1", vec![])]);
    let listed: Vec<_> = t.party_guids(p("1"), true).unwrap().into_iter().collect();
    assert_eq!(listed, vec![g("g2")]);
    // A listing asked after them is the server's word.
    t.store_listing(Instant::now(), &[p("1")], vec![entry("1", "g1", vec![])]);
    let listed: Vec<_> = t.party_guids(p("1"), true).unwrap().into_iter().collect();
    assert_eq!(listed, vec![g("g1")]);
}

#[test]
fn shared_dir_snapshots_are_bounded_and_keyed_by_their_names() {
    use crate::fs::tree::dirs::{listing_tag, SHARED_SNAPSHOTS};
    use crate::fs::{Attr, DirEntry, Kind};
    let entry = |name: &str| DirEntry {
        name: name.into(),
        attr: Attr {
            ino: 1,
            kind: Kind::File,
            size: 0,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime: std::time::UNIX_EPOCH,
            ctime: std::time::UNIX_EPOCH,
            crtime: std::time::UNIX_EPOCH,
        },
    };
    let ab = vec![entry("a"), entry("b")];
    assert_eq!(listing_tag(&ab), listing_tag(&[entry("a"), entry("b")]));
    assert_ne!(listing_tag(&ab), listing_tag(&[entry("b"), entry("a")]));
    assert_ne!(listing_tag(&ab), listing_tag(&[entry("a")]));
    assert!(listing_tag(&ab) < 1 << 31, "tag << 32 stays a positive i64");

    let t = tree(60_000);
    t.set_shared_dir_snapshot(7, 1, Arc::new(ab));
    assert!(t.shared_dir_snapshot(7, 1).is_some());
    assert!(t.shared_dir_snapshot(7, 2).is_none(), "another listing");
    assert!(t.shared_dir_snapshot(8, 1).is_none(), "another directory");
    for tag in 0..(SHARED_SNAPSHOTS as u64 + 36) {
        t.set_shared_dir_snapshot(9, tag + 10, Arc::new(vec![]));
    }
    assert_eq!(t.shared_dir_snapshots(), SHARED_SNAPSHOTS);
    assert!(
        t.shared_dir_snapshot(7, 1).is_none(),
        "the oldest went first"
    );
    assert!(t
        .shared_dir_snapshot(9, SHARED_SNAPSHOTS as u64 + 45)
        .is_some());
    t.drop_shared_dir_snapshot(9, SHARED_SNAPSHOTS as u64 + 45);
    assert_eq!(t.shared_dir_snapshots(), SHARED_SNAPSHOTS - 1);
}
