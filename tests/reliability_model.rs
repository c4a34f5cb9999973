//! Reference model (issue 6): random sequences of create, write, close, read, rename, unlink
//! and readdir in `other/` and `attachment/` of a fresh instance, through the real mount, and
//! the same operations on an in-memory model that applies Altinn's rules (SPEC §4):
//! - a new name needs an extension (EINVAL); `attachment` allows pdf/png/jpeg only (EPERM) and
//!   holds at most 5 files (EDQUOT), counting files not yet uploaded;
//! - an empty new file stays local until it gets bytes; a file is uploaded at close;
//! - rename inside one data type directory works (onto an existing name it replaces it; an
//!   empty local file cannot replace an uploaded element: EINVAL); to another data type
//!   directory it is EXDEV.
//!
//! Results and errnos are compared after every operation; after each case the server's elements
//! (name, size, bytes) must equal the model's uploaded files. One mount for all cases, a fresh
//! instance per case. Bounded: 30 cases × 10..30 operations (`ALTINNFS_MODEL_CASES`).

#[path = "mount_support/mod.rs"]
mod common;
use common::*;

use altinnfs::altinn::model::Instance;
use altinnfs::altinn::{AltinnClient, InstanceId};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::path::{Path, PathBuf};

// The model (operations, strategies, Altinn's rules) is the core tier's: one copy, driven here
// through the kernel and there through the facade.
#[path = "core/reference_model.rs"]
mod reference_model;
use reference_model::*;

/// The real side: the two directories and the open files (same order as the model's handles).
struct Real {
    dirs: [PathBuf; 2],
    handles: Vec<File>,
}

impl Real {
    fn create(&mut self, d: usize, n: &str) -> R<()> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.dirs[d].join(n))
            .map_err(errno)?;
        self.handles.push(f);
        Ok(())
    }
    fn write(&mut self, h: usize, bytes: &[u8]) -> R<usize> {
        self.handles[h].write_all(bytes).map_err(errno)?;
        Ok(bytes.len())
    }
    fn close(&mut self, h: usize) -> R<()> {
        let fd = self.handles.remove(h).into_raw_fd();
        if unsafe { libc::close(fd) } == 0 {
            Ok(())
        } else {
            Err(errno(std::io::Error::last_os_error()))
        }
    }
    fn read(&self, d: usize, n: &str) -> R<Vec<u8>> {
        std::fs::read(self.dirs[d].join(n)).map_err(errno)
    }
    fn rename(&self, d: usize, from: &str, to_d: usize, to: &str) -> R<()> {
        std::fs::rename(self.dirs[d].join(from), self.dirs[to_d].join(to)).map_err(errno)
    }
    fn unlink(&self, d: usize, n: &str) -> R<()> {
        std::fs::remove_file(self.dirs[d].join(n)).map_err(errno)
    }
    fn readdir(&self, d: usize) -> R<Vec<(String, u64)>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.dirs[d]).map_err(errno)? {
            let e = e.map_err(errno)?;
            v.push((
                e.file_name().to_string_lossy().to_string(),
                e.metadata().map_err(errno)?.len(),
            ));
        }
        v.sort();
        Ok(v)
    }
}

/// What the cases covered: "Op => outcome" → count (printed at the end, so a run that never
/// reaches maxCount or a refusal is visible).
static TALLY: std::sync::Mutex<BTreeMap<String, usize>> = std::sync::Mutex::new(BTreeMap::new());

fn check<T: PartialEq + std::fmt::Debug>(
    step: usize,
    op: &Op,
    real: R<T>,
    model: R<T>,
    log: &Path,
) -> Result<(), TestCaseError> {
    let kind = format!("{op:?}");
    let kind = kind.split([' ', '{']).next().unwrap_or("").to_string();
    let outcome = match &model {
        Ok(_) => "ok".to_string(),
        Err(e) => std::io::Error::from_raw_os_error(*e)
            .to_string()
            .split(" (os")
            .next()
            .unwrap_or("")
            .to_string(),
    };
    *TALLY
        .lock()
        .unwrap()
        .entry(format!("{kind} => {outcome}"))
        .or_default() += 1;
    if real != model {
        return Err(TestCaseError::fail(format!(
            "step {step} {op:?}: mount {real:?}, model {model:?} (log {})",
            log.display()
        )));
    }
    Ok(())
}

fn run_case(
    emu: &TestEmulator,
    m: &Mount,
    c: &SideClient,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let inst: Instance = emu
        .rt
        .block_on(c.create_instance("510001".parse().unwrap()))
        .unwrap();
    let idir = m.p(&format!("{}/{}", inst.party_id(), inst.guid()));
    let mut real = Real {
        dirs: [idir.join(DIRS[0]), idir.join(DIRS[1])],
        handles: Vec::new(),
    };
    let mut model = Model::default();
    let log = &m.log;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Create { d, base, ext } => {
                let n = name(*base, *ext);
                check(i, op, real.create(*d, &n), model.create(*d, &n), log)?;
            }
            Op::Put {
                d,
                base,
                ext,
                len,
                byte,
            } => {
                let n = name(*base, *ext);
                let r = real.create(*d, &n);
                let mr = model.create(*d, &n);
                check(i, op, r, mr, log)?;
                if mr.is_ok() {
                    let h = model.handles.len() - 1;
                    let bytes = vec![*byte; *len];
                    if *len > 0 {
                        check(i, op, real.write(h, &bytes), model.write(h, &bytes), log)?;
                    }
                    check(i, op, real.close(h), model.close(h), log)?;
                }
            }
            Op::Write { h, len, byte } => {
                if model.handles.is_empty() {
                    continue;
                }
                let h = h % model.handles.len();
                let bytes = vec![*byte; *len];
                check(i, op, real.write(h, &bytes), model.write(h, &bytes), log)?;
            }
            Op::Close { h } => {
                if model.handles.is_empty() {
                    continue;
                }
                let h = h % model.handles.len();
                check(i, op, real.close(h), model.close(h), log)?;
            }
            Op::Read { d, t } => {
                let n = model.resolve(*d, *t);
                if model.is_open(*d, &n) {
                    continue; // reads of a file being written are not part of the model
                }
                check(i, op, real.read(*d, &n), model.read(*d, &n), log)?;
            }
            Op::Rename { d, from, to_d, to } => {
                let (f, t) = (model.resolve(*d, *from), model.resolve(*to_d, *to));
                if model.is_open(*d, &f) || model.is_open(*to_d, &t) {
                    continue;
                }
                check(
                    i,
                    op,
                    real.rename(*d, &f, *to_d, &t),
                    model.rename(*d, &f, *to_d, &t),
                    log,
                )?;
            }
            Op::Unlink { d, t } => {
                let n = model.resolve(*d, *t);
                if model.is_open(*d, &n) {
                    continue;
                }
                check(i, op, real.unlink(*d, &n), model.unlink(*d, &n), log)?;
            }
            Op::Readdir { d } => {
                check(i, op, real.readdir(*d), model.readdir(*d), log)?;
            }
        }
    }
    // Close what is still open, then the listing and the server must match the model.
    while !model.handles.is_empty() {
        let op = Op::Close { h: 0 };
        check(ops.len(), &op, real.close(0), model.close(0), log)?;
    }
    for d in 0..2 {
        let op = Op::Readdir { d };
        check(ops.len(), &op, real.readdir(d), model.readdir(d), log)?;
    }
    let els = emu
        .rt
        .block_on(c.list_data_elements(&InstanceId::of(&inst).unwrap()))
        .unwrap();
    for (d, dir) in DIRS.iter().enumerate() {
        let mut server: Vec<(String, Vec<u8>)> = els
            .iter()
            .filter(|e| e.data_type == *dir)
            .map(|e| {
                (
                    e.filename.clone().unwrap_or_default(),
                    emu.blob(inst.guid(), &e.id),
                )
            })
            .collect();
        server.sort();
        let want: Vec<(String, Vec<u8>)> = model.dirs[d]
            .iter()
            .filter(|(_, f)| f.uploaded)
            .map(|(n, f)| (n.clone(), f.content.clone()))
            .collect();
        if server != want {
            let short = |v: &[(String, Vec<u8>)]| {
                v.iter()
                    .map(|(n, b)| format!("{n}:{}", b.len()))
                    .collect::<Vec<_>>()
            };
            return Err(TestCaseError::fail(format!(
                "{}: server has {:?}, model {:?}",
                dir,
                short(&server),
                short(&want)
            )));
        }
    }
    Ok(())
}

#[test]
fn mount_matches_reference_model() {
    let emu = TestEmulator::start();
    let m = Mount::new(&emu, &[]);
    let c = emu.client();
    let cases = std::env::var("ALTINNFS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op_strategy(), 10..30);
    let started = std::time::Instant::now();
    let res = runner.run(&strategy, |ops| run_case(&emu, &m, &c, &ops));
    eprintln!("reference model: {cases} cases in {:?}", started.elapsed());
    for (k, n) in TALLY.lock().unwrap().iter() {
        eprintln!("  {k}: {n}");
    }
    if let Err(e) = res {
        panic!("{e}");
    }
}
