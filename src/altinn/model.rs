//! Wire models of the Altinn App and Storage APIs (altinn-api.md §4).
//!
//! They read both dialects: App responses (enums as numbers, nulls written) and Storage
//! responses (enums as strings, nulls omitted). Unknown fields are kept in `extra` so that
//! `instance.json` shows what the server sent. Serialising writes the Storage dialect.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub type Timestamp = DateTime<Utc>;

/// `status.readStatus`: a number in App JSON (0/1/2), a string in Storage JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadStatus {
    #[default]
    Unread,
    Read,
    UpdatedSinceLastReview,
}

impl Serialize for ReadStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            ReadStatus::Unread => "Unread",
            ReadStatus::Read => "Read",
            ReadStatus::UpdatedSinceLastReview => "UpdatedSinceLastReview",
        })
    }
}

impl<'de> Deserialize<'de> for ReadStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match &v {
            Value::Number(n) => match n.as_i64() {
                Some(1) => ReadStatus::Read,
                Some(2) => ReadStatus::UpdatedSinceLastReview,
                _ => ReadStatus::Unread,
            },
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "read" => ReadStatus::Read,
                "updatedsincelastreview" => ReadStatus::UpdatedSinceLastReview,
                _ => ReadStatus::Unread,
            },
            _ => ReadStatus::Unread,
        })
    }
}

/// A number or a string, kept as given (`partyTypeName`, `partyId` in some payloads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumOrString {
    Num(i64),
    Str(String),
}

impl NumOrString {
    pub fn as_string(&self) -> String {
        match self {
            NumOrString::Num(n) => n.to_string(),
            NumOrString::Str(s) => s.clone(),
        }
    }
}

fn de_null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `partyId` is a string in Storage's InstanceOwner but a number elsewhere; accept both.
fn de_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<NumOrString>::deserialize(d)? {
        Some(v) => v.as_string(),
        None => String::new(),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceOwner {
    #[serde(default, deserialize_with = "de_string_or_number")]
    pub party_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_identifier: Option<String>,
    /// App responses add the party object; kept as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLinks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessElementInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altinn_task_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<ProcessElementInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_event: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Substatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    #[serde(default, deserialize_with = "de_null_default")]
    pub is_archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub is_soft_deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_deleted: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub is_hard_deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_deleted: Option<Timestamp>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub read_status: ReadStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<Substatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteConfirmation {
    #[serde(default)]
    pub stakeholder_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_on: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStatus {
    #[serde(default, deserialize_with = "de_null_default")]
    pub is_hard_deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_deleted: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataElement {
    pub id: String,
    #[serde(default)]
    pub instance_guid: String,
    #[serde(default)]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_storage_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_links: Option<ResourceLinks>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub locked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read: Option<bool>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_defined_metadata: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Vec<KeyValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_status: Option<DeleteStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_scan_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_by: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// `"{instanceOwnerPartyId}/{instanceGuid}"`.
    pub id: String,
    #[serde(default)]
    pub instance_owner: InstanceOwner,
    #[serde(default)]
    pub app_id: String,
    #[serde(default)]
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_links: Option<ResourceLinks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_after: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessState>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub status: InstanceStatus,
    #[serde(default, deserialize_with = "de_null_default")]
    pub complete_confirmations: Vec<CompleteConfirmation>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub data: Vec<DataElement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation_texts: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_values: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_by: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Instance {
    /// The instance GUID (the part of `id` after the slash).
    pub fn guid(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }
    /// The owner party id, from `instanceOwner.partyId` or the `id` prefix.
    pub fn party_id(&self) -> String {
        if !self.instance_owner.party_id.is_empty() {
            return self.instance_owner.party_id.clone();
        }
        self.id.split('/').next().unwrap_or_default().to_string()
    }
    /// "Active" as app-lib defines it: not archived, not soft- or hard-deleted.
    pub fn is_active(&self) -> bool {
        self.status.archived.is_none()
            && !self.status.is_archived
            && self.status.soft_deleted.is_none()
            && self.status.hard_deleted.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationLogic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_anonymous_on_stateless: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_delete_on_process_end: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disallow_user_create: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disallow_user_delete: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataType {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub allowed_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_contributors: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_contributers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_required_to_read: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_required_to_write: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_logic: Option<ApplicationLogic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// MiB; `None` = no limit below 2000 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<i64>,
    /// `<= 0` = unlimited.
    #[serde(default, deserialize_with = "de_null_default")]
    pub max_count: i64,
    #[serde(default, deserialize_with = "de_null_default")]
    pub min_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_pdf_creation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_file_scan: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DataType {
    /// Form data: a data type with `appLogic.classRef`.
    pub fn is_form(&self) -> bool {
        self.app_logic
            .as_ref()
            .and_then(|l| l.class_ref.as_deref())
            .is_some_and(|c| !c.is_empty())
    }
    /// The main form: form data with maxCount 1 and minCount 1; Altinn refuses its delete.
    pub fn is_main_form(&self) -> bool {
        self.is_form() && self.max_count == 1 && self.min_count == 1
    }
    pub fn max_size_bytes(&self) -> Option<u64> {
        self.max_size
            .filter(|m| *m >= 0)
            .map(|m| m as u64 * 1024 * 1024)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationMetadata {
    pub id: String,
    #[serde(default)]
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub data_types: Vec<DataType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_types_allowed: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_delete_on_process_end: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_instance_deletion_for_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApplicationMetadata {
    pub fn data_type(&self, id: &str) -> Option<&DataType> {
        self.data_types.iter().find(|d| d.id == id)
    }
}

/// Storage `GET /instances` page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    #[serde(default, deserialize_with = "de_null_default")]
    pub count: i64,
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataElementList {
    #[serde(default, deserialize_with = "de_null_default")]
    pub data_elements: Vec<DataElement>,
}

/// One validation issue (`uploadValidationIssues[]`, `validationIssues[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationIssue {
    #[serde(default, deserialize_with = "de_null_default")]
    pub severity: i64,
    #[serde(default)]
    pub data_element_id: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// RFC 7807 ProblemDetails, with Altinn's extensions that altinnfs reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `DataPostErrorResponse.uploadValidationIssues`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_validation_issues: Option<Vec<ValidationIssue>>,
    /// Process `next` refusals carry `validationIssues`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_issues: Option<Vec<ValidationIssue>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// App `POST data/{dataType}` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataPostResponse {
    pub new_data_element_id: String,
    pub instance: Instance,
    #[serde(default, deserialize_with = "de_null_default")]
    pub validation_issues: Vec<Value>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub new_data_models: Vec<Value>,
}

/// A party as `api/v1/parties` returns it (only the fields altinnfs uses).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub party_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party_type_name: Option<NumOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_null_default")]
    pub is_deleted: bool,
    #[serde(default, deserialize_with = "de_null_default")]
    pub child_parties: Vec<Party>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_app_dialect_with_numbers_and_nulls() {
        let j = r#"{"id":"510001/6d2a1c0e-0000-4000-8000-000000000001","instanceOwner":{"partyId":"510001","personNumber":null,"party":{"partyTypeName":1}},
          "appId":"ttd/a","org":"ttd","status":{"isArchived":false,"archived":null,"readStatus":1,"substatus":null},
          "data":[{"id":"x","dataType":"model","filename":null,"size":12,"locked":false,"tags":null,"contentHash":null}],
          "completeConfirmations":null,"lastChanged":"2026-01-02T03:04:05.123Z"}"#;
        let i: Instance = serde_json::from_str(j).unwrap();
        assert_eq!(i.status.read_status, ReadStatus::Read);
        assert_eq!(i.party_id(), "510001");
        assert_eq!(i.guid(), "6d2a1c0e-0000-4000-8000-000000000001");
        assert_eq!(i.data[0].size, 12);
        assert!(i.data[0].filename.is_none());
        assert!(i.is_active());
    }

    #[test]
    fn reads_storage_dialect_with_strings_and_omissions() {
        let j = r#"{"id":"500000/6d2a1c0e-0000-4000-8000-000000000002","instanceOwner":{"partyId":"500000"},
          "status":{"readStatus":"UpdatedSinceLastReview","archived":"2026-01-01T00:00:00Z","isArchived":true},
          "data":[{"id":"y","dataType":"attachment","fileScanResult":"Clean","size":3}]}"#;
        let i: Instance = serde_json::from_str(j).unwrap();
        assert_eq!(i.status.read_status, ReadStatus::UpdatedSinceLastReview);
        assert!(!i.is_active());
        assert_eq!(i.data[0].file_scan_result.as_deref(), Some("Clean"));
        // Storage dialect out: nulls omitted, enums as strings.
        let out = serde_json::to_string(&i).unwrap();
        assert!(out.contains("\"readStatus\":\"UpdatedSinceLastReview\""));
        assert!(!out.contains("null"));
    }

    #[test]
    fn reads_query_response_and_upload_error() {
        let q: QueryResponse =
            serde_json::from_str(r#"{"count":0,"self":"http://x/a","instances":[]}"#).unwrap();
        assert!(q.next.is_none());
        let p: ProblemDetails = serde_json::from_str(r#"{"title":"File validation failed","status":400,"detail":"Common checks failed","uploadValidationIssues":[{"severity":1,"dataElementId":null,"field":null,"code":"MissingFileName","description":"d","source":"DataRestrictionValidation"}]}"#).unwrap();
        assert_eq!(
            p.upload_validation_issues.unwrap()[0].code.as_deref(),
            Some("MissingFileName")
        );
    }

    #[test]
    fn data_type_rules() {
        let d: DataType = serde_json::from_str(r#"{"id":"model","appLogic":{"classRef":"App.Models.Model"},"maxCount":1,"minCount":1,"maxSize":null,"allowedContentTypes":null}"#).unwrap();
        assert!(d.is_form() && d.is_main_form());
        assert!(d.allowed_content_types.is_empty());
        let a: DataType = serde_json::from_str(r#"{"id":"att","maxSize":2,"maxCount":0}"#).unwrap();
        assert!(!a.is_form());
        assert_eq!(a.max_size_bytes(), Some(2 * 1024 * 1024));
    }
}
