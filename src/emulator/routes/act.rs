//! `/_emulator/act/...`: test-only routes that change the store "as someone else"
//! (`service::act`). Never counted in the request statistics, never faulted, no token needed.
//!
//! | request | does | answer |
//! | --- | --- | --- |
//! | `POST act/submit?party=P[&app=ORG/APP][&attachments=N]` | a user of P submits an instance: form data, N small PDFs (`attachment`), process ended, unconfirmed | 201, the instance (Storage JSON) |
//! | `POST act/instances/P/G/data?dataType=T[&filename=F]`, body = bytes, `Content-Type` | a user adds an element | 201, the element |
//! | `DELETE act/instances/P/G/data/D` | a user deletes an element | 200, the instance |
//! | `POST act/instances/P/G/confirm[?org=ORG]` | the org (default: the app's) confirms, as POST `complete` | 200, the instance |
//!
//! Each bumps the instance's `lastChanged`, as Storage does.

use crate::emulator::http::*;
use crate::emulator::sample;
use crate::emulator::server::{storage_json, Ctx, Shared};
use crate::emulator::service::act::{self, ActError, NewFile};
use axum::body::Body;
use axum::http::Method;

fn refused(e: ActError) -> Resp {
    match e {
        ActError::Io(e) => text(500, e.to_string()),
        ActError::NoSuchDataType(_) => text(400, e.to_string()),
        other => text(404, other.to_string()),
    }
}

pub async fn act_route(s: &Shared, ctx: &Ctx, rest: &[&str], body: Body) -> Resp {
    let r = match (ctx.method.clone(), rest) {
        (Method::POST, ["submit"]) => submit(s, ctx).await,
        (Method::POST, ["instances", _, guid, "data"]) => add(s, ctx, guid, body).await,
        (Method::DELETE, ["instances", _, guid, "data", d]) => {
            let guid = guid.to_ascii_lowercase();
            act::delete_element(&s.store, &guid, &d.to_ascii_lowercase())
                .await
                .map(|i| json(200, &storage_json(&i, &ctx.base)))
        }
        (Method::POST, ["instances", _, guid, "confirm"]) => confirm(s, ctx, guid).await,
        _ => return empty(404),
    };
    r.unwrap_or_else(refused)
}

async fn submit(s: &Shared, ctx: &Ctx) -> Result<Resp, ActError> {
    let Some(party) = ctx.query.get("party").and_then(|p| p.parse::<u32>().ok()) else {
        return Ok(text(400, "party=<partyId> is required"));
    };
    let app = ctx
        .query
        .get("app")
        .map(str::to_string)
        .unwrap_or_else(|| s.default_app_id());
    let n: usize = ctx
        .query
        .get("attachments")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let files: Vec<NewFile> = (0..n)
        .map(|k| NewFile {
            data_type: "attachment".into(),
            filename: Some(format!("vedlegg-{}.pdf", k + 1)),
            content_type: "application/pdf".into(),
            bytes: sample::content("pdf", 2048 + 512 * k, k as u64),
        })
        .collect();
    let inst = act::submit(&s.store, &app, party, &files).await?;
    Ok(json(201, &storage_json(&inst, &ctx.base)))
}

async fn add(s: &Shared, ctx: &Ctx, guid: &str, body: Body) -> Result<Resp, ActError> {
    let Some(data_type) = ctx.query.get("dataType").filter(|t| !t.is_empty()) else {
        return Ok(text(400, "dataType=<id> is required"));
    };
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b.to_vec(),
        Err(e) => return Ok(text(400, e.to_string())),
    };
    let file = NewFile {
        data_type: data_type.to_string(),
        filename: ctx.query.get("filename").map(str::to_string),
        content_type: header_str(&ctx.headers, "content-type")
            .unwrap_or(crate::altinn::rules::OCTET_STREAM)
            .to_string(),
        bytes,
    };
    let e = act::add_element(&s.store, &guid.to_ascii_lowercase(), &file).await?;
    Ok(json(201, &e))
}

async fn confirm(s: &Shared, ctx: &Ctx, guid: &str) -> Result<Resp, ActError> {
    let guid = guid.to_ascii_lowercase();
    let org = match ctx.query.get("org") {
        Some(o) => o.to_string(),
        None => match s.store.get(&guid) {
            Some(i) => i.org,
            None => return Err(ActError::NoSuchInstance(guid)),
        },
    };
    let inst = act::confirm(&s.store, &guid, &org).await?;
    Ok(json(200, &storage_json(&inst, &ctx.base)))
}
