//! The bytes in flight of one blob: the chunks the download received last, kept in memory so
//! a reader moving forward is answered from them, with no cache file between the network and
//! the reply, and without copying a chunk that holds the whole request.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Downloaded chunks in order, each with its offset in the blob; contiguous.
#[derive(Default)]
pub struct Ring {
    chunks: VecDeque<(u64, Bytes)>,
    held: u64,
}

impl Ring {
    /// Bytes held in memory.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Add the chunk that starts at `off` (right after the last one).
    pub fn push(&mut self, off: u64, chunk: Bytes) {
        debug_assert!(self
            .chunks
            .back()
            .is_none_or(|(o, c)| o + c.len() as u64 == off));
        self.held += chunk.len() as u64;
        self.chunks.push_back((off, chunk));
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
}
