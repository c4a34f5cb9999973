//! A mount's own retries of `unsent/` (`--retry-unsent`, on by default): one pass right after
//! the mount is ready, then again with a backoff from 30 s doubling to an hour while entries
//! remain. Each entry is sent under its lock and removed once the server holds it, so a mount
//! and `altinnfs unsent retry` running at once never send the same bytes twice.
//!
//! An upload that fails during this mount was just reported to its writer at close(), who may
//! well copy the file again; sending it too would race that copy into a duplicate. So an entry
//! made after the mount started waits [`QUIET`] before the mount sends it.

use super::resend::{Outcome, Resender};
use super::scan;
use crate::altinn::client::AltinnClient;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often an empty `unsent/` is looked at again (a directory read, no request).
const IDLE_CHECK: Duration = Duration::from_secs(60);
/// How old an entry made during this mount must be before the mount sends it.
pub const QUIET: Duration = Duration::from_secs(300);

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub kept: usize,
}

/// Try every entry of `dir` that failed before `started` or is [`QUIET`] old, once; bad
/// entries are reported the first time they are seen.
pub async fn retry_pass<C: AltinnClient + ?Sized>(
    resender: &Resender<C>,
    dir: &Path,
    started: SystemTime,
    reported: &mut HashSet<String>,
) -> Pass {
    let (entries, bad) = scan(dir);
    for b in bad {
        if reported.insert(b.id.clone()) {
            tracing::warn!("unsent/{}: skipped, never sent: {}", b.id, b.reason);
        }
    }
    let mut pass = Pass::default();
    for e in &entries {
        if !due(e.failed_at, started, SystemTime::now()) {
            pass.kept += 1;
            continue;
        }
        let outcome = resender.resend(e).await;
        match &outcome {
            Outcome::Sent(_) | Outcome::AlreadyStored(_) => {
                pass.sent += 1;
                tracing::info!("unsent/{} -> {}: {}", e.id, e.meta.path, outcome.describe());
            }
            Outcome::Busy => {}
            _ => {
                pass.kept += 1;
                tracing::warn!("unsent/{} -> {}: {}", e.id, e.meta.path, outcome.describe());
            }
        }
    }
    pass
}

/// Whether a mount that started at `started` sends an entry that failed at `failed_at` now:
/// at once when it failed before the mount, else once it is [`QUIET`] old.
pub fn due(failed_at: SystemTime, started: SystemTime, now: SystemTime) -> bool {
    failed_at < started || now.duration_since(failed_at).unwrap_or_default() >= QUIET
}

/// Run until the task is dropped (the mount's runtime shuts down).
pub async fn retry_loop<C: AltinnClient + ?Sized>(resender: Resender<C>, dir: PathBuf) {
    let started = SystemTime::now();
    let mut reported = HashSet::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let pass = retry_pass(&resender, &dir, started, &mut reported).await;
        if pass.kept > 0 {
            tracing::info!(
                "unsent/: {} kept; next try in {}s",
                pass.kept,
                backoff.as_secs()
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = FIRST_BACKOFF;
            tokio::time::sleep(IDLE_CHECK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_this_mount_wait_their_quiet_time() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        assert!(
            due(start - s(1), start, start),
            "from before the mount: at once"
        );
        assert!(
            !due(start + s(10), start, start + s(11)),
            "just failed here: wait"
        );
        assert!(due(start + s(10), start, start + s(10) + QUIET));
    }
}
