//! The App API's instance operations without HTTP (altinn-api.md §1.1–§1.2): who may reach an
//! instance, create (with the auto-created forms), delete, confirm (`complete`), move the
//! process on, and read form data. Each answer is the model or the refusal's wire form.

use super::app_model::default_model;
use super::data_write::{new_element, InstanceScope};
use super::instantiate::{self, OwnerRefusal};
use super::process::{self, NextRefusal};
use super::refusal::Wire;
use super::storage::{self, Blob};
use crate::altinn::model::{
    ApplicationMetadata, CompleteConfirmation, Instance, ProblemDetails, ProcessState,
};
use crate::emulator::auth::Principal;
use crate::emulator::store::Store;
use crate::emulator::xml;
use chrono::Utc;
use serde_json::Value;

/// `instances/{party}/{guid}/...` before the operation: route constraints, access, existence.
/// The writer for the instance, which exists.
pub fn reach<'a>(
    store: &'a Store,
    meta: &'a ApplicationMetadata,
    who: &'a Principal,
    (party, guid): (&str, &str),
) -> Result<InstanceScope<'a>, Wire> {
    if party.parse::<i64>().is_err() || uuid::Uuid::parse_str(guid).is_err() {
        return Err(Wire::empty(404));
    }
    if !who.may_access(party, &meta.org) {
        return Err(Wire::empty(403));
    }
    let w = InstanceScope {
        store,
        meta,
        who,
        party: party.to_string(),
        guid: guid.to_ascii_lowercase(),
    };
    if w.get().is_none() {
        let msg = format!("Unable to find instance {party}/{}", w.guid);
        return Err(Wire::titled(404, "Instance Not Found", msg));
    }
    Ok(w)
}

fn owner_refused(r: OwnerRefusal) -> Wire {
    match r {
        OwnerRefusal::Both => Wire::text(
            400,
            "Cannot have both instanceOwnerPartyId in query and instanceOwner.partyId in the body",
        ),
        OwnerRefusal::Neither => Wire::text(
            400,
            "Cannot instantiate: instanceOwnerPartyId query parameter or instanceOwner in the body is required",
        ),
        OwnerRefusal::Invalid(party) => Wire::text(400, format!("Invalid party id {party}")),
    }
}

fn io_failed(e: std::io::Error) -> Wire {
    Wire::text(500, e.to_string())
}

fn write_blob(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let tmp = path.with_extension(format!("tmp{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Write the empty model of every auto-created form type.
fn auto_create_forms(
    store: &Store,
    meta: &ApplicationMetadata,
    inst: &mut Instance,
    who: &Principal,
) -> std::io::Result<()> {
    let party: u32 = inst.party_id().parse().unwrap_or(0);
    for dt in instantiate::auto_created(meta) {
        let model = xml::json_to_xml(xml::ROOT, &default_model(party));
        let e = new_element(inst, dt, None, "application/xml", model.len() as u64, who);
        write_blob(&store.blob_path(&meta.id, inst.guid(), &e.id), &model)?;
        store.save_element(&e)?;
        inst.data.push(e);
    }
    Ok(())
}

/// `POST instances?instanceOwnerPartyId=` with an optional JSON template.
pub fn create(
    store: &Store,
    meta: &ApplicationMetadata,
    who: &Principal,
    party_query: Option<&str>,
    template: Option<&Value>,
) -> Result<Instance, Wire> {
    let party = instantiate::owner_party(party_query, template).map_err(owner_refused)?;
    if !who.may_access(&party.to_string(), &meta.org) {
        return Err(Wire::empty(403));
    }
    let mut inst = instantiate::new_instance(meta, party, who, template);
    auto_create_forms(store, meta, &mut inst, who).map_err(io_failed)?;
    store.save_instance(&inst).map_err(io_failed)?;
    Ok(inst)
}

fn gone() -> Wire {
    Wire::empty(404)
}

impl InstanceScope<'_> {
    fn save_or_500(&self, inst: &Instance) -> Result<(), Wire> {
        self.store.save_instance(inst).map_err(io_failed)
    }

    /// `DELETE instances/{p}/{g}?hard=`: soft (or hard) delete, unless the app keeps archived
    /// instances for some days.
    pub async fn delete_instance(&self, hard: bool) -> Result<Instance, Wire> {
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or_else(gone)?;
        let keep = self
            .meta
            .prevent_instance_deletion_for_days
            .filter(|d| *d > 0);
        if let (Some(days), Some(arch)) = (keep, inst.status.archived) {
            if arch + chrono::Duration::days(days) > Utc::now() {
                let msg = format!(
                    "Instance {} cannot be deleted yet due to application restrictions.",
                    inst.id
                );
                return Err(Wire::text(403, msg));
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
        self.save_or_500(&inst)?;
        Ok(inst)
    }

    /// `POST .../complete`: the caller's org confirms (once).
    pub async fn complete(&self) -> Result<Instance, Wire> {
        let Some(org) = self.who.org().map(str::to_string) else {
            return Err(Wire::empty(403));
        };
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or_else(gone)?;
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
            self.save_or_500(&inst)?;
        }
        Ok(inst)
    }

    /// `PUT .../process/next`: the next task (locking the ending task's elements), or the end.
    pub async fn process_next(&self) -> Result<Instance, Wire> {
        let _g = self.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or_else(gone)?;
        let now = Utc::now();
        let (process, ended) = process::next_state(self.meta, &inst, now).map_err(next_refused)?;
        self.lock_task_elements(&mut inst).map_err(io_failed)?;
        if ended {
            inst.status.is_archived = true;
            inst.status.archived = Some(now);
        }
        inst.process = Some(process);
        self.touch(&mut inst);
        self.save_or_500(&inst)?;
        Ok(inst)
    }

    /// The ending task's elements are locked (app-lib's ProcessTaskDataLocker).
    fn lock_task_elements(&self, inst: &mut Instance) -> std::io::Result<()> {
        let cur = inst
            .process
            .as_ref()
            .and_then(|p| p.current_task.as_ref())
            .and_then(|t| t.element_id.clone());
        let task_types: Vec<&str> = self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.is_some() && d.task_id == cur)
            .map(|d| d.id.as_str())
            .collect();
        for e in inst.data.iter_mut() {
            if task_types.contains(&e.data_type.as_str()) && !e.locked {
                e.locked = true;
                self.store.save_element(e)?;
            }
        }
        Ok(())
    }

    /// App `GET data/{d}`: a form as XML or as its JSON model, a binary element's blob.
    pub async fn read_data(
        &self,
        d: &str,
        type_check: Option<&str>,
        accept: &str,
    ) -> Result<Read, Wire> {
        let (inst, e, dt) = self
            .element(d, type_check)
            .map_err(|f| f.as_text(type_check.is_some()).wire())?;
        if !dt.is_form() {
            let blob = storage::blob(self.store, &inst, &e).await?;
            return Ok(Read::Blob(blob, Box::new(e)));
        }
        let path = self.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let stored = std::fs::read(&path).ok();
        let Some(bytes) = stored.or_else(|| self.store.synthetic_blob(&e.id)) else {
            return Err(Wire::default_problem(404));
        };
        let accept = accept.to_ascii_lowercase();
        let wants_xml = accept.contains("xml")
            && !(accept.contains("json") && accept.find("json") < accept.find("xml"));
        if wants_xml {
            return Ok(Read::Xml(bytes));
        }
        match xml::xml_to_json(&bytes) {
            Ok((_, v)) => Ok(Read::Json(v)),
            Err(err) => Err(Wire::titled(500, "Internal Server Error", err)),
        }
    }
}

/// What the App API answers for an element's data.
pub enum Read {
    Xml(Vec<u8>),
    Json(Value),
    Blob(Blob, Box<crate::altinn::model::DataElement>),
}

fn next_refused(r: NextRefusal) -> Wire {
    match r {
        NextRefusal::NotStarted => {
            Wire::titled(409, "Conflict", "Process is not started. Use start!")
        }
        NextRefusal::Ended => Wire::titled(409, "Conflict", "Process is ended."),
        NextRefusal::Invalid { task, issues } => {
            let mut p = ProblemDetails {
                title: Some("Validation failed for task".into()),
                status: Some(409),
                detail: Some(format!(
                    "{} validation errors found for task {task}",
                    issues.len()
                )),
                ..Default::default()
            };
            p.extra
                .insert("validationIssues".into(), Value::Array(issues));
            Wire::problem(&p)
        }
    }
}

/// The process as the App API shows it (`GET process`, the answer of `process/next`).
pub fn process_json(p: Option<&ProcessState>) -> Value {
    use serde_json::json;
    let mut v = serde_json::to_value(p.cloned().unwrap_or_default()).unwrap_or(json!({}));
    crate::emulator::server::app_process_json(&mut v);
    if let Some(ct) = v.get_mut("currentTask").filter(|t| t.is_object()) {
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

/// `GET api/v1/parties`: the parties the caller may act for (a user's top-level ones, an
/// org's by organisation number).
pub fn parties(p: &Principal) -> Vec<Value> {
    use crate::emulator::auth;
    match p {
        Principal::User { .. } => {
            let ids = p.parties();
            ids.iter()
                .filter(|id| {
                    auth::party(**id)
                        .and_then(|x| x.parent)
                        .is_none_or(|parent| !ids.contains(&parent))
                })
                .map(|id| auth::party_json(*id))
                .collect()
        }
        Principal::Org { claims, .. } => {
            let orgno = claims
                .get("urn:altinn:orgNumber")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            auth::PARTIES
                .iter()
                .filter(|x| x.org_number == Some(orgno))
                .map(|x| auth::party_json(x.party_id))
                .collect()
        }
    }
}
