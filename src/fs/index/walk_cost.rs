//! What the index costs per instance at two sizes of app (`cargo test --release --lib
//! walk_cost -- --ignored --nocapture`; WALK_COST_SIZES=10000,200000 by default): a first
//! listing ingested page by page as the refresher does, then a walk that reads every
//! instance as `find` does (a party's listing page by page, instances in read-ahead batches).
//! Not an assertion of speed: it prints µs per instance, to see what grows with the size.

use super::*;
use crate::emulator::service::synthetic::Synthetic;
use std::time::Instant;

const LISTING_PAGE: u64 = 100;
const DIR_PAGE: usize = 1000;
const READ_AHEAD: usize = 64;

/// Read syscalls so far (pread of index pages included).
fn read_syscalls() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The first listing: pages of instances in lastChanged (= index) order, one transaction each.
fn ingest(ix: &MetaIndex, app: &Synthetic) {
    for start in (0..app.count).step_by(LISTING_PAGE as usize) {
        let end = (start + LISTING_PAGE).min(app.count);
        let page: Vec<Instance> = (start..end).map(|i| app.instance(i)).collect();
        ix.write(|db| {
            for inst in &page {
                db.version(inst.guid())?;
                db.get_instance(inst.guid())?;
                db.party_exists(&inst.party_id())?;
                db.upsert_instance(inst, Some(1))?;
            }
            Ok(())
        })
        .unwrap();
    }
}

/// Every party's instances in listing order, each read the way a walk reads a miss.
fn walk(ix: &MetaIndex) -> u64 {
    let mut read = 0;
    for (party, _) in ix.parties(None, 100).unwrap() {
        let mut after: Option<String> = None;
        let mut last: Option<String> = None;
        let mut held = 0usize;
        loop {
            let page = ix
                .party_instances(&party, after.as_deref(), DIR_PAGE)
                .unwrap();
            after = page.last().map(|s| s.guid.clone());
            for s in &page {
                if held > 0 {
                    held -= 1;
                    continue;
                }
                let got = ix
                    .read(|db| {
                        let walking = match &last {
                            Some(l) => db.next_guid(&party, l)?.as_ref() == Some(&s.guid),
                            None => false,
                        };
                        if walking {
                            db.instances_from(&party, &s.guid, READ_AHEAD)
                        } else {
                            Ok(db.get_instance(&s.guid)?.into_iter().collect())
                        }
                    })
                    .unwrap();
                read += got.len() as u64;
                held = got.len().saturating_sub(1);
                last = got.last().map(|i| i.guid().to_string());
            }
            if page.len() < DIR_PAGE {
                break;
            }
        }
    }
    read
}

/// Every party's instances in the order `find` visits a directory of more than 10,000
/// entries (gnulib's fts sorts them by inode number), each read the way a walk reads a miss
/// that does not follow the last instance read: one transaction of its own.
fn walk_by_inode(ix: &MetaIndex) -> u64 {
    use crate::altinn::ids::{InstanceGuid, PartyId};
    use crate::fs::{inode::ino_of, layout::Node};
    let mut read = 0;
    for (party, _) in ix.parties(None, 100).unwrap() {
        let p = PartyId::parse(&party).unwrap();
        let mut guids: Vec<(u64, String)> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = ix
                .party_instances(&party, after.as_deref(), DIR_PAGE)
                .unwrap();
            after = page.last().map(|s| s.guid.clone());
            for s in &page {
                let guid = InstanceGuid::parse(&s.guid).unwrap();
                guids.push((ino_of(&Node::Instance { party: p, guid }), s.guid.clone()));
            }
            if page.len() < DIR_PAGE {
                break;
            }
        }
        guids.sort();
        for (_, g) in &guids {
            let got = ix.read(|db| db.get_instance(g)).unwrap();
            read += u64::from(got.is_some());
        }
    }
    read
}

fn measure(n: u64) {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let app = Synthetic::new(n);
    let ix = MetaIndex::open(&dir.path().join("index.sqlite")).unwrap();
    let (t, r) = (Instant::now(), read_syscalls());
    ingest(&ix, &app);
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
    let ingest_us = per(t.elapsed());
    let ingest_reads = (read_syscalls() - r) as f64 / n as f64;
    let (t, r) = (Instant::now(), read_syscalls());
    assert_eq!(walk_by_inode(&ix), n, "the walk read every instance once");
    println!(
        "N={n}: walk in inode order: {:.1} µs/inst ({:.2} reads/inst)",
        per(t.elapsed()),
        (read_syscalls() - r) as f64 / n as f64
    );
    for round in 0..2 {
        let (t, r) = (Instant::now(), read_syscalls());
        let read = walk(&ix);
        assert_eq!(read, n, "the walk read every instance once");
        println!(
            "N={n}: ingest {ingest_us:.1} µs/inst ({ingest_reads:.2} reads/inst); walk {round}: \
             {:.1} µs/inst ({:.2} reads/inst)",
            per(t.elapsed()),
            (read_syscalls() - r) as f64 / n as f64
        );
    }
}

#[test]
#[ignore = "a measurement, minutes long: run it by name with --ignored --nocapture"]
fn walk_cost() {
    let sizes = std::env::var("WALK_COST_SIZES").unwrap_or_else(|_| "10000,200000".into());
    for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        measure(n);
    }
}
