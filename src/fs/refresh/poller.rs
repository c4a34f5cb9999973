//! The poller (`--poll-interval`): one refresh, then one every interval, until dropped; and
//! beside the polls, the daily full listing (`--full-refresh-hours`) when one is due.

use super::{Changes, Refresher};
use crate::altinn::client::AltinnClient;
use std::sync::Arc;
use std::time::Duration;

/// The running poller; dropping it stops it (and a full listing it started).
pub struct Poller {
    _task: AbortOnDrop,
}

/// A task that ends with its handle.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Refresh now (a warm remount catches up at once; a refresh that a listing made since
/// the mount began counts), then once per `interval`: a refresh made
/// meanwhile by someone else (a listing older than `metadata_ttl` asks first) counts, so a long
/// walk costs one poll per interval, not two. `on_changes` gets every non-empty result; it runs
/// on the poller's task, so it must only hand work off (kernel invalidations, waking the
/// `--on-change` runner), never wait on it. A failed refresh is logged and tried again at the
/// next interval.
///
/// With `interval` None (polls off) it only starts a cold index's first listing at once,
/// and the daily full listings. A daily full listing runs in a task of its own: on a big app
/// it takes as long as the first listing, and the polls go on meanwhile.
pub fn spawn_poller<C: AltinnClient + ?Sized>(
    refresher: Arc<Refresher<C>>,
    interval: Option<Duration>,
    on_changes: impl Fn(Changes) + Send + Sync + 'static,
) -> Poller {
    let on_changes = Arc::new(on_changes);
    let task = tokio::spawn(async move {
        let mut first = true;
        let mut full: Option<AbortOnDrop> = None;
        loop {
            let wait = if first || interval.is_some() {
                poll_once(&refresher, interval, first, on_changes.as_ref()).await
            } else {
                None
            };
            first = false;
            if full.as_ref().is_none_or(|t| t.0.is_finished())
                && refresher.full_listing_due_now().unwrap_or(false)
            {
                full = Some(spawn_full_listing(refresher.clone(), on_changes.clone()));
            }
            let wait = match interval {
                Some(i) => wait.unwrap_or_else(|| refresher.due_in(i)),
                None => FULL_CHECK,
            };
            tokio::time::sleep(wait.max(MIN_WAIT)).await;
        }
    });
    Poller {
        _task: AbortOnDrop(task),
    }
}

/// One poll. The first is due at once, unless a refresh finished since the mount began (the
/// first listing of a cold mount, or a warm mount's first `ls`, ran it: polling again right
/// after it would ask for nothing new). Later ones are due when the last refresh is
/// `interval` old. Some(wait) after a failure.
async fn poll_once<C: AltinnClient + ?Sized>(
    refresher: &Refresher<C>,
    interval: Option<Duration>,
    first: bool,
    on_changes: &(impl Fn(Changes) + ?Sized),
) -> Option<Duration> {
    let polled = match interval {
        Some(i) if !first => refresher.refresh_if_stale(i).await,
        // Polls off: only a cold index's first listing starts with the mount.
        None if !refresher.is_cold().unwrap_or(false) => return None,
        _ => {
            refresher
                .refresh_unless_done_since(refresher.created())
                .await
        }
    };
    match polled {
        Ok(Some(c)) if !c.is_empty() => {
            on_changes(c);
            None
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("polling the server for changes: {e}");
            Some(interval.unwrap_or(FULL_CHECK))
        }
    }
}

fn spawn_full_listing<C: AltinnClient + ?Sized>(
    refresher: Arc<Refresher<C>>,
    on_changes: Arc<impl Fn(Changes) + Send + Sync + 'static>,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        match refresher.full_listing_if_due().await {
            Ok(Some(c)) if !c.is_empty() => on_changes(c),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                "the daily full listing (it finds instances deleted for good): {e}; \
                 it is tried again later, and the index answers meanwhile"
            ),
        }
    }))
}

/// Never spin: a refresh that ends just as it falls due waits at least this long.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// With polls off, how often to look whether a daily full listing is due.
const FULL_CHECK: Duration = Duration::from_secs(600);
