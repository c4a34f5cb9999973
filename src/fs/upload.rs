//! SPEC §4 upload on flush/fsync/release: POST new elements, PUT existing ones, keep the bytes
//! in `unsent/` when the server refuses them, and update the cached instance afterwards.

use super::upload_verdict::{
    upload_verdict, PutAs, UploadRefusal, UploadSnapshot, UploadTarget, UploadVerdict,
};
use super::write::{Handle, LocalFile, Target, WriteHandle};
use super::*;

/// A spool this big is closed on a blocking thread at release (see `release`).
const BIG_SPOOL: u64 = 16 * 1024 * 1024;

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
        self.handles.writers_clean(ino)
    }

    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let h = self.handles.remove(fh);
        match h {
            Some(Handle::Blob(b)) => self.blobs.release(&b),
            Some(Handle::Write(h)) => {
                let (r, len) = {
                    let mut w = h.lock().await;
                    (self.release_write(&mut w).await, w.len)
                };
                // The spool's descriptor closes with the handle; for a removed spool that frees
                // its page cache (~10 ms of CPU per 256 MiB), work kept off the runtime's workers.
                if len >= BIG_SPOOL {
                    tokio::task::spawn_blocking(move || drop(h));
                }
                return r;
            }
            _ => {}
        }
        Ok(())
    }

    /// Upload what is left to send and end the write: the spool goes unless it belongs to a
    /// local file or `unsent/` kept it.
    async fn release_write(&self, w: &mut WriteHandle) -> FsResult<()> {
        // A failure already returned (by flush) is not reported (nor logged) again.
        let reported = w.failed.is_some();
        let r = self.upload(w).await;
        let r = if reported { Ok(()) } else { r };
        if let Target::Stateless { dt, name } = &w.target {
            self.stateless.end_write(dt.as_str(), name);
            self.writer.stop_writing(w.ino);
            let _ = std::fs::remove_file(&w.spool);
            return r;
        }
        if !self.handles.any_writer_of(w.ino) {
            self.writer.stop_writing(w.ino);
        }
        if let Target::Local { ino } = w.target {
            self.writer.close_local_writer(ino);
        }
        let kept_unsent =
            matches!(&w.failed, Some(e) if matches!(e.kind, ErrorKind::Server { .. }));
        if (w.owns_spool || w.failed.is_some()) && !kept_unsent {
            let _ = std::fs::remove_file(&w.spool);
        }
        r
    }

    /// Altinn refuses empty data: the element stays as it is, and the kernel forgets the size
    /// it saw while the file was open.
    fn refuse_empty(&self, w: &mut WriteHandle, path: String) -> FsError {
        w.dirty = false;
        self.writer.stop_writing(w.ino);
        self.notify_wait(vec![Inval::Inode(w.ino)]);
        FsError::new(ErrorKind::Empty, path)
    }

    /// Send a dirty handle's spool as [`upload_verdict`] decides: PUT for an element or a
    /// JSON view, POST for a new local file, the app's calculation for stateless data; an
    /// empty new file or a temporary name stays local.
    pub(super) async fn upload(&self, w: &mut WriteHandle) -> FsResult<()> {
        let target = w.target.clone();
        let local = match &target {
            Target::Local { ino } => self.writer.local(*ino),
            _ => None,
        };
        let verdict = upload_verdict(&self.upload_snapshot(w, local.as_ref()));
        match verdict {
            UploadVerdict::AlreadyFailed => return w.failed.clone().map_or(Ok(()), Err),
            UploadVerdict::Nothing => {
                w.dirty = false;
                return Ok(());
            }
            _ => {}
        }
        let _busy = self.busy();
        self.carry_out(w, verdict, target, local).await
    }

    /// Carry out a verdict that has something to do, for the target it was made for.
    async fn carry_out(
        &self,
        w: &mut WriteHandle,
        verdict: UploadVerdict,
        target: Target,
        local: Option<LocalFile>,
    ) -> FsResult<()> {
        match (verdict, target) {
            (UploadVerdict::KeepLocal, _) => {
                w.dirty = false;
                Ok(())
            }
            (UploadVerdict::Refuse(no), _) => Err(self.refuse_upload(w, no)),
            (UploadVerdict::Calculate, Target::Stateless { dt, name }) => {
                self.upload_stateless(w, &dt, &name).await
            }
            (
                UploadVerdict::Put(put_as),
                Target::Existing {
                    party,
                    guid,
                    dt,
                    id,
                }
                | Target::FormJson {
                    party,
                    guid,
                    dt,
                    id,
                },
            ) => {
                let node = Node::Element {
                    party,
                    guid,
                    dt,
                    id,
                };
                self.upload_put(w, node, put_as).await
            }
            (UploadVerdict::Post, Target::Local { ino }) => match local {
                Some(l) => self.upload_local(w, ino, l).await,
                None => Ok(()),
            },
            (v, t) => unreachable!("upload verdict {v:?} for target {t:?}"),
        }
    }

    /// Run the app's calculation on the stateless data written. A failure stays with the
    /// handle: a later flush returns it rather than calculating again.
    async fn upload_stateless(
        &self,
        w: &mut WriteHandle,
        dt: &DataTypeId,
        name: &str,
    ) -> FsResult<()> {
        w.dirty = false;
        let r = self
            .stateless_calculate(w.ino, dt, name, &w.spool, w.len)
            .await;
        if let Err(e) = &r {
            w.failed = Some(e.clone());
        }
        r
    }

    /// What [`upload_verdict`] needs to know of a handle and its target (from the cache).
    fn upload_snapshot<'a>(
        &self,
        w: &WriteHandle,
        local: Option<&'a LocalFile>,
    ) -> UploadSnapshot<'a> {
        let (target, guid, id) = match &w.target {
            Target::Existing { guid, id, .. } => (UploadTarget::Element, Some(guid), Some(id)),
            Target::FormJson { guid, id, .. } => (UploadTarget::JsonView, Some(guid), Some(id)),
            Target::Local { .. } => match local {
                Some(l) => (UploadTarget::Local { name: &l.name }, Some(&l.guid), None),
                None => (UploadTarget::LocalGone, None, None),
            },
            Target::Stateless { .. } => (UploadTarget::Stateless, None, None),
        };
        let inst = guid.and_then(|g| self.tree.peek_instance(*g));
        UploadSnapshot {
            target,
            len: w.len,
            dirty: w.dirty,
            failed: w.failed.is_some(),
            max_size: w.max,
            read_only: self.cfg.read_only,
            instance_active: inst.as_ref().is_none_or(|e| e.inst.is_active()),
            element_locked: id
                .zip(inst.as_ref())
                .and_then(|(id, e)| e.element(id).map(|el| el.locked))
                .unwrap_or(false),
        }
    }

    /// A refused upload: the handle remembers the error; bytes never sent go to `unsent/`.
    fn refuse_upload(&self, w: &mut WriteHandle, no: UploadRefusal) -> FsError {
        let node = self.node(w.ino).ok();
        let path = node.as_ref().map(|n| self.path_of(n)).unwrap_or_default();
        if no == UploadRefusal::EmptyReplacement {
            return self.refuse_empty(w, path);
        }
        let fe = no.into_error(&path);
        if no.keeps_bytes() {
            if let Some(n) = &node {
                let name = layout::sanitize(path.rsplit('/').next().unwrap_or_default());
                let out = uploader::Outgoing {
                    spool: &w.spool,
                    len: w.len,
                    filename: &name,
                };
                self.keep_unsent(out, &path, n, &fe);
                w.owns_spool = false;
            }
        }
        w.failed = Some(fe.clone());
        if let Target::Local { ino } = w.target {
            self.remove_local(ino, false);
        }
        fe
    }

    /// PUT the spool to an existing element: its own bytes, or (`PutAs::Json`) the JSON view
    /// `X.json` of the form `X.xml`. Refused bytes go to `unsent/` under the name written.
    async fn upload_put(&self, w: &mut WriteHandle, element: Node, put_as: PutAs) -> FsResult<()> {
        let Node::Element {
            party,
            guid,
            dt,
            id,
        } = &element
        else {
            unreachable!("upload_put of {element:?}")
        };
        let json = put_as == PutAs::Json;
        let written = if json {
            Node::FormJson {
                party: *party,
                guid: *guid,
                dt: dt.clone(),
                id: id.clone(),
            }
        } else {
            element.clone()
        };
        let put = ElementPut {
            inst: InstanceId::new(*party, *guid),
            id,
            element: &element,
            path: self.path_of(&written),
            written,
            json,
        };
        let e = self.instance(*party, *guid, false).await?;
        let filename = upload_filename(&e, dt, id);
        let out = uploader::Outgoing {
            spool: &w.spool,
            len: w.len,
            filename: &filename,
        };
        let content_type = json.then_some("application/json");
        match self.uploader.put(&put.inst, id, out, content_type).await {
            Ok(el) => {
                self.put_accepted(w, &put, el);
                Ok(())
            }
            Err(err) => {
                let fe = self.put_refused(&put, out, err).await;
                w.failed = Some(fe.clone());
                w.owns_spool = false;
                Err(fe)
            }
        }
    }

    /// The PUT went through: the handle is clean and the element shows its new state. After
    /// a PUT through the JSON view, the view's cached text and the element's inode are stale.
    fn put_accepted(&self, w: &mut WriteHandle, put: &ElementPut<'_>, el: DataElement) {
        w.dirty = false;
        let mut inval = vec![Inval::Inode(w.ino)];
        if put.json {
            self.uploader.forget_json_view(put.id);
            self.writer.stop_writing(w.ino);
            inval.push(Inval::Inode(inode::ino_of(put.element)));
        }
        self.element_changed(put.inst.party, put.inst.guid, el);
        self.notify_wait(inval);
    }

    /// The PUT was refused: the element shows as the server has it now, and the bytes go to
    /// `unsent/` under the name written (`X.json` for the JSON view). Returns the error.
    async fn put_refused(
        &self,
        put: &ElementPut<'_>,
        out: uploader::Outgoing<'_>,
        err: crate::altinn::client::AltinnError,
    ) -> FsError {
        let (err, fetched) = self
            .uploader
            .explain_put_conflict(&put.inst, put.id, err)
            .await;
        if let Some(fetched) = fetched {
            // The element now shows as it is (a locked one as 0444).
            let (_, inv) = self.put_instance(fetched);
            self.notify(inv);
        }
        let op = if put.json {
            "PUT data (JSON)"
        } else {
            "PUT data"
        };
        let fe = FsError::server(&put.path, op, err);
        let kept_name = match put.json {
            true => layout::json_view_name(out.filename).unwrap_or(out.filename.to_string()),
            false => out.filename.to_string(),
        };
        let kept = uploader::Outgoing {
            filename: &kept_name,
            ..out
        };
        self.keep_unsent(kept, &put.path, &put.written, &fe);
        fe
    }

    /// POST a local file's spool as a new element; it then is that element. Refused bytes go
    /// to `unsent/` and the local file goes away.
    async fn upload_local(&self, w: &mut WriteHandle, ino: u64, l: LocalFile) -> FsResult<()> {
        let path = self.path_of(&l.node());
        let out = uploader::Outgoing {
            spool: &w.spool,
            len: w.len,
            filename: &l.name,
        };
        match self.post_new(l.party, l.guid, &l.dt, out).await {
            Ok(el) => {
                w.dirty = false;
                w.owns_spool = true;
                let id = answered_element_id(&el.id, &path)?;
                w.target = Target::Existing {
                    party: l.party,
                    guid: l.guid,
                    dt: l.dt.clone(),
                    id,
                };
                self.local_became_element(ino, &l, el);
                Ok(())
            }
            Err(err) => {
                let fe = FsError::server(&path, "POST data", err);
                self.keep_unsent(out, &path, &l.node(), &fe);
                self.remove_local(ino, false);
                w.failed = Some(fe.clone());
                Err(fe)
            }
        }
    }

    /// POST new bytes into an instance.
    pub(super) async fn post_new(
        &self,
        party: PartyId,
        guid: InstanceGuid,
        dt: &DataTypeId,
        out: uploader::Outgoing<'_>,
    ) -> Result<DataElement, crate::altinn::client::AltinnError> {
        let inst = InstanceId::new(party, guid);
        self.uploader.post(&inst, dt, out).await
    }

    /// Keep bytes that could not be sent under `unsent/`, with where they were going.
    pub(super) fn keep_unsent(
        &self,
        out: uploader::Outgoing<'_>,
        path: &str,
        node: &Node,
        err: &FsError,
    ) {
        let (party, guid, dt) = match node {
            Node::Element {
                party, guid, dt, ..
            }
            | Node::FormJson {
                party, guid, dt, ..
            }
            | Node::Local {
                party, guid, dt, ..
            }
            | Node::DataTypeDir { party, guid, dt } => (party, guid, dt),
            _ => return,
        };
        let to = uploader::Destination {
            path,
            party: *party,
            guid: *guid,
            dt,
        };
        self.uploader.keep_unsent(out, to, err);
    }

    /// A local file was uploaded as `el`: its inode now shows the element, and the kernel is
    /// told to look its name up again (to get the element's stable inode number).
    pub(super) fn local_became_element(&self, ino: u64, l: &LocalFile, el: DataElement) {
        self.writer.remove_local(ino, false);
        if let Some(id) = element_id(&el.id) {
            let enode = Node::Element {
                party: l.party,
                guid: l.guid,
                dt: l.dt.clone(),
                id,
            };
            self.tree.rebind(ino, &enode);
        }
        self.element_changed(l.party, l.guid, el);
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: l.party,
            guid: l.guid,
            dt: l.dt.clone(),
        });
        self.notify(vec![Inval::Entry {
            parent: dir,
            name: l.name.clone(),
        }]);
    }

    /// After a rename the kernel holds the source's inode under the new name: point it at the
    /// element that now has that name, and have the kernel look the name up again.
    pub(super) fn renamed_onto(&self, src_ino: u64, element: &Node, newname: &str) {
        let Node::Element {
            party, guid, dt, ..
        } = element
        else {
            return;
        };
        self.tree.rebind(src_ino, element);
        let dir = inode::ino_of(&Node::DataTypeDir {
            party: *party,
            guid: *guid,
            dt: dt.clone(),
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
        self.writer.remove_local(ino, delete_spool)
    }

    /// The server answered with a new state of an element: cache it and invalidate.
    pub(super) fn element_changed(&self, party: PartyId, guid: InstanceGuid, el: DataElement) {
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
            Some(d) => *d = el.clone(),
            None => inst.data.push(el.clone()),
        }
        let _ = party;
        self.index_element(&inst, &el);
        let (_, inv) = self.put_instance_quiet(inst);
        self.notify(inv);
    }

    pub(super) fn element_removed(&self, guid: InstanceGuid, id: &ElementId) {
        self.blobs.invalidate(&id.to_string());
        let cur = self.tree.peek_instance(guid);
        let Some(cur) = cur else { return };
        self.index_element_removed(&cur.inst, id);
        let mut inst = cur.inst.clone();
        inst.data.retain(|d| *id != d.id);
        let (_, inv) = self.put_instance_quiet(inst);
        self.notify(inv);
    }
}

/// One PUT of a write handle's spool to an existing element.
struct ElementPut<'a> {
    inst: InstanceId,
    id: &'a ElementId,
    element: &'a Node,
    /// What the handle wrote: the element, or its JSON view `X.json`.
    written: Node,
    /// `written`'s path, for errors and `unsent/`.
    path: String,
    /// Sent as `application/json`, through the JSON view.
    json: bool,
}

/// The file name an existing element is uploaded under: its own, else the name it is shown
/// under, else `{dt}.xml`.
fn upload_filename(e: &InstEntry, dt: &DataTypeId, id: &ElementId) -> String {
    e.element(id)
        .and_then(|el| el.filename.clone())
        .or_else(|| e.name_of(dt, id).map(String::from))
        .unwrap_or_else(|| format!("{dt}.xml"))
}
