use super::*;
use crate::fs::layout::View;

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn element(party: u64, guid: u64, id: &str) -> Node {
    Node::Element {
        party: party.into(),
        guid: uuid(guid).parse().unwrap(),
        dt: "d".parse().unwrap(),
        id: id.parse().unwrap(),
    }
}

fn instance(party: u64, guid: u64) -> Node {
    Node::Instance {
        party: party.into(),
        guid: uuid(guid).parse().unwrap(),
    }
}

fn party(p: u64) -> Node {
    Node::Party { party: p.into() }
}

fn limits(max_held: usize, max_unheld: usize) -> InodeLimits {
    InodeLimits {
        max_held,
        max_unheld,
    }
}

#[test]
fn stable_and_counted() {
    let n = element(1, 1, "e1");
    let a = ino_of(&n);
    assert_eq!(a, ino_of(&n.clone()));
    assert_ne!(a, ino_of(&party(1)));
    let mut t = InodeTable::new();
    t.lookup(&n);
    t.lookup(&n);
    assert_eq!(t.held(), 2);
    t.forget(a, 1);
    assert!(t.get(a).is_some());
    t.forget(a, 1);
    assert!(t.get(a).is_none());
    assert_eq!(t.held(), 1, "only the root is left");
    t.forget(ROOT_INO, 5);
    assert!(t.get(ROOT_INO).is_some());
}

#[test]
fn entries_nobody_holds_are_bounded_and_held_ones_are_kept() {
    let mut t = InodeTable::with_limits(limits(1000, 10));
    let held = t.lookup(&element(1, 100, "held"));
    for i in 0..100 {
        t.register(&element(1, 1, &format!("e{i}")));
    }
    assert_eq!(t.len(), 1 + 1 + 10, "root, the held entry and 10 unheld");
    assert!(t.get(held).is_some());
    assert!(t.get(ino_of(&element(1, 1, "e99"))).is_some());
    assert!(t.get(ino_of(&element(1, 1, "e0"))).is_none());
    assert!(
        !t.inc(ino_of(&element(1, 1, "e0"))),
        "unknown numbers say so"
    );
    assert!(t.inc(ino_of(&element(1, 1, "e99"))));
    assert_eq!(t.lookups(ino_of(&element(1, 1, "e99"))), 1);
}

/// Ten walked instance directories of five held entries each, the last walked last.
fn walked(t: &mut InodeTable) {
    for g in 0..10 {
        t.lookup(&instance(1, g));
        for e in 0..4 {
            t.lookup(&element(1, g, &format!("g{g}e{e}")));
        }
    }
}

#[test]
fn over_the_limit_the_least_recently_used_instance_directories_are_named() {
    let mut t = InodeTable::with_limits(limits(40, 100));
    walked(&mut t);
    // g0 is used again: it is now the most recent.
    t.lookup(&element(1, 0, "g0e0"));
    assert_eq!(t.held(), 51);
    let party_ino = ino_of(&party(1));
    let v = t.over_limit();
    // 50 held (plus the root) down to at most 30: the four oldest go, g0 is not among them.
    let names: Vec<String> = v.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(names, [uuid(1), uuid(2), uuid(3), uuid(4)]);
    assert!(v.iter().all(|(p, _)| *p == party_ino));
    assert!(
        t.over_limit().is_empty(),
        "no second request while the kernel forgets"
    );
    for g in 1..=4 {
        t.forget(ino_of(&instance(1, g)), 1);
        for e in 0..4 {
            t.forget(ino_of(&element(1, g, &format!("g{g}e{e}"))), 1);
        }
    }
    assert_eq!(t.held(), 31);
    assert!(t.over_limit().is_empty());
    assert!(t.get(ino_of(&instance(1, 1))).is_none());
    assert_eq!(t.lookups(ino_of(&element(1, 0, "g0e0"))), 2);
}

#[test]
fn directories_the_kernel_keeps_are_named_again_after_the_grace() {
    let mut t = InodeTable::with_limits(limits(40, 100));
    walked(&mut t);
    assert!(!t.over_limit().is_empty());
    t.released_at = Some(Instant::now() - RELEASE_GRACE * 2);
    // Nothing was forgotten (in use): the next check names the next oldest.
    let v = t.over_limit();
    assert_eq!(v.first().map(|(_, n)| n.clone()), Some(uuid(4)));
}

#[test]
fn view_directories_are_dropped_under_their_view_party() {
    let mut t = InodeTable::with_limits(limits(2, 100));
    let inner = instance(7, 9);
    let dir = Node::InView {
        view: View::Inbox,
        inner: Box::new(inner),
    };
    t.lookup(&dir);
    t.lookup(&Node::InView {
        view: View::Inbox,
        inner: Box::new(element(7, 9, "e")),
    });
    t.lookup(&party(7));
    let v = t.over_limit();
    let parent = ino_of(&Node::ViewParty {
        view: View::Inbox,
        party: 7.into(),
    });
    assert_eq!(v, vec![(parent, uuid(9))]);
}

#[test]
fn a_rebound_entry_counts_under_its_new_directory() {
    let mut t = InodeTable::with_limits(limits(1, 100));
    let ino = t.lookup(&element(1, 1, "e"));
    t.rebind(ino, &element(1, 2, "e"));
    let v = t.over_limit();
    assert!(v.is_empty(), "one entry held is not over the limit: {v:?}");
    t.lookup(&instance(1, 2));
    let v = t.over_limit();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, uuid(2));
}

#[test]
fn entries_of_interleaved_instances_count_under_their_own_directory() {
    let mut t = InodeTable::new();
    let nodes = [
        element(1, 1, "e1"),
        element(1, 2, "e2"),
        element(1, 1, "e3"),
        Node::InView {
            view: View::Inbox,
            inner: Box::new(element(1, 1, "e4")),
        },
        element(1, 1, "e5"),
    ];
    for n in nodes.iter().chain([&party(1)]) {
        t.register(n);
    }
    let dir_of = |t: &InodeTable, n: &Node| t.map[&ino_of(n)].subtree;
    let one = ino_of(&instance(1, 1));
    assert_eq!(dir_of(&t, &nodes[0]), one);
    assert_eq!(dir_of(&t, &nodes[1]), ino_of(&instance(1, 2)));
    assert_eq!(dir_of(&t, &nodes[2]), one);
    assert_eq!(
        dir_of(&t, &nodes[3]),
        ino_of(&Node::InView {
            view: View::Inbox,
            inner: Box::new(instance(1, 1)),
        })
    );
    assert_eq!(dir_of(&t, &nodes[4]), one);
    assert_eq!(
        dir_of(&t, &party(1)),
        0,
        "a party is in no instance directory"
    );
}
