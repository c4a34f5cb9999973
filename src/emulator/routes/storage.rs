//! Storage API, `/storage/api/v1` (altinn-api.md §3): query, instance, data elements, blobs.

use crate::altinn::model::{DataElement, DataElementList, Instance};
use crate::altinn::rules;
use crate::emulator::auth::Principal;
use crate::emulator::http::*;
use crate::emulator::server::{storage_json, with_links, Ctx, Shared};
use crate::emulator::service::query::PageKey;
use crate::emulator::service::refusal::Wire;
use crate::emulator::service::storage::{self, Blob};
use axum::body::Body;
use axum::http::{header, Method};
use axum::response::Response;
use serde_json::{json, Value};

pub async fn route(s: &Shared, ctx: &Ctx, rest: &[&str], _body: Body) -> Resp {
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match (ctx.method.clone(), rest) {
        (Method::GET, ["instances"]) => query(s, ctx, &p),
        (Method::GET, ["instances", party, guid]) => match lookup(s, &p, party, guid) {
            Ok(i) => json(200, &storage_json(&i, &ctx.base)),
            Err(w) => send(w),
        },
        (Method::GET, ["instances", party, guid, "dataelements"]) => {
            match lookup(s, &p, party, guid) {
                Ok(i) => {
                    let i = with_links(&i, &ctx.base);
                    json(
                        200,
                        &DataElementList {
                            data_elements: i.data,
                        },
                    )
                }
                Err(w) => send(w),
            }
        }
        (Method::GET, ["instances", party, guid, "data", d]) => {
            let i = match lookup(s, &p, party, guid) {
                Ok(i) => i,
                Err(w) => return send(w),
            };
            match storage::element(&i, d) {
                Ok(e) => stored_blob(s, &i, e).await,
                Err(w) => send(w),
            }
        }
        (Method::GET, ["applications", org, app]) => match s.store.app(&format!("{org}/{app}")) {
            Some(a) => json(200, &a),
            None => text(
                404,
                format!("Cannot find application {org}/{app} in storage"),
            ),
        },
        _ => empty(404),
    }
}

/// Instance by GUID, then access (`service::storage::lookup`).
fn lookup(s: &Shared, p: &Principal, party: &str, guid: &str) -> Result<Instance, Wire> {
    storage::lookup(&s.store, p, party, guid)
}

/// Stream a stored blob.
async fn stored_blob(s: &Shared, i: &Instance, e: &DataElement) -> Resp {
    match storage::blob(&s.store, i, e).await {
        Ok(b) => blob_response(e, b),
        Err(w) => send(w),
    }
}

/// A blob with its element's Content-Type, Content-Length and Content-Disposition.
pub fn blob_response(e: &DataElement, blob: Blob) -> Resp {
    let len = blob.len();
    let body = match blob {
        Blob::File { file, .. } => Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        )),
        Blob::Bytes(b) => Body::from(b),
    };
    let mut b = Response::builder()
        .status(200)
        .header(
            header::CONTENT_TYPE,
            e.content_type.as_deref().unwrap_or(rules::OCTET_STREAM),
        )
        .header(header::CONTENT_LENGTH, len);
    if let Some(name) = e.filename.as_deref().filter(|n| !n.is_empty()) {
        b = b.header(
            header::CONTENT_DISPOSITION,
            rules::content_disposition(name),
        );
    }
    b.body(body).unwrap_or_else(|_| empty(500))
}

/// The request's own query string with the continuation token replaced (Storage's `next`).
fn next_link(ctx: &Ctx, key: &PageKey) -> String {
    let mut params: Vec<String> = ctx
        .raw_query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("continuationtoken="))
        .map(str::to_string)
        .collect();
    params.push(format!("continuationToken={}", qenc(&qenc(&key.token()))));
    format!("{}/storage/api/v1/instances?{}", ctx.base, params.join("&"))
}

fn query(s: &Shared, ctx: &Ctx, p: &Principal) -> Resp {
    let page = match storage::query(&s.store, p, &ctx.query.0) {
        Ok(page) => page,
        Err(w) => return send(w),
    };
    let self_link = match &ctx.raw_query {
        Some(rq) => format!("{}{}?{}", ctx.base, ctx.path, rq),
        None => format!("{}{}", ctx.base, ctx.path),
    };
    let next = match &page.next {
        Some(key) => Some(next_link(ctx, key)),
        // Hostile mode: the last page's `next` points back at itself (clients must notice loops).
        None if s.cfg.hostile && page.continued => Some(self_link.clone()),
        None => None,
    };
    let instances: Vec<Value> = page
        .instances
        .iter()
        .map(|i| storage_json(i, &ctx.base))
        .collect();
    let mut body = json!({
        "count": instances.len(),
        "self": self_link,
        "instances": instances,
    });
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    json(200, &body)
}
