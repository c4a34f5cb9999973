//! Data elements: POST (new element) and PUT (replace), form data and binary uploads, and
//! streaming request bodies to disk.

use super::*;

/// The body length: Content-Length, or 0 when the request has neither Content-Length nor
/// Transfer-Encoding (an empty body). None = chunked, which the app cannot read (500).
fn content_length(ctx: &Ctx) -> Option<u64> {
    match header_str(&ctx.headers, "content-length") {
        Some(v) => v.trim().parse().ok(),
        None if ctx.headers.get("transfer-encoding").is_none() => Some(0),
        None => None,
    }
}

/// Stream the request body to a temp file, never holding it in memory. Returns the byte count.
async fn spool(s: &Shared, body: Body, limit: u64) -> Result<(std::path::PathBuf, u64), Fail> {
    let tmp = s.store.tmp_path();
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| Fail::new(500, "Platform error", e.to_string()))?;
    let mut n = 0u64;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(Fail::new(
                    400,
                    "Bad Request",
                    format!("Error reading the body: {e}"),
                ));
            }
        };
        n += chunk.len() as u64;
        if n > limit {
            drop(f);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Fail::new(
                413,
                "Request too large",
                "The request body is too large",
            ));
        }
        if let Err(e) = f.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Fail::new(500, "Platform error", e.to_string()));
        }
    }
    if let Err(e) = f.flush().await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Fail::new(500, "Platform error", e.to_string()));
    }
    Ok((tmp, n))
}

/// Storage URL-decodes the filename (`+` → space, `%xx` decoded).
fn storage_filename(name: &str) -> String {
    let d = form_decode(name);
    let d: String = d
        .chars()
        .map(|c| if c == '\0' || c == '/' { '_' } else { c })
        .collect();
    if d.is_empty() {
        name.to_string()
    } else {
        d
    }
}

impl IC<'_> {
    pub(super) async fn post_data(&self, dt_id: &str, body: Body, obsolete: bool) -> Resp {
        let mut body = Some(body);
        let r = self.post_data_inner(dt_id, &mut body, obsolete).await;
        drain(body).await;
        match r {
            Ok(r) => r,
            Err(f) => f.render(obsolete),
        }
    }

    async fn post_data_inner(
        &self,
        dt_id: &str,
        body: &mut Option<Body>,
        obsolete: bool,
    ) -> Result<Resp, Fail> {
        let cl = content_length(self.ctx);
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err(Fail::new(
                413,
                "Request too large",
                "Request body too large",
            ));
        }
        let inst = self
            .get()
            .ok_or_else(|| Fail::new(404, "Instance Not Found", ""))?;
        let Some(dt) = self.meta.data_type(dt_id).cloned() else {
            return Err(Fail::new(
                400,
                "Data Type Not Found",
                format!("Element type {dt_id} not allowed for instance {}.", inst.id),
            ));
        };
        self.check_update(&inst, &dt)?;
        let count_of = |i: &Instance| i.data.iter().filter(|e| e.data_type == dt.id).count();
        if !rules::count_allows_one_more(&dt, count_of(&inst)) {
            return Err(Fail::new(
                409,
                "Max Count Exceeded",
                format!(
                    "Cannot create more than {} data elements of type {}",
                    dt.max_count, dt.id
                ),
            ));
        }
        if dt.app_logic.as_ref().and_then(|l| l.disallow_user_create) == Some(true)
            && !self.is_owner()
        {
            return Err(Fail::new(
                400,
                "User Create Disallowed",
                format!("User cannot create data elements of type {}", dt.id),
            ));
        }
        let ct = header_str(&self.ctx.headers, "content-type").map(str::to_string);
        let (tmp, size, filename, content_type) = if dt.is_form() {
            require_task(&inst)?;
            let bytes = read_small(body.take().unwrap_or_default())
                .await
                .map_err(|_| Fail::new(400, "Bad Request", "Could not read the body"))?;
            let (xml, _) = parse_form(ct.as_deref(), &bytes)?;
            let tmp = self.s.store.tmp_path();
            std::fs::write(&tmp, &xml)
                .map_err(|e| Fail::new(500, "Platform error", e.to_string()))?;
            (tmp, xml.len() as u64, None, "application/xml".to_string())
        } else {
            let name = self.check_binary(&dt, cl, ct.as_deref())?;
            require_task(&inst)?;
            let (tmp, n) = self
                .spool_binary(&dt, cl, body.take().unwrap_or_default())
                .await?;
            (
                tmp,
                n,
                Some(storage_filename(&name)),
                ct.unwrap_or_default(),
            )
        };
        // Commit under the instance lock.
        let _g = self.s.store.lock(&self.guid).await;
        let cleanup = |f: Fail| {
            let _ = std::fs::remove_file(&tmp);
            f
        };
        let mut inst = self
            .get()
            .ok_or_else(|| cleanup(Fail::new(404, "Instance Not Found", "")))?;
        if !inst.is_active() {
            return Err(cleanup(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            )));
        }
        if !rules::count_allows_one_more(&dt, count_of(&inst)) {
            return Err(cleanup(Fail::new(
                409,
                "Max Count Exceeded",
                "Max count exceeded",
            )));
        }
        let e = new_element(&inst, &dt, filename, &content_type, size, self.p);
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&tmp, &path)?;
            self.s.store.save_element(&e)
        })();
        if let Err(err) = commit {
            return Err(cleanup(Fail::new(500, "Platform error", err.to_string())));
        }
        inst.data.push(e.clone());
        self.touch(&mut inst);
        inst.last_changed = e.last_changed;
        self.save(&inst)
            .map_err(|_| Fail::new(500, "Platform error", "could not save instance"))?;
        let mut el = e;
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        if obsolete {
            let loc = el
                .self_links
                .as_ref()
                .and_then(|l| l.apps.clone())
                .unwrap_or_default();
            Ok(with_location(json(201, &app_element_json(&el)), &loc))
        } else {
            Ok(json(
                200,
                &json!({
                    "newDataElementId": el.id,
                    "instance": app_json(&inst, &self.ctx.base),
                    "validationIssues": [],
                    "newDataModels": [],
                }),
            ))
        }
    }

    /// DataRestrictionValidation (altinn-api.md §2.1) and the header checks after it.
    fn check_binary(
        &self,
        dt: &DataType,
        cl: Option<u64>,
        ct: Option<&str>,
    ) -> Result<String, Fail> {
        let Some(cd) = header_str(&self.ctx.headers, "content-disposition") else {
            return Err(Fail::upload(RuleViolation {
                code: "ContentTypeNotAllowed",
                description: "Invalid data provided. Error: Conent-Disposition header containing 'filename' must be included in request.".into(),
            }));
        };
        if let Some(n) = cl {
            rules::check_size(dt, n).map_err(Fail::upload)?;
        }
        let name = rules::parse_content_disposition(cd)
            .ok_or_else(|| Fail::upload(rules::check_filename("").unwrap_err()))?;
        rules::check_filename(&name).map_err(Fail::upload)?;
        rules::check_content_type(dt, &name, ct).map_err(Fail::upload)?;
        if ct.is_none_or(|c| c.trim().is_empty()) {
            return Err(Fail::new(
                400,
                "Missing content type",
                "The request must have a Content-Type header",
            ));
        }
        let Some(n) = cl else {
            let mut f = Fail::new(500, "", "");
            f.title.clear();
            return Err(f);
        };
        if n == 0 {
            return Err(Fail::new(
                400,
                "Invalid data",
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        Ok(name)
    }

    async fn spool_binary(
        &self,
        dt: &DataType,
        cl: Option<u64>,
        body: Body,
    ) -> Result<(std::path::PathBuf, u64), Fail> {
        let limit = dt
            .max_size_bytes()
            .unwrap_or(rules::MAX_REQUEST_BYTES)
            .min(rules::MAX_REQUEST_BYTES)
            .max(cl.unwrap_or(0).min(rules::MAX_REQUEST_BYTES));
        let (tmp, n) = spool(self.s, body, limit).await?;
        if dt.max_size_bytes().is_some_and(|m| n > m) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                413,
                "Request too large",
                "The request body is too large",
            ));
        }
        if cl.is_some_and(|c| c != n) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                400,
                "Bad Request",
                "Body length does not match Content-Length",
            ));
        }
        if n == 0 {
            let _ = std::fs::remove_file(&tmp);
            return Err(Fail::new(
                400,
                "Invalid data",
                "Invalid data provided. Error: The file is zero bytes.",
            ));
        }
        Ok((tmp, n))
    }

    pub(super) async fn put_data(&self, d: &str, type_check: Option<&str>, body: Body) -> Resp {
        let mut body = Some(body);
        let r = self.put_data_inner(d, type_check, &mut body).await;
        drain(body).await;
        match r {
            Ok(r) => r,
            Err((f, text400)) => f.render(text400),
        }
    }

    async fn put_data_inner(
        &self,
        d: &str,
        type_check: Option<&str>,
        body: &mut Option<Body>,
    ) -> Result<Resp, (Fail, bool)> {
        let cl = content_length(self.ctx);
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err((Fail::new(413, "Request too large", ""), false));
        }
        let (inst, e, dt) = self
            .element(d, type_check)
            .map_err(|f| (f, type_check.is_some()))?;
        self.check_update(&inst, &dt).map_err(|f| (f, false))?;
        let ct = header_str(&self.ctx.headers, "content-type").map(str::to_string);
        let locked = |e: &DataElement| -> Result<(), (Fail, bool)> {
            if e.locked {
                let mut f = Fail::new(
                    409,
                    "Conflict",
                    format!("Data element {} is locked and cannot be updated", e.id),
                );
                f.bare = true;
                return Err((f, false));
            }
            Ok(())
        };
        let (tmp, size, filename, content_type) = if dt.is_form() {
            require_task(&inst).map_err(|f| (f, false))?;
            let bytes = read_small(body.take().unwrap_or_default())
                .await
                .map_err(|_| {
                    (
                        Fail::new(400, "Bad Request", "Could not read the body"),
                        false,
                    )
                })?;
            let (xml, _) = parse_form(ct.as_deref(), &bytes).map_err(|f| (f, false))?;
            locked(&e)?;
            let tmp = self.s.store.tmp_path();
            std::fs::write(&tmp, &xml)
                .map_err(|err| (Fail::new(500, "Platform error", err.to_string()), false))?;
            (
                tmp,
                xml.len() as u64,
                e.filename.clone(),
                "application/xml".to_string(),
            )
        } else {
            let name = match self.check_binary(&dt, cl, ct.as_deref()) {
                Ok(n) => n,
                Err(f) if f.status == 400 && f.title == "Invalid data" => String::new(),
                Err(f) => return Err((f, true)),
            };
            locked(&e)?;
            if cl == Some(0) {
                // Storage writes nothing and answers 422 (never PUT an empty file).
                return Err((
                    Fail::new(
                        422,
                        "Unprocessable Entity",
                        "Could not process attached file",
                    ),
                    false,
                ));
            }
            let (tmp, n) = match self
                .spool_binary(&dt, cl, body.take().unwrap_or_default())
                .await
            {
                Ok(x) => x,
                Err(f) if f.status == 413 => {
                    return Err((
                        Fail::new(400, "Bad Request", "The request body is too large"),
                        true,
                    ))
                }
                Err(f) if f.title == "Invalid data" => {
                    return Err((
                        Fail::new(
                            422,
                            "Unprocessable Entity",
                            "Could not process attached file",
                        ),
                        false,
                    ))
                }
                Err(f) => return Err((f, true)),
            };
            (
                tmp,
                n,
                Some(storage_filename(&name)),
                ct.unwrap_or_default(),
            )
        };
        let _g = self.s.store.lock(&self.guid).await;
        let cleanup = |f: Fail| {
            let _ = std::fs::remove_file(&tmp);
            (f, false)
        };
        let mut inst = self
            .get()
            .ok_or_else(|| cleanup(Fail::new(404, "Instance Not Found", "")))?;
        if !inst.is_active() {
            return Err(cleanup(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            )));
        }
        let Some(idx) = inst.data.iter().position(|x| x.id == d) else {
            return Err(cleanup(Fail::new(404, "Data Element Not Found", "")));
        };
        if inst.data[idx].locked {
            let mut f = Fail::new(409, "Conflict", "locked");
            f.bare = true;
            return Err(cleanup(f));
        }
        let mut el = inst.data[idx].clone();
        el.filename = filename;
        el.content_type = Some(content_type);
        el.size = size as i64;
        el.last_changed = Some(Utc::now());
        el.last_changed_by = Some(self.p.actor());
        if self.is_owner() {
            el.is_read = Some(false);
        }
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &el.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&tmp, &path)?;
            self.s.store.save_element(&el)
        })();
        if let Err(err) = commit {
            return Err(cleanup(Fail::new(500, "Platform error", err.to_string())));
        }
        inst.data[idx] = el.clone();
        self.touch(&mut inst);
        inst.last_changed = el.last_changed;
        self.save(&inst).map_err(|_| {
            (
                Fail::new(500, "Platform error", "could not save instance"),
                false,
            )
        })?;
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        let loc = el
            .self_links
            .as_ref()
            .and_then(|l| l.apps.clone())
            .unwrap_or_default();
        Ok(with_location(json(201, &app_element_json(&el)), &loc))
    }
}

/// Data can only be added or changed while the instance has a current task (409 otherwise).
fn require_task(inst: &Instance) -> Result<(), Fail> {
    if inst
        .process
        .as_ref()
        .and_then(|p| p.current_task.as_ref())
        .is_none()
    {
        return Err(Fail::new(
            409,
            "No current task",
            "The instance has no current task",
        ));
    }
    Ok(())
}
