use super::*;
use crate::altinn::model::{CompleteConfirmation, DataElement, ProcessState};
use chrono::TimeZone;
use std::os::unix::fs::PermissionsExt;

pub(crate) fn ts(secs: i64, micros: u32) -> Timestamp {
    chrono::Utc.timestamp_opt(secs, micros * 1000).unwrap()
}

pub(crate) fn guid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

pub(crate) fn element(id: &str, dt: &str, name: &str, changed: i64) -> DataElement {
    DataElement {
        id: id.into(),
        data_type: dt.into(),
        filename: Some(name.into()),
        content_type: Some("application/pdf".into()),
        size: 10,
        created: Some(ts(changed, 0)),
        last_changed: Some(ts(changed, 0)),
        ..Default::default()
    }
}

pub(crate) fn instance(party: &str, n: u64, changed: i64, elements: usize) -> Instance {
    let g = guid(n);
    let mut i = Instance {
        id: format!("{party}/{g}"),
        app_id: "ttd/app".into(),
        org: "ttd".into(),
        created: Some(ts(changed, 0)),
        last_changed: Some(ts(changed, 123_456)),
        ..Default::default()
    };
    i.instance_owner.party_id = party.into();
    for e in 0..elements {
        i.data.push(element(
            &format!("{g}-e{e}"),
            "vedlegg",
            &format!("f{e}.pdf"),
            changed,
        ));
    }
    i
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trips_an_instance_with_its_elements_in_order() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let mut a = instance("500", 1, 100, 3);
    a.data.swap(0, 2); // the server's order, whatever it is, is kept
    a.complete_confirmations = vec![CompleteConfirmation {
        stakeholder_id: "ttd".into(),
        confirmed_on: Some(ts(101, 0)),
    }];
    ix.upsert_instances(&[a.clone(), instance("501", 2, 100, 0)])
        .unwrap();
    assert_eq!(ix.get_instance(a.guid()).unwrap().unwrap(), a);
    assert!(ix.get_instance(&guid(99)).unwrap().is_none());
    // An update replaces the elements, it does not add to them.
    a.data.truncate(1);
    ix.upsert_instances(std::slice::from_ref(&a)).unwrap();
    assert_eq!(ix.get_instance(a.guid()).unwrap().unwrap().data.len(), 1);
    let c = ix.counts().unwrap();
    assert_eq!((c.instances, c.elements, c.parties), (2, 1, 2));
    assert!(ix.delete_instance(a.guid()).unwrap());
    assert!(!ix.delete_instance(a.guid()).unwrap());
    assert_eq!(
        ix.counts().unwrap().elements,
        0,
        "elements go with their instance"
    );
}

/// An instance with the links and blob paths Storage sends.
fn linked(party: &str, n: u64) -> Instance {
    use crate::altinn::model::ResourceLinks;
    let mut i = instance(party, n, 100, 2);
    let links = |path: &str| ResourceLinks {
        apps: Some(format!("https://ttd.apps/ttd/app/instances/{path}")),
        platform: Some(format!("https://platform/storage/api/v1/instances/{path}")),
    };
    i.self_links = Some(links(&i.id));
    let (id, g) = (i.id.clone(), i.guid().to_string());
    for e in &mut i.data {
        e.instance_guid = g.clone();
        e.blob_storage_path = Some(format!("ttd/app/{g}/data/{}", e.id));
        e.self_links = Some(links(&format!("{id}/data/{}", e.id)));
    }
    i
}

#[test]
fn links_and_blob_paths_are_not_stored_yet_load_as_the_server_sent_them() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let (a, b) = (linked("500", 1), linked("501", 2));
    let mut other = linked("502", 3);
    other.data[0].blob_storage_path = Some("elsewhere".into());
    other.data[1].self_links = None;
    ix.upsert_instances(&[a.clone(), b.clone(), other.clone()])
        .unwrap();
    for i in [&a, &b, &other] {
        assert_eq!(&ix.get_instance(i.guid()).unwrap().unwrap(), i);
    }
    let stored: Vec<String> = ix
        .read(|db| {
            let mut st = db
                .conn
                .prepare("SELECT doc FROM instances UNION ALL SELECT doc FROM elements")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .unwrap();
    let text = stored.concat();
    assert!(!text.contains("https://"), "no link is stored: {text}");
    assert!(
        text.contains("elsewhere"),
        "a path of another shape is kept"
    );
}

/// A read keeps the link bases it found: the instances it loads afterwards do not read them
/// again (two statements each), and still load with their links.
#[test]
fn a_read_remembers_the_link_bases_it_found() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let (a, b) = (linked("500", 1), linked("501", 2));
    ix.upsert_instances(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(ix.get_instance(a.guid()).unwrap().unwrap(), a);
    // Gone from the file, the bases still come from memory.
    ix.write(|db| {
        db.conn
            .execute("DELETE FROM meta WHERE key LIKE 'links:%'", [])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(ix.get_instance(b.guid()).unwrap().unwrap(), b);
}

/// A read that fails (or panics) rolls its transaction back: the next read and write work.
#[test]
fn a_failed_read_leaves_no_transaction_open() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let failed: IndexResult<()> = ix.read(|db| {
        db.conn.execute("SELECT nothing FROM nowhere", [])?;
        Ok(())
    });
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ix.read(|_| -> IndexResult<()> { panic!("a reader panics") })
    }));
    assert!(panicked.is_err());
    ix.upsert_instances(&[instance("500", 1, 100, 1)]).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 1);
    let in_tx = ix.read(|db| Ok(!db.conn.is_autocommit())).unwrap();
    assert!(in_tx, "a read runs in a transaction");
    let after = ix
        .conn
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_autocommit();
    assert!(after, "and ends it");
}

#[test]
fn a_party_is_read_page_by_page_in_guid_order() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let page: Vec<Instance> = (0..250).rev().map(|n| instance("500", n, 10, 1)).collect();
    ix.upsert_instances(&page).unwrap();
    ix.upsert_instances(&[instance("600", 1000, 10, 0)])
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let p = ix.party_instances("500", after.as_deref(), 100).unwrap();
        if p.is_empty() {
            break;
        }
        assert!(p.len() <= 100);
        after = Some(p.last().unwrap().guid.clone());
        seen.extend(p.into_iter().map(|s| s.guid));
    }
    let want: Vec<String> = (0..250).map(guid).collect();
    assert_eq!(seen, want);
    let docs = ix.party_documents("500", Some(&guid(9)), 2).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].guid(), guid(10));
    assert_eq!(docs[0].data.len(), 1);
    assert_eq!(
        ix.parties(None, 10).unwrap(),
        vec![("500".to_string(), 250), ("600".to_string(), 1)]
    );
    assert_eq!(ix.parties(Some("500"), 10).unwrap().len(), 1);
}

#[test]
fn summaries_carry_what_a_listing_needs() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let mut a = instance("500", 1, 100, 0);
    a.status.is_archived = true;
    a.process = Some(ProcessState {
        ended: Some(ts(150, 0)),
        ..Default::default()
    });
    ix.upsert_instances(&[a]).unwrap();
    let s = &ix.party_instances("500", None, 10).unwrap()[0];
    assert!(s.archived && !s.deleted);
    assert_eq!(s.ended, Some(ts(150, 0)));
    assert_eq!(s.last_changed, Some(ts(100, 123_456)));
}

#[test]
fn inbox_lists_ended_unconfirmed_oldest_first_and_done_newest_first() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let ended = |n: u64, at: i64, confirmed: &[&str]| {
        let mut i = instance("500", n, at, 0);
        i.process = Some(ProcessState {
            ended: Some(ts(at, 0)),
            ..Default::default()
        });
        i.complete_confirmations = confirmed
            .iter()
            .map(|s| CompleteConfirmation {
                stakeholder_id: s.to_string(),
                confirmed_on: None,
            })
            .collect();
        i
    };
    ix.upsert_instances(&[
        ended(1, 300, &[]),
        ended(2, 100, &["other"]),
        ended(3, 200, &["ttd"]),
        instance("500", 4, 50, 0), // not ended
    ])
    .unwrap();
    let inbox = ix.read(|db| db.inbox("ttd", None, 10)).unwrap();
    let guids: Vec<&str> = inbox.iter().map(|s| s.guid.as_str()).collect();
    assert_eq!(guids, vec![guid(2), guid(1)]);
    let next = ix
        .read(|db| db.inbox("ttd", Some((ts(100, 0).timestamp_micros(), &guid(2))), 10))
        .unwrap();
    assert_eq!(next.len(), 1);
    ix.write(|db| {
        db.mark_done("500", &guid(3), &ts(10, 0))?;
        db.mark_done("500", &guid(1), &ts(20, 0))
    })
    .unwrap();
    let done = ix.read(|db| db.done(None, 10)).unwrap();
    assert_eq!(done[0].1, guid(1));
    assert_eq!(done[1].1, guid(3));
    assert!(ix.read(|db| db.is_done(&guid(3))).unwrap());
    assert!(!ix.read(|db| db.is_done(&guid(2))).unwrap());
}

#[test]
fn cursor_keeps_the_servers_precision() {
    let ix = MetaIndex::open_in_memory().unwrap();
    assert!(ix.cursor("app").unwrap().is_none());
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-27T14:59:58.1234567Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    ix.set_cursor("app", &t).unwrap();
    assert_eq!(ix.cursor("app").unwrap(), Some(t));
    assert!(ix.cursor("party:1").unwrap().is_none());
}

#[test]
fn feed_appends_with_growing_seq_and_reads_since_seq_or_time() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let ev = |g: u64| FeedEvent::instance(EventKind::InstanceCreated, "500", &guid(g), None);
    let a = ix.append_events(vec![ev(1), ev(2)]).unwrap();
    assert_eq!((a[0].seq, a[1].seq), (1, 2));
    assert!(!a[0].seen.is_empty());
    let b = ix.append_events(vec![ev(3)]).unwrap();
    assert_eq!(b[0].seq, 3);
    let since = ix.feed_since(1, 100).unwrap();
    assert_eq!(since.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(since[1], b[0]);
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(ix.feed_since_time(&past, 100).unwrap().len(), 3);
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!(ix.feed_since_time(&future, 100).unwrap().is_empty());
    // The line is the JSON of SPEC §7.3.
    let line = since[0].to_line();
    assert!(line.starts_with(r#"{"seq":2,"seen":""#), "{line}");
    assert!(line.contains(r#""event":"instance.created""#));
    assert!(!line.contains("dataType"), "no nulls: {line}");
}

#[test]
fn feed_pruning_by_age_and_rows_never_reuses_a_seq() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let ev = |g: u64| FeedEvent::instance(EventKind::InstanceChanged, "1", &guid(g), None);
    let old = ts(1_000_000, 0);
    ix.write(|db| db.append_events(&mut [ev(1), ev(2)], &old))
        .unwrap();
    ix.append_events((3..8).map(ev).collect()).unwrap();
    assert_eq!(ix.prune_feed(Duration::from_secs(86_400), 1000).unwrap(), 2);
    assert_eq!(ix.prune_feed(Duration::from_secs(86_400), 3).unwrap(), 2);
    let left: Vec<u64> = ix
        .feed_since(0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, vec![5, 6, 7]);
    ix.write(|db| db.prune_feed(&(chrono::Utc::now() + chrono::Duration::days(1)), 10))
        .unwrap();
    assert_eq!(ix.last_seq().unwrap(), 7);
    assert_eq!(ix.append_events(vec![ev(9)]).unwrap()[0].seq, 8);
}

#[test]
fn a_feed_line_with_hostile_names_stays_one_json_line() {
    let mut e = FeedEvent::instance(EventKind::ElementCreated, "1", "g", None);
    e.path = format!("1/g/v/a\"b\nc\u{0}d\u{1b}{}", "x".repeat(5000));
    let ix = MetaIndex::open_in_memory().unwrap();
    let e = ix.append_events(vec![e]).unwrap().remove(0);
    let line = e.to_line();
    assert!(!line.contains('\n') && !line.contains('\u{0}'));
    let back: FeedEvent = serde_json::from_str(&line).unwrap();
    assert!(back.path.len() <= feed::MAX_PATH);
}

#[test]
fn files_are_private_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/index.sqlite");
    {
        let ix = MetaIndex::open(&path).unwrap();
        ix.upsert_instances(&[instance("500", 1, 10, 2)]).unwrap();
        ix.set_cursor("app", &ts(10, 0)).unwrap();
        for p in companions(&path).iter().filter(|p| p.exists()) {
            assert_eq!(mode(p), 0o600, "{}", p.display());
        }
        assert!(companions(&path)[1].exists(), "WAL mode");
    }
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    let ix = MetaIndex::open(&path).unwrap();
    assert_eq!(ix.counts().unwrap().elements, 2);
    assert_eq!(ix.cursor("app").unwrap(), Some(ts(10, 0)));
}

fn aside_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".aside-"))
        .collect()
}

#[test]
fn a_corrupt_file_is_set_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    std::fs::write(&path, b"this is not a database, just garbage ".repeat(200)).unwrap();
    let ix = MetaIndex::open(&path).unwrap();
    ix.upsert_instances(&[instance("1", 1, 1, 0)]).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 1);
    assert_eq!(aside_files(dir.path()).len(), 1);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_damaged_index_is_set_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    {
        let ix = MetaIndex::open(&path).unwrap();
        let many: Vec<Instance> = (0..300).map(|n| instance("1", n, 1, 2)).collect();
        ix.upsert_instances(&many).unwrap();
        ix.read(|db| {
            db.meta_get("x")?;
            Ok(())
        })
        .unwrap();
        let conn = ix.conn.lock().unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    // Overwrite pages in the middle of the file (table and index b-trees).
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    for b in &mut bytes[4096..len - 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let ix = MetaIndex::open(&path).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 0, "rebuilt, not trusted");
    assert!(!aside_files(dir.path()).is_empty());
}

#[test]
fn another_schema_version_or_application_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    {
        let ix = MetaIndex::open(&path).unwrap();
        ix.upsert_instances(&[instance("1", 1, 1, 0)]).unwrap();
        let conn = ix.conn.lock().unwrap();
        conn.execute_batch(&format!("PRAGMA user_version={}", SCHEMA_VERSION + 1))
            .unwrap();
    }
    let ix = MetaIndex::open(&path).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 0);
    assert_eq!(aside_files(dir.path()).len(), 1);
    drop(ix);
    // Some other program's SQLite file in its place.
    std::fs::remove_file(&path).unwrap();
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(other);
    let ix = MetaIndex::open(&path).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 0);
    assert!(aside_files(dir.path()).len() >= 2);
}

#[test]
fn an_unwritable_directory_falls_back_to_memory_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // A path below a regular file can never be created (as root too).
    let (ix, why) = MetaIndex::open_or_memory(&file.join("sub/index.sqlite"));
    assert!(why.unwrap().contains("memory only"));
    assert!(ix.path().is_none());
    ix.upsert_instances(&[instance("1", 1, 1, 0)]).unwrap();
    assert_eq!(ix.counts().unwrap().instances, 1);
}

#[test]
fn clear_removes_the_index_and_its_companions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let ix = MetaIndex::open(&path).unwrap();
    ix.upsert_instances(&[instance("1", 1, 1, 0)]).unwrap();
    drop(ix);
    std::fs::write(dir.path().join("index.sqlite.aside-1"), b"x").unwrap();
    std::fs::write(dir.path().join("unrelated"), b"x").unwrap();
    let removed = remove_index_files(&path).unwrap();
    assert!(removed.len() >= 2);
    assert!(!path.exists());
    assert!(dir.path().join("unrelated").exists());
}

#[test]
fn one_index_per_host_app_and_subject() {
    let a = IndexKey::new("http://127.0.0.1:5101", "ttd/app", "org-ttd");
    assert_eq!(a.host, "127.0.0.1:5101");
    let p = a.path_in(Path::new("/c"));
    assert!(
        p.to_string_lossy().starts_with("/c/index/127.0.0.1_5101"),
        "{p:?}"
    );
    assert!(p.ends_with("ttd/app/org-ttd/index.sqlite"));
    let b = IndexKey::new("https://platform.tt02.altinn.no", "ttd/app", "user-1337");
    assert_ne!(a.path_in(Path::new("/c")), b.path_in(Path::new("/c")));
    assert!(b
        .path_in(Path::new("/c"))
        .starts_with("/c/index/platform.tt02.altinn.no/ttd/app"));
    // Other --query filters, another index; their order does not matter.
    let q = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let f1 = a
        .clone()
        .with_filters(&q(&[("process.isComplete", "true"), ("x", "1")]));
    let f2 = a
        .clone()
        .with_filters(&q(&[("x", "1"), ("process.isComplete", "true")]));
    let c = Path::new("/c");
    assert_eq!(f1.path_in(c), f2.path_in(c));
    assert_ne!(f1.path_in(c), a.path_in(c));
    assert_eq!(a.clone().with_filters(&[]).path_in(c), a.path_in(c));
    // Hostile parts stay one component each.
    let c = IndexKey::new("http://h", "../..", "a/b");
    let pc = c.path_in(Path::new("/c"));
    assert!(pc.starts_with("/c/index/h"));
    assert!(pc
        .components()
        .all(|c| !matches!(c, std::path::Component::ParentDir)));
}

#[test]
fn token_subjects() {
    let jwt = |claims: &str| {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", e.encode(b"{}"), e.encode(claims.as_bytes()))
    };
    assert_eq!(
        token_subject(&jwt(r#"{"urn:altinn:org":"ttd"}"#)),
        "org-ttd"
    );
    assert_eq!(
        token_subject(&jwt(
            r#"{"urn:altinn:userid":"1337","urn:altinn:partyid":5}"#
        )),
        "user-1337"
    );
    let s = token_subject(&jwt(r#"{"sub":"someone@example"}"#));
    assert!(s.starts_with("sub-") && !s.contains("someone"), "{s}");
    assert_eq!(token_subject("opaque"), "unknown");
}

/// 200,000 instances with two elements each, in pages of 1,000 (a full listing's shape).
#[test]
fn two_hundred_thousand_instances() {
    let n: u64 = std::env::var("INDEX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let ix = MetaIndex::open(&path).unwrap();
    let t = std::time::Instant::now();
    for start in (0..n).step_by(1000) {
        let page: Vec<Instance> = (start..(start + 1000).min(n))
            .map(|i| instance(&format!("{}", 50_000_000 + i % 1000), i, 1_700_000_000, 2))
            .collect();
        ix.upsert_instances(&page).unwrap();
    }
    let took = t.elapsed();
    let c = ix.counts().unwrap();
    assert_eq!(c.instances, n);
    assert_eq!(c.elements, 2 * n);
    let t2 = std::time::Instant::now();
    let page = ix
        .party_instances("50000500", Some(&guid(n / 2)), 100)
        .unwrap();
    let page_took = t2.elapsed();
    assert!(!page.is_empty());
    let per_table = {
        let conn = ix.conn.lock().unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let mut st = conn
            .prepare(
                "SELECT name, sum(pgsize) / 1024 FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 6",
            )
            .unwrap();
        let rows = st
            .query_map([], |r| {
                Ok(format!(
                    "{}={}KiB",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?
                ))
            })
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join(" ")
    };
    eprintln!("index tables: {per_table}");
    drop(ix);
    let size: u64 = companions(&path)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let t3 = std::time::Instant::now();
    let ix = MetaIndex::open(&path).unwrap();
    let reopen = t3.elapsed();
    assert_eq!(ix.counts().unwrap().instances, n);
    eprintln!(
        "index: {n} instances ({} elements) inserted in {took:.2?} ({:.1} µs/instance), \
         {:.1} MiB on disk, a page of 100 read in {page_took:.2?}, reopened (quick_check) in {reopen:.2?}",
        2 * n,
        took.as_micros() as f64 / n as f64,
        size as f64 / (1024.0 * 1024.0)
    );
}

/// Element rows written from now on (inserted, updated or deleted), by id, in order.
fn watch_elements(ix: &MetaIndex) {
    ix.read(|db| {
        db.conn.execute_batch(
            "CREATE TEMP TABLE touched (id TEXT NOT NULL);
             CREATE TEMP TRIGGER touched_ins AFTER INSERT ON elements
                 BEGIN INSERT INTO touched VALUES (new.id); END;
             CREATE TEMP TRIGGER touched_upd AFTER UPDATE ON elements
                 BEGIN INSERT INTO touched VALUES (new.id); END;
             CREATE TEMP TRIGGER touched_del AFTER DELETE ON elements
                 BEGIN INSERT INTO touched VALUES (old.id); END;",
        )?;
        Ok(())
    })
    .unwrap();
}

/// The element rows written since the last call.
fn touched(ix: &MetaIndex) -> Vec<String> {
    ix.read(|db| {
        let mut st = db.conn.prepare("SELECT id FROM touched ORDER BY rowid")?;
        let ids = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        db.conn.execute("DELETE FROM touched", [])?;
        Ok(ids)
    })
    .unwrap()
}

#[test]
fn an_upload_writes_its_element_row_only_and_the_instance_last_changed() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let mut inst = linked("500", 1);
    for n in 2..50 {
        let mut e = inst.data[0].clone();
        e.id = format!("{}-e{n}", inst.guid());
        e.filename = Some(format!("f{n}.pdf"));
        e.blob_storage_path = Some(format!("ttd/app/{}/data/{}", inst.guid(), e.id));
        inst.data.push(e);
    }
    ix.upsert_instances(std::slice::from_ref(&inst)).unwrap();
    watch_elements(&ix);

    // Replace element 7: its row only; the instance takes the newer lastChanged.
    inst.data[7].size = 4_096;
    inst.data[7].last_changed = Some(ts(200, 5));
    inst.last_changed = Some(ts(200, 5));
    let el = inst.data[7].clone();
    assert!(ix.write(|db| db.upsert_element(&inst, &el)).unwrap());
    assert_eq!(touched(&ix), vec![el.id.clone()]);
    assert_eq!(ix.get_instance(inst.guid()).unwrap().unwrap(), inst);
    let version = ix.read(|db| db.version(inst.guid())).unwrap().unwrap();
    assert_eq!(version.1, Some(ts(200, 5).timestamp_micros()));

    // A new element: one row, listed after the others.
    let mut new = inst.data[0].clone();
    new.id = format!("{}-new", inst.guid());
    new.blob_storage_path = Some(format!("ttd/app/{}/data/{}", inst.guid(), new.id));
    new.self_links = None;
    inst.data.push(new.clone());
    assert!(ix.write(|db| db.upsert_element(&inst, &new)).unwrap());
    assert_eq!(touched(&ix), vec![new.id.clone()]);
    assert_eq!(ix.get_instance(inst.guid()).unwrap().unwrap(), inst);

    // A delete: that row.
    let gone = inst.data.remove(3);
    assert!(ix
        .write(|db| db.delete_element(inst.guid(), &gone.id))
        .unwrap());
    assert!(!ix
        .write(|db| db.delete_element(inst.guid(), &gone.id))
        .unwrap());
    assert_eq!(touched(&ix), vec![gone.id.clone()]);
    assert_eq!(ix.get_instance(inst.guid()).unwrap().unwrap(), inst);

    // An instance the index does not hold: nothing is written.
    let stranger = linked("500", 2);
    let el = stranger.data[0].clone();
    assert!(!ix.write(|db| db.upsert_element(&stranger, &el)).unwrap());
    assert!(touched(&ix).is_empty());
    assert_eq!(ix.get_instance(stranger.guid()).unwrap(), None);
}

#[test]
fn fifty_uploads_one_row_each_load_back_as_a_full_ingest_of_the_result() {
    let by_rows = MetaIndex::open_in_memory().unwrap();
    let mut inst = linked("500", 1);
    by_rows
        .upsert_instances(std::slice::from_ref(&inst))
        .unwrap();
    for n in 0..50u32 {
        let changed = ts(1_000 + i64::from(n), n);
        let mut e = element(&format!("up-{n}"), "vedlegg", "same.pdf", 1_000);
        e.last_changed = Some(changed);
        if n % 10 == 9 {
            // Now and then an upload replaces an element uploaded before.
            e.id = format!("up-{}", n - 5);
            let at = inst.data.iter().position(|d| d.id == e.id).unwrap();
            inst.data[at] = e.clone();
        } else {
            inst.data.push(e.clone());
        }
        inst.last_changed = Some(changed);
        by_rows.write(|db| db.upsert_element(&inst, &e)).unwrap();
    }
    let full = MetaIndex::open_in_memory().unwrap();
    full.upsert_instances(std::slice::from_ref(&inst)).unwrap();
    let loaded = by_rows.get_instance(inst.guid()).unwrap().unwrap();
    assert_eq!(loaded, full.get_instance(inst.guid()).unwrap().unwrap());
    assert_eq!(loaded, inst);
    assert_eq!(by_rows.counts().unwrap(), full.counts().unwrap());
    let summary = |ix: &MetaIndex| ix.party_instances("500", None, 10).unwrap();
    assert_eq!(summary(&by_rows), summary(&full));
}

#[test]
fn a_batch_from_a_guid_holds_the_same_instances_as_reading_them_one_by_one() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let mine: Vec<Instance> = (1..=10)
        .map(|n| instance("1", n, 100, n as usize % 3))
        .collect();
    let other: Vec<Instance> = (11..=13).map(|n| instance("2", n, 100, 1)).collect();
    ix.upsert_instances(&mine).unwrap();
    ix.upsert_instances(&other).unwrap();
    let batch = ix.instances_from("1", &guid(3), 4).unwrap();
    let one_by_one: Vec<Instance> = (3..=6)
        .map(|n| ix.get_instance(&guid(n)).unwrap().unwrap())
        .collect();
    assert_eq!(batch, one_by_one);
    assert_eq!(batch, mine[2..6].to_vec(), "elements included, in order");
    // The end of the party: the rest of it, never another party's.
    let tail = ix.instances_from("1", &guid(9), 64).unwrap();
    assert_eq!(tail, mine[8..].to_vec());
    assert!(ix.instances_from("1", &guid(11), 64).unwrap().is_empty());
    let next = |after: u64| ix.read(|db| db.next_guid("1", &guid(after))).unwrap();
    assert_eq!(next(3), Some(guid(4)));
    assert_eq!(next(10), None, "the last of its party");
}

fn wal_bytes(path: &Path) -> u64 {
    std::fs::metadata(&companions(path)[1]).map_or(0, |m| m.len())
}

#[test]
fn the_wal_is_checkpointed_and_truncated_near_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let ix = MetaIndex::open(&path).unwrap();
    let limit: u64 = 512 << 10;
    ix.set_wal_limit(limit as i64).unwrap();
    let mut most = 0;
    for page in 0..60u64 {
        let insts: Vec<Instance> = (0..100)
            .map(|n| instance("500", page * 100 + n, 10, 2))
            .collect();
        ix.upsert_instances(&insts).unwrap();
        most = most.max(wal_bytes(&path));
    }
    let db = std::fs::metadata(&path).unwrap().len();
    assert!(
        db > 4 * limit,
        "the test writes well past the limit ({db} bytes)"
    );
    // At most the limit plus the commit that crossed it (one page of 100 instances).
    assert!(most <= 2 * limit, "WAL reached {most} bytes");
    assert_eq!(ix.counts().unwrap().instances, 6000);
}

#[test]
fn the_default_wal_limit_is_set_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let ix = MetaIndex::open(&path).unwrap();
    let (auto, size) = ix
        .read(|db| {
            let get = |p: &str| {
                db.conn
                    .query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0))
            };
            Ok((get("wal_autocheckpoint")?, get("journal_size_limit")?))
        })
        .unwrap();
    assert_eq!(size, WAL_LIMIT_BYTES);
    assert_eq!(auto, WAL_LIMIT_BYTES / 4096);
}

/// How often SQLite compiled a cached statement again (after its first run).
fn reprepares(ix: &MetaIndex, sql: &str) -> i32 {
    let conn = ix.conn.lock().unwrap();
    let st = conn.prepare_cached(sql).unwrap();
    st.get_status(rusqlite::StatementStatus::RePrepare)
}

#[test]
fn a_walk_reads_with_statements_that_stay_compiled() {
    let path = tempfile::tempdir().unwrap().keep().join("ix.sqlite");
    let ix = MetaIndex::open(&path).unwrap();
    ix.upsert_instances(
        &(1..=40)
            .map(|n| instance("500", n, 100, 3))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    for n in 1..=40 {
        ix.read(|db| {
            db.next_guid("500", &guid(n))?;
            db.instances_from("500", &guid(n), 4)
        })
        .unwrap();
        ix.get_instance(&guid(n)).unwrap().unwrap();
    }
    for sql in [
        "SELECT doc FROM elements WHERE guid = ?1 ORDER BY pos",
        "SELECT guid FROM instances WHERE party = ?1 AND guid > ?2 ORDER BY guid LIMIT 1",
        "SELECT doc FROM instances WHERE party = ?1 AND guid >= ?2 ORDER BY guid LIMIT ?3",
        "SELECT doc FROM instances WHERE guid = ?1",
    ] {
        assert_eq!(reprepares(&ix, sql), 0, "{sql}");
    }
}

#[test]
fn the_status_alone_tells_a_deleted_instance_without_its_elements() {
    let ix = MetaIndex::open_in_memory().unwrap();
    let mut gone = instance("500", 1, 100, 3);
    gone.status.is_soft_deleted = true;
    gone.status.soft_deleted = Some(ts(150, 0));
    ix.upsert_instances(&[gone, instance("500", 2, 100, 3)])
        .unwrap();
    let s = ix.instance_status(&guid(1)).unwrap().unwrap();
    assert!(s.is_soft_deleted && s.soft_deleted == Some(ts(150, 0)));
    let s = ix.instance_status(&guid(2)).unwrap().unwrap();
    assert!(!s.is_soft_deleted && s.soft_deleted.is_none());
    assert_eq!(ix.instance_status(&guid(3)).unwrap(), None);
}
