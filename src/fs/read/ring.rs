//! The bytes in flight of one blob: the chunks the download received last, kept in memory so
//! a reader moving forward is answered from them, with no cache file between the network and
//! the reply. The network's small chunks are gathered into aligned blocks of `BLOCK` bytes as
//! they arrive (one copy): a FUSE read of a whole block (kernel readahead asks 1 MiB at 1 MiB
//! offsets) is then answered from one slice with no copy, and the cache file is written a
//! few blocks at a time with O_DIRECT (`disk`), which costs no page cache copy. Until its block is
//! complete, a chunk is served as it came, so the first bytes wait for no block.

use super::block_mem::BlockMem;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::collections::VecDeque;

/// Bytes of one block (2 MiB): two of the largest FUSE reads (1 MiB at 1 MiB offsets), each
/// of them one slice.
pub use super::block_mem::BLOCK;
/// Where blocks start in memory: O_DIRECT wants buffers aligned to the device's logical block
/// size, which no device makes larger than a page.
pub const ALIGN: usize = 4096;

/// Downloaded bytes in order, each piece with its offset in the blob; contiguous. Complete
/// blocks are one piece each; the block being gathered is held as the chunks that came.
pub struct Ring {
    chunks: VecDeque<(u64, Bytes)>,
    held: u64,
    /// The block being gathered: its offset and its bytes so far.
    filling: Option<(u64, BlockBuf)>,
    /// The blob's size: the last block is allocated no larger than what is left, so a small
    /// file holds its own size in memory, not a whole block.
    size: u64,
}

impl Default for Ring {
    /// A ring for a blob of unknown size.
    fn default() -> Self {
        Self::for_size(u64::MAX)
    }
}

/// The block being gathered: a whole one in its own (huge page) block of memory, or one in
/// an ordinary buffer (the short last one of the blob, the first one).
enum BlockBuf {
    Whole(BlockMem),
    Short(BytesMut),
}

impl BlockBuf {
    fn extend_from_slice(&mut self, s: &[u8]) {
        match self {
            BlockBuf::Whole(m) => m.extend_from_slice(s),
            BlockBuf::Short(b) => b.extend_from_slice(s),
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            BlockBuf::Whole(m) => Bytes::from_owner(m),
            BlockBuf::Short(b) => b.freeze(),
        }
    }
}

/// An empty buffer for the block at `start` of a blob of `size` bytes: a whole block starts
/// aligned (for O_DIRECT); a short last one is written buffered and needs no padding. The
/// first block of a blob is ordinary heap memory: a huge page is zeroed whole at its first
/// touch, which the first byte would wait for.
fn block_buffer(start: u64, size: u64) -> BlockBuf {
    let len = (size.saturating_sub(start)).min(BLOCK as u64) as usize;
    if len < BLOCK {
        return BlockBuf::Short(BytesMut::with_capacity(len));
    }
    if start > 0 {
        return BlockBuf::Whole(BlockMem::new());
    }
    let mut b = BytesMut::with_capacity(BLOCK + ALIGN);
    let pad = b.as_ptr().align_offset(ALIGN);
    b.resize(pad, 0);
    // What is left starts aligned and has room for a whole block, so it never reallocates.
    let _ = b.split_to(pad);
    BlockBuf::Short(b)
}

impl Ring {
    pub fn for_size(size: u64) -> Self {
        Self {
            chunks: VecDeque::new(),
            held: 0,
            filling: None,
            size,
        }
    }

    /// Bytes held in memory.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Add the chunk that starts at `off` (right after the last one). Returns the blocks it
    /// completed, with their offsets, for the cache file.
    pub fn push(&mut self, off: u64, mut chunk: Bytes) -> Vec<(u64, Bytes)> {
        debug_assert!(self
            .chunks
            .back()
            .is_none_or(|(o, c)| o + c.len() as u64 == off));
        let mut done = Vec::new();
        let mut at = off;
        while !chunk.is_empty() {
            // Pieces never straddle a block boundary, so a block replaces whole pieces.
            let room = BLOCK - (at % BLOCK as u64) as usize;
            let piece = chunk.split_to(room.min(chunk.len()));
            let size = self.size;
            let (_, buf) = self
                .filling
                .get_or_insert_with(|| (at, block_buffer(at, size)));
            buf.extend_from_slice(&piece);
            let len = piece.len() as u64;
            self.held += len;
            self.chunks.push_back((at, piece));
            at += len;
            if at.is_multiple_of(BLOCK as u64) {
                done.extend(self.seal());
            }
        }
        done
    }

    /// Make the block being gathered one piece (at the end of the blob, or a block boundary)
    /// and return it for the cache file.
    pub fn seal(&mut self) -> Option<(u64, Bytes)> {
        let (start, buf) = self.filling.take()?;
        let block = buf.freeze();
        // Its pieces are the last ones (those a trim left).
        while let Some((o, c)) = self.chunks.back() {
            if *o < start {
                break;
            }
            self.held -= c.len() as u64;
            self.chunks.pop_back();
        }
        self.held += block.len() as u64;
        self.chunks.push_back((start, block.clone()));
        Some((start, block))
    }

    /// The bytes `off..end` as slices of the held chunks; None unless all of them are held.
    pub fn slice(&self, off: u64, end: u64) -> Option<ReadData> {
        let (first, _) = self.chunks.front()?;
        if off < *first || end > first + self.held {
            return None;
        }
        // The chunk holding `off`: the last one starting at or before it.
        let mut i = self.chunks.partition_point(|(o, _)| *o <= off) - 1;
        let mut parts = Vec::new();
        let mut at = off;
        while at < end {
            let (o, c) = &self.chunks[i];
            let from = (at - o) as usize;
            let to = ((end - o) as usize).min(c.len());
            parts.push(c.slice(from..to));
            at = o + to as u64;
            i += 1;
        }
        Some(ReadData { parts })
    }

    /// Drop chunks from the front while more than `keep` bytes are held, only those that end
    /// at or before `upto` (the bytes safe in the cache file, or left behind by the readers).
    pub fn trim(&mut self, keep: u64, upto: u64) {
        while self.held > keep {
            match self.chunks.front() {
                Some((o, c)) if o + c.len() as u64 <= upto => {
                    self.held -= c.len() as u64;
                    self.chunks.pop_front();
                }
                _ => break,
            }
        }
    }
}

/// The bytes of one read: slices of downloaded chunks (shared, not copied), or one buffer.
#[derive(Debug, Default, Clone)]
pub struct ReadData {
    parts: Vec<Bytes>,
}

thread_local! {
    /// Where a reply made of several chunks is put together: reused, since a fresh 1 MiB
    /// buffer per read costs a page fault per page (measured: a third of the read path).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl ReadData {
    pub fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for p in &self.parts {
            v.extend_from_slice(p);
        }
        v
    }

    /// Call `f` with the bytes as one slice: the chunk itself when one holds them all, else
    /// a copy in this thread's scratch buffer.
    pub fn with_slice<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.parts.as_slice() {
            [] => f(&[]),
            [one] => f(one),
            parts => SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.clear();
                for p in parts {
                    s.extend_from_slice(p);
                }
                f(&s)
            }),
        }
    }
}

impl From<Bytes> for ReadData {
    fn from(b: Bytes) -> Self {
        Self { parts: vec![b] }
    }
}

impl From<Vec<u8>> for ReadData {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(sizes: &[usize]) -> (Ring, Vec<u8>) {
        let mut r = Ring::default();
        let mut all = Vec::new();
        let mut off = 0u64;
        for (n, s) in sizes.iter().enumerate() {
            let c: Vec<u8> = (0..*s).map(|i| (i * 7 + n * 13) as u8).collect();
            all.extend_from_slice(&c);
            r.push(off, Bytes::from(c));
            off += *s as u64;
        }
        (r, all)
    }

    #[test]
    fn slices_across_chunks_return_exactly_the_bytes() {
        let (r, all) = ring_of(&[10, 3, 1, 20]);
        for off in 0..all.len() {
            for end in off..=all.len() {
                let d = r.slice(off as u64, end as u64).unwrap();
                assert_eq!(d.to_vec(), all[off..end], "{off}..{end}");
                assert_eq!(d.with_slice(|s| s.to_vec()), all[off..end]);
            }
        }
        assert!(r.slice(0, all.len() as u64 + 1).is_none());
    }

    #[test]
    fn a_read_inside_one_chunk_is_one_part() {
        let (r, _) = ring_of(&[100, 100]);
        assert_eq!(r.slice(110, 190).unwrap().parts.len(), 1);
        assert_eq!(r.slice(90, 110).unwrap().parts.len(), 2);
    }

    #[test]
    fn trim_keeps_what_is_not_safe_elsewhere() {
        let (mut r, all) = ring_of(&[10, 10, 10]);
        r.trim(0, 15);
        assert_eq!(r.held(), 20);
        assert!(r.slice(5, 12).is_none());
        assert_eq!(r.slice(10, 30).unwrap().to_vec(), all[10..30]);
        r.trim(15, 30);
        assert_eq!(r.held(), 10);
        r.trim(0, 30);
        assert_eq!(r.held(), 0);
        assert!(r.slice(29, 30).is_none());
    }

    /// Chunks of `sizes` pushed in order; the blocks they completed, and all the bytes.
    fn pushed(r: &mut Ring, sizes: &[usize]) -> (Vec<(u64, Bytes)>, Vec<u8>) {
        let mut all = Vec::new();
        let mut blocks = Vec::new();
        for (n, s) in sizes.iter().enumerate() {
            let c: Vec<u8> = (0..*s).map(|i| (i * 31 + n * 7) as u8).collect();
            blocks.extend(r.push(all.len() as u64, Bytes::from(c.clone())));
            all.extend_from_slice(&c);
        }
        (blocks, all)
    }

    #[test]
    fn chunks_are_gathered_into_aligned_blocks_read_without_copy() {
        let mut r = Ring::default();
        // Odd sizes, one chunk straddling the first boundary, one covering a whole block.
        let (blocks, all) = pushed(&mut r, &[1000, BLOCK - 1500, 1000, BLOCK + 700, 300]);
        let offs: Vec<u64> = blocks.iter().map(|(o, _)| *o).collect();
        assert_eq!(offs, [0, BLOCK as u64]);
        for (o, b) in &blocks {
            assert_eq!(b.len(), BLOCK);
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            assert!(b[..] == all[*o as usize..*o as usize + BLOCK]);
        }
        assert_eq!(r.held(), all.len() as u64);
        // A read of a whole block, or inside one, is one slice of it.
        assert_eq!(r.slice(0, BLOCK as u64).unwrap().parts.len(), 1);
        assert_eq!(
            r.slice(BLOCK as u64 + 5, 2 * BLOCK as u64)
                .unwrap()
                .parts
                .len(),
            1
        );
        // The block being gathered is readable as its chunks came.
        let (tail, end) = (2 * BLOCK as u64, all.len() as u64);
        assert_eq!(end - tail, 1500);
        assert!(r.slice(tail, end).unwrap().to_vec() == all[2 * BLOCK..]);
        let across = r.slice(BLOCK as u64 - 10, tail + 10).unwrap();
        assert!(across.to_vec() == all[BLOCK - 10..2 * BLOCK + 10]);
        // At the end, the short last block is sealed for the cache file.
        let (o, last) = r.seal().unwrap();
        assert_eq!((o, last.len() as u64), (tail, end - tail));
        assert_eq!(r.slice(tail, end).unwrap().parts.len(), 1);
        assert_eq!(r.held(), all.len() as u64);
        assert!(r.seal().is_none());
    }

    #[test]
    fn sealing_after_a_trim_into_the_block_keeps_the_ring_whole() {
        let mut r = Ring::default();
        let (_, all) = pushed(&mut r, &[100, 200, 300]);
        r.trim(0, 300);
        assert!(r.slice(0, 10).is_none());
        r.seal().unwrap();
        assert_eq!(r.slice(0, 600).unwrap().to_vec(), all);
        assert_eq!(r.held(), 600);
    }

    #[test]
    fn a_small_blob_holds_its_size_not_a_block() {
        let heap = |b: BlockBuf| match b {
            BlockBuf::Short(b) => (b.capacity(), b.as_ptr() as usize % ALIGN),
            BlockBuf::Whole(_) => (usize::MAX, 0),
        };
        let (small, _) = heap(block_buffer(0, 3000));
        assert!((3000..2 * ALIGN).contains(&small));
        let (last, _) = heap(block_buffer(BLOCK as u64, BLOCK as u64 + 10));
        assert!((10..2 * ALIGN).contains(&last));
        // The first whole block: heap memory, aligned; the next ones: huge page blocks.
        let (first, misaligned) = heap(block_buffer(0, 5 * BLOCK as u64));
        assert!(first >= BLOCK && first != usize::MAX);
        assert_eq!(misaligned, 0);
        assert!(matches!(
            block_buffer(BLOCK as u64, 5 * BLOCK as u64),
            BlockBuf::Whole(_)
        ));
        // Pushed through a ring of that size, the bytes are the same.
        let mut r = Ring::for_size(3000);
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        assert!(r.push(0, Bytes::from(data.clone())).is_empty());
        let (_, b) = r.seal().unwrap();
        assert!(b[..] == data[..]);
    }
}
