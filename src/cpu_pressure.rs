//! Whether other tasks are waiting for a CPU, from the kernel's pressure stall information
//! (`/proc/pressure/cpu`, Linux 4.20). Busy polling (`busy_poll`) spins only while no one
//! waits: on a machine busy with other work, a spinning thread takes the CPU from them and
//! from the very process whose request it waits for (measured: a `find` with a build running
//! beside it took 210-260 µs per instance without spinning, 280-480 µs with it).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the pressure is read again (a small read of a /proc file).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Share of the last sample's time during which some task waited for a CPU, above which
/// the CPUs count as contended. Measured in 100 ms windows of a `find` with busy polling
/// (2-vCPU VM): 4.5 % median and 15 % at the 90th percentile on an idle machine (the walk's
/// own threads), 33 % median and 13 % at the 25th with one CPU hog beside it.
const CONTENDED_ABOVE: f64 = 0.2;

/// Samples CPU pressure at most every `SAMPLE_EVERY`; without PSI, never contended.
pub struct CpuPressure {
    file: Option<File>,
    last: Option<(Instant, u64)>,
    contended: bool,
}

impl CpuPressure {
    pub fn new() -> Self {
        Self::from_path(Path::new("/proc/pressure/cpu"))
    }

    pub fn from_path(path: &Path) -> Self {
        Self {
            file: File::open(path).ok(),
            last: None,
            contended: false,
        }
    }

    /// Whether some task waited for a CPU for more than 20 % of the last sampled interval.
    pub fn contended(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|(t, _)| now - t < SAMPLE_EVERY) {
            return self.contended;
        }
        let Some(total) = self.file.as_ref().and_then(read_some_total_us) else {
            return false;
        };
        if let Some((t, before)) = self.last {
            let waited = total.saturating_sub(before) as f64;
            self.contended = waited > CONTENDED_ABOVE * (now - t).as_micros() as f64;
        }
        self.last = Some((now, total));
        self.contended
    }
}

impl Default for CpuPressure {
    fn default() -> Self {
        Self::new()
    }
}

fn read_some_total_us(f: &File) -> Option<u64> {
    let mut buf = [0u8; 256];
    let n = f.read_at(&mut buf, 0).ok()?;
    some_total_us(std::str::from_utf8(&buf[..n]).ok()?)
}

/// The `total=` (µs) of the `some` line of a PSI file.
fn some_total_us(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_stall_total_of_the_some_line() {
        let psi = "some avg10=70.95 avg60=83.52 avg300=73.16 total=23117000594\n\
                   full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(some_total_us(psi), Some(23_117_000_594));
        assert_eq!(some_total_us("full total=5\n"), None);
        assert_eq!(some_total_us("some avg10=1.0 total=x\n"), None);
    }

    fn psi_file(dir: &Path, total: u64) {
        std::fs::write(
            dir.join("cpu"),
            format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={total}\n"),
        )
        .unwrap();
    }

    #[test]
    fn contended_when_tasks_waited_for_a_cpu_since_the_last_sample() {
        let dir = tempfile::tempdir().unwrap();
        psi_file(dir.path(), 1000);
        let mut p = CpuPressure::from_path(&dir.path().join("cpu"));
        assert!(!p.contended(), "a first sample has nothing to compare");
        // Nothing waited: not contended.
        std::thread::sleep(SAMPLE_EVERY);
        assert!(!p.contended());
        // Tasks waited for as long as the interval itself: contended, until a sample shows
        // the waiting stopped.
        let mid = std::time::Instant::now();
        std::thread::sleep(SAMPLE_EVERY);
        psi_file(dir.path(), 1000 + mid.elapsed().as_micros() as u64);
        assert!(p.contended());
        std::thread::sleep(SAMPLE_EVERY);
        assert!(!p.contended());
    }

    #[test]
    fn never_contended_without_psi() {
        let mut p = CpuPressure::from_path(Path::new("/nonexistent/pressure/cpu"));
        assert!(!p.contended());
    }
}
