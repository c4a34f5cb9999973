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

/// Refresh now (a warm remount catches up at once), then every `interval`. `on_changes`
/// gets every non-empty result; it runs on the poller's task, so it must only hand work
/// off (kernel invalidations, waking the `--on-change` runner), never wait on it.
/// A failed refresh is logged and tried again at the next interval.
pub fn spawn_poller<C: AltinnClient + ?Sized>(
    refresher: Arc<Refresher<C>>,
    interval: Duration,
    on_changes: impl Fn(Changes) + Send + Sync + 'static,
) -> Poller {
    let task = tokio::spawn(async move {
        loop {
            match refresher.refresh().await {
                Ok(c) if !c.is_empty() => on_changes(c),
                Ok(_) => {}
                Err(e) => tracing::warn!("polling the server for changes: {e}"),
            }
            tokio::time::sleep(interval).await;
        }
    });
    Poller { task }
}
