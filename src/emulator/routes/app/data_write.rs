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

/// A request body received into a temp file, with what the element will record about it.
struct Received {
    tmp: std::path::PathBuf,
    size: u64,
    filename: Option<String>,
    content_type: String,
}

impl Received {
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A refusal of PUT and whether it goes out as plain text (app-lib's binary PUT answers its
/// 400s as text).
type PutFail = (Fail, bool);

fn json_fail(f: Fail) -> PutFail {
    (f, false)
}

fn text_fail(f: Fail) -> PutFail {
    (f, true)
}

fn unprocessable() -> Fail {
    // Storage writes nothing and answers 422 for an empty body (never PUT an empty file).
    Fail::new(
        422,
        "Unprocessable Entity",
        "Could not process attached file",
    )
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

    /// Form data: parse it (XML or JSON, stored as XML) into a temp file.
    async fn receive_form(&self, body: Body) -> Result<Received, Fail> {
        let bytes = read_small(body)
            .await
            .map_err(|_| Fail::new(400, "Bad Request", "Could not read the body"))?;
        let ct = header_str(&self.ctx.headers, "content-type");
        let (xml, _) = parse_form(ct, &bytes)?;
        let tmp = self.s.store.tmp_path();
        std::fs::write(&tmp, &xml).map_err(|e| Fail::new(500, "Platform error", e.to_string()))?;
        Ok(Received {
            tmp,
            size: xml.len() as u64,
            filename: None,
            content_type: "application/xml".to_string(),
        })
    }

    fn content_type(&self) -> Option<String> {
        header_str(&self.ctx.headers, "content-type").map(str::to_string)
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
        let inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        let dt = self
            .meta
            .data_type(dt_id)
            .cloned()
            .ok_or_else(|| Refusal::UndeclaredType {
                data_type: dt_id.to_string(),
                instance: inst.id.clone(),
            })?;
        checks::create(&inst, &dt, self.p, self.is_owner())?;
        // The body is taken only once every check that needs no byte has passed: a refusal
        // before that drains it (post_data), so the client reads the answer, not a reset.
        let received = if dt.is_form() {
            checks::current_task(&inst)?;
            self.receive_form(body.take().unwrap_or_default()).await?
        } else {
            let ct = self.content_type();
            let name = self.check_binary(&dt, cl, ct.as_deref())?;
            checks::current_task(&inst)?;
            let body = body.take().unwrap_or_default();
            let (tmp, size) = self.spool_binary(&dt, cl, body).await?;
            Received {
                tmp,
                size,
                filename: Some(storage_filename(&name)),
                content_type: ct.unwrap_or_default(),
            }
        };
        let (inst, el) = self
            .commit_new(&dt, &received)
            .await
            .inspect_err(|_| received.discard())?;
        Ok(self.render_new(&inst, el, obsolete))
    }

    /// Store a new element under the instance lock, re-checking what may have changed.
    async fn commit_new(
        &self,
        dt: &DataType,
        r: &Received,
    ) -> Result<(Instance, DataElement), Fail> {
        let _g = self.s.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        if !inst.is_active() {
            return Err(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            ));
        }
        checks::room_for_one(&inst, dt)
            .map_err(|_| Fail::new(409, "Max Count Exceeded", "Max count exceeded"))?;
        let e = new_element(
            &inst,
            dt,
            r.filename.clone(),
            &r.content_type,
            r.size,
            self.p,
        );
        self.place(r, &inst, &e)?;
        inst.data.push(e.clone());
        self.touch(&mut inst);
        inst.last_changed = e.last_changed;
        self.save(&inst)
            .map_err(|_| Fail::new(500, "Platform error", "could not save instance"))?;
        Ok((inst, e))
    }

    /// Move the received bytes into the element's blob and write its document.
    fn place(&self, r: &Received, inst: &Instance, e: &DataElement) -> Result<(), Fail> {
        let path = self.s.store.blob_path(&inst.app_id, &self.guid, &e.id);
        let commit = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::rename(&r.tmp, &path)?;
            self.s.store.save_element(e)
        })();
        commit.map_err(|err| Fail::new(500, "Platform error", err.to_string()))
    }

    /// 201 DataElement with `Location` (obsolete POST), else 200 DataPostResponse.
    fn render_new(&self, inst: &Instance, mut el: DataElement, obsolete: bool) -> Resp {
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        if obsolete {
            let loc = el
                .self_links
                .as_ref()
                .and_then(|l| l.apps.clone())
                .unwrap_or_default();
            return with_location(json(201, &app_element_json(&el)), &loc);
        }
        json(
            200,
            &json!({
                "newDataElementId": el.id,
                "instance": app_json(inst, &self.ctx.base),
                "validationIssues": [],
                "newDataModels": [],
            }),
        )
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
    ) -> Result<Resp, PutFail> {
        let cl = content_length(self.ctx);
        if cl.is_some_and(|n| n > rules::MAX_REQUEST_BYTES) {
            return Err(json_fail(Fail::new(413, "Request too large", "")));
        }
        let (inst, e, dt) = self
            .element(d, type_check)
            .map_err(|f| (f, type_check.is_some()))?;
        checks::update(&inst, &dt, self.p).map_err(|r| json_fail(r.into()))?;
        let received = if dt.is_form() {
            checks::current_task(&inst).map_err(|r| json_fail(r.into()))?;
            let body = body.take().unwrap_or_default();
            let mut r = self.receive_form_unlocked(&e, body).await?;
            r.filename = e.filename.clone();
            r
        } else {
            let body = body.take().unwrap_or_default();
            self.receive_binary_put(&dt, &e, cl, body).await?
        };
        let (inst, mut el) = self
            .commit_replace(d, &received)
            .await
            .inspect_err(|_| received.discard())
            .map_err(json_fail)?;
        element_links(&mut el, &self.ctx.base, &inst.app_id, &inst.id);
        let loc = el
            .self_links
            .as_ref()
            .and_then(|l| l.apps.clone())
            .unwrap_or_default();
        Ok(with_location(json(201, &app_element_json(&el)), &loc))
    }

    /// Form PUT: the body is parsed before Storage's lock check.
    async fn receive_form_unlocked(
        &self,
        e: &DataElement,
        body: Body,
    ) -> Result<Received, PutFail> {
        let r = self.receive_form(body).await.map_err(json_fail)?;
        if let Err(refusal) = checks::unlocked(e) {
            r.discard();
            return Err(json_fail(refusal.into()));
        }
        Ok(r)
    }

    /// Binary PUT: app-lib's checks (400s as text), Storage's lock and empty-body answers.
    async fn receive_binary_put(
        &self,
        dt: &DataType,
        e: &DataElement,
        cl: Option<u64>,
        body: Body,
    ) -> Result<Received, PutFail> {
        let ct = self.content_type();
        // A zero-byte PUT passes the App and is refused by Storage (422) below.
        let name = match self.check_binary(dt, cl, ct.as_deref()) {
            Ok(n) => n,
            Err(f) if f.status == 400 && f.title == "Invalid data" => String::new(),
            Err(f) => return Err(text_fail(f)),
        };
        checks::unlocked(e).map_err(|r| json_fail(r.into()))?;
        if cl == Some(0) {
            return Err(json_fail(unprocessable()));
        }
        let (tmp, size) = match self.spool_binary(dt, cl, body).await {
            Ok(x) => x,
            Err(f) if f.status == 413 => {
                return Err(text_fail(Fail::new(
                    400,
                    "Bad Request",
                    "The request body is too large",
                )))
            }
            Err(f) if f.title == "Invalid data" => return Err(json_fail(unprocessable())),
            Err(f) => return Err(text_fail(f)),
        };
        Ok(Received {
            tmp,
            size,
            filename: Some(storage_filename(&name)),
            content_type: ct.unwrap_or_default(),
        })
    }

    /// Overwrite element `d` under the instance lock, re-checking what may have changed.
    async fn commit_replace(&self, d: &str, r: &Received) -> Result<(Instance, DataElement), Fail> {
        let _g = self.s.store.lock(&self.guid).await;
        let mut inst = self.get().ok_or(Refusal::InstanceNotFound)?;
        if !inst.is_active() {
            return Err(Fail::new(
                409,
                "Instance Not Active",
                "Instance is not active",
            ));
        }
        let idx = inst
            .data
            .iter()
            .position(|x| x.id == d)
            .ok_or_else(|| Fail::new(404, "Data Element Not Found", ""))?;
        if inst.data[idx].locked {
            let mut f = Fail::new(409, "Conflict", "locked");
            f.bare = true;
            return Err(f);
        }
        let mut el = inst.data[idx].clone();
        el.filename = r.filename.clone();
        el.content_type = Some(r.content_type.clone());
        el.size = r.size as i64;
        el.last_changed = Some(Utc::now());
        el.last_changed_by = Some(self.p.actor());
        if self.is_owner() {
            el.is_read = Some(false);
        }
        self.place(r, &inst, &el)?;
        inst.data[idx] = el.clone();
        self.touch(&mut inst);
        inst.last_changed = el.last_changed;
        self.save(&inst)
            .map_err(|_| Fail::new(500, "Platform error", "could not save instance"))?;
        Ok((inst, el))
    }
}
