//! The metadata index behind the tree (SPEC §7.1, §7.2): listings and lookups are answered
//! from the index, kept up to date by the change cursor (the poller, or a refresh before a
//! listing older than `metadata_ttl`); memory holds only the tree's bounded hot set.
//! Everything the tree learns from the server goes through the Refresher's `ingest*`, so the
//! change feed reports it once. What a refresh changed becomes kernel invalidations of
//! exactly those entries.

use super::*;
use crate::fs::index::{IndexError, IndexKey, MetaIndex};
use crate::fs::refresh::{spawn_poller, Changes, Poller, RefreshConfig, RefreshError, Refresher};

/// Rows read from the index per step of a listing (a party of any size is read in pages).
const INDEX_PAGE: usize = 1000;

/// Who the mount is, for the index: its platform and the token's subject.
#[derive(Debug, Clone)]
pub struct IndexIdentity {
    pub platform_url: String,
    /// `org-ttd`, `user-1337`... (never the token).
    pub subject: String,
}

/// The opened index and the cursor over it.
pub(super) struct IndexLink<C: AltinnClient + ?Sized> {
    pub refresher: Arc<Refresher<C>>,
    /// The org of an org token (the inbox's confirmer); None for other tokens.
    pub org: Option<String>,
    /// The parties the root lists without an app-wide listing (`--party`, or a user
    /// token's parties: its cursor scopes).
    pub parties: Vec<String>,
    /// `.altinn/changes`.
    pub feed: super::feed_file::FeedFile,
}

fn index_err(path: &str, e: IndexError) -> FsError {
    FsError::io(path, e)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// Open this mount's index (one per host, app, token subject and query filters) and its
    /// cursor. Without a cache directory the tree stays in memory. A user token's parties
    /// are asked once here: they are its cursor scopes.
    pub async fn open_index(&self, id: &IndexIdentity) -> Result<(), String> {
        let Some(icfg) = self.cfg.index.as_ref() else {
            tracing::warn!("no cache directory: metadata stays in memory (no warm remounts)");
            return Ok(());
        };
        let key = IndexKey::new(&id.platform_url, &self.meta.id, &id.subject)
            .with_filters(&self.cfg.query);
        let (ix, warning) = MetaIndex::open_or_memory(&icfg.index_path(&key));
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let org = id.subject.strip_prefix("org-").map(str::to_string);
        let org_mode = self.cfg.org_mode.unwrap_or(org.is_some());
        self.tree.set_org_mode(org_mode);
        let parties = if !self.cfg.parties.is_empty() {
            self.cfg.parties.clone()
        } else if org_mode {
            vec![]
        } else {
            self.user_parties().await?
        };
        let mut rcfg = RefreshConfig::from_index_config(icfg);
        rcfg.query = self.cfg.query.clone();
        rcfg.parties = parties.clone();
        let refresher = Refresher::new(
            self.client.clone(),
            Arc::new(ix),
            Arc::new(self.meta.clone()),
            rcfg,
        );
        let link = IndexLink {
            refresher: Arc::new(refresher),
            org: org.filter(|_| org_mode),
            parties,
            feed: Default::default(),
        };
        let _ = self.index.set(link);
        Ok(())
    }

    /// The parties (and sub-parties) a user token may act for.
    async fn user_parties(&self) -> Result<Vec<String>, String> {
        let parties = self
            .client
            .parties()
            .await
            .map_err(|e| format!("listing the parties this token may act for: {e}"))?;
        Ok(parties
            .iter()
            .flat_map(|p| std::iter::once(p).chain(p.child_parties.iter()))
            .filter(|p| !p.is_deleted)
            .map(|p| p.party_id.to_string())
            .collect())
    }

    pub(super) fn index_link(&self) -> Option<&IndexLink<C>> {
        self.index.get()
    }

    /// The index in use, if any (`altinnfs status`, tests).
    pub fn meta_index(&self) -> Option<&Arc<MetaIndex>> {
        self.index.get().map(|l| l.refresher.index())
    }

    /// The listings of the index under way (`altinnfs status`).
    pub fn listings_under_way(&self) -> Vec<crate::fs::refresh::ListingProgress> {
        self.index
            .get()
            .map(|l| l.refresher.listings_under_way())
            .unwrap_or_default()
    }

    /// Run the poller (`--poll-interval`, and the daily full listing even with polls off)
    /// while the returned handle lives; its changes become kernel invalidations. Call within
    /// the runtime.
    pub fn start_poller(self: &Arc<Self>) -> Option<Poller> {
        let link = self.index.get()?;
        let interval = self.cfg.index.as_ref()?.poll_interval;
        let weak = Arc::downgrade(self);
        Some(spawn_poller(link.refresher.clone(), interval, move |c| {
            if let Some(fs) = weak.upgrade() {
                fs.apply_changes(&c);
            }
        }))
    }

    /// Bring the index up to date when its last refresh is older than `metadata_ttl`. A
    /// failure is an error only when the index has nothing to answer with yet.
    pub(super) async fn index_fresh(&self, link: &IndexLink<C>) -> FsResult<()> {
        match link.refresher.refresh_if_stale(self.cfg.metadata_ttl).await {
            Ok(Some(c)) => self.apply_changes(&c),
            Ok(None) => {}
            Err(e) if self.index_is_empty(link) => return Err(refresh_err(e)),
            Err(e) => {
                tracing::warn!("asking the server what changed: {e}; answering from the index")
            }
        }
        Ok(())
    }

    /// True once the kernel keeps directory listings itself (`opendir` answers ENOSYS):
    /// only with the index, whose cursor is what tells a directory changed.
    pub fn kernel_caches_dirs(&self) -> bool {
        self.index.get().is_some()
    }

    /// Before a directory's attributes are answered: the kernel checks its cached listing
    /// against the mtime they carry, so a listing older than `metadata_ttl` is refreshed
    /// first (what a readdir did before the kernel kept listings). A failure leaves the
    /// attributes as the index has them.
    ///
    /// Not before the first listing of a cold index, which on a big app takes minutes: a
    /// `stat` of the mountpoint (`mountpoint`, `df`, a file manager) answers at once, and the
    /// listing and lookup that need the listing wait for it.
    pub(super) async fn dir_fresh(&self) {
        let Some(link) = self.index.get() else {
            return;
        };
        let r = &link.refresher;
        if r.first_listing_under_way() || r.is_cold().unwrap_or(false) {
            return;
        }
        if let Err(e) = self.index_fresh(link).await {
            tracing::debug!("{e}");
        }
    }

    fn index_is_empty(&self, link: &IndexLink<C>) -> bool {
        link.refresher
            .index()
            .read(|db| db.meta_all())
            .map(|rows| !rows.iter().any(|(k, _)| k.starts_with("cursor:")))
            .unwrap_or(true)
    }

    /// The parties of the root: `--party` or a user token's parties, else those with an
    /// instance in the index.
    pub(super) async fn indexed_root_parties(
        &self,
        link: &IndexLink<C>,
    ) -> FsResult<BTreeSet<PartyId>> {
        self.index_fresh(link).await?;
        let mut out: BTreeSet<PartyId> = link
            .parties
            .iter()
            .filter_map(|p| PartyId::parse(p).ok())
            .collect();
        if !link.parties.is_empty() {
            return Ok(out);
        }
        let ix = link.refresher.index();
        let mut after: Option<String> = None;
        loop {
            let page = ix
                .parties(after.as_deref(), INDEX_PAGE)
                .map_err(|e| index_err("/", e))?;
            let full = page.len() == INDEX_PAGE;
            after = page.last().map(|(p, _)| p.clone());
            out.extend(page.into_iter().filter_map(|(p, _)| PartyId::parse(p).ok()));
            if !full {
                return Ok(out);
            }
        }
    }

    /// The party is in the index once it is fresh (the first listing may still be running:
    /// wait for it rather than list the party on its own).
    pub(super) async fn index_has_party(&self, party: PartyId) -> bool {
        let Some(link) = self.index.get() else {
            return false;
        };
        if self.index_knows_party(party) {
            return true;
        }
        if let Err(e) = self.index_fresh(link).await {
            tracing::debug!("party {party}: {e}");
        }
        self.index_knows_party(party)
    }

    /// The party is listed in the index (or is one of the mount's parties).
    fn index_knows_party(&self, party: PartyId) -> bool {
        let Some(link) = self.index.get() else {
            return false;
        };
        let name = party.to_string();
        link.parties.contains(&name)
            || link
                .refresher
                .index()
                .read(|db| db.party_exists(&name))
                .unwrap_or(false)
    }

    /// `readdir` of a party from the index, page by page: no instance document is loaded
    /// and nothing is asked of the server (but a refresh when the listing is stale).
    pub(super) async fn readdir_party_indexed(
        &self,
        link: &IndexLink<C>,
        ino: u64,
        party: PartyId,
    ) -> FsResult<Vec<DirEntry>> {
        let party_name = party.to_string();
        self.index_fresh(link).await?;
        let here = self.attr_of(ino, &self.node(ino)?).await?;
        let root = self.attr_of(ROOT_INO, &Node::Root).await?;
        let mut out = vec![
            DirEntry {
                name: ".".into(),
                attr: here,
            },
            DirEntry {
                name: "..".into(),
                attr: root,
            },
        ];
        let ix = link.refresher.index();
        let mut after: Option<String> = None;
        loop {
            let page = ix
                .party_instances(&party_name, after.as_deref(), INDEX_PAGE)
                .map_err(|e| index_err(&format!("/{party}"), e))?;
            let full = page.len() == INDEX_PAGE;
            after = page.last().map(|s| s.guid.clone());
            for s in page.into_iter().filter(|s| !s.deleted) {
                let Ok(guid) = InstanceGuid::parse(&s.guid) else {
                    tracing::warn!("/{party}/{}: not an instance guid; left out", s.guid);
                    continue;
                };
                // Not registered: readdirplus registers what the kernel takes (a party of
                // any size must not fill the inode table).
                let ino = inode::ino_of(&Node::Instance { party, guid });
                let m = to_system(s.last_changed, self.started);
                let attr = self.dir_attr(ino, m, to_system(s.created, m));
                out.push(DirEntry { name: s.guid, attr });
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// One instance: the hot set, else the index, else the server (whose answer is
    /// ingested). `fresh`: refresh the index first when it is older than `metadata_ttl`.
    pub(super) async fn indexed_instance(
        &self,
        link: &IndexLink<C>,
        r: &InstanceId,
        fresh: bool,
    ) -> FsResult<Arc<InstEntry>> {
        if fresh {
            self.index_fresh(link).await?;
        }
        // The hot set for `metadata_ttl`, then the index again: another mount sharing the
        // index may have applied a change this one never saw as a change.
        if let Some(e) = self.tree.instance(r.guid, true) {
            return Ok(e);
        }
        let stored = self
            .instance_from_index(link.refresher.index(), r)
            .map_err(|e| index_err(&format!("/{}/{}", r.party, r.guid), e))?;
        if let Some(entry) = stored {
            return Ok(entry);
        }
        let inst =
            self.client.get_instance(r).await.map_err(|e| {
                FsError::server(format!("/{}/{}", r.party, r.guid), "GET instance", e)
            })?;
        Ok(self.put_instance(inst).0)
    }

    /// The tree learned these instances from the server itself: into the index (and the
    /// feed, once).
    pub(super) fn index_ingest(&self, instances: &[Instance]) {
        let Some(link) = self.index.get() else {
            return;
        };
        match link.refresher.ingest(instances) {
            Ok(c) => self.changes_seen(&c),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// This mount uploaded or replaced element `el` of `inst` (its new state): the index
    /// writes that element's row, not the whole instance.
    pub(super) fn index_element(&self, inst: &Instance, el: &DataElement) {
        let Some(link) = self.index.get() else {
            return;
        };
        match link.refresher.ingest_element(inst, el) {
            Ok(c) => self.changes_seen(&c),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// This mount deleted element `id` of `before` (the state still holding it).
    pub(super) fn index_element_removed(&self, before: &Instance, id: &ElementId) {
        let Some(link) = self.index.get() else {
            return;
        };
        match link
            .refresher
            .ingest_element_removed(before, &id.to_string())
        {
            Ok(c) => self.changes_seen(&c),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// This mount confirmed an instance (it is listed under `.done/`).
    pub(super) fn index_confirmed(&self, inst: &Instance) {
        let Some(link) = self.index.get() else {
            return;
        };
        match link.refresher.record_confirmed(inst) {
            Ok(c) => self.changes_seen(&c),
            Err(e) => tracing::warn!("{e}"),
        }
        self.put_instance_quiet(inst.clone());
    }

    /// This mount deleted an instance.
    pub(super) fn index_deleted(&self, party: PartyId, guid: InstanceGuid) {
        let Some(link) = self.index.get() else {
            return;
        };
        match link
            .refresher
            .ingest_deleted(&party.to_string(), &guid.to_string())
        {
            Ok(c) => self.changes_seen(&c),
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// A refresh found these changes: the hot set drops what changed, and the kernel
    /// forgets exactly those entries.
    pub fn apply_changes(&self, c: &Changes) {
        let mut inv = Vec::new();
        if c.root || c.overflow {
            inv.push(Inval::Inode(ROOT_INO));
        }
        for party in &c.parties {
            self.tree.clear_missing(ROOT_INO, party);
            if let Ok(party) = PartyId::parse(party) {
                inv.push(Inval::Inode(inode::ino_of(&Node::Party { party })));
            }
        }
        for (party, guid) in &c.instances {
            let Ok(id) = InstanceId::parse(format!("{party}/{guid}")) else {
                tracing::warn!("a change of {party}/{guid}: not an instance id");
                continue;
            };
            inv.extend(self.instance_changed(id.party, id.guid));
            inv.extend(self.view_invalidations(id.party, id.guid));
        }
        for k in &c.elements {
            let ids = (
                PartyId::parse(&k.party),
                InstanceGuid::parse(&k.guid),
                DataTypeId::parse(&k.data_type),
                ElementId::parse(&k.id),
            );
            if let (Ok(party), Ok(guid), Ok(dt), Ok(id)) = ids {
                let node = Node::Element {
                    party,
                    guid,
                    dt,
                    id,
                };
                inv.push(Inval::Inode(inode::ino_of(&node)));
            }
        }
        if !c.is_empty() {
            tracing::debug!(
                instances = c.instances.len(),
                elements = c.elements.len(),
                events = c.events.len(),
                "changes from the server"
            );
        }
        self.notify(inv);
        self.changes_seen(c);
    }

    /// One instance changed on the server: the hot set takes its new state from the index,
    /// and the invalidations cover its names, its directories and its listing entry.
    fn instance_changed(&self, party: PartyId, guid: InstanceGuid) -> Vec<Inval> {
        let party_ino = inode::ino_of(&Node::Party { party });
        let guid_name = guid.to_string();
        self.tree.clear_missing(party_ino, &guid_name);
        let inst = Node::Instance { party, guid };
        let mut inv = vec![
            Inval::Inode(inode::ino_of(&inst)),
            Inval::Inode(inode::ino_of(&Node::InstanceJson { party, guid })),
        ];
        for d in &self.meta.data_types {
            if let Ok(dt) = DataTypeId::parse(&d.id) {
                let dir = Node::DataTypeDir { party, guid, dt };
                inv.push(Inval::Inode(inode::ino_of(&dir)));
            }
        }
        // The new state, as (deleted, document): the document only when the hot set holds
        // the instance (a first listing changes every instance and none is held yet).
        let ix = self.index.get().map(|l| l.refresher.index());
        let now = match (ix, self.tree.peek_instance(guid).is_some()) {
            (None, _) => None,
            (Some(ix), true) => ix
                .get_instance(&guid_name)
                .ok()
                .flatten()
                .map(|i| (refresh_deleted(&i), Some(i))),
            (Some(ix), false) => ix.instance_status(&guid_name).ok().flatten().map(|status| {
                let i = Instance {
                    status,
                    ..Default::default()
                };
                (refresh_deleted(&i), None)
            }),
        };
        match now {
            Some((false, Some(i))) => {
                let (_, names) = self.put_instance_quiet(i);
                inv.extend(names);
            }
            Some((false, None)) => {}
            _ => {
                for name in self.tree.remove_instance(party, guid) {
                    inv.push(Inval::Entry {
                        parent: party_ino,
                        name,
                    });
                }
                inv.push(Inval::Entry {
                    parent: party_ino,
                    name: guid_name,
                });
            }
        }
        inv
    }

    /// Hold a new state without ingesting it (it came from the index).
    pub(super) fn put_instance_quiet(&self, inst: Instance) -> (Arc<InstEntry>, Vec<Inval>) {
        let entry = Arc::new(InstEntry::new(inst, &self.meta));
        let inval = match self.tree.replace_instance(entry.clone()) {
            Some(old) => tree::instance::invalidations(&old, &entry, self.cfg.form_json),
            None => Vec::new(),
        };
        (entry, inval)
    }

    /// Feed lines were appended (a refresh or an ingest): tell `--on-change`.
    fn changes_seen(&self, c: &Changes) {
        self.stamp_listings(c);
        if !c.events.is_empty() {
            self.notify(self.change_feed_grew());
            self.on_change.send(&c.events);
        }
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// The root and party listings these changes touch get new mtimes (`dir_stamps`): an
    /// instance that changed may have come, gone, or left a filtered listing.
    fn stamp_listings(&self, c: &Changes) {
        if c.overflow {
            self.dir_stamps.stamp_all();
        }
        if c.root {
            self.dir_stamps.stamp([ROOT_INO]);
        }
        let parties: BTreeSet<&String> = c
            .parties
            .iter()
            .chain(c.instances.iter().map(|(p, _)| p))
            .collect();
        self.dir_stamps.stamp(parties.into_iter().filter_map(|p| {
            PartyId::parse(p)
                .ok()
                .map(|party| inode::ino_of(&Node::Party { party }))
        }));
    }
}

fn refresh_deleted(i: &Instance) -> bool {
    crate::fs::refresh::is_deleted(i)
}

fn refresh_err(e: RefreshError) -> FsError {
    match e {
        RefreshError::Server(e) => FsError::server("/", "GET instances", e),
        RefreshError::Index(e) => index_err("/", e),
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `name` under a party, from the index (one GET when it is not there: made elsewhere
    /// since the last poll; the negative cache keeps repeated misses from asking again).
    pub(super) async fn indexed_party_child(
        &self,
        link: &IndexLink<C>,
        party: PartyId,
        name: &str,
    ) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        let Ok(guid) = InstanceGuid::parse(name) else {
            return Err(nf());
        };
        match self
            .indexed_instance(link, &InstanceId::new(party, guid), false)
            .await
        {
            Ok(e) if party == e.inst.party_id() && !refresh_deleted(&e.inst) => {
                Ok(Node::Instance { party, guid })
            }
            Ok(_) => Err(nf()),
            Err(e) if matches!(e.errno(), libc::EACCES | libc::ENOENT) => Err(nf()),
            Err(e) => Err(e),
        }
    }
}
