//! Listing and caching of parties and instances: one Storage query (paged by the client)
//! fills every directory below it; `readdir` answers from that cache while it is fresh.

use super::*;
use crate::fs::index::{IndexResult, MetaIndex};

/// Instances read from the index at once by a walk in listing order: one statement instead
/// of one per instance (a few hundred KiB of documents in the hot set).
pub(super) const WALK_BATCH: usize = 64;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- listing

    fn base_query(&self) -> QueryParams {
        let mut q: QueryParams = self.cfg.query.clone();
        if !q.iter().any(|(k, _)| k == "status.isSoftDeleted") {
            q.push(("status.isSoftDeleted".into(), "false".into()));
        }
        q
    }

    /// Put instances from a listing into the tree and their parties' listings.
    fn store_instances(
        &self,
        asked: Instant,
        party_filter: Option<PartyId>,
        instances: Vec<Instance>,
    ) {
        let entries = instances
            .into_iter()
            .map(|i| Arc::new(InstEntry::new(i, &self.meta)))
            .collect::<Vec<_>>();
        if self.index_link().is_some() {
            let insts: Vec<Instance> = entries.iter().map(|e| e.inst.clone()).collect();
            self.index_ingest(&insts);
        }
        let parties: Vec<PartyId> = party_filter.into_iter().collect();
        self.tree.store_listing(asked, &parties, entries);
    }

    pub(super) async fn list_party(&self, party: PartyId) -> FsResult<()> {
        let mut q = self.base_query();
        q.push(("instanceOwner.partyId".into(), party.to_string()));
        let asked = Instant::now();
        let insts = self
            .client
            .query_instances(&q)
            .await
            .map_err(|e| FsError::server(format!("/{party}"), "GET instances", e))?;
        self.store_instances(asked, Some(party), insts);
        Ok(())
    }

    /// The parties of the root directory, listing everything when the listing is stale.
    async fn root_parties(&self) -> FsResult<BTreeSet<PartyId>> {
        if let Some(link) = self.index_link() {
            return self.indexed_root_parties(link).await;
        }
        if let Some(p) = self.tree.root_parties() {
            return Ok(p);
        }
        let _g = self.listing.lock().await;
        if let Some(p) = self.tree.root_parties() {
            return Ok(p);
        }
        let parties = self.list_everything().await?;
        self.tree.set_root_parties(parties.clone());
        Ok(parties)
    }

    /// Every party of the root and its instances: the configured parties, else one
    /// app-wide query (org mode), else each party the user may represent.
    async fn list_everything(&self) -> FsResult<BTreeSet<PartyId>> {
        if !self.cfg.parties.is_empty() {
            return self.list_configured_parties().await;
        }
        if let Some(parties) = self.list_app_wide().await? {
            return Ok(parties);
        }
        let ids = self.representable_parties().await?;
        self.list_each_party(ids).await
    }

    /// Lists the parties the mount is restricted to (`--party`), skipping (with a warning) what is no id.
    async fn list_configured_parties(&self) -> FsResult<BTreeSet<PartyId>> {
        let mut out = BTreeSet::new();
        for p in &self.cfg.parties {
            let Ok(p) = PartyId::parse(p) else {
                tracing::warn!("party {p:?} is not a party id; left out");
                continue;
            };
            self.list_party(p).await?;
            out.insert(p);
        }
        Ok(out)
    }

    /// One query for every instance of the app (an org token may do that). `None` when the
    /// mount is not in org mode: the server refused the first try, or an earlier one did.
    async fn list_app_wide(&self) -> FsResult<Option<BTreeSet<PartyId>>> {
        let mode = self.tree.org_mode();
        if mode == Some(false) {
            return Ok(None);
        }
        let q = self.base_query();
        let asked = Instant::now();
        match self.client.query_instances(&q).await {
            Ok(insts) => {
                self.tree.set_org_mode(true);
                let parties = insts
                    .iter()
                    .filter_map(|i| PartyId::parse(i.party_id()).ok())
                    .collect();
                // Parties that no longer have instances lose their listing.
                self.tree.clear_party_listings();
                self.store_instances(asked, None, insts);
                Ok(Some(parties))
            }
            // Only the first try decides the mode: later refusals are errors to report.
            Err(e) if mode.is_none() && matches!(e.status(), Some(400) | Some(401) | Some(403)) => {
                tracing::info!("app-wide query refused ({e}); listing the user's parties");
                self.tree.set_org_mode(false);
                Ok(None)
            }
            Err(e) => Err(FsError::server("/", "GET instances", e)),
        }
    }

    /// The parties the user may represent, their child parties included; deleted ones left out.
    async fn representable_parties(&self) -> FsResult<Vec<PartyId>> {
        let parties = self
            .client
            .parties()
            .await
            .map_err(|e| FsError::server("/", "GET parties", e))?;
        let mut ids = Vec::new();
        for p in &parties {
            if !p.is_deleted {
                ids.push(PartyId::from(p.party_id as u64));
            }
            for c in &p.child_parties {
                if !c.is_deleted {
                    ids.push(PartyId::from(c.party_id as u64));
                }
            }
        }
        Ok(ids)
    }

    /// Lists each party; one the user may not read (or that is gone) is left out, not an error.
    async fn list_each_party(&self, ids: Vec<PartyId>) -> FsResult<BTreeSet<PartyId>> {
        let mut out = BTreeSet::new();
        for id in ids {
            match self.list_party(id).await {
                Ok(()) => {
                    out.insert(id);
                }
                Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT) => {
                    tracing::debug!("party {id} not listable: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The instance GUIDs of a party, asking the server when its listing is stale or absent.
    pub(super) async fn party_guids(
        &self,
        party: PartyId,
        need_fresh: bool,
    ) -> FsResult<BTreeSet<InstanceGuid>> {
        if let Some(guids) = self.tree.party_guids(party, need_fresh) {
            return Ok(guids);
        }
        self.list_party(party).await?;
        Ok(self.tree.party_guids(party, false).unwrap_or_default())
    }

    /// One instance, from the cache (any age unless `fresh`) or the server.
    pub(super) async fn instance(
        &self,
        party: PartyId,
        guid: InstanceGuid,
        fresh: bool,
    ) -> FsResult<Arc<InstEntry>> {
        let r = InstanceId::new(party, guid);
        if let Some(link) = self.index_link() {
            return self.indexed_instance(link, &r, fresh).await;
        }
        if let Some(e) = self.tree.instance(guid, fresh) {
            return Ok(e);
        }
        let inst = self
            .client
            .get_instance(&r)
            .await
            .map_err(|e| FsError::server(format!("/{party}/{guid}"), "GET instance", e))?;
        Ok(self.put_instance(inst).0)
    }

    /// Instance `r` from the metadata index into the hot set (None: not in the index). A
    /// miss on the instance that follows the last one read is a walk in listing order
    /// (`find`, `cp -r`): the next [`WALK_BATCH`] are read in one statement, not one each.
    pub(super) fn instance_from_index(
        &self,
        ix: &MetaIndex,
        r: &InstanceId,
    ) -> IndexResult<Option<Arc<InstEntry>>> {
        let (party, guid) = (r.party.to_string(), r.guid.to_string());
        let last = self.tree.last_index_read().filter(|l| l.party == r.party);
        let insts = ix.read(|db| {
            let walking = match last {
                Some(l) => db.next_guid(&party, &l.guid.to_string())?.as_ref() == Some(&guid),
                None => false,
            };
            if walking {
                db.instances_from(&party, &guid, WALK_BATCH)
            } else {
                Ok(db.get_instance(&guid)?.into_iter().collect())
            }
        })?;
        let mut found = None;
        for inst in insts {
            let Ok(id) = InstanceId::of(&inst) else {
                continue;
            };
            if id.guid == r.guid {
                let entry = Arc::new(InstEntry::new(inst, &self.meta));
                self.tree.replace_instance(entry.clone());
                found = Some(entry);
            } else if self.tree.peek_instance(id.guid).is_none() {
                self.tree
                    .replace_instance(Arc::new(InstEntry::new(inst, &self.meta)));
            }
            self.tree.set_last_index_read(id);
        }
        Ok(found)
    }

    /// The hot set holds this instance (tests: what a walk read ahead).
    pub fn holds_instance(&self, guid: InstanceGuid) -> bool {
        self.tree.peek_instance(guid).is_some()
    }

    /// Cache a new state of an instance; returns it and the invalidations its names need.
    pub(super) fn put_instance(&self, inst: Instance) -> (Arc<InstEntry>, Vec<Inval>) {
        self.index_ingest(std::slice::from_ref(&inst));
        let entry = Arc::new(InstEntry::new(inst, &self.meta));
        let inval = match self.tree.replace_instance(entry.clone()) {
            Some(old) => tree::instance::invalidations(&old, &entry, self.cfg.form_json),
            None => Vec::new(),
        };
        (entry, inval)
    }

    // ---------------------------------------------------------------- readdir

    /// Every entry of a directory, `.` and `..` first, with attributes (for readdirplus).
    pub async fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let node = self.node(ino)?;
        if let (Node::Party { party }, Some(link)) = (&node, self.index_link()) {
            return self.readdir_party_indexed(link, ino, *party).await;
        }
        let kids = self.children(&node).await?;
        let mut out = Vec::with_capacity(kids.len() + 2);
        out.push(DirEntry {
            name: ".".into(),
            attr: self.attr_of(ino, &node).await?,
        });
        let parent_ino = parent_ino(&node);
        let pnode = self.node(parent_ino).unwrap_or(Node::Root);
        out.push(DirEntry {
            name: "..".into(),
            attr: self
                .attr_of(parent_ino, &pnode)
                .await
                .unwrap_or(out[0].attr),
        });
        for (name, n) in kids {
            let ino = inode::ino_of(&n);
            match self.attr_of(ino, &n).await {
                Ok(attr) => {
                    self.tree.register_as(ino, &n);
                    out.push(DirEntry { name, attr });
                }
                Err(e) if e.errno() == libc::ENOENT => {}
                // A generated view that cannot be fetched now must not hide the real files.
                Err(e) if matches!(n, Node::FormJson { .. } | Node::StatelessFile { .. }) => {
                    tracing::warn!("{name} left out of the listing: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The (name, node) of every child of a directory.
    pub(super) async fn children(&self, node: &Node) -> FsResult<Vec<(String, Node)>> {
        Ok(match node {
            Node::Root => {
                let mut kids = vec![
                    (APP_METADATA.into(), Node::AppMeta),
                    (STATELESS.into(), Node::Stateless),
                ];
                for p in self.root_parties().await? {
                    kids.push((p.to_string(), Node::Party { party: p }));
                }
                kids
            }
            Node::Stateless => self
                .meta
                .data_types
                .iter()
                .filter(|d| d.is_form())
                .filter_map(|d| {
                    let dt = DataTypeId::parse(&d.id).ok()?;
                    Some((d.id.clone(), Node::StatelessType { dt }))
                })
                .collect(),
            Node::StatelessType { dt } => self
                .stateless
                .names(dt.as_str())
                .into_iter()
                .map(|name| {
                    let dt = dt.clone();
                    (name.clone(), Node::StatelessFile { dt, name })
                })
                .collect(),
            Node::Party { party } => self
                .party_guids(*party, true)
                .await?
                .into_iter()
                .map(|guid| {
                    let party = *party;
                    (guid.to_string(), Node::Instance { party, guid })
                })
                .collect(),
            Node::Instance { party, guid } => self.instance_children(*party, *guid).await?,
            Node::AltinnDir => self.altinn_dir_children(),
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. } => {
                self.view_children(node).await?
            }
            Node::DataTypeDir { party, guid, dt } => {
                self.data_type_children(*party, *guid, dt).await?
            }
            _ => return Err(FsError::new(ErrorKind::NotDir, self.path_of(node))),
        })
    }

    /// `instance.json` and one directory per data type.
    async fn instance_children(
        &self,
        party: PartyId,
        guid: InstanceGuid,
    ) -> FsResult<Vec<(String, Node)>> {
        self.instance(party, guid, true).await?;
        let mut kids = vec![(
            INSTANCE_JSON.to_string(),
            Node::InstanceJson { party, guid },
        )];
        for d in &self.meta.data_types {
            let Ok(dt) = DataTypeId::parse(&d.id) else {
                continue;
            };
            let dir = Node::DataTypeDir { party, guid, dt };
            kids.push((d.id.clone(), dir));
        }
        Ok(kids)
    }

    /// The elements of one data type, the local files, and (form_json) the JSON views.
    async fn data_type_children(
        &self,
        party: PartyId,
        guid: InstanceGuid,
        dt: &DataTypeId,
    ) -> FsResult<Vec<(String, Node)>> {
        let e = self.instance(party, guid, true).await?;
        let names = e
            .names
            .get(dt.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut kids: Vec<(String, Node)> = names
            .iter()
            .filter_map(|(name, i)| {
                let id = element_id(&e.inst.data[*i].id)?;
                let el = Node::Element {
                    party,
                    guid,
                    dt: dt.clone(),
                    id,
                };
                Some((name.clone(), el))
            })
            .collect();
        kids.extend(self.writer.locals_in(guid, dt));
        if self.cfg.form_json {
            let views: Vec<(String, Node)> = names
                .iter()
                .filter_map(|(n, _)| layout::json_view_name(n))
                .filter(|j| !kids.iter().any(|(k, _)| k == j))
                .filter_map(|j| {
                    let n = self.json_view_named(&e, InstanceId::new(party, guid), dt, &j)?;
                    Some((j, n))
                })
                .collect();
            kids.extend(views);
        }
        Ok(kids)
    }
}

/// The inode of a directory's `..`.
fn parent_ino(node: &Node) -> u64 {
    match node {
        Node::StatelessType { .. } => inode::ino_of(&Node::Stateless),
        Node::Instance { party, .. } => inode::ino_of(&Node::Party { party: *party }),
        Node::DataTypeDir { party, guid, .. } => inode::ino_of(&Node::Instance {
            party: *party,
            guid: *guid,
        }),
        _ => ROOT_INO,
    }
}
