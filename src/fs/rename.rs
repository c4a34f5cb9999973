//! SPEC §4 unlink and rename inside a data type directory. A rename is decided by the pure
//! [`rename_plan::plan_rename`] over what the tree and the writer know of both names; each plan
//! arm is one short execute step here.

use super::rename_plan::{self, DirState, Entry, RenameFlags, RenamePlan, RenameRefusal};
use super::uploader::Outgoing;
use super::write::LocalFile;
use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- unlink / rename

    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.refuse_in_view(parent)?;
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let node = self.child(&pnode, name).await?;
        match &node {
            Node::StatelessFile { dt, name } => {
                self.stateless_unlink(dt, name)?;
                self.notify(vec![Inval::Inode(inode::ino_of(&node))]);
                Ok(())
            }
            Node::FormJson { .. } => Err(FsError::refused(
                path,
                "X.json is the JSON view of X.xml; remove X.xml to delete the element",
            )),
            Node::Local { .. } => {
                let ino = inode::ino_of(&node);
                self.remove_local(ino, true);
                Ok(())
            }
            Node::Element {
                party,
                guid,
                dt,
                id,
            } => {
                let e = self.instance(*party, *guid, false).await?;
                self.check_writable(&path, &e.inst)?;
                if self.data_type(dt)?.is_main_form() {
                    return Err(FsError::refused(&path, "the main form of an instance cannot be deleted (Altinn: Cannot Delete main data element)"));
                }
                let _busy = self.busy();
                let r = InstanceId::new(*party, *guid);
                self.client
                    .delete_data(&r, id)
                    .await
                    .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                self.element_removed(*guid, id);
                Ok(())
            }
            n if n.is_dir() => Err(FsError::new(ErrorKind::IsDir, path)),
            _ => Err(FsError::refused(path, "read-only file")),
        }
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        flags: impl Into<RenameFlags>,
    ) -> FsResult<()> {
        let req = RenameRequest {
            parent,
            name,
            newparent,
            newname,
            flags: flags.into(),
        };
        if let Some(r) = self.view_rename((parent, name), (newparent, newname)).await {
            return r;
        }
        let pnode = self.node(parent)?;
        let dir_path = self.path_of(&pnode);
        let path = format!("{dir_path}/{name}");
        let newpath = format!("{dir_path}/{newname}");
        let names = self.rename_names(&pnode, &req).await?;
        let dtype = match &pnode {
            Node::DataTypeDir { dt, .. } if names.is_some() => Some(self.data_type(dt)?.clone()),
            _ => None,
        };
        let snapshot = self.rename_snapshot(&req, &pnode, names.as_ref(), dtype.as_ref());
        let plan = rename_plan::plan_rename(&snapshot).map_err(|no| {
            let at = if refusal_is_about_target(&no) {
                &newpath
            } else {
                &path
            };
            no.into_error(at)
        })?;
        let Some(names) = names else {
            return Ok(());
        };
        let job = RenameJob {
            parent,
            newname,
            path: &path,
            newpath: &newpath,
            names: &names,
        };
        self.execute_rename(plan, &job).await
    }

    /// Both names in the source's directory, when the rename stays in one data type directory
    /// (else the plan refuses it before any name matters).
    async fn rename_names(
        &self,
        pnode: &Node,
        req: &RenameRequest<'_>,
    ) -> FsResult<Option<RenameNames>> {
        let Node::DataTypeDir { party, guid, dt } = pnode else {
            return Ok(None);
        };
        if !req.same_dir() || req.newname.len() > layout::NAME_MAX {
            return Ok(None);
        }
        let found = |r: FsResult<Node>| match r {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.errno() == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        };
        let src = found(self.child(pnode, req.name).await)?;
        let dst = found(self.child(pnode, req.newname).await)?;
        let inst = self.instance(*party, *guid, false).await?;
        Ok(Some(RenameNames {
            party: *party,
            guid: *guid,
            dt: dt.clone(),
            inst,
            src,
            dst,
        }))
    }

    /// What the plan reads: the request, the mount, the source's directory and both names
    /// as the tree and the writer know them.
    fn rename_snapshot<'a>(
        &self,
        req: &RenameRequest<'a>,
        pnode: &Node,
        names: Option<&RenameNames>,
        dtype: Option<&'a DataType>,
    ) -> rename_plan::RenameSnapshot<'a> {
        let dir = names.zip(dtype).map(|(n, dt)| self.dir_state(n, dt));
        let (src, dst) = names
            .map(|n| (self.entry_of(n, &n.src), self.entry_of(n, &n.dst)))
            .unwrap_or((Entry::Missing, Entry::Missing));
        rename_plan::RenameSnapshot {
            flags: req.flags,
            read_only: self.cfg.read_only,
            src_in_data_type_dir: matches!(pnode, Node::DataTypeDir { .. }),
            same_dir: req.same_dir(),
            new_name: req.newname,
            src,
            dst,
            same_entry: names.is_some_and(|n| n.dst == n.src),
            dir,
        }
    }

    /// What the plan needs to know of the data type directory.
    fn dir_state<'a>(&self, n: &RenameNames, dtype: &'a DataType) -> DirState<'a> {
        let mut locals: Vec<u64> = Vec::new();
        for node in [&n.src, &n.dst].into_iter().flatten() {
            if matches!(node, Node::Local { .. }) {
                locals.push(inode::ino_of(node));
            }
        }
        DirState {
            data_type: dtype,
            instance_active: n.inst.inst.is_active(),
            org_token: self.tree.org_mode() == Some(true),
            elements: n.inst.count(&n.dt),
            other_pending: self.writer.pending_count(n.guid, &n.dt, &locals),
        }
    }

    /// One name as the plan sees it.
    fn entry_of(&self, n: &RenameNames, node: &Option<Node>) -> Entry {
        let locked = |id: &ElementId| n.inst.element(id).is_some_and(|el| el.locked);
        match node {
            None => Entry::Missing,
            Some(l @ Node::Local { .. }) => {
                let ino = inode::ino_of(l);
                match self.writer.local(ino) {
                    Some(f) => Entry::Local {
                        len: f.len,
                        flushed: f.writers == 0 || self.write_handles_clean(ino),
                    },
                    None => Entry::Missing,
                }
            }
            Some(Node::Element { id, .. }) => Entry::Element { locked: locked(id) },
            Some(Node::FormJson { id, .. }) => Entry::JsonView { locked: locked(id) },
            Some(_) => Entry::Other,
        }
    }

    async fn execute_rename(&self, plan: RenamePlan, job: &RenameJob<'_>) -> FsResult<()> {
        if plan == RenamePlan::Noop {
            return Ok(());
        }
        let _busy = self.busy();
        self.clear_negative(job.parent, job.newname);
        let replaces_local = matches!(
            plan,
            RenamePlan::LocalToNew {
                replaces_local: true,
                ..
            } | RenamePlan::ElementToNew {
                replaces_local: true,
                ..
            }
        );
        if replaces_local {
            if let Some(d) = &job.names.dst {
                self.remove_local(inode::ino_of(d), true);
            }
        }
        let src_ino = job.names.src.as_ref().map(inode::ino_of).unwrap_or(0);
        match plan {
            RenamePlan::Noop => Ok(()),
            RenamePlan::LocalToNew { upload, .. } => self.rename_local(job, src_ino, upload).await,
            RenamePlan::LocalOverElement => self.local_over_element(job, src_ino).await,
            RenamePlan::LocalOverJsonView => self.local_over_json_view(job, src_ino).await,
            RenamePlan::ElementToNew { delete_first, .. } => {
                self.element_to_new(job, src_ino, delete_first).await
            }
            RenamePlan::ElementOverElement => self.element_over_element(job, src_ino).await,
        }
    }

    /// A local file takes a new name; its bytes go up now when they are complete.
    async fn rename_local(&self, job: &RenameJob<'_>, ino: u64, upload: bool) -> FsResult<()> {
        let l = self
            .writer
            .rename_local(ino, job.newname)
            .ok_or_else(|| FsError::not_found(job.path))?;
        if !upload {
            return Ok(());
        }
        // rsync and editors close the temporary file, then rename it; the kernel's release
        // may come after the rename. Bytes flushed at close are complete, so upload now and
        // let rename return once the element exists.
        let n = job.names;
        let out = Outgoing {
            spool: &l.spool,
            len: l.len,
            filename: job.newname,
        };
        match self.post_new(n.party, n.guid, &n.dt, out).await {
            Ok(el) => {
                let _ = std::fs::remove_file(&l.spool);
                self.local_became_element(ino, &l, el);
                Ok(())
            }
            Err(err) => {
                let fe = FsError::server(job.newpath, "POST data", err);
                self.keep_unsent(out, job.newpath, &n.dir_node(), &fe);
                self.remove_local(ino, false);
                Err(fe)
            }
        }
    }

    /// The local file and the element (`Element` or the one behind `FormJson`) it replaces.
    fn local_and_target(
        &self,
        job: &RenameJob<'_>,
        ino: u64,
    ) -> FsResult<(LocalFile, DataElement, ElementId)> {
        let l = self
            .writer
            .local(ino)
            .ok_or_else(|| FsError::not_found(job.path))?;
        let did = match &job.names.dst {
            Some(Node::Element { id, .. } | Node::FormJson { id, .. }) => id,
            _ => return Err(FsError::not_found(job.newpath)),
        };
        let del = job
            .names
            .inst
            .element(did)
            .cloned()
            .ok_or_else(|| FsError::not_found(job.newpath))?;
        Ok((l, del, did.clone()))
    }

    /// An editor's save: a local file renamed over an element is PUT to it.
    async fn local_over_element(&self, job: &RenameJob<'_>, ino: u64) -> FsResult<()> {
        let n = job.names;
        let (l, del, did) = self.local_and_target(job, ino)?;
        let filename = del
            .filename
            .clone()
            .unwrap_or_else(|| job.newname.to_string());
        let out = Outgoing {
            spool: &l.spool,
            len: l.len,
            filename: &filename,
        };
        let el = self
            .uploader
            .put(&n.inst_ref(), &did, out, None)
            .await
            .map_err(|err| FsError::server(job.newpath, "PUT data", err))?;
        self.remove_local(ino, true);
        let id = answered_element_id(&el.id, job.newpath)?;
        self.element_changed(n.party, n.guid, el);
        self.renamed_onto(ino, &n.element(id), job.newname);
        Ok(())
    }

    /// An editor's temporary file saved over X.json: PUT it as JSON.
    async fn local_over_json_view(&self, job: &RenameJob<'_>, ino: u64) -> FsResult<()> {
        let n = job.names;
        let (l, del, did) = self.local_and_target(job, ino)?;
        let filename = del
            .filename
            .clone()
            .unwrap_or_else(|| format!("{}.xml", n.dt));
        let out = Outgoing {
            spool: &l.spool,
            len: l.len,
            filename: &filename,
        };
        let el = self
            .uploader
            .put(&n.inst_ref(), &did, out, Some("application/json"))
            .await
            .map_err(|err| FsError::server(job.newpath, "PUT data (JSON)", err))?;
        self.remove_local(ino, true);
        self.uploader.forget_json_view(&did);
        self.element_changed(n.party, n.guid, el);
        if let Some(jnode) = &n.dst {
            self.tree.rebind(ino, jnode);
        }
        self.notify(vec![
            Inval::Inode(ino),
            Inval::Entry {
                parent: job.parent,
                name: job.newname.to_string(),
            },
        ]);
        Ok(())
    }

    /// The source element, its bytes copied into a new spool (removed by the caller).
    async fn copy_source(&self, job: &RenameJob<'_>) -> FsResult<(DataElement, PathBuf)> {
        let n = job.names;
        let Some(Node::Element { id, .. }) = &n.src else {
            return Err(FsError::not_found(job.path));
        };
        let sel = n
            .inst
            .element(id)
            .cloned()
            .ok_or_else(|| FsError::not_found(job.path))?;
        let (spool, file) = self.new_spool().map_err(|e| FsError::io(job.path, e))?;
        if let Err(e) = self.copy_blob_into(n.inst_ref(), &sel, &file).await {
            let _ = std::fs::remove_file(&spool);
            return Err(e);
        }
        Ok((sel, spool))
    }

    /// DELETE the source element of a rename.
    async fn delete_source(&self, job: &RenameJob<'_>, id: &str) -> FsResult<()> {
        let n = job.names;
        let id = &answered_element_id(id, job.path)?;
        let r = n.inst_ref();
        self.client
            .delete_data(&r, id)
            .await
            .map_err(|err| FsError::server(job.path, "DELETE data", err))?;
        self.element_removed(n.guid, id);
        Ok(())
    }

    /// An element takes a new name: POST its bytes under it, DELETE the old one (first, when
    /// the data type is at maxCount: then the bytes go to `unsent/` if the POST fails).
    async fn element_to_new(
        &self,
        job: &RenameJob<'_>,
        src_ino: u64,
        delete_first: bool,
    ) -> FsResult<()> {
        let (sel, spool) = self.copy_source(job).await?;
        let n = job.names;
        let out = Outgoing {
            spool: &spool,
            len: sel.size.max(0) as u64,
            filename: job.newname,
        };
        let res = async {
            if delete_first {
                self.delete_source(job, &sel.id).await?;
            }
            let el = match self.post_new(n.party, n.guid, &n.dt, out).await {
                Ok(el) => el,
                Err(err) => {
                    let fe = FsError::server(job.newpath, "POST data", err);
                    if delete_first {
                        self.keep_unsent(out, job.newpath, &n.dir_node(), &fe);
                    }
                    return Err(fe);
                }
            };
            let id = answered_element_id(&el.id, job.newpath)?;
            self.element_changed(n.party, n.guid, el);
            self.renamed_onto(src_ino, &n.element(id), job.newname);
            if !delete_first {
                self.delete_source(job, &sel.id).await?;
            }
            Ok(())
        }
        .await;
        let _ = std::fs::remove_file(&spool);
        res
    }

    /// An element renamed over another: PUT its bytes to the target, DELETE the source.
    async fn element_over_element(&self, job: &RenameJob<'_>, src_ino: u64) -> FsResult<()> {
        let (sel, spool) = self.copy_source(job).await?;
        let n = job.names;
        let res = async {
            let Some(Node::Element { id: did, .. }) = &n.dst else {
                return Err(FsError::not_found(job.newpath));
            };
            let del = n
                .inst
                .element(did)
                .ok_or_else(|| FsError::not_found(job.newpath))?;
            let filename = del
                .filename
                .clone()
                .unwrap_or_else(|| job.newname.to_string());
            let out = Outgoing {
                spool: &spool,
                len: sel.size.max(0) as u64,
                filename: &filename,
            };
            let el = self
                .uploader
                .put(&n.inst_ref(), did, out, None)
                .await
                .map_err(|err| FsError::server(job.newpath, "PUT data", err))?;
            let id = answered_element_id(&el.id, job.newpath)?;
            self.element_changed(n.party, n.guid, el);
            self.renamed_onto(src_ino, &n.element(id), job.newname);
            self.delete_source(job, &sel.id).await
        }
        .await;
        let _ = std::fs::remove_file(&spool);
        res
    }
}

/// The two names of a rename inside one data type directory, and the instance they are in.
struct RenameNames {
    party: PartyId,
    guid: InstanceGuid,
    dt: DataTypeId,
    inst: Arc<InstEntry>,
    src: Option<Node>,
    dst: Option<Node>,
}

impl RenameNames {
    fn inst_ref(&self) -> InstanceId {
        InstanceId::new(self.party, self.guid)
    }
    fn dir_node(&self) -> Node {
        Node::DataTypeDir {
            party: self.party,
            guid: self.guid,
            dt: self.dt.clone(),
        }
    }
    fn element(&self, id: ElementId) -> Node {
        Node::Element {
            party: self.party,
            guid: self.guid,
            dt: self.dt.clone(),
            id,
        }
    }
}

/// A rename as the kernel asked for it: `name` in `parent` to `newname` in `newparent`.
struct RenameRequest<'a> {
    parent: u64,
    name: &'a str,
    newparent: u64,
    newname: &'a str,
    flags: RenameFlags,
}

impl RenameRequest<'_> {
    fn same_dir(&self) -> bool {
        self.parent == self.newparent
    }
}

/// One planned rename being executed.
struct RenameJob<'a> {
    parent: u64,
    newname: &'a str,
    path: &'a str,
    newpath: &'a str,
    names: &'a RenameNames,
}

/// Refusals that concern the new name (logged with its path), as before the plan existed.
fn refusal_is_about_target(no: &RenameRefusal) -> bool {
    use RenameRefusal as No;
    matches!(
        no,
        No::TargetExists
            | No::ReadOnlyMount
            | No::InstanceInactive
            | No::TargetLocked
            | No::EmptyReplacement
            | No::TypeNotWritable(_)
            | No::Rule(_)
            | No::MaxCount { .. }
            | No::JsonViewTarget
    )
}

/// The kernel's raw `renameat2` flags.
impl From<u32> for RenameFlags {
    fn from(raw: u32) -> Self {
        RenameFlags::from_raw(raw)
    }
}
