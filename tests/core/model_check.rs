//! The reference model (reference_model.rs) against the core, at thousands of cases: each case
//! is a fresh `AltinnFs` over a fresh `InProcessClient`; results and errnos are compared
//! after every operation, and after each case the server's elements (name, bytes) must equal
//! the model's uploaded files. `ALTINNFS_CORE_MODEL_CASES` sets the number (default 2,000).

use crate::reference_model::{Op, *};
use crate::support::{Core, Open};
use altinnfs::emulator::inprocess::InProcessClient;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;

/// The filesystem side: the two directories and the open files (in the model's order).
struct Real<'a> {
    c: &'a Core,
    dirs: [String; 2],
    /// Open files and their write offsets.
    handles: Vec<(Open, u64)>,
}

impl Real<'_> {
    fn path(&self, d: usize, n: &str) -> String {
        format!("{}/{n}", self.dirs[d])
    }
    async fn create(&mut self, d: usize, n: &str) -> R<()> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let f = self.c.create(&self.path(d, n), flags).await?;
        self.handles.push((f, 0));
        Ok(())
    }
    async fn write(&mut self, h: usize, bytes: &[u8]) -> R<usize> {
        let (f, off) = self.handles[h];
        let n = self.c.write(f, off, bytes).await?;
        self.handles[h].1 += n as u64;
        Ok(n)
    }
    async fn close(&mut self, h: usize) -> R<()> {
        let (f, _) = self.handles.remove(h);
        self.c.close(f).await
    }
    async fn read(&self, d: usize, n: &str) -> R<Vec<u8>> {
        self.c.cat(&self.path(d, n)).await
    }
    async fn rename(&self, d: usize, from: &str, to_d: usize, to: &str) -> R<()> {
        self.c
            .rename(&self.path(d, from), &self.path(to_d, to))
            .await
    }
    async fn unlink(&self, d: usize, n: &str) -> R<()> {
        self.c.unlink(&self.path(d, n)).await
    }
    /// `ls -l`: names and the sizes `stat` gives.
    async fn readdir(&self, d: usize) -> R<Vec<(String, u64)>> {
        let mut v = Vec::new();
        for n in self.c.ls(&self.dirs[d]).await? {
            let size = self.c.stat(&self.path(d, &n)).await?.size;
            v.push((n, size));
        }
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
            "step {step} {op:?}: core {real:?}, model {model:?}"
        )));
    }
    Ok(())
}

async fn run_op(
    i: usize,
    op: &Op,
    real: &mut Real<'_>,
    model: &mut Model,
) -> Result<(), TestCaseError> {
    match op {
        Op::Create { d, base, ext } => {
            let n = name(*base, *ext);
            check(i, op, real.create(*d, &n).await, model.create(*d, &n))?;
        }
        Op::Put {
            d,
            base,
            ext,
            len,
            byte,
        } => {
            let n = name(*base, *ext);
            let mr = model.create(*d, &n);
            check(i, op, real.create(*d, &n).await, mr)?;
            if mr.is_ok() {
                let h = model.handles.len() - 1;
                let bytes = vec![*byte; *len];
                if *len > 0 {
                    check(i, op, real.write(h, &bytes).await, model.write(h, &bytes))?;
                }
                check(i, op, real.close(h).await, model.close(h))?;
            }
        }
        Op::Write { h, len, byte } => {
            if !model.handles.is_empty() {
                let h = h % model.handles.len();
                let bytes = vec![*byte; *len];
                check(i, op, real.write(h, &bytes).await, model.write(h, &bytes))?;
            }
        }
        Op::Close { h } => {
            if !model.handles.is_empty() {
                let h = h % model.handles.len();
                check(i, op, real.close(h).await, model.close(h))?;
            }
        }
        Op::Read { d, t } => {
            let n = model.resolve(*d, *t);
            // Reads of a file being written are not part of the model.
            if !model.is_open(*d, &n) {
                check(i, op, real.read(*d, &n).await, model.read(*d, &n))?;
            }
        }
        Op::Rename { d, from, to_d, to } => {
            let (f, t) = (model.resolve(*d, *from), model.resolve(*to_d, *to));
            if !model.is_open(*d, &f) && !model.is_open(*to_d, &t) {
                let r = real.rename(*d, &f, *to_d, &t).await;
                check(i, op, r, model.rename(*d, &f, *to_d, &t))?;
            }
        }
        Op::Unlink { d, t } => {
            let n = model.resolve(*d, *t);
            if !model.is_open(*d, &n) {
                check(i, op, real.unlink(*d, &n).await, model.unlink(*d, &n))?;
            }
        }
        Op::Readdir { d } => {
            check(i, op, real.readdir(*d).await, model.readdir(*d))?;
        }
    }
    Ok(())
}

/// One case on a fresh core and server (cheap: a temp dir and a few maps), so cases are
/// independent and the cost per case does not grow with the cases before it.
async fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let client = InProcessClient::new(altinnfs::emulator::sample::app_metadata());
    let c = &Core::new(client).await;
    let inst = c.client.add_instance("510001");
    let idir = format!("{}/{}", inst.party_id(), inst.guid());
    let mut real = Real {
        c,
        dirs: [format!("{idir}/{}", DIRS[0]), format!("{idir}/{}", DIRS[1])],
        handles: Vec::new(),
    };
    let mut model = Model::default();
    for (i, op) in ops.iter().enumerate() {
        run_op(i, op, &mut real, &mut model).await?;
    }
    // Close what is still open, then the listing and the server must match the model.
    while !model.handles.is_empty() {
        let op = Op::Close { h: 0 };
        check(ops.len(), &op, real.close(0).await, model.close(0))?;
    }
    for d in 0..2 {
        let op = Op::Readdir { d };
        check(ops.len(), &op, real.readdir(d).await, model.readdir(d))?;
    }
    for (d, dir) in DIRS.iter().enumerate() {
        let mut server: Vec<(String, Vec<u8>)> = c
            .client
            .elements(inst.guid())
            .into_iter()
            .filter(|e| e.data_type == *dir)
            .map(|e| {
                let bytes = c.client.blob(&e.id).unwrap_or_default().to_vec();
                (e.filename.unwrap_or_default(), bytes)
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
                "{dir}: server has {:?}, model {:?}",
                short(&server),
                short(&want)
            )));
        }
    }
    Ok(())
}

#[test]
fn core_matches_reference_model() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("ALTINNFS_CORE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(op_strategy(), 10..30);
    let started = std::time::Instant::now();
    let res = runner.run(&strategy, |ops| rt.block_on(run_case(&ops)));
    let took = started.elapsed();
    eprintln!(
        "reference model (core): {cases} cases in {took:?} ({:.0} cases/minute)",
        cases as f64 / took.as_secs_f64() * 60.0
    );
    for (k, n) in TALLY.lock().unwrap().iter() {
        eprintln!("  {k}: {n}");
    }
    if let Err(e) = res {
        panic!("{e}");
    }
}
