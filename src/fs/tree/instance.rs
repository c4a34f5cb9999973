//! One instance as the tree holds it: the document, the size of `instance.json`, and the file
//! names of each data type directory; and what the kernel must forget when it changes.

use crate::altinn::ids::{DataTypeId, ElementId, InstanceId};
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use crate::fs::inode::ino_of;
use crate::fs::layout::{self, Node};
use crate::fs::Inval;
use bytes::Bytes;
use std::collections::HashMap;

#[derive(Debug)]
pub struct InstEntry {
    pub inst: Instance,
    /// Size of `instance.json`; its bytes are rendered again when read (deterministic), so
    /// a cached listing of many instances does not hold every document twice.
    pub json_len: u64,
    /// data type → (file name, index in `inst.data`)
    pub names: HashMap<String, Vec<(String, usize)>>,
}

/// The length of [`InstEntry::render`]'s bytes, counted as they are written instead of
/// kept (every instance loaded into the hot set needs it; the bytes only when read).
fn rendered_len(inst: &Instance) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer_pretty(&mut n, inst) {
        Ok(()) => n.0 + 1,
        Err(_) => 1,
    }
}

impl InstEntry {
    /// The bytes of `instance.json`.
    pub fn render(inst: &Instance) -> Bytes {
        let mut json = serde_json::to_vec_pretty(inst).unwrap_or_default();
        json.push(b'\n');
        Bytes::from(json)
    }

    pub fn json(&self) -> Bytes {
        Self::render(&self.inst)
    }

    pub fn new(inst: Instance, meta: &ApplicationMetadata) -> Self {
        let json_len = rendered_len(&inst);
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in inst.data.iter().enumerate() {
            by_type.entry(e.data_type.clone()).or_default().push(i);
        }
        let mut names = HashMap::new();
        for (dt, idx) in by_type {
            let els: Vec<&DataElement> = idx.iter().map(|&i| &inst.data[i]).collect();
            let mut n: Vec<(String, usize)> = layout::assign_names(&els, meta.data_type(&dt))
                .into_iter()
                .map(|(name, j)| (name, idx[j]))
                .collect();
            n.sort();
            names.insert(dt, n);
        }
        Self {
            inst,
            json_len,
            names,
        }
    }
    pub fn element(&self, id: &ElementId) -> Option<&DataElement> {
        self.inst.data.iter().find(|e| *id == e.id)
    }
    pub fn find(&self, dt: &str, name: &str) -> Option<&DataElement> {
        self.names
            .get(dt)?
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| &self.inst.data[*i])
    }
    pub fn name_of(&self, dt: &DataTypeId, id: &ElementId) -> Option<&str> {
        self.names
            .get(dt.as_str())?
            .iter()
            .find(|(_, i)| *id == self.inst.data[*i].id)
            .map(|(n, _)| n.as_str())
    }
    pub fn count(&self, dt: &DataTypeId) -> usize {
        self.inst
            .data
            .iter()
            .filter(|e| e.data_type == dt.as_str())
            .count()
    }
}

/// What the kernel must forget when the cached `old` state of an instance becomes `new`:
/// names that now mean another element (or nothing), elements whose bytes or mode changed
/// (and their JSON views when shown), and `instance.json`.
pub fn invalidations(old: &InstEntry, new: &InstEntry, form_json: bool) -> Vec<Inval> {
    let Ok(InstanceId { party, guid }) = InstanceId::of(&new.inst) else {
        tracing::warn!(
            id = new.inst.id,
            "an instance with a bad id: nothing to invalidate"
        );
        return Vec::new();
    };
    let mut inval = Vec::new();
    for (dt, names) in &old.names {
        let Ok(dt_id) = DataTypeId::parse(dt) else {
            continue;
        };
        let dir = ino_of(&Node::DataTypeDir {
            party,
            guid,
            dt: dt_id,
        });
        for (name, i) in names {
            let id = &old.inst.data[*i].id;
            if new.find(dt, name).is_none_or(|e| &e.id != id) {
                inval.push(Inval::Entry {
                    parent: dir,
                    name: name.clone(),
                });
            }
        }
    }
    for e in &new.inst.data {
        let before = old.inst.data.iter().find(|o| o.id == e.id);
        let changed = before.is_none_or(|o| {
            o.last_changed != e.last_changed || o.size != e.size || o.locked != e.locked
        });
        if !changed {
            continue;
        }
        let (Ok(dt), Ok(id)) = (DataTypeId::parse(&e.data_type), ElementId::parse(&e.id)) else {
            tracing::warn!(id = e.id, "an element with a bad id or data type");
            continue;
        };
        inval.push(Inval::Inode(ino_of(&Node::Element {
            party,
            guid,
            dt: dt.clone(),
            id: id.clone(),
        })));
        if form_json {
            inval.push(Inval::Inode(ino_of(&Node::FormJson {
                party,
                guid,
                dt,
                id,
            })));
        }
    }
    inval.push(Inval::Inode(ino_of(&Node::InstanceJson { party, guid })));
    inval
}
