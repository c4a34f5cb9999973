//! `AltinnClient` for `MemoryClient`: each operation counted, checked against the fault hooks,
//! and answered with Altinn's rules and status codes.

use super::*;

/// The content type an element keeps after an upload: Altinn stores form data as XML whatever
/// the request sent (app-lib reads a JSON body into the model and writes it as XML), so a form
/// element stays `application/xml` and its file stays `NAME.xml`; other data keeps the type
/// it was sent with. (The bytes here are kept as sent: this fake does not convert.)
fn stored_content_type(dt: &DataType, sent: &str) -> String {
    if dt.is_form() {
        "application/xml".into()
    } else {
        sent.into()
    }
}

#[async_trait]
impl AltinnClient for MemoryClient {
    async fn application_metadata(&self) -> Result<ApplicationMetadata> {
        let after = self.enter(Op::Metadata)?;
        let m = self.state.lock().unwrap().meta.clone();
        Self::finish(after, Ok(m))
    }

    async fn parties(&self) -> Result<Vec<Party>> {
        let after = self.enter(Op::Parties)?;
        let st = self.state.lock().unwrap();
        let r = if st.org_token {
            Err(status_error(403, "GET", "api/v1/parties", "Forbidden"))
        } else {
            Ok(st.parties.clone())
        };
        Self::finish(after, r)
    }

    async fn query_page(&self, params: &QueryParams, next: Option<&str>) -> Result<QueryResponse> {
        let after = self.enter(Op::Query)?;
        let st = self.state.lock().unwrap();
        let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
        let party = get("instanceOwner.partyId");
        if !st.org_token {
            match &party {
                None => {
                    return Err(status_error(
                        400,
                        "GET",
                        "storage/api/v1/instances",
                        "Missing instanceOwner.partyId",
                    ))
                }
                Some(p) if !st.parties.iter().any(|x| x.party_id.to_string() == *p) => {
                    return Err(status_error(
                        403,
                        "GET",
                        "storage/api/v1/instances",
                        "Forbidden",
                    ))
                }
                _ => {}
            }
        }
        let archived = get("status.isArchived");
        let mut all: Vec<&Instance> = st
            .instances
            .values()
            .filter(|i| party.as_ref().is_none_or(|p| i.party_id() == *p))
            .filter(|i| !i.status.is_hard_deleted)
            .filter(|i| match archived.as_deref() {
                Some("true") => !i.is_active(),
                Some("false") => i.is_active(),
                _ => true,
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let start: usize = next
            .and_then(|n| n.rsplit("continuationToken=").next())
            .and_then(|t| t.split('&').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let end = (start + st.page_size).min(all.len());
        let instances: Vec<Instance> = all[start.min(end)..end]
            .iter()
            .map(|i| (*i).clone())
            .collect();
        let next = (end < all.len()).then(|| format!("memory://instances?continuationToken={end}"));
        Self::finish(
            after,
            Ok(QueryResponse {
                count: instances.len() as i64,
                self_link: None,
                next,
                instances,
            }),
        )
    }

    async fn get_instance(&self, inst: &InstanceId) -> Result<Instance> {
        let after = self.enter(Op::GetInstance)?;
        let st = self.state.lock().unwrap();
        let r = st
            .instances
            .get(&inst.guid.to_string())
            .filter(|i| inst.party == i.party_id() && !i.status.is_hard_deleted)
            .cloned()
            .ok_or_else(|| status_error(404, "GET", "instances", "Instance Not Found"));
        Self::finish(after, r)
    }

    async fn list_data_elements(&self, inst: &InstanceId) -> Result<Vec<DataElement>> {
        let after = self.enter(Op::ListElements)?;
        let st = self.state.lock().unwrap();
        let r = st
            .instances
            .get(&inst.guid.to_string())
            .map(|i| i.data.clone())
            .ok_or_else(|| status_error(404, "GET", "dataelements", "Instance Not Found"));
        Self::finish(after, r)
    }

    async fn download(&self, inst: &InstanceId, data_id: &ElementId) -> Result<Download> {
        let data_id: &str = &data_id.to_string();
        let after = self.enter(Op::Download)?;
        let (bytes, cut, delay) = {
            let st = self.state.lock().unwrap();
            let exists = st
                .instances
                .get(&inst.guid.to_string())
                .is_some_and(|i| i.data.iter().any(|e| e.id == data_id));
            let Some(b) = st.blobs.get(data_id).filter(|_| exists).cloned() else {
                return Err(status_error(404, "GET", "data", "Data Element Not Found"));
            };
            (b, st.truncate.get(data_id).copied(), st.chunk_delay)
        };
        if let Some(e) = after {
            return Err(e);
        }
        let total = bytes.len() as u64;
        let limit = cut.unwrap_or(total).min(total) as usize;
        const CHUNK: usize = 64 * 1024;
        let path = format!("data/{data_id}");
        let stream = futures_util::stream::unfold(0usize, move |pos| {
            let bytes = bytes.clone();
            let path = path.clone();
            async move {
                if pos >= limit {
                    if limit < bytes.len() && pos != usize::MAX {
                        return Some((
                            Err(AltinnError::Truncated {
                                path,
                                expected: bytes.len() as u64,
                                got: limit as u64,
                            }),
                            usize::MAX,
                        ));
                    }
                    return None;
                }
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let end = (pos + CHUNK).min(limit);
                Some((Ok(bytes.slice(pos..end)), end))
            }
        });
        Ok(Download {
            content_length: Some(total),
            content_type: None,
            accept_ranges: false,
            stream: Box::pin(stream),
        })
    }

    async fn get_form_data(
        &self,
        _inst: &InstanceId,
        data_id: &ElementId,
        _accept: &str,
    ) -> Result<Bytes> {
        let data_id: &str = &data_id.to_string();
        let after = self.enter(Op::GetFormData)?;
        let r = self
            .blob(data_id)
            .ok_or_else(|| status_error(404, "GET", "data", "Data Element Not Found"));
        Self::finish(after, r)
    }

    async fn create_data(
        &self,
        inst: &InstanceId,
        new: NewElement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let (data_type, filename, content_type) =
            (new.data_type.as_str(), new.filename, new.content_type);
        let after = self.enter(Op::Create)?;
        let path = format!("instances/{}/{}/data/{data_type}", inst.party, inst.guid);
        let bytes = Self::read_body(&body)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get(&inst.guid.to_string()) else {
            return Err(status_error(404, "POST", &path, "Instance Not Found"));
        };
        let Some(dt) = st.meta.data_type(data_type).cloned() else {
            return Err(status_error(400, "POST", &path, "Data Type Not Found"));
        };
        Self::active_check(i, "POST", &path)?;
        let existing = i.data.iter().filter(|e| e.data_type == data_type).count();
        if !rules::count_allows_one_more(&dt, existing) {
            return Err(status_error(409, "POST", &path, "Max Count Exceeded"));
        }
        if dt.is_form() {
            if !rules::form_content_type_ok(Some(content_type)) {
                return Err(status_error(415, "POST", &path, "Unsupported content type"));
            }
        } else {
            if let Err(v) = rules::check_size(&dt, bytes.len() as u64) {
                return Err(issue_error(400, "POST", &path, &v));
            }
            if let Err(v) = rules::check_filename(filename)
                .and_then(|_| rules::check_content_type(&dt, filename, Some(content_type)))
            {
                return Err(issue_error(400, "POST", &path, &v));
            }
        }
        if bytes.is_empty() {
            return Err(status_error(
                400,
                "POST",
                &path,
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        let len = bytes.len() as u64;
        st.uploads
            .push(("POST".into(), filename.into(), content_type.into(), len));
        let el = Self::new_element(
            &mut st,
            &inst.guid.to_string(),
            data_type,
            Some(filename),
            &stored_content_type(&dt, content_type),
            bytes,
        );
        Self::finish(after, Ok(el))
    }

    async fn replace_data(
        &self,
        inst: &InstanceId,
        data_id: &ElementId,
        replacement: Replacement<'_>,
        body: UploadBody,
    ) -> Result<DataElement> {
        let data_id: &str = &data_id.to_string();
        let (filename, content_type) = (replacement.filename, replacement.content_type);
        let after = self.enter(Op::Replace)?;
        let path = format!("instances/{}/{}/data/{data_id}", inst.party, inst.guid);
        let bytes = Self::read_body(&body)?;
        let mut st = self.state.lock().unwrap();
        let meta = st.meta.clone();
        let seq_now = Self::now(&mut st);
        let Some(i) = st.instances.get(&inst.guid.to_string()) else {
            return Err(status_error(404, "PUT", &path, "Instance Not Found"));
        };
        Self::active_check(i, "PUT", &path)?;
        let Some(el) = i.data.iter().find(|e| e.id == data_id).cloned() else {
            return Err(status_error(404, "PUT", &path, "Data Element Not Found"));
        };
        let Some(dt) = meta.data_type(&el.data_type) else {
            return Err(status_error(400, "PUT", &path, "Data Type Not Found"));
        };
        if dt.is_form() {
            if !rules::form_content_type_ok(Some(content_type)) {
                return Err(status_error(415, "PUT", &path, "Unsupported content type"));
            }
        } else {
            if let Err(v) = rules::check_filename(filename)
                .and_then(|_| rules::check_content_type(dt, filename, Some(content_type)))
            {
                return Err(status_error(400, "PUT", &path, &v.description));
            }
            if rules::check_size(dt, bytes.len() as u64).is_err() {
                return Err(status_error(
                    400,
                    "PUT",
                    &path,
                    "The request body is too large and exceeds the maximum permitted limit",
                ));
            }
        }
        if el.locked {
            return Err(status_error(
                409,
                "PUT",
                &path,
                &format!("Data element {data_id} is locked and cannot be updated"),
            ));
        }
        if bytes.is_empty() {
            return Err(status_error(
                422,
                "PUT",
                &path,
                "Could not process attached file",
            ));
        }
        let len = bytes.len() as u64;
        st.uploads
            .push(("PUT".into(), filename.into(), content_type.into(), len));
        st.blobs.insert(data_id.into(), bytes);
        let i = st.instances.get_mut(&inst.guid.to_string()).unwrap();
        let e = i.data.iter_mut().find(|e| e.id == data_id).unwrap();
        e.size = len as i64;
        e.content_type = Some(stored_content_type(dt, content_type));
        if !dt.is_form() {
            e.filename = Some(filename.into());
        }
        e.last_changed = Some(seq_now);
        let out = e.clone();
        i.last_changed = Some(seq_now);
        Self::finish(after, Ok(out))
    }

    async fn delete_data(&self, inst: &InstanceId, data_id: &ElementId) -> Result<()> {
        let data_id: &str = &data_id.to_string();
        let after = self.enter(Op::Delete)?;
        let path = format!("instances/{}/{}/data/{data_id}", inst.party, inst.guid);
        let mut st = self.state.lock().unwrap();
        let meta = st.meta.clone();
        let Some(i) = st.instances.get_mut(&inst.guid.to_string()) else {
            return Err(status_error(404, "DELETE", &path, "Instance Not Found"));
        };
        Self::active_check(i, "DELETE", &path)?;
        let Some(pos) = i.data.iter().position(|e| e.id == data_id) else {
            return Err(status_error(404, "DELETE", &path, "Data Element Not Found"));
        };
        if meta
            .data_type(&i.data[pos].data_type)
            .is_some_and(|d| d.is_main_form())
        {
            return Err(status_error(
                400,
                "DELETE",
                &path,
                "Cannot Delete main data element",
            ));
        }
        i.data.remove(pos);
        i.last_changed = Some(Utc::now());
        st.blobs.remove(data_id);
        Self::finish(after, Ok(()))
    }

    async fn create_instance(&self, party: PartyId) -> Result<Instance> {
        let party: &str = &party.to_string();
        let after = self.enter(Op::CreateInstance)?;
        let mut st = self.state.lock().unwrap();
        if !st.org_token && !st.parties.iter().any(|p| p.party_id.to_string() == party) {
            return Err(status_error(403, "POST", "instances", "Forbidden"));
        }
        let i = Self::new_instance(&mut st, party);
        let guid = i.guid().to_string();
        st.instances.insert(guid.clone(), i);
        // The app creates the main form on instantiation (appLogic.autoCreate).
        let forms: Vec<String> = st
            .meta
            .data_types
            .iter()
            .filter(|d| d.is_main_form())
            .map(|d| d.id.clone())
            .collect();
        for f in forms {
            Self::new_element(
                &mut st,
                &guid,
                &f,
                None,
                "application/xml",
                Bytes::from_static(b"<model />\n"),
            );
        }
        let i = st.instances.get(&guid).cloned().unwrap();
        Self::finish(after, Ok(i))
    }

    async fn delete_instance(&self, inst: &InstanceId, hard: bool) -> Result<Instance> {
        let after = self.enter(Op::DeleteInstance)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get_mut(&inst.guid.to_string()) else {
            return Err(status_error(
                404,
                "DELETE",
                "instances",
                "Instance Not Found",
            ));
        };
        let now = Utc::now();
        i.status.is_soft_deleted = true;
        i.status.soft_deleted = Some(now);
        if hard {
            i.status.is_hard_deleted = true;
            i.status.hard_deleted = Some(now);
        }
        let out = i.clone();
        // Soft-deleted instances disappear from this view too (the query filters them).
        st.instances.remove(&inst.guid.to_string());
        Self::finish(after, Ok(out))
    }

    async fn complete_instance(&self, inst: &InstanceId) -> Result<Instance> {
        let after = self.enter(Op::Complete)?;
        let mut st = self.state.lock().unwrap();
        let org = st.meta.org.clone();
        let Some(i) = st.instances.get_mut(&inst.guid.to_string()) else {
            return Err(status_error(404, "POST", "complete", "Instance Not Found"));
        };
        i.complete_confirmations.push(CompleteConfirmation {
            stakeholder_id: org,
            confirmed_on: Some(Utc::now()),
        });
        let out = i.clone();
        Self::finish(after, Ok(out))
    }

    async fn process_next(&self, inst: &InstanceId, _action: Option<&str>) -> Result<ProcessState> {
        let after = self.enter(Op::ProcessNext)?;
        let mut st = self.state.lock().unwrap();
        let Some(i) = st.instances.get_mut(&inst.guid.to_string()) else {
            return Err(status_error(
                404,
                "PUT",
                "process/next",
                "Instance Not Found",
            ));
        };
        let p = i.process.get_or_insert_with(Default::default);
        if p.ended.is_some() {
            return Err(status_error(
                409,
                "PUT",
                "process/next",
                "Process is ended.",
            ));
        }
        let now = Utc::now();
        match p
            .current_task
            .as_ref()
            .and_then(|t| t.element_id.clone())
            .as_deref()
        {
            Some("Task_1") => {
                p.current_task = Some(ProcessElementInfo {
                    element_id: Some("Task_2".into()),
                    altinn_task_type: Some("confirmation".into()),
                    started: Some(now),
                    ..Default::default()
                });
                for e in i.data.iter_mut() {
                    e.locked = true;
                }
            }
            _ => {
                p.current_task = None;
                p.ended = Some(now);
                p.end_event = Some("EndEvent_1".into());
                i.status.is_archived = true;
                i.status.archived = Some(now);
            }
        }
        let out = p.clone();
        i.last_changed = Some(now);
        Self::finish(after, Ok(out))
    }

    async fn stateless_create(
        &self,
        data_type: &DataTypeId,
        _party: Option<PartyId>,
        _accept: &str,
    ) -> Result<Bytes> {
        let after = self.enter(Op::Stateless)?;
        Self::finish(after, Ok(Bytes::from(format!("<{data_type} />\n"))))
    }

    async fn stateless_calculate(
        &self,
        _data_type: &DataTypeId,
        _party: Option<PartyId>,
        _content_type: &str,
        body: Bytes,
        _accept: &str,
    ) -> Result<Bytes> {
        let after = self.enter(Op::Stateless)?;
        Self::finish(after, Ok(body))
    }
}
