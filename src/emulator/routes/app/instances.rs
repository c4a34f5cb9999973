//! Instances: create (`POST instances`, with prefill and process start) and delete.

use super::*;
use crate::emulator::service::instantiate::{self, OwnerRefusal};

/// The optional JSON instance template of a create request.
async fn read_template(ctx: &Ctx, body: Body) -> Result<Option<Value>, Resp> {
    let bytes = read_small(body).await?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let ct = header_str(&ctx.headers, "content-type").unwrap_or("");
    if ct.contains("json") {
        return serde_json::from_slice::<Value>(&bytes)
            .map(Some)
            .map_err(|e| text(400, format!("Error reading the instance template: {e}")));
    }
    if ct.contains("multipart") {
        return Err(text(
            400,
            "Multipart instantiation is not supported by the emulator",
        ));
    }
    Ok(None)
}

fn owner_refused(r: OwnerRefusal) -> Resp {
    match r {
        OwnerRefusal::Both => text(
            400,
            "Cannot have both instanceOwnerPartyId in query and instanceOwner.partyId in the body",
        ),
        OwnerRefusal::Neither => text(
            400,
            "Cannot instantiate: instanceOwnerPartyId query parameter or instanceOwner in the body is required",
        ),
        OwnerRefusal::Invalid(party) => text(400, format!("Invalid party id {party}")),
    }
}

/// Write the empty model of every auto-created form type.
fn auto_create_forms(
    s: &Shared,
    meta: &ApplicationMetadata,
    inst: &mut Instance,
    p: &Principal,
) -> std::io::Result<()> {
    let party: u32 = inst.party_id().parse().unwrap_or(0);
    for dt in instantiate::auto_created(meta) {
        let model = xml::json_to_xml(xml::ROOT, &default_model(party));
        let e = new_element(inst, dt, None, "application/xml", model.len() as u64, p);
        write_blob(&s.store.blob_path(&meta.id, inst.guid(), &e.id), &model)?;
        s.store.save_element(&e)?;
        inst.data.push(e);
    }
    Ok(())
}

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
    let template = match read_template(ctx, body).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let party =
        match instantiate::owner_party(ctx.query.get("instanceOwnerPartyId"), template.as_ref()) {
            Ok(party) => party,
            Err(r) => return owner_refused(r),
        };
    if !p.may_access(&party.to_string(), &meta.org) {
        return empty(403);
    }
    let mut inst = instantiate::new_instance(meta, party, &p, template.as_ref());
    let saved =
        auto_create_forms(s, meta, &mut inst, &p).and_then(|()| s.store.save_instance(&inst));
    if let Err(e) = saved {
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
