//! Data elements: finding an element, GET and DELETE. The checks and the writes are in
//! `service::checks` and `service::data_write`.

use super::*;

impl IC<'_> {
    pub(super) fn element(
        &self,
        d: &str,
        type_check: Option<&str>,
    ) -> Result<(Instance, DataElement, DataType), Fail> {
        self.writer().element(d, type_check)
    }

    pub(super) async fn get_data(&self, d: &str, type_check: Option<&str>) -> Resp {
        let (inst, e, dt) = match self.element(d, type_check) {
            Ok(x) => x,
            Err(f) => return render(f.as_text(type_check.is_some())),
        };
        if !dt.is_form() {
            return blob_response(self.s, &inst, &e).await;
        }
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let stored = std::fs::read(&path).ok();
        let Some(bytes) = stored.or_else(|| self.s.store.synthetic_blob(&e.id)) else {
            return default_problem(404);
        };
        let accept = header_str(&self.ctx.headers, "accept")
            .unwrap_or("")
            .to_ascii_lowercase();
        let wants_xml = accept.contains("xml")
            && !(accept.contains("json") && accept.find("json") < accept.find("xml"));
        if wants_xml {
            return axum::response::Response::builder()
                .status(200)
                .header(header::CONTENT_TYPE, "application/xml; charset=utf-8")
                .body(Body::from(bytes))
                .unwrap();
        }
        match xml::xml_to_json(&bytes) {
            Ok((_, v)) => json(200, &v),
            Err(err) => problem(500, "Internal Server Error", err),
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
