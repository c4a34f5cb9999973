//! The poller (`--poll-interval`): one refresh, then one every interval, until dropped.

use super::{Changes, Refresher};
use crate::altinn::client::AltinnClient;
use std::sync::Arc;
use std::time::Duration;

/// The running poller; dropping it stops it.
pub struct Poller {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Refresh now (a warm remount catches up at once; a refresh that a listing made since
/// the mount began counts), then once per `interval`: a refresh made
/// meanwhile by someone else (a listing older than `metadata_ttl` asks first) counts, so a long
/// walk costs one poll per interval, not two. `on_changes` gets every non-empty result; it runs
/// on the poller's task, so it must only hand work off (kernel invalidations, waking the
/// `--on-change` runner), never wait on it. A failed refresh is logged and tried again at the
/// next interval.
pub fn spawn_poller<C: AltinnClient + ?Sized>(
    refresher: Arc<Refresher<C>>,
    interval: Duration,
    on_changes: impl Fn(Changes) + Send + Sync + 'static,
) -> Poller {
    let task = tokio::spawn(async move {
        let mut first = true;
        loop {
            // The first poll is due at once, unless a refresh finished since the mount
            // began (the first listing of a cold mount, or a warm mount's first `ls`, ran
            // it: polling again right after it would ask for nothing new). Later ones are
            // due when the last refresh is `interval` old.
            let polled = if first {
                refresher
                    .refresh_unless_done_since(refresher.created())
                    .await
            } else {
                refresher.refresh_if_stale(interval).await
            };
            first = false;
            let wait = match polled {
                Ok(Some(c)) if !c.is_empty() => {
                    on_changes(c);
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!("polling the server for changes: {e}");
                    Some(interval)
                }
            };
            let wait = wait.unwrap_or_else(|| refresher.due_in(interval));
            tokio::time::sleep(wait.max(MIN_WAIT)).await;
        }
    });
    Poller { task }
}

/// Never spin: a refresh that ends just as it falls due waits at least this long.
const MIN_WAIT: Duration = Duration::from_millis(10);
