//! `.stateless/<dataTypeId>/` (SPEC §5): reading `new.xml`/`new.json` returns a freshly
//! created, prefilled object; writing `NAME.xml|json` runs the app's calculations on close and
//! later reads of `NAME.*` return the calculated object. Nothing is stored on the server: the
//! results live in memory until unlink or unmount.

use super::{AltinnFs, ErrorKind, FsError, FsResult, Inval, Node};
use crate::altinn::client::{AltinnClient, AltinnError};
use crate::altinn::ids::{DataTypeId, PartyId};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one fetched `new.*` object is shown (so `stat` and `read` agree on its size).
pub const NEW_TTL: Duration = Duration::from_secs(5);

/// Largest stateless object accepted for calculation.
pub const MAX_STATELESS_BYTES: u64 = 16 * 1024 * 1024;

/// The two formats a stateless object can be read or written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// From a file name's extension; None for anything but `.xml`/`.json`.
    pub fn of(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".xml") {
            Some(Format::Xml)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            Format::Xml => "application/xml",
            Format::Json => "application/json",
        }
    }
}

/// What `StatelessStore::read` answered with.
pub enum Read {
    /// Held in memory: a calculated result, or a `new.*` object still fresh.
    Held(Bytes),
    /// A `new.*` object just fetched from the app (its size is news to the kernel).
    Fetched(Bytes),
}

/// The names every stateless data type directory shows before anything is written.
pub const NEW_NAMES: [&str; 2] = ["new.xml", "new.json"];

/// Calculated objects per (data type, file name).
#[derive(Default)]
pub struct StatelessStore {
    results: Mutex<BTreeMap<(String, String), Bytes>>,
    /// Names open for writing that have no result yet (so they can be looked up).
    pending: Mutex<HashMap<(String, String), usize>>,
    /// The last fetched `new.*` objects, shown for NEW_TTL.
    fresh: Mutex<HashMap<(String, String), (Instant, Bytes)>>,
}

fn key(data_type: &str, name: &str) -> (String, String) {
    (data_type.to_string(), name.to_string())
}

impl StatelessStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// File names in one data type directory: `new.xml`, `new.json` and the calculated ones.
    pub fn names(&self, data_type: &str) -> Vec<String> {
        let mut names: Vec<String> = NEW_NAMES.iter().map(|s| s.to_string()).collect();
        let results = self.results.lock().unwrap();
        let pending = self.pending.lock().unwrap();
        for (dt, name) in results.keys().chain(pending.keys()) {
            if dt == data_type && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// True if `name` is shown in the directory of `data_type`.
    pub fn exists(&self, data_type: &str, name: &str) -> bool {
        NEW_NAMES.contains(&name)
            || self.get(data_type, name).is_some()
            || self.is_pending(data_type, name)
    }

    pub fn is_pending(&self, data_type: &str, name: &str) -> bool {
        self.pending
            .lock()
            .unwrap()
            .contains_key(&key(data_type, name))
    }

    /// A writer opened `name`.
    pub fn begin_write(&self, data_type: &str, name: &str) {
        *self
            .pending
            .lock()
            .unwrap()
            .entry(key(data_type, name))
            .or_default() += 1;
    }

    /// A writer of `name` closed.
    pub fn end_write(&self, data_type: &str, name: &str) {
        let mut p = self.pending.lock().unwrap();
        let k = key(data_type, name);
        if let Some(n) = p.get_mut(&k) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&k);
            }
        }
    }

    /// Hold `bytes` as the object `name` (a local truncation of a held result).
    pub fn insert(&self, data_type: &str, name: &str, bytes: Bytes) {
        self.results
            .lock()
            .unwrap()
            .insert(key(data_type, name), bytes);
    }

    /// A calculated object held in memory, if this name was written.
    pub fn get(&self, data_type: &str, name: &str) -> Option<Bytes> {
        self.results
            .lock()
            .unwrap()
            .get(&(data_type.to_string(), name.to_string()))
            .cloned()
    }

    /// The size `stat` shows without asking the server: a held result's, a `new.*` object
    /// fetched within NEW_TTL, else 0 (`new.*` is made on read; see `stateless_size`).
    pub fn known_size(&self, data_type: &str, name: &str) -> Option<u64> {
        if let Some(b) = self.get(data_type, name) {
            return Some(b.len() as u64);
        }
        if let Some(b) = self.fresh_new(data_type, name) {
            return Some(b.len() as u64);
        }
        self.exists(data_type, name).then_some(0)
    }

    /// A `new.*` object fetched within NEW_TTL.
    fn fresh_new(&self, data_type: &str, name: &str) -> Option<Bytes> {
        let fresh = self.fresh.lock().unwrap();
        let (t, b) = fresh.get(&key(data_type, name))?;
        (t.elapsed() < NEW_TTL).then(|| b.clone())
    }

    /// Contents of `name`: a held result, or for `new.*` a fresh prefilled object.
    pub async fn read<C: AltinnClient + ?Sized>(
        &self,
        client: &C,
        data_type: &DataTypeId,
        name: &str,
        party: Option<PartyId>,
    ) -> Result<Option<Read>, AltinnError> {
        if let Some(b) = self.get(data_type.as_str(), name) {
            return Ok(Some(Read::Held(b)));
        }
        if !NEW_NAMES.contains(&name) {
            return Ok(None);
        }
        if let Some(b) = self.fresh_new(data_type.as_str(), name) {
            return Ok(Some(Read::Held(b)));
        }
        let fmt = Format::of(name).unwrap_or(Format::Xml);
        let b = client
            .stateless_create(data_type, party, fmt.mime())
            .await?;
        self.fresh
            .lock()
            .unwrap()
            .insert(key(data_type.as_str(), name), (Instant::now(), b.clone()));
        Ok(Some(Read::Fetched(b)))
    }

    /// Run the calculation on `body` (written as `name`) and hold the result under `name`.
    /// The answer comes back in the format the file was written in.
    pub async fn calculate<C: AltinnClient + ?Sized>(
        &self,
        client: &C,
        data_type: &DataTypeId,
        name: &str,
        party: Option<PartyId>,
        body: Bytes,
    ) -> Result<Bytes, AltinnError> {
        let fmt = Format::of(name).ok_or_else(|| {
            AltinnError::Local(format!(
                "{name}: stateless data must be written as NAME.xml or NAME.json"
            ))
        })?;
        let out = client
            .stateless_calculate(data_type, party, fmt.mime(), body, fmt.mime())
            .await?;
        self.results
            .lock()
            .unwrap()
            .insert((data_type.to_string(), name.to_string()), out.clone());
        Ok(out)
    }

    /// Forget a held result (unlink). True if there was one.
    pub fn remove(&self, data_type: &str, name: &str) -> bool {
        self.results
            .lock()
            .unwrap()
            .remove(&(data_type.to_string(), name.to_string()))
            .is_some()
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    fn stateless_path(dt: &DataTypeId, name: &str) -> String {
        format!("/{}/{dt}/{name}", super::layout::STATELESS)
    }

    /// The party stateless requests are made for (`-o stateless_party`), if a valid one.
    fn stateless_party(&self) -> Option<PartyId> {
        let p = self.cfg.stateless_party.as_deref()?;
        PartyId::parse(p)
            .inspect_err(|e| tracing::warn!("stateless_party ignored: {e}"))
            .ok()
    }

    /// The size `stat`, `lookup` and `readdirplus` show for `.stateless/<dt>/<name>`, never
    /// asking the server (a `find` over the mount must not create objects). `new.*` is made
    /// by the app on each read, so its size is unknown until read: 0 then (as files in
    /// /proc), the fetched object's size for NEW_TTL after a read. The file is direct_io, so
    /// `cat`, `cp` and editors read to the end whatever the size says. None: no such file.
    pub(crate) fn stateless_size(&self, dt: &DataTypeId, name: &str) -> Option<u64> {
        self.stateless.known_size(dt.as_str(), name)
    }

    /// The bytes of `.stateless/<dt>/<name>`: a held result, or a fresh `new.*` object
    /// (reused for NEW_TTL so that its size and its contents agree). None: no such file.
    pub(crate) async fn stateless_bytes(
        &self,
        dt: &DataTypeId,
        name: &str,
    ) -> FsResult<Option<Bytes>> {
        let party = self.stateless_party();
        let read = self
            .stateless
            .read(&*self.client, dt, name, party)
            .await
            .map_err(|e| {
                FsError::server(Self::stateless_path(dt, name), "GET v1/data (create)", e)
            })?;
        Ok(read.map(|r| match r {
            Read::Held(b) => b,
            Read::Fetched(b) => {
                // The kernel may hold size 0 from a stat before the read: show the real one.
                let node = Node::StatelessFile {
                    dt: dt.clone(),
                    name: name.to_string(),
                };
                self.notify(vec![Inval::Inode(super::inode::ino_of(&node))]);
                b
            }
        }))
    }

    /// Run the calculation on the bytes a writer left in its spool; the result is held under
    /// the file's name. An empty file calculates nothing.
    pub(crate) async fn stateless_calculate(
        &self,
        ino: u64,
        dt: &DataTypeId,
        name: &str,
        spool: &std::path::Path,
        len: u64,
    ) -> FsResult<()> {
        let path = Self::stateless_path(dt, name);
        if len == 0 {
            if self.stateless.get(dt.as_str(), name).is_some() || NEW_NAMES.contains(&name) {
                self.writer.stop_writing(ino);
                self.notify_wait(vec![Inval::Inode(ino)]);
                return Err(FsError::new(ErrorKind::Empty, path));
            }
            return Ok(());
        }
        let body = std::fs::read(spool).map_err(|e| FsError::io(&path, e))?;
        let body = Bytes::from(body);
        let party = self.stateless_party();
        let _busy = self.busy();
        self.stateless
            .calculate(&*self.client, dt, name, party, body)
            .await
            .map_err(|e| FsError::server(&path, "POST v1/data (calculate)", e))?;
        self.writer.stop_writing(ino);
        self.notify_wait(vec![Inval::Inode(ino)]);
        Ok(())
    }

    /// `unlink` in `.stateless/<dt>/`: forget a held result.
    pub(crate) fn stateless_unlink(&self, dt: &DataTypeId, name: &str) -> FsResult<()> {
        if self.stateless.remove(dt.as_str(), name) {
            return Ok(());
        }
        let path = Self::stateless_path(dt, name);
        if NEW_NAMES.contains(&name) {
            return Err(FsError::refused(
                path,
                "new.xml and new.json are made by the app on every read and cannot be removed",
            ));
        }
        if self.stateless.is_pending(dt.as_str(), name) {
            return Err(FsError::refused(
                path,
                "it is open for writing; close it first",
            ));
        }
        Err(FsError::not_found(path))
    }

    /// The node of `name` in `.stateless/<dt>/`, if it exists.
    pub(crate) fn stateless_child(&self, dt: &DataTypeId, name: &str) -> Option<Node> {
        self.stateless
            .exists(dt.as_str(), name)
            .then(|| Node::StatelessFile {
                dt: dt.clone(),
                name: name.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_names() {
        assert_eq!(Format::of("a.XML"), Some(Format::Xml));
        assert_eq!(Format::of("a.json"), Some(Format::Json));
        assert_eq!(Format::of("a.txt"), None);
        let s = StatelessStore::new();
        s.results.lock().unwrap().insert(
            ("model".into(), "a.xml".into()),
            Bytes::from_static(b"<x/>"),
        );
        assert_eq!(s.names("model"), vec!["new.xml", "new.json", "a.xml"]);
        assert_eq!(s.names("other"), vec!["new.xml", "new.json"]);
        assert!(s.remove("model", "a.xml"));
        assert!(s.get("model", "a.xml").is_none());
    }
}
