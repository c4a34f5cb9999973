//! Instances: create (`POST instances`, with prefill and process start) and delete.

use super::*;

pub(super) async fn create_instance(
    s: &Shared,
    ctx: &Ctx,
    meta: &ApplicationMetadata,
    body: Body,
) -> Resp {
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
    // Storage defaults visibleAfter to the creation time.
    inst.visible_after.get_or_insert(now);
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

impl IC<'_> {
    pub(super) async fn delete_instance(&self) -> Resp {
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
}
