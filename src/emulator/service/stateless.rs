//! Stateless data (`/v1/data?dataType=`, altinn-api.md §1.4) without HTTP: a prefilled new
//! model or a calculation, nothing stored.

use super::app_model::{calculate, default_model};
use super::data_write::parse_form;
use super::refusal::Wire;
use crate::altinn::model::ApplicationMetadata;
use crate::emulator::auth::{self, Principal};
use crate::emulator::xml;
use serde_json::Value;

/// The request method, which picks create or calculate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Other,
}

/// A stateless request as it arrived.
pub struct StatelessRequest<'a> {
    pub verb: Verb,
    pub data_type: Option<&'a str>,
    /// The `party` header.
    pub party: Option<&'a str>,
    /// The `prefill` query: a JSON object of field: value.
    pub prefill: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub accept: &'a str,
}

/// The model answered, in the representation `Accept` asked for.
pub enum Model {
    Xml(Vec<u8>),
    Json(Value),
}

fn bad(msg: impl Into<String>) -> Wire {
    Wire::titled(400, "Bad Request", msg)
}

/// The `party` header (`partyid:N`, `person:SSN`, `org:ORGNR`) as a party id.
pub fn party_header(h: &str) -> Result<u32, String> {
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
fn stateless_party(
    req: &StatelessRequest,
    p: &Principal,
    meta: &ApplicationMetadata,
) -> Result<u32, Wire> {
    let Some(h) = req.party else {
        return Ok(match p {
            Principal::User { party_id, .. } => *party_id,
            Principal::Org { .. } => 0,
        });
    };
    let pid = party_header(h).map_err(bad)?;
    if !p.may_access(&pid.to_string(), &meta.org) {
        return Err(Wire::empty(403));
    }
    Ok(pid)
}

/// A new model for `party` with the `prefill` fields.
fn prefilled(prefill: Option<&str>, party: u32) -> Result<Value, Wire> {
    let mut v = default_model(party);
    let Some(pf) = prefill.filter(|v| !v.is_empty()) else {
        return Ok(v);
    };
    let Ok(Value::Object(pm)) = serde_json::from_str::<Value>(pf) else {
        return Err(bad("prefill must be a JSON object of field: value"));
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
fn posted(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, Wire> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(bad(
            "The request body is empty; send the model as XML or JSON",
        ));
    }
    let ct = match content_type {
        Some(c) => Some(c),
        None if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => {
            Some("application/json")
        }
        None => None,
    };
    parse_form(ct, bytes).map(|(_, v)| v).map_err(|f| f.wire())
}

fn type_ok(data_type: Option<&str>, meta: &ApplicationMetadata) -> Result<(), Wire> {
    let Some(dt_id) = data_type.filter(|v| !v.is_empty()) else {
        return Err(bad(
            "Invalid dataType  provided. Please provide a valid dataType as query parameter.",
        ));
    };
    if meta.data_type(dt_id).filter(|d| d.is_form()).is_none() {
        return Err(bad(format!("Invalid dataType {dt_id} provided. Please provide a valid dataType as query parameter.")));
    }
    Ok(())
}

/// Answer a stateless request. `seed`: the controller of older apps (GET 405, POST creates,
/// PUT calculates); else app-lib's (GET creates, POST calculates or with no body creates).
pub fn answer(
    seed: bool,
    meta: &ApplicationMetadata,
    p: &Principal,
    req: &StatelessRequest,
) -> Result<Model, Wire> {
    let m = req.verb;
    let allowed = match seed {
        true => matches!(m, Verb::Post | Verb::Put),
        false => matches!(m, Verb::Get | Verb::Post),
    };
    if !allowed {
        return Err(Wire::empty(405));
    }
    type_ok(req.data_type, meta)?;
    let party = stateless_party(req, p, meta)?;
    let empty_body = req.body.iter().all(|b| b.is_ascii_whitespace());
    let creates = match seed {
        true => m == Verb::Post,
        false => m == Verb::Get || (m == Verb::Post && empty_body),
    };
    let mut model = match creates {
        true => prefilled(req.prefill, party)?,
        false => posted(req.content_type, req.body)?,
    };
    calculate(&mut model);
    let accept = req.accept.to_ascii_lowercase();
    if accept.contains("xml") && !accept.contains("json") {
        return Ok(Model::Xml(xml::json_to_xml(xml::ROOT, &model)));
    }
    Ok(Model::Json(model))
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
