//! How far a long listing got, in the log every 10 s and in `altinnfs status`: on a big app
//! a full listing runs for minutes to hours (10,000 pages at a million instances), and the
//! first one holds `ls` up until it ends.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a long listing says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingKind {
    /// The first listing of a cold index: directory listings wait for it.
    First,
    /// The daily full listing (hard deletes): the index answers meanwhile.
    Full,
    /// A cursor poll (long after a mount was away for days).
    CatchUp,
}

/// One listing under way, as `altinnfs status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingProgress {
    pub kind: ListingKind,
    /// "the app", "party 500001".
    pub scope: String,
    pub instances: u64,
    pub pages: u64,
    pub secs: u64,
}

impl ListingProgress {
    /// One line for the log and `altinnfs status`.
    pub fn describe(&self) -> String {
        let (n, p, s, scope) = (self.instances, self.pages, self.secs, &self.scope);
        match self.kind {
            ListingKind::First => format!(
                "listing {scope} for the first time: {n} instances in {p} pages so far ({s} s); \
                 directory listings wait for it, later mounts start from the index"
            ),
            ListingKind::Full => format!(
                "full listing of {scope} (it finds hard deletes): {n} instances in {p} pages so \
                 far ({s} s); the index answers meanwhile"
            ),
            ListingKind::CatchUp => format!(
                "asking what changed in {scope} since the cursor: {n} instances in {p} pages so \
                 far ({s} s)"
            ),
        }
    }
}

/// The listings under way (at most one of each kind: full listings exclude each other, and
/// so do polls).
#[derive(Debug, Default)]
pub struct Listings(Mutex<Vec<ListingProgress>>);

impl Listings {
    pub fn under_way(&self) -> Vec<ListingProgress> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, p: ListingProgress) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|x| x.kind != p.kind);
        v.push(p);
    }

    fn clear(&self, kind: ListingKind) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x.kind != kind);
    }
}

/// One listing's progress: published to `Listings` page by page, logged every 10 s, and
/// taken out of `Listings` when it ends (or is dropped half-way).
pub struct Progress<'a> {
    listings: &'a Listings,
    kind: Option<ListingKind>,
    scope: String,
    started: Instant,
    logged: Instant,
    instances: u64,
    pages: u64,
}

impl<'a> Progress<'a> {
    pub fn new(listings: &'a Listings, scope_key: &str, kind: Option<ListingKind>) -> Self {
        let now = Instant::now();
        Self {
            listings,
            kind,
            scope: scope_name(scope_key),
            started: now,
            logged: now,
            instances: 0,
            pages: 0,
        }
    }

    fn snapshot(&self, kind: ListingKind) -> ListingProgress {
        ListingProgress {
            kind,
            scope: self.scope.clone(),
            instances: self.instances,
            pages: self.pages,
            secs: self.started.elapsed().as_secs(),
        }
    }

    /// A page of `instances` was applied.
    pub fn page(&mut self, instances: usize) {
        self.instances += instances as u64;
        self.pages += 1;
        let Some(kind) = self.kind else { return };
        let now = self.snapshot(kind);
        if self.logged.elapsed() >= PROGRESS_EVERY {
            self.logged = Instant::now();
            tracing::info!("{}", now.describe());
        }
        self.listings.set(now);
    }

    /// The listing reached its end.
    pub fn done(&self) {
        if self.kind.is_some() && self.started.elapsed() >= PROGRESS_EVERY {
            tracing::info!(
                "listed {}: {} instances in {} pages ({} s)",
                self.scope,
                self.instances,
                self.pages,
                self.started.elapsed().as_secs()
            );
        }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        if let Some(kind) = self.kind {
            self.listings.clear(kind);
        }
    }
}

/// A scope key as the log says it: "the app", "party 500001".
fn scope_name(key: &str) -> String {
    match key.strip_prefix("party:") {
        Some(p) => format!("party {p}"),
        None => "the app".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_under_way_from_its_first_page_until_it_ends() {
        let l = Listings::default();
        {
            let mut p = Progress::new(&l, "party:500001", Some(ListingKind::First));
            assert!(l.under_way().is_empty());
            p.page(100);
            p.page(40);
            let now = l.under_way();
            assert_eq!(now.len(), 1);
            assert_eq!((now[0].instances, now[0].pages), (140, 2));
            assert_eq!(now[0].scope, "party 500001");
            assert!(now[0].describe().contains("for the first time"));
            let mut poll = Progress::new(&l, "app", Some(ListingKind::CatchUp));
            poll.page(3);
            assert_eq!(l.under_way().len(), 2);
        }
        assert!(
            l.under_way().is_empty(),
            "gone when dropped half-way or done"
        );
        let mut leavers = Progress::new(&l, "app", None);
        leavers.page(5);
        assert!(l.under_way().is_empty(), "not a listing status shows");
    }
}
