//! `unsent/`: the bytes of uploads the server did not take, each beside a JSON sidecar
//! (`BASE` and `BASE.json`, written by the filesystem's upload path). This module owns reading
//! that directory ([`scan`]), one entry's lock, and removing an entry; [`resend::Resender`]
//! sends an entry again over any `AltinnClient`, for `altinnfs unsent retry` and for a mount's
//! own retries ([`auto::retry_loop`]).
//!
//! A sidecar that does not parse, lacks a field, or names a party, instance, data type or file
//! name of the wrong shape is reported as [`BadEntry`] and never sent: a target is never
//! guessed.

pub mod auto;
pub mod command;
pub mod resend;

use serde::Deserialize;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What the filesystem wrote next to the bytes (see `save_unsent` in src/fs/upload.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// The path inside the mount the bytes were written to.
    pub path: String,
    pub party: String,
    pub instance: String,
    pub data_type: String,
    pub filename: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub errno: Option<i32>,
    #[serde(default)]
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// `POST` (a new file) or `PUT` (an existing element), when the writer recorded it.
    #[serde(default)]
    pub op: Option<String>,
    /// The element a failed PUT was for, when the writer recorded it.
    #[serde(default)]
    pub element_id: Option<String>,
}

impl Sidecar {
    /// Whether the failed upload made a new file. Without an `op` field the error text says
    /// (`PUT data failed`); when neither tells, it counts as new, so an element someone else
    /// made under that name is never replaced.
    pub fn was_post(&self) -> bool {
        match self.op.as_deref() {
            Some(op) => op.eq_ignore_ascii_case("POST"),
            None => !self.error.contains("PUT data"),
        }
    }
}

/// One entry with a sidecar that makes sense.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The base name: what `list` shows and `retry ID` / `discard ID` take.
    pub id: String,
    pub data: PathBuf,
    pub sidecar: PathBuf,
    pub size: u64,
    pub meta: Sidecar,
    /// When the upload failed (the sidecar's time, else the file's mtime).
    pub failed_at: SystemTime,
}

/// An entry that cannot be sent: reported, skipped, kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    pub id: String,
    pub reason: String,
}

impl Entry {
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.failed_at)
            .unwrap_or_default()
    }

    /// Remove the bytes, then the sidecar (so a crash in between leaves an orphan sidecar,
    /// reported by `list`, never bytes without their target).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.data) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::remove_file(&self.sidecar)
    }

    /// Take this entry for sending; None while another process (a mount, a `retry`) holds it.
    /// The lock is released when the returned file is dropped.
    pub fn lock(&self) -> Option<File> {
        use std::os::fd::AsRawFd;
        let f = File::open(&self.sidecar).ok()?;
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        (r == 0 && self.data.exists()).then_some(f)
    }

    /// Record the outcome of the last retry in the sidecar (other fields kept).
    pub fn note_retry(&self, outcome: &str) {
        let Ok(text) = std::fs::read(&self.sidecar) else {
            return;
        };
        let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice(&text) else {
            return;
        };
        obj.insert("lastRetry".into(), chrono::Utc::now().to_rfc3339().into());
        obj.insert("lastRetryOutcome".into(), outcome.into());
        let bytes = serde_json::to_vec_pretty(&obj).unwrap_or_default();
        let _ = crate::fs::write_private_file(&self.sidecar, &bytes);
    }
}

/// A sidecar this young without its bytes (or bytes without a sidecar) may be mid-write.
const SETTLE: Duration = Duration::from_secs(5);

/// Every entry of `dir`, sorted by id, and the ones that cannot be sent. A missing directory
/// is empty.
pub fn scan(dir: &Path) -> (Vec<Entry>, Vec<BadEntry>) {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && !n.ends_with(".tmp"))
            .collect(),
        Err(_) => return (vec![], vec![]),
    };
    names.sort();
    let set: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let (mut good, mut bad) = (vec![], vec![]);
    for name in &names {
        if let Some(base) = name.strip_suffix(".json") {
            match read_entry(dir, base) {
                Ok(e) => good.push(e),
                Err(reason) if !young(&dir.join(name)) => bad.push(BadEntry {
                    id: base.to_string(),
                    reason,
                }),
                Err(_) => {}
            }
        } else if !set.contains(format!("{name}.json").as_str()) && !young(&dir.join(name)) {
            bad.push(BadEntry {
                id: name.clone(),
                reason: "no sidecar (NAME.json): the target is unknown".into(),
            });
        }
    }
    (good, bad)
}

fn young(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() < SETTLE)
        .unwrap_or(false)
}

/// Read and check one entry's sidecar and bytes.
fn read_entry(dir: &Path, base: &str) -> Result<Entry, String> {
    let sidecar = dir.join(format!("{base}.json"));
    let data = dir.join(base);
    let text = std::fs::read(&sidecar).map_err(|e| format!("sidecar unreadable: {e}"))?;
    let meta: Sidecar =
        serde_json::from_slice(&text).map_err(|e| format!("not an altinnfs sidecar: {e}"))?;
    check_sidecar(&meta)?;
    let md = std::fs::symlink_metadata(&data)
        .map_err(|e| format!("the bytes ({base}) are missing: {e}"))?;
    if !md.file_type().is_file() {
        return Err(format!("{base} is not a regular file"));
    }
    let failed_at = meta
        .time
        .map(SystemTime::from)
        .or_else(|| md.modified().ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Entry {
        id: base.to_string(),
        data,
        sidecar,
        size: md.len(),
        meta,
        failed_at,
    })
}

/// The shape checks that keep a foreign or damaged sidecar from naming a target.
pub fn check_sidecar(s: &Sidecar) -> Result<(), String> {
    if s.party.is_empty() || !s.party.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("party {:?} is not a party id", s.party));
    }
    if uuid::Uuid::parse_str(&s.instance).is_err() {
        return Err(format!("instance {:?} is not an instance GUID", s.instance));
    }
    let plain = |v: &str| {
        !v.is_empty() && v != "." && v != ".." && !v.contains(['/', '\0']) && v.len() <= 1024
    };
    if !plain(&s.data_type) {
        return Err(format!("data type {:?} is not a data type id", s.data_type));
    }
    if !plain(&s.filename) {
        return Err(format!("file name {:?} is not a file name", s.filename));
    }
    if !s.path.contains(&s.instance) {
        return Err(format!(
            "path {:?} does not lie in instance {}",
            s.path, s.instance
        ));
    }
    Ok(())
}

/// The entries named by `ids` (each an id or a unique prefix of one); all when `ids` is empty.
pub fn select<'a>(entries: &'a [Entry], ids: &[String]) -> Result<Vec<&'a Entry>, String> {
    if ids.is_empty() {
        return Ok(entries.iter().collect());
    }
    let mut out = vec![];
    for id in ids {
        let exact: Vec<&Entry> = entries.iter().filter(|e| &e.id == id).collect();
        let hits: Vec<&Entry> = if exact.is_empty() {
            entries.iter().filter(|e| e.id.starts_with(id)).collect()
        } else {
            exact
        };
        match hits.len() {
            0 => return Err(format!("{id}: no such entry in unsent/")),
            1 => out.push(hits[0]),
            n => return Err(format!("{id}: matches {n} entries; give more of the id")),
        }
    }
    Ok(out)
}

/// The symbolic name of an errno (`EPERM`), for messages an administrator greps.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EDQUOT => "EDQUOT",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "E?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "0b0e5b86-9b3b-4d8e-8a43-0d9f6c1e2a11";

    fn sidecar(party: &str, dt: &str, filename: &str) -> serde_json::Value {
        serde_json::json!({
            "path": format!("/{party}/{GUID}/{dt}/{filename}"),
            "party": party, "instance": GUID, "dataType": dt, "filename": filename,
            "error": "x", "errno": 5, "time": "2026-01-01T00:00:00Z",
        })
    }

    fn old(p: &Path) {
        let t = SystemTime::now() - Duration::from_secs(60);
        let f = File::options().write(true).open(p).unwrap();
        f.set_modified(t).unwrap();
    }

    fn put(dir: &Path, base: &str, side: Option<&[u8]>) {
        std::fs::write(dir.join(base), b"bytes").unwrap();
        old(&dir.join(base));
        if let Some(s) = side {
            let p = dir.join(format!("{base}.json"));
            std::fs::write(&p, s).unwrap();
            old(&p);
        }
    }

    #[test]
    fn good_corrupt_foreign_and_orphan_entries() {
        let d = tempfile::tempdir().unwrap();
        let good = serde_json::to_vec(&sidecar("510001", "other", "a.txt")).unwrap();
        put(d.path(), "1-good-a.txt", Some(&good));
        put(d.path(), "2-corrupt", Some(b"{not json"));
        put(d.path(), "3-foreign", Some(br#"{"hello": "world"}"#));
        let evil = serde_json::to_vec(&sidecar("510001", "other", "../../etc/passwd")).unwrap();
        put(d.path(), "4-evil", Some(&evil));
        let party = serde_json::to_vec(&sidecar("5100; rm", "other", "a.txt")).unwrap();
        put(d.path(), "5-party", Some(&party));
        put(d.path(), "6-orphan", None);
        let (good, bad) = scan(d.path());
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].id, "1-good-a.txt");
        assert_eq!(good[0].size, 5);
        assert!(good[0].age() > Duration::from_secs(3600));
        let ids: Vec<&str> = bad.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(
            ids,
            ["2-corrupt", "3-foreign", "4-evil", "5-party", "6-orphan"]
        );
        assert!(bad[0].reason.contains("not an altinnfs sidecar"));
        assert!(bad[2].reason.contains("not a file name"));
    }

    #[test]
    fn post_or_put_from_op_else_error_text_else_post() {
        let mut s: Sidecar = serde_json::from_value(sidecar("1", "dt", "x.txt")).unwrap();
        s.error = "/p: PUT data failed: 503".into();
        assert!(!s.was_post());
        s.error = "/p: POST data failed: 503".into();
        assert!(s.was_post());
        s.error = "something else".into();
        assert!(s.was_post(), "unknown counts as new: never replace");
        s.op = Some("PUT".into());
        assert!(!s.was_post());
    }

    #[test]
    fn select_by_id_or_unique_prefix() {
        let d = tempfile::tempdir().unwrap();
        for b in ["20260101-aaaa-x.txt", "20260101-aabb-y.txt"] {
            let s = serde_json::to_vec(&sidecar("1", "dt", "x.txt")).unwrap();
            put(d.path(), b, Some(&s));
        }
        let (good, _) = scan(d.path());
        assert_eq!(select(&good, &[]).unwrap().len(), 2);
        assert_eq!(
            select(&good, &["20260101-aabb".into()]).unwrap()[0].id,
            "20260101-aabb-y.txt"
        );
        assert!(select(&good, &["20260101-aa".into()]).is_err());
        assert!(select(&good, &["nope".into()]).is_err());
    }

    #[test]
    fn lock_is_exclusive_and_remove_takes_both_files() {
        let d = tempfile::tempdir().unwrap();
        let s = serde_json::to_vec(&sidecar("1", "dt", "x.txt")).unwrap();
        put(d.path(), "e", Some(&s));
        let (good, _) = scan(d.path());
        let l = good[0].lock().expect("free");
        assert!(good[0].lock().is_none(), "a second taker waits");
        drop(l);
        good[0].note_retry("refused");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&good[0].sidecar).unwrap()).unwrap();
        assert_eq!(v["lastRetryOutcome"], "refused");
        assert_eq!(v["filename"], "x.txt");
        good[0].remove().unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
