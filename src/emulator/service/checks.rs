//! The App API's write checks on data elements, in app-lib's order (altinn-api.md §1.3.1–
//! §1.3.3), as pure functions over the instance, the data type and the caller. Each refusal
//! is a [`Refusal`]; the routes decide how it looks on the wire.

use crate::altinn::model::{DataElement, DataType, Instance};
use crate::altinn::rules;
use crate::emulator::auth::Principal;

/// Why the App API refuses a data write.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// 404 "Instance Not Found".
    InstanceNotFound,
    /// 404 "Data Element Not Found".
    ElementNotFound(String),
    /// 400: POST with a data type the app does not declare.
    UndeclaredType { data_type: String, instance: String },
    /// 400: an element whose data type is gone from the metadata.
    ElementTypeGone(String),
    /// 400: `/type/{t}` does not match the element.
    TypeMismatch {
        element: String,
        is: String,
        asked: String,
    },
    /// 403: the generated PDF type.
    PdfType,
    /// 409: archived or deleted instance.
    NotActive(String),
    /// 403: `allowedContributors` excludes the caller.
    NotContributor,
    /// 409 "Max Count Exceeded".
    MaxCount { max: i64, data_type: String },
    /// 400 "User Create Disallowed".
    UserCreateDisallowed(String),
    /// 409: the process has ended or not started.
    NoCurrentTask,
    /// 400: the main form (maxCount = minCount = 1) cannot be deleted.
    MainFormDelete,
    /// 400 "User Delete Disallowed".
    UserDeleteDisallowed(String),
    /// 409: Storage refuses to overwrite a locked element.
    Locked(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        use Refusal::*;
        match self {
            InstanceNotFound | ElementNotFound(_) => 404,
            UndeclaredType { .. } | ElementTypeGone(_) | TypeMismatch { .. } => 400,
            UserCreateDisallowed(_) | MainFormDelete | UserDeleteDisallowed(_) => 400,
            PdfType | NotContributor => 403,
            NotActive(_) | MaxCount { .. } | NoCurrentTask | Locked(_) => 409,
        }
    }
}

/// Does `allowedContributors` (or the legacy spelling, which wins) admit the caller? Entries
/// only ever match service-owner tokens.
pub fn contributor_ok(dt: &DataType, p: &Principal) -> bool {
    let list = match (&dt.allowed_contributers, &dt.allowed_contributors) {
        (Some(l), _) if !l.is_empty() => l,
        (_, Some(l)) if !l.is_empty() => l,
        _ => return true,
    };
    let Principal::Org { org, claims, .. } = p else {
        return false;
    };
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

/// The checks every write shares: the PDF type, an active instance, the contributors.
pub fn update(inst: &Instance, dt: &DataType, p: &Principal) -> Result<(), Refusal> {
    if dt.id == "ref-data-as-pdf" {
        return Err(Refusal::PdfType);
    }
    if !inst.is_active() {
        return Err(Refusal::NotActive(inst.id.clone()));
    }
    if !contributor_ok(dt, p) {
        return Err(Refusal::NotContributor);
    }
    Ok(())
}

fn count_of(inst: &Instance, dt: &DataType) -> usize {
    inst.data.iter().filter(|e| e.data_type == dt.id).count()
}

/// Is there room for one more element of `dt`?
pub fn room_for_one(inst: &Instance, dt: &DataType) -> Result<(), Refusal> {
    if rules::count_allows_one_more(dt, count_of(inst, dt)) {
        return Ok(());
    }
    Err(Refusal::MaxCount {
        max: dt.max_count,
        data_type: dt.id.clone(),
    })
}

/// POST a new element (steps 3–9 of §1.3.1; the body checks come after).
pub fn create(inst: &Instance, dt: &DataType, p: &Principal, owner: bool) -> Result<(), Refusal> {
    update(inst, dt, p)?;
    room_for_one(inst, dt)?;
    let disallowed = dt.app_logic.as_ref().and_then(|l| l.disallow_user_create) == Some(true);
    if disallowed && !owner {
        return Err(Refusal::UserCreateDisallowed(dt.id.clone()));
    }
    Ok(())
}

/// DELETE an element (§1.3.3).
pub fn delete(inst: &Instance, dt: &DataType, p: &Principal, owner: bool) -> Result<(), Refusal> {
    update(inst, dt, p)?;
    if dt.is_main_form() {
        return Err(Refusal::MainFormDelete);
    }
    let disallowed = dt.app_logic.as_ref().and_then(|l| l.disallow_user_delete) == Some(true);
    if disallowed && !owner {
        return Err(Refusal::UserDeleteDisallowed(dt.id.clone()));
    }
    Ok(())
}

/// Data can only be added or changed while the instance has a current task.
pub fn current_task(inst: &Instance) -> Result<(), Refusal> {
    let has = inst
        .process
        .as_ref()
        .and_then(|p| p.current_task.as_ref())
        .is_some();
    has.then_some(()).ok_or(Refusal::NoCurrentTask)
}

/// Storage's overwrite check.
pub fn unlocked(e: &DataElement) -> Result<(), Refusal> {
    match e.locked {
        true => Err(Refusal::Locked(e.id.clone())),
        false => Ok(()),
    }
}

/// The element `d` of `inst`, its declared type, and the optional `/type/{t}` match (§1.3.2).
pub fn element(
    inst: &Instance,
    types: &[DataType],
    d: &str,
    asked: Option<&str>,
) -> Result<(DataElement, DataType), Refusal> {
    let e = inst
        .data
        .iter()
        .find(|e| e.id == d)
        .cloned()
        .ok_or_else(|| Refusal::ElementNotFound(d.to_string()))?;
    let dt = types
        .iter()
        .find(|t| t.id == e.data_type)
        .cloned()
        .ok_or_else(|| Refusal::ElementTypeGone(e.data_type.clone()))?;
    if let Some(t) = asked.filter(|t| *t != e.data_type) {
        return Err(Refusal::TypeMismatch {
            element: d.to_string(),
            is: e.data_type.clone(),
            asked: t.to_string(),
        });
    }
    Ok((e, dt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::altinn::model::{ApplicationLogic, ProcessState};
    use crate::emulator::sample;

    fn user() -> Principal {
        Principal::User {
            user_id: 1001,
            party_id: 510001,
            claims: Default::default(),
        }
    }

    fn owner() -> Principal {
        let claims = crate::emulator::auth::TokenIssuer::org_claims("ttd", "991825827", "", 3);
        Principal::Org {
            org: "ttd".into(),
            scopes: vec![],
            claims,
        }
    }

    fn open_instance(elements: &[&str]) -> Instance {
        let mut i = Instance {
            id: "510001/g".into(),
            process: Some(ProcessState {
                current_task: Some(Default::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        for (n, t) in elements.iter().enumerate() {
            i.data.push(DataElement {
                id: format!("e{n}"),
                data_type: t.to_string(),
                ..Default::default()
            });
        }
        i
    }

    fn dt(id: &str) -> DataType {
        sample::app_metadata().data_type(id).unwrap().clone()
    }

    #[test]
    fn create_checks_come_in_app_libs_order() {
        let att = dt("attachment");
        let full = open_instance(&["attachment"; 5]);
        let mut archived = full.clone();
        archived.status.is_archived = true;
        // Not active comes before max count.
        assert_eq!(
            create(&archived, &att, &user(), false),
            Err(Refusal::NotActive("510001/g".into()))
        );
        assert_eq!(
            create(&full, &att, &user(), false),
            Err(Refusal::MaxCount {
                max: 5,
                data_type: "attachment".into()
            })
        );
        assert_eq!(
            create(&open_instance(&[]), &dt("ref-data-as-pdf"), &owner(), true),
            Err(Refusal::PdfType)
        );
        let mut restricted = att.clone();
        restricted.allowed_contributors = Some(vec!["org:ttd".into()]);
        assert_eq!(
            create(&full, &restricted, &user(), false),
            Err(Refusal::NotContributor)
        );
        assert!(create(&open_instance(&[]), &restricted, &owner(), true).is_ok());
        let mut no_user = att.clone();
        no_user.app_logic = Some(ApplicationLogic {
            disallow_user_create: Some(true),
            ..Default::default()
        });
        let empty = open_instance(&[]);
        assert_eq!(
            create(&empty, &no_user, &user(), false),
            Err(Refusal::UserCreateDisallowed("attachment".into()))
        );
        assert!(create(&empty, &no_user, &owner(), true).is_ok());
    }

    #[test]
    fn delete_refuses_the_main_form_and_user_deletes_when_disallowed() {
        let i = open_instance(&["model", "attachment"]);
        assert_eq!(
            delete(&i, &dt("model"), &user(), false),
            Err(Refusal::MainFormDelete)
        );
        assert!(delete(&i, &dt("attachment"), &user(), false).is_ok());
        let mut no_user = dt("attachment");
        no_user.app_logic = Some(ApplicationLogic {
            disallow_user_delete: Some(true),
            ..Default::default()
        });
        assert_eq!(
            delete(&i, &no_user, &user(), false),
            Err(Refusal::UserDeleteDisallowed("attachment".into()))
        );
    }

    #[test]
    fn element_lookup_locks_and_tasks() {
        let types = sample::app_metadata().data_types;
        let mut i = open_instance(&["model", "gone"]);
        assert_eq!(
            element(&i, &types, "x", None),
            Err(Refusal::ElementNotFound("x".into()))
        );
        assert_eq!(
            element(&i, &types, "e1", None),
            Err(Refusal::ElementTypeGone("gone".into()))
        );
        assert!(matches!(
            element(&i, &types, "e0", Some("attachment")),
            Err(Refusal::TypeMismatch { .. })
        ));
        let (e, t) = element(&i, &types, "e0", Some("model")).unwrap();
        assert_eq!((e.id.as_str(), t.id.as_str()), ("e0", "model"));
        assert!(unlocked(&e).is_ok());
        i.data[0].locked = true;
        assert_eq!(unlocked(&i.data[0]), Err(Refusal::Locked("e0".into())));
        assert!(current_task(&i).is_ok());
        i.process.as_mut().unwrap().current_task = None;
        assert_eq!(current_task(&i), Err(Refusal::NoCurrentTask));
        assert_eq!(Refusal::NoCurrentTask.status(), 409);
        assert_eq!(Refusal::MainFormDelete.status(), 400);
    }
}
