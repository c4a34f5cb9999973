//! `--on-change CMD` (SPEC §7.3): `sh -c CMD` once per batch of feed lines, the batch on its
//! stdin. The hook runs on a thread of its own behind a bounded queue, so a slow or hanging
//! hook never blocks the mount; a batch that finds the queue full is dropped with a warning
//! (the lines stay in `.altinn/changes` and `altinnfs changes`).

use crate::fs::index::FeedEvent;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Instant;

/// Batches waiting for the hook before new ones are dropped.
const QUEUE: usize = 64;

pub struct OnChange {
    queue: Option<Mutex<SyncSender<String>>>,
}

impl OnChange {
    /// No hook.
    pub fn none() -> Self {
        Self { queue: None }
    }

    /// A runner of `cmd` on a thread of its own.
    pub fn new(cmd: Option<String>) -> Self {
        let Some(cmd) = cmd.filter(|c| !c.trim().is_empty()) else {
            return Self::none();
        };
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("altinnfs-on-change".into())
            .spawn(move || {
                while let Ok(batch) = rx.recv() {
                    run_hook(&cmd, &batch);
                }
            });
        match spawned {
            Ok(_) => {
                tracing::info!("--on-change: a hook runs once per batch of changes");
                Self {
                    queue: Some(Mutex::new(tx)),
                }
            }
            Err(e) => {
                tracing::warn!("--on-change: no thread for the hook ({e}); it will not run");
                Self::none()
            }
        }
    }

    /// Hand a batch to the hook; never waits.
    pub fn send(&self, events: &[FeedEvent]) {
        let Some(q) = &self.queue else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let mut batch = String::new();
        for e in events {
            batch.push_str(&e.to_line());
            batch.push('\n');
        }
        match q.lock().unwrap().try_send(batch) {
            Ok(()) => tracing::debug!("--on-change: a batch of {} lines queued", events.len()),
            Err(TrySendError::Full(_)) => tracing::warn!(
                "--on-change: the hook is behind ({QUEUE} batches waiting); a batch of {} lines was not given to it (see .altinn/changes)",
                events.len()
            ),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn run_hook(cmd: &str, batch: &str) {
    let t = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("--on-change: cannot run sh: {e}");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input only loses it.
        let _ = stdin.write_all(batch.as_bytes());
    }
    match child.wait() {
        Ok(st) if st.success() => {
            tracing::info!(ms = t.elapsed().as_millis() as u64, "--on-change hook ran")
        }
        Ok(st) => tracing::warn!(
            ms = t.elapsed().as_millis() as u64,
            "--on-change hook failed: {st}"
        ),
        Err(e) => tracing::warn!("--on-change hook: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::index::EventKind;

    fn event(seq: u64) -> FeedEvent {
        FeedEvent {
            seq,
            seen: "2026-11-27T15:00:00Z".into(),
            event: EventKind::InstanceCreated,
            party: "500".into(),
            instance: "g".into(),
            data_type: None,
            element: None,
            path: "500/g".into(),
            last_changed: None,
        }
    }

    #[test]
    fn a_batch_reaches_the_hook_and_a_hanging_hook_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = OnChange::new(Some(format!("cat >> {}", out.display())));
        hook.send(&[event(1), event(2)]);
        let t = Instant::now();
        while std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count()
            < 2
        {
            assert!(t.elapsed().as_secs() < 10, "the hook never got the batch");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.lines().next().unwrap().contains("\"seq\":1"));

        let hanging = OnChange::new(Some("sleep 5".into()));
        let t = Instant::now();
        for i in 0..(QUEUE as u64 + 10) {
            hanging.send(&[event(i)]);
        }
        assert!(t.elapsed().as_secs() < 2, "sending waited on the hook");
    }
}
