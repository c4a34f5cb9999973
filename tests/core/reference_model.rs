//! The reference model of SPEC §4 (issue 6), free of any way to drive the filesystem: random
//! sequences of create, write, close, read, rename, unlink and readdir in `other/` (anything
//! goes) and `attachment/` (pdf/png/jpeg, at most 5) of a fresh instance, and the same
//! operations on an in-memory model that applies Altinn's rules:
//! - a new name needs an extension (EINVAL); `attachment` allows pdf/png/jpeg only (EPERM) and
//!   holds at most 5 files (EDQUOT), counting files not yet uploaded;
//! - an empty new file stays local until it gets bytes; a file is uploaded at close;
//! - rename inside one data type directory works (onto an existing name it replaces it; an
//!   empty local file cannot replace an uploaded element: EINVAL); to another data type
//!   directory it is EXDEV.
//!
//! `model_check.rs` drives the core with it at thousands of cases; the kernel tier's
//! `tests/reliability_model.rs` can include this file with `#[path]` instead of its own copy.
#![allow(dead_code)]

use proptest::prelude::*;
use std::collections::BTreeMap;

pub const DIRS: [&str; 2] = ["other", "attachment"];
pub const BASES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
pub const EXTS: [&str; 4] = ["pdf", "png", "txt", ""];
pub const ATTACHMENT_MAX: usize = 5;

pub fn name(base: usize, ext: usize) -> String {
    if EXTS[ext].is_empty() {
        BASES[base].to_string()
    } else {
        format!("{}.{}", BASES[base], EXTS[ext])
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Create {
        d: usize,
        base: usize,
        ext: usize,
    },
    Write {
        h: usize,
        len: usize,
        byte: u8,
    },
    Close {
        h: usize,
    },
    Read {
        d: usize,
        t: Target,
    },
    Rename {
        d: usize,
        from: Target,
        to_d: usize,
        to: Target,
    },
    Unlink {
        d: usize,
        t: Target,
    },
    /// Create, write `len` bytes and close at once (as `cp` does).
    Put {
        d: usize,
        base: usize,
        ext: usize,
        len: usize,
        byte: u8,
    },
    Readdir {
        d: usize,
    },
}

/// Which file an operation is about: mostly one that exists (the k-th, modulo, in the model's
/// directory), else any name of the pool (often missing).
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Existing(usize),
    Named(usize, usize),
}

pub fn target_strategy() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => (0..8usize).prop_map(Target::Existing),
        1 => (0..BASES.len(), ext_strategy()).prop_map(|(b, e)| Target::Named(b, e)),
    ]
}

pub fn ext_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize), 1 => Just(3usize)]
}

pub fn dir_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 1 => Just(1usize)]
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    let nm = || (0..BASES.len(), ext_strategy());
    prop_oneof![
        5 => (dir_strategy(), nm()).prop_map(|(d, (base, ext))| Op::Create { d, base, ext }),
        4 => (0..4usize, 1..300usize, any::<u8>()).prop_map(|(h, len, byte)| Op::Write { h, len, byte }),
        4 => (0..4usize).prop_map(|h| Op::Close { h }),
        4 => (dir_strategy(), nm(), 0..200usize, any::<u8>())
            .prop_map(|(d, (base, ext), len, byte)| Op::Put { d, base, ext, len, byte }),
        2 => (dir_strategy(), target_strategy()).prop_map(|(d, t)| Op::Read { d, t }),
        3 => (
            dir_strategy(),
            target_strategy(),
            prop_oneof![5 => Just(false), 1 => Just(true)],
            prop_oneof![
                1 => target_strategy(),
                1 => nm().prop_map(|(b, e)| Target::Named(b, e)),
            ],
        )
            .prop_map(|(d, from, cross, to)| Op::Rename {
                d,
                from,
                to_d: if cross { 1 - d } else { d },
                to,
            }),
        2 => (dir_strategy(), target_strategy()).prop_map(|(d, t)| Op::Unlink { d, t }),
        1 => dir_strategy().prop_map(|d| Op::Readdir { d }),
    ]
}

/// One file of the model.
#[derive(Debug, Clone, Default)]
pub struct MFile {
    pub content: Vec<u8>,
    /// Has an open write handle (created and not yet closed).
    pub open: bool,
    pub uploaded: bool,
}

#[derive(Debug, Default)]
pub struct Model {
    pub dirs: [BTreeMap<String, MFile>; 2],
    /// Open handles: (dir, name), in creation order; the real file is at the same index.
    pub handles: Vec<(usize, String)>,
}

pub type R<T> = Result<T, i32>;

pub fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

pub fn has_ext(n: &str) -> bool {
    n.rfind('.').is_some_and(|i| i > 0 && i + 1 < n.len())
}

pub fn allowed_in(d: usize, n: &str) -> bool {
    d == 0
        || [".pdf", ".png", ".jpeg", ".jpg"]
            .iter()
            .any(|e| n.ends_with(e))
}

impl Model {
    pub fn create(&mut self, d: usize, n: &str) -> R<()> {
        if self.dirs[d].contains_key(n) {
            return Err(libc::EEXIST);
        }
        if !has_ext(n) {
            return Err(libc::EINVAL);
        }
        if !allowed_in(d, n) {
            return Err(libc::EPERM);
        }
        if d == 1 && self.dirs[d].len() >= ATTACHMENT_MAX {
            return Err(libc::EDQUOT);
        }
        self.dirs[d].insert(
            n.to_string(),
            MFile {
                open: true,
                ..Default::default()
            },
        );
        self.handles.push((d, n.to_string()));
        Ok(())
    }
    pub fn write(&mut self, h: usize, bytes: &[u8]) -> R<usize> {
        let (d, n) = &self.handles[h];
        self.dirs[*d]
            .get_mut(n)
            .unwrap()
            .content
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    pub fn close(&mut self, h: usize) -> R<()> {
        let (d, n) = self.handles.remove(h);
        let f = self.dirs[d].get_mut(&n).unwrap();
        f.open = false;
        // An empty new file stays local; one with bytes is uploaded at close.
        f.uploaded = !f.content.is_empty();
        Ok(())
    }
    pub fn read(&self, d: usize, n: &str) -> R<Vec<u8>> {
        self.dirs[d]
            .get(n)
            .map(|f| f.content.clone())
            .ok_or(libc::ENOENT)
    }
    pub fn rename(&mut self, d: usize, from: &str, to_d: usize, to: &str) -> R<()> {
        let Some(src) = self.dirs[d].get(from).cloned() else {
            return Err(libc::ENOENT);
        };
        if to_d != d {
            return Err(libc::EXDEV);
        }
        if from == to {
            return Ok(());
        }
        match self.dirs[d].get(to) {
            Some(dst) => {
                if !src.uploaded && dst.uploaded {
                    // An empty replacement of an uploaded element (SPEC §4).
                    return Err(libc::EINVAL);
                }
            }
            None => {
                if !has_ext(to) {
                    return Err(libc::EINVAL);
                }
                if !allowed_in(d, to) {
                    return Err(libc::EPERM);
                }
            }
        }
        self.dirs[d].remove(from);
        self.dirs[d].insert(to.to_string(), src);
        Ok(())
    }
    pub fn unlink(&mut self, d: usize, n: &str) -> R<()> {
        self.dirs[d].remove(n).map(|_| ()).ok_or(libc::ENOENT)
    }
    pub fn readdir(&self, d: usize) -> R<Vec<(String, u64)>> {
        Ok(self.dirs[d]
            .iter()
            .map(|(n, f)| (n.clone(), f.content.len() as u64))
            .collect())
    }
    pub fn resolve(&self, d: usize, t: Target) -> String {
        match t {
            Target::Existing(k) if !self.dirs[d].is_empty() => self.dirs[d]
                .keys()
                .nth(k % self.dirs[d].len())
                .unwrap()
                .clone(),
            Target::Existing(k) => name(k % BASES.len(), 0),
            Target::Named(b, e) => name(b, e),
        }
    }
    pub fn is_open(&self, d: usize, n: &str) -> bool {
        self.dirs[d].get(n).is_some_and(|f| f.open)
    }
}
