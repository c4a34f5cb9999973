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
            Node::Party { party } => self.party_child(party, name).await,
            Node::AltinnDir => self.altinn_dir_child(name),
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. } => {
                self.view_child(parent, name).await
            }
            Node::Instance { party, guid } => {
                let (party, guid) = (party.clone(), guid.clone());
                if name == INSTANCE_JSON {
                    return Ok(Node::InstanceJson { party, guid });
                }
                if self.meta.data_type(name).is_some() {
                    let dt = name.to_string();
                    return Ok(Node::DataTypeDir { party, guid, dt });
                }
                Err(nf())
            }
            Node::DataTypeDir { party, guid, dt } => {
                self.data_type_child(party, guid, dt, name).await
            }
            Node::Stateless => {
                if self.meta.data_type(name).is_some_and(|d| d.is_form()) {
                    Ok(Node::StatelessType {
                        dt: name.to_string(),
                    })
                } else {
                    Err(nf())
                }
            }
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
        let party = Node::Party {
            party: name.to_string(),
        };
        if self.tree.party_known(name) || self.index_has_party(name).await {
            return Ok(party);
        }
        // Not listed: a party id can still be entered by name (SPEC §2).
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) || name.len() > 18 {
            return Err(nf());
        }
        match self.list_party(name).await {
            Ok(()) => Ok(party),
            Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT | libc::EINVAL) => {
                tracing::debug!("party {name}: {e}");
                Err(nf())
            }
            Err(e) => Err(e),
        }
    }

    /// A name in a party: an alias given to mkdir, a listed instance, or a GUID made since.
    async fn party_child(&self, party: &str, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        let instance = |guid: String| Node::Instance {
            party: party.to_string(),
            guid,
        };
        if let Some(guid) = self.tree.alias(party, name) {
            return Ok(instance(guid));
        }
        if let Some(link) = self.index_link() {
            return self.indexed_party_child(link, party, name).await;
        }
        if self.party_guids(party, false).await?.contains(name) {
            return Ok(instance(name.to_string()));
        }
        if uuid::Uuid::parse_str(name).is_err() {
            return Err(nf());
        }
        // Not in the listing (made elsewhere since): one GET of that instance, not a
        // re-list; the negative cache keeps repeated misses from asking again.
        match self.instance(party, name, true).await {
            Ok(e)
                if e.inst.party_id() == *party
                    && e.inst.status.hard_deleted.is_none()
                    && e.inst.status.soft_deleted.is_none() =>
            {
                self.tree.add_to_party(party, name, false);
                Ok(instance(name.to_string()))
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
        party: &str,
        guid: &str,
        dt: &str,
        name: &str,
    ) -> FsResult<Node> {
        if let Some(n) = self.local_named(guid, dt, name) {
            return Ok(n);
        }
        let mut e = self.instance(party, guid, false).await?;
        let mut found = e.find(dt, name).map(|el| el.id.clone());
        if found.is_none() && self.tree.instance(guid, true).is_none() {
            e = self.instance(party, guid, true).await?;
            found = e.find(dt, name).map(|el| el.id.clone());
        }
        match found {
            Some(id) => Ok(Node::Element {
                party: party.to_string(),
                guid: guid.to_string(),
                dt: dt.to_string(),
                id,
            }),
            None => self
                .json_view_named(&e, party, guid, dt, name)
                .ok_or_else(|| FsError::not_found(name.to_string())),
        }
    }

    /// With form_json: `X.json` names the JSON view of the form data element `X.xml`, unless an
    /// element or a local file has that name itself.
    pub(super) fn json_view_named(
        &self,
        e: &InstEntry,
        party: &str,
        guid: &str,
        dt: &str,
        name: &str,
    ) -> Option<Node> {
        if !self.cfg.form_json || !self.meta.data_type(dt).is_some_and(|d| d.is_form()) {
            return None;
        }
        let (stem, ext) = layout::split_ext(name);
        if !ext.eq_ignore_ascii_case(".json") {
            return None;
        }
        let names = e.names.get(dt)?;
        let (_, i) = names.iter().find(|(n, _)| {
            let (s, x) = layout::split_ext(n);
            s == stem && x.eq_ignore_ascii_case(".xml")
        })?;
        if self.local_named(guid, dt, name).is_some() {
            return None;
        }
        Some(Node::FormJson {
            party: party.to_string(),
            guid: guid.to_string(),
            dt: dt.to_string(),
            id: e.inst.data[*i].id.clone(),
        })
    }

    fn local_named(&self, guid: &str, dt: &str, name: &str) -> Option<Node> {
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
        let ino = inode::ino_of(&node);
        let attr = self.attr_of(ino, &node).await?;
        self.tree.lookup_ref(&node);
        self.trim_inodes();
        Ok(attr)
    }

    pub(super) fn clear_negative(&self, parent: u64, name: &str) {
        self.tree.clear_missing(parent, name);
    }
}
