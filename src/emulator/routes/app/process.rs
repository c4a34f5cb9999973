//! Process: `complete` confirmation and `process/next` (decided in `service::instances`).

use super::*;

impl IC<'_> {
    pub(super) async fn complete(&self) -> Resp {
        match self.writer().complete().await {
            Ok(inst) => json(200, &app_json(&inst, &self.ctx.base)),
            Err(w) => send(w),
        }
    }

    pub(super) async fn process_next(&self, body: Body) -> Resp {
        let bytes = match read_small(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if !bytes.iter().all(|b| b.is_ascii_whitespace())
            && serde_json::from_slice::<Value>(&bytes).is_err()
        {
            return problem(400, "Bad Request", "Invalid ProcessNext body");
        }
        match self.writer().process_next().await {
            Ok(inst) => json(200, &process_json(inst.process.as_ref())),
            Err(w) => send(w),
        }
    }
}
