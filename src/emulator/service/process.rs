//! The sample app's process (Task_1 data → Task_2 confirmation → end), as pure steps:
//! the validation that blocks `process/next` and the state it moves to (altinn-api.md §1.5).

use crate::altinn::model::{ApplicationMetadata, Instance, ProcessState, Timestamp};
use crate::emulator::service::app_model::task;
use serde_json::{json, Value};

/// Why `process/next` refuses (all 409 in app-lib).
#[derive(Debug, Clone, PartialEq)]
pub enum NextRefusal {
    NotStarted,
    Ended,
    /// "Validation failed for task": the task and its issues.
    Invalid {
        task: String,
        issues: Vec<Value>,
    },
}

/// The minCount/maxCount issues of the data types edited in `task_id`.
pub fn task_issues(app: &ApplicationMetadata, inst: &Instance, task_id: &str) -> Vec<Value> {
    let mut issues = Vec::new();
    for dt in app
        .data_types
        .iter()
        .filter(|d| d.task_id.as_deref() == Some(task_id))
    {
        let n = inst.data.iter().filter(|e| e.data_type == dt.id).count() as i64;
        let code = if dt.min_count > 0 && n < dt.min_count {
            "TooFewDataElementsOfType"
        } else if dt.max_count > 0 && n > dt.max_count {
            "TooManyDataElementsOfType"
        } else {
            continue;
        };
        issues.push(json!({"severity": 1, "dataElementId": null, "field": null,
            "code": code, "description": dt.id, "source": "Required"}));
    }
    issues
}

/// The process after a successful `next` from the current task, and whether it ended.
pub fn next_state(
    app: &ApplicationMetadata,
    inst: &Instance,
    now: Timestamp,
) -> Result<(ProcessState, bool), NextRefusal> {
    let process = inst.process.clone().ok_or(NextRefusal::NotStarted)?;
    if process.ended.is_some() {
        return Err(NextRefusal::Ended);
    }
    let cur = process
        .current_task
        .clone()
        .ok_or(NextRefusal::NotStarted)?;
    let cur_id = cur.element_id.clone().unwrap_or_default();
    let issues = task_issues(app, inst, &cur_id);
    if !issues.is_empty() {
        return Err(NextRefusal::Invalid {
            task: cur_id,
            issues,
        });
    }
    let mut next = process;
    if cur_id == "Task_1" {
        next.current_task = Some(task("Task_2", cur.flow.unwrap_or(2) + 1));
        return Ok((next, false));
    }
    next.current_task = None;
    next.ended = Some(now);
    next.end_event = Some("EndEvent_1".into());
    Ok((next, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::altinn::model::DataElement;
    use crate::emulator::sample;

    fn at_task(id: &str, types: &[&str]) -> Instance {
        Instance {
            process: Some(ProcessState {
                current_task: Some(task(id, 2)),
                ..Default::default()
            }),
            data: types
                .iter()
                .map(|t| DataElement {
                    data_type: t.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_process_moves_task_by_task_to_the_end() {
        let app = sample::app_metadata();
        let now = chrono::Utc::now();
        let (p, ended) = next_state(&app, &at_task("Task_1", &["model"]), now).unwrap();
        assert_eq!(
            p.current_task.unwrap().element_id.as_deref(),
            Some("Task_2")
        );
        assert!(!ended);
        let (p, ended) = next_state(&app, &at_task("Task_2", &["model"]), now).unwrap();
        assert!(ended && p.current_task.is_none() && p.ended == Some(now));
        let mut done = at_task("Task_2", &[]);
        done.process = Some(p);
        assert_eq!(next_state(&app, &done, now), Err(NextRefusal::Ended));
        assert_eq!(
            next_state(&app, &Instance::default(), now),
            Err(NextRefusal::NotStarted)
        );
    }

    #[test]
    fn counts_block_the_data_task() {
        let app = sample::app_metadata();
        let now = chrono::Utc::now();
        let Err(NextRefusal::Invalid { task, issues }) =
            next_state(&app, &at_task("Task_1", &[]), now)
        else {
            panic!("a missing model must block Task_1");
        };
        assert_eq!(task, "Task_1");
        assert_eq!(issues[0]["code"], "TooFewDataElementsOfType");
        let six = at_task(
            "Task_1",
            &[
                "model",
                "attachment",
                "attachment",
                "attachment",
                "attachment",
                "attachment",
                "attachment",
            ],
        );
        assert_eq!(
            task_issues(&app, &six, "Task_1")[0]["code"],
            "TooManyDataElementsOfType"
        );
    }
}
