//! Instances: create (`POST instances`, with prefill and process start) and delete; the
//! decisions are `service::instances`'.

use super::*;
use crate::emulator::service::instances as instance_service;

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
    let party = ctx.query.get("instanceOwnerPartyId");
    let inst = match instance_service::create(&s.store, meta, &p, party, template.as_ref()) {
        Ok(i) => i,
        Err(w) => return send(w),
    };
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
        match self.writer().delete_instance(hard).await {
            Ok(inst) => json(200, &app_json(&inst, &self.ctx.base)),
            Err(w) => send(w),
        }
    }
}
