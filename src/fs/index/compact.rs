//! What the index stores of a document: the server's JSON without what the mount can compute
//! again on load, so that an instance costs a fraction of its JSON (SPEC §7.1: the index of a
//! big app stays small). Only values equal to what would be computed are left out, and each
//! leaves the marker `true` (never a value Storage sends there), so loading gives back exactly
//! the server's document:
//! - `selfLinks` of instances and elements: `{base}/instances/{id}[/data/{element}]`, from the
//!   two link bases learned from the first instance stored (kept in `meta`);
//! - an element's `blobStoragePath` (`{appId}/{guid}/data/{element}`) and `instanceGuid`.

use serde_json::{Map, Value};

/// The `meta` keys of the two link bases.
pub const APPS_BASE: &str = "links:apps";
pub const PLATFORM_BASE: &str = "links:platform";

/// The bases of `selfLinks` (`…/ttd/app` and `…/storage/api/v1`), once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkBases {
    pub apps: String,
    pub platform: String,
}

impl LinkBases {
    /// The bases an instance's own links were made from (None: links of another shape).
    pub fn learn(doc: &Value) -> Option<Self> {
        let id = doc.get("id")?.as_str()?;
        let links = doc.get("selfLinks")?;
        let suffix = format!("/instances/{id}");
        let base = |k: &str| Some(links.get(k)?.as_str()?.strip_suffix(&suffix)?.to_string());
        Some(Self {
            apps: base("apps")?,
            platform: base("platform")?,
        })
    }

    fn links(&self, path: &str) -> Value {
        serde_json::json!({
            "apps": format!("{}/instances/{path}", self.apps),
            "platform": format!("{}/instances/{path}", self.platform),
        })
    }
}

/// Replace `key` by the marker when it holds `computed`.
fn leave_out(o: &mut Map<String, Value>, key: &str, computed: &Value) {
    if o.get(key) == Some(computed) {
        o.insert(key.to_string(), Value::Bool(true));
    }
}

/// Put `computed` where the marker is.
fn put_back(o: &mut Map<String, Value>, key: &str, computed: impl FnOnce() -> Value) {
    if o.get(key) == Some(&Value::Bool(true)) {
        o.insert(key.to_string(), computed());
    }
}

/// The instance document as stored (`data` is stored apart, as elements).
pub fn compact_instance(doc: &mut Value, bases: Option<&LinkBases>) {
    let (Some(b), Some(id)) = (bases, doc.get("id").and_then(Value::as_str)) else {
        return;
    };
    let links = b.links(id);
    if let Some(o) = doc.as_object_mut() {
        leave_out(o, "selfLinks", &links);
    }
}

pub fn expand_instance(doc: &mut Value, bases: Option<&LinkBases>) {
    let Some(id) = doc.get("id").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    if let (Some(o), Some(b)) = (doc.as_object_mut(), bases) {
        put_back(o, "selfLinks", || b.links(&id));
    }
}

/// Where an element of an instance is: the instance id (`party/guid`), its guid, its app.
pub struct Owner<'a> {
    pub instance_id: &'a str,
    pub guid: &'a str,
    pub app_id: &'a str,
}

impl Owner<'_> {
    fn blob_path(&self, element: &str) -> Value {
        Value::String(format!("{}/{}/data/{element}", self.app_id, self.guid))
    }
}

pub fn compact_element(doc: &mut Value, owner: &Owner, bases: Option<&LinkBases>) {
    let Some(el) = doc.get("id").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Some(o) = doc.as_object_mut() else { return };
    leave_out(o, "instanceGuid", &Value::String(owner.guid.to_string()));
    leave_out(o, "blobStoragePath", &owner.blob_path(&el));
    if let Some(b) = bases {
        leave_out(
            o,
            "selfLinks",
            &b.links(&format!("{}/data/{el}", owner.instance_id)),
        );
    }
}

pub fn expand_element(doc: &mut Value, owner: &Owner, bases: Option<&LinkBases>) {
    let Some(el) = doc.get("id").and_then(Value::as_str).map(str::to_string) else {
        return;
    };
    let Some(o) = doc.as_object_mut() else { return };
    put_back(o, "instanceGuid", || Value::String(owner.guid.to_string()));
    put_back(o, "blobStoragePath", || owner.blob_path(&el));
    if let Some(b) = bases {
        put_back(o, "selfLinks", || {
            b.links(&format!("{}/data/{el}", owner.instance_id))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bases() -> LinkBases {
        LinkBases {
            apps: "https://ttd.apps/ttd/app".into(),
            platform: "https://platform/storage/api/v1".into(),
        }
    }

    #[test]
    fn computed_fields_are_left_out_and_come_back_exactly() {
        let inst = json!({"id": "5/g", "appId": "ttd/app", "selfLinks": {
            "apps": "https://ttd.apps/ttd/app/instances/5/g",
            "platform": "https://platform/storage/api/v1/instances/5/g"}});
        assert_eq!(LinkBases::learn(&inst), Some(bases()));
        let mut doc = inst.clone();
        compact_instance(&mut doc, Some(&bases()));
        assert_eq!(doc["selfLinks"], json!(true));
        expand_instance(&mut doc, Some(&bases()));
        assert_eq!(doc, inst);

        let owner = Owner {
            instance_id: "5/g",
            guid: "g",
            app_id: "ttd/app",
        };
        let el = json!({"id": "e", "instanceGuid": "g", "blobStoragePath": "ttd/app/g/data/e",
            "selfLinks": {"apps": "https://ttd.apps/ttd/app/instances/5/g/data/e",
                          "platform": "https://platform/storage/api/v1/instances/5/g/data/e"},
            "size": 3});
        let mut doc = el.clone();
        compact_element(&mut doc, &owner, Some(&bases()));
        assert_eq!(
            doc,
            json!({"id": "e", "instanceGuid": true, "blobStoragePath": true,
            "selfLinks": true, "size": 3})
        );
        expand_element(&mut doc, &owner, Some(&bases()));
        assert_eq!(doc, el);
    }

    #[test]
    fn values_of_another_shape_and_absent_ones_are_kept_as_they_are() {
        let owner = Owner {
            instance_id: "5/g",
            guid: "g",
            app_id: "ttd/app",
        };
        let el = json!({"id": "e", "instanceGuid": "other", "blobStoragePath": "elsewhere/e",
            "selfLinks": {"apps": "https://other/instances/5/g/data/e"}});
        let mut doc = el.clone();
        compact_element(&mut doc, &owner, Some(&bases()));
        assert_eq!(doc, el);
        let bare = json!({"id": "e"});
        let mut doc = bare.clone();
        compact_element(&mut doc, &owner, Some(&bases()));
        expand_element(&mut doc, &owner, Some(&bases()));
        assert_eq!(
            doc, bare,
            "nothing is invented where the server sent nothing"
        );
        let mut inst = json!({"id": "5/g", "selfLinks": {"apps": "x"}});
        compact_instance(&mut inst, None);
        assert_eq!(inst["selfLinks"], json!({"apps": "x"}));
    }
}
