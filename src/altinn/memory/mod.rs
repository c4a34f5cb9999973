//! `MemoryClient`: an in-memory `AltinnClient` that applies Altinn's upload rules (rules.rs)
//! and status codes, counts requests per operation and injects faults. It lets the filesystem
//! be tested through a real FUSE mount without any server.

mod api;

use crate::altinn::client::*;
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use crate::altinn::rules;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The operations of the trait, for counters and fault hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Metadata,
    Parties,
    Query,
    GetInstance,
    ListElements,
    Download,
    GetFormData,
    Create,
    Replace,
    Delete,
    CreateInstance,
    DeleteInstance,
    Complete,
    ProcessNext,
    Stateless,
}

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultWhen {
    /// Before the operation: nothing changes on the "server".
    Before,
    /// After the operation took effect: the answer is lost (a write's outcome is unknown).
    After,
}

#[derive(Debug, Clone)]
struct Fault {
    remaining: usize,
    err: AltinnError,
    when: FaultWhen,
}

#[derive(Default)]
struct State {
    meta: ApplicationMetadata,
    parties: Vec<Party>,
    /// guid → instance (with its data elements).
    instances: BTreeMap<String, Instance>,
    blobs: HashMap<String, Bytes>,
    counts: HashMap<Op, usize>,
    faults: HashMap<Op, Fault>,
    /// Downloads of these element ids end after this many bytes (a cut connection).
    truncate: HashMap<String, u64>,
    /// Whether `parties()` answers (a user token) or fails 403 (an org token).
    org_token: bool,
    page_size: usize,
    chunk_delay: Option<Duration>,
    /// Every upload as (method, filename, content type, size) in order.
    uploads: Vec<(String, String, String, u64)>,
    seq: u64,
}

pub struct MemoryClient {
    state: Mutex<State>,
}

/// An error answer, classified by the same parser as the HTTP client's answers.
pub fn status_error(status: u16, method: &str, path: &str, message: &str) -> AltinnError {
    AltinnError::from_answer(Answer {
        status,
        method,
        path,
        message: message.into(),
        problem: None,
        retry_after: None,
    })
}

fn issue_error(status: u16, method: &str, path: &str, v: &rules::RuleViolation) -> AltinnError {
    AltinnError::from_answer(Answer {
        status,
        method,
        path,
        message: v.description.clone(),
        problem: Some(ProblemDetails {
            title: Some("File validation failed".into()),
            status: Some(status),
            detail: Some("Common checks failed".into()),
            upload_validation_issues: Some(vec![ValidationIssue {
                severity: 1,
                code: Some(v.code.to_string()),
                description: Some(v.description.clone()),
                source: Some("DataRestrictionValidation".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        retry_after: None,
    })
}

impl MemoryClient {
    /// An org-token view of `meta` with no instances.
    pub fn new(meta: ApplicationMetadata) -> Self {
        Self {
            state: Mutex::new(State {
                meta,
                org_token: true,
                page_size: 100,
                ..Default::default()
            }),
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

    /// The sample app with a few instances and elements over two parties.
    pub fn sample() -> Self {
        let c = Self::new(Self::sample_metadata());
        for party in ["50001", "50002"] {
            for n in 0..2 {
                let i = c.add_instance(party);
                let g = i.guid().to_string();
                c.add_element(
                    &g,
                    "model",
                    None,
                    "application/xml",
                    format!("<model><party>{party}</party><n>{n}</n></model>\n"),
                );
                c.add_element(
                    &g,
                    "attachments",
                    Some("report.pdf"),
                    "application/pdf",
                    format!("%PDF-1.4 report of {party}/{n}\n").repeat(100),
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

    fn next_guid(st: &mut State) -> String {
        st.seq += 1;
        let r = uuid::Uuid::new_v4().simple().to_string();
        // Sortable by creation: the sequence leads, the rest is random.
        format!(
            "{:08x}-{}-4{}-8{}-{}",
            st.seq,
            &r[8..12],
            &r[13..16],
            &r[17..20],
            &r[20..32]
        )
    }

    fn now(st: &mut State) -> Timestamp {
        // Strictly increasing timestamps so "created first" is well defined in tests.
        st.seq += 1;
        Utc::now() + chrono::Duration::microseconds(st.seq as i64)
    }

    fn new_instance(st: &mut State, party: &str) -> Instance {
        let guid = Self::next_guid(st);
        let now = Self::now(st);
        let app_id = st.meta.id.clone();
        Instance {
            id: format!("{party}/{guid}"),
            instance_owner: InstanceOwner {
                party_id: party.into(),
                ..Default::default()
            },
            app_id: app_id.clone(),
            org: st.meta.org.clone(),
            process: Some(ProcessState {
                started: Some(now),
                current_task: Some(ProcessElementInfo {
                    element_id: Some("Task_1".into()),
                    altinn_task_type: Some("data".into()),
                    flow: Some(2),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            created: Some(now),
            last_changed: Some(now),
            ..Default::default()
        }
    }

    /// Add an instance owned by `party` directly (no rules, not counted).
    pub fn add_instance(&self, party: &str) -> Instance {
        let mut st = self.state.lock().unwrap();
        let i = Self::new_instance(&mut st, party);
        st.instances.insert(i.guid().to_string(), i.clone());
        i
    }

    /// Add an element directly (no rules, not counted).
    pub fn add_element(
        &self,
        guid: &str,
        data_type: &str,
        filename: Option<&str>,
        content_type: &str,
        bytes: impl Into<Bytes>,
    ) -> DataElement {
        let mut st = self.state.lock().unwrap();
        let bytes = bytes.into();
        Self::new_element(&mut st, guid, data_type, filename, content_type, bytes)
    }

    fn new_element(
        st: &mut State,
        guid: &str,
        data_type: &str,
        filename: Option<&str>,
        content_type: &str,
        bytes: Bytes,
    ) -> DataElement {
        let id = Self::next_guid(st);
        let now = Self::now(st);
        let el = DataElement {
            id: id.clone(),
            instance_guid: guid.into(),
            data_type: data_type.into(),
            filename: filename.map(Into::into),
            content_type: Some(content_type.into()),
            size: bytes.len() as i64,
            created: Some(now),
            last_changed: Some(now),
            file_scan_result: Some("NotApplicable".into()),
            ..Default::default()
        };
        st.blobs.insert(id, bytes);
        let inst = st.instances.get_mut(guid).expect("instance exists");
        inst.data.push(el.clone());
        inst.last_changed = Some(now);
        el
    }

    /// Change an element's metadata in place (lock it, archive...).
    pub fn update_element(&self, id: &str, f: impl FnOnce(&mut DataElement)) {
        let mut st = self.state.lock().unwrap();
        for i in st.instances.values_mut() {
            if let Some(e) = i.data.iter_mut().find(|e| e.id == id) {
                f(e);
                return;
            }
        }
    }

    pub fn update_instance(&self, guid: &str, f: impl FnOnce(&mut Instance)) {
        let mut st = self.state.lock().unwrap();
        if let Some(i) = st.instances.get_mut(guid) {
            f(i);
        }
    }

    /// The parties `parties()` returns; setting any makes this a user-token view: `parties()`
    /// answers and app-wide queries without `instanceOwner.partyId` get 400.
    pub fn set_user_parties(&self, parties: &[i64]) {
        let mut st = self.state.lock().unwrap();
        st.org_token = false;
        st.parties = parties
            .iter()
            .map(|p| Party {
                party_id: *p,
                ..Default::default()
            })
            .collect();
    }

    pub fn set_page_size(&self, n: usize) {
        self.state.lock().unwrap().page_size = n.max(1);
    }

    /// Sleep this long between downloaded chunks (64 KiB each).
    pub fn set_chunk_delay(&self, d: Option<Duration>) {
        self.state.lock().unwrap().chunk_delay = d;
    }

    /// Cut downloads of element `id` after `at` bytes (until cleared with None).
    pub fn truncate_downloads(&self, id: &str, at: Option<u64>) {
        let mut st = self.state.lock().unwrap();
        match at {
            Some(n) => st.truncate.insert(id.into(), n),
            None => st.truncate.remove(id),
        };
    }

    /// Fail the next `n` calls of `op` with `err`, before or after they take effect.
    pub fn fail_next(&self, op: Op, n: usize, err: AltinnError, when: FaultWhen) {
        self.state.lock().unwrap().faults.insert(
            op,
            Fault {
                remaining: n,
                err,
                when,
            },
        );
    }

    /// Requests made of `op` so far.
    pub fn count(&self, op: Op) -> usize {
        *self.state.lock().unwrap().counts.get(&op).unwrap_or(&0)
    }

    /// Requests of every kind so far.
    pub fn total_requests(&self) -> usize {
        self.state.lock().unwrap().counts.values().sum()
    }

    pub fn reset_counts(&self) {
        self.state.lock().unwrap().counts.clear();
    }

    /// Uploads in order: (POST|PUT, filename, content type, size).
    pub fn uploads(&self) -> Vec<(String, String, String, u64)> {
        self.state.lock().unwrap().uploads.clone()
    }

    pub fn instance(&self, guid: &str) -> Option<Instance> {
        self.state.lock().unwrap().instances.get(guid).cloned()
    }

    pub fn instances(&self) -> Vec<Instance> {
        self.state
            .lock()
            .unwrap()
            .instances
            .values()
            .cloned()
            .collect()
    }

    pub fn elements(&self, guid: &str) -> Vec<DataElement> {
        self.instance(guid).map(|i| i.data).unwrap_or_default()
    }

    pub fn blob(&self, id: &str) -> Option<Bytes> {
        self.state.lock().unwrap().blobs.get(id).cloned()
    }

    /// Count the call and apply a `Before` fault; returns an `After` fault to apply later.
    fn enter(&self, op: Op) -> Result<Option<AltinnError>> {
        let mut st = self.state.lock().unwrap();
        *st.counts.entry(op).or_default() += 1;
        if let Some(f) = st.faults.get_mut(&op) {
            if f.remaining > 0 {
                f.remaining -= 1;
                let (err, when) = (f.err.clone(), f.when);
                if f.remaining == 0 {
                    st.faults.remove(&op);
                }
                return match when {
                    FaultWhen::Before => Err(err),
                    FaultWhen::After => Ok(Some(err)),
                };
            }
        }
        Ok(None)
    }

    fn finish<T>(after: Option<AltinnError>, v: Result<T>) -> Result<T> {
        match (after, v) {
            (Some(e), Ok(_)) => Err(e),
            (_, v) => v,
        }
    }

    fn read_body(body: &UploadBody) -> Result<Bytes> {
        match body {
            UploadBody::Bytes(b) => Ok(b.clone()),
            UploadBody::File { path, len } => {
                let b = std::fs::read(path)
                    .map_err(|e| AltinnError::Local(format!("{}: {e}", path.display())))?;
                if b.len() as u64 != *len {
                    return Err(AltinnError::Local(format!(
                        "{}: {} bytes, Content-Length said {len}",
                        path.display(),
                        b.len()
                    )));
                }
                Ok(Bytes::from(b))
            }
        }
    }

    fn active_check(inst: &Instance, method: &str, path: &str) -> Result<()> {
        if !inst.is_active() {
            return Err(status_error(409, method, path, "Instance Not Active"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn applies_rules_and_counts() {
        let c = MemoryClient::sample();
        let i = c.instances()[0].clone();
        let r = InstanceId::of(&i).unwrap();
        let e = c
            .create_data(
                &r,
                NewElement {
                    data_type: &"attachments".parse().unwrap(),
                    filename: "a.exe",
                    content_type: "application/octet-stream",
                },
                UploadBody::Bytes(Bytes::from_static(b"x")),
            )
            .await
            .unwrap_err();
        assert_eq!(e.issue_codes(), vec!["ContentTypeNotAllowed"]);
        assert_eq!(
            e.meaning(),
            Meaning::Refused(Refusal::Rule("ContentTypeNotAllowed".into()))
        );
        let main = i.data.iter().find(|d| d.data_type == "model").unwrap();
        let e = c
            .delete_data(&r, &main.id.parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.meaning(), Meaning::Refused(Refusal::MainForm));
        let e = c
            .create_data(
                &r,
                NewElement {
                    data_type: &"model".parse().unwrap(),
                    filename: "m.xml",
                    content_type: "application/xml",
                },
                UploadBody::Bytes(Bytes::from_static(b"<a/>")),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.meaning(), Meaning::Refused(Refusal::MaxCount));
        assert_eq!(c.count(Op::Create), 2);
        c.fail_next(
            Op::Query,
            1,
            status_error(503, "GET", "q", "down"),
            FaultWhen::Before,
        );
        assert!(c.query_instances(&vec![]).await.is_err());
        assert_eq!(c.query_instances(&vec![]).await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn form_data_stays_xml_after_a_json_upload_and_attachments_keep_their_type() {
        let c = MemoryClient::sample();
        let i = c.instances()[0].clone();
        let r = InstanceId::of(&i).unwrap();
        let form = i.data.iter().find(|d| d.data_type == "model").unwrap();
        let json = || UploadBody::Bytes(Bytes::from_static(b"{\"a\":1}"));
        let el = c
            .replace_data(
                &r,
                &form.id.parse().unwrap(),
                Replacement {
                    filename: "model.json",
                    content_type: "application/json",
                },
                json(),
            )
            .await
            .unwrap();
        assert_eq!(el.content_type.as_deref(), Some("application/xml"));
        let listed = c.list_data_elements(&r).await.unwrap();
        let form = listed.iter().find(|d| d.id == form.id).unwrap();
        assert_eq!(form.content_type.as_deref(), Some("application/xml"));
        // The upload itself was sent as JSON.
        assert_eq!(c.uploads().last().unwrap().2, "application/json");

        let att = i
            .data
            .iter()
            .find(|d| d.data_type == "attachments")
            .unwrap();
        let txt = UploadBody::Bytes(Bytes::from_static(b"text"));
        let el = c
            .replace_data(
                &r,
                &att.id.parse().unwrap(),
                Replacement {
                    filename: "notes.txt",
                    content_type: "text/plain",
                },
                txt,
            )
            .await
            .unwrap();
        assert_eq!(el.content_type.as_deref(), Some("text/plain"));
    }

    #[tokio::test]
    async fn paging_and_truncation() {
        let c = MemoryClient::sample();
        c.set_page_size(1);
        assert_eq!(c.query_instances(&vec![]).await.unwrap().len(), 4);
        assert_eq!(c.count(Op::Query), 4);
        let i = c.instances()[0].clone();
        let el = i
            .data
            .iter()
            .find(|d| d.data_type == "attachments")
            .unwrap();
        c.truncate_downloads(&el.id, Some(10));
        let mut d = c
            .download(&InstanceId::of(&i).unwrap(), &el.id.parse().unwrap())
            .await
            .unwrap();
        use futures_util::StreamExt;
        let mut got = 0;
        let mut err = false;
        while let Some(x) = d.stream.next().await {
            match x {
                Ok(b) => got += b.len(),
                Err(_) => err = true,
            }
        }
        assert_eq!(got, 10);
        assert!(err);
    }
}
