//! Process: `complete` confirmation and `process/next`.

use super::*;

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
        let Some(process) = inst.process.clone() else {
            return problem(409, "Conflict", "Process is not started. Use start!");
        };
        if process.ended.is_some() {
            return problem(409, "Conflict", "Process is ended.");
        }
        let Some(cur) = process.current_task.clone() else {
            return problem(409, "Conflict", "Process is not started. Use start!");
        };
        let cur_id = cur.element_id.clone().unwrap_or_default();
        // Validate counts of the task's data types.
        let mut issues = Vec::new();
        for dt in self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.as_deref() == Some(cur_id.as_str()))
        {
            let n = inst.data.iter().filter(|e| e.data_type == dt.id).count() as i64;
            if dt.min_count > 0 && n < dt.min_count {
                issues.push(json!({"severity": 1, "dataElementId": null, "field": null,
                    "code": "TooFewDataElementsOfType", "description": dt.id, "source": "Required"}));
            }
            if dt.max_count > 0 && n > dt.max_count {
                issues.push(json!({"severity": 1, "dataElementId": null, "field": null,
                    "code": "TooManyDataElementsOfType", "description": dt.id, "source": "Required"}));
            }
        }
        if !issues.is_empty() {
            let mut p = ProblemDetails {
                title: Some("Validation failed for task".into()),
                status: Some(409),
                detail: Some(format!(
                    "{} validation errors found for task {cur_id}",
                    issues.len()
                )),
                ..Default::default()
            };
            p.extra
                .insert("validationIssues".into(), Value::Array(issues));
            return problem_json(&p);
        }
        // Lock the elements of the ending task.
        let task_types: Vec<String> = self
            .meta
            .data_types
            .iter()
            .filter(|d| d.task_id.as_deref() == Some(cur_id.as_str()))
            .map(|d| d.id.clone())
            .collect();
        for e in inst.data.iter_mut() {
            if task_types.contains(&e.data_type) && !e.locked {
                e.locked = true;
                if let Err(err) = self.s.store.save_element(e) {
                    return text(500, err.to_string());
                }
            }
        }
        let now = Utc::now();
        let mut process = process;
        if cur_id == "Task_1" {
            process.current_task = Some(task("Task_2", cur.flow.unwrap_or(2) + 1));
        } else {
            process.current_task = None;
            process.ended = Some(now);
            process.end_event = Some("EndEvent_1".into());
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
}
