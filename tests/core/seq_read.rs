//! Sequential reads served from the bytes in flight (SPEC §4 Reads): whatever mix of forward,
//! backward, interleaved and overlapping reads, every read returns exactly the server's bytes
//! from one download; a body longer or shorter than `size` is EIO; a changed element is never
//! served stale; a blob cache that cannot write its file (disk full) still serves readers.

use crate::support::*;
use altinnfs::altinn::client::{AltinnClient, UploadBody};
use altinnfs::altinn::InstanceId;
use altinnfs::altinn::Replacement;
use altinnfs::emulator::inprocess::InProcessClient;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// Bigger than what one blob keeps in memory (32 MiB), so reads go to memory and to the file.
const BIG: usize = 40 * MIB;

/// One instance of party 50001 with `anything/big.bin` of `size` bytes; its path.
fn one_file(size: usize) -> (InProcessClient, String) {
    let c = InProcessClient::new(InProcessClient::sample_metadata());
    let g = c.add_instance("50001").guid().to_string();
    let bytes = pattern(size, 0x3C);
    c.add_element(
        &g,
        "anything",
        Some("big.bin"),
        "application/octet-stream",
        bytes,
    );
    (c, format!("50001/{g}/anything/big.bin"))
}

fn server_bytes(c: &Core, path: &str) -> Vec<u8> {
    let (dir, name) = path.rsplit_once('/').unwrap();
    let inst_dir: String = dir.split('/').take(2).collect::<Vec<_>>().join("/");
    c.server_bytes(&inst_dir, name).expect("on the server")
}

/// Read `len` at `off` and check it against the server's bytes.
async fn check(c: &Core, f: Open, want: &[u8], off: usize, len: usize) {
    let got = c.read(f, off as u64, len as u32).await.unwrap();
    let end = (off + len).min(want.len());
    let start = off.min(end);
    assert!(got == want[start..end], "bytes {off}+{len} differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forward_backward_interleaved_and_overlapping_reads_return_the_servers_bytes() {
    let (client, path) = one_file(BIG);
    let c = Core::with(client, |_| {}).await;
    let want = server_bytes(&c, &path);
    c.client.reset_counts();
    let a = c.open(&path, libc::O_RDONLY).await.unwrap();
    let b = c.open(&path, libc::O_RDONLY).await.unwrap();
    // `a` goes forward past what memory keeps; `b` reads odd, overlapping pieces meanwhile.
    for off in (0..36 * MIB).step_by(MIB) {
        check(&c, a, &want, off, MIB).await;
        check(&c, b, &want, off / 2 + 12_345, 300_001).await;
    }
    // Back to the start (gone from memory by now) and around, then on to the end.
    for off in [
        0,
        5 * MIB + 7,
        35 * MIB,
        MIB - 1,
        20 * MIB,
        36 * MIB,
        BIG - 10,
    ] {
        check(&c, a, &want, off, MIB).await;
    }
    let (x, y) = tokio::join!(
        async {
            for off in (0..BIG).step_by(3 * MIB + 1).rev() {
                check(&c, a, &want, off, 2 * MIB).await;
            }
        },
        async {
            for off in (BIG / 2..BIG + MIB).step_by(MIB / 2) {
                check(&c, b, &want, off, MIB).await;
            }
        }
    );
    let _ = (x, y);
    c.close(a).await.unwrap();
    c.close(b).await.unwrap();
    assert_eq!(c.client.count(Op::Download), 1, "one GET serves every read");
    // A later open reuses the cached blob (from its file).
    assert_eq!(c.cat(&path).await.unwrap(), want);
    assert_eq!(c.client.count(Op::Download), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_ahead_of_a_slow_download_wait_for_it() {
    let (client, path) = one_file(3 * MIB);
    client.set_chunk_delay(Some(Duration::from_millis(1)));
    let c = Core::with(client, |_| {}).await;
    let want = server_bytes(&c, &path);
    let f = c.open(&path, libc::O_RDONLY).await.unwrap();
    // Far ahead first, then the start, then across the end.
    check(&c, f, &want, 2 * MIB + 5, MIB).await;
    check(&c, f, &want, 0, 4096).await;
    check(&c, f, &want, 3 * MIB - 100, MIB).await;
    assert!(c.read(f, 3 * MIB as u64, 10).await.unwrap().is_empty());
    c.close(f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_shorter_or_longer_than_size_is_eio_never_short_or_padded() {
    for delta in [1000i64, -1000] {
        let (client, path) = one_file(3 * MIB);
        let el = client.instances()[0].data[0].clone();
        // The metadata says `delta` bytes more (body too short) or fewer (too long).
        client.update_element(&el.id, |e| e.size += delta);
        let c = Core::with(client, |_| {}).await;
        let size = (3 * MIB) as i64 + delta;
        assert_eq!(c.stat(&path).await.unwrap().size, size as u64);
        assert_eq!(c.cat(&path).await, Err(libc::EIO), "size {delta:+}");
        // The read that reaches the end fails, read in whatever pieces.
        let f = c.open(&path, libc::O_RDONLY).await.unwrap();
        let last = (size as u64 / MIB as u64) * MIB as u64;
        assert_eq!(c.read(f, last, MIB as u32).await, Err(libc::EIO));
        c.close(f).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_element_is_never_served_from_the_old_bytes() {
    let (client, path) = one_file(2 * MIB);
    let c = Core::with(client, |cfg| cfg.metadata_ttl = Duration::ZERO).await;
    let old = server_bytes(&c, &path);
    assert_eq!(c.cat(&path).await.unwrap(), old);
    // New bytes of the same size: only `lastChanged` tells them apart.
    let (dir, _) = path.rsplit_once('/').unwrap();
    let guid = dir.split('/').nth(1).unwrap();
    let el = c.client.elements(guid)[0].clone();
    let new = pattern(old.len(), 0xA5);
    assert_ne!(old, new);
    let inst = InstanceId::parse(format!("50001/{guid}")).unwrap();
    let repl = Replacement {
        filename: "big.bin",
        content_type: "application/octet-stream",
    };
    c.client
        .replace_data(
            &inst,
            &el.id.parse().unwrap(),
            repl,
            UploadBody::Bytes(new.clone().into()),
        )
        .await
        .unwrap();
    assert_eq!(c.cat(&path).await.unwrap(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_cache_disk_full_a_forward_reader_goes_on_from_memory() {
    let (client, path) = one_file(BIG);
    let c = Core::with(client, |_| {}).await;
    let want = server_bytes(&c, &path);
    c.fs.fail_blob_cache_writes(true);
    let f = c.open(&path, libc::O_RDONLY).await.unwrap();
    for off in (0..BIG).step_by(MIB) {
        check(&c, f, &want, off, MIB).await;
    }
    // A little behind the reader is still in memory; the start is not, and is not made up.
    check(&c, f, &want, BIG - 8 * MIB, MIB).await;
    assert_eq!(c.read(f, 0, MIB as u32).await, Err(libc::EIO));
    c.close(f).await.unwrap();
}
