//! Attributes of every node (sizes, times, modes), the JSON view of form data, and the
//! read-only `user.altinn.*` extended attributes.

use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- attributes

    pub(super) fn dir_attr(&self, ino: u64, mtime: SystemTime, crtime: SystemTime) -> Attr {
        Attr {
            ino,
            kind: Kind::Dir,
            size: 0,
            perm: self.cfg.dir_mode as u16,
            nlink: 2,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            mtime,
            ctime: mtime,
            crtime,
        }
    }

    pub(super) fn file_attr(
        &self,
        ino: u64,
        size: u64,
        writable: bool,
        mtime: SystemTime,
        crtime: SystemTime,
    ) -> Attr {
        let perm = if writable && !self.cfg.read_only {
            self.cfg.file_mode
        } else {
            self.cfg.file_mode & !0o222
        };
        Attr {
            ino,
            kind: Kind::File,
            size,
            perm: perm as u16,
            nlink: 1,
            uid: self.cfg.uid,
            gid: self.cfg.gid,
            mtime,
            ctime: mtime,
            crtime,
        }
    }

    fn element_attr(&self, ino: u64, inst: &Instance, el: &DataElement) -> Attr {
        let writable = !el.locked && inst.is_active();
        let size = self
            .writer
            .written_size(ino)
            .unwrap_or(el.size.max(0) as u64);
        let m = to_system(el.last_changed, self.started);
        self.file_attr(ino, size, writable, m, to_system(el.created, m))
    }

    /// The instance holding element `id`, asked again when the cached copy does not have it.
    async fn instance_with(&self, inst: InstanceId, id: &ElementId) -> FsResult<Arc<InstEntry>> {
        let mut e = self.instance(inst.party, inst.guid, false).await?;
        if e.element(id).is_none() {
            e = self.instance(inst.party, inst.guid, true).await?;
        }
        Ok(e)
    }

    /// Attributes of `node`, reported under inode number `ino`.
    pub(super) async fn attr_of(&self, ino: u64, node: &Node) -> FsResult<Attr> {
        let t0 = self.started;
        Ok(match node {
            Node::Root
            | Node::Stateless
            | Node::StatelessType { .. }
            | Node::Party { .. }
            | Node::AltinnDir => self.dir_attr(ino, self.dir_stamps.mtime(ino, t0), t0),
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. } => {
                self.view_attr(ino, node).await?
            }
            Node::ChangeFeed => self.change_feed_attr(ino)?,
            Node::AppMeta => {
                let m = to_system(self.meta.last_changed, t0);
                self.file_attr(
                    ino,
                    self.meta_json.len() as u64,
                    false,
                    m,
                    to_system(self.meta.created, m),
                )
            }
            Node::Instance { party, guid } | Node::DataTypeDir { party, guid, .. } => {
                let e = self.instance(*party, *guid, false).await?;
                let m = to_system(e.inst.last_changed, t0);
                self.dir_attr(ino, m, to_system(e.inst.created, m))
            }
            Node::InstanceJson { party, guid } => {
                let e = self.instance(*party, *guid, false).await?;
                let m = to_system(e.inst.last_changed, t0);
                self.file_attr(ino, e.json_len, false, m, to_system(e.inst.created, m))
            }
            Node::Element {
                party, guid, id, ..
            } => {
                let e = self
                    .instance_with(InstanceId::new(*party, *guid), id)
                    .await?;
                self.element_attr(ino, &e.inst, self.element_in(&e, id, node)?)
            }
            Node::Local { .. } => self.local_attr(ino, node)?,
            Node::StatelessFile { dt, name } => {
                let size = match self.writer.written_size(ino) {
                    Some(n) => n,
                    None => self
                        .stateless_size(dt, name)
                        .ok_or_else(|| FsError::not_found(self.path_of(node)))?,
                };
                self.file_attr(ino, size, true, t0, t0)
            }
            Node::FormJson {
                party, guid, id, ..
            } => {
                self.form_json_attr(ino, node, InstanceId::new(*party, *guid), id)
                    .await?
            }
        })
    }

    /// Element `id` of instance entry `e`; not found (named by `node`'s path) when the
    /// instance no longer has it.
    fn element_in<'a>(
        &self,
        e: &'a InstEntry,
        id: &ElementId,
        node: &Node,
    ) -> FsResult<&'a DataElement> {
        e.element(id)
            .ok_or_else(|| FsError::not_found(self.path_of(node)))
    }

    /// A local file (not uploaded yet): its spool's size, or what an open writer has written.
    fn local_attr(&self, ino: u64, node: &Node) -> FsResult<Attr> {
        let (len, mtime, created) = self
            .writer
            .local_stat(inode::ino_of(node))
            .ok_or_else(|| FsError::not_found(String::new()))?;
        // The size an open writer has under the number the kernel asked about.
        let size = self.writer.written_size(ino).unwrap_or(len);
        Ok(self.file_attr(ino, size, true, mtime, created))
    }

    /// The JSON view of form element `id`: the element's attributes with the view's size
    /// (what an open writer has written, else the fetched view's length).
    async fn form_json_attr(
        &self,
        ino: u64,
        node: &Node,
        inst: InstanceId,
        id: &ElementId,
    ) -> FsResult<Attr> {
        let e = self.instance_with(inst, id).await?;
        let el = self.element_in(&e, id, node)?;
        let mut a = self.element_attr(ino, &e.inst, el);
        a.size = match self.writer.written_size(ino) {
            Some(n) => n,
            None => self.json_view(inst, el).await?.len() as u64,
        };
        Ok(a)
    }

    /// The JSON view of a form data element (the uploader caches it).
    pub(super) async fn json_view(&self, inst: InstanceId, el: &DataElement) -> FsResult<Bytes> {
        self.uploader.json_view(&inst, el).await
    }

    /// True for files whose bytes are made per read (`.stateless/`): the kernel reads them
    /// directly instead of through its page cache.
    pub fn direct_io(&self, ino: u64) -> bool {
        matches!(
            self.node(ino),
            Ok(Node::StatelessFile { .. } | Node::ChangeFeed)
        )
    }

    pub async fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let node = self.node(ino)?;
        if node.is_dir() {
            self.dir_fresh().await;
        }
        self.attr_of(ino, &node).await
    }

    // ---------------------------------------------------------------- xattrs

    fn xattrs(&self, node: &Node, e: Option<&InstEntry>) -> Vec<(String, String)> {
        let mut v: Vec<(&str, Option<String>)> = Vec::new();
        let ts = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
        match (node, e) {
            (Node::Element { id, .. }, Some(e)) => {
                if let Some(el) = e.element(id) {
                    v.push(("id", Some(el.id.clone())));
                    v.push(("dataType", Some(el.data_type.clone())));
                    v.push(("contentType", el.content_type.clone()));
                    v.push(("created", ts(el.created)));
                    v.push(("createdBy", el.created_by.clone()));
                    v.push(("lastChanged", ts(el.last_changed)));
                    v.push(("lastChangedBy", el.last_changed_by.clone()));
                    v.push(("locked", Some(el.locked.to_string())));
                    v.push(("fileScanResult", el.file_scan_result.clone()));
                    v.push(("tags", Some(el.tags.join(","))));
                }
            }
            (Node::Instance { .. }, Some(e)) => {
                let i = &e.inst;
                v.push(("id", Some(i.id.clone())));
                let p = i.process.as_ref();
                v.push((
                    "process.currentTask",
                    p.and_then(|p| p.current_task.as_ref())
                        .and_then(|t| t.element_id.clone()),
                ));
                v.push(("process.ended", ts(p.and_then(|p| p.ended))));
                v.push(("status.archived", ts(i.status.archived)));
                v.push(("lastChanged", ts(i.last_changed)));
            }
            (Node::Local { dt, .. }, _) => {
                v.push(("pending", Some("true".into())));
                v.push(("dataType", Some(dt.to_string())));
            }
            _ => {}
        }
        v.into_iter()
            .filter_map(|(k, val)| val.map(|val| (format!("user.altinn.{k}"), val)))
            .collect()
    }

    async fn xattr_list(&self, ino: u64) -> FsResult<Vec<(String, String)>> {
        let node = self.node(ino)?;
        let e = match &node {
            Node::Element { party, guid, .. }
            | Node::FormJson { party, guid, .. }
            | Node::Instance { party, guid } => Some(self.instance(*party, *guid, false).await?),
            _ => None,
        };
        if let Node::FormJson {
            party,
            guid,
            dt,
            id,
        } = &node
        {
            // The element's attributes, in its JSON form.
            let el = Node::Element {
                party: *party,
                guid: *guid,
                dt: dt.clone(),
                id: id.clone(),
            };
            let mut v = self.xattrs(&el, e.as_deref());
            for (k, val) in v.iter_mut() {
                if k == "user.altinn.contentType" {
                    *val = "application/json".into();
                }
            }
            return Ok(v);
        }
        Ok(self.xattrs(&node, e.as_deref()))
    }

    pub async fn listxattr(&self, ino: u64) -> FsResult<Vec<String>> {
        Ok(self
            .xattr_list(ino)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect())
    }

    pub async fn getxattr(&self, ino: u64, name: &str) -> FsResult<Vec<u8>> {
        self.xattr_list(ino)
            .await?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_bytes())
            .ok_or_else(|| FsError::new(ErrorKind::NoAttr, name.to_string()))
    }
}
