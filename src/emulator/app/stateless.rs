//! Stateless data (`/v1/data?dataType=`): prefill and calculation, nothing stored.

use super::*;

/// The app's "calculation": `sum` = `a` + `b` when both are numbers; `calculated` = "true".
pub fn calculate(v: &mut Value) {
    let Value::Object(m) = v else { return };
    let num = |m: &Map<String, Value>, k: &str| -> Option<f64> {
        match m.get(k)? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (num(m, "a"), num(m, "b")) {
        let sum = a + b;
        let s = if sum.fract() == 0.0 && sum.abs() < 1e15 {
            format!("{}", sum as i64)
        } else {
            sum.to_string()
        };
        m.insert("sum".into(), Value::String(s));
    }
    m.insert("calculated".into(), Value::String("true".into()));
}

pub(super) async fn stateless(
    s: &Shared,
    ctx: &Ctx,
    meta: &ApplicationMetadata,
    body: Body,
) -> Resp {
    let p = match s.auth(&ctx.headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let m = ctx.method.clone();
    // app-lib has no PUT on the stateless controller; the seed's older form has no GET.
    let allowed = if s.cfg.seed_stateless {
        matches!(m, Method::POST | Method::PUT)
    } else {
        matches!(m, Method::GET | Method::POST)
    };
    if !allowed {
        return empty(405);
    }
    let Some(dt_id) = ctx.query.get("dataType").filter(|v| !v.is_empty()) else {
        return problem(
            400,
            "Bad Request",
            "Invalid dataType  provided. Please provide a valid dataType as query parameter.",
        );
    };
    let Some(dt) = meta.data_type(dt_id).filter(|d| d.is_form()) else {
        return problem(400, "Bad Request", format!("Invalid dataType {dt_id} provided. Please provide a valid dataType as query parameter."));
    };
    let _ = dt;
    // party header: partyid:N, person:SSN, org:ORGNR.
    let party: u32 = match header_str(&ctx.headers, "party") {
        Some(h) => {
            let parts: Vec<&str> = h.split(':').collect();
            if parts.len() != 2 || h.contains(',') {
                return problem(400, "Bad Request", format!("Invalid party header: {h}"));
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
            let Some(pid) = found else {
                return problem(400, "Bad Request", format!("Invalid party header: {h}"));
            };
            if !p.may_access(&pid.to_string(), &meta.org) {
                return empty(403);
            }
            pid
        }
        None => match &p {
            Principal::User { party_id, .. } => *party_id,
            Principal::Org { .. } => 0,
        },
    };
    let bytes = match read_small(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let empty_body = bytes.iter().all(|b| b.is_ascii_whitespace());
    let creates = if s.cfg.seed_stateless {
        m == Method::POST
    } else {
        m == Method::GET || (m == Method::POST && empty_body)
    };
    let mut model = if creates {
        let mut v = default_model(party);
        if let Some(pf) = ctx.query.get("prefill").filter(|v| !v.is_empty()) {
            match serde_json::from_str::<Value>(pf) {
                Ok(Value::Object(pm)) => {
                    for (k, val) in pm {
                        let val = match val {
                            Value::String(s) => Value::String(s),
                            other => Value::String(other.to_string()),
                        };
                        v[k] = val;
                    }
                }
                _ => {
                    return problem(
                        400,
                        "Bad Request",
                        "prefill must be a JSON object of field: value",
                    )
                }
            }
        }
        v
    } else {
        if empty_body {
            return problem(
                400,
                "Bad Request",
                "The request body is empty; send the model as XML or JSON",
            );
        }
        let ct = header_str(&ctx.headers, "content-type");
        let ct = match ct {
            Some(c) => Some(c),
            None if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
                Some("application/json")
            }
            None => None,
        };
        match parse_form(ct, &bytes) {
            Ok((_, v)) => v,
            Err(f) => return f.render(false),
        }
    };
    calculate(&mut model);
    let accept = header_str(&ctx.headers, "accept")
        .unwrap_or("")
        .to_ascii_lowercase();
    if accept.contains("xml") && !accept.contains("json") {
        return axum::response::Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(Body::from(xml::json_to_xml(xml::ROOT, &model)))
            .unwrap();
    }
    json(200, &model)
}
