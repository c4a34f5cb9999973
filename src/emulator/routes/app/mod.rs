//! App API, `/{org}/{app}` (altinn-api.md §1): metadata, parties, instances, process, data,
//! stateless data.

mod data;
mod data_write;
mod instances;
mod process;
mod stateless;

use instances::create_instance;
use stateless::stateless;

use super::storage::blob_response;
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use crate::emulator::auth::Principal;
use crate::emulator::http::*;
use crate::emulator::server::{app_element_json, app_json, element_links, Ctx, Shared};
use crate::emulator::service::data_write::{self as write_service, InstanceScope, FORM_LIMIT};
use crate::emulator::service::instances::{self as instance_service, process_json};
use crate::emulator::service::refusal::Fail;
use axum::body::Body;
use axum::http::{header, Method};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// No such app: only `applicationmetadata?checkOrgApp=false` answers (with the served app).
fn unknown_app(s: &Shared, ctx: &Ctx, app_id: &str, rest: &[&str]) -> Resp {
    if ctx.method != Method::GET || rest != ["api", "v1", "applicationmetadata"] {
        return empty(404);
    }
    let check = ctx.query.get("checkOrgApp");
    if check.map(|v| v.eq_ignore_ascii_case("false")) != Some(true) {
        return text(
            409,
            format!(
                "This is {}, and not the app you are looking for: {app_id}!",
                s.default_app_id()
            ),
        );
    }
    match s.store.app(&s.default_app_id()) {
        Some(a) => json(200, &a),
        None => empty(404),
    }
}

pub async fn route(s: &Shared, ctx: &Ctx, org: &str, app: &str, rest: &[&str], body: Body) -> Resp {
    let app_id = format!("{org}/{app}");
    let Some(meta) = s.store.app(&app_id) else {
        return unknown_app(s, ctx, &app_id, rest);
    };
    match (ctx.method.clone(), rest) {
        (Method::GET, ["api", "v1", "applicationmetadata"]) => json(200, &meta),
        (Method::GET, ["api", "v1", "parties"]) => match s.auth(&ctx.headers) {
            Ok(p) => json(200, &instance_service::parties(&p)),
            Err(r) => r,
        },
        (Method::POST, ["instances"]) => create_instance(s, ctx, &meta, body).await,
        (Method::GET, ["instances", party, "active"]) => active(s, ctx, &meta, party),
        (_, ["instances", party, guid, tail @ ..]) => {
            instance_route(s, ctx, &meta, (party, guid), tail, body).await
        }
        (_, ["v1", "data"]) => stateless(s, ctx, &meta, body).await,
        _ => empty(404),
    }
}

/// `instances/{party}/{guid}/...`: route constraints, token, access, existence, then the op.
async fn instance_route(
    s: &Shared,
    ctx: &Ctx,
    meta: &ApplicationMetadata,
    (party, guid): (&str, &str),
    tail: &[&str],
    body: Body,
) -> Resp {
    // The route's constraints come first: a malformed id is 404 before the token is read.
    if party.parse::<i64>().is_err() || uuid::Uuid::parse_str(guid).is_err() {
        return empty(404);
    }
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let w = match instance_service::reach(&s.store, meta, &p, (party, guid)) {
        Ok(w) => w,
        Err(wire) => return send(wire),
    };
    let inst = w.get().unwrap_or_default();
    let ic = IC {
        s,
        ctx,
        meta,
        p: &p,
        party: w.party.clone(),
        guid: w.guid.clone(),
    };
    match (ctx.method.clone(), tail) {
        (Method::GET, []) => json(200, &app_json(&inst, &ctx.base)),
        (Method::DELETE, []) => ic.delete_instance().await,
        (Method::POST, ["complete"]) => ic.complete().await,
        (Method::GET, ["process"]) => json(200, &process_json(inst.process.as_ref())),
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
        (_, ["data", d, rest @ ..]) => ic.element_route(d, rest, body).await,
        _ => empty(404),
    }
}

impl IC<'_> {
    /// `data/{d}[/type/{t}]`: GET, PUT, DELETE.
    async fn element_route(&self, d: &str, rest: &[&str], body: Body) -> Resp {
        let type_check = match rest {
            [] => None,
            ["type", t] => Some(*t),
            _ => return empty(404),
        };
        if uuid::Uuid::parse_str(d).is_err() {
            return empty(404);
        }
        let d = d.to_ascii_lowercase();
        match self.ctx.method {
            Method::GET => self.get_data(&d, type_check).await,
            Method::PUT => self.put_data(&d, type_check, body).await,
            Method::DELETE if type_check.is_none() => self.delete_data(&d).await,
            _ => empty(405),
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
    // The facts pre-filter spares building the synthetic instances of other parties.
    let mut v = s.store.select_where(
        |f| f.app_id == meta.id && f.party == party && !f.is_archived && !f.is_soft_deleted,
        |i| i.app_id == meta.id && i.party_id() == party && i.is_active(),
    );
    v.sort_by_key(|i| std::cmp::Reverse(i.last_changed));
    let list: Vec<Value> = v
        .iter()
        .map(|i| {
            json!({"id": i.id, "presentationTexts": i.presentation_texts, "dueBefore": i.due_before,
                   "lastChanged": i.last_changed, "lastChangedBy": i.last_changed_by})
        })
        .collect();
    json(200, &list)
}

async fn read_small(body: Body) -> Result<bytes::Bytes, Resp> {
    let body = data_write::body_stream(body);
    write_service::read_small(body, FORM_LIMIT)
        .await
        .map_err(|e| {
            problem(
                400,
                "Bad Request",
                format!("Could not read the request body: {e}"),
            )
        })
}

/// A service answer on the wire.
fn render(f: Fail) -> Resp {
    send(f.wire())
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
    /// The HTTP-free writer for this caller and instance.
    fn writer(&self) -> InstanceScope<'_> {
        InstanceScope {
            store: &self.s.store,
            meta: self.meta,
            who: self.p,
            party: self.party.clone(),
            guid: self.guid.clone(),
        }
    }
}

/// Read and discard an unread request body (bounded), so the client sees our answer rather
/// than a reset while it is still sending.
async fn drain(body: Option<write_service::BodyStream>) {
    let Some(mut stream) = body else { return };
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
