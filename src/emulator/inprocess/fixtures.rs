//! The in-process model's own store, and changes made behind the API's back: a fresh app, the
//! sample app, instances and elements added without rules, an element locked, an instance
//! archived. None of these is counted as a call.

use super::{Identity, InProcessClient};
use crate::altinn::model::*;
use crate::emulator::auth::{Principal, TokenIssuer, SERVICEOWNER_READ, SERVICEOWNER_WRITE};
use crate::emulator::server::Shared;
use crate::emulator::service::{data_write, instantiate};
use crate::emulator::EmulatorConfig;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where a fresh store lives: `ALTINNFS_TEST_TMP`, else `/dev/shm` (a tmpfs: thousands of
/// model cases make thousands of stores), else the system's temp dir.
fn scratch() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("ALTINNFS_TEST_TMP") {
            return d.into();
        }
        let shm = std::path::PathBuf::from("/dev/shm");
        match tempfile::tempdir_in(&shm) {
            Ok(_) => shm,
            Err(_) => std::env::temp_dir(),
        }
    })
    .clone()
}

/// Sortable by creation in tests: a sequence leads, the rest is random.
fn next_guid(seq: u64) -> String {
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{seq:08x}-{}-4{}-8{}-{}",
        &r[8..12],
        &r[13..16],
        &r[17..20],
        &r[20..32]
    )
}

/// Strictly increasing creation times, so "created first" is well defined in tests.
fn tick(seq: u64) -> Timestamp {
    chrono::Utc::now() + chrono::Duration::microseconds(seq as i64)
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed) + 1
}

impl InProcessClient {
    /// The app owner of `meta` on a fresh store holding only that app.
    pub fn new(meta: ApplicationMetadata) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("altinnfs-model-")
            .tempdir_in(scratch())
            .expect("a temp dir for the model's store");
        let shared = Shared::open(EmulatorConfig::new(dir.path().to_path_buf()))
            .expect("the model's store opens");
        shared.store.put_app(&meta).expect("the app is stored");
        let claims = TokenIssuer::org_claims(&meta.org, "991825827", "", 3);
        let owner = Principal::Org {
            org: meta.org.clone(),
            scopes: vec![SERVICEOWNER_READ.into(), SERVICEOWNER_WRITE.into()],
            claims,
        };
        Self {
            shared: Arc::new(shared),
            who: std::sync::RwLock::new(Identity::As(owner)),
            app_id: meta.id.clone(),
            knobs: Default::default(),
            _dir: Some(dir),
        }
    }

    /// The sample app: a main form `model`, `attachments` (pdf/png/txt, ≤1 MiB, ≤5), `anything`
    /// (all types, unlimited).
    pub fn sample_metadata() -> ApplicationMetadata {
        let form = DataType {
            id: "model".into(),
            allowed_content_types: vec!["application/xml".into()],
            app_logic: Some(ApplicationLogic {
                class_ref: Some("Altinn.App.Models.Model".into()),
                ..Default::default()
            }),
            task_id: Some("Task_1".into()),
            max_count: 1,
            min_count: 1,
            ..Default::default()
        };
        let att = DataType {
            id: "attachments".into(),
            allowed_content_types: vec![
                "application/pdf".into(),
                "image/png".into(),
                "text/plain".into(),
            ],
            task_id: Some("Task_1".into()),
            max_size: Some(1),
            max_count: 5,
            ..Default::default()
        };
        let any = DataType {
            id: "anything".into(),
            allowed_content_types: vec![],
            task_id: Some("Task_1".into()),
            max_count: 0,
            ..Default::default()
        };
        ApplicationMetadata {
            id: "ttd/altinnfs-demo".into(),
            org: "ttd".into(),
            data_types: vec![form, att, any],
            ..Default::default()
        }
    }

    /// The sample app with two instances of each of two parties, each with its form, a
    /// `report.pdf` and a `notes.txt`.
    pub fn sample() -> Self {
        let c = Self::new(Self::sample_metadata());
        for party in ["50001", "50002"] {
            for n in 0..2 {
                let g = c.add_instance(party).guid().to_string();
                let form = format!("<model><party>{party}</party><n>{n}</n></model>\n");
                c.add_element(&g, "model", None, "application/xml", form);
                let report = format!("%PDF-1.4 report of {party}/{n}\n").repeat(100);
                c.add_element(
                    &g,
                    "attachments",
                    Some("report.pdf"),
                    "application/pdf",
                    report,
                );
                c.add_element(
                    &g,
                    "attachments",
                    Some("notes.txt"),
                    "text/plain",
                    "hello\n",
                );
            }
        }
        c
    }

    /// From now on the caller is a user who may act for `parties` (one party): `parties()`
    /// answers, and app-wide queries without `instanceOwner.partyId` are refused.
    pub fn set_user_parties(&self, parties: &[i64]) {
        assert_eq!(parties.len(), 1, "a model user acts for one party");
        let user = Principal::User {
            user_id: 4_000_000_000,
            party_id: parties[0] as u32,
            claims: Default::default(),
        };
        *self.who.write().unwrap() = Identity::As(user);
    }

    fn owner(&self) -> Principal {
        let meta = self.meta();
        Principal::Org {
            org: meta.org.clone(),
            scopes: vec![],
            claims: TokenIssuer::org_claims(&meta.org, "991825827", "", 3),
        }
    }

    pub(super) fn meta(&self) -> ApplicationMetadata {
        self.shared.store.app(&self.app_id).unwrap_or_default()
    }

    /// Add an instance owned by `party` (at Task_1, no elements; no rules, not counted).
    pub fn add_instance(&self, party: &str) -> Instance {
        let n = seq();
        let owner = self.owner();
        let mut i = instantiate::new_instance(&self.meta(), party.parse().unwrap(), &owner, None);
        i.id = format!("{party}/{}", next_guid(n));
        i.created = Some(tick(n));
        i.last_changed = i.created;
        self.shared.store.save_instance(&i).expect("saved");
        i
    }

    /// Add an element (no rules, not counted).
    pub fn add_element(
        &self,
        guid: &str,
        data_type: &str,
        filename: Option<&str>,
        content_type: &str,
        bytes: impl Into<Bytes>,
    ) -> DataElement {
        let bytes = bytes.into();
        let store = &self.shared.store;
        let meta = self.meta();
        let mut inst = store.get(guid).expect("instance exists");
        let dt = meta.data_type(data_type).cloned().unwrap_or(DataType {
            id: data_type.into(),
            ..Default::default()
        });
        let name = filename.map(str::to_string);
        let size = bytes.len() as u64;
        let mut e = data_write::new_element(&inst, &dt, name, content_type, size, &self.owner());
        let n = seq();
        e.id = next_guid(n);
        e.blob_storage_path = None;
        e.created = Some(tick(n));
        e.last_changed = e.created;
        store
            .write_blob(&inst.app_id, guid, &e.id, &bytes)
            .expect("blob");
        store.save_element(&e).expect("element");
        inst.data.push(e.clone());
        inst.last_changed = e.created;
        store.save_instance(&inst).expect("instance");
        e
    }

    /// Change an element's metadata in place (lock it...).
    pub fn update_element(&self, id: &str, f: impl FnOnce(&mut DataElement)) {
        let store = &self.shared.store;
        let Some(mut inst) = self
            .instances()
            .into_iter()
            .find(|i| i.data.iter().any(|e| e.id == id))
        else {
            return;
        };
        let e = inst.data.iter_mut().find(|e| e.id == id).unwrap();
        f(e);
        store.save_element(e).expect("element");
        store.save_instance(&inst).expect("instance");
    }

    /// Change an instance in place (archive it...).
    pub fn update_instance(&self, guid: &str, f: impl FnOnce(&mut Instance)) {
        if let Some(mut i) = self.shared.store.get(guid) {
            f(&mut i);
            self.shared.store.save_instance(&i).expect("instance");
        }
    }

    pub fn instance(&self, guid: &str) -> Option<Instance> {
        self.shared.store.get(guid)
    }

    /// Every instance of the store, in creation order of the fixtures (by GUID).
    pub fn instances(&self) -> Vec<Instance> {
        let mut v = self.shared.store.select(|_| true);
        v.sort_by(|a, b| a.guid().cmp(b.guid()));
        v
    }

    pub fn elements(&self, guid: &str) -> Vec<DataElement> {
        self.instance(guid).map(|i| i.data).unwrap_or_default()
    }

    /// The stored bytes of element `id`.
    pub fn blob(&self, id: &str) -> Option<Bytes> {
        let inst = self
            .instances()
            .into_iter()
            .find(|i| i.data.iter().any(|e| e.id == id))?;
        let path = self.shared.store.blob_path(&inst.app_id, inst.guid(), id);
        std::fs::read(path).ok().map(Bytes::from)
    }
}
