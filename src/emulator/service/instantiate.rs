//! Creating an instance (App POST `instances`, altinn-api.md §1.2): who owns it and what it
//! looks like when the process starts.

use crate::altinn::model::*;
use crate::emulator::auth::{self, Principal};
use crate::emulator::service::app_model::task;
use serde_json::Value;

/// Why an instantiation is refused (all 400 in app-lib).
#[derive(Debug, Clone, PartialEq)]
pub enum OwnerRefusal {
    /// Both `instanceOwnerPartyId` and `instanceOwner.partyId` given.
    Both,
    /// Neither given.
    Neither,
    /// Not an integer.
    Invalid(String),
}

/// The owner party: the query's `instanceOwnerPartyId` or the template's
/// `instanceOwner.partyId` (a string or a number), exactly one of them.
pub fn owner_party(query: Option<&str>, template: Option<&Value>) -> Result<u32, OwnerRefusal> {
    let from_template = template
        .and_then(|t| t.get("instanceOwner"))
        .and_then(|o| o.get("partyId"))
        .and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let party = match (query.filter(|q| !q.is_empty()), from_template) {
        (Some(_), Some(_)) => return Err(OwnerRefusal::Both),
        (None, None) => return Err(OwnerRefusal::Neither),
        (Some(q), None) => q.to_string(),
        (None, Some(t)) => t,
    };
    party.parse().map_err(|_| OwnerRefusal::Invalid(party))
}

fn template_time(template: Option<&Value>, key: &str) -> Option<Timestamp> {
    template
        .and_then(|t| t.get(key))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A new instance of `app` for `party`, its process started in Task_1, with no data yet.
/// Storage defaults `visibleAfter` to the creation time; a user's own instance starts read.
pub fn new_instance(
    app: &ApplicationMetadata,
    party: u32,
    p: &Principal,
    template: Option<&Value>,
) -> Instance {
    let now = chrono::Utc::now();
    let reg = auth::party(party);
    let mut inst = Instance {
        id: format!("{party}/{}", uuid::Uuid::new_v4()),
        instance_owner: InstanceOwner {
            party_id: party.to_string(),
            person_number: reg.and_then(|r| r.ssn).map(str::to_string),
            organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
            ..Default::default()
        },
        app_id: app.id.clone(),
        org: app.org.clone(),
        due_before: template_time(template, "dueBefore"),
        visible_after: template_time(template, "visibleAfter").or(Some(now)),
        process: Some(ProcessState {
            started: Some(now),
            start_event: Some("StartEvent_1".into()),
            current_task: Some(task("Task_1", 2)),
            ..Default::default()
        }),
        created: Some(now),
        created_by: Some(p.actor()),
        last_changed: Some(now),
        last_changed_by: Some(p.actor()),
        ..Default::default()
    };
    inst.status.read_status = match p {
        Principal::User { .. } => ReadStatus::Read,
        Principal::Org { .. } => ReadStatus::Unread,
    };
    inst
}

/// The form types that get their (empty) model when Task_1 starts.
pub fn auto_created(app: &ApplicationMetadata) -> impl Iterator<Item = &DataType> {
    app.data_types.iter().filter(|d| {
        d.is_form()
            && d.task_id.as_deref() == Some("Task_1")
            && d.app_logic.as_ref().and_then(|l| l.auto_create) == Some(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exactly_one_owner_is_given() {
        let t = json!({"instanceOwner": {"partyId": 510001}});
        let ts = json!({"instanceOwner": {"partyId": "510002"}});
        assert_eq!(owner_party(Some("510001"), None), Ok(510001));
        assert_eq!(owner_party(None, Some(&t)), Ok(510001));
        assert_eq!(owner_party(Some(""), Some(&ts)), Ok(510002));
        assert_eq!(owner_party(Some("1"), Some(&t)), Err(OwnerRefusal::Both));
        assert_eq!(owner_party(None, None), Err(OwnerRefusal::Neither));
        assert_eq!(
            owner_party(None, Some(&json!({"dueBefore": null}))),
            Err(OwnerRefusal::Neither)
        );
        assert_eq!(
            owner_party(Some("x"), None),
            Err(OwnerRefusal::Invalid("x".into()))
        );
    }

    #[test]
    fn visible_after_defaults_to_creation_unless_the_template_says() {
        let app = crate::emulator::sample::app_metadata();
        let user = Principal::User {
            user_id: 1001,
            party_id: 510001,
            claims: Default::default(),
        };
        let i = new_instance(&app, 510001, &user, None);
        assert_eq!(i.visible_after, i.created);
        assert_eq!(i.status.read_status, ReadStatus::Read);
        let t =
            json!({"visibleAfter": "2030-01-01T00:00:00Z", "dueBefore": "2031-01-01T00:00:00Z"});
        let i = new_instance(&app, 510001, &user, Some(&t));
        assert_eq!(
            i.visible_after.unwrap().to_rfc3339(),
            "2030-01-01T00:00:00+00:00"
        );
        assert!(i.due_before.is_some());
        assert_eq!(
            auto_created(&app)
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>(),
            ["model"]
        );
    }
}
