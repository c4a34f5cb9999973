//! Data elements: who may change them, update checks, finding an element, GET and DELETE.

use super::*;

fn contributors_ok(dt: &DataType, p: &Principal) -> bool {
    let list = match (&dt.allowed_contributers, &dt.allowed_contributors) {
        (Some(l), _) if !l.is_empty() => l,
        (_, Some(l)) if !l.is_empty() => l,
        _ => return true,
    };
    match p {
        Principal::Org { org, claims, .. } => {
            let orgno = claims
                .get("urn:altinn:orgNumber")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            list.iter().any(|c| {
                c.eq_ignore_ascii_case(&format!("org:{org}"))
                    || c.eq_ignore_ascii_case(&format!("orgno:{orgno}"))
                    || c == "app:owned"
            })
        }
        _ => false,
    }
}

impl IC<'_> {
    pub(super) fn check_update(&self, inst: &Instance, dt: &DataType) -> Result<(), Fail> {
        if dt.id == "ref-data-as-pdf" {
            return Err(Fail::new(
                403,
                "Forbidden",
                "Cannot write to the pdf data type",
            ));
        }
        if !inst.is_active() {
            return Err(Fail::new(
                409,
                "Instance Not Active",
                format!(
                    "Cannot update data element of archived or deleted instance {}",
                    inst.id
                ),
            ));
        }
        if !contributors_ok(dt, self.p) {
            return Err(Fail::new(
                403,
                "Forbidden",
                "User is not a valid contributor to the data type",
            ));
        }
        Ok(())
    }

    pub(super) fn element(
        &self,
        d: &str,
        type_check: Option<&str>,
    ) -> Result<(Instance, DataElement, DataType), Fail> {
        let inst = self
            .get()
            .ok_or_else(|| Fail::new(404, "Instance Not Found", ""))?;
        let Some(e) = inst.data.iter().find(|e| e.id == d).cloned() else {
            return Err(Fail::new(
                404,
                "Data Element Not Found",
                format!("Did not find data element {d}"),
            ));
        };
        let Some(dt) = self.meta.data_type(&e.data_type).cloned() else {
            return Err(Fail::new(
                400,
                "Data Type Not Found",
                format!(
                    "Data type {} not found in application metadata",
                    e.data_type
                ),
            ));
        };
        if let Some(t) = type_check {
            if t != e.data_type {
                return Err(Fail::new(
                    400,
                    "Bad Request",
                    format!("Data element {d} is of type {}, not {t}", e.data_type),
                ));
            }
        }
        Ok((inst, e, dt))
    }

    pub(super) async fn get_data(&self, d: &str, type_check: Option<&str>) -> Resp {
        let (inst, e, dt) = match self.element(d, type_check) {
            Ok(x) => x,
            Err(f) => return f.render(type_check.is_some()),
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
        let (inst, _e, dt) = match self.element(d, None) {
            Ok(x) => x,
            Err(f) => return f.render(false),
        };
        if let Err(f) = self.check_update(&inst, &dt) {
            return f.render(false);
        }
        if dt.is_main_form() {
            return problem(
                400,
                "Cannot Delete main data element",
                "Cannot delete the main data element",
            );
        }
        if dt.app_logic.as_ref().and_then(|l| l.disallow_user_delete) == Some(true)
            && !self.is_owner()
        {
            return problem(
                400,
                "User Delete Disallowed",
                format!("User cannot delete data elements of type {}", dt.id),
            );
        }
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return default_problem(404);
        };
        let Some(idx) = inst.data.iter().position(|x| x.id == d) else {
            return problem(404, "Data Element Not Found", "");
        };
        inst.data.remove(idx);
        self.s
            .store
            .remove_element_files(&inst.app_id, &self.guid, d);
        self.touch(&mut inst);
        if let Err(r) = self.save(&inst) {
            return r;
        }
        json(
            200,
            &json!({"instance": app_json(&inst, &self.ctx.base), "validationIssues": [], "newDataModels": []}),
        )
    }
}
