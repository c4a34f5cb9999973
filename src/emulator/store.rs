//! Disk-backed store in app-localtest's layout (app-localtest.md §2.3), with an in-memory index.
//!
//! ```text
//! documentdb/instances/{partyId}_{instanceGuid}.json   instance, "id" = guid, "data": []
//! documentdb/data/{instanceGuid}/{dataGuid}.json       one DataElement each
//! documentdb/applications/{org}/{app}.json             application metadata
//! blobs/{org}/{app}/{instanceGuid}/data/{dataGuid}     raw bytes
//! ```
//! Every write goes to a temp file first and is renamed into place. A synthetic app
//! (`service::synthetic`) adds derived instances that are written here on their first change.

use super::service::query::{Direction, Facts, PageCut, PageKey, QuerySpec};
use super::service::synthetic::Synthetic;
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub struct Store {
    pub root: PathBuf,
    apps: RwLock<HashMap<String, ApplicationMetadata>>,
    /// guid → instance with `id` = "{party}/{guid}" and `data` filled (sorted by created).
    instances: RwLock<HashMap<String, Instance>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Derived instances (`--synthetic-instances`), and which of them now live in `instances`.
    synthetic: Option<Synthetic>,
    materialised: RwLock<HashSet<u64>>,
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

/// Every `{org}/{app}.json` below `documentdb/applications`.
fn load_apps(root: &Path) -> io::Result<HashMap<String, ApplicationMetadata>> {
    let mut apps = HashMap::new();
    for org in std::fs::read_dir(root.join("documentdb/applications"))? {
        let org = org?;
        if !org.file_type()?.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(org.path())? {
            let f = f?;
            if f.path().extension().is_none_or(|e| e != "json") {
                continue;
            }
            match serde_json::from_slice::<ApplicationMetadata>(&std::fs::read(f.path())?) {
                Ok(m) => {
                    apps.insert(m.id.clone(), m);
                }
                Err(e) => tracing::warn!("skipping {}: {e}", f.path().display()),
            }
        }
    }
    Ok(apps)
}

/// Every `{party}_{guid}.json`, with `id` = "{party}/{guid}" and no elements yet.
fn load_instances(root: &Path) -> io::Result<HashMap<String, Instance>> {
    let mut instances = HashMap::new();
    for f in std::fs::read_dir(root.join("documentdb/instances"))? {
        let f = f?;
        let name = f.file_name().to_string_lossy().to_string();
        let Some((party, guid)) = name.strip_suffix(".json").and_then(|s| s.split_once('_')) else {
            continue;
        };
        let mut inst: Instance = match serde_json::from_slice(&std::fs::read(f.path())?) {
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
    Ok(instances)
}

/// Attach `documentdb/data/{guid}/*.json` to their instances.
fn load_elements(root: &Path, instances: &mut HashMap<String, Instance>) -> io::Result<()> {
    for d in std::fs::read_dir(root.join("documentdb/data"))? {
        let d = d?;
        let Some(inst) = instances.get_mut(d.file_name().to_string_lossy().as_ref()) else {
            continue;
        };
        for f in std::fs::read_dir(d.path())? {
            let f = f?;
            if f.path().extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Ok(e) = serde_json::from_slice::<DataElement>(&std::fs::read(f.path())?) {
                inst.data.push(e);
            }
        }
        sort_elements(&mut inst.data);
    }
    Ok(())
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
        let apps = load_apps(root)?;
        let mut instances = load_instances(root)?;
        load_elements(root, &mut instances)?;
        Ok(Store {
            root: root.to_path_buf(),
            apps: RwLock::new(apps),
            instances: RwLock::new(instances),
            locks: Mutex::new(HashMap::new()),
            synthetic: None,
            materialised: RwLock::new(HashSet::new()),
        })
    }

    /// Serve `s`'s derived instances besides the stored ones; those already materialised in
    /// the data dir are served from there.
    pub fn set_synthetic(&mut self, s: Synthetic) {
        let done: HashSet<u64> = self
            .instances
            .read()
            .unwrap()
            .keys()
            .filter_map(|g| s.index(g))
            .collect();
        *self.materialised.write().unwrap() = done;
        self.synthetic = Some(s);
    }

    pub fn synthetic(&self) -> Option<&Synthetic> {
        self.synthetic.as_ref()
    }

    /// The generated bytes of a synthetic element not yet materialised on disk.
    pub fn synthetic_blob(&self, data_guid: &str) -> Option<Vec<u8>> {
        self.synthetic.as_ref()?.blob(data_guid)
    }

    /// One page of a Storage query over stored and synthetic instances, in listing order,
    /// and whether the page is full. Holds at most `spec.size` clones at any time.
    pub fn page(&self, spec: &QuerySpec) -> (Vec<(PageKey, Instance)>, bool) {
        /// Where a candidate comes from; built into an instance only once it made the page.
        enum Source<'a> {
            Stored(&'a Instance),
            Synthetic(u64),
        }
        let mut cut = PageCut::new(spec);
        let all = self.instances.read().unwrap();
        for i in all.values() {
            cut.offer(&Facts::of(i), || Source::Stored(i));
        }
        if let Some(s) = &self.synthetic {
            let done = self.materialised.read().unwrap();
            // Walk the indices in listing order and stop once no later one can make the page.
            let range = s.index_range(spec);
            let walk: Box<dyn Iterator<Item = u64>> = match spec.direction {
                Direction::Asc => Box::new(range),
                Direction::Desc => Box::new(range.rev()),
            };
            for i in walk {
                if cut
                    .worst_if_full()
                    .is_some_and(|w| s.past_page(spec, i, &w))
                {
                    break;
                }
                if done.is_empty() || !done.contains(&i) {
                    cut.offer(&s.facts(i), || Source::Synthetic(i));
                }
            }
        }
        let (page, full) = cut.finish();
        let build = |src| match src {
            Source::Stored(i) => i.clone(),
            Source::Synthetic(i) => self
                .synthetic
                .as_ref()
                .map(|s| s.instance(i))
                .unwrap_or_default(),
        };
        (
            page.into_iter().map(|(k, src)| (k, build(src))).collect(),
            full,
        )
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
        if let Some(i) = self.instances.read().unwrap().get(guid) {
            return Some(i.clone());
        }
        let s = self.synthetic.as_ref()?;
        s.index(guid).map(|i| s.instance(i))
    }

    pub fn count(&self) -> usize {
        let synthetic = self.synthetic.as_ref().map_or(0, |s| s.count as usize);
        self.instances.read().unwrap().len() + synthetic - self.materialised.read().unwrap().len()
    }

    /// Clones of all instances for which `f` holds (synthetic ones are built for the test).
    pub fn select(&self, f: impl Fn(&Instance) -> bool) -> Vec<Instance> {
        self.select_where(|_| true, f)
    }

    /// Like `select`, with a cheap pre-filter on the query facts that spares building the
    /// synthetic instances it rejects.
    pub fn select_where(
        &self,
        pre: impl Fn(&Facts) -> bool,
        f: impl Fn(&Instance) -> bool,
    ) -> Vec<Instance> {
        let all = self.instances.read().unwrap();
        let mut out: Vec<Instance> = all.values().filter(|i| f(i)).cloned().collect();
        if let Some(s) = &self.synthetic {
            let done = self.materialised.read().unwrap();
            let derived = (0..s.count)
                .filter(|i| !done.contains(i) && pre(&s.facts(*i)))
                .map(|i| s.instance(i))
                .filter(|i| f(i));
            out.extend(derived);
        }
        out
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

    /// Write an element's bytes (atomically).
    pub fn write_blob(
        &self,
        app_id: &str,
        guid: &str,
        data_guid: &str,
        bytes: &[u8],
    ) -> io::Result<()> {
        write_atomic(&self.blob_path(app_id, guid, data_guid), bytes)
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
        self.materialise_synthetic(inst)?;
        let mut inst = inst.clone();
        sort_elements(&mut inst.data);
        self.instances
            .write()
            .unwrap()
            .insert(inst.guid().to_string(), inst);
        Ok(())
    }

    /// The first save of a synthetic instance writes its untouched derived elements (document
    /// and bytes) to disk, so that the data dir alone describes it from then on.
    fn materialise_synthetic(&self, inst: &Instance) -> io::Result<()> {
        let Some(index) = self.synthetic.as_ref().and_then(|s| s.index(inst.guid())) else {
            return Ok(());
        };
        if self.materialised.read().unwrap().contains(&index) {
            return Ok(());
        }
        for e in &inst.data {
            let blob = self.blob_path(&inst.app_id, inst.guid(), &e.id);
            if let (false, Some(bytes)) = (blob.exists(), self.synthetic_blob(&e.id)) {
                write_atomic(&blob, &bytes)?;
            }
            if !self.element_path(inst.guid(), &e.id).exists() {
                self.save_element(e)?;
            }
        }
        self.materialised.write().unwrap().insert(index);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::auth::{Principal, SERVICEOWNER_READ};

    fn org() -> Principal {
        Principal::Org {
            org: "ttd".into(),
            scopes: vec![SERVICEOWNER_READ.into()],
            claims: Default::default(),
        }
    }

    /// The page over every synthetic instance, without the index bounds and the early stop.
    fn brute_force(s: &Synthetic, spec: &QuerySpec) -> Vec<PageKey> {
        let mut cut = PageCut::new(spec);
        for i in 0..s.count {
            cut.offer(&s.facts(i), || ());
        }
        cut.finish().0.into_iter().map(|(k, _)| k).collect()
    }

    /// The bounded walk gives exactly the pages of the full scan, page after page, for both
    /// orders and for lastChanged filters and filters that match rarely.
    #[test]
    fn synthetic_pages_equal_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.set_synthetic(Synthetic::new(3000));
        let s = store.synthetic().unwrap().clone();
        let queries = [
            "order=asc:lastChanged&size=70",
            "order=desc:lastChanged&size=70",
            "size=333",
            "order=asc:created&size=50",
            "order=desc:created&size=50",
            "order=asc:lastChanged&size=40&lastChanged=gt:2024-01-01T05:00:00Z&lastChanged=lte:2024-01-01T09:00:00Z",
            "order=desc:lastChanged&size=40&lastChanged=gte:2024-01-01T05:00:00Z",
            "order=asc:lastChanged&size=25&process.isComplete=true&excludeConfirmedBy=ttd",
            "size=25&instanceOwner.partyId=512345&process.currentTask=Task_2",
        ];
        for q in queries {
            let mut params: Vec<(String, String)> = crate::emulator::http::parse_query(Some(q));
            params.push(("appId".into(), "ttd/altinnfs-demo".into()));
            let mut pages = 0;
            loop {
                let spec = QuerySpec::parse(&params, &org()).unwrap();
                let (page, full) = store.page(&spec);
                let keys: Vec<PageKey> = page.iter().map(|(k, _)| *k).collect();
                assert_eq!(keys, brute_force(&s, &spec), "{q}, page {pages}");
                pages += 1;
                if !full {
                    break;
                }
                params.retain(|(k, _)| k != "continuationToken");
                params.push(("continuationToken".into(), keys.last().unwrap().token()));
            }
            assert!(pages > 1, "{q} should span pages");
        }
    }
}
