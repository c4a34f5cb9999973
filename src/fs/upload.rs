//! SPEC §4 upload on flush/fsync/release: POST new elements, PUT existing ones, keep the bytes
//! in `unsent/` when the server refuses them, and update the cached instance afterwards.

use super::write::{Handle, LocalFile, Target, WriteHandle};
use super::*;
use crate::altinn::client::{AltinnError, UploadBody};
use crate::altinn::rules;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- flush / release

    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        if let Handle::Write(w) = self.handle(fh)? {
            let mut w = w.lock().await;
            self.upload(&mut w).await?;
        }
        Ok(())
    }

    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        self.flush(fh).await
    }

    /// Every write handle of `ino` has nothing unsent (all were flushed since their last
    /// write). A handle busy right now counts as not clean.
    pub(super) fn write_handles_clean(&self, ino: u64) -> bool {
        let st = self.st.lock().unwrap();
        st.handles.values().all(|h| match h {
            Handle::Write(w) => match w.try_lock() {
                Ok(w) => w.ino != ino || !w.dirty,
                Err(_) => false,
            },
            _ => true,
        })
    }

    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let h = self.st.lock().unwrap().handles.remove(&fh);
        match h {
            Some(Handle::Blob(b)) => self.blobs.release(&b),
            Some(Handle::Write(w)) => {
                let mut w = w.lock().await;
                // A failure already returned (by flush) is not reported (nor logged) again.
                let reported = w.failed.is_some();
                let r = self.upload(&mut w).await;
                let r = if reported { Ok(()) } else { r };
                if let Target::Stateless { dt, name } = &w.target {
                    self.stateless.end_write(dt, name);
                    self.st.lock().unwrap().writing.remove(&w.ino);
                    let _ = std::fs::remove_file(&w.spool);
                    return r;
                }
                let mut st = self.st.lock().unwrap();
                let still_writing = st.handles.values().any(|h| matches!(h, Handle::Write(o) if o.try_lock().map(|o| o.ino == w.ino).unwrap_or(true)));
                if !still_writing {
                    st.writing.remove(&w.ino);
                }
                if let Target::Local { ino } = w.target {
                    if let Some(l) = st.locals.get_mut(&ino) {
                        l.writers = l.writers.saturating_sub(1);
                    }
                }
                let kept_unsent =
                    matches!(&w.failed, Some(e) if matches!(e.kind, ErrorKind::Server { .. }));
                if (w.owns_spool || w.failed.is_some()) && !kept_unsent {
                    let _ = std::fs::remove_file(&w.spool);
                }
                return r;
            }
            _ => {}
        }
        Ok(())
    }

    /// Altinn refuses empty data: the element stays as it is, and the kernel forgets the size
    /// it saw while the file was open.
    fn refuse_empty(&self, w: &mut WriteHandle, path: String) -> FsError {
        w.dirty = false;
        self.st.lock().unwrap().writing.remove(&w.ino);
        self.notify_wait(vec![Inval::Inode(w.ino)]);
        FsError::new(ErrorKind::Empty, path)
    }

    /// Send a dirty handle's spool: PUT for an element, POST for a new local file (unless it is
    /// empty or has a temporary name: then it stays local).
    pub(super) async fn upload(&self, w: &mut WriteHandle) -> FsResult<()> {
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        if !w.dirty {
            return Ok(());
        }
        let _busy = self.busy();
        match w.target.clone() {
            Target::Existing {
                party,
                guid,
                dt,
                id,
            } => {
                let node = Node::Element {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                    id: id.clone(),
                };
                let path = self.path_of(&node);
                if w.len == 0 {
                    return Err(self.refuse_empty(w, path));
                }
                let e = self.instance(&party, &guid, false).await?;
                let filename = upload_filename(&e, &dt, &id);
                let el = self
                    .put_file(&party, &guid, &id, &filename, &w.spool, w.len)
                    .await
                    .map_err(|err| {
                        let fe = FsError::server(&path, "PUT data", err);
                        self.save_unsent(&w.spool, &path, &party, &guid, &dt, &filename, &fe);
                        fe
                    });
                match el {
                    Ok(el) => {
                        w.dirty = false;
                        self.element_changed(&party, &guid, el);
                        self.notify_wait(vec![Inval::Inode(w.ino)]);
                        Ok(())
                    }
                    Err(fe) => {
                        w.failed = Some(fe.clone());
                        w.owns_spool = false;
                        Err(fe)
                    }
                }
            }
            Target::Stateless { dt, name } => {
                w.dirty = false;
                let r = self
                    .stateless_calculate(w.ino, &dt, &name, &w.spool, w.len)
                    .await;
                if let Err(e) = &r {
                    w.failed = Some(e.clone());
                }
                r
            }
            Target::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let node = Node::FormJson {
                    party: party.clone(),
                    guid: guid.clone(),
                    dt: dt.clone(),
                    id: id.clone(),
                };
                let path = self.path_of(&node);
                if w.len == 0 {
                    return Err(self.refuse_empty(w, path));
                }
                let e = self.instance(&party, &guid, false).await?;
                let filename = upload_filename(&e, &dt, &id);
                let res = self
                    .put_file_as(
                        &party,
                        &guid,
                        &id,
                        &filename,
                        "application/json",
                        &w.spool,
                        w.len,
                    )
                    .await;
                match res {
                    Ok(el) => {
                        w.dirty = false;
                        self.json_views.lock().unwrap().remove(&id);
                        self.element_changed(&party, &guid, el);
                        self.st.lock().unwrap().writing.remove(&w.ino);
                        let xml = inode::ino_of(&Node::Element {
                            party,
                            guid,
                            dt,
                            id,
                        });
                        self.notify_wait(vec![Inval::Inode(w.ino), Inval::Inode(xml)]);
                        Ok(())
                    }
                    Err(err) => {
                        let fe = FsError::server(&path, "PUT data (JSON)", err);
                        let name = layout::json_view_name(&filename).unwrap_or(filename);
                        self.save_unsent(&w.spool, &path, &party, &guid, &dt, &name, &fe);
                        w.failed = Some(fe.clone());
                        w.owns_spool = false;
                        Err(fe)
                    }
                }
            }
            Target::Local { ino } => {
                let Some(l) = self.st.lock().unwrap().locals.get(&ino).cloned() else {
                    // Unlinked or renamed into an element meanwhile.
                    w.dirty = false;
                    return Ok(());
                };
                if layout::is_temp_name(&l.name) || w.len == 0 {
                    w.dirty = false;
                    return Ok(());
                }
                let path = self.path_of(&l.node());
                match self
                    .post_file(&l.party, &l.guid, &l.dt, &l.name, &w.spool, w.len)
                    .await
                {
                    Ok(el) => {
                        w.dirty = false;
                        w.owns_spool = true;
                        w.target = Target::Existing {
                            party: l.party.clone(),
                            guid: l.guid.clone(),
                            dt: l.dt.clone(),
                            id: el.id.clone(),
                        };
                        self.local_became_element(ino, &l, el);
                        Ok(())
                    }
                    Err(err) => {
                        let fe = FsError::server(&path, "POST data", err);
                        self.save_unsent(&w.spool, &path, &l.party, &l.guid, &l.dt, &l.name, &fe);
                        self.remove_local(ino, false);
                        w.failed = Some(fe.clone());
                        Err(fe)
                    }
                }
            }
        }
    }

    /// A local file was uploaded as `el`: its inode now shows the element, and the kernel is
    /// told to look its name up again (to get the element's stable inode number).
    pub(super) fn local_became_element(&self, ino: u64, l: &LocalFile, el: DataElement) {
        let enode = Node::Element {
            party: l.party.clone(),
            guid: l.guid.clone(),
            dt: l.dt.clone(),
            id: el.id.clone(),
        };
        self.st.lock().unwrap().locals.remove(&ino);
        self.tree.rebind(ino, &enode);
        self.element_changed(&l.party, &l.guid, el);
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: l.party.clone(),
            guid: l.guid.clone(),
            dt: l.dt.clone(),
        });
        self.notify(vec![Inval::Entry {
            parent: dir,
            name: l.name.clone(),
        }]);
    }

    /// After a rename the kernel holds the source's inode under the new name: point it at the
    /// element that now has that name, and have the kernel look the name up again.
    pub(super) fn renamed_onto(
        &self,
        src_ino: u64,
        party: &str,
        guid: &str,
        dt: &str,
        id: &str,
        newname: &str,
    ) {
        let enode = Node::Element {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
            id: id.to_string(),
        };
        self.tree.rebind(src_ino, &enode);
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
        });
        self.notify(vec![
            Inval::Inode(src_ino),
            Inval::Entry {
                parent: dir,
                name: newname.to_string(),
            },
        ]);
    }

    pub(super) fn remove_local(&self, ino: u64, delete_spool: bool) -> Option<LocalFile> {
        let l = self.st.lock().unwrap().locals.remove(&ino);
        if let Some(l) = &l {
            if delete_spool {
                let _ = std::fs::remove_file(&l.spool);
            }
        }
        l
    }

    pub(super) async fn put_file(
        &self,
        party: &str,
        guid: &str,
        id: &str,
        filename: &str,
        spool: &Path,
        len: u64,
    ) -> Result<DataElement, AltinnError> {
        let ct = rules::mime_for(filename);
        self.put_file_as(party, guid, id, filename, &ct, spool, len)
            .await
    }

    /// PUT a spool to an element with an explicit content type (JSON views send
    /// `application/json` for an element named `X.xml`), retried like every idempotent call.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn put_file_as(
        &self,
        party: &str,
        guid: &str,
        id: &str,
        filename: &str,
        content_type: &str,
        spool: &Path,
        len: u64,
    ) -> Result<DataElement, AltinnError> {
        let r = Self::instance_ref(party, guid);
        self.cfg
            .retry
            .run("PUT data", || {
                self.client.replace_data(
                    &r,
                    id,
                    filename,
                    content_type,
                    UploadBody::File {
                        path: spool.to_path_buf(),
                        len,
                    },
                )
            })
            .await
    }

    /// POST a new element. A POST whose outcome is unknown (network error, 5xx, 429) is retried
    /// only after the instance's elements show that no element with this name and size
    /// appeared, so a retry never makes a duplicate.
    pub(super) async fn post_file(
        &self,
        party: &str,
        guid: &str,
        dt: &str,
        filename: &str,
        spool: &Path,
        len: u64,
    ) -> Result<DataElement, AltinnError> {
        let r = Self::instance_ref(party, guid);
        let ct = rules::mime_for(filename);
        let before: std::collections::HashSet<String> = self
            .tree
            .peek_instance(guid)
            .map(|e| e.inst.data.iter().map(|d| d.id.clone()).collect())
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            let res = self
                .client
                .create_data(
                    &r,
                    dt,
                    filename,
                    &ct,
                    UploadBody::File {
                        path: spool.to_path_buf(),
                        len,
                    },
                )
                .await;
            let err = match res {
                Ok(el) => return Ok(el),
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            tokio::time::sleep(self.cfg.retry.wait(attempt, &err)).await;
            let els = match self
                .cfg
                .retry
                .run("GET dataelements", || self.client.list_data_elements(&r))
                .await
            {
                Ok(els) => els,
                Err(e2) => {
                    tracing::warn!(
                        "{filename}: cannot check whether the failed POST stored it: {e2}"
                    );
                    return Err(err);
                }
            };
            if let Some(el) = els.into_iter().find(|e| {
                !before.contains(&e.id)
                    && e.data_type == dt
                    && e.filename.as_deref() == Some(filename)
                    && e.size as u64 == len
            }) {
                tracing::info!(
                    "{filename}: the POST that failed ({err}) had stored it; not sending again"
                );
                return Ok(el);
            }
            attempt += 1;
            if attempt >= self.cfg.retry.attempts {
                return Err(err);
            }
            tracing::info!("{filename}: POST failed ({err}), nothing stored; sending again");
        }
    }

    /// Keep a spool that could not be sent under `unsent/` with a JSON sidecar.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn save_unsent(
        &self,
        spool: &Path,
        path: &str,
        party: &str,
        guid: &str,
        dt: &str,
        filename: &str,
        err: &FsError,
    ) {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
        let base = format!(
            "{stamp}-{}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8],
            layout::sanitize(filename)
        );
        let base = layout::shorten(&base, 240);
        let dest = self.unsent.join(&base);
        if std::fs::rename(spool, &dest).is_err() {
            if let Err(e) = std::fs::copy(spool, &dest) {
                tracing::error!("{path}: upload failed ({err}) and the spool cannot be kept: {e}");
                return;
            }
        }
        let sidecar = serde_json::json!({
            "path": path,
            "party": party,
            "instance": guid,
            "dataType": dt,
            "filename": filename,
            "error": err.to_string(),
            "errno": err.errno(),
            "time": chrono::Utc::now().to_rfc3339(),
        });
        let side = self.unsent.join(format!("{base}.json"));
        let _ = std::fs::write(
            &side,
            serde_json::to_vec_pretty(&sidecar).unwrap_or_default(),
        );
        tracing::error!(
            "{err}; the bytes are kept in {} (details in {})",
            dest.display(),
            side.display()
        );
    }

    /// The server answered with a new state of an element: cache it and invalidate.
    pub(super) fn element_changed(&self, party: &str, guid: &str, el: DataElement) {
        self.blobs.invalidate(&el.id);
        let cur = self.tree.peek_instance(guid);
        let Some(cur) = cur else { return };
        let mut inst = cur.inst.clone();
        if let Some(lc) = el.last_changed {
            if inst.last_changed.is_none_or(|t| t < lc) {
                inst.last_changed = Some(lc);
            }
        }
        match inst.data.iter_mut().find(|d| d.id == el.id) {
            Some(d) => *d = el,
            None => inst.data.push(el),
        }
        let _ = party;
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
    }

    pub(super) fn element_removed(&self, guid: &str, id: &str) {
        self.blobs.invalidate(id);
        let cur = self.tree.peek_instance(guid);
        let Some(cur) = cur else { return };
        let mut inst = cur.inst.clone();
        inst.data.retain(|d| d.id != id);
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
    }
}

/// The file name an existing element is uploaded under: its own, else the name it is shown
/// under, else `{dt}.xml`.
fn upload_filename(e: &InstEntry, dt: &str, id: &str) -> String {
    e.element(id)
        .and_then(|el| el.filename.clone())
        .or_else(|| e.name_of(dt, id).map(String::from))
        .unwrap_or_else(|| format!("{dt}.xml"))
}
