use super::*;
use crate::fs::layout::View;

fn element(party: &str, guid: &str, id: &str) -> Node {
    Node::Element {
        party: party.into(),
        guid: guid.into(),
        dt: "d".into(),
        id: id.into(),
    }
}

fn instance(party: &str, guid: &str) -> Node {
    Node::Instance {
        party: party.into(),
        guid: guid.into(),
    }
}

fn limits(max_held: usize, max_unheld: usize) -> InodeLimits {
    InodeLimits {
        max_held,
        max_unheld,
    }
}

#[test]
fn stable_and_counted() {
    let n = element("1", "g", "e1");
    let a = ino_of(&n);
    assert_eq!(a, ino_of(&n.clone()));
    assert_ne!(a, ino_of(&Node::Party { party: "1".into() }));
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
    let held = t.lookup(&element("1", "g0", "held"));
    for i in 0..100 {
        t.register(&element("1", "g", &format!("e{i}")));
    }
    assert_eq!(t.len(), 1 + 1 + 10, "root, the held entry and 10 unheld");
    assert!(t.get(held).is_some());
    assert!(t.get(ino_of(&element("1", "g", "e99"))).is_some());
    assert!(t.get(ino_of(&element("1", "g", "e0"))).is_none());
    assert!(
        !t.inc(ino_of(&element("1", "g", "e0"))),
        "unknown numbers say so"
    );
    assert!(t.inc(ino_of(&element("1", "g", "e99"))));
    assert_eq!(t.lookups(ino_of(&element("1", "g", "e99"))), 1);
}

/// Ten walked instance directories of five held entries each, the last walked last.
fn walked(t: &mut InodeTable) {
    for i in 0..10 {
        let g = format!("g{i}");
        t.lookup(&instance("1", &g));
        for e in 0..4 {
            t.lookup(&element("1", &g, &format!("{g}e{e}")));
        }
    }
}

#[test]
fn over_the_limit_the_least_recently_used_instance_directories_are_named() {
    let mut t = InodeTable::with_limits(limits(40, 100));
    walked(&mut t);
    // g0 is used again: it is now the most recent.
    t.lookup(&element("1", "g0", "g0e0"));
    assert_eq!(t.held(), 51);
    let party = ino_of(&Node::Party { party: "1".into() });
    let v = t.over_limit();
    // 50 held (plus the root) down to at most 30: the four oldest go, g0 is not among them.
    let names: Vec<&str> = v.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["g1", "g2", "g3", "g4"]);
    assert!(v.iter().all(|(p, _)| *p == party));
    assert!(
        t.over_limit().is_empty(),
        "no second request while the kernel forgets"
    );
    for g in ["g1", "g2", "g3", "g4"] {
        t.forget(ino_of(&instance("1", g)), 1);
        for e in 0..4 {
            t.forget(ino_of(&element("1", g, &format!("{g}e{e}"))), 1);
        }
    }
    assert_eq!(t.held(), 31);
    assert!(t.over_limit().is_empty());
    assert!(t.get(ino_of(&instance("1", "g1"))).is_none());
    assert_eq!(t.lookups(ino_of(&element("1", "g0", "g0e0"))), 2);
}

#[test]
fn directories_the_kernel_keeps_are_named_again_after_the_grace() {
    let mut t = InodeTable::with_limits(limits(40, 100));
    walked(&mut t);
    assert!(!t.over_limit().is_empty());
    t.released_at = Some(Instant::now() - RELEASE_GRACE * 2);
    // Nothing was forgotten (in use): the next check names the next oldest.
    let v = t.over_limit();
    assert_eq!(v.first().map(|(_, n)| n.as_str()), Some("g4"));
}

#[test]
fn view_directories_are_dropped_under_their_view_party() {
    let mut t = InodeTable::with_limits(limits(2, 100));
    let inner = instance("7", "g");
    let dir = Node::InView {
        view: View::Inbox,
        inner: Box::new(inner),
    };
    t.lookup(&dir);
    t.lookup(&Node::InView {
        view: View::Inbox,
        inner: Box::new(element("7", "g", "e")),
    });
    t.lookup(&Node::Party { party: "7".into() });
    let v = t.over_limit();
    let parent = ino_of(&Node::ViewParty {
        view: View::Inbox,
        party: "7".into(),
    });
    assert_eq!(v, vec![(parent, "g".to_string())]);
}

#[test]
fn a_rebound_entry_counts_under_its_new_directory() {
    let mut t = InodeTable::with_limits(limits(1, 100));
    let ino = t.lookup(&element("1", "a", "e"));
    t.rebind(ino, &element("1", "b", "e"));
    let v = t.over_limit();
    assert!(v.is_empty(), "one entry held is not over the limit: {v:?}");
    t.lookup(&instance("1", "b"));
    let v = t.over_limit();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, "b");
}
