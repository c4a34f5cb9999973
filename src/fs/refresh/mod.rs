//! Freshness (SPEC §7.2): the change cursor over `AltinnClient` + `MetaIndex`.
//!
//! A poll asks Storage for what changed since the cursor
//! (`lastChanged=gt:<cursor - overlap>&order=asc:lastChanged`, following `next`), compares
//! each instance with the index, writes the instances and the feed events of each page in one
//! transaction, and advances the cursor to the greatest server `lastChanged` seen (never the
//! local clock). Instances seen again because of the overlap are recognised by
//! (id, lastChanged) and skipped. A full listing (the first time, then every
//! `--full-refresh-hours`) also finds hard deletes, which the cursor cannot see. The first
//! listing of an empty scope is the baseline: it fills the index without feed events.
//!
//! Only that first listing holds readers up: they have nothing to answer with before it.
//! The later, daily ones (`full_listing_if_due`) run beside the polls, since on a big app one
//! takes as long as the first (10,000 pages at a million instances): readers meanwhile answer
//! from the index and keep polling the cursor.
//!
//! What the tree learns itself (its own writes, a GET of one instance) goes through
//! `ingest*`, which derives the same events once, so the next poll does not report them again.

mod diff;
mod element;
mod listing;
mod poller;
mod progress;
mod slices;

pub use diff::{is_deleted, same_time};
pub use poller::{spawn_poller, Poller};
pub use progress::{ListingKind, ListingProgress};

use crate::altinn::client::{AltinnClient, AltinnError, QueryParams};
use crate::altinn::ids::{InstanceGuid, PartyId};
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use crate::fs::index::{FeedEvent, IndexConfig, IndexError, MetaIndex};
use crate::fs::local_edits::{Edit, LocalEdits};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RefreshConfig {
    /// `size` of each query page.
    pub page_size: usize,
    /// How far before the cursor each poll starts (Storage rounds to microseconds, and
    /// writes commit out of order by a little).
    pub overlap: Duration,
    /// Time between full listings (None: only the first).
    pub full_refresh: Option<Duration>,
    pub feed_retention: Duration,
    /// The feed never holds more rows than this, whatever the server sends.
    pub feed_max_rows: u64,
    /// Extra Storage filters of the mount (`--query`).
    pub query: QueryParams,
    /// User tokens: one cursor per party (Storage needs `instanceOwner.partyId`). Empty: one
    /// app-wide cursor (an org token).
    pub parties: Vec<String>,
    /// At most this many instances and elements are itemised in `Changes`; beyond it
    /// `overflow` says "invalidate everything".
    pub max_reported: usize,
    /// Full listings fetch this many slices of `lastChanged` side by side (1: one after
    /// another).
    pub list_parallel: usize,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            page_size: 100,
            overlap: Duration::from_secs(2),
            full_refresh: Some(Duration::from_secs(24 * 3600)),
            feed_retention: Duration::from_secs(30 * 86_400),
            feed_max_rows: 1_000_000,
            query: vec![],
            parties: vec![],
            max_reported: 10_000,
            list_parallel: 1,
        }
    }
}

impl RefreshConfig {
    pub fn from_index_config(c: &IndexConfig) -> Self {
        Self {
            page_size: c.page_size,
            full_refresh: c.full_refresh,
            list_parallel: c.list_parallel.max(1),
            feed_retention: c.feed_retention,
            ..Self::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{0}")]
    Server(#[from] AltinnError),
    #[error("{0}")]
    Index(#[from] IndexError),
}

/// A data element that changed, by identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementKey {
    pub party: String,
    pub guid: String,
    pub data_type: String,
    pub id: String,
}

/// What one refresh (or ingest) changed: what the tree must invalidate in the kernel, and
/// the feed lines it appended (for `--on-change`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// This refresh was (or included) a full listing.
    pub full_listing: bool,
    /// Query pages fetched.
    pub queries: usize,
    /// The set of parties changed (a party got its first instance or lost its last).
    pub root: bool,
    /// Parties whose set of instances changed.
    pub parties: BTreeSet<String>,
    /// (party, guid) of every instance created, changed or deleted.
    pub instances: BTreeSet<(String, String)>,
    /// Elements created, changed or deleted.
    pub elements: BTreeSet<ElementKey>,
    /// The appended feed lines (at most `max_reported`).
    pub events: Vec<FeedEvent>,
    /// More changed than itemised: invalidate everything.
    pub overflow: bool,
    /// Why the refresh stopped before the end (a page failed after others were applied,
    /// or the server's `next` looped); the next poll goes on from the cursor.
    pub incomplete: Option<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        !self.root && self.instances.is_empty() && self.events.is_empty() && !self.overflow
    }

    fn merge(&mut self, other: Changes, max: usize) {
        self.full_listing |= other.full_listing;
        self.queries += other.queries;
        self.root |= other.root;
        self.overflow |= other.overflow;
        self.incomplete = self.incomplete.take().or(other.incomplete);
        self.parties.extend(other.parties);
        self.instances.extend(other.instances);
        self.elements.extend(other.elements);
        self.events.extend(other.events);
        self.cap(max);
    }

    fn cap(&mut self, max: usize) {
        if self.instances.len() > max || self.elements.len() > max || self.events.len() > max {
            self.overflow = true;
            self.events.truncate(max);
            while self.instances.len() > max {
                self.instances.pop_last();
            }
            while self.elements.len() > max {
                self.elements.pop_last();
            }
        }
    }
}

/// One cursor: the whole app (`app`) or one party (`party:N`).
#[derive(Debug, Clone)]
struct Scope {
    key: String,
    party: Option<String>,
}

pub struct Refresher<C: AltinnClient + ?Sized> {
    client: Arc<C>,
    index: Arc<MetaIndex>,
    meta: Arc<ApplicationMetadata>,
    cfg: RefreshConfig,
    /// One refresh at a time (the poller and a stale listing share it).
    running: tokio::sync::Mutex<()>,
    /// One daily full listing at a time; it does not take `running` (see the module doc).
    full_running: tokio::sync::Mutex<()>,
    last_done: Mutex<Option<Instant>>,
    /// When this refresher (the mount's cursor) was made.
    created: Instant,
    /// What this mount deleted: pages asked for before do not bring it back.
    deleted_here: Mutex<LocalEdits>,
    /// Listings under way, for `altinnfs status`.
    listings: progress::Listings,
    /// Every scope has had a cursor (`is_cold` was false once).
    warm: std::sync::atomic::AtomicBool,
    /// A scope's first listing is under way (its cursor moves page by page meanwhile).
    first_listing: std::sync::atomic::AtomicBool,
    /// Scopes Storage would not list (a party a user token may act for but not list).
    unlistable: Mutex<std::collections::HashSet<String>>,
}

impl<C: AltinnClient + ?Sized> Refresher<C> {
    pub fn new(
        client: Arc<C>,
        index: Arc<MetaIndex>,
        meta: Arc<ApplicationMetadata>,
        cfg: RefreshConfig,
    ) -> Self {
        Self {
            client,
            index,
            meta,
            cfg,
            running: tokio::sync::Mutex::new(()),
            full_running: tokio::sync::Mutex::new(()),
            last_done: Mutex::new(None),
            created: Instant::now(),
            deleted_here: Default::default(),
            listings: Default::default(),
            warm: Default::default(),
            first_listing: Default::default(),
            unlistable: Default::default(),
        }
    }

    /// The listings under way (`altinnfs status`).
    pub fn listings_under_way(&self) -> Vec<ListingProgress> {
        self.listings.under_way()
    }

    pub fn index(&self) -> &Arc<MetaIndex> {
        &self.index
    }

    pub fn config(&self) -> &RefreshConfig {
        &self.cfg
    }

    /// When this refresher was made (for a mount: before it answered anything).
    pub fn created(&self) -> Instant {
        self.created
    }

    fn scopes(&self) -> Vec<Scope> {
        if self.cfg.parties.is_empty() {
            return vec![Scope {
                key: "app".into(),
                party: None,
            }];
        }
        self.cfg
            .parties
            .iter()
            .map(|p| Scope {
                key: format!("party:{p}"),
                party: Some(p.clone()),
            })
            .collect()
    }

    /// Bring the index up to date: a cursor poll, or the first full listing of a scope
    /// that has no cursor yet. Then prune the feed. (The daily full listing of a scope that
    /// has one is `full_listing_if_due`'s.)
    pub async fn refresh(&self) -> Result<Changes, RefreshError> {
        let _one = self.running.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<Changes, RefreshError> {
        let mut all = Changes::default();
        for scope in self.scopes() {
            // poll_scope lists in full where there is no cursor yet.
            let r = self.poll_scope(&scope).await;
            if let Some(c) = self.unless_unlistable(&scope, r)? {
                all.merge(c, self.cfg.max_reported);
            }
        }
        self.finish();
        Ok(all)
    }

    /// A party a user token may act for but not list (Storage says 400/403/404): the
    /// others go on, as the listing always did, and it does not keep the index cold.
    fn unless_unlistable(
        &self,
        scope: &Scope,
        r: Result<Changes, RefreshError>,
    ) -> Result<Option<Changes>, RefreshError> {
        match r {
            Err(RefreshError::Server(e))
                if scope.party.is_some() && matches!(e.status(), Some(400 | 403 | 404)) =>
            {
                tracing::debug!("{} not listable: {e}", scope.key);
                let mut u = self.unlistable.lock().unwrap_or_else(|e| e.into_inner());
                u.insert(scope.key.clone());
                Ok(None)
            }
            r => r.map(Some),
        }
    }

    /// True while some scope has no cursor: its first full listing is still to come (or
    /// under way), and the index cannot answer for it yet.
    pub fn is_cold(&self) -> Result<bool, IndexError> {
        // Asked before every directory's attributes: once warm, warm for good (a cursor is
        // never taken back), and no index read.
        if self.warm.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        let unlistable = self
            .unlistable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for scope in self.scopes() {
            if !unlistable.contains(&scope.key) && self.index.cursor(&scope.key)?.is_none() {
                return Ok(true);
            }
        }
        self.warm.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(false)
    }

    /// Whether a first listing runs now: readers that can answer from the index (a
    /// directory's attributes) must not wait for it.
    pub fn first_listing_under_way(&self) -> bool {
        self.first_listing
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The daily full listing (`full_refresh`) of every scope that has a cursor and is due
    /// for one; None when none is due or one is running already. It does not take
    /// `running`, so readers and polls go on meanwhile: what they write counts as seen by
    /// this listing (the mark of rows written meanwhile is its generation or later), and
    /// the cursor only moves forward.
    pub async fn full_listing_if_due(&self) -> Result<Option<Changes>, RefreshError> {
        let Ok(_one) = self.full_running.try_lock() else {
            return Ok(None);
        };
        let mut all: Option<Changes> = None;
        for scope in self.daily_listings_due()? {
            let r = self.full_listing_scope(&scope).await;
            if let Some(c) = self.unless_unlistable(&scope, r)? {
                all.get_or_insert_with(Changes::default)
                    .merge(c, self.cfg.max_reported);
            }
        }
        if all.is_some() {
            self.prune_feed();
        }
        Ok(all)
    }

    /// Whether `full_listing_if_due` has work: some scope with a cursor is due.
    pub fn full_listing_due_now(&self) -> Result<bool, IndexError> {
        Ok(!self.daily_listings_due()?.is_empty())
    }

    /// The scopes that have a cursor (their first listing ran) and are due for a full one.
    fn daily_listings_due(&self) -> Result<Vec<Scope>, IndexError> {
        let mut due = Vec::new();
        for scope in self.scopes() {
            if self.index.cursor(&scope.key)?.is_some() && self.full_listing_due(&scope)? {
                due.push(scope);
            }
        }
        Ok(due)
    }

    /// `refresh` unless one finished within `max_age` (a listing older than metadata_ttl
    /// asks first; concurrent callers wait for one refresh). None: fresh enough.
    pub async fn refresh_if_stale(
        &self,
        max_age: Duration,
    ) -> Result<Option<Changes>, RefreshError> {
        self.refresh_unless(|done| done.elapsed() < max_age).await
    }

    /// `refresh` unless one finished after `since`: the poller's first poll, which a
    /// listing that refreshed since the mount began (or was refreshing when the poller
    /// started) makes needless.
    pub async fn refresh_unless_done_since(
        &self,
        since: Instant,
    ) -> Result<Option<Changes>, RefreshError> {
        self.refresh_unless(|done| done > since).await
    }

    /// `refresh` unless `fresh(when the last refresh finished)`, asked again once the
    /// running refresh (if any) is over, so that waiting callers share it.
    async fn refresh_unless(
        &self,
        fresh: impl Fn(Instant) -> bool,
    ) -> Result<Option<Changes>, RefreshError> {
        let is_fresh = || self.last_done.lock().unwrap().is_some_and(&fresh);
        if is_fresh() {
            return Ok(None);
        }
        let _one = self.running.lock().await;
        if is_fresh() {
            return Ok(None);
        }
        self.refresh_locked().await.map(Some)
    }

    /// A full listing of every scope now, whatever the schedule (finds hard deletes).
    pub async fn full_listing(&self) -> Result<Changes, RefreshError> {
        let _one = self.running.lock().await;
        let _full = self.full_running.lock().await;
        let mut all = Changes::default();
        for scope in self.scopes() {
            let c = self.full_listing_scope(&scope).await?;
            all.merge(c, self.cfg.max_reported);
        }
        self.finish();
        Ok(all)
    }

    /// How long until the last refresh is `interval` old (`interval` when there was none).
    pub fn due_in(&self, interval: Duration) -> Duration {
        match *self.last_done.lock().unwrap() {
            Some(t) => interval.saturating_sub(t.elapsed()),
            None => interval,
        }
    }

    fn finish(&self) {
        *self.last_done.lock().unwrap() = Some(Instant::now());
        self.prune_feed();
    }

    fn prune_feed(&self) {
        if let Err(e) = self
            .index
            .prune_feed(self.cfg.feed_retention, self.cfg.feed_max_rows)
        {
            tracing::warn!("pruning the change feed: {e}");
        }
    }

    fn full_listing_due(&self, scope: &Scope) -> Result<bool, IndexError> {
        let (cursor, last_full) = self.index.read(|db| {
            Ok((
                db.cursor(&scope.key)?,
                db.meta_get(&format!("full:{}", scope.key))?,
            ))
        })?;
        if cursor.is_none() {
            return Ok(true);
        }
        let Some(every) = self.cfg.full_refresh else {
            return Ok(false);
        };
        let last = last_full
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Ok(match last {
            None => true,
            // A clock set back makes "now - last" negative: list again rather than never.
            Some(t) => {
                let age = chrono::Utc::now() - t;
                age < chrono::Duration::zero() || age.to_std().map(|a| a >= every).unwrap_or(true)
            }
        })
    }

    // ----- what the tree learned itself -----

    /// Store instances the tree got from the server itself (after its own write, a GET, a
    /// create) and append their events once: the next poll finds them already known.
    pub fn ingest(&self, instances: &[Instance]) -> Result<Changes, IndexError> {
        listing::ingest(self, instances)
    }

    /// One element of `inst` (its new state) this mount uploaded or replaced: that
    /// element's row and the instance's `lastChanged` only, and its event once.
    pub fn ingest_element(&self, inst: &Instance, el: &DataElement) -> Result<Changes, IndexError> {
        element::ingest_element(self, inst, el)
    }

    /// Element `id` of `before` (the state still holding it) this mount deleted.
    pub fn ingest_element_removed(
        &self,
        before: &Instance,
        id: &str,
    ) -> Result<Changes, IndexError> {
        element::ingest_element_removed(self, before, id)
    }

    /// An instance this mount deleted (or found gone with a 404).
    pub fn ingest_deleted(&self, party: &str, guid: &str) -> Result<Changes, IndexError> {
        if let (Ok(p), Ok(g)) = (PartyId::parse(party), InstanceGuid::parse(guid)) {
            self.deleted_here
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(p, g, Edit::Deleted);
        }
        listing::ingest_deleted(self, party, guid)
    }

    /// This mount confirmed `inst` (the server's answer to `complete`): store it, append
    /// `instance.confirmed`, and list it under `.done/`.
    pub fn record_confirmed(&self, inst: &Instance) -> Result<Changes, IndexError> {
        let c = self.ingest(std::slice::from_ref(inst))?;
        let now = chrono::Utc::now();
        self.index
            .write(|db| db.mark_done(&inst.party_id(), inst.guid(), &now))?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
