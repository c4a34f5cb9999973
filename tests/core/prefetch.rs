//! Walk prefetch (SPEC §4 "Many files"): reading the files of a tree one after another makes
//! the mount download the next files in parallel. These check correctness, not speed: every
//! read returns exactly the server's bytes, whatever the prefetch is doing, each element is
//! downloaded once, a change on the server is never served stale, a failed prefetch never
//! fails a read, and prefetching stays within its slots and bytes.

use crate::support::*;
use altinnfs::altinn::client::{AltinnClient, UploadBody};
use altinnfs::altinn::InstanceId;
use altinnfs::altinn::Replacement;
use altinnfs::emulator::inprocess::InProcessClient;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The reader (a process id) the tests read as.
const READER: u32 = 4242;

/// One party with `instances` instances of `files` files of `size` bytes in `anything`.
fn app(instances: usize, files: usize, size: usize) -> InProcessClient {
    let c = InProcessClient::new(InProcessClient::sample_metadata());
    for n in 0..instances {
        let g = c.add_instance("50001").guid().to_string();
        for f in 0..files {
            let bytes = pattern(size + f * 7, (n * 31 + f) as u8);
            c.add_element(
                &g,
                "anything",
                Some(&format!("f{f:02}.bin")),
                "application/octet-stream",
                bytes,
            );
        }
    }
    c
}

async fn core_with(client: InProcessClient, f: impl FnOnce(&mut altinnfs::fs::FsConfig)) -> Core {
    Core::with(client, f).await
}

/// Open for reading as `reader`, as the FUSE adapter does with the request's pid.
async fn open_as(c: &Core, path: &str, reader: u32) -> Open {
    let ino = c.ino(path).await.unwrap();
    let fh = c.fs.open_as(ino, libc::O_RDONLY, reader).await.unwrap().fh;
    Open { fh, ino }
}

async fn read_all(c: &Core, f: Open) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = c.read(f, out.len() as u64, 128 * 1024).await.unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend_from_slice(&b);
    }
}

/// The files of a party in walk (readdir) order, as `cp -r` visits them.
async fn walk_paths(c: &Core, party: &str) -> Vec<String> {
    let mut out = Vec::new();
    for g in c.ls(party).await.unwrap() {
        for dt in ["model", "attachments", "anything"] {
            let dir = format!("{party}/{g}/{dt}");
            for n in c.ls(&dir).await.unwrap() {
                out.push(format!("{dir}/{n}"));
            }
        }
    }
    out
}

/// `cp -r` of a party: every file read whole, in walk order, by one reader.
async fn copy_walk(c: &Core, party: &str, reader: u32) -> BTreeMap<String, Vec<u8>> {
    let mut got = BTreeMap::new();
    for p in walk_paths(c, party).await {
        let f = open_as(c, &p, reader).await;
        got.insert(p, read_all(c, f).await);
        c.close(f).await.unwrap();
    }
    got
}

fn server_bytes_of(c: &Core, path: &str) -> Vec<u8> {
    let (dir, name) = path.rsplit_once('/').unwrap();
    let inst_dir: String = dir.split('/').take(2).collect::<Vec<_>>().join("/");
    c.server_bytes(&inst_dir, name).expect("on the server")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_reads_every_file_exactly_once_with_the_servers_bytes() {
    let client = app(6, 5, 40_000);
    client.set_chunk_delay(Some(Duration::from_millis(3)));
    let c = core_with(client, |_| {}).await;
    let paths = walk_paths(&c, "50001").await;
    c.client.reset_counts();
    let got = copy_walk(&c, "50001", READER).await;
    assert_eq!(got.len(), 30);
    for p in &paths {
        assert_eq!(got[p], server_bytes_of(&c, p), "{p}");
    }
    assert_eq!(
        c.client.count(Op::Download),
        30,
        "each element downloaded once, prefetched or not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_file_of_a_directory_starts_downloads_of_the_next_files() {
    let client = app(5, 4, 20_000);
    client.set_chunk_delay(Some(Duration::from_millis(20)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 5).await;
    let paths = walk_paths(&c, "50001").await;
    c.client.reset_counts();
    let f = open_as(&c, &paths[0], READER).await;
    // The opened file, then twice prefetch_files ahead (across into the next instances),
    // never more than prefetch_files at a time: a download that ends makes room for the
    // next one without the reader opening another file.
    let mut most = 0;
    wait_until("prefetches started", || {
        most = most.max(c.fs.prefetch_stats().downloading);
        c.client.count(Op::Download) == 11
    })
    .await;
    assert!(most <= 5, "{most} prefetches at a time");
    assert!(c.fs.prefetch_stats().unclaimed <= 10);
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &paths[0]));
    c.close(f).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        c.client.count(Op::Download),
        11,
        "no more than twice prefetch_files ahead while the reader stays"
    );
}

/// Open `path` as the walk's reader and wait until a second download (a prefetch) starts;
/// how long that took after the open.
async fn open_until_a_prefetch_starts(c: &Core, path: &str) -> (Open, Duration) {
    c.client.reset_counts();
    let opened = Instant::now();
    let f = open_as(c, path, READER).await;
    wait_until("a prefetch started", || c.client.count(Op::Download) > 1).await;
    (f, opened.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walks_prefetches_wait_for_the_opened_files_first_bytes() {
    let client = app(3, 4, 20_000);
    let first_chunk = Duration::from_millis(150);
    client.set_chunk_delay(Some(first_chunk));
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    let paths = walk_paths(&c, "50001").await;
    // The opened file's first chunk comes `first_chunk` after its GET: until then its GET
    // is the only one, so no prefetch competes with it for the reader's first byte.
    let (f, waited) = open_until_a_prefetch_starts(&c, &paths[0]).await;
    assert!(
        waited >= first_chunk,
        "a prefetch started {waited:?} after the open, before the opened file's first bytes"
    );
    // Then the walk goes on as before: twice prefetch_files ahead.
    wait_until("the walk's prefetches", || {
        c.client.count(Op::Download) == 9
    })
    .await;
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &paths[0]));
    c.close(f).await.unwrap();
    let next = open_as(&c, &paths[1], READER).await;
    assert_eq!(read_all(&c, next).await, server_bytes_of(&c, &paths[1]));
    c.close(next).await.unwrap();
    // A walk that runs waits for no first bytes: its one step on starts one more at once,
    // and the next file was not downloaded again.
    wait_until("the walk went on", || c.client.count(Op::Download) == 10).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.client.count(Op::Download), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_file_whose_prefetch_is_under_way_starts_the_next_download_at_once() {
    let client = app(1, 8, 20_000);
    let chunk = Duration::from_millis(200);
    client.set_chunk_delay(Some(chunk));
    let c = core_with(client, |cfg| cfg.prefetch_files = 2).await;
    let paths = walk_paths(&c, "50001").await;
    c.client.reset_counts();
    let first = open_as(&c, &paths[0], READER).await;
    wait_until("two prefetches", || c.client.count(Op::Download) == 3).await;
    // The second file's prefetch has no bytes yet: its open claims it, and its slot goes to
    // the next file now, not once its first bytes come.
    let opened = Instant::now();
    let second = open_as(&c, &paths[1], READER).await;
    wait_until("the freed slot refilled", || {
        c.client.count(Op::Download) == 4
    })
    .await;
    let waited = opened.elapsed();
    assert!(waited < chunk / 2, "{waited:?}");
    assert_eq!(read_all(&c, second).await, server_bytes_of(&c, &paths[1]));
    c.close(second).await.unwrap();
    c.close(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_waits_for_a_stalled_first_byte_only_so_long() {
    let client = app(2, 3, 20_000);
    let first_chunk = Duration::from_millis(2_000);
    client.set_chunk_delay(Some(first_chunk));
    let c = core_with(client, |cfg| cfg.prefetch_files = 2).await;
    let paths = walk_paths(&c, "50001").await;
    let (f, waited) = open_until_a_prefetch_starts(&c, &paths[0]).await;
    // The walk waited (half a second), but not for the whole stalled first chunk.
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < first_chunk, "{waited:?}");
    c.close(f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_whose_first_download_fails_still_prefetches_the_next_files() {
    let client = app(2, 3, 20_000);
    let c = core_with(client, |cfg| cfg.prefetch_files = 2).await;
    let paths = walk_paths(&c, "50001").await;
    c.client
        .fail_next(Op::Download, 1, http(403, "denied"), FaultWhen::Before);
    let f = open_as(&c, &paths[0], READER).await;
    assert!(
        c.read(f, 0, 4096).await.is_err(),
        "the first file's GET failed"
    );
    wait_until("the next files prefetched", || {
        c.fs.prefetch_stats().unclaimed > 0
    })
    .await;
    c.close(f).await.unwrap();
    let next = open_as(&c, &paths[1], READER).await;
    assert_eq!(read_all(&c, next).await, server_bytes_of(&c, &paths[1]));
    c.close(next).await.unwrap();
}

/// Parties 50001, 50002 and 50003, each with `instances` instances of `files` files in
/// `anything`.
fn three_parties(instances: usize, files: usize, size: usize) -> InProcessClient {
    let c = app(instances, files, size);
    for party in ["50002", "50003"] {
        for n in 0..instances {
            let g = c.add_instance(party).guid().to_string();
            for f in 0..files {
                let bytes = pattern(size + f * 5, (n * 17 + f) as u8 ^ party.as_bytes()[4]);
                let name = format!("g{f:02}.bin");
                c.add_element(
                    &g,
                    "anything",
                    Some(&name),
                    "application/octet-stream",
                    bytes,
                );
            }
        }
    }
    c
}

async fn read_each(c: &Core, paths: &[String]) {
    for p in paths {
        let f = open_as(c, p, READER).await;
        assert_eq!(read_all(c, f).await, server_bytes_of(c, p), "{p}");
        c.close(f).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_walk_goes_on_into_the_next_party_once_it_crossed_one() {
    let client = three_parties(3, 3, 20_000);
    client.set_chunk_delay(Some(Duration::from_millis(3)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    let root = c.ls("").await.unwrap();
    assert!(root.contains(&"50002".to_string()) && root.contains(&"50003".to_string()));
    let (a, b, z) = (
        walk_paths(&c, "50001").await,
        walk_paths(&c, "50002").await,
        walk_paths(&c, "50003").await,
    );
    c.client.reset_counts();
    // The first party's last instance: a walk that stayed in one party (`cp -r 50001`) does
    // not download the next party's elements.
    let last = &a[a.len() - 3..];
    let f = open_as(&c, &last[0], READER).await;
    wait_until("the instance prefetched", || {
        c.client.count(Op::Download) == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.client.count(Op::Download), 3, "nothing of party 50002");
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &last[0]));
    c.close(f).await.unwrap();
    read_each(&c, &last[1..]).await;
    // It crossed into 50002: at that party's end, 50003's first eight files are on their way.
    read_each(&c, &b).await;
    wait_until("the next party's files prefetched", || {
        c.client.count(Op::Download) == 3 + 9 + 8
    })
    .await;
    read_each(&c, &z).await;
    assert_eq!(
        c.client.count(Op::Download),
        3 + 9 + 9,
        "each element of the walk downloaded once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefetch_files_0_turns_it_off() {
    let client = app(3, 4, 20_000);
    let c = core_with(client, |cfg| cfg.prefetch_files = 0).await;
    let paths = walk_paths(&c, "50001").await;
    c.client.reset_counts();
    let f = open_as(&c, &paths[0], READER).await;
    read_all(&c, f).await;
    c.close(f).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.client.count(Op::Download), 1);
    let got = copy_walk(&c, "50001", READER).await;
    assert_eq!(got.len(), 12);
    assert_eq!(c.fs.prefetch_stats().unclaimed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_backward_and_overlapping_reads_during_prefetch_return_the_servers_bytes() {
    let client = app(2, 4, 300_000);
    client.set_chunk_delay(Some(Duration::from_millis(2)));
    let c = core_with(client, |_| {}).await;
    let paths = walk_paths(&c, "50001").await;
    let first = open_as(&c, &paths[0], READER).await;
    // Jump ahead into the prefetched files while their downloads run, two handles at once.
    let a = open_as(&c, &paths[2], READER).await;
    let b = open_as(&c, &paths[1], READER).await;
    let want_a = server_bytes_of(&c, &paths[2]);
    let want_b = server_bytes_of(&c, &paths[1]);
    // Backwards through `a` in 100 000-byte steps, overlapping 4 KiB reads of `b`.
    let mut off = want_a.len() as u64;
    let mut boff = 0u64;
    while off > 0 {
        let start = off.saturating_sub(100_000);
        let (ra, rb) = tokio::join!(
            c.read(a, start, (off - start) as u32),
            c.read(b, boff, 64 * 1024)
        );
        assert_eq!(
            ra.unwrap(),
            want_a[start as usize..off as usize],
            "a at {start}"
        );
        let rb = rb.unwrap();
        let end = (boff as usize + rb.len()).min(want_b.len());
        assert_eq!(rb, want_b[boff as usize..end], "b at {boff}");
        boff = (boff + 60 * 1024).min(want_b.len() as u64);
        off = start;
    }
    // A second reader of the same file, at overlapping offsets.
    let b2 = open_as(&c, &paths[1], READER + 1).await;
    for (o, n) in [
        (250_000u64, 80_000u32),
        (0, 300_001),
        (123_456, 1),
        (299_990, 4096),
    ] {
        let got = c.read(b2, o, n).await.unwrap();
        let end = (o as usize + n as usize).min(want_b.len());
        assert_eq!(got, want_b[o as usize..end], "b2 at {o}+{n}");
    }
    assert_eq!(read_all(&c, first).await, server_bytes_of(&c, &paths[0]));
    for f in [first, a, b, b2] {
        c.close(f).await.unwrap();
    }
    // And the rest of the walk, read once more in order.
    let got = copy_walk(&c, "50001", READER).await;
    for p in &paths {
        assert_eq!(got[p], server_bytes_of(&c, p), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_element_changed_during_its_prefetch_is_never_served_stale() {
    let client = app(1, 3, 200_000);
    client.set_chunk_delay(Some(Duration::from_millis(5)));
    // Metadata always asked again, so the mount learns of the change at the next open.
    let c = core_with(client, |cfg| cfg.metadata_ttl = Duration::ZERO).await;
    let paths = walk_paths(&c, "50001").await;
    let first = open_as(&c, &paths[0], READER).await;
    wait_until("prefetch running", || {
        c.fs.prefetch_stats().downloading >= 1
    })
    .await;
    // The server gets new bytes of the next file (the same size) while it is prefetched.
    let (dir, name) = paths[1].rsplit_once('/').unwrap();
    let guid = dir.split('/').nth(1).unwrap();
    let el = c
        .client
        .elements(guid)
        .into_iter()
        .find(|e| e.filename.as_deref() == Some(name))
        .unwrap();
    let old = c.client.blob(&el.id).unwrap();
    let new = pattern(old.len(), 0xA5);
    assert_ne!(old.to_vec(), new);
    let inst = InstanceId::parse(format!("{}/{}", "50001", guid)).unwrap();
    c.client
        .replace_data(
            &inst,
            &el.id.parse().unwrap(),
            Replacement {
                filename: name,
                content_type: "application/octet-stream",
            },
            UploadBody::Bytes(new.clone().into()),
        )
        .await
        .unwrap();
    read_all(&c, first).await;
    c.close(first).await.unwrap();
    let f = open_as(&c, &paths[1], READER).await;
    assert_eq!(
        read_all(&c, f).await,
        new,
        "the new bytes, not the prefetched ones"
    );
    c.close(f).await.unwrap();
    assert_eq!(c.cat(&paths[1]).await.unwrap(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefetch_that_failed_before_the_open_is_downloaded_again() {
    let client = app(1, 2, 50_000);
    let c = core_with(client, |cfg| cfg.prefetch_files = 1).await;
    let paths = walk_paths(&c, "50001").await;
    // The first file is cached already, so the only GET after this open is the prefetch.
    assert_eq!(
        c.cat(&paths[0]).await.unwrap(),
        server_bytes_of(&c, &paths[0])
    );
    c.client
        .fail_next(Op::Download, 3, http(503, "busy"), FaultWhen::Before);
    let first = open_as(&c, &paths[0], READER).await;
    // A prefetch asks once (retries would hold its slot): the first 503 ends it.
    wait_until("the prefetch gave up", || {
        c.client.count(Op::Download) >= 1 && c.fs.prefetch_stats().downloading == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The walk may go on to the file after (prefetch_files 1 plans two ahead), each asked
    // once: with retries, the first prefetch alone made 4 GETs.
    let prefetch_gets = c.client.count(Op::Download);
    assert!(
        prefetch_gets <= 2,
        "{prefetch_gets} GETs: a prefetch was retried"
    );
    // The reader's own download retries through any 503 left.
    let f = open_as(&c, &paths[1], READER).await;
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &paths[1]));
    assert!(
        c.client.count(Op::Download) > prefetch_gets,
        "the open downloaded anew"
    );
    c.close(f).await.unwrap();
    c.close(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefetch_that_fails_under_its_reader_is_retried_by_the_read() {
    let client = app(1, 2, 400_000);
    client.set_chunk_delay(Some(Duration::from_millis(5)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 1).await;
    let paths = walk_paths(&c, "50001").await;
    let (dir, name) = paths[1].rsplit_once('/').unwrap();
    let id = c
        .client
        .elements(dir.split('/').nth(1).unwrap())
        .into_iter()
        .find(|e| e.filename.as_deref() == Some(name))
        .unwrap()
        .id;
    // The prefetch's connection is cut after 128 KiB; later downloads are whole.
    c.client.truncate_downloads(&id, Some(128 * 1024));
    let first = open_as(&c, &paths[0], READER).await;
    wait_until("prefetch running", || {
        c.fs.prefetch_stats().downloading == 1
    })
    .await;
    let f = open_as(&c, &paths[1], READER).await;
    c.client.truncate_downloads(&id, None);
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &paths[1]));
    c.close(f).await.unwrap();
    c.close(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prefetching_stays_within_its_byte_budget() {
    // A 4 MiB cache: prefetches may hold 2 MiB; twenty files of 600 KB would be 12 MB.
    let client = app(4, 5, 600_000);
    client.set_chunk_delay(Some(Duration::from_millis(1)));
    let c = core_with(client, |cfg| cfg.cache_bytes = 4 * 1024 * 1024).await;
    let paths = walk_paths(&c, "50001").await;
    let budget = 2 * 1024 * 1024;
    let mut peak = 0;
    for p in &paths {
        let f = open_as(&c, p, READER).await;
        let want = server_bytes_of(&c, p);
        let mut off = 0;
        while off < want.len() {
            let s = c.fs.prefetch_stats();
            peak = peak.max(s.unclaimed_bytes);
            assert!(s.unclaimed_bytes <= budget, "{s:?} over the budget");
            let b = c.read(f, off as u64, 64 * 1024).await.unwrap();
            assert_eq!(b, want[off..off + b.len()], "{p} at {off}");
            off += b.len();
        }
        c.close(f).await.unwrap();
    }
    assert!(peak > 0, "something was prefetched");
    let on_disk: u64 = std::fs::read_dir(c.spool.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 4 * 1024 * 1024, "cache holds {on_disk} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_jump_stops_the_walk_and_its_downloads() {
    let client = app(9, 6, 500_000);
    client.set_chunk_delay(Some(Duration::from_millis(30)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    let paths = walk_paths(&c, "50001").await;
    let first = open_as(&c, &paths[0], READER).await;
    wait_until("prefetches running", || {
        c.fs.prefetch_stats().downloading == 4
    })
    .await;
    // The last file of an instance far away in both name and inode order: not on the walk,
    // not first in its directory.
    let far_dir = far_instance(&c, guid_of(&paths[0])).await;
    let far_path = paths
        .iter()
        .rfind(|p| p.contains(&far_dir))
        .unwrap()
        .clone();
    let far = open_as(&c, &far_path, READER).await;
    // The walk moves off the open's path, at once: well before the downloads could end by
    // themselves (8 chunks of 30 ms each) and the walk start the next ones.
    let jumped = Instant::now();
    wait_until("the walk's downloads stopped", || {
        c.fs.prefetch_stats().downloading == 0
    })
    .await;
    assert!(jumped.elapsed() < Duration::from_millis(150));
    let want = server_bytes_of(&c, &far_path);
    assert_eq!(read_all(&c, far).await, want);
    c.close(far).await.unwrap();
    c.close(first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_in_sorted_name_order_like_rsync_downloads_each_element_once() {
    let client = app(5, 2, 30_000);
    for i in client.instances() {
        for n in 0..2 {
            let bytes = pattern(20_000 + n, n as u8 ^ 0x5A);
            let name = format!("a{n}.txt");
            client.add_element(i.guid(), "attachments", Some(&name), "text/plain", bytes);
        }
    }
    client.set_chunk_delay(Some(Duration::from_millis(3)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    c.client.reset_counts();
    let mut n = 0;
    for g in c.ls("50001").await.unwrap() {
        // rsync sorts names: `anything` before `attachments`, unlike readdir order.
        for dt in ["anything", "attachments"] {
            let dir = format!("50001/{g}/{dt}");
            for name in c.ls(&dir).await.unwrap() {
                let p = format!("{dir}/{name}");
                let f = open_as(&c, &p, READER).await;
                assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &p), "{p}");
                c.close(f).await.unwrap();
                n += 1;
            }
        }
    }
    assert_eq!(n, 20);
    assert_eq!(c.client.count(Op::Download), 20, "no element twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_walk_in_inode_order_like_cp_downloads_each_element_once() {
    let client = app(12, 2, 30_000);
    client.set_chunk_delay(Some(Duration::from_millis(3)));
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    inode_order_walk(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_an_indexed_mount_the_walk_crosses_instances_from_the_index() {
    use altinnfs::fs::index::IndexConfig;
    let client = app(12, 2, 30_000);
    client.set_chunk_delay(Some(Duration::from_millis(3)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = IndexConfig {
        cache_dir: dir.path().to_path_buf(),
        poll_interval: None,
        full_refresh: None,
        feed_retention: Duration::from_secs(86_400),
        page_size: 100,
        list_parallel: 1,
    };
    let c = core_with(client, move |f| {
        f.prefetch_files = 4;
        f.index = Some(cfg);
    })
    .await;
    let id = altinnfs::fs::IndexIdentity {
        platform_url: "http://memory.test".into(),
        subject: "org-ttd".into(),
    };
    c.fs.open_index(&id).await.expect("index opens");
    inode_order_walk(&c).await;
}

/// `cp -r` of party 50001: each directory sorted by inode; asserts every byte and that each
/// element is downloaded once, with prefetches under way after the first files.
async fn inode_order_walk(c: &Core) {
    // GNU cp -r sorts each directory by d_ino before copying it.
    let mut dirs: Vec<(u64, String)> = c
        .readdir("50001")
        .await
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n != "." && n != "..")
        .map(|(n, a)| (a.ino, n))
        .collect();
    dirs.sort();
    c.client.reset_counts();
    let mut n = 0;
    for (_, g) in dirs {
        let dir = format!("50001/{g}/anything");
        let mut files: Vec<(u64, String)> = c
            .readdir(&dir)
            .await
            .unwrap()
            .into_iter()
            .filter(|(n, _)| n != "." && n != "..")
            .map(|(n, a)| (a.ino, n))
            .collect();
        files.sort();
        for (_, name) in files {
            let p = format!("{dir}/{name}");
            let f = open_as(c, &p, READER).await;
            if n == 3 {
                // The pump starts the downloads just after the open returns.
                wait_until("prefetching follows inode order", || {
                    c.fs.prefetch_stats().unclaimed > 0
                })
                .await;
            }
            assert_eq!(read_all(c, f).await, server_bytes_of(c, &p), "{p}");
            c.close(f).await.unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 24);
    assert_eq!(c.client.count(Op::Download), 24, "no element twice");
}

/// Instances of one file each, added until the newest (last by name) is, by inode, among
/// the two after one of the two before it by name: a step to it fits both walk orders, and
/// only inode order goes on after it.
/// Returns the app and that pair (before, newest).
fn app_with_an_ambiguous_last_step() -> (InProcessClient, String, String) {
    let client = app(3, 1, 20_000);
    let ino = |g: &str| {
        altinnfs::fs::inode::ino_of(&altinnfs::fs::layout::Node::Instance {
            party: 50001.into(),
            guid: g.parse().unwrap(),
        })
    };
    for n in 3..400 {
        let mut by_name: Vec<String> = client.instances().iter().map(|i| i.guid().into()).collect();
        by_name.sort();
        let mut by_ino = by_name.clone();
        by_ino.sort_by_key(|g| ino(g));
        let newest = by_name.last().unwrap().clone();
        let at = by_ino.iter().position(|g| *g == newest).unwrap();
        let fits = |g: &&String| {
            let i = by_ino.iter().position(|x| x == *g).unwrap();
            i < at && at - i <= 2
        };
        // After the newest by inode comes one that the name order (which ends at the newest)
        // did not prefetch already.
        let last_three = &by_name[by_name.len() - 3..];
        if by_ino[at + 1..].iter().any(|g| !last_three.contains(g)) {
            if let Some(before) = by_name[by_name.len() - 3..by_name.len() - 1]
                .iter()
                .find(fits)
            {
                return (client, before.clone(), newest);
            }
        }
        let g = client.add_instance("50001").guid().to_string();
        let bytes = pattern(20_000, n as u8);
        client.add_element(
            &g,
            "anything",
            Some("f00.bin"),
            "application/octet-stream",
            bytes,
        );
    }
    panic!("no ambiguous step among 400 instances");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_that_fits_both_orders_at_the_end_of_the_name_order_goes_on_by_inode() {
    let (client, before, newest) = app_with_an_ambiguous_last_step();
    let c = core_with(client, |cfg| cfg.prefetch_files = 4).await;
    let path = |g: &str| format!("50001/{g}/anything/f00.bin");
    let _ = walk_paths(&c, "50001").await;
    let f = open_as(&c, &path(&before), READER).await;
    read_all(&c, f).await;
    c.close(f).await.unwrap();
    wait_until("the first prefetches end", || {
        c.fs.prefetch_stats().downloading == 0
    })
    .await;
    c.client.reset_counts();
    // The newest is last by name: only inode order has files after it.
    let f = open_as(&c, &path(&newest), READER).await;
    wait_until("the walk goes on in inode order", || {
        c.client.count(Op::Download) > 0
    })
    .await;
    assert_eq!(read_all(&c, f).await, server_bytes_of(&c, &path(&newest)));
    c.close(f).await.unwrap();
}

/// An instance of party 50001 at least three places after `guid` in name order and not among
/// the three after it in inode order (where `cp -r` would go next).
async fn far_instance(c: &Core, guid: &str) -> String {
    let mut by_ino: Vec<(u64, String)> = c
        .readdir("50001")
        .await
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n != "." && n != "..")
        .map(|(n, a)| (a.ino, n))
        .collect();
    by_ino.sort();
    let by_ino: Vec<String> = by_ino.into_iter().map(|(_, g)| g).collect();
    let by_name = c.ls("50001").await.unwrap();
    let after = |v: &[String]| -> Vec<String> {
        let i = v.iter().position(|g| g == guid).unwrap();
        v[i + 1..].iter().take(3).cloned().collect()
    };
    let (near_ino, near_name) = (after(&by_ino), after(&by_name));
    by_name
        .iter()
        .rfind(|g| *g != guid && !near_ino.contains(g) && !near_name.contains(g))
        .expect("nine instances leave one far away")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_longer_than_the_elements_size_fails_with_eio_not_cut_data() {
    let client = app(1, 1, 200_000);
    let el = client.instances()[0].data[0].clone();
    // The metadata says 1000 bytes fewer than the server sends.
    client.update_element(&el.id, |e| e.size -= 1000);
    let c = core_with(client, |_| {}).await;
    let paths = walk_paths(&c, "50001").await;
    assert_eq!(c.stat(&paths[0]).await.unwrap().size, 199_000);
    assert_eq!(c.cat(&paths[0]).await, Err(libc::EIO));
}

/// Issue 14 "more or fewer bytes than `size`" for a file the walk prefetched (not the one
/// opened): its reader gets the server's bytes up to where they are known good, then EIO,
/// never a short file or padding.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefetched_body_shorter_or_longer_than_size_is_eio_never_short_or_padded() {
    for delta in [1000i64, -1000] {
        let client = app(1, 3, 200_000);
        let el = client.instances()[0]
            .data
            .iter()
            .find(|d| d.filename.as_deref() == Some("f01.bin"))
            .unwrap()
            .clone();
        client.update_element(&el.id, |e| e.size += delta);
        let c = core_with(client, |_| {}).await;
        let paths = walk_paths(&c, "50001").await;
        assert!(paths[1].ends_with("/f01.bin"), "{paths:?}");
        let want = server_bytes_of(&c, &paths[1]);
        c.client.reset_counts();
        let first = open_as(&c, &paths[0], READER).await;
        assert_eq!(read_all(&c, first).await, server_bytes_of(&c, &paths[0]));
        wait_until("the next files prefetched", || {
            c.client.count(Op::Download) >= 3 && c.fs.prefetch_stats().downloading == 0
        })
        .await;
        // The failed prefetch is not started again while the walk stays (it looped at
        // thousands of GETs a second): its reader's open downloads it anew.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.client.count(Op::Download), 3, "size {delta:+}");
        c.close(first).await.unwrap();
        let f = open_as(&c, &paths[1], READER).await;
        let mut off = 0usize;
        loop {
            match c.read(f, off as u64, 64 * 1024).await {
                Ok(b) => {
                    assert!(
                        !b.is_empty(),
                        "size {delta:+}: end of file at {off}, no EIO"
                    );
                    assert!(
                        off + b.len() <= want.len() && b == want[off..off + b.len()],
                        "size {delta:+}: bytes at {off} are not the server's"
                    );
                    off += b.len();
                }
                Err(e) => {
                    assert_eq!(e, libc::EIO, "size {delta:+}");
                    break;
                }
            }
        }
        c.close(f).await.unwrap();
        assert_eq!(c.cat(&paths[1]).await, Err(libc::EIO), "size {delta:+}");
    }
}

/// A prefetch refused for good (a 403, an element gone) is tried once while the walk stays,
/// not again and again as fast as the server answers; the reader's own open then asks once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefetch_refused_for_good_is_not_asked_again_while_the_walk_stays() {
    let client = app(1, 3, 50_000);
    let c = core_with(client, |cfg| cfg.prefetch_files = 2).await;
    let paths = walk_paths(&c, "50001").await;
    // The first file is cached already: the GETs after its open are the prefetches.
    assert_eq!(
        c.cat(&paths[0]).await.unwrap(),
        server_bytes_of(&c, &paths[0])
    );
    c.client.reset_counts();
    c.client
        .fail_next(Op::Download, 10_000, http(403, "denied"), FaultWhen::Before);
    let first = open_as(&c, &paths[0], READER).await;
    wait_until("both prefetches asked", || {
        c.client.count(Op::Download) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.client.count(Op::Download), 2, "each prefetch asked once");
    let f = open_as(&c, &paths[1], READER).await;
    assert!(c.read(f, 0, 4096).await.is_err(), "still refused");
    assert_eq!(c.client.count(Op::Download), 3, "the open asked once more");
    c.close(f).await.unwrap();
    c.close(first).await.unwrap();
}
