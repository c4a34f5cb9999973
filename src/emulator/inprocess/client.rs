//! `AltinnClient` over the emulator's service: each operation does what its route does, minus
//! HTTP, and answers with the model the HTTP client would decode from the route's JSON.

use super::knobs::{finish, UploadSeen};
use super::{decoded, refused, InProcessClient, BASE};
use crate::altinn::client::*;
use crate::altinn::faults::Op;
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use crate::altinn::rules;
use crate::emulator::auth::Principal;
use crate::emulator::server::{app_element_json, app_json, element_links, storage_json};
use crate::emulator::service::data_write::{BodyStream, InstanceScope, Upload};
use crate::emulator::service::instances::{self, Read};
use crate::emulator::service::refusal::Wire;
use crate::emulator::service::stateless::{self, Model, StatelessRequest, Verb};
use crate::emulator::service::storage::{self, Blob};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

/// Downloads come in chunks of this size (a knob can slow or cut them).
const CHUNK: usize = 64 * 1024;

fn upload_stream(body: &UploadBody) -> Result<BodyStream> {
    Ok(match body {
        UploadBody::Bytes(b) => Box::pin(futures_util::stream::iter([Ok(b.clone())])),
        UploadBody::File { path, len } => {
            let file = std::fs::File::open(path).map_err(|e| {
                AltinnError::Local(format!("cannot open spool {}: {e}", path.display()))
            })?;
            use tokio::io::AsyncReadExt;
            let file = tokio::fs::File::from_std(file).take(*len);
            let s = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
            Box::pin(s.map(|c| c.map_err(|e| e.to_string())))
        }
    })
}

/// A stored blob in chunks of [`CHUNK`] bytes.
fn blob_chunks(blob: Blob) -> BodyStream {
    match blob {
        Blob::File { file, len } => {
            use tokio::io::AsyncReadExt;
            let s = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK);
            Box::pin(s.map(|c| c.map_err(|e| e.to_string())))
        }
        Blob::Bytes(b) => {
            let b = Bytes::from(b);
            let parts: Vec<_> = (0..b.len())
                .step_by(CHUNK)
                .map(|i| Ok(b.slice(i..(i + CHUNK).min(b.len()))))
                .collect();
            Box::pin(futures_util::stream::iter(parts))
        }
    }
}

/// How a download's chunks reach the client: after `delay` each, and failing as a cut
/// connection does once `cut` bytes are sent (the knobs a test sets).
#[derive(Clone)]
struct Delivery {
    path: String,
    total: u64,
    cut: Option<u64>,
    delay: Option<std::time::Duration>,
}

/// A download between two chunks.
struct Sending {
    chunks: BodyStream,
    sent: u64,
    /// An error was the last item: nothing follows it.
    ended: bool,
}

impl Delivery {
    fn stream(self, chunks: BodyStream) -> impl futures_util::Stream<Item = Result<Bytes>> {
        let start = Sending {
            chunks,
            sent: 0,
            ended: false,
        };
        futures_util::stream::unfold(start, move |s| self.clone().next(s))
    }

    /// The next chunk (short at the cut), or the error where the stream breaks off.
    async fn next(self, mut s: Sending) -> Option<(Result<Bytes>, Sending)> {
        if s.ended {
            return None;
        }
        if let Some(at) = self.cut.filter(|at| s.sent >= *at) {
            let err = AltinnError::Truncated {
                path: self.path,
                expected: self.total,
                got: at,
            };
            s.ended = true;
            return Some((Err(err), s));
        }
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let mut chunk = match s.chunks.next().await? {
            Ok(c) => c,
            Err(message) => {
                let err = AltinnError::Network {
                    method: "GET".into(),
                    path: self.path,
                    message,
                };
                s.ended = true;
                return Some((Err(err), s));
            }
        };
        if let Some(at) = self.cut {
            chunk.truncate((at - s.sent).min(chunk.len() as u64) as usize);
        }
        s.sent += chunk.len() as u64;
        Some((Ok(chunk), s))
    }
}

/// A data write request as the HTTP client sends it: exact length, its Content-Type and the
/// Content-Disposition `rules::content_disposition` writes.
fn upload(filename: &str, content_type: &str, body: &UploadBody) -> Result<Upload> {
    Ok(Upload {
        content_length: Some(body.len()),
        content_type: Some(content_type.to_string()),
        disposition: Some(rules::content_disposition(filename)),
        body: Some(upload_stream(body)?),
    })
}

/// The element as the App API renders it (links, every member).
fn app_element(inst: &Instance, mut el: DataElement) -> serde_json::Value {
    element_links(&mut el, BASE, &inst.app_id, &inst.id);
    app_element_json(&el)
}

impl InProcessClient {
    fn app_path(&self, rest: &str) -> String {
        format!("/{}/{rest}", self.app_id)
    }

    /// The caller and the app, or the answer that stops the request.
    fn caller(&self) -> std::result::Result<(Principal, ApplicationMetadata), Wire> {
        let p = self.principal()?;
        let meta = self
            .shared
            .store
            .app(&self.app_id)
            .ok_or_else(|| Wire::empty(404))?;
        Ok((p, meta))
    }

    /// Run `f` with a writer for the instance `inst` as the App API reaches it.
    async fn on_instance<T, F>(&self, method: &str, inst: &InstanceId, f: F) -> Result<T>
    where
        F: for<'w> FnOnce(
            &'w InstanceScope<'w>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::result::Result<T, Wire>> + Send + 'w>,
        >,
    {
        let path = self.app_path(&format!("instances/{inst}"));
        let (p, meta) = self.caller().map_err(|w| refused(method, &path, w))?;
        let store = &self.shared.store;
        let (party, guid) = (inst.party.to_string(), inst.guid.to_string());
        let w = instances::reach(store, &meta, &p, (&party, &guid))
            .map_err(|w| refused(method, &path, w))?;
        f(&w).await.map_err(|w| refused(method, &path, w))
    }

    /// Storage's instance by GUID for the caller.
    fn storage_instance(&self, inst: &InstanceId) -> std::result::Result<Instance, Wire> {
        let p = self.principal()?;
        let (party, guid) = (inst.party.to_string(), inst.guid.to_string());
        storage::lookup(&self.shared.store, &p, &party, &guid)
    }

    fn query_params(&self, params: &QueryParams, next: Option<&str>) -> Vec<(String, String)> {
        let mut v = match next {
            Some(n) => {
                let q = n.split_once('?').map(|(_, q)| q);
                crate::emulator::http::parse_query(q)
            }
            None => {
                let mut v = params.clone();
                if !v.iter().any(|(k, _)| k == "appId") {
                    v.insert(0, ("appId".into(), self.app_id.clone()));
                }
                v
            }
        };
        if let Some(n) = self.knobs.page_size() {
            v.retain(|(k, _)| !k.eq_ignore_ascii_case("size"));
            v.push(("size".into(), n.to_string()));
        }
        v
    }

    /// Storage's `next`: these parameters with the continuation token, encoded as Storage
    /// encodes it (twice).
    fn next_link(params: &[(String, String)], token: &str) -> String {
        use crate::emulator::http::qenc;
        let mut q: Vec<String> = params
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("continuationToken"))
            .map(|(k, v)| format!("{}={}", qenc(k), qenc(v)))
            .collect();
        q.push(format!("continuationToken={}", qenc(&qenc(token))));
        format!("{BASE}/storage/api/v1/instances?{}", q.join("&"))
    }

    /// Element `id`'s bytes as a download, slowed and cut where the knobs say.
    fn blob_stream(&self, id: &str, blob: Blob) -> Download {
        let total = blob.len();
        let delivery = Delivery {
            path: format!("data/{id}"),
            total,
            cut: self.knobs.truncation(id).map(|n| n.min(total)),
            delay: self.knobs.chunk_delay(),
        };
        Download {
            content_length: Some(total),
            content_type: None,
            accept_ranges: false,
            stream: Box::pin(delivery.stream(blob_chunks(blob))),
        }
    }

    async fn stateless(&self, verb: Verb, req: StatelessParts<'_>) -> Result<Bytes> {
        let path = self.app_path("v1/data");
        let (p, meta) = self.caller().map_err(|w| refused("POST", &path, w))?;
        let party = req.party.map(|p| format!("partyid:{p}"));
        let r = StatelessRequest {
            verb,
            data_type: Some(req.data_type.as_str()),
            party: party.as_deref(),
            prefill: None,
            content_type: req.content_type,
            body: req.body,
            accept: req.accept,
        };
        let seed = self.shared.cfg.seed_stateless;
        match stateless::answer(seed, &meta, &p, &r) {
            Ok(Model::Xml(x)) => Ok(Bytes::from(x)),
            Ok(Model::Json(v)) => Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default())),
            Err(w) => Err(refused("POST", &path, w)),
        }
    }
}

/// A stateless request's parts.
struct StatelessParts<'a> {
    data_type: &'a DataTypeId,
    party: Option<PartyId>,
    content_type: Option<&'a str>,
    body: &'a [u8],
    accept: &'a str,
}

#[async_trait]
impl AltinnClient for InProcessClient {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        let after = self.knobs.enter(Op::Metadata)?;
        let path = self.app_path("api/v1/applicationmetadata");
        let r = self.shared.store.app(&self.app_id);
        let r = r.ok_or_else(|| refused("GET", &path, Wire::empty(404)));
        finish(after, r)
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        let after = self.knobs.enter(Op::Parties)?;
        let path = self.app_path("api/v1/parties");
        let p = self.principal().map_err(|w| refused("GET", &path, w))?;
        let v = serde_json::Value::Array(instances::parties(&p));
        finish(after, decoded(&path, v))
    }

    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        let after = self.knobs.enter(Op::QueryPage)?;
        let path = "/storage/api/v1/instances";
        let q = self.query_params(params, next);
        let p = self.principal().map_err(|w| refused("GET", path, w))?;
        let page =
            storage::query(&self.shared.store, &p, &q).map_err(|w| refused("GET", path, w))?;
        let instances: Vec<serde_json::Value> = page
            .instances
            .iter()
            .map(|i| storage_json(i, BASE))
            .collect();
        let mut v = serde_json::json!({ "count": instances.len(), "instances": instances });
        if let Some(key) = &page.next {
            v["next"] = serde_json::json!(Self::next_link(&q, &key.token()));
        }
        finish(after, decoded(path, v))
    }

    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        let after = self.knobs.enter(Op::GetInstance)?;
        let path = format!("/storage/api/v1/instances/{inst}");
        let i = self
            .storage_instance(inst)
            .map_err(|w| refused("GET", &path, w))?;
        finish(after, decoded(&path, storage_json(&i, BASE)))
    }

    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        let after = self.knobs.enter(Op::ListElements)?;
        let path = format!("/storage/api/v1/instances/{inst}/dataelements");
        let i = self
            .storage_instance(inst)
            .map_err(|w| refused("GET", &path, w))?;
        let v = serde_json::to_value(crate::emulator::server::with_links(&i, BASE).data);
        finish(after, decoded(&path, v.unwrap_or_default()))
    }

    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        let after = self.knobs.enter(Op::Download)?;
        let path = format!("/storage/api/v1/instances/{inst}/data/{data_id}");
        let fail = |w| refused("GET", &path, w);
        let i = self.storage_instance(inst).map_err(fail)?;
        let data_id = data_id.to_string();
        let e = storage::element(&i, &data_id).map_err(fail)?;
        let blob = storage::blob(&self.shared.store, &i, e)
            .await
            .map_err(fail)?;
        let mut d = self.blob_stream(&data_id, blob);
        d.content_type = Some(e.content_type.clone().unwrap_or(rules::OCTET_STREAM.into()));
        finish(after, Ok(d))
    }

    async fn get_form_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        accept: &str,
    ) -> Result<Bytes> {
        let after = self.knobs.enter(Op::GetFormData)?;
        let d = data_id.to_string().to_ascii_lowercase();
        let accept = accept.to_string();
        let read = self
            .on_instance("GET", inst, |w| {
                Box::pin(async move { w.read_data(&d, None, &accept).await })
            })
            .await?;
        let bytes = match read {
            Read::Xml(x) => Bytes::from(x),
            Read::Json(v) => Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
            Read::Blob(Blob::Bytes(b), _) => Bytes::from(b),
            Read::Blob(Blob::File { mut file, .. }, _) => {
                use tokio::io::AsyncReadExt;
                let mut v = Vec::new();
                file.read_to_end(&mut v)
                    .await
                    .map_err(|e| AltinnError::Local(e.to_string()))?;
                Bytes::from(v)
            }
        };
        finish(after, Ok(bytes))
    }

    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let after = self.knobs.enter(Op::CreateData)?;
        let NewElement {
            data_type,
            filename,
            content_type,
        } = new;
        let mut up = upload(filename, content_type, &body)?;
        let dt = data_type.to_string();
        let (i, el) = self
            .on_instance("POST", inst, |w| {
                Box::pin(async move { w.post(&dt, &mut up).await.map_err(|f| f.wire()) })
            })
            .await?;
        self.knobs.record_upload(UploadSeen {
            method: "POST",
            filename: filename.into(),
            content_type: content_type.into(),
            size: body.len(),
        });
        let v = serde_json::json!({
            "newDataElementId": el.id,
            "instance": app_json(&i, BASE),
        });
        let resp: DataPostResponse = decoded("POST data", v)?;
        let el = resp
            .instance
            .data
            .into_iter()
            .find(|d| d.id == resp.new_data_element_id);
        let el = el.ok_or_else(|| AltinnError::Decode {
            path: "POST data".into(),
            message: "the new data element is missing from the answer".into(),
        });
        finish(after, el)
    }

    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let after = self.knobs.enter(Op::ReplaceData)?;
        let Replacement {
            filename,
            content_type,
        } = replacement;
        let mut up = upload(filename, content_type, &body)?;
        let d = data_id.to_string().to_ascii_lowercase();
        let (i, el) = self
            .on_instance("PUT", inst, |w| {
                Box::pin(async move { w.put(&d, None, &mut up).await.map_err(|f| f.wire()) })
            })
            .await?;
        self.knobs.record_upload(UploadSeen {
            method: "PUT",
            filename: filename.into(),
            content_type: content_type.into(),
            size: body.len(),
        });
        finish(after, decoded("PUT data", app_element(&i, el)))
    }

    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        let after = self.knobs.enter(Op::DeleteData)?;
        let d = data_id.to_string().to_ascii_lowercase();
        self.on_instance("DELETE", inst, |w| {
            Box::pin(async move { w.delete(&d).await.map_err(|f| f.wire()) })
        })
        .await?;
        finish(after, Ok(()))
    }

    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        let after = self.knobs.enter(Op::CreateInstance)?;
        let path = self.app_path("instances");
        let fail = |w| refused("POST", &path, w);
        let (p, meta) = self.caller().map_err(fail)?;
        let i = instances::create(
            &self.shared.store,
            &meta,
            &p,
            Some(&party.to_string()),
            None,
        )
        .map_err(fail)?;
        finish(after, decoded(&path, app_json(&i, BASE)))
    }

    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        let after = self.knobs.enter(Op::DeleteInstance)?;
        let i = self
            .on_instance("DELETE", inst, |w| {
                Box::pin(async move { w.delete_instance(hard).await })
            })
            .await?;
        finish(after, decoded("DELETE instance", app_json(&i, BASE)))
    }

    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        let after = self.knobs.enter(Op::CompleteInstance)?;
        let i = self
            .on_instance("POST", inst, |w| {
                Box::pin(async move { w.complete().await })
            })
            .await?;
        finish(after, decoded("POST complete", app_json(&i, BASE)))
    }

    async fn process_next(&self, inst: &InstanceId, _action: Option<&str>) -> Result<ProcessState> {
        let after = self.knobs.enter(Op::ProcessNext)?;
        let i = self
            .on_instance("PUT", inst, |w| {
                Box::pin(async move { w.process_next().await })
            })
            .await?;
        let v = instances::process_json(i.process.as_ref());
        finish(after, decoded("PUT process/next", v))
    }

    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        accept: &str,
    ) -> Result<Bytes> {
        let after = self.knobs.enter(Op::StatelessCreate)?;
        let verb = match self.shared.cfg.seed_stateless {
            true => Verb::Post,
            false => Verb::Get,
        };
        let parts = StatelessParts {
            data_type,
            party,
            content_type: None,
            body: &[],
            accept,
        };
        finish(after, self.stateless(verb, parts).await)
    }

    async fn stateless_calculate(
        &self,
        data_type: &DataTypeId,
        party: Option<PartyId>,
        content_type: &str,
        body: Bytes,
        accept: &str,
    ) -> Result<Bytes> {
        let after = self.knobs.enter(Op::StatelessCalculate)?;
        let verb = match self.shared.cfg.seed_stateless {
            true => Verb::Put,
            false => Verb::Post,
        };
        let parts = StatelessParts {
            data_type,
            party,
            content_type: Some(content_type),
            body: &body,
            accept,
        };
        finish(after, self.stateless(verb, parts).await)
    }
}
