//! Disk-backed store in app-localtest's layout (app-localtest.md §2.3), with an in-memory index.
//!
//! ```text
//! documentdb/instances/{partyId}_{instanceGuid}.json   instance, "id" = guid, "data": []
//! documentdb/data/{instanceGuid}/{dataGuid}.json       one DataElement each
//! documentdb/applications/{org}/{app}.json             application metadata
//! blobs/{org}/{app}/{instanceGuid}/data/{dataGuid}     raw bytes
//! ```
//! Every write goes to a temp file first and is renamed into place.

use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub struct Store {
    pub root: PathBuf,
    apps: RwLock<HashMap<String, ApplicationMetadata>>,
    /// guid → instance with `id` = "{party}/{guid}" and `data` filled (sorted by created).
    instances: RwLock<HashMap<String, Instance>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Store {
    pub fn open(root: &Path) -> io::Result<Store> {
        for d in [
            "documentdb/instances",
            "documentdb/data",
            "documentdb/applications",
            "blobs",
            "tmp",
        ] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let mut apps = HashMap::new();
        let appdir = root.join("documentdb/applications");
        for org in std::fs::read_dir(&appdir)? {
            let org = org?;
            if !org.file_type()?.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(org.path())? {
                let f = f?;
                if f.path().extension().is_some_and(|e| e == "json") {
                    let bytes = std::fs::read(f.path())?;
                    match serde_json::from_slice::<ApplicationMetadata>(&bytes) {
                        Ok(m) => {
                            apps.insert(m.id.clone(), m);
                        }
                        Err(e) => tracing::warn!("skipping {}: {e}", f.path().display()),
                    }
                }
            }
        }
        let mut instances = HashMap::new();
        for f in std::fs::read_dir(root.join("documentdb/instances"))? {
            let f = f?;
            let name = f.file_name().to_string_lossy().to_string();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let Some((party, guid)) = stem.split_once('_') else {
                continue;
            };
            let bytes = std::fs::read(f.path())?;
            let mut inst: Instance = match serde_json::from_slice(&bytes) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("skipping {name}: {e}");
                    continue;
                }
            };
            inst.id = format!("{party}/{guid}");
            if inst.instance_owner.party_id.is_empty() {
                inst.instance_owner.party_id = party.to_string();
            }
            inst.data = Vec::new();
            instances.insert(guid.to_string(), inst);
        }
        for d in std::fs::read_dir(root.join("documentdb/data"))? {
            let d = d?;
            let guid = d.file_name().to_string_lossy().to_string();
            let Some(inst) = instances.get_mut(&guid) else {
                continue;
            };
            for f in std::fs::read_dir(d.path())? {
                let f = f?;
                if f.path().extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let bytes = std::fs::read(f.path())?;
                if let Ok(e) = serde_json::from_slice::<DataElement>(&bytes) {
                    inst.data.push(e);
                }
            }
            sort_elements(&mut inst.data);
        }
        Ok(Store {
            root: root.to_path_buf(),
            apps: RwLock::new(apps),
            instances: RwLock::new(instances),
            locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.apps.read().unwrap().is_empty() && self.instances.read().unwrap().is_empty()
    }

    pub fn app(&self, id: &str) -> Option<ApplicationMetadata> {
        self.apps.read().unwrap().get(id).cloned()
    }

    pub fn apps(&self) -> Vec<ApplicationMetadata> {
        self.apps.read().unwrap().values().cloned().collect()
    }

    pub fn put_app(&self, meta: &ApplicationMetadata) -> io::Result<()> {
        let path = self
            .root
            .join("documentdb/applications")
            .join(format!("{}.json", meta.id));
        write_atomic(&path, &serde_json::to_vec_pretty(meta)?)?;
        self.apps
            .write()
            .unwrap()
            .insert(meta.id.clone(), meta.clone());
        Ok(())
    }

    pub fn get(&self, guid: &str) -> Option<Instance> {
        self.instances.read().unwrap().get(guid).cloned()
    }

    pub fn count(&self) -> usize {
        self.instances.read().unwrap().len()
    }

    /// Clones of all instances for which `f` holds.
    pub fn select(&self, f: impl Fn(&Instance) -> bool) -> Vec<Instance> {
        self.instances
            .read()
            .unwrap()
            .values()
            .filter(|i| f(i))
            .cloned()
            .collect()
    }

    /// Run `f` over the index under its read lock (no clones).
    pub fn with_all<R>(&self, f: impl FnOnce(&HashMap<String, Instance>) -> R) -> R {
        f(&self.instances.read().unwrap())
    }

    /// The per-instance write lock.
    pub async fn lock(&self, guid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self
            .locks
            .lock()
            .unwrap()
            .entry(guid.to_string())
            .or_default()
            .clone();
        m.lock_owned().await
    }

    fn instance_path(&self, inst: &Instance) -> PathBuf {
        self.root.join("documentdb/instances").join(format!(
            "{}_{}.json",
            inst.party_id(),
            inst.guid()
        ))
    }

    fn element_path(&self, guid: &str, data_guid: &str) -> PathBuf {
        self.root
            .join("documentdb/data")
            .join(guid)
            .join(format!("{data_guid}.json"))
    }

    pub fn blob_path(&self, app_id: &str, guid: &str, data_guid: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(app_id)
            .join(guid)
            .join("data")
            .join(data_guid)
    }

    /// A fresh temp file path on the same file system as the blobs.
    pub fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Write the instance document (without its elements) and update the index. The elements
    /// in `inst.data` are taken as the current list (they must be saved with `save_element`).
    pub fn save_instance(&self, inst: &Instance) -> io::Result<()> {
        let mut doc = inst.clone();
        doc.id = inst.guid().to_string();
        doc.data = Vec::new();
        write_atomic(&self.instance_path(inst), &serde_json::to_vec_pretty(&doc)?)?;
        let mut inst = inst.clone();
        sort_elements(&mut inst.data);
        self.instances
            .write()
            .unwrap()
            .insert(inst.guid().to_string(), inst);
        Ok(())
    }

    pub fn save_element(&self, e: &DataElement) -> io::Result<()> {
        write_atomic(
            &self.element_path(&e.instance_guid, &e.id),
            &serde_json::to_vec_pretty(e)?,
        )
    }

    pub fn remove_element_files(&self, app_id: &str, guid: &str, data_guid: &str) {
        let _ = std::fs::remove_file(self.element_path(guid, data_guid));
        let _ = std::fs::remove_file(self.blob_path(app_id, guid, data_guid));
    }
}

pub fn sort_elements(v: &mut [DataElement]) {
    v.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
}
