//! Name resolution: a child name under a node (aliases, temporary names, JSON views, local
//! files), `lookup` and negative entries.

use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- lookup

    /// The child `name` of `parent`, as a node (no kernel reference taken).
    pub(super) async fn child(&self, parent: &Node, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        match parent {
            Node::Root => self.root_child(name).await,
            Node::Party { party } => self.party_child(*party, name).await,
            Node::AltinnDir => self.altinn_dir_child(name),
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. } => {
                self.view_child(parent, name).await
            }
            Node::Instance { party, guid } => {
                let (party, guid) = (*party, *guid);
                if name == INSTANCE_JSON {
                    return Ok(Node::InstanceJson { party, guid });
                }
                match DataTypeId::parse(name) {
                    Ok(dt) if self.meta.data_type(name).is_some() => {
                        Ok(Node::DataTypeDir { party, guid, dt })
                    }
                    _ => Err(nf()),
                }
            }
            Node::DataTypeDir { party, guid, dt } => {
                self.data_type_child(InstanceId::new(*party, *guid), dt, name)
                    .await
            }
            Node::Stateless => match DataTypeId::parse(name) {
                Ok(dt) if self.meta.data_type(name).is_some_and(|d| d.is_form()) => {
                    Ok(Node::StatelessType { dt })
                }
                _ => Err(nf()),
            },
            Node::StatelessType { dt } => self.stateless_child(dt, name).ok_or_else(nf),
            Node::AppMeta
            | Node::ChangeFeed
            | Node::InstanceJson { .. }
            | Node::Element { .. }
            | Node::StatelessFile { .. }
            | Node::FormJson { .. }
            | Node::Local { .. } => Err(FsError::new(ErrorKind::NotDir, name.to_string())),
        }
    }

    /// A name in the root: the app's files, a listed party, or a party id typed by hand.
    async fn root_child(&self, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        if name == APP_METADATA {
            return Ok(Node::AppMeta);
        }
        if name == STATELESS {
            return Ok(Node::Stateless);
        }
        if name == layout::ALTINN_DIR {
            return self.altinn_in_root();
        }
        if name == layout::INBOX {
            return self.view_in_root(layout::View::Inbox);
        }
        if name == layout::DONE {
            return self.view_in_root(layout::View::Done);
        }
        if !self.cfg.parties.is_empty() && !self.cfg.parties.iter().any(|p| p == name) {
            return Err(nf());
        }
        // A party id can be entered by name even when not listed (SPEC §2).
        let Ok(id) = PartyId::parse(name) else {
            return Err(nf());
        };
        let party = Node::Party { party: id };
        if self.tree.party_known(id) || self.index_has_party(id).await {
            return Ok(party);
        }
        match self.list_party(id).await {
            Ok(()) => Ok(party),
            Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT | libc::EINVAL) => {
                tracing::debug!("party {name}: {e}");
                Err(nf())
            }
            Err(e) => Err(e),
        }
    }

    /// A name in a party: an alias given to mkdir, a listed instance, or a GUID made since.
    async fn party_child(&self, party: PartyId, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        let instance = |guid: InstanceGuid| Node::Instance { party, guid };
        if let Some(guid) = self.tree.alias(party, name) {
            return Ok(instance(guid));
        }
        if let Some(link) = self.index_link() {
            return self.indexed_party_child(link, party, name).await;
        }
        let Ok(guid) = InstanceGuid::parse(name) else {
            return Err(nf());
        };
        if self.party_guids(party, false).await?.contains(&guid) {
            return Ok(instance(guid));
        }
        // Not in the listing (made elsewhere since): one GET of that instance, not a
        // re-list; the negative cache keeps repeated misses from asking again.
        match self.instance(party, guid, true).await {
            Ok(e)
                if party == e.inst.party_id()
                    && e.inst.status.hard_deleted.is_none()
                    && e.inst.status.soft_deleted.is_none() =>
            {
                self.tree.add_to_party(party, guid, false);
                Ok(instance(guid))
            }
            Ok(_) => Err(nf()),
            Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT) => Err(nf()),
            Err(e) => Err(e),
        }
    }

    /// A name in a data type directory: a local file, an element (asking again when the
    /// cached instance is stale), or a JSON view.
    async fn data_type_child(
        &self,
        inst: InstanceId,
        dt: &DataTypeId,
        name: &str,
    ) -> FsResult<Node> {
        let InstanceId { party, guid } = inst;
        if let Some(n) = self.local_named(guid, dt, name) {
            return Ok(n);
        }
        let mut e = self.instance(party, guid, false).await?;
        let mut found = e.find(dt.as_str(), name).map(|el| el.id.clone());
        if found.is_none() && self.tree.instance(guid, true).is_none() {
            e = self.instance(party, guid, true).await?;
            found = e.find(dt.as_str(), name).map(|el| el.id.clone());
        }
        match found.as_deref().and_then(element_id) {
            Some(id) => Ok(Node::Element {
                party,
                guid,
                dt: dt.clone(),
                id,
            }),
            None => self
                .json_view_named(&e, inst, dt, name)
                .ok_or_else(|| FsError::not_found(name.to_string())),
        }
    }

    /// With form_json: `X.json` names the JSON view of the form data element `X.xml`, unless an
    /// element or a local file has that name itself.
    pub(super) fn json_view_named(
        &self,
        e: &InstEntry,
        inst: InstanceId,
        dt: &DataTypeId,
        name: &str,
    ) -> Option<Node> {
        let InstanceId { party, guid } = inst;
        if !self.cfg.form_json
            || !self
                .meta
                .data_type(dt.as_str())
                .is_some_and(|d| d.is_form())
        {
            return None;
        }
        let (stem, ext) = layout::split_ext(name);
        if !ext.eq_ignore_ascii_case(".json") {
            return None;
        }
        let names = e.names.get(dt.as_str())?;
        let (_, i) = names.iter().find(|(n, _)| {
            let (s, x) = layout::split_ext(n);
            s == stem && x.eq_ignore_ascii_case(".xml")
        })?;
        if self.local_named(guid, dt, name).is_some() {
            return None;
        }
        Some(Node::FormJson {
            party,
            guid,
            dt: dt.clone(),
            id: element_id(&e.inst.data[*i].id)?,
        })
    }

    fn local_named(&self, guid: InstanceGuid, dt: &DataTypeId, name: &str) -> Option<Node> {
        self.writer.local_named(guid, dt, name)
    }

    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let pnode = self.node(parent)?;
        if self.tree.known_missing(parent, name) {
            return Err(FsError::not_found(name.to_string()));
        }
        let node = match self.child(&pnode, name).await {
            Ok(n) => n,
            Err(e) => {
                if e.errno() == libc::ENOENT {
                    self.tree.note_missing(parent, name);
                }
                return Err(e);
            }
        };
        if node.is_dir() {
            self.dir_fresh().await;
        }
        let ino = inode::ino_of(&node);
        let attr = self.attr_of(ino, &node).await?;
        self.tree.lookup_ref_as(ino, &node);
        self.trim_inodes();
        Ok(attr)
    }

    pub(super) fn clear_negative(&self, parent: u64, name: &str) {
        self.tree.clear_missing(parent, name);
    }
}
