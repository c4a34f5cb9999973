//! Response and request helpers.

use crate::altinn::model::ProblemDetails;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Serialize;

pub type Resp = Response;

pub fn empty(status: u16) -> Resp {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap()
}

pub fn text(status: u16, msg: impl Into<String>) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(msg.into()))
        .unwrap()
}

pub fn json<T: Serialize>(status: u16, v: &T) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap()
}

/// A service answer (`service::refusal::Wire`) as a response.
pub fn send(w: crate::emulator::service::refusal::Wire) -> Resp {
    let mut r = Response::builder().status(w.status);
    if let Some(ct) = w.content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    r.body(Body::from(w.body)).unwrap()
}

pub fn with_location(mut r: Resp, loc: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub fn problem_json(p: &ProblemDetails) -> Resp {
    let status = p.status.unwrap_or(500);
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            "application/problem+json; charset=utf-8",
        )
        .body(Body::from(serde_json::to_vec(p).unwrap_or_default()))
        .unwrap()
}

pub fn problem(status: u16, title: &str, detail: impl Into<String>) -> Resp {
    problem_json(&ProblemDetails {
        title: Some(title.to_string()),
        status: Some(status),
        detail: Some(detail.into()),
        ..Default::default()
    })
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Query parameters in order, percent-decoded (`+` is a space).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return vec![] };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .to_string()
}

pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Encode for a query-string value.
pub fn qenc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
