//! The App API's data writes as typed requests: POST a new element, PUT over one, DELETE one
//! (altinn-api.md §1.3). An [`Upload`] says what the request carried (length, content type,
//! Content-Disposition, the body as a stream); the answer is the stored instance and element,
//! or the [`Fail`] Altinn would send. Nothing here knows HTTP: the axum routes and the
//! in-process client both call it.

use super::checks::{self, Refusal};
use super::refusal::Fail;
use crate::altinn::model::{ApplicationMetadata, DataElement, DataType, Instance};
use crate::altinn::rules::{self, RuleViolation};
use crate::emulator::auth::Principal;
use crate::emulator::store::Store;
use crate::emulator::xml;
use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use serde_json::Value;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::AsyncWriteExt;

/// The largest form body read into memory.
pub const FORM_LIMIT: usize = 50 * 1024 * 1024;

/// A request body as it arrives, chunk by chunk; an `Err` is a broken transfer.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// What a data write request carried.
pub struct Upload {
    /// Content-Length; 0 for no body; None for a chunked body (the app cannot read it).
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    /// The Content-Disposition header as sent (`attachment; filename=...`).
    pub disposition: Option<String>,
    /// The body: taken only once every check that needs no byte has passed, so a caller can
    /// drain what is left after a refusal.
    pub body: Option<BodyStream>,
}

impl Upload {
    fn take_body(&mut self) -> BodyStream {
        self.body
            .take()
            .unwrap_or_else(|| Box::pin(futures_util::stream::empty()))
    }
}

/// One caller acting on one instance of one app (the instance exists when it is made by
/// `instances::reach`).
pub struct InstanceScope<'a> {
    pub store: &'a Store,
    pub meta: &'a ApplicationMetadata,
    pub who: &'a Principal,
    pub party: String,
    /// Lowercase.
    pub guid: String,
}

/// A request body received into a temp file, with what the element will record about it.
struct Received {
    tmp: PathBuf,
    size: u64,
    filename: Option<String>,
    content_type: String,
}

impl Received {
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn platform_error(e: impl ToString) -> Fail {
    Fail::new(500, "Platform error", e.to_string())
}

fn not_active() -> Fail {
    Fail::new(409, "Instance Not Active", "Instance is not active")
}

fn zero_bytes() -> Fail {
    Fail::new(
        400,
        "Invalid data",
        "Invalid data provided. Error: The file is zero bytes.",
    )
}

fn too_large() -> Fail {
    Fail::new(413, "Request too large", "The request body is too large")
}

fn unprocessable() -> Fail {
    // Storage writes nothing and answers 422 for an empty body (never PUT an empty file).
    Fail::new(
        422,
        "Unprocessable Entity",
        "Could not process attached file",
    )
}

/// Storage URL-decodes the filename (`+` → space, `%xx` decoded).
fn storage_filename(name: &str) -> String {
    let d = crate::emulator::http::form_decode(name);
    let d: String = d
        .chars()
        .map(|c| if c == '\0' || c == '/' { '_' } else { c })
        .collect();
    if d.is_empty() {
        name.to_string()
    } else {
        d
    }
}

/// Parse form data by content type; returns the XML to store and the model as JSON.
pub fn parse_form(ct: Option<&str>, bytes: &[u8]) -> Result<(Vec<u8>, Value), Fail> {
    if !rules::form_content_type_ok(ct) {
        return Err(Fail::new(
            415,
            "Unsupported content type",
            format!("Unsupported content type {}", ct.unwrap_or("")),
        ));
    }
    let is_json = ct.is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    if !is_json {
        let (_, v) = xml::xml_to_json(bytes).map_err(|e| Fail::new(400, "Bad Request", e))?;
        return Ok((bytes.to_vec(), v));
    }
    let bad = |m: String| {
        Fail::new(
            400,
            "Bad Request",
            format!("Failed to deserialize JSON: {m}"),
        )
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("the model must be a JSON object".into()));
    }
    Ok((xml::json_to_xml(xml::ROOT, &v), v))
}

/// Read a small body whole, refusing one over `limit`.
pub async fn read_small(mut body: BodyStream, limit: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() > limit {
            return Err(format!("length limit exceeded ({limit} bytes)"));
        }
    }
    Ok(Bytes::from(out))
}

/// Stream a body to a temp file, never holding it in memory. Returns the byte count.
async fn spool(store: &Store, mut body: BodyStream, limit: u64) -> Result<(PathBuf, u64), Fail> {
    let tmp = store.tmp_path();
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(platform_error)?;
    let mut n = 0u64;
    let written: Result<(), Fail> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Fail::new(400, "Bad Request", format!("Error reading the body: {e}"))
            })?;
            n += chunk.len() as u64;
            if n > limit {
                return Err(too_large());
            }
            f.write_all(&chunk).await.map_err(platform_error)?;
        }
        f.flush().await.map_err(platform_error)
    }
    .await;
    drop(f);
    match written {
        Ok(()) => Ok((tmp, n)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

/// A new element of `dt` in `inst`, written by `who`.
pub fn new_element(
    inst: &Instance,
    dt: &DataType,
    filename: Option<String>,
    content_type: &str,
    size: u64,
    who: &Principal,
) -> DataElement {
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let scan = match dt.enable_file_scan == Some(true) {
        true => "Clean",
        false => "NotApplicable",
    };
    DataElement {
        blob_storage_path: Some(format!("{}/{}/data/{id}", inst.app_id, inst.guid())),
        id,
        instance_guid: inst.guid().to_string(),
        data_type: dt.id.clone(),
        filename,
        content_type: Some(content_type.to_string()),
        size: size as i64,
        locked: false,
        // Storage: data the app owner writes is unread by the party (altinn-api.md §4.2).
        is_read: Some(who.org() != Some(inst.org.as_str())),
        tags: vec![],
        file_scan_result: Some(scan.into()),
        created: Some(now),
        created_by: Some(who.actor()),
        last_changed: Some(now),
        last_changed_by: Some(who.actor()),
        ..Default::default()
    }
}

impl InstanceScope<'_> {
    /// The instance, if it is this party's and this app's.
    pub fn get(&self) -> Option<Instance> {
        self.store
            .get(&self.guid)
            .filter(|i| i.party_id() == self.party && i.app_id == self.meta.id)
    }

    pub fn is_owner(&self) -> bool {
        self.who.org() == Some(self.meta.org.as_str())
    }

    pub fn touch(&self, inst: &mut Instance) {
        inst.last_changed = Some(Utc::now());
        inst.last_changed_by = Some(self.who.actor());
    }

    fn save(&self, inst: &Instance) -> Result<(), Fail> {
        self.store
            .save_instance(inst)
            .map_err(|_| platform_error("could not save instance"))
    }

    /// The element `d`, its instance and its declared type, with the `/type/{t}` match.
    pub fn element(
        &self,
        d: &str,
        type_check: Option<&str>,
    ) -> Result<(Instance, DataElement, DataType), Fail> {
        let inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        let (e, dt) = checks::element(&inst, &self.meta.data_types, d, type_check)?;
        Ok((inst, e, dt))
    }

    /// POST a new element of `dt_id` (§1.3.1).
    pub async fn post(
        &self,
        dt_id: &str,
        up: &mut Upload,
    ) -> Result<(Instance, DataElement), Fail> {
        let cl = up.content_length;
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err(Fail::new(
                413,
                "Request too large",
                "Request body too large",
            ));
        }
        let inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        let dt = self
            .meta
            .data_type(dt_id)
            .cloned()
            .ok_or_else(|| Refusal::UndeclaredType {
                data_type: dt_id.to_string(),
                instance: inst.id.clone(),
            })?;
        checks::create(&inst, &dt, self.who, self.is_owner())?;
        // The body is taken only once every check that needs no byte has passed: a refusal
        // before that leaves it to the caller to drain, so a client reads the answer.
        let received = if dt.is_form() {
            checks::current_task(&inst)?;
            self.receive_form(up).await?
        } else {
            let name = check_binary(&dt, up)?;
            checks::current_task(&inst)?;
            let (tmp, size) = self.spool_binary(&dt, cl, up.take_body()).await?;
            Received {
                tmp,
                size,
                filename: Some(storage_filename(&name)),
                content_type: up.content_type.clone().unwrap_or_default(),
            }
        };
        self.commit_new(&dt, &received)
            .await
            .inspect_err(|_| received.discard())
    }

    /// Form data: parse it (XML or JSON, stored as XML) into a temp file.
    async fn receive_form(&self, up: &mut Upload) -> Result<Received, Fail> {
        let bytes = read_small(up.take_body(), FORM_LIMIT)
            .await
            .map_err(|_| Fail::new(400, "Bad Request", "Could not read the body"))?;
        let (xml, _) = parse_form(up.content_type.as_deref(), &bytes)?;
        let tmp = self.store.tmp_path();
        std::fs::write(&tmp, &xml).map_err(platform_error)?;
        Ok(Received {
            tmp,
            size: xml.len() as u64,
            filename: None,
            content_type: "application/xml".to_string(),
        })
    }

    /// Store a new element under the instance lock, re-checking what may have changed.
    async fn commit_new(
        &self,
        dt: &DataType,
        r: &Received,
    ) -> Result<(Instance, DataElement), Fail> {
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        if !inst.is_active() {
            return Err(not_active());
        }
        checks::room_for_one(&inst, dt)
            .map_err(|_| Fail::new(409, "Max Count Exceeded", "Max count exceeded"))?;
        let filename = r.filename.clone();
        let e = new_element(&inst, dt, filename, &r.content_type, r.size, self.who);
        self.place(r, &inst, &e)?;
        inst.data.push(e.clone());
        self.touch(&mut inst);
        inst.last_changed = e.last_changed;
        self.save(&inst)?;
        Ok((inst, e))
    }

    /// Move the received bytes into the element's blob and write its document.
    fn place(&self, r: &Received, inst: &Instance, e: &DataElement) -> Result<(), Fail> {
        let path = self.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&r.tmp, &path)?;
            self.store.save_element(e)
        })();
        commit.map_err(platform_error)
    }

    async fn spool_binary(
        &self,
        dt: &DataType,
        cl: Option<u64>,
        body: BodyStream,
    ) -> Result<(PathBuf, u64), Fail> {
        let limit = dt
            .max_size_bytes()
            .unwrap_or(rules::MAX_REQUEST_BYTES)
            .min(rules::MAX_REQUEST_BYTES)
            .max(cl.unwrap_or(0).min(rules::MAX_REQUEST_BYTES));
        let (tmp, n) = spool(self.store, body, limit).await?;
        let refused = if dt.max_size_bytes().is_some_and(|m| n > m) {
            Some(too_large())
        } else if cl.is_some_and(|c| c != n) {
            let msg = "Body length does not match Content-Length";
            Some(Fail::new(400, "Bad Request", msg))
        } else if n == 0 {
            Some(zero_bytes())
        } else {
            None
        };
        match refused {
            Some(f) => {
                let _ = std::fs::remove_file(&tmp);
                Err(f)
            }
            None => Ok((tmp, n)),
        }
    }

    /// PUT new bytes over element `d` (§1.3.2).
    pub async fn put(
        &self,
        d: &str,
        type_check: Option<&str>,
        up: &mut Upload,
    ) -> Result<(Instance, DataElement), Fail> {
        if up
            .content_length
            .is_some_and(|n| n > rules::MAX_REQUEST_BYTES)
        {
            return Err(Fail::new(413, "Request too large", ""));
        }
        let (inst, e, dt) = self
            .element(d, type_check)
            .map_err(|f| f.as_text(type_check.is_some()))?;
        checks::update(&inst, &dt, self.who)?;
        let received = if dt.is_form() {
            checks::current_task(&inst)?;
            let mut r = self.receive_form_unlocked(&e, up).await?;
            r.filename = e.filename.clone();
            r
        } else {
            self.receive_binary_put(&dt, &e, up).await?
        };
        self.commit_replace(d, &received)
            .await
            .inspect_err(|_| received.discard())
    }

    /// Form PUT: the body is parsed before Storage's lock check.
    async fn receive_form_unlocked(
        &self,
        e: &DataElement,
        up: &mut Upload,
    ) -> Result<Received, Fail> {
        let r = self.receive_form(up).await?;
        if let Err(refusal) = checks::unlocked(e) {
            r.discard();
            return Err(refusal.into());
        }
        Ok(r)
    }

    /// Binary PUT: app-lib's checks (400s as text), Storage's lock and empty-body answers.
    async fn receive_binary_put(
        &self,
        dt: &DataType,
        e: &DataElement,
        up: &mut Upload,
    ) -> Result<Received, Fail> {
        let cl = up.content_length;
        // A zero-byte PUT passes the App and is refused by Storage (422) below.
        let name = match check_binary(dt, up) {
            Ok(n) => n,
            Err(f) if f.status == 400 && f.title == "Invalid data" => String::new(),
            Err(f) => return Err(f.as_text(true)),
        };
        checks::unlocked(e)?;
        if cl == Some(0) {
            return Err(unprocessable());
        }
        let (tmp, size) = match self.spool_binary(dt, cl, up.take_body()).await {
            Ok(x) => x,
            Err(f) if f.status == 413 => {
                let msg = "The request body is too large";
                return Err(Fail::new(400, "Bad Request", msg).as_text(true));
            }
            Err(f) if f.title == "Invalid data" => return Err(unprocessable()),
            Err(f) => return Err(f.as_text(true)),
        };
        Ok(Received {
            tmp,
            size,
            filename: Some(storage_filename(&name)),
            content_type: up.content_type.clone().unwrap_or_default(),
        })
    }

    /// Overwrite element `d` under the instance lock, re-checking what may have changed.
    async fn commit_replace(&self, d: &str, r: &Received) -> Result<(Instance, DataElement), Fail> {
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        if !inst.is_active() {
            return Err(not_active());
        }
        let idx = inst
            .data
            .iter()
            .position(|x| x.id == d)
            .ok_or_else(|| Fail::new(404, "Data Element Not Found", ""))?;
        if inst.data[idx].locked {
            let mut f = Fail::new(409, "Conflict", "locked");
            f.bare = true;
            return Err(f);
        }
        let mut el = inst.data[idx].clone();
        el.filename = r.filename.clone();
        el.content_type = Some(r.content_type.clone());
        el.size = r.size as i64;
        el.last_changed = Some(Utc::now());
        el.last_changed_by = Some(self.who.actor());
        if self.is_owner() {
            el.is_read = Some(false);
        }
        self.place(r, &inst, &el)?;
        inst.data[idx] = el.clone();
        self.touch(&mut inst);
        inst.last_changed = el.last_changed;
        self.save(&inst)?;
        Ok((inst, el))
    }

    /// DELETE element `d` (§1.3.3); the instance as it is afterwards.
    pub async fn delete(&self, d: &str) -> Result<Instance, Fail> {
        let (inst, _, dt) = self.element(d, None)?;
        checks::delete(&inst, &dt, self.who, self.is_owner())?;
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or_else(|| {
            let mut f = Fail::new(404, "Not Found", "");
            f.bare = true;
            f
        })?;
        let idx = inst
            .data
            .iter()
            .position(|x| x.id == d)
            .ok_or_else(|| Fail::new(404, "Data Element Not Found", ""))?;
        inst.data.remove(idx);
        self.store.remove_element_files(&inst.app_id, &self.guid, d);
        self.touch(&mut inst);
        self.save(&inst)?;
        Ok(inst)
    }
}

/// DataRestrictionValidation (altinn-api.md §2.1) and the header checks after it; returns the
/// filename the Content-Disposition names.
fn check_binary(dt: &DataType, up: &Upload) -> Result<String, Fail> {
    let Some(cd) = up.disposition.as_deref() else {
        return Err(Fail::upload(RuleViolation {
            code: "ContentTypeNotAllowed",
            description: "Invalid data provided. Error: Conent-Disposition header containing 'filename' must be included in request.".into(),
        }));
    };
    let cl = up.content_length;
    if let Some(n) = cl {
        rules::check_size(dt, n).map_err(Fail::upload)?;
    }
    let ct = up.content_type.as_deref();
    let name = rules::parse_content_disposition(cd)
        .ok_or_else(|| Fail::upload(rules::check_filename("").unwrap_err()))?;
    rules::check_filename(&name).map_err(Fail::upload)?;
    rules::check_content_type(dt, &name, ct).map_err(Fail::upload)?;
    if ct.is_none_or(|c| c.trim().is_empty()) {
        return Err(Fail::new(
            400,
            "Missing content type",
            "The request must have a Content-Type header",
        ));
    }
    match cl {
        None => Err(Fail::bodiless(500)),
        Some(0) => Err(zero_bytes()),
        Some(_) => Ok(name),
    }
}
