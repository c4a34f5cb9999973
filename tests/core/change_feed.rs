//! `.altinn/changes` (SPEC §7.3) while the feed is pruned: the file's byte offsets stay those
//! it had for the life of the mount, so `tail -f` and a reader that resumes at an offset read
//! whole lines, each once, in order.

use crate::support::*;
use altinnfs::emulator::inprocess::InProcessClient;
use altinnfs::fs::index::{EventKind, FeedEvent, IndexConfig};
use altinnfs::fs::IndexIdentity;
use std::time::Duration;

const FEED: &str = "/.altinn/changes";

async fn indexed_core(dir: &std::path::Path) -> Core {
    let cfg = IndexConfig {
        cache_dir: dir.to_path_buf(),
        poll_interval: None,
        full_refresh: None,
        feed_retention: Duration::from_secs(86_400),
        page_size: 100,
        list_parallel: 1,
    };
    let c = Core::with(InProcessClient::sample(), move |f| f.index = Some(cfg)).await;
    let id = IndexIdentity {
        platform_url: "http://memory.test".into(),
        subject: "org-ttd".into(),
    };
    c.fs.open_index(&id).await.expect("index opens");
    c
}

fn event(n: u64) -> FeedEvent {
    FeedEvent {
        seq: 0,
        seen: String::new(),
        event: EventKind::ElementCreated,
        party: "50001".into(),
        instance: format!("g{n}"),
        data_type: Some("attachments".into()),
        element: Some(format!("e{n}")),
        path: format!("50001/g{n}/attachments/f{n}.txt"),
        last_changed: None,
    }
}

/// Every line from `off` to the end as a reader at that offset sees it.
async fn read_from(c: &Core, f: Open, mut off: u64) -> String {
    let mut out = Vec::new();
    loop {
        let b = c.read(f, off, 100).await.unwrap();
        if b.is_empty() {
            break;
        }
        off += b.len() as u64;
        out.extend_from_slice(&b);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn pruning_the_feed_while_mounted_moves_no_offset() {
    let dir = tempfile::tempdir().unwrap();
    let c = indexed_core(dir.path()).await;
    let ix = c.fs.meta_index().expect("indexed").clone();
    ix.append_events((1..=5).map(event).collect()).unwrap();
    let before = c.cat_str(FEED).await.unwrap();
    let lines: Vec<&str> = before.lines().collect();
    assert!(lines.len() >= 5, "{before}");
    // A `tail -f` reader stopped before the last two lines.
    let resume = before.len() - lines[lines.len() - 2..].join("\n").len() - 1;
    let tail = c.open(FEED, libc::O_RDONLY).await.unwrap();

    // The index keeps only the last two rows now, then sees two more changes.
    ix.prune_feed(Duration::from_secs(86_400), 2).unwrap();
    assert_eq!(ix.feed_since(0, 100).unwrap().len(), 2, "the index pruned");
    ix.append_events(vec![event(6), event(7)]).unwrap();

    let size = c.stat(FEED).await.unwrap().size;
    let after = c.cat_str(FEED).await.unwrap();
    assert_eq!(after.len() as u64, size);
    assert!(
        after.starts_with(&before),
        "offsets before the prune still hold the same bytes"
    );
    let new: Vec<&str> = after[before.len()..].lines().collect();
    assert_eq!(new.len(), 2, "{after}");
    assert!(
        new[0].contains("\"path\":\"50001/g6/attachments/f6.txt\""),
        "{}",
        new[0]
    );
    let seq = |l: &str| -> u64 {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    assert!(seq(new[0]) > seq(lines[lines.len() - 1]), "seq only grows");

    // The reader resumes where it stopped: whole lines, none skipped, none twice.
    let rest = read_from(&c, tail, resume as u64).await;
    let rest: Vec<&str> = rest.lines().collect();
    let mut want: Vec<&str> = lines[lines.len() - 2..].to_vec();
    want.extend(&new);
    assert_eq!(rest, want);
    // A reader at the offset of a line the index pruned still reads whole lines from there.
    let pruned_at = lines[0].len() as u64 + 1;
    let from_pruned = read_from(&c, tail, pruned_at).await;
    assert_eq!(from_pruned, after[pruned_at as usize..]);
    assert!(from_pruned.starts_with(lines[1]), "{from_pruned}");
    // A reader opened after the prune sees the same offsets.
    let late = c.open(FEED, libc::O_RDONLY).await.unwrap();
    assert_eq!(
        read_from(&c, late, resume as u64).await,
        rest.join("\n") + "\n"
    );
    c.close(tail).await.unwrap();
    c.close(late).await.unwrap();
}
