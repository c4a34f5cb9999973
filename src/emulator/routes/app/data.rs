//! Data elements: finding an element, GET and DELETE. The checks and the writes are in
//! `service::checks` and `service::data_write`.

use super::*;
use crate::emulator::service::instances::Read;

impl IC<'_> {
    pub(super) async fn get_data(&self, d: &str, type_check: Option<&str>) -> Resp {
        let accept = header_str(&self.ctx.headers, "accept").unwrap_or("");
        match self.writer().read_data(d, type_check, accept).await {
            Ok(Read::Blob(blob, e)) => blob_response(&e, blob),
            Ok(Read::Xml(bytes)) => axum::response::Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(Body::from(bytes))
                .unwrap(),
            Ok(Read::Json(v)) => json(200, &v),
            Err(w) => send(w),
        }
    }

    pub(super) async fn delete_data(&self, d: &str) -> Resp {
        match self.writer().delete(d).await {
            Ok(inst) => json(
                200,
                &json!({"instance": app_json(&inst, &self.ctx.base), "validationIssues": [], "newDataModels": []}),
            ),
            Err(f) => render(f),
        }
    }
}
