//! The uploader: sends spools to Altinn (PUT of an existing element, POST of a new one; the
//! client's `Retrying` retries and probes), keeps what the server refused under `unsent/` with a JSON
//! sidecar, and holds the JSON views of form data. It owns the client calls of the write path
//! and the view cache (behind its own lock); it never touches the tree or the writer.

use super::error::{FsError, FsResult};
use super::layout;
use crate::altinn::client::{
    AltinnClient, AltinnError, Meaning, NewElement, Refusal, Replacement, UploadBody,
};
use crate::altinn::ids::{DataTypeId, ElementId, InstanceGuid, InstanceId, PartyId};
use crate::altinn::model::{DataElement, Instance};
use crate::altinn::rules;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bytes in a spool file, sent under `filename`.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub spool: &'a Path,
    pub len: u64,
    pub filename: &'a str,
}

/// Where the bytes were going (the `unsent/` sidecar says it).
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub path: &'a str,
    pub party: PartyId,
    pub guid: InstanceGuid,
    pub dt: &'a DataTypeId,
}

/// A JSON view as fetched: the element's lastChanged and size then, and the bytes.
type JsonView = (Option<chrono::DateTime<chrono::Utc>>, i64, Bytes);

pub struct Uploader<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    unsent: PathBuf,
    views: Mutex<HashMap<String, JsonView>>,
    max_views: usize,
}

impl<C: AltinnClient + ?Sized> Uploader<C> {
    pub fn new(client: Arc<C>, unsent: PathBuf, max_views: usize) -> Self {
        Self {
            client,
            unsent,
            views: Mutex::new(HashMap::new()),
            max_views,
        }
    }

    pub fn unsent_dir(&self) -> &Path {
        &self.unsent
    }

    /// PUT a spool to element `id`; the content type is that of the file name unless given
    /// (JSON views send `application/json` for an element named `X.xml`).
    pub async fn put(
        &self,
        inst: &InstanceId,
        id: &ElementId,
        out: Outgoing<'_>,
        content_type: Option<&str>,
    ) -> Result<DataElement, AltinnError> {
        let ct = content_type
            .map(String::from)
            .unwrap_or_else(|| rules::mime_for(out.filename));
        let body = UploadBody::File {
            path: out.spool.to_path_buf(),
            len: out.len,
        };
        self.client
            .replace_data(
                inst,
                id,
                Replacement {
                    filename: out.filename,
                    content_type: &ct,
                },
                body,
            )
            .await
    }

    /// A PUT refused with a bare 409: the App passes Storage's lock check on as a plain
    /// "Conflict" (altinn-api.md §1.3.2), so ask Storage what the element's state is. A locked
    /// element or an instance no longer active becomes that refusal (EPERM, SPEC §4); any
    /// other conflict stays one (EBUSY). Also returns the instance as fetched, for the cache.
    pub async fn explain_put_conflict(
        &self,
        inst: &InstanceId,
        id: &ElementId,
        err: AltinnError,
    ) -> (AltinnError, Option<Instance>) {
        if err.meaning() != Meaning::Refused(Refusal::Conflict) {
            return (err, None);
        }
        let fetched = match self.client.get_instance(inst).await {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!("/{inst}: cannot look up why a PUT conflicted: {e}");
                return (err, None);
            }
        };
        let locked = fetched.data.iter().any(|d| *id == d.id && d.locked);
        let why = if !fetched.is_active() {
            Some((Refusal::NotActive, "the instance is no longer active"))
        } else if locked {
            Some((
                Refusal::Locked,
                "the element is locked (its process task has ended)",
            ))
        } else {
            None
        };
        let err = match (why, err) {
            (
                Some((refusal, why)),
                AltinnError::Status {
                    status,
                    method,
                    path,
                    message,
                    problem,
                    retry_after,
                    ..
                },
            ) => AltinnError::Status {
                status,
                method,
                path,
                message: format!("{message}: {why}"),
                problem,
                retry_after,
                meaning: Meaning::Refused(refusal),
            },
            (_, err) => err,
        };
        (err, Some(fetched))
    }

    /// POST a new element. The client's retry policy probes before a resend, so a POST
    /// whose answer was lost never makes a duplicate.
    pub async fn post(
        &self,
        inst: &InstanceId,
        dt: &DataTypeId,
        out: Outgoing<'_>,
    ) -> Result<DataElement, AltinnError> {
        let ct = rules::mime_for(out.filename);
        let body = UploadBody::File {
            path: out.spool.to_path_buf(),
            len: out.len,
        };
        self.client
            .create_data(
                inst,
                NewElement {
                    data_type: dt,
                    filename: out.filename,
                    content_type: &ct,
                },
                body,
            )
            .await
    }

    /// Keep a spool that could not be sent under `unsent/` with a JSON sidecar.
    pub fn keep_unsent(&self, out: Outgoing<'_>, to: Destination<'_>, err: &FsError) {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let base = format!(
            "{stamp}-{}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8],
            layout::sanitize(out.filename)
        );
        let base = layout::shorten(&base, 240);
        let dest = self.unsent.join(&base);
        if std::fs::rename(out.spool, &dest).is_err() {
            if let Err(e) = std::fs::copy(out.spool, &dest) {
                let path = to.path;
                tracing::error!("{path}: upload failed ({err}) and the spool cannot be kept: {e}");
                return;
            }
        }
        let sidecar = serde_json::json!({
            "path": to.path,
            "party": to.party,
            "instance": to.guid,
            "dataType": to.dt,
            "filename": out.filename,
            "error": err.to_string(),
            "errno": err.errno(),
            "time": chrono::Utc::now().to_rfc3339(),
        });
        let side = self.unsent.join(format!("{base}.json"));
        let text = serde_json::to_vec_pretty(&sidecar).unwrap_or_default();
        if let Err(e) = super::write_private_file(&side, &text) {
            tracing::warn!("{}: cannot write the sidecar: {e}", side.display());
        }
        tracing::error!(
            "{err}; the bytes are kept in {} (details in {})",
            dest.display(),
            side.display()
        );
    }

    /// The JSON view of a form data element (App API GET with `Accept: application/json`),
    /// cached while the element's `lastChanged` and `size` are unchanged.
    pub async fn json_view(&self, inst: &InstanceId, el: &DataElement) -> FsResult<Bytes> {
        let id = ElementId::parse(&el.id).map_err(|e| {
            FsError::new(
                super::error::ErrorKind::Invalid(e.to_string()),
                format!("/{inst}"),
            )
        })?;
        if let Some((lc, size, b)) = self.views.lock().unwrap().get(&el.id) {
            if *lc == el.last_changed && *size == el.size {
                return Ok(b.clone());
            }
        }
        let b = self
            .client
            .get_form_data(inst, &id, "application/json")
            .await
            .map_err(|e| {
                let path = format!("/{}/{}/{}", inst.party, inst.guid, el.data_type);
                FsError::server(path, "GET data (Accept: application/json)", e)
            })?;
        let mut views = self.views.lock().unwrap();
        if views.len() >= self.max_views {
            views.clear();
        }
        views.insert(el.id.clone(), (el.last_changed, el.size, b.clone()));
        Ok(b)
    }

    /// The element behind a view changed: its view is fetched again.
    pub fn forget_json_view(&self, id: &ElementId) {
        self.views.lock().unwrap().remove(&id.to_string());
    }
}
