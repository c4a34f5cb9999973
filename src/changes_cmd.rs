//! `altinnfs changes ORG/APP [connection options] [--since SEQ|RFC3339] [--follow]`
//! (SPEC §7.3): the change feed without a mount. It polls the server once (the same cursor
//! and index a mount of this app with this token uses), prints the feed lines as JSON, and
//! with `--follow` keeps polling every `--poll-interval` seconds.

use crate::altinn::client::AltinnClient;
use crate::altinn::model::Timestamp;
use crate::cache_cmd::{connect, Connection};
use crate::cli::{ChangesArgs, MountOptions};
use crate::fs::index::MetaIndex;
use crate::fs::refresh::{RefreshConfig, Refresher};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Where printing starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// Lines with a greater seq.
    Seq(u64),
    /// Lines seen at or after this time.
    Time(Timestamp),
}

impl Since {
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        let Some(s) = s.map(str::trim) else {
            return Ok(Since::Seq(0));
        };
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Since::Seq(n));
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Since::Time(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                format!(
                    "--since {s:?}: expected a seq (42) or an RFC 3339 time (2026-11-27T15:00:00Z)"
                )
            })
    }
}

/// Follow polling when `--poll-interval 0` (off for a mount) is given to `--follow`.
const FOLLOW_DEFAULT: Duration = Duration::from_secs(30);

pub async fn run(args: ChangesArgs) -> Result<(), String> {
    let _ = crate::logging::init(
        args.opts.log_level.as_deref(),
        args.opts.log_file.as_deref(),
    );
    let since = Since::parse(args.since.as_deref())?;
    let conn = connect(&args.app, &args.opts).await?;
    let index = Arc::new(MetaIndex::open(&conn.index_path).map_err(|e| e.to_string())?);
    let meta = conn
        .client
        .application_metadata()
        .await
        .map_err(|e| format!("{}: {e}", conn.app_id))?;
    let cfg = refresh_config(&conn, &args.opts).await?;
    let refresher = Refresher::new(conn.client.clone(), index.clone(), Arc::new(meta), cfg);
    let polled = poll(&refresher, &conn).await;
    let Some(mut last) = print_since(&index, &since)? else {
        return Ok(()); // stdout closed (`| head`)
    };
    if !args.follow {
        return polled;
    }
    let interval = index_interval(&conn).unwrap_or(FOLLOW_DEFAULT);
    loop {
        tokio::time::sleep(interval).await;
        let _ = poll(&refresher, &conn).await;
        match print_since(&index, &Since::Seq(last))? {
            Some(n) => last = n,
            None => return Ok(()),
        }
    }
}

fn index_interval(conn: &Connection) -> Option<Duration> {
    conn.index_cfg.poll_interval
}

/// The cursor scopes a mount with these options uses: app-wide for an org token, else one
/// per party (`--party`, or every party the user may act for).
pub async fn refresh_config(
    conn: &Connection,
    opts: &MountOptions,
) -> Result<RefreshConfig, String> {
    let mut cfg = RefreshConfig::from_index_config(&conn.index_cfg);
    cfg.query = crate::cache_cmd::parse_query(opts)?;
    cfg.parties = if !opts.party.is_empty() {
        opts.party.clone()
    } else if conn.is_org() {
        vec![]
    } else {
        let parties = conn
            .client
            .parties()
            .await
            .map_err(|e| format!("listing the parties this token may act for: {e}"))?;
        parties
            .iter()
            .flat_map(|p| std::iter::once(p).chain(p.child_parties.iter()))
            .map(|p| p.party_id.to_string())
            .collect()
    };
    Ok(cfg)
}

/// One refresh; says on stderr when it was the first (baseline) listing or failed.
async fn poll<C: AltinnClient + ?Sized>(
    refresher: &Refresher<C>,
    conn: &Connection,
) -> Result<(), String> {
    let had_cursor = refresher
        .index()
        .read(|db| db.meta_all())
        .map(|rows| rows.iter().any(|(k, _)| k.starts_with("cursor:")))
        .unwrap_or(false);
    match refresher.refresh().await {
        Ok(c) => {
            if !had_cursor {
                let n = refresher.index().counts().map(|c| c.instances).unwrap_or(0);
                eprintln!(
                    "altinnfs changes: first listing of {}: {n} instances indexed; changes from now on are reported",
                    conn.app_id
                );
            }
            if let Some(why) = c.incomplete {
                eprintln!("altinnfs changes: the poll stopped early ({why}); the next one goes on");
            }
            Ok(())
        }
        Err(e) => {
            let msg = format!("polling {} for changes: {e}", conn.app_id);
            eprintln!("altinnfs changes: {msg}");
            Err(msg)
        }
    }
}

/// Print the feed lines after `since`; the last seq printed (or the one given), or None
/// when stdout is closed.
fn print_since(index: &MetaIndex, since: &Since) -> Result<Option<u64>, String> {
    const PAGE: usize = 1000;
    let mut last = match since {
        Since::Seq(n) => *n,
        Since::Time(_) => 0,
    };
    let mut by_time = match since {
        Since::Time(t) => Some(*t),
        Since::Seq(_) => None,
    };
    let stdout = std::io::stdout();
    loop {
        let page = match by_time.take() {
            Some(t) => index.feed_since_time(&t, PAGE),
            None => index.feed_since(last, PAGE),
        }
        .map_err(|e| e.to_string())?;
        let mut out = stdout.lock();
        for e in &page {
            if writeln!(out, "{}", e.to_line()).is_err() {
                return Ok(None);
            }
            last = e.seq;
        }
        if out.flush().is_err() {
            return Ok(None);
        }
        if page.len() < PAGE {
            return Ok(Some(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_seq_or_a_time() {
        assert_eq!(Since::parse(None).unwrap(), Since::Seq(0));
        assert_eq!(Since::parse(Some("42")).unwrap(), Since::Seq(42));
        let Since::Time(t) = Since::parse(Some("2026-11-27T15:00:00+01:00")).unwrap() else {
            panic!()
        };
        assert_eq!(t.to_rfc3339(), "2026-11-27T14:00:00+00:00");
        assert!(Since::parse(Some("yesterday"))
            .unwrap_err()
            .contains("RFC 3339"));
    }
}
