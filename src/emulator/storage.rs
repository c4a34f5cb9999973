//! Storage API, `/storage/api/v1` (altinn-api.md §3): query, instance, data elements, blobs.

use super::auth::{Principal, SERVICEOWNER_READ};
use super::http::*;
use super::server::{storage_json, with_links, Ctx, Shared};
use crate::altinn::model::{DataElement, DataElementList, Instance, Timestamp};
use crate::altinn::rules;
use axum::body::Body;
use axum::http::{header, Method};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
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
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => {
            return text(
                404,
                format!("Unable to find blob for data element {}", e.id),
            )
        }
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return empty(500),
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
    b.body(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024),
    ))
    .unwrap_or_else(|_| empty(500))
}

/// .NET ticks (100 ns since 0001-01-01).
pub fn ticks(t: &Timestamp) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0) / 100 + 621_355_968_000_000_000
}

fn parse_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(v) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(v, f) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc())
}

type DateFilter = Vec<(String, DateTime<Utc>)>;

fn date_filters(q: &Query, name: &str) -> Result<DateFilter, Resp> {
    let mut out = Vec::new();
    for v in q.all(name) {
        let (op, val) = match v.split_once(':') {
            Some((op, val)) if ["gt", "gte", "lt", "lte", "eq"].contains(&op) => (op, val),
            _ => ("eq", v),
        };
        match parse_date(val.trim()) {
            Some(d) => out.push((op.to_string(), d)),
            None => return Err(text(400, "Invalid date expression")),
        }
    }
    Ok(out)
}

fn date_ok(f: &DateFilter, t: Option<&Timestamp>) -> bool {
    if f.is_empty() {
        return true;
    }
    let Some(t) = t else { return false };
    f.iter().all(|(op, d)| match op.as_str() {
        "gt" => t > d,
        "gte" => t >= d,
        "lt" => t < d,
        "lte" => t <= d,
        _ => t == d,
    })
}

fn parse_bool(q: &Query, k: &str) -> Result<Option<bool>, Resp> {
    match q.get(k) {
        None | Some("") => Ok(None),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(text(400, format!("The value '{v}' is not valid for {k}."))),
        },
    }
}

fn query(s: &Shared, ctx: &Ctx, p: &Principal) -> Resp {
    match query_inner(s, ctx, p) {
        Ok(r) | Err(r) => r,
    }
}

fn query_inner(s: &Shared, ctx: &Ctx, p: &Principal) -> Result<Resp, Resp> {
    let q = &ctx.query;
    let app_id = q.get("appId").filter(|v| !v.is_empty()).map(str::to_string);
    let org_param = q.get("org").filter(|v| !v.is_empty()).map(str::to_string);
    let party = q
        .get("instanceOwner.partyId")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    match p {
        Principal::Org { org, .. } => {
            if !p.has_scope(SERVICEOWNER_READ) {
                return Err(text(
                    403,
                    "Missing scope altinn:serviceowner/instances.read",
                ));
            }
            if app_id.is_none() && org_param.is_none() {
                return Err(text(400, "Org or AppId must be defined."));
            }
            let app_org = app_id
                .as_deref()
                .map(|a| a.split('/').next().unwrap_or_default().to_string());
            if app_org.as_deref().is_some_and(|o| o != org)
                || org_param.as_deref().is_some_and(|o| o != org)
            {
                return Err(empty(403));
            }
        }
        Principal::User { .. } => {
            let Some(pid) = &party else {
                return Err(text(400, "InstanceOwnerPartyId must be defined."));
            };
            if !p.may_access(pid, "") {
                return Err(empty(403));
            }
        }
    }
    if party.as_deref().is_some_and(|v| v.parse::<i64>().is_err()) {
        return Err(text(
            400,
            "The value is not valid for instanceOwner.partyId.",
        ));
    }
    let is_complete = parse_bool(q, "process.isComplete")?;
    let is_archived = parse_bool(q, "status.isArchived")?;
    let is_soft = parse_bool(q, "status.isSoftDeleted")?;
    let is_hard = parse_bool(q, "status.isHardDeleted")?;
    let confirmed = parse_bool(q, "confirmed")?;
    let current_task = q.get("process.currentTask").map(str::to_string);
    let exclude_confirmed = q
        .get("excludeConfirmedBy")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let last_changed = date_filters(q, "lastChanged")?;
    let created = date_filters(q, "created")?;
    let size: usize = match q.get("size").filter(|v| !v.is_empty()) {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => n.min(100_000) as usize,
            _ => return Err(text(400, format!("Invalid size {v}"))),
        },
    };
    let order = q.get("order").unwrap_or("desc:lastChanged").to_string();
    let desc = order.starts_with("desc:");
    let by_created = order.to_ascii_lowercase().ends_with("created");
    let cont: Option<(i64, String)> = q
        .get("continuationToken")
        .filter(|v| !v.is_empty())
        .map(form_decode)
        .and_then(|t| {
            let (a, b) = t.split_once(';')?;
            Some((a.parse().ok()?, b.to_string()))
        });
    let owner_org = p.org().map(str::to_string);

    let key = |i: &Instance| -> (i64, String) {
        let t = if by_created {
            i.created.as_ref()
        } else {
            i.last_changed.as_ref()
        };
        (t.map(ticks).unwrap_or(0), i.guid().to_string())
    };
    let filter = |i: &Instance| -> bool {
        if let Some(a) = &app_id {
            if &i.app_id != a {
                return false;
            }
        }
        if let Some(o) = &org_param {
            if &i.org != o {
                return false;
            }
        }
        if let Some(o) = &owner_org {
            if &i.org != o {
                return false;
            }
        }
        if let Some(pid) = &party {
            if &i.party_id() != pid {
                return false;
            }
        }
        if i.status.is_hard_deleted && owner_org.as_deref() != Some(i.org.as_str()) {
            return false;
        }
        if let Some(c) = is_complete {
            let ended = i.process.as_ref().is_some_and(|p| p.ended.is_some());
            if ended != c {
                return false;
            }
        }
        if let Some(t) = &current_task {
            let cur = i
                .process
                .as_ref()
                .and_then(|p| p.current_task.as_ref())
                .and_then(|t| t.element_id.as_deref());
            if cur != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(x) = &exclude_confirmed {
            if i.complete_confirmations
                .iter()
                .any(|c| &c.stakeholder_id == x)
            {
                return false;
            }
        }
        if let Some(c) = confirmed {
            if i.complete_confirmations.is_empty() == c {
                return false;
            }
        }
        if is_archived.is_some_and(|v| v != i.status.is_archived)
            || is_soft.is_some_and(|v| v != i.status.is_soft_deleted)
            || is_hard.is_some_and(|v| v != i.status.is_hard_deleted)
        {
            return false;
        }
        date_ok(&last_changed, i.last_changed.as_ref()) && date_ok(&created, i.created.as_ref())
    };
    // Filter, sort and cut under the read lock; clone only the page.
    let keyed: Vec<((i64, String), Instance)> = s.store.with_all(|all| {
        let mut refs: Vec<((i64, String), &Instance)> = all
            .values()
            .filter(|i| filter(i))
            .map(|i| (key(i), i))
            .collect();
        if let Some(c) = &cont {
            refs.retain(|(k, _)| if desc { k < c } else { k > c });
        }
        let cmp = |a: &((i64, String), &Instance), b: &((i64, String), &Instance)| {
            if desc {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            }
        };
        if refs.len() > size {
            refs.select_nth_unstable_by(size - 1, cmp);
            refs.truncate(size);
        }
        refs.sort_by(cmp);
        refs.into_iter().map(|(k, i)| (k, i.clone())).collect()
    });
    let next = if keyed.len() == size {
        let (t, id) = &keyed.last().unwrap().0;
        let token = format!("{t};{id}");
        let mut params: Vec<String> = ctx
            .raw_query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|kv| {
                !kv.is_empty() && !kv.to_ascii_lowercase().starts_with("continuationtoken=")
            })
            .map(str::to_string)
            .collect();
        params.push(format!("continuationToken={}", qenc(&qenc(&token))));
        Some(format!(
            "{}/storage/api/v1/instances?{}",
            ctx.base,
            params.join("&")
        ))
    } else {
        None
    };
    let self_link = match &ctx.raw_query {
        Some(rq) => format!("{}{}?{}", ctx.base, ctx.path, rq),
        None => format!("{}{}", ctx.base, ctx.path),
    };
    // Hostile mode: the last page's `next` points back at itself (clients must notice loops).
    let next = match next {
        None if s.cfg.hostile && cont.is_some() => Some(self_link.clone()),
        n => n,
    };
    let instances: Vec<Value> = keyed
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
    Ok(json(200, &body))
}
