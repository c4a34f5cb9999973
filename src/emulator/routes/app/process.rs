//! Process: `complete` confirmation and `process/next`.

use super::*;
use crate::emulator::service::process::{self, NextRefusal};

impl IC<'_> {
    pub(super) async fn complete(&self) -> Resp {
        let Some(org) = self.p.org().map(str::to_string) else {
            return empty(403);
        };
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return empty(404);
        };
        if !inst
            .complete_confirmations
            .iter()
            .any(|c| c.stakeholder_id == org)
        {
            inst.complete_confirmations.push(CompleteConfirmation {
                stakeholder_id: org,
                confirmed_on: Some(Utc::now()),
            });
            self.touch(&mut inst);
            if let Err(r) = self.save(&inst) {
                return r;
            }
        }
        json(200, &app_json(&inst, &self.ctx.base))
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
        let _g = self.s.store.lock(&self.guid).await;
        let Some(mut inst) = self.get() else {
            return empty(404);
        };
        let now = Utc::now();
        let (process, ended) = match process::next_state(self.meta, &inst, now) {
            Ok(x) => x,
            Err(r) => return next_refused(r),
        };
        if let Err(err) = self.lock_task_elements(&mut inst) {
            return text(500, err.to_string());
        }
        if ended {
            inst.status.is_archived = true;
            inst.status.archived = Some(now);
        }
        inst.process = Some(process);
        self.touch(&mut inst);
        if let Err(r) = self.save(&inst) {
            return r;
        }
        json(200, &process_json(inst.process.as_ref()))
    }

    /// The ending task's elements are locked (app-lib's ProcessTaskDataLocker).
    fn lock_task_elements(&self, inst: &mut Instance) -> std::io::Result<()> {
        let cur = inst
            .process
            .as_ref()
            .and_then(|p| p.current_task.as_ref())
            .and_then(|t| t.element_id.clone());
        let task_types: Vec<&str> = self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.is_some() && d.task_id == cur)
            .map(|d| d.id.as_str())
            .collect();
        for e in inst.data.iter_mut() {
            if task_types.contains(&e.data_type.as_str()) && !e.locked {
                e.locked = true;
                self.s.store.save_element(e)?;
            }
        }
        Ok(())
    }
}

fn next_refused(r: NextRefusal) -> Resp {
    match r {
        NextRefusal::NotStarted => problem(409, "Conflict", "Process is not started. Use start!"),
        NextRefusal::Ended => problem(409, "Conflict", "Process is ended."),
        NextRefusal::Invalid { task, issues } => {
            let mut p = ProblemDetails {
                title: Some("Validation failed for task".into()),
                status: Some(409),
                detail: Some(format!(
                    "{} validation errors found for task {task}",
                    issues.len()
                )),
                ..Default::default()
            };
            p.extra
                .insert("validationIssues".into(), Value::Array(issues));
            problem_json(&p)
        }
    }
}
