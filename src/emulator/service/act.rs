//! Acting "as someone else", for tests of a mount that must notice changes it did not make:
//! a user submits an instance (form data, attachments, process ended), a user adds or deletes
//! an element, the org confirms an instance. No app rules are applied (the actor is assumed to
//! be allowed); like Storage, every change bumps the instance's `lastChanged`.
//!
//! Served over HTTP under `/_emulator/act/...` (see `server.rs`), which is never counted in the
//! request statistics and never faulted.

use crate::altinn::model::*;
use crate::emulator::auth;
use crate::emulator::service::app_model::default_model;
use crate::emulator::store::Store;
use crate::emulator::xml;
use chrono::Utc;

/// A file to add: its data type, name and content type, and its bytes.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub data_type: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub enum ActError {
    NoSuchApp(String),
    NoSuchInstance(String),
    NoSuchElement(String),
    NoSuchDataType(String),
    Io(std::io::Error),
}

impl std::fmt::Display for ActError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActError::NoSuchApp(a) => write!(f, "no app {a}"),
            ActError::NoSuchInstance(g) => write!(f, "no instance {g}"),
            ActError::NoSuchElement(d) => write!(f, "no data element {d}"),
            ActError::NoSuchDataType(t) => write!(f, "no data type {t}"),
            ActError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<std::io::Error> for ActError {
    fn from(e: std::io::Error) -> Self {
        ActError::Io(e)
    }
}

/// The user who acts for `party`: one of localtest's users that represents it, else 1337.
fn user_of(party: u32) -> String {
    auth::USERS
        .iter()
        .find(|u| u.party_id == party || u.represents.contains(&party))
        .map_or(1337, |u| u.user_id)
        .to_string()
}

fn new_element(inst: &Instance, file: &NewFile, actor: &str) -> DataElement {
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    DataElement {
        blob_storage_path: Some(format!("{}/{}/data/{id}", inst.app_id, inst.guid())),
        id,
        instance_guid: inst.guid().to_string(),
        data_type: file.data_type.clone(),
        filename: file.filename.clone(),
        content_type: Some(file.content_type.clone()),
        size: file.bytes.len() as i64,
        is_read: Some(true),
        file_scan_result: Some("NotApplicable".into()),
        created: Some(now),
        created_by: Some(actor.to_string()),
        last_changed: Some(now),
        last_changed_by: Some(actor.to_string()),
        ..Default::default()
    }
}

fn store_file(
    store: &Store,
    inst: &mut Instance,
    file: &NewFile,
    actor: &str,
) -> Result<DataElement, ActError> {
    let e = new_element(inst, file, actor);
    store.write_blob(&inst.app_id, inst.guid(), &e.id, &file.bytes)?;
    store.save_element(&e)?;
    inst.data.push(e.clone());
    Ok(e)
}

fn bump(inst: &mut Instance, actor: &str) {
    inst.last_changed = Some(Utc::now());
    inst.last_changed_by = Some(actor.to_string());
}

/// The form data of a submission by `party`.
fn form_file(app: &ApplicationMetadata, party: u32) -> Option<NewFile> {
    let dt = app.data_types.iter().find(|d| d.is_form())?;
    Some(NewFile {
        data_type: dt.id.clone(),
        filename: None,
        content_type: "application/xml".into(),
        bytes: xml::json_to_xml(xml::ROOT, &default_model(party)),
    })
}

fn submitted_instance(app: &ApplicationMetadata, party: u32, actor: &str) -> Instance {
    let now = Utc::now();
    let reg = auth::party(party);
    let guid = uuid::Uuid::new_v4();
    let mut inst = Instance {
        id: format!("{party}/{guid}"),
        instance_owner: InstanceOwner {
            party_id: party.to_string(),
            person_number: reg.and_then(|r| r.ssn).map(str::to_string),
            organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
            ..Default::default()
        },
        app_id: app.id.clone(),
        org: app.org.clone(),
        visible_after: Some(now),
        process: Some(ProcessState {
            started: Some(now),
            start_event: Some("StartEvent_1".into()),
            ended: Some(now),
            end_event: Some("EndEvent_1".into()),
            ..Default::default()
        }),
        created: Some(now),
        created_by: Some(actor.to_string()),
        ..Default::default()
    };
    inst.status.is_archived = true;
    inst.status.archived = Some(now);
    inst.status.read_status = ReadStatus::Read;
    bump(&mut inst, actor);
    inst
}

/// A user of `party` submits an instance of `app_id`: its form data and `files`, process
/// ended, not confirmed by anyone.
pub async fn submit(
    store: &Store,
    app_id: &str,
    party: u32,
    files: &[NewFile],
) -> Result<Instance, ActError> {
    let app = store
        .app(app_id)
        .ok_or_else(|| ActError::NoSuchApp(app_id.into()))?;
    let actor = user_of(party);
    let mut inst = submitted_instance(&app, party, &actor);
    let _g = store.lock(inst.guid()).await;
    for f in form_file(&app, party).iter().chain(files) {
        if app.data_type(&f.data_type).is_none() {
            return Err(ActError::NoSuchDataType(f.data_type.clone()));
        }
        store_file(store, &mut inst, f, &actor)?;
    }
    bump(&mut inst, &actor);
    store.save_instance(&inst)?;
    Ok(inst)
}

fn instance(store: &Store, guid: &str) -> Result<Instance, ActError> {
    store
        .get(guid)
        .ok_or_else(|| ActError::NoSuchInstance(guid.into()))
}

/// A user of the instance's party adds `file` (whatever the process state).
pub async fn add_element(
    store: &Store,
    guid: &str,
    file: &NewFile,
) -> Result<DataElement, ActError> {
    let _g = store.lock(guid).await;
    let mut inst = instance(store, guid)?;
    let app = store
        .app(&inst.app_id)
        .ok_or_else(|| ActError::NoSuchApp(inst.app_id.clone()))?;
    if app.data_type(&file.data_type).is_none() {
        return Err(ActError::NoSuchDataType(file.data_type.clone()));
    }
    let actor = user_of(inst.party_id().parse().unwrap_or(0));
    let e = store_file(store, &mut inst, file, &actor)?;
    bump(&mut inst, &actor);
    store.save_instance(&inst)?;
    Ok(e)
}

/// A user of the instance's party deletes an element.
pub async fn delete_element(
    store: &Store,
    guid: &str,
    element: &str,
) -> Result<Instance, ActError> {
    let _g = store.lock(guid).await;
    let mut inst = instance(store, guid)?;
    let idx = inst
        .data
        .iter()
        .position(|e| e.id == element)
        .ok_or_else(|| ActError::NoSuchElement(element.into()))?;
    inst.data.remove(idx);
    store.remove_element_files(&inst.app_id, guid, element);
    let actor = user_of(inst.party_id().parse().unwrap_or(0));
    bump(&mut inst, &actor);
    store.save_instance(&inst)?;
    Ok(inst)
}

/// `org` confirms the instance (POST `complete` as that org); confirming twice changes nothing.
pub async fn confirm(store: &Store, guid: &str, org: &str) -> Result<Instance, ActError> {
    let _g = store.lock(guid).await;
    let mut inst = instance(store, guid)?;
    if inst
        .complete_confirmations
        .iter()
        .any(|c| c.stakeholder_id == org)
    {
        return Ok(inst);
    }
    inst.complete_confirmations.push(CompleteConfirmation {
        stakeholder_id: org.to_string(),
        confirmed_on: Some(Utc::now()),
    });
    bump(&mut inst, org);
    store.save_instance(&inst)?;
    Ok(inst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::sample;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_app(&sample::app_metadata()).unwrap();
        (dir, store)
    }

    fn pdf() -> NewFile {
        NewFile {
            data_type: "attachment".into(),
            filename: Some("kvittering.pdf".into()),
            content_type: "application/pdf".into(),
            bytes: sample::content("pdf", 300, 1),
        }
    }

    #[tokio::test]
    async fn a_submission_is_ended_unconfirmed_with_form_and_files() {
        let (_d, store) = store();
        let app = "ttd/altinnfs-demo";
        let inst = submit(&store, app, 510001, &[pdf()]).await.unwrap();
        let stored = store.get(inst.guid()).unwrap();
        assert!(stored.process.as_ref().unwrap().ended.is_some());
        assert!(stored.complete_confirmations.is_empty());
        let types: Vec<&str> = stored.data.iter().map(|e| e.data_type.as_str()).collect();
        assert_eq!(types, ["model", "attachment"]);
        assert!(stored.last_changed >= stored.data[1].last_changed);
        assert_eq!(stored.last_changed_by.as_deref(), Some("1001"));
        let err = submit(
            &store,
            app,
            510001,
            &[NewFile {
                data_type: "nope".into(),
                ..pdf()
            }],
        )
        .await;
        assert!(matches!(err, Err(ActError::NoSuchDataType(_))));
    }

    #[tokio::test]
    async fn every_act_bumps_last_changed() {
        let (_d, store) = store();
        let inst = submit(&store, "ttd/altinnfs-demo", 510001, &[])
            .await
            .unwrap();
        let mut last = inst.last_changed;
        let e = add_element(&store, inst.guid(), &pdf()).await.unwrap();
        let now = store.get(inst.guid()).unwrap();
        assert!(now.last_changed > last && now.data.iter().any(|x| x.id == e.id));
        last = now.last_changed;
        let now = delete_element(&store, inst.guid(), &e.id).await.unwrap();
        assert!(now.last_changed > last && now.data.iter().all(|x| x.id != e.id));
        last = now.last_changed;
        let now = confirm(&store, inst.guid(), "ttd").await.unwrap();
        assert!(now.last_changed > last);
        assert_eq!(now.complete_confirmations[0].stakeholder_id, "ttd");
        let again = confirm(&store, inst.guid(), "ttd").await.unwrap();
        assert_eq!(again.last_changed, now.last_changed);
        assert!(matches!(
            delete_element(&store, inst.guid(), "x").await,
            Err(ActError::NoSuchElement(_))
        ));
    }
}
