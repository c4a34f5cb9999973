//! A mount's own retries of `unsent/` (`--retry-unsent`, on by default): one pass right after
//! the mount is ready, then again with a backoff from 30 s doubling to an hour while entries
//! remain. Each entry is sent under its lock and removed once the server holds it, so a mount
//! and `altinnfs unsent retry` running at once never send the same bytes twice.

use super::resend::{Outcome, Resender};
use super::scan;
use crate::altinn::client::AltinnClient;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often an empty `unsent/` is looked at again (a directory read, no request).
const IDLE_CHECK: Duration = Duration::from_secs(60);

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub kept: usize,
}

/// Try every entry of `dir` once; bad entries are reported the first time they are seen.
pub async fn retry_pass<C: AltinnClient + ?Sized>(
    resender: &Resender<C>,
    dir: &Path,
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

/// Run until the task is dropped (the mount's runtime shuts down).
pub async fn retry_loop<C: AltinnClient + ?Sized>(resender: Resender<C>, dir: PathBuf) {
    let mut reported = HashSet::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let pass = retry_pass(&resender, &dir, &mut reported).await;
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
