//! Storage API, `/storage/api/v1` (altinn-api.md §3): query, instance, data elements, blobs.

use crate::altinn::model::{DataElement, DataElementList, Instance};
use crate::altinn::rules;
use crate::emulator::auth::Principal;
use crate::emulator::http::*;
use crate::emulator::server::{storage_json, with_links, Ctx, Shared};
use crate::emulator::service::query::{PageKey, QueryRefusal, QuerySpec};
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
            Err(r) => r,
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
                Err(r) => r,
            }
        }
        (Method::GET, ["instances", party, guid, "data", d]) => {
            let i = match lookup(s, &p, party, guid) {
                Ok(i) => i,
                Err(r) => return r,
            };
            match i.data.iter().find(|e| e.id == *d) {
                Some(e) => blob_response(s, &i, e).await,
                None => text(
                    404,
                    format!("Unable to find any data element with id: {d}."),
                ),
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

/// Instance by GUID (the party in the path is not cross-checked, as in Storage), then access.
pub fn lookup(s: &Shared, p: &Principal, _party: &str, guid: &str) -> Result<Instance, Resp> {
    let Some(i) = s.store.get(&guid.to_ascii_lowercase()) else {
        return Err(text(
            404,
            format!("Unable to find instance {_party}/{guid}: not found"),
        ));
    };
    if !p.may_access(&i.party_id(), &i.org) {
        return Err(empty(403));
    }
    if i.status.is_hard_deleted && p.org() != Some(i.org.as_str()) {
        return Err(text(
            404,
            format!("Unable to find instance {_party}/{guid}"),
        ));
    }
    Ok(i)
}

/// Stream a stored blob with its Content-Type, Content-Length and Content-Disposition.
pub async fn blob_response(s: &Shared, i: &Instance, e: &DataElement) -> Resp {
    let path = s.store.blob_path(&i.app_id, i.guid(), &e.id);
    let (body, len) = match tokio::fs::File::open(&path).await {
        Ok(file) => match file.metadata().await {
            Ok(m) => (
                Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    256 * 1024,
                )),
                m.len(),
            ),
            Err(_) => return empty(500),
        },
        Err(_) => match s.store.synthetic_blob(&e.id) {
            Some(bytes) => {
                let len = bytes.len() as u64;
                (Body::from(bytes), len)
            }
            None => {
                return text(
                    404,
                    format!("Unable to find blob for data element {}", e.id),
                )
            }
        },
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

/// Storage's answer to a refused query.
fn refusal(r: QueryRefusal) -> Resp {
    match r {
        QueryRefusal::MissingScope => text(403, "Missing scope altinn:serviceowner/instances.read"),
        QueryRefusal::OrgOrAppRequired => text(400, "Org or AppId must be defined."),
        QueryRefusal::Forbidden => empty(403),
        QueryRefusal::PartyRequired => text(400, "InstanceOwnerPartyId must be defined."),
        QueryRefusal::BadParty => text(400, "The value is not valid for instanceOwner.partyId."),
        QueryRefusal::BadBool { name, value } => {
            text(400, format!("The value '{value}' is not valid for {name}."))
        }
        QueryRefusal::BadDate => text(400, "Invalid date expression"),
        QueryRefusal::BadSize(v) => text(400, format!("Invalid size {v}")),
    }
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
    let spec = match QuerySpec::parse(&ctx.query.0, p) {
        Ok(spec) => spec,
        Err(r) => return refusal(r),
    };
    let (page, full) = s.store.page(&spec);
    let self_link = match &ctx.raw_query {
        Some(rq) => format!("{}{}?{}", ctx.base, ctx.path, rq),
        None => format!("{}{}", ctx.base, ctx.path),
    };
    let next = match page.last() {
        Some((key, _)) if full => Some(next_link(ctx, key)),
        // Hostile mode: the last page's `next` points back at itself (clients must notice loops).
        _ if s.cfg.hostile && spec.after.is_some() => Some(self_link.clone()),
        _ => None,
    };
    let instances: Vec<Value> = page
        .iter()
        .map(|(_, i)| storage_json(i, &ctx.base))
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
