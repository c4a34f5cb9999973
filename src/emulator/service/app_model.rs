//! The served app's own logic, as the sample app defines it: its two process tasks, the empty
//! form model a new instance gets, and the "calculation" stateless data runs.

use crate::altinn::model::ProcessElementInfo;
use crate::emulator::auth;
use chrono::Utc;
use serde_json::{json, Map, Value};

/// Task_1 is the data task ("Utfylling"), anything else the confirmation task.
pub fn task(id: &str, flow: i64) -> ProcessElementInfo {
    let (name, kind) = match id {
        "Task_1" => ("Utfylling", "data"),
        _ => ("Bekreftelse", "confirmation"),
    };
    ProcessElementInfo {
        flow: Some(flow),
        started: Some(Utc::now()),
        element_id: Some(id.to_string()),
        name: Some(name.to_string()),
        altinn_task_type: Some(kind.to_string()),
        flow_type: Some("CompleteCurrentMoveToNext".to_string()),
        ..Default::default()
    }
}

/// The empty model of a new instance owned by `party` (the party's name prefilled).
pub fn default_model(party: u32) -> Value {
    let name = auth::party(party).map(|p| p.name).unwrap_or("");
    json!({"navn": name, "beskrivelse": "", "a": "0", "b": "0", "sum": "0"})
}

/// The app's "calculation": `sum` = `a` + `b` when both are numbers; `calculated` = "true".
pub fn calculate(v: &mut Value) {
    let Value::Object(m) = v else { return };
    let num = |m: &Map<String, Value>, k: &str| -> Option<f64> {
        match m.get(k)? {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    };
    if let (Some(a), Some(b)) = (num(m, "a"), num(m, "b")) {
        let sum = a + b;
        let s = if sum.fract() == 0.0 && sum.abs() < 1e15 {
            format!("{}", sum as i64)
        } else {
            sum.to_string()
        };
        m.insert("sum".into(), Value::String(s));
    }
    m.insert("calculated".into(), Value::String("true".into()));
}
