//! App API, `/{org}/{app}` (altinn-api.md §1): metadata, parties, instances, process, data,
//! stateless data.

use super::auth::{self, Principal};
use super::http::*;
use super::server::{app_element_json, app_json, element_links, Ctx, Shared};
use super::storage::blob_response;
use super::xml;
use crate::altinn::model::{
    ApplicationMetadata, CompleteConfirmation, DataElement, DataType, Instance, InstanceOwner,
    InstanceStatus, ProblemDetails, ProcessElementInfo, ProcessState, ReadStatus, ValidationIssue,
};
use crate::altinn::rules::{self, RuleViolation};
use axum::body::Body;
use axum::http::{header, Method};
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

const FORM_LIMIT: usize = 50 * 1024 * 1024;

pub async fn route(s: &Shared, ctx: &Ctx, org: &str, app: &str, rest: &[&str], body: Body) -> Resp {
    let app_id = format!("{org}/{app}");
    let m = ctx.method.clone();
    let Some(meta) = s.store.app(&app_id) else {
        if m == Method::GET && rest == ["api", "v1", "applicationmetadata"] {
            if ctx
                .query
                .get("checkOrgApp")
                .map(|v| v.eq_ignore_ascii_case("false"))
                != Some(true)
            {
                return text(
                    409,
                    format!(
                        "This is {}, and not the app you are looking for: {app_id}!",
                        s.default_app_id()
                    ),
                );
            }
            if let Some(a) = s.store.app(&s.default_app_id()) {
                return json(200, &a);
            }
        }
        return empty(404);
    };
    match (m.clone(), rest) {
        (Method::GET, ["api", "v1", "applicationmetadata"]) => json(200, &meta),
        (Method::GET, ["api", "v1", "parties"]) => match s.auth(&ctx.headers) {
            Ok(p) => parties(&p),
            Err(r) => r,
        },
        (Method::POST, ["instances"]) => create_instance(s, ctx, &meta, body).await,
        (Method::GET, ["instances", party, "active"]) => active(s, ctx, &meta, party),
        (_, ["instances", party, guid, tail @ ..]) => {
            if party.parse::<i64>().is_err() || uuid::Uuid::parse_str(guid).is_err() {
                return empty(404);
            }
            let p = match s.auth(&ctx.headers) {
                Ok(p) => p,
                Err(r) => return r,
            };
            if !p.may_access(party, &meta.org) {
                return empty(403);
            }
            let guid = guid.to_ascii_lowercase();
            let ic = IC {
                s,
                ctx,
                meta: &meta,
                p: &p,
                party: party.to_string(),
                guid,
            };
            if ic.get().is_none() {
                return problem(
                    404,
                    "Instance Not Found",
                    format!("Unable to find instance {party}/{}", ic.guid),
                );
            }
            match (m.clone(), tail) {
                (Method::GET, []) => json(200, &app_json(&ic.get().unwrap(), &ctx.base)),
                (Method::DELETE, []) => ic.delete_instance().await,
                (Method::POST, ["complete"]) => ic.complete().await,
                (Method::GET, ["process"]) => {
                    json(200, &process_json(ic.get().unwrap().process.as_ref()))
                }
                (Method::PUT, ["process", "next"]) => ic.process_next(body).await,
                (Method::POST, ["data"]) => match ctx.query.get("dataType") {
                    Some(dt) if !dt.is_empty() => ic.post_data(dt, body, true).await,
                    _ => problem(
                        400,
                        "One or more validation errors occurred.",
                        "The dataType field is required.",
                    ),
                },
                (Method::POST, ["data", "type", dt]) | (Method::POST, ["data", dt]) => {
                    ic.post_data(dt, body, false).await
                }
                (_, ["data", d, rest @ ..]) => {
                    let type_check = match rest {
                        [] => None,
                        ["type", t] => Some(*t),
                        _ => return empty(404),
                    };
                    if uuid::Uuid::parse_str(d).is_err() {
                        return empty(404);
                    }
                    let d = d.to_ascii_lowercase();
                    match m {
                        Method::GET => ic.get_data(&d, type_check).await,
                        Method::PUT => ic.put_data(&d, type_check, body).await,
                        Method::DELETE if type_check.is_none() => ic.delete_data(&d).await,
                        _ => empty(405),
                    }
                }
                _ => empty(404),
            }
        }
        (_, ["v1", "data"]) => stateless(s, ctx, &meta, body).await,
        _ => empty(404),
    }
}

fn parties(p: &Principal) -> Resp {
    match p {
        Principal::User { .. } => {
            let ids = p.parties();
            let top: Vec<Value> = ids
                .iter()
                .filter(|id| {
                    auth::party(**id)
                        .and_then(|x| x.parent)
                        .is_none_or(|parent| !ids.contains(&parent))
                })
                .map(|id| auth::party_json(*id))
                .collect();
            json(200, &top)
        }
        Principal::Org { claims, .. } => {
            let orgno = claims
                .get("urn:altinn:orgNumber")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let v: Vec<Value> = auth::PARTIES
                .iter()
                .filter(|x| x.org_number == Some(orgno))
                .map(|x| auth::party_json(x.party_id))
                .collect();
            json(200, &v)
        }
    }
}

fn active(s: &Shared, ctx: &Ctx, meta: &ApplicationMetadata, party: &str) -> Resp {
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.may_access(party, &meta.org) {
        return empty(403);
    }
    let mut v = s
        .store
        .select(|i| i.app_id == meta.id && i.party_id() == party && i.is_active());
    v.sort_by(|a, b| b.last_changed.cmp(&a.last_changed));
    let list: Vec<Value> = v
        .iter()
        .map(|i| {
            json!({"id": i.id, "presentationTexts": i.presentation_texts, "dueBefore": i.due_before,
                   "lastChanged": i.last_changed, "lastChangedBy": i.last_changed_by})
        })
        .collect();
    json(200, &list)
}

pub fn task(id: &str, flow: i64) -> ProcessElementInfo {
    let (name, kind) = match id {
        "Task_1" => ("Utfylling", "data"),
        _ => ("Bekreftelse", "confirmation"),
    };
    ProcessElementInfo {
        flow: Some(flow),
        started: Some(Utc::now()),
        element_id: Some(id.to_string()),
        name: Some(name.to_string()),
        altinn_task_type: Some(kind.to_string()),
        flow_type: Some("CompleteCurrentMoveToNext".to_string()),
        ..Default::default()
    }
}

fn process_json(p: Option<&ProcessState>) -> Value {
    let mut v = serde_json::to_value(p.cloned().unwrap_or_default()).unwrap_or(json!({}));
    if let Some(ct) = v.get_mut("currentTask") {
        let confirm = ct["altinnTaskType"] == "confirmation";
        ct["actions"] =
            json!({"read": true, "write": !confirm, "confirm": confirm, "complete": true});
        ct["userActions"] = json!([]);
        ct["read"] = json!(true);
        ct["write"] = json!(!confirm);
        ct["elementType"] = json!("Task");
    }
    v["processTasks"] = json!([
        {"elementId": "Task_1", "elementType": "Task", "altinnTaskType": "data"},
        {"elementId": "Task_2", "elementType": "Task", "altinnTaskType": "confirmation"}
    ]);
    v
}

async fn read_small(body: Body) -> Result<bytes::Bytes, Resp> {
    axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|e| {
        problem(
            400,
            "Bad Request",
            format!("Could not read the request body: {e}"),
        )
    })
}

async fn create_instance(s: &Shared, ctx: &Ctx, meta: &ApplicationMetadata, body: Body) -> Resp {
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bytes = match read_small(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ct = header_str(&ctx.headers, "content-type").unwrap_or("");
    let mut template: Option<Value> = None;
    if !bytes.iter().all(|b| b.is_ascii_whitespace()) {
        if ct.contains("json") {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => template = Some(v),
                Err(e) => return text(400, format!("Error reading the instance template: {e}")),
            }
        } else if ct.contains("multipart") {
            return text(
                400,
                "Multipart instantiation is not supported by the emulator",
            );
        }
    }
    let q_party = ctx
        .query
        .get("instanceOwnerPartyId")
        .filter(|v| !v.is_empty());
    let t_party = template
        .as_ref()
        .and_then(|t| t.get("instanceOwner"))
        .and_then(|o| o.get("partyId"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let party = match (q_party, t_party) {
        (Some(_), Some(_)) => {
            return text(
                400,
                "Cannot have both instanceOwnerPartyId in query and instanceOwner.partyId in the body",
            )
        }
        (None, None) => {
            return text(
                400,
                "Cannot instantiate: instanceOwnerPartyId query parameter or instanceOwner in the body is required",
            )
        }
        (Some(q), None) => q.to_string(),
        (None, Some(t)) => t,
    };
    let Ok(pid) = party.parse::<u32>() else {
        return text(400, format!("Invalid party id {party}"));
    };
    if !p.may_access(&party, &meta.org) {
        return empty(403);
    }
    let now = Utc::now();
    let guid = uuid::Uuid::new_v4().to_string();
    let reg = auth::party(pid);
    let mut inst = Instance {
        id: format!("{party}/{guid}"),
        instance_owner: InstanceOwner {
            party_id: party.clone(),
            person_number: reg.and_then(|r| r.ssn).map(str::to_string),
            organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
            ..Default::default()
        },
        app_id: meta.id.clone(),
        org: meta.org.clone(),
        process: Some(ProcessState {
            started: Some(now),
            start_event: Some("StartEvent_1".into()),
            current_task: Some(task("Task_1", 2)),
            ..Default::default()
        }),
        status: InstanceStatus {
            read_status: if matches!(p, Principal::User { .. }) {
                ReadStatus::Read
            } else {
                ReadStatus::Unread
            },
            ..Default::default()
        },
        created: Some(now),
        created_by: Some(p.actor()),
        last_changed: Some(now),
        last_changed_by: Some(p.actor()),
        ..Default::default()
    };
    if let Some(t) = &template {
        inst.due_before = t
            .get("dueBefore")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        inst.visible_after = t
            .get("visibleAfter")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
    }
    // autoCreate form types get their (empty) model at process start.
    for dt in meta.data_types.iter().filter(|d| {
        d.is_form()
            && d.task_id.as_deref() == Some("Task_1")
            && d.app_logic.as_ref().and_then(|l| l.auto_create) == Some(true)
    }) {
        let model = xml::json_to_xml(xml::ROOT, &default_model(pid));
        let e = new_element(&inst, dt, None, "application/xml", model.len() as u64, &p);
        let path = s.store.blob_path(&meta.id, &guid, &e.id);
        if let Err(err) = write_blob(&path, &model) {
            return text(500, err.to_string());
        }
        if let Err(err) = s.store.save_element(&e) {
            return text(500, err.to_string());
        }
        inst.data.push(e);
    }
    if let Err(e) = s.store.save_instance(&inst) {
        return text(500, e.to_string());
    }
    let v = app_json(&inst, &ctx.base);
    let loc = v["selfLinks"]["apps"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    with_location(json(201, &v), &loc)
}

fn write_blob(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension(format!("tmp{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

pub fn default_model(party: u32) -> Value {
    let name = auth::party(party).map(|p| p.name).unwrap_or("");
    json!({"navn": name, "beskrivelse": "", "a": "0", "b": "0", "sum": "0"})
}

fn new_element(
    inst: &Instance,
    dt: &DataType,
    filename: Option<String>,
    content_type: &str,
    size: u64,
    p: &Principal,
) -> DataElement {
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    DataElement {
        blob_storage_path: Some(format!("{}/{}/data/{id}", inst.app_id, inst.guid())),
        id,
        instance_guid: inst.guid().to_string(),
        data_type: dt.id.clone(),
        filename,
        content_type: Some(content_type.to_string()),
        size: size as i64,
        locked: false,
        is_read: Some(true),
        tags: vec![],
        file_scan_result: Some(
            if dt.enable_file_scan == Some(true) {
                "Clean"
            } else {
                "NotApplicable"
            }
            .into(),
        ),
        created: Some(now),
        created_by: Some(p.actor()),
        last_changed: Some(now),
        last_changed_by: Some(p.actor()),
        ..Default::default()
    }
}

/// A refused request, rendered as ProblemDetails, DataPostErrorResponse or plain text.
struct Fail {
    status: u16,
    title: String,
    detail: String,
    issues: Option<Vec<ValidationIssue>>,
    /// Render as the framework's default ProblemDetails (`Conflict()`).
    bare: bool,
}

impl Fail {
    fn new(status: u16, title: &str, detail: impl Into<String>) -> Fail {
        Fail {
            status,
            title: title.into(),
            detail: detail.into(),
            issues: None,
            bare: false,
        }
    }
    fn upload(v: RuleViolation) -> Fail {
        Fail {
            status: 400,
            title: "File validation failed".into(),
            detail: "Common checks failed".into(),
            issues: Some(vec![ValidationIssue {
                severity: 1,
                code: Some(v.code.to_string()),
                description: Some(v.description),
                source: Some("DataRestrictionValidation".into()),
                ..Default::default()
            }]),
            bare: false,
        }
    }
    /// `text400`: 400s as plain text (obsolete POST, binary PUT).
    fn render(self, text400: bool) -> Resp {
        if text400 && self.status == 400 {
            let msg = match &self.issues {
                Some(i) => i
                    .iter()
                    .filter_map(|x| x.description.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
                None => self.detail,
            };
            return text(400, msg);
        }
        if self.bare {
            return default_problem(self.status);
        }
        if self.status == 500 && self.title.is_empty() {
            return empty(500);
        }
        problem_json(&ProblemDetails {
            title: Some(self.title),
            status: Some(self.status),
            detail: Some(self.detail),
            upload_validation_issues: self.issues,
            ..Default::default()
        })
    }
}

/// The body length: Content-Length, or 0 when the request has neither Content-Length nor
/// Transfer-Encoding (an empty body). None = chunked, which the app cannot read (500).
fn content_length(ctx: &Ctx) -> Option<u64> {
    match header_str(&ctx.headers, "content-length") {
        Some(v) => v.trim().parse().ok(),
        None if ctx.headers.get("transfer-encoding").is_none() => Some(0),
        None => None,
    }
}

/// Stream the request body to a temp file, never holding it in memory. Returns the byte count.
async fn spool(s: &Shared, body: Body, limit: u64) -> Result<(std::path::PathBuf, u64), Fail> {
    let tmp = s.store.tmp_path();
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| Fail::new(500, "Platform error", e.to_string()))?;
    let mut n = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(Fail::new(
                    400,
                    "Bad Request",
                    format!("Error reading the body: {e}"),
                ));
            }
        };
        n += chunk.len() as u64;
        if n > limit {
            drop(f);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Fail::new(
                413,
                "Request too large",
                "The request body is too large",
            ));
        }
        if let Err(e) = f.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Fail::new(500, "Platform error", e.to_string()));
        }
    }
    if let Err(e) = f.flush().await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Fail::new(500, "Platform error", e.to_string()));
    }
    Ok((tmp, n))
}

/// Parse form data by content type; returns the XML to store.
fn parse_form(ct: Option<&str>, bytes: &[u8]) -> Result<(Vec<u8>, Value), Fail> {
    if !rules::form_content_type_ok(ct) {
        return Err(Fail::new(
            415,
            "Unsupported content type",
            format!("Unsupported content type {}", ct.unwrap_or("")),
        ));
    }
    let is_json = ct.is_some_and(|c| c.to_ascii_lowercase().contains("json"));
    if is_json {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| {
            Fail::new(
                400,
                "Bad Request",
                format!("Failed to deserialize JSON: {e}"),
            )
        })?;
        if !v.is_object() {
            return Err(Fail::new(
                400,
                "Bad Request",
                "Failed to deserialize JSON: the model must be a JSON object",
            ));
        }
        Ok((xml::json_to_xml(xml::ROOT, &v), v))
    } else {
        let (_, v) = xml::xml_to_json(bytes).map_err(|e| Fail::new(400, "Bad Request", e))?;
        Ok((bytes.to_vec(), v))
    }
}

/// Storage URL-decodes the filename (`+` → space, `%xx` decoded).
fn storage_filename(name: &str) -> String {
    let d = form_decode(name);
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

fn contributors_ok(dt: &DataType, p: &Principal) -> bool {
    let list = match (&dt.allowed_contributers, &dt.allowed_contributors) {
        (Some(l), _) if !l.is_empty() => l,
        (_, Some(l)) if !l.is_empty() => l,
        _ => return true,
    };
    match p {
        Principal::Org { org, claims, .. } => {
            let orgno = claims
                .get("urn:altinn:orgNumber")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            list.iter().any(|c| {
                c.eq_ignore_ascii_case(&format!("org:{org}"))
                    || c.eq_ignore_ascii_case(&format!("orgno:{orgno}"))
                    || c == "app:owned"
            })
        }
        _ => false,
    }
}

/// Instance context of one request.
struct IC<'a> {
    s: &'a Shared,
    ctx: &'a Ctx,
    meta: &'a ApplicationMetadata,
    p: &'a Principal,
    party: String,
    guid: String,
}

impl IC<'_> {
    fn get(&self) -> Option<Instance> {
        self.s
            .store
            .get(&self.guid)
            .filter(|i| i.party_id() == self.party && i.app_id == self.meta.id)
    }

    fn is_owner(&self) -> bool {
        self.p.org() == Some(self.meta.org.as_str())
    }

    fn touch(&self, inst: &mut Instance) {
        inst.last_changed = Some(Utc::now());
        inst.last_changed_by = Some(self.p.actor());
    }

    fn save(&self, inst: &Instance) -> Result<(), Resp> {
        self.s
            .store
            .save_instance(inst)
            .map_err(|e| text(500, e.to_string()))
    }

    async fn delete_instance(&self) -> Resp {
        let hard = ctx_bool(self.ctx, "hard");
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return empty(404);
        };
        if let (Some(days), Some(arch)) = (
            self.meta
                .prevent_instance_deletion_for_days
                .filter(|d| *d > 0),
            inst.status.archived,
        ) {
            if arch + chrono::Duration::days(days) > Utc::now() {
                return text(
                    403,
                    format!(
                        "Instance {} cannot be deleted yet due to application restrictions.",
                        inst.id
                    ),
                );
            }
        }
        let now = Utc::now();
        inst.status.is_soft_deleted = true;
        inst.status.soft_deleted.get_or_insert(now);
        if hard {
            inst.status.is_hard_deleted = true;
            inst.status.hard_deleted = Some(now);
        }
        self.touch(&mut inst);
        if let Err(r) = self.save(&inst) {
            return r;
        }
        json(200, &app_json(&inst, &self.ctx.base))
    }

    async fn complete(&self) -> Resp {
        let Some(org) = self.p.org().map(str::to_string) else {
            return empty(403);
        };
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return empty(404);
        };
        if !inst
            .complete_confirmations
            .iter()
            .any(|c| c.stakeholder_id == org)
        {
            inst.complete_confirmations.push(CompleteConfirmation {
                stakeholder_id: org,
                confirmed_on: Some(Utc::now()),
            });
            self.touch(&mut inst);
            if let Err(r) = self.save(&inst) {
                return r;
            }
        }
        json(200, &app_json(&inst, &self.ctx.base))
    }

    async fn process_next(&self, body: Body) -> Resp {
        let bytes = match read_small(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if !bytes.iter().all(|b| b.is_ascii_whitespace())
            && serde_json::from_slice::<Value>(&bytes).is_err()
        {
            return problem(400, "Bad Request", "Invalid ProcessNext body");
        }
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return empty(404);
        };
        let Some(process) = inst.process.clone() else {
            return problem(409, "Conflict", "Process is not started. Use start!");
        };
        if process.ended.is_some() {
            return problem(409, "Conflict", "Process is ended.");
        }
        let Some(cur) = process.current_task.clone() else {
            return problem(409, "Conflict", "Process is not started. Use start!");
        };
        let cur_id = cur.element_id.clone().unwrap_or_default();
        // Validate counts of the task's data types.
        let mut issues = Vec::new();
        for dt in self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.as_deref() == Some(cur_id.as_str()))
        {
            let n = inst.data.iter().filter(|e| e.data_type == dt.id).count() as i64;
            if dt.min_count > 0 && n < dt.min_count {
                issues.push(json!({"severity": 1, "dataElementId": null, "field": null,
                    "code": "TooFewDataElementsOfType", "description": dt.id, "source": "Required"}));
            }
            if dt.max_count > 0 && n > dt.max_count {
                issues.push(json!({"severity": 1, "dataElementId": null, "field": null,
                    "code": "TooManyDataElementsOfType", "description": dt.id, "source": "Required"}));
            }
        }
        if !issues.is_empty() {
            let mut p = ProblemDetails {
                title: Some("Validation failed for task".into()),
                status: Some(409),
                detail: Some(format!(
                    "{} validation errors found for task {cur_id}",
                    issues.len()
                )),
                ..Default::default()
            };
            p.extra
                .insert("validationIssues".into(), Value::Array(issues));
            return problem_json(&p);
        }
        // Lock the elements of the ending task.
        let task_types: Vec<String> = self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.as_deref() == Some(cur_id.as_str()))
            .map(|d| d.id.clone())
            .collect();
        for e in inst.data.iter_mut() {
            if task_types.contains(&e.data_type) && !e.locked {
                e.locked = true;
                if let Err(err) = self.s.store.save_element(e) {
                    return text(500, err.to_string());
                }
            }
        }
        let now = Utc::now();
        let mut process = process;
        if cur_id == "Task_1" {
            process.current_task = Some(task("Task_2", cur.flow.unwrap_or(2) + 1));
        } else {
            process.current_task = None;
            process.ended = Some(now);
            process.end_event = Some("EndEvent_1".into());
            inst.status.is_archived = true;
            inst.status.archived = Some(now);
        }
        inst.process = Some(process);
        self.touch(&mut inst);
        if let Err(r) = self.save(&inst) {
            return r;
        }
        json(200, &process_json(inst.process.as_ref()))
    }

    fn check_update(&self, inst: &Instance, dt: &DataType) -> Result<(), Fail> {
        if dt.id == "ref-data-as-pdf" {
            return Err(Fail::new(
                403,
                "Forbidden",
                "Cannot write to the pdf data type",
            ));
        }
        if !inst.is_active() {
            return Err(Fail::new(
                409,
                "Instance Not Active",
                format!(
                    "Cannot update data element of archived or deleted instance {}",
                    inst.id
                ),
            ));
        }
        if !contributors_ok(dt, self.p) {
            return Err(Fail::new(
                403,
                "Forbidden",
                "User is not a valid contributor to the data type",
            ));
        }
        Ok(())
    }

    async fn post_data(&self, dt_id: &str, body: Body, obsolete: bool) -> Resp {
        let mut body = Some(body);
        let r = self.post_data_inner(dt_id, &mut body, obsolete).await;
        drain(body).await;
        match r {
            Ok(r) => r,
            Err(f) => f.render(obsolete),
        }
    }

    async fn post_data_inner(
        &self,
        dt_id: &str,
        body: &mut Option<Body>,
        obsolete: bool,
    ) -> Result<Resp, Fail> {
        let cl = content_length(self.ctx);
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err(Fail::new(
                413,
                "Request too large",
                "Request body too large",
            ));
        }
        let inst = self
            .get()
            .ok_or_else(|| Fail::new(404, "Instance Not Found", ""))?;
        let Some(dt) = self.meta.data_type(dt_id).cloned() else {
            return Err(Fail::new(
                400,
                "Data Type Not Found",
                format!("Element type {dt_id} not allowed for instance {}.", inst.id),
            ));
        };
        self.check_update(&inst, &dt)?;
        let count_of = |i: &Instance| i.data.iter().filter(|e| e.data_type == dt.id).count();
        if !rules::count_allows_one_more(&dt, count_of(&inst)) {
            return Err(Fail::new(
                409,
                "Max Count Exceeded",
                format!(
                    "Cannot create more than {} data elements of type {}",
                    dt.max_count, dt.id
                ),
            ));
        }
        if dt.app_logic.as_ref().and_then(|l| l.disallow_user_create) == Some(true)
            && !self.is_owner()
        {
            return Err(Fail::new(
                400,
                "User Create Disallowed",
                format!("User cannot create data elements of type {}", dt.id),
            ));
        }
        let ct = header_str(&self.ctx.headers, "content-type").map(str::to_string);
        let (tmp, size, filename, content_type) = if dt.is_form() {
            if inst
                .process
                .as_ref()
                .and_then(|p| p.current_task.as_ref())
                .is_none()
            {
                return Err(Fail::new(
                    409,
                    "No current task",
                    "The instance has no current task",
                ));
            }
            let bytes = read_small(body.take().unwrap_or_default())
                .await
                .map_err(|_| Fail::new(400, "Bad Request", "Could not read the body"))?;
            let (xml, _) = parse_form(ct.as_deref(), &bytes)?;
            let tmp = self.s.store.tmp_path();
            std::fs::write(&tmp, &xml)
                .map_err(|e| Fail::new(500, "Platform error", e.to_string()))?;
            (tmp, xml.len() as u64, None, "application/xml".to_string())
        } else {
            let name = self.check_binary(&dt, cl, ct.as_deref())?;
            if inst
                .process
                .as_ref()
                .and_then(|p| p.current_task.as_ref())
                .is_none()
            {
                return Err(Fail::new(
                    409,
                    "No current task",
                    "The instance has no current task",
                ));
            }
            let (tmp, n) = self
                .spool_binary(&dt, cl, body.take().unwrap_or_default())
                .await?;
            (
                tmp,
                n,
                Some(storage_filename(&name)),
                ct.unwrap_or_default(),
            )
        };
        // Commit under the instance lock.
        let _g = self.s.store.lock(&self.guid).await;
        let cleanup = |f: Fail| {
            let _ = std::fs::remove_file(&tmp);
            f
        };
        let mut inst = self
            .get()
            .ok_or_else(|| cleanup(Fail::new(404, "Instance Not Found", "")))?;
        if !inst.is_active() {
            return Err(cleanup(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            )));
        }
        if !rules::count_allows_one_more(&dt, count_of(&inst)) {
            return Err(cleanup(Fail::new(
                409,
                "Max Count Exceeded",
                "Max count exceeded",
            )));
        }
        let e = new_element(&inst, &dt, filename, &content_type, size, self.p);
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&tmp, &path)?;
            self.s.store.save_element(&e)
        })();
        if let Err(err) = commit {
            return Err(cleanup(Fail::new(500, "Platform error", err.to_string())));
        }
        inst.data.push(e.clone());
        self.touch(&mut inst);
        inst.last_changed = e.last_changed;
        self.save(&inst)
            .map_err(|_| Fail::new(500, "Platform error", "could not save instance"))?;
        let mut el = e;
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        if obsolete {
            let loc = el
                .self_links
                .as_ref()
                .and_then(|l| l.apps.clone())
                .unwrap_or_default();
            Ok(with_location(json(201, &app_element_json(&el)), &loc))
        } else {
            Ok(json(
                200,
                &json!({
                    "newDataElementId": el.id,
                    "instance": app_json(&inst, &self.ctx.base),
                    "validationIssues": [],
                    "newDataModels": [],
                }),
            ))
        }
    }

    /// DataRestrictionValidation (altinn-api.md §2.1) and the header checks after it.
    fn check_binary(
        &self,
        dt: &DataType,
        cl: Option<u64>,
        ct: Option<&str>,
    ) -> Result<String, Fail> {
        let Some(cd) = header_str(&self.ctx.headers, "content-disposition") else {
            return Err(Fail::upload(RuleViolation {
                code: "ContentTypeNotAllowed",
                description: "Invalid data provided. Error: Conent-Disposition header containing 'filename' must be included in request.".into(),
            }));
        };
        if let Some(n) = cl {
            rules::check_size(dt, n).map_err(Fail::upload)?;
        }
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
        let Some(n) = cl else {
            let mut f = Fail::new(500, "", "");
            f.title.clear();
            return Err(f);
        };
        if n == 0 {
            return Err(Fail::new(
                400,
                "Invalid data",
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        Ok(name)
    }

    async fn spool_binary(
        &self,
        dt: &DataType,
        cl: Option<u64>,
        body: Body,
    ) -> Result<(std::path::PathBuf, u64), Fail> {
        let limit = dt
            .max_size_bytes()
            .unwrap_or(rules::MAX_REQUEST_BYTES)
            .min(rules::MAX_REQUEST_BYTES)
            .max(cl.unwrap_or(0).min(rules::MAX_REQUEST_BYTES));
        let (tmp, n) = spool(self.s, body, limit).await?;
        if dt.max_size_bytes().is_some_and(|m| n > m) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                413,
                "Request too large",
                "The request body is too large",
            ));
        }
        if cl.is_some_and(|c| c != n) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                400,
                "Bad Request",
                "Body length does not match Content-Length",
            ));
        }
        if n == 0 {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                400,
                "Invalid data",
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        Ok((tmp, n))
    }

    fn element(
        &self,
        d: &str,
        type_check: Option<&str>,
    ) -> Result<(Instance, DataElement, DataType), Fail> {
        let inst = self
            .get()
            .ok_or_else(|| Fail::new(404, "Instance Not Found", ""))?;
        let Some(e) = inst.data.iter().find(|e| e.id == d).cloned() else {
            return Err(Fail::new(
                404,
                "Data Element Not Found",
                format!("Did not find data element {d}"),
            ));
        };
        let Some(dt) = self.meta.data_type(&e.data_type).cloned() else {
            return Err(Fail::new(
                400,
                "Data Type Not Found",
                format!(
                    "Data type {} not found in application metadata",
                    e.data_type
                ),
            ));
        };
        if let Some(t) = type_check {
            if t != e.data_type {
                return Err(Fail::new(
                    400,
                    "Bad Request",
                    format!("Data element {d} is of type {}, not {t}", e.data_type),
                ));
            }
        }
        Ok((inst, e, dt))
    }

    async fn get_data(&self, d: &str, type_check: Option<&str>) -> Resp {
        let (inst, e, dt) = match self.element(d, type_check) {
            Ok(x) => x,
            Err(f) => return f.render(type_check.is_some()),
        };
        if !dt.is_form() {
            return blob_response(self.s, &inst, &e).await;
        }
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => return default_problem(404),
        };
        let accept = header_str(&self.ctx.headers, "accept")
            .unwrap_or("")
            .to_ascii_lowercase();
        let wants_xml = accept.contains("xml")
            && !(accept.contains("json") && accept.find("json") < accept.find("xml"));
        if wants_xml {
            return axum::response::Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(Body::from(bytes))
                .unwrap();
        }
        match xml::xml_to_json(&bytes) {
            Ok((_, v)) => json(200, &v),
            Err(err) => problem(500, "Internal Server Error", err),
        }
    }

    async fn put_data(&self, d: &str, type_check: Option<&str>, body: Body) -> Resp {
        let mut body = Some(body);
        let r = self.put_data_inner(d, type_check, &mut body).await;
        drain(body).await;
        match r {
            Ok(r) => r,
            Err((f, text400)) => f.render(text400),
        }
    }

    async fn put_data_inner(
        &self,
        d: &str,
        type_check: Option<&str>,
        body: &mut Option<Body>,
    ) -> Result<Resp, (Fail, bool)> {
        let cl = content_length(self.ctx);
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err((Fail::new(413, "Request too large", ""), false));
        }
        let (inst, e, dt) = self
            .element(d, type_check)
            .map_err(|f| (f, type_check.is_some()))?;
        self.check_update(&inst, &dt).map_err(|f| (f, false))?;
        let ct = header_str(&self.ctx.headers, "content-type").map(str::to_string);
        let locked = |e: &DataElement| -> Result<(), (Fail, bool)> {
            if e.locked {
                let mut f = Fail::new(
                    409,
                    "Conflict",
                    format!("Data element {} is locked and cannot be updated", e.id),
                );
                f.bare = true;
                return Err((f, false));
            }
            Ok(())
        };
        let (tmp, size, filename, content_type) = if dt.is_form() {
            if inst
                .process
                .as_ref()
                .and_then(|p| p.current_task.as_ref())
                .is_none()
            {
                return Err((
                    Fail::new(409, "No current task", "The instance has no current task"),
                    false,
                ));
            }
            let bytes = read_small(body.take().unwrap_or_default())
                .await
                .map_err(|_| {
                    (
                        Fail::new(400, "Bad Request", "Could not read the body"),
                        false,
                    )
                })?;
            let (xml, _) = parse_form(ct.as_deref(), &bytes).map_err(|f| (f, false))?;
            locked(&e)?;
            let tmp = self.s.store.tmp_path();
            std::fs::write(&tmp, &xml)
                .map_err(|err| (Fail::new(500, "Platform error", err.to_string()), false))?;
            (
                tmp,
                xml.len() as u64,
                e.filename.clone(),
                "application/xml".to_string(),
            )
        } else {
            let name = match self.check_binary(&dt, cl, ct.as_deref()) {
                Ok(n) => n,
                Err(f) if f.status == 400 && f.title == "Invalid data" => String::new(),
                Err(f) => return Err((f, true)),
            };
            locked(&e)?;
            if cl == Some(0) {
                // Storage writes nothing and answers 422 (never PUT an empty file).
                return Err((
                    Fail::new(
                        422,
                        "Unprocessable Entity",
                        "Could not process attached file",
                    ),
                    false,
                ));
            }
            let (tmp, n) = match self
                .spool_binary(&dt, cl, body.take().unwrap_or_default())
                .await
            {
                Ok(x) => x,
                Err(f) if f.status == 413 => {
                    return Err((
                        Fail::new(400, "Bad Request", "The request body is too large"),
                        true,
                    ))
                }
                Err(f) if f.title == "Invalid data" => {
                    return Err((
                        Fail::new(
                            422,
                            "Unprocessable Entity",
                            "Could not process attached file",
                        ),
                        false,
                    ))
                }
                Err(f) => return Err((f, true)),
            };
            (
                tmp,
                n,
                Some(storage_filename(&name)),
                ct.unwrap_or_default(),
            )
        };
        let _g = self.s.store.lock(&self.guid).await;
        let cleanup = |f: Fail| {
            let _ = std::fs::remove_file(&tmp);
            (f, false)
        };
        let mut inst = self
            .get()
            .ok_or_else(|| cleanup(Fail::new(404, "Instance Not Found", "")))?;
        if !inst.is_active() {
            return Err(cleanup(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            )));
        }
        let Some(idx) = inst.data.iter().position(|x| x.id == d) else {
            return Err(cleanup(Fail::new(404, "Data Element Not Found", "")));
        };
        if inst.data[idx].locked {
            let mut f = Fail::new(409, "Conflict", "locked");
            f.bare = true;
            return Err(cleanup(f));
        }
        let mut el = inst.data[idx].clone();
        el.filename = filename;
        el.content_type = Some(content_type);
        el.size = size as i64;
        el.last_changed = Some(Utc::now());
        el.last_changed_by = Some(self.p.actor());
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &el.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&tmp, &path)?;
            self.s.store.save_element(&el)
        })();
        if let Err(err) = commit {
            return Err(cleanup(Fail::new(500, "Platform error", err.to_string())));
        }
        inst.data[idx] = el.clone();
        self.touch(&mut inst);
        inst.last_changed = el.last_changed;
        self.save(&inst).map_err(|_| {
            (
                Fail::new(500, "Platform error", "could not save instance"),
                false,
            )
        })?;
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        let loc = el
            .self_links
            .as_ref()
            .and_then(|l| l.apps.clone())
            .unwrap_or_default();
        Ok(with_location(json(201, &app_element_json(&el)), &loc))
    }

    async fn delete_data(&self, d: &str) -> Resp {
        let (inst, _e, dt) = match self.element(d, None) {
            Ok(x) => x,
            Err(f) => return f.render(false),
        };
        if let Err(f) = self.check_update(&inst, &dt) {
            return f.render(false);
        }
        if dt.is_main_form() {
            return problem(
                400,
                "Cannot Delete main data element",
                "Cannot delete the main data element",
            );
        }
        if dt.app_logic.as_ref().and_then(|l| l.disallow_user_delete) == Some(true)
            && !self.is_owner()
        {
            return problem(
                400,
                "User Delete Disallowed",
                format!("User cannot delete data elements of type {}", dt.id),
            );
        }
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return default_problem(404);
        };
        let Some(idx) = inst.data.iter().position(|x| x.id == d) else {
            return problem(404, "Data Element Not Found", "");
        };
        inst.data.remove(idx);
        self.s
            .store
            .remove_element_files(&inst.app_id, &self.guid, d);
        self.touch(&mut inst);
        if let Err(r) = self.save(&inst) {
            return r;
        }
        json(
            200,
            &json!({"instance": app_json(&inst, &self.ctx.base), "validationIssues": [], "newDataModels": []}),
        )
    }
}

/// Read and discard an unread request body (bounded), so the client sees our answer rather
/// than a reset while it is still sending.
async fn drain(body: Option<Body>) {
    let Some(body) = body else { return };
    let mut stream = body.into_data_stream();
    let mut n = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(c)) = stream.next().await {
            n += c.len();
            if n > 64 * 1024 * 1024 {
                break;
            }
        }
    })
    .await;
}

fn ctx_bool(ctx: &Ctx, k: &str) -> bool {
    ctx.query
        .get(k)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

// ---- stateless ---------------------------------------------------------------------------

/// The app's "calculation": `sum` = `a` + `b` when both are numbers; `calculated` = "true".
pub fn calculate(v: &mut Value) {
    let Value::Object(m) = v else { return };
    let num = |m: &Map<String, Value>, k: &str| -> Option<f64> {
        match m.get(k)? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (num(m, "a"), num(m, "b")) {
        let sum = a + b;
        let s = if sum.fract() == 0.0 && sum.abs() < 1e15 {
            format!("{}", sum as i64)
        } else {
            sum.to_string()
        };
        m.insert("sum".into(), Value::String(s));
    }
    m.insert("calculated".into(), Value::String("true".into()));
}

async fn stateless(s: &Shared, ctx: &Ctx, meta: &ApplicationMetadata, body: Body) -> Resp {
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let m = ctx.method.clone();
    if !matches!(m, Method::GET | Method::POST | Method::PUT)
        || (s.cfg.seed_stateless && m == Method::GET)
    {
        return empty(405);
    }
    let Some(dt_id) = ctx.query.get("dataType").filter(|v| !v.is_empty()) else {
        return problem(
            400,
            "Bad Request",
            "Invalid dataType  provided. Please provide a valid dataType as query parameter.",
        );
    };
    let Some(dt) = meta.data_type(dt_id).filter(|d| d.is_form()) else {
        return problem(400, "Bad Request", format!("Invalid dataType {dt_id} provided. Please provide a valid dataType as query parameter."));
    };
    let _ = dt;
    // party header: partyid:N, person:SSN, org:ORGNR.
    let party: u32 = match header_str(&ctx.headers, "party") {
        Some(h) => {
            let parts: Vec<&str> = h.split(':').collect();
            if parts.len() != 2 || h.contains(',') {
                return problem(400, "Bad Request", format!("Invalid party header: {h}"));
            }
            let (kind, val) = (parts[0].trim().to_ascii_lowercase(), parts[1].trim());
            let found = match kind.as_str() {
                "partyid" => val.parse::<u32>().ok(),
                "person" => auth::PARTIES
                    .iter()
                    .find(|x| x.ssn == Some(val))
                    .map(|x| x.party_id),
                "org" => auth::PARTIES
                    .iter()
                    .find(|x| x.org_number == Some(val))
                    .map(|x| x.party_id),
                _ => None,
            };
            let Some(pid) = found else {
                return problem(400, "Bad Request", format!("Invalid party header: {h}"));
            };
            if !p.may_access(&pid.to_string(), &meta.org) {
                return empty(403);
            }
            pid
        }
        None => match &p {
            Principal::User { party_id, .. } => *party_id,
            Principal::Org { .. } => 0,
        },
    };
    let bytes = match read_small(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let empty_body = bytes.iter().all(|b| b.is_ascii_whitespace());
    let creates = if s.cfg.seed_stateless {
        m == Method::POST
    } else {
        m == Method::GET || (m == Method::POST && empty_body)
    };
    let mut model = if creates {
        let mut v = default_model(party);
        if let Some(pf) = ctx.query.get("prefill").filter(|v| !v.is_empty()) {
            match serde_json::from_str::<Value>(pf) {
                Ok(Value::Object(pm)) => {
                    for (k, val) in pm {
                        let val = match val {
                            Value::String(s) => Value::String(s),
                            other => Value::String(other.to_string()),
                        };
                        v[k] = val;
                    }
                }
                _ => {
                    return problem(
                        400,
                        "Bad Request",
                        "prefill must be a JSON object of field: value",
                    )
                }
            }
        }
        v
    } else {
        if empty_body {
            return problem(
                400,
                "Bad Request",
                "The request body is empty; send the model as XML or JSON",
            );
        }
        let ct = header_str(&ctx.headers, "content-type");
        let ct = match ct {
            Some(c) => Some(c),
            None if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
                Some("application/json")
            }
            None => None,
        };
        match parse_form(ct, &bytes) {
            Ok((_, v)) => v,
            Err(f) => return f.render(false),
        }
    };
    calculate(&mut model);
    let accept = header_str(&ctx.headers, "accept")
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("xml") && !accept.contains("json") {
        return axum::response::Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(Body::from(xml::json_to_xml(xml::ROOT, &model)))
            .unwrap();
    }
    json(200, &model)
}
