//! Stateless data (`/v1/data?dataType=`): prefill and calculation, nothing stored.

use super::*;
use crate::emulator::service::app_model::calculate;

/// The `party` header (`partyid:N`, `person:SSN`, `org:ORGNR`) as a party id; None = absent.
pub(super) fn party_header(h: &str) -> Result<u32, String> {
    let parts: Vec<&str> = h.split(':').collect();
    if parts.len() != 2 || h.contains(',') {
        return Err(format!("Invalid party header: {h}"));
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
    found.ok_or_else(|| format!("Invalid party header: {h}"))
}

/// The party the model is for: the header's (which the caller must represent), else the
/// caller's own.
fn stateless_party(ctx: &Ctx, p: &Principal, meta: &ApplicationMetadata) -> Result<u32, Resp> {
    let Some(h) = header_str(&ctx.headers, "party") else {
        return Ok(match p {
            Principal::User { party_id, .. } => *party_id,
            Principal::Org { .. } => 0,
        });
    };
    let pid = party_header(h).map_err(|e| problem(400, "Bad Request", e))?;
    if !p.may_access(&pid.to_string(), &meta.org) {
        return Err(empty(403));
    }
    Ok(pid)
}

/// A new model for `party` with the `prefill` query (a JSON object of field: value).
fn prefilled(ctx: &Ctx, party: u32) -> Result<Value, Resp> {
    let mut v = default_model(party);
    let Some(pf) = ctx.query.get("prefill").filter(|v| !v.is_empty()) else {
        return Ok(v);
    };
    let Ok(Value::Object(pm)) = serde_json::from_str::<Value>(pf) else {
        return Err(problem(
            400,
            "Bad Request",
            "prefill must be a JSON object of field: value",
        ));
    };
    for (k, val) in pm {
        v[k] = match val {
            Value::String(s) => Value::String(s),
            other => Value::String(other.to_string()),
        };
    }
    Ok(v)
}

/// The model sent for calculation (XML or JSON; JSON when untyped but it looks like JSON).
fn posted(ctx: &Ctx, bytes: &[u8]) -> Result<Value, Resp> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(problem(
            400,
            "Bad Request",
            "The request body is empty; send the model as XML or JSON",
        ));
    }
    let ct = match header_str(&ctx.headers, "content-type") {
        Some(c) => Some(c),
        None if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
            Some("application/json")
        }
        None => None,
    };
    parse_form(ct, bytes).map(|(_, v)| v).map_err(render)
}

fn stateless_type_ok(ctx: &Ctx, meta: &ApplicationMetadata) -> Result<(), Resp> {
    let Some(dt_id) = ctx.query.get("dataType").filter(|v| !v.is_empty()) else {
        return Err(problem(
            400,
            "Bad Request",
            "Invalid dataType  provided. Please provide a valid dataType as query parameter.",
        ));
    };
    if meta.data_type(dt_id).filter(|d| d.is_form()).is_none() {
        return Err(problem(400, "Bad Request", format!("Invalid dataType {dt_id} provided. Please provide a valid dataType as query parameter.")));
    }
    Ok(())
}

pub(super) async fn stateless(
    s: &Shared,
    ctx: &Ctx,
    meta: &ApplicationMetadata,
    body: Body,
) -> Resp {
    match stateless_inner(s, ctx, meta, body).await {
        Ok(r) | Err(r) => r,
    }
}

async fn stateless_inner(
    s: &Shared,
    ctx: &Ctx,
    meta: &ApplicationMetadata,
    body: Body,
) -> Result<Resp, Resp> {
    let p = s.auth(&ctx.headers)?;
    let m = ctx.method.clone();
    // app-lib has no PUT on the stateless controller; the seed's older form has no GET.
    let allowed = if s.cfg.seed_stateless {
        matches!(m, Method::POST | Method::PUT)
    } else {
        matches!(m, Method::GET | Method::POST)
    };
    if !allowed {
        return Err(empty(405));
    }
    stateless_type_ok(ctx, meta)?;
    let party = stateless_party(ctx, &p, meta)?;
    let bytes = read_small(body).await?;
    let empty_body = bytes.iter().all(|b| b.is_ascii_whitespace());
    let creates = if s.cfg.seed_stateless {
        m == Method::POST
    } else {
        m == Method::GET || (m == Method::POST && empty_body)
    };
    let mut model = if creates {
        prefilled(ctx, party)?
    } else {
        posted(ctx, &bytes)?
    };
    calculate(&mut model);
    let accept = header_str(&ctx.headers, "accept")
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("xml") && !accept.contains("json") {
        return Ok(axum::response::Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(Body::from(xml::json_to_xml(xml::ROOT, &model)))
            .unwrap());
    }
    Ok(json(200, &model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_party_header_names_one_party() {
        assert_eq!(party_header("partyid:510001"), Ok(510001));
        assert_eq!(party_header("person:01017512345"), Ok(512345));
        assert_eq!(party_header("org:897069650"), Ok(500000));
        assert!(party_header("partyid:1,partyid:2").is_err());
        assert!(party_header("org:1:2").is_err());
        assert!(party_header("person:00000000000").is_err());
        assert!(party_header("nope:1").is_err());
    }
}
