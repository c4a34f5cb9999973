//! `MemoryClient`: an in-memory `AltinnClient` that applies Altinn's upload rules (rules.rs)
//! and status codes, counts requests per operation and injects faults. It lets the filesystem
//! be tested through a real FUSE mount without any server.

use crate::altinn::client::*;
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

pub fn status_error(status: u16, method: &str, path: &str, message: &str) -> AltinnError {
    AltinnError::Status {
        status,
        method: method.into(),
        path: path.into(),
        message: message.into(),
        problem: None,
        retry_after: None,
    }
}

fn issue_error(status: u16, method: &str, path: &str, v: &rules::RuleViolation) -> AltinnError {
    AltinnError::Status {
        status,
        method: method.into(),
        path: path.into(),
        message: v.description.clone(),
        problem: Some(Box::new(ProblemDetails {
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
        })),
        retry_after: None,
    }
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

#[async_trait]
impl AltinnClient for MemoryClient {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        let after = self.enter(Op::Metadata)?;
        let m = self.state.lock().unwrap().meta.clone();
        Self::finish(after, Ok(m))
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        let after = self.enter(Op::Parties)?;
        let st = self.state.lock().unwrap();
        let r = if st.org_token {
            Err(status_error(403, "GET", "api/v1/parties", "Forbidden"))
        } else {
            Ok(st.parties.clone())
        };
        Self::finish(after, r)
    }

    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        let after = self.enter(Op::Query)?;
        let st = self.state.lock().unwrap();
        let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
        let party = get("instanceOwner.partyId");
        if !st.org_token {
            match &party {
                None => {
                    return Err(status_error(
                        400,
                        "GET",
                        "storage/api/v1/instances",
                        "Missing instanceOwner.partyId",
                    ))
                }
                Some(p) if !st.parties.iter().any(|x| x.party_id.to_string() == *p) => {
                    return Err(status_error(
                        403,
                        "GET",
                        "storage/api/v1/instances",
                        "Forbidden",
                    ))
                }
                _ => {}
            }
        }
        let archived = get("status.isArchived");
        let mut all: Vec<&Instance> = st
            .instances
            .values()
            .filter(|i| party.as_ref().is_none_or(|p| i.party_id() == *p))
            .filter(|i| !i.status.is_hard_deleted)
            .filter(|i| match archived.as_deref() {
                Some("true") => !i.is_active(),
                Some("false") => i.is_active(),
                _ => true,
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let start: usize = next
            .and_then(|n| n.rsplit("continuationToken=").next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let end = (start + st.page_size).min(all.len());
        let instances: Vec<Instance> = all[start.min(end)..end]
            .iter()
            .map(|i| (*i).clone())
            .collect();
        let next = (end < all.len()).then(|| format!("memory://instances?continuationToken={end}"));
        Self::finish(
            after,
            Ok(QueryResponse {
                count: instances.len() as i64,
                self_link: None,
                next,
                instances,
            }),
        )
    }

    async fn get_instance(&self, inst: &InstanceRef) -> Result<Instance> {
        let after = self.enter(Op::GetInstance)?;
        let st = self.state.lock().unwrap();
        let r = st
            .instances
            .get(&inst.guid)
            .filter(|i| i.party_id() == inst.party && !i.status.is_hard_deleted)
            .cloned()
            .ok_or_else(|| status_error(404, "GET", "instances", "Instance Not Found"));
        Self::finish(after, r)
    }

    async fn list_data_elements(&self, inst: &InstanceRef) -> Result<Vec<DataElement>> {
        let after = self.enter(Op::ListElements)?;
        let st = self.state.lock().unwrap();
        let r = st
            .instances
            .get(&inst.guid)
            .map(|i| i.data.clone())
            .ok_or_else(|| status_error(404, "GET", "dataelements", "Instance Not Found"));
        Self::finish(after, r)
    }

    async fn download(&self, inst: &InstanceRef, data_id: &str) -> Result<Download> {
        let after = self.enter(Op::Download)?;
        let (bytes, cut, delay) = {
            let st = self.state.lock().unwrap();
            let exists = st
                .instances
                .get(&inst.guid)
                .is_some_and(|i| i.data.iter().any(|e| e.id == data_id));
            let Some(b) = st.blobs.get(data_id).filter(|_| exists).cloned() else {
                return Err(status_error(404, "GET", "data", "Data Element Not Found"));
            };
            (b, st.truncate.get(data_id).copied(), st.chunk_delay)
        };
        if let Some(e) = after {
            return Err(e);
        }
        let total = bytes.len() as u64;
        let limit = cut.unwrap_or(total).min(total) as usize;
        const CHUNK: usize = 64 * 1024;
        let path = format!("data/{data_id}");
        let stream = futures_util::stream::unfold(0usize, move |pos| {
            let bytes = bytes.clone();
            let path = path.clone();
            async move {
                if pos >= limit {
                    if limit < bytes.len() && pos != usize::MAX {
                        return Some((
                            Err(AltinnError::Truncated {
                                path,
                                expected: bytes.len() as u64,
                                got: limit as u64,
                            }),
                            usize::MAX,
                        ));
                    }
                    return None;
                }
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let end = (pos + CHUNK).min(limit);
                Some((Ok(bytes.slice(pos..end)), end))
            }
        });
        Ok(Download {
            content_length: Some(total),
            content_type: None,
            accept_ranges: false,
            stream: Box::pin(stream),
        })
    }

    async fn get_form_data(
        &self,
        _inst: &InstanceRef,
        data_id: &str,
        _accept: &str,
    ) -> Result<Bytes> {
        let after = self.enter(Op::GetFormData)?;
        let r = self
            .blob(data_id)
            .ok_or_else(|| status_error(404, "GET", "data", "Data Element Not Found"));
        Self::finish(after, r)
    }

    async fn create_data(
        &self,
        inst: &InstanceRef,
        data_type: &str,
        filename: &str,
        content_type: &str,
        body: UploadBody,
    ) -> Result<DataElement> {
        let after = self.enter(Op::Create)?;
        let path = format!("instances/{}/{}/data/{data_type}", inst.party, inst.guid);
        let bytes = Self::read_body(&body)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get(&inst.guid) else {
            return Err(status_error(404, "POST", &path, "Instance Not Found"));
        };
        let Some(dt) = st.meta.data_type(data_type).cloned() else {
            return Err(status_error(400, "POST", &path, "Data Type Not Found"));
        };
        Self::active_check(i, "POST", &path)?;
        let existing = i.data.iter().filter(|e| e.data_type == data_type).count();
        if !rules::count_allows_one_more(&dt, existing) {
            return Err(status_error(409, "POST", &path, "Max Count Exceeded"));
        }
        if dt.is_form() {
            if !rules::form_content_type_ok(Some(content_type)) {
                return Err(status_error(415, "POST", &path, "Unsupported content type"));
            }
        } else {
            if let Err(v) = rules::check_size(&dt, bytes.len() as u64) {
                return Err(issue_error(400, "POST", &path, &v));
            }
            if let Err(v) = rules::check_filename(filename)
                .and_then(|_| rules::check_content_type(&dt, filename, Some(content_type)))
            {
                return Err(issue_error(400, "POST", &path, &v));
            }
        }
        if bytes.is_empty() {
            return Err(status_error(
                400,
                "POST",
                &path,
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        let len = bytes.len() as u64;
        st.uploads
            .push(("POST".into(), filename.into(), content_type.into(), len));
        let el = Self::new_element(
            &mut st,
            &inst.guid,
            data_type,
            Some(filename),
            content_type,
            bytes,
        );
        Self::finish(after, Ok(el))
    }

    async fn replace_data(
        &self,
        inst: &InstanceRef,
        data_id: &str,
        filename: &str,
        content_type: &str,
        body: UploadBody,
    ) -> Result<DataElement> {
        let after = self.enter(Op::Replace)?;
        let path = format!("instances/{}/{}/data/{data_id}", inst.party, inst.guid);
        let bytes = Self::read_body(&body)?;
        let mut st = self.state.lock().unwrap();
        let meta = st.meta.clone();
        let seq_now = Self::now(&mut st);
        let Some(i) = st.instances.get(&inst.guid) else {
            return Err(status_error(404, "PUT", &path, "Instance Not Found"));
        };
        Self::active_check(i, "PUT", &path)?;
        let Some(el) = i.data.iter().find(|e| e.id == data_id).cloned() else {
            return Err(status_error(404, "PUT", &path, "Data Element Not Found"));
        };
        let Some(dt) = meta.data_type(&el.data_type) else {
            return Err(status_error(400, "PUT", &path, "Data Type Not Found"));
        };
        if dt.is_form() {
            if !rules::form_content_type_ok(Some(content_type)) {
                return Err(status_error(415, "PUT", &path, "Unsupported content type"));
            }
        } else {
            if let Err(v) = rules::check_filename(filename)
                .and_then(|_| rules::check_content_type(dt, filename, Some(content_type)))
            {
                return Err(status_error(400, "PUT", &path, &v.description));
            }
            if rules::check_size(dt, bytes.len() as u64).is_err() {
                return Err(status_error(
                    400,
                    "PUT",
                    &path,
                    "The request body is too large and exceeds the maximum permitted limit",
                ));
            }
        }
        if el.locked {
            return Err(status_error(
                409,
                "PUT",
                &path,
                &format!("Data element {data_id} is locked and cannot be updated"),
            ));
        }
        if bytes.is_empty() {
            return Err(status_error(
                422,
                "PUT",
                &path,
                "Could not process attached file",
            ));
        }
        let len = bytes.len() as u64;
        st.uploads
            .push(("PUT".into(), filename.into(), content_type.into(), len));
        st.blobs.insert(data_id.into(), bytes);
        let i = st.instances.get_mut(&inst.guid).unwrap();
        let e = i.data.iter_mut().find(|e| e.id == data_id).unwrap();
        e.size = len as i64;
        e.content_type = Some(content_type.into());
        if !dt.is_form() {
            e.filename = Some(filename.into());
        }
        e.last_changed = Some(seq_now);
        let out = e.clone();
        i.last_changed = Some(seq_now);
        Self::finish(after, Ok(out))
    }

    async fn delete_data(&self, inst: &InstanceRef, data_id: &str) -> Result<()> {
        let after = self.enter(Op::Delete)?;
        let path = format!("instances/{}/{}/data/{data_id}", inst.party, inst.guid);
        let mut st = self.state.lock().unwrap();
        let meta = st.meta.clone();
        let Some(i) = st.instances.get_mut(&inst.guid) else {
            return Err(status_error(404, "DELETE", &path, "Instance Not Found"));
        };
        Self::active_check(i, "DELETE", &path)?;
        let Some(pos) = i.data.iter().position(|e| e.id == data_id) else {
            return Err(status_error(404, "DELETE", &path, "Data Element Not Found"));
        };
        if meta
            .data_type(&i.data[pos].data_type)
            .is_some_and(|d| d.is_main_form())
        {
            return Err(status_error(
                400,
                "DELETE",
                &path,
                "Cannot Delete main data element",
            ));
        }
        i.data.remove(pos);
        i.last_changed = Some(Utc::now());
        st.blobs.remove(data_id);
        Self::finish(after, Ok(()))
    }

    async fn create_instance(&self, party: &str) -> Result<Instance> {
        let after = self.enter(Op::CreateInstance)?;
        let mut st = self.state.lock().unwrap();
        if !st.org_token && !st.parties.iter().any(|p| p.party_id.to_string() == party) {
            return Err(status_error(403, "POST", "instances", "Forbidden"));
        }
        let i = Self::new_instance(&mut st, party);
        let guid = i.guid().to_string();
        st.instances.insert(guid.clone(), i);
        // The app creates the main form on instantiation (appLogic.autoCreate).
        let forms: Vec<String> = st
            .meta
            .data_types
            .iter()
            .filter(|d| d.is_main_form())
            .map(|d| d.id.clone())
            .collect();
        for f in forms {
            Self::new_element(
                &mut st,
                &guid,
                &f,
                None,
                "application/xml",
                Bytes::from_static(b"<model />\n"),
            );
        }
        let i = st.instances.get(&guid).cloned().unwrap();
        Self::finish(after, Ok(i))
    }

    async fn delete_instance(&self, inst: &InstanceRef, hard: bool) -> Result<Instance> {
        let after = self.enter(Op::DeleteInstance)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get_mut(&inst.guid) else {
            return Err(status_error(
                404,
                "DELETE",
                "instances",
                "Instance Not Found",
            ));
        };
        let now = Utc::now();
        i.status.is_soft_deleted = true;
        i.status.soft_deleted = Some(now);
        if hard {
            i.status.is_hard_deleted = true;
            i.status.hard_deleted = Some(now);
        }
        let out = i.clone();
        // Soft-deleted instances disappear from this view too (the query filters them).
        st.instances.remove(&inst.guid);
        Self::finish(after, Ok(out))
    }

    async fn complete_instance(&self, inst: &InstanceRef) -> Result<Instance> {
        let after = self.enter(Op::Complete)?;
        let mut st = self.state.lock().unwrap();
        let org = st.meta.org.clone();
        let Some(i) = st.instances.get_mut(&inst.guid) else {
            return Err(status_error(404, "POST", "complete", "Instance Not Found"));
        };
        i.complete_confirmations.push(CompleteConfirmation {
            stakeholder_id: org,
            confirmed_on: Some(Utc::now()),
        });
        let out = i.clone();
        Self::finish(after, Ok(out))
    }

    async fn process_next(
        &self,
        inst: &InstanceRef,
        _action: Option<&str>,
    ) -> Result<ProcessState> {
        let after = self.enter(Op::ProcessNext)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get_mut(&inst.guid) else {
            return Err(status_error(
                404,
                "PUT",
                "process/next",
                "Instance Not Found",
            ));
        };
        let p = i.process.get_or_insert_with(Default::default);
        if p.ended.is_some() {
            return Err(status_error(
                409,
                "PUT",
                "process/next",
                "Process is ended.",
            ));
        }
        let now = Utc::now();
        match p
            .current_task
            .as_ref()
            .and_then(|t| t.element_id.clone())
            .as_deref()
        {
            Some("Task_1") => {
                p.current_task = Some(ProcessElementInfo {
                    element_id: Some("Task_2".into()),
                    altinn_task_type: Some("confirmation".into()),
                    started: Some(now),
                    ..Default::default()
                });
                for e in i.data.iter_mut() {
                    e.locked = true;
                }
            }
            _ => {
                p.current_task = None;
                p.ended = Some(now);
                p.end_event = Some("EndEvent_1".into());
                i.status.is_archived = true;
                i.status.archived = Some(now);
            }
        }
        let out = p.clone();
        i.last_changed = Some(now);
        Self::finish(after, Ok(out))
    }

    async fn stateless_create(
        &self,
        data_type: &str,
        _party: Option<&str>,
        _accept: &str,
    ) -> Result<Bytes> {
        let after = self.enter(Op::Stateless)?;
        Self::finish(after, Ok(Bytes::from(format!("<{data_type} />\n"))))
    }

    async fn stateless_calculate(
        &self,
        _data_type: &str,
        _party: Option<&str>,
        _content_type: &str,
        body: Bytes,
        _accept: &str,
    ) -> Result<Bytes> {
        let after = self.enter(Op::Stateless)?;
        Self::finish(after, Ok(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn applies_rules_and_counts() {
        let c = MemoryClient::sample();
        let i = c.instances()[0].clone();
        let r = InstanceRef::of(&i);
        let e = c
            .create_data(
                &r,
                "attachments",
                "a.exe",
                "application/octet-stream",
                UploadBody::Bytes(Bytes::from_static(b"x")),
            )
            .await
            .unwrap_err();
        assert_eq!(e.issue_codes(), vec!["ContentTypeNotAllowed"]);
        let main = i.data.iter().find(|d| d.data_type == "model").unwrap();
        let e = c.delete_data(&r, &main.id).await.unwrap_err();
        assert_eq!(e.status(), Some(400));
        let e = c
            .create_data(
                &r,
                "model",
                "m.xml",
                "application/xml",
                UploadBody::Bytes(Bytes::from_static(b"<a/>")),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(409));
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
        let mut d = c.download(&InstanceRef::of(&i), &el.id).await.unwrap();
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
