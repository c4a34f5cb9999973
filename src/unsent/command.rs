//! `altinnfs unsent [--spool-dir DIR] [--app ORG/APP ...] list|retry|discard [ID...]`.

use super::resend::Resender;
use super::{scan, select, BadEntry, Entry};
use crate::cli::{UnsentAction, UnsentArgs};
use std::io::{BufRead, Write};
use std::path::Path;

pub fn run(args: UnsentArgs) -> Result<(), String> {
    let cfg = crate::mount::fs_config(&args.opts)?;
    let dir = cfg.spool_dir.join("unsent");
    match args.action {
        UnsentAction::List { ids } => list(&dir, &ids),
        UnsentAction::Retry { ids } => retry(&dir, args.app, args.opts, &ids),
        UnsentAction::Discard { yes, ids } => discard(&dir, yes, &ids),
    }
}

fn human_age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn list(dir: &Path, ids: &[String]) -> Result<(), String> {
    let (entries, bad) = scan(dir);
    let chosen = select(&entries, ids)?;
    let mut out = std::io::stdout().lock();
    if chosen.is_empty() && bad.is_empty() {
        let _ = writeln!(out, "unsent/ is empty ({})", dir.display());
    }
    for e in chosen {
        let _ = writeln!(
            out,
            "{}\n  target: {}\n  size:   {} bytes\n  age:    {}\n  error:  {}",
            e.id,
            e.meta.path,
            e.size,
            human_age(e.age()),
            e.meta.error
        );
    }
    for b in bad.iter().filter(|b| ids.is_empty() || ids.contains(&b.id)) {
        let _ = writeln!(out, "{}\n  skipped: {}", b.id, b.reason);
    }
    Ok(())
}

fn retry(
    dir: &Path,
    app: Option<String>,
    opts: crate::cli::MountOptions,
    ids: &[String],
) -> Result<(), String> {
    let (entries, bad) = scan(dir);
    for b in &bad {
        eprintln!("{}: skipped, never sent: {}", b.id, b.reason);
    }
    let chosen = select(&entries, ids)?;
    if chosen.is_empty() {
        println!("nothing to retry in {}", dir.display());
        return Ok(());
    }
    let app = app
        .ok_or("retry needs --app ORG/APP and the options that reach the server (as for mount)")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let kept = rt.block_on(async {
        let backend = crate::mount::http_backend(app, opts).await?;
        let meta = backend
            .client
            .application_metadata()
            .await
            .map_err(|e| format!("cannot read the app's metadata: {e}"))?;
        let resender = Resender::new(backend.client, meta);
        let mut kept = 0;
        for e in chosen {
            let outcome = resender.resend(e).await;
            println!("{} -> {}: {}", e.id, e.meta.path, outcome.describe());
            if !outcome.done() {
                kept += 1;
            }
        }
        Ok::<_, String>(kept)
    })?;
    if kept > 0 {
        return Err(format!(
            "{kept} entr{} kept in unsent/",
            if kept == 1 { "y" } else { "ies" }
        ));
    }
    Ok(())
}

/// What discard removes: good entries (bytes and sidecar) and bad ones (whatever exists).
fn discard_targets(
    entries: &[Entry],
    bad: &[BadEntry],
    ids: &[String],
) -> Result<Vec<String>, String> {
    if ids.is_empty() {
        let mut all: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        all.extend(bad.iter().map(|b| b.id.clone()));
        return Ok(all);
    }
    let mut out = vec![];
    for id in ids {
        if bad.iter().any(|b| &b.id == id) {
            out.push(id.clone());
        } else {
            out.push(select(entries, std::slice::from_ref(id))?[0].id.clone());
        }
    }
    Ok(out)
}

fn discard(dir: &Path, yes: bool, ids: &[String]) -> Result<(), String> {
    let (entries, bad) = scan(dir);
    let targets = discard_targets(&entries, &bad, ids)?;
    if targets.is_empty() {
        println!("nothing to discard in {}", dir.display());
        return Ok(());
    }
    if !yes {
        for t in &targets {
            eprintln!("  {t}");
        }
        eprint!("Discard these {} entries for good? [y/N] ", targets.len());
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Err("nothing discarded".into());
        }
    }
    for t in &targets {
        for p in [dir.join(t), dir.join(format!("{t}.json"))] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", p.display())),
            }
        }
        println!("discarded {t}");
    }
    Ok(())
}
