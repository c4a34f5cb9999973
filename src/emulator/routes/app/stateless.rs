//! Stateless data (`/v1/data?dataType=`): the request becomes a
//! `service::stateless::StatelessRequest`; the service answers.

use super::*;
use crate::emulator::service::stateless::{
    self as stateless_service, Model, StatelessRequest, Verb,
};

fn verb(m: &Method) -> Verb {
    match *m {
        Method::GET => Verb::Get,
        Method::POST => Verb::Post,
        Method::PUT => Verb::Put,
        _ => Verb::Other,
    }
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
    let bytes = match read_small(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = StatelessRequest {
        verb: verb(&ctx.method),
        data_type: ctx.query.get("dataType"),
        party: header_str(&ctx.headers, "party"),
        prefill: ctx.query.get("prefill"),
        content_type: header_str(&ctx.headers, "content-type"),
        body: &bytes,
        accept: header_str(&ctx.headers, "accept").unwrap_or(""),
    };
    match stateless_service::answer(s.cfg.seed_stateless, meta, &p, &req) {
        Ok(Model::Xml(x)) => axum::response::Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(Body::from(x))
            .unwrap(),
        Ok(Model::Json(v)) => json(200, &v),
        Err(w) => send(w),
    }
}
