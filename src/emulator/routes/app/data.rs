//! Data elements: refusals on the wire, finding an element, GET and DELETE. The checks
//! themselves are in `service::checks`.

use super::*;

impl From<Refusal> for Fail {
    /// The wire form of a refusal: the titles and texts app-lib uses.
    fn from(r: Refusal) -> Fail {
        let status = r.status();
        let (title, detail) = match r {
            Refusal::InstanceNotFound => ("Instance Not Found", String::new()),
            Refusal::ElementNotFound(d) => (
                "Data Element Not Found",
                format!("Did not find data element {d}"),
            ),
            Refusal::UndeclaredType {
                data_type,
                instance,
            } => (
                "Data Type Not Found",
                format!("Element type {data_type} not allowed for instance {instance}."),
            ),
            Refusal::ElementTypeGone(t) => (
                "Data Type Not Found",
                format!("Data type {t} not found in application metadata"),
            ),
            Refusal::TypeMismatch { element, is, asked } => (
                "Bad Request",
                format!("Data element {element} is of type {is}, not {asked}"),
            ),
            Refusal::PdfType => ("Forbidden", "Cannot write to the pdf data type".into()),
            Refusal::NotActive(id) => (
                "Instance Not Active",
                format!("Cannot update data element of archived or deleted instance {id}"),
            ),
            Refusal::NotContributor => (
                "Forbidden",
                "User is not a valid contributor to the data type".into(),
            ),
            Refusal::MaxCount { max, data_type } => (
                "Max Count Exceeded",
                format!("Cannot create more than {max} data elements of type {data_type}"),
            ),
            Refusal::UserCreateDisallowed(t) => (
                "User Create Disallowed",
                format!("User cannot create data elements of type {t}"),
            ),
            Refusal::NoCurrentTask => {
                ("No current task", "The instance has no current task".into())
            }
            Refusal::MainFormDelete => (
                "Cannot Delete main data element",
                "Cannot delete the main data element".into(),
            ),
            Refusal::UserDeleteDisallowed(t) => (
                "User Delete Disallowed",
                format!("User cannot delete data elements of type {t}"),
            ),
            Refusal::Locked(id) => {
                let mut f = Fail::new(
                    409,
                    "Conflict",
                    format!("Data element {id} is locked and cannot be updated"),
                );
                f.bare = true;
                return f;
            }
        };
        Fail::new(status, title, detail)
    }
}

impl IC<'_> {
    pub(super) fn element(
        &self,
        d: &str,
        type_check: Option<&str>,
    ) -> Result<(Instance, DataElement, DataType), Fail> {
        let inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        let (e, dt) = checks::element(&inst, &self.meta.data_types, d, type_check)?;
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
        let checked = self.element(d, None).and_then(|(inst, _, dt)| {
            checks::delete(&inst, &dt, self.p, self.is_owner()).map_err(Fail::from)
        });
        if let Err(f) = checked {
            return f.render(false);
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
