//! The memory of whole blocks: `BLOCK` bytes mapped at a `BLOCK` boundary, advised to be one
//! transparent huge page, and reused through a small pool. The kernel then pins a block for
//! the cache file's O_DIRECT write and for the FUSE reply through one page table entry
//! instead of 512, and a reused block is neither faulted in nor zeroed again. Without THP
//! the same code runs on ordinary pages.

use std::ptr::NonNull;
use std::sync::Mutex;

/// Bytes of one block: one huge page on x86-64 and arm64 (4 KiB base pages).
pub const BLOCK: usize = 2 * 1024 * 1024;

/// Free blocks kept for reuse at most (the ring of one reader holds 16).
const POOL_MAX: usize = 16;

/// A mapping of `BLOCK` bytes at a `BLOCK` boundary; unmapped on drop.
struct Mapping(NonNull<u8>);

// SAFETY: a private anonymous mapping owned by this value alone.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new() -> Self {
        // Map twice the size and keep the aligned block inside it.
        let len = 2 * BLOCK;
        // SAFETY: a fresh private anonymous mapping, no address hint.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; BLOCK]>());
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(BLOCK);
        // SAFETY: both ranges lie inside the mapping just made and are not used.
        unsafe {
            if aligned > start {
                libc::munmap(raw, aligned - start);
            }
            let end = aligned + BLOCK;
            if start + len > end {
                libc::munmap(end as *mut libc::c_void, start + len - end);
            }
            // Advice only: a kernel without THP keeps ordinary pages.
            libc::madvise(aligned as *mut libc::c_void, BLOCK, libc::MADV_HUGEPAGE);
        }
        Self(NonNull::new(aligned as *mut u8).expect("mmap returned null"))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the block mapped in `new`, no longer referenced.
        unsafe { libc::munmap(self.0.as_ptr() as *mut libc::c_void, BLOCK) };
    }
}

static POOL: Mutex<Vec<Mapping>> = Mutex::new(Vec::new());

/// One block being filled, then shared read-only (as the owner of a `Bytes`).
pub struct BlockMem {
    map: Option<Mapping>,
    len: usize,
}

impl BlockMem {
    pub fn new() -> Self {
        let map = POOL.lock().unwrap().pop().unwrap_or_else(Mapping::new);
        Self {
            map: Some(map),
            len: 0,
        }
    }

    fn ptr(&self) -> *mut u8 {
        self.map.as_ref().expect("live block").0.as_ptr()
    }

    pub fn extend_from_slice(&mut self, s: &[u8]) {
        assert!(self.len + s.len() <= BLOCK, "block overflow");
        // SAFETY: the target range lies inside the mapping (checked above); the source is
        // another live slice.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr().add(self.len), s.len()) };
        self.len += s.len();
    }
}

impl AsRef<[u8]> for BlockMem {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `extend_from_slice`.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }
}

impl Drop for BlockMem {
    fn drop(&mut self) {
        if let Some(map) = self.map.take() {
            let mut pool = POOL.lock().unwrap();
            if pool.len() < POOL_MAX {
                pool.push(map);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_aligned_holds_its_bytes_and_is_reused() {
        let mut b = BlockMem::new();
        assert_eq!(b.ptr() as usize % BLOCK, 0);
        let data: Vec<u8> = (0..BLOCK).map(|i| (i % 253) as u8).collect();
        b.extend_from_slice(&data[..100]);
        b.extend_from_slice(&data[100..]);
        assert!(b.as_ref() == &data[..]);
        drop(b);
        // A fresh block starts empty, whether it is the one just freed or another.
        let again = BlockMem::new();
        assert!(again.as_ref().is_empty());
        assert_eq!(again.ptr() as usize % BLOCK, 0);
    }
}
