//! Data elements: POST (new element) and PUT (replace). The request becomes a typed
//! `service::data_write::Upload`; the service decides; this renders its answer.

use super::*;
use crate::emulator::service::data_write::{BodyStream, Upload};

/// The body length: Content-Length, or 0 when the request has neither Content-Length nor
/// Transfer-Encoding (an empty body). None = chunked, which the app cannot read (500).
fn content_length(ctx: &Ctx) -> Option<u64> {
    match header_str(&ctx.headers, "content-length") {
        Some(v) => v.trim().parse().ok(),
        None if ctx.headers.get("transfer-encoding").is_none() => Some(0),
        None => None,
    }
}

/// The request body as the service reads it.
pub(super) fn body_stream(body: Body) -> BodyStream {
    Box::pin(
        body.into_data_stream()
            .map(|c| c.map_err(|e| e.to_string())),
    )
}

/// What a data write request carried, its body still unread.
fn upload(ctx: &Ctx, body: Body) -> Upload {
    let h = |name| header_str(&ctx.headers, name).map(str::to_string);
    Upload {
        content_length: content_length(ctx),
        content_type: h("content-type"),
        disposition: h("content-disposition"),
        body: Some(body_stream(body)),
    }
}

impl IC<'_> {
    pub(super) async fn post_data(&self, dt_id: &str, body: Body, obsolete: bool) -> Resp {
        let mut up = upload(self.ctx, body);
        let r = self.writer().post(dt_id, &mut up).await;
        drain(up.body).await;
        match r {
            Ok((inst, el)) => self.render_new(&inst, el, obsolete),
            Err(f) => render(f.as_text(obsolete)),
        }
    }

    /// 201 DataElement with `Location` (obsolete POST), else 200 DataPostResponse.
    fn render_new(&self, inst: &Instance, mut el: DataElement, obsolete: bool) -> Resp {
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        if obsolete {
            let loc = el
                .self_links
                .as_ref()
                .and_then(|l| l.apps.clone())
                .unwrap_or_default();
            return with_location(json(201, &app_element_json(&el)), &loc);
        }
        json(
            200,
            &json!({
                "newDataElementId": el.id,
                "instance": app_json(inst, &self.ctx.base),
                "validationIssues": [],
                "newDataModels": [],
            }),
        )
    }

    pub(super) async fn put_data(&self, d: &str, type_check: Option<&str>, body: Body) -> Resp {
        let mut up = upload(self.ctx, body);
        let r = self.writer().put(d, type_check, &mut up).await;
        drain(up.body).await;
        let (inst, mut el) = match r {
            Ok(x) => x,
            Err(f) => return render(f),
        };
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        let loc = el
            .self_links
            .as_ref()
            .and_then(|l| l.apps.clone())
            .unwrap_or_default();
        with_location(json(201, &app_element_json(&el)), &loc)
    }
}
