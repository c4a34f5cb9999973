//! `.stateless/<dataTypeId>/` (SPEC §5): reading `new.xml`/`new.json` returns a freshly
//! created, prefilled object; writing `NAME.xml|json` runs the app's calculations on close and
//! later reads of `NAME.*` return the calculated object. Nothing is stored on the server: the
//! results live in memory until unlink or unmount.

use crate::altinn::client::{AltinnClient, AltinnError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Mutex;

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

/// The names every stateless data type directory shows before anything is written.
pub const NEW_NAMES: [&str; 2] = ["new.xml", "new.json"];

/// Calculated objects per (data type, file name).
#[derive(Default)]
pub struct StatelessStore {
    results: Mutex<BTreeMap<(String, String), Bytes>>,
}

impl StatelessStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// File names in one data type directory: `new.xml`, `new.json` and the calculated ones.
    pub fn names(&self, data_type: &str) -> Vec<String> {
        let mut names: Vec<String> = NEW_NAMES.iter().map(|s| s.to_string()).collect();
        let results = self.results.lock().unwrap();
        for (dt, name) in results.keys() {
            if dt == data_type && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// A calculated object held in memory, if this name was written.
    pub fn get(&self, data_type: &str, name: &str) -> Option<Bytes> {
        self.results
            .lock()
            .unwrap()
            .get(&(data_type.to_string(), name.to_string()))
            .cloned()
    }

    /// Contents of `name`: a held result, or for `new.*` a fresh prefilled object.
    pub async fn read(
        &self,
        client: &dyn AltinnClient,
        data_type: &str,
        name: &str,
        party: Option<&str>,
    ) -> Result<Option<Bytes>, AltinnError> {
        if let Some(b) = self.get(data_type, name) {
            return Ok(Some(b));
        }
        if NEW_NAMES.contains(&name) {
            let fmt = Format::of(name).unwrap_or(Format::Xml);
            return client
                .stateless_create(data_type, party, fmt.mime())
                .await
                .map(Some);
        }
        Ok(None)
    }

    /// Run the calculation on `body` (written as `name`) and hold the result under `name`.
    /// The answer comes back in the format the file was written in.
    pub async fn calculate(
        &self,
        client: &dyn AltinnClient,
        data_type: &str,
        name: &str,
        party: Option<&str>,
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
