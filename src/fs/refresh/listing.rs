//! Following query pages into the index: cursor polls, full listings with their sweep of
//! hard deletes, and the tree's own ingests. Each page is one transaction (instances, feed
//! events and the cursor together), so a listing cut half-way keeps what it applied.

use super::progress::{ListingKind, Progress};
use super::slices::{Slice, Slices};
use super::{diff, Changes, ElementKey, RefreshError, Refresher, Scope};
use crate::altinn::client::{AltinnClient, AltinnError, QueryParams, MAX_QUERY_PAGES};
use crate::altinn::ids::InstanceGuid;
use crate::altinn::model::{ApplicationMetadata, DataElement, Instance};
use crate::altinn::model::{QueryResponse, Timestamp};
use crate::fs::index::{Db, FeedEvent, IndexError, IndexResult};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A listing in slices makes at most this many slices per `list_parallel` (each one ends with
/// a short page: a query more), handing work from busy slices to free workers.
const SLICES_PER_WORKER: usize = 4;

/// A cursor poll, or a full listing (`mark` stamps what it saw; `silent`: the baseline
/// listing of an empty scope, which reports no events).
enum Mode {
    /// `seen`: every instance the poll's pages returned (known before or not).
    Cursor { seen: Mutex<HashSet<String>> },
    Full {
        mark: i64,
        silent: bool,
        /// Pages move the cursor (a listing in one sequence; slices side by side set it
        /// once they all ended, see `follow_sliced`).
        cursor: bool,
    },
    /// What changed, asked without the mount's `--query` filters: drop what left them, that
    /// is each instance the filtered poll (`kept`) did not return.
    Leavers { kept: HashSet<String> },
}

impl Mode {
    /// What `altinnfs status` and the log call a listing in this mode (None: not reported).
    fn kind(&self) -> Option<ListingKind> {
        match self {
            Mode::Full { silent: true, .. } => Some(ListingKind::First),
            Mode::Full { .. } => Some(ListingKind::Full),
            Mode::Cursor { .. } => Some(ListingKind::CatchUp),
            Mode::Leavers { .. } => None,
        }
    }
}

impl<C: AltinnClient + ?Sized> Refresher<C> {
    pub(super) async fn poll_scope(&self, scope: &Scope) -> Result<Changes, RefreshError> {
        let Some(cursor) = self.index.cursor(&scope.key)? else {
            // The first listing sets the cursor page by page: a daily listing must not
            // take the scope for a warm one and start beside it.
            let _full = self.full_running.lock().await;
            let _first = FirstListing::start(&self.first_listing);
            return self.full_listing_scope(scope).await;
        };
        let overlap = chrono::Duration::from_std(self.cfg.overlap).unwrap_or_default();
        let since = cursor - overlap;
        let mut params = self.base_params(scope);
        params.push((
            "lastChanged".into(),
            format!(
                "gt:{}",
                since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
        ));
        let mode = Mode::Cursor {
            seen: Mutex::new(HashSet::new()),
        };
        let progress = Mutex::new(Progress::new(&self.listings, &scope.key, mode.kind()));
        let done = self
            .follow(scope, &params, &mode, Span::default(), &progress)
            .await?;
        let (mut changes, complete) = (done.changes, done.complete);
        if complete {
            lock(&progress).done();
        }
        // Only a complete filtered poll says what no longer matches.
        if complete && self.has_filters() {
            let Mode::Cursor { seen } = mode else {
                unreachable!()
            };
            let kept = seen.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut unfiltered = self.scope_params(scope);
            unfiltered.push(params.last().cloned().expect("lastChanged"));
            let quiet = Mutex::new(Progress::new(&self.listings, &scope.key, None));
            let left = self
                .follow(
                    scope,
                    &unfiltered,
                    &Mode::Leavers { kept },
                    Span::default(),
                    &quiet,
                )
                .await?;
            changes.merge(left.changes, self.cfg.max_reported);
        }
        Ok(changes)
    }

    /// Does the mount narrow the listing with `--query` filters?
    fn has_filters(&self) -> bool {
        self.cfg.query.iter().any(|(k, _)| !structural(k))
    }

    pub(super) async fn full_listing_scope(&self, scope: &Scope) -> Result<Changes, RefreshError> {
        let (mark, silent) = self.index.write(|db| {
            let mark = db.listing_generation()? + 1;
            db.meta_set("mark", &mark.to_string())?;
            Ok((mark, db.cursor(&scope.key)?.is_none()))
        })?;
        let params = self.base_params(scope);
        let sliced = self.cfg.list_parallel > 1;
        let mode = Mode::Full {
            mark,
            silent,
            cursor: !sliced,
        };
        let progress = Mutex::new(Progress::new(&self.listings, &scope.key, mode.kind()));
        let done = if sliced {
            self.follow_sliced(scope, &params, &mode, silent, &progress)
                .await?
        } else {
            self.follow(scope, &params, &mode, Span::default(), &progress)
                .await?
        };
        let (mut changes, complete) = (done.changes, done.complete);
        changes.full_listing = true;
        if complete {
            lock(&progress).done();
            self.sweep(scope, mark, silent, &mut changes)?;
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            self.index
                .write(|db| db.meta_set(&format!("full:{}", scope.key), &now))?;
        } else {
            tracing::warn!(
                "the full listing of {} did not reach its end; hard deletes are looked for next time",
                scope.key
            );
        }
        Ok(changes)
    }

    /// A full listing in `list_parallel` slices of `lastChanged` fetched side by side (a
    /// first listing at a million instances is 10,000 pages one after another). Page 1 says
    /// where the instances start, one query for the newest where they end, and the range
    /// between is cut into equal spans of time; the last one is open, for what changes
    /// meanwhile. Slices do not move the cursor page by page: once all ended it is the newest
    /// instance seen; after a cut, a cold scope's cursor is where the earliest unfinished
    /// slice got to, so that the next poll goes on from there. A daily listing polls once
    /// more before its sweep: an instance that changed while the slices ran may have moved
    /// past the last slice's end, and must not be taken for a hard delete.
    async fn follow_sliced(
        &self,
        scope: &Scope,
        params: &QueryParams,
        mode: &Mode,
        silent: bool,
        progress: &Mutex<Progress<'_>>,
    ) -> Result<Followed, RefreshError> {
        let page1 = Span {
            pages: Some(1),
            ..Default::default()
        };
        let mut all = self.follow(scope, params, mode, page1, progress).await?;
        let Some(next) = all.next.take() else {
            return self.slices_ended(scope, silent, all, None).await;
        };
        // A first page may be empty with `next` set (Storage authorises each instance):
        // then the rest is one slice.
        let (bounds, end) = match all.newest {
            Some(start) => {
                all.changes.queries += 1;
                let end = self.newest_changed(params).await?;
                (slice_bounds(start, end, self.cfg.list_parallel), end)
            }
            None => (vec![], None),
        };
        let slices = Slices::new(self.cfg.list_parallel * SLICES_PER_WORKER, end);
        let run = |low: Option<Timestamp>, span: Span, p: QueryParams| async move {
            let slice = span.slice.clone();
            let done = self.follow(scope, &p, mode, span, progress).await;
            if let Some(s) = slice {
                s.end();
            }
            (low, done)
        };
        let plan = slice_plan(next, all.newest, &bounds, params);
        let mut joined = Joined::new(all, self.cfg.max_reported);
        run_slices(slices, plan, params, run, &mut joined).await;
        let frontier = joined.frontier();
        self.slices_ended(scope, silent, joined.all, frontier).await
    }

    /// Where the cursor goes once the slices of a listing ended (see `follow_sliced`).
    async fn slices_ended(
        &self,
        scope: &Scope,
        silent: bool,
        mut all: Followed,
        frontier: Option<Timestamp>,
    ) -> Result<Followed, RefreshError> {
        let to = match (all.complete, silent) {
            (true, _) => all.newest,
            (false, true) => frontier,
            (false, false) => None,
        };
        if let Some(t) = to {
            self.index.write(|db| {
                if db.cursor(&scope.key)?.is_none_or(|c| t > c) {
                    db.set_cursor(&scope.key, &t)?;
                }
                Ok(())
            })?;
        }
        if all.complete && !silent {
            let polled = Box::pin(self.poll_scope(scope)).await?;
            all.changes.merge(polled, self.cfg.max_reported);
        }
        Ok(all)
    }

    /// The newest `lastChanged` among the instances `params` select (one query).
    async fn newest_changed(
        &self,
        params: &QueryParams,
    ) -> Result<Option<Timestamp>, RefreshError> {
        let mut p: QueryParams = params
            .iter()
            .filter(|(k, _)| k != "order" && k != "size")
            .cloned()
            .collect();
        p.push(("order".into(), "desc:lastChanged".into()));
        p.push(("size".into(), "1".into()));
        let page = self.client.query_page(&p, None).await?;
        Ok(page.instances.iter().filter_map(|i| i.last_changed).max())
    }

    /// The mount's filters, the scope's party, ascending `lastChanged`, the page size.
    fn base_params(&self, scope: &Scope) -> QueryParams {
        let mut p: QueryParams = self
            .cfg
            .query
            .iter()
            .filter(|(k, _)| !structural(k))
            .cloned()
            .collect();
        p.extend(self.scope_params(scope));
        p
    }

    /// The scope's party, ascending `lastChanged`, the page size: no filters of the mount.
    fn scope_params(&self, scope: &Scope) -> QueryParams {
        let mut p = QueryParams::new();
        if let Some(party) = &scope.party {
            p.push(("instanceOwner.partyId".into(), party.clone()));
        }
        p.push(("order".into(), "asc:lastChanged".into()));
        p.push(("size".into(), self.cfg.page_size.to_string()));
        p
    }

    /// Follow `next` to the end (of the listing, or of `span`), applying each page.
    /// `complete` false: stopped early (a looping `next`, too many pages, or a failed page
    /// after others were applied, which `Changes::incomplete` describes). A first page that
    /// fails is an error.
    ///
    /// The next page is asked for before this one is written to the index, so that the
    /// server's time and the index's overlap (pages are still applied in order).
    async fn follow(
        &self,
        scope: &Scope,
        params: &QueryParams,
        mode: &Mode,
        span: Span,
        progress: &Mutex<Progress<'_>>,
    ) -> Result<Followed, RefreshError> {
        let mut done = Followed::default();
        let mut seen_next = HashSet::new();
        let mut pending = self.fetch_page(params, span.from.as_deref());
        let max_pages = span.pages.unwrap_or(MAX_QUERY_PAGES).min(MAX_QUERY_PAGES);
        for n in 1..=max_pages {
            let page = match pending.wait().await {
                Ok(p) => p,
                Err(e) if done.changes.queries == 0 => return Err(e.into()),
                Err(e) => {
                    tracing::warn!("polling {}: a page failed after {} ({e}); the next poll goes on from the cursor", scope.key, done.changes.queries);
                    done.changes.incomplete = Some(e.to_string());
                    return Ok(done);
                }
            };
            done.changes.queries += 1;
            let until = span.slice.as_ref().and_then(|s| s.until());
            let (instances, past_span) = within_span(page.instances, until);
            let next = match page.next.filter(|n| !n.is_empty() && !past_span) {
                Some(n) if !seen_next.insert(n.clone()) => Err(()),
                next => Ok(next),
            };
            let ahead = match &next {
                Ok(Some(link)) if n < max_pages => Some(self.fetch_page(params, Some(link))),
                _ => None,
            };
            lock(progress).page(instances.len());
            let instances = self.not_deleted_here(instances, pending.asked);
            done.newest = done
                .newest
                .max(instances.iter().filter_map(|i| i.last_changed).max());
            let applied = self.apply_page(scope, &instances, mode)?;
            done.changes.merge(applied, self.cfg.max_reported);
            if let Some(s) = &span.slice {
                s.page_applied(done.newest, matches!(next, Ok(Some(_))));
            }
            match (next, ahead) {
                (Ok(None), _) => {
                    done.complete = true;
                    return Ok(done);
                }
                (Err(()), _) => {
                    tracing::warn!(
                        "the instance query's `next` link repeats itself; stopped following it"
                    );
                    done.changes.incomplete =
                        Some("the server's `next` link repeats itself".into());
                    return Ok(done);
                }
                (Ok(Some(_)), Some(a)) => pending = a,
                (Ok(Some(link)), None) if span.pages.is_some() => {
                    done.next = Some(link);
                    return Ok(done);
                }
                (Ok(Some(_)), None) => break,
            }
        }
        done.changes.incomplete = Some(format!("more than {MAX_QUERY_PAGES} pages"));
        Ok(done)
    }

    /// The instances of a page asked for at `asked`, less those this mount deleted since.
    fn not_deleted_here(&self, instances: Vec<Instance>, asked: Instant) -> Vec<Instance> {
        let gone = self
            .deleted_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deleted_since(asked);
        if gone.is_empty() {
            return instances;
        }
        instances
            .into_iter()
            .filter(|i| InstanceGuid::parse(i.guid()).map_or(true, |g| !gone.contains(&g)))
            .collect()
    }

    /// Ask for a query page in its own task: it goes on while the caller writes the
    /// previous page to the index.
    fn fetch_page(&self, params: &QueryParams, next: Option<&str>) -> PageFetch {
        let (client, params) = (self.client.clone(), params.clone());
        let next = next.map(str::to_string);
        PageFetch {
            asked: Instant::now(),
            task: tokio::spawn(async move { client.query_page(&params, next.as_deref()).await }),
        }
    }

    /// One page in one transaction: instances, their events, the cursor.
    fn apply_page(
        &self,
        scope: &Scope,
        instances: &[Instance],
        mode: &Mode,
    ) -> Result<Changes, IndexError> {
        let now = chrono::Utc::now();
        let (mark, silent) = match mode {
            Mode::Cursor { seen } => {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.extend(instances.iter().map(|i| i.guid().to_string()));
                (None, false)
            }
            Mode::Full { mark, silent, .. } => (Some(*mark), *silent),
            Mode::Leavers { kept } => return self.drop_leavers(instances, kept),
        };
        self.index.write(|db| {
            let mut ch = Changes::default();
            let mut events = Vec::new();
            let cursor = db.cursor(&scope.key)?;
            let mut newest = cursor;
            for inst in instances.iter().filter(|i| acceptable(i)) {
                if inst.last_changed > newest {
                    newest = inst.last_changed;
                }
                if already_known(db, inst)? {
                    if let Some(m) = mark {
                        db.set_mark(inst.guid(), m)?;
                    }
                    continue;
                }
                apply_one(db, &self.meta, inst, mark, silent, &mut ch, &mut events)?;
            }
            db.append_events(&mut events, &now)?;
            let moves_cursor = !matches!(mode, Mode::Full { cursor: false, .. });
            if let Some(t) = newest.filter(|_| newest > cursor && moves_cursor) {
                db.set_cursor(&scope.key, &t)?;
            }
            ch.events = events;
            ch.cap(self.cfg.max_reported);
            Ok(ch)
        })
    }

    /// An instance that changed so that it no longer matches the mount's filters (one
    /// confirmed under `excludeConfirmedBy`, say) is absent from the filtered poll but still
    /// in the index: report its events (none when this mount made the change) and drop it.
    fn drop_leavers(
        &self,
        instances: &[Instance],
        kept: &HashSet<String>,
    ) -> Result<Changes, IndexError> {
        let now = chrono::Utc::now();
        self.index.write(|db| {
            let mut ch = Changes::default();
            let mut events = Vec::new();
            for inst in instances.iter().filter(|i| acceptable(i)) {
                if kept.contains(inst.guid()) || db.version(inst.guid())?.is_none() {
                    continue;
                }
                apply_one(db, &self.meta, inst, None, false, &mut ch, &mut events)?;
                db.delete_instance(inst.guid())?;
                ch.parties.insert(inst.party_id());
                ch.root |= !db.party_exists(&inst.party_id())?;
            }
            db.append_events(&mut events, &now)?;
            ch.events = events;
            ch.cap(self.cfg.max_reported);
            Ok(ch)
        })
    }

    /// Delete what the completed full listing `mark` did not see (hard deletes).
    fn sweep(
        &self,
        scope: &Scope,
        mark: i64,
        silent: bool,
        changes: &mut Changes,
    ) -> Result<(), IndexError> {
        let gone = self
            .index
            .read(|db| db.unmarked(scope.party.as_deref(), mark))?;
        let now = chrono::Utc::now();
        for chunk in gone.chunks(1000) {
            let ch = self.index.write(|db| {
                let mut ch = Changes::default();
                let mut events = Vec::new();
                for (party, guid) in chunk {
                    remove_one(db, party, guid, &mut ch, &mut events)?;
                }
                if !silent {
                    db.append_events(&mut events, &now)?;
                    ch.events = events;
                }
                Ok(ch)
            })?;
            changes.merge(ch, self.cfg.max_reported);
        }
        Ok(())
    }
}

/// Marks a first listing under way for as long as it lives (also when it is cancelled).
struct FirstListing<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> FirstListing<'a> {
    fn start(flag: &'a std::sync::atomic::AtomicBool) -> Self {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        Self(flag)
    }
}

impl Drop for FirstListing<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where `follow` starts and stops.
#[derive(Default)]
struct Span {
    /// A `next` link to start from (None: the first page of the query).
    from: Option<String>,
    /// Stop after this many pages, with the `next` link in `Followed::next`.
    pages: Option<usize>,
    /// A slice of a listing in slices: instances changed after its end are left out, and it
    /// stops there (the end may be lowered while it runs, when it hands its far part to
    /// another slice); it learns how far this got.
    slice: Option<Arc<Slice>>,
}

/// A slice to run: (low, until] of `lastChanged`, from its own query or, for the first, from
/// page 1's `next` link.
struct Planned {
    low: Option<Timestamp>,
    until: Option<Timestamp>,
    from: Option<String>,
    params: QueryParams,
}

/// What `follow` did.
#[derive(Default)]
struct Followed {
    changes: Changes,
    /// It reached the end of the listing, or of its span.
    complete: bool,
    /// The newest server `lastChanged` it applied.
    newest: Option<Timestamp>,
    /// Where it stopped when `Span::pages` ran out.
    next: Option<String>,
}

impl Followed {
    /// A slice whose first page failed.
    fn failed(why: String) -> Self {
        let mut f = Self::default();
        f.changes.incomplete = Some(why);
        f
    }
}

/// What the slices of a listing did together.
struct Joined {
    all: Followed,
    max_reported: usize,
    /// Where the earliest unfinished slice got to.
    frontier: Option<Timestamp>,
    /// An unfinished slice never saw an instance: where it got to is unknown.
    unknown: bool,
}

impl Joined {
    /// `all`: page 1, which the slices go on from.
    fn new(mut all: Followed, max_reported: usize) -> Self {
        all.complete = true;
        Self {
            all,
            max_reported,
            frontier: None,
            unknown: false,
        }
    }

    /// Slice `low..` ended with `done`.
    fn add(&mut self, low: Option<Timestamp>, done: Followed) {
        if !done.complete {
            self.all.complete = false;
            match done.newest.or(low) {
                Some(r) => self.frontier = Some(self.frontier.map_or(r, |f| f.min(r))),
                None => self.unknown = true,
            }
        }
        self.all.newest = self.all.newest.max(done.newest);
        self.all.changes.merge(done.changes, self.max_reported);
    }

    fn frontier(&self) -> Option<Timestamp> {
        self.frontier.filter(|_| !self.unknown)
    }
}

/// Run the slices of `plan` side by side (`run` follows one), and whenever one ends, let its
/// worker take over the far half of the busiest slice's rest (`Slices::steal`); once none is
/// worth splitting, a free worker waits for the next page applied anywhere and asks again.
async fn run_slices<F, R>(
    mut slices: Slices,
    plan: Vec<Planned>,
    params: &QueryParams,
    run: F,
    joined: &mut Joined,
) where
    F: Fn(Option<Timestamp>, Span, QueryParams) -> R,
    R: std::future::Future<Output = (Option<Timestamp>, Result<Followed, RefreshError>)>,
{
    let start = |slices: &mut Slices, p: Planned| {
        let span = Span {
            from: p.from,
            slice: Some(slices.add(p.low, p.until)),
            ..Default::default()
        };
        run(p.low, span, p.params)
    };
    let mut running: FuturesUnordered<R> =
        plan.into_iter().map(|p| start(&mut slices, p)).collect();
    let mut free = 0;
    loop {
        while free > 0 {
            let Some((after, until)) = slices.steal() else {
                break;
            };
            let p = Planned {
                low: Some(after),
                until,
                from: None,
                params: slice_params(params, after, until),
            };
            running.push(start(&mut slices, p));
            free -= 1;
        }
        if running.is_empty() {
            return;
        }
        let (low, done) = tokio::select! {
            Some(ended) = running.next() => ended,
            _ = slices.page_applied(), if free > 0 => continue,
        };
        free += 1;
        joined.add(
            low,
            done.unwrap_or_else(|e| Followed::failed(e.to_string())),
        );
    }
}

/// The instances of a page up to `until`, and whether the page went past it.
fn within_span(mut instances: Vec<Instance>, until: Option<Timestamp>) -> (Vec<Instance>, bool) {
    let Some(until) = until else {
        return (instances, false);
    };
    let before = instances.len();
    instances.retain(|i| i.last_changed.is_none_or(|t| t <= until));
    let past = instances.len() < before;
    (instances, past)
}

/// `k - 1` points that cut (start, end) into `k` equal spans of time, at whole microseconds
/// (Storage's precision), strictly increasing; none when there is no span to cut.
fn slice_bounds(start: Timestamp, end: Option<Timestamp>, k: usize) -> Vec<Timestamp> {
    let Some(end) = end.filter(|e| *e > start) else {
        return vec![];
    };
    let width = end - start;
    let mut out: Vec<Timestamp> = Vec::new();
    for i in 1..k as i32 {
        let micros = (start + width * i / k as i32).timestamp_micros();
        let Some(b) = Timestamp::from_timestamp_micros(micros) else {
            continue;
        };
        if b > start && out.last().is_none_or(|l| b > *l) {
            out.push(b);
        }
    }
    out
}

/// The slices of a listing whose first page ended at `start` with `next`. The first goes on
/// from `next` up to the first bound; each other one is (bound, next bound], the last one
/// open.
fn slice_plan(
    next: String,
    start: Option<Timestamp>,
    bounds: &[Timestamp],
    params: &QueryParams,
) -> Vec<Planned> {
    let first = Planned {
        low: start,
        until: bounds.first().copied(),
        from: Some(next),
        params: params.clone(),
    };
    let mut out = vec![first];
    for (i, low) in bounds.iter().enumerate() {
        let until = bounds.get(i + 1).copied();
        out.push(Planned {
            low: Some(*low),
            until,
            from: None,
            params: slice_params(params, *low, until),
        });
    }
    out
}

/// The query of slice (after, until]: `params` with `lastChanged=gt:` and, but for the last
/// (open) slice, `lastChanged=lte:`.
fn slice_params(params: &QueryParams, after: Timestamp, until: Option<Timestamp>) -> QueryParams {
    let fmt = |t: Timestamp| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut p = params.clone();
    p.push(("lastChanged".into(), format!("gt:{}", fmt(after))));
    if let Some(u) = until {
        p.push(("lastChanged".into(), format!("lte:{}", fmt(u))));
    }
    p
}

fn lock<'m, 'a>(p: &'m Mutex<Progress<'a>>) -> std::sync::MutexGuard<'m, Progress<'a>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// A query page being fetched; dropped (a listing that stopped early), it is cancelled.
struct PageFetch {
    /// When the page was asked for: what this mount deleted after it is left out.
    asked: Instant,
    task: tokio::task::JoinHandle<Result<QueryResponse, AltinnError>>,
}

impl PageFetch {
    async fn wait(&mut self) -> Result<QueryResponse, AltinnError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(AltinnError::Local(format!("query page task: {e}"))),
        }
    }
}

impl Drop for PageFetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Query keys the refresher sets itself, never taken from the mount's filters.
fn structural(key: &str) -> bool {
    matches!(
        key,
        "order" | "size" | "continuationToken" | "instanceOwner.partyId"
    )
}

/// Instances with an id the tree can use (a hostile server cannot put paths in the index).
pub(super) fn acceptable(i: &Instance) -> bool {
    usable_id(i.guid(), 100) && usable_id(&i.party_id(), 100) && i.id.contains('/')
}

/// A non-empty name of at most `max` bytes that cannot be a path.
fn usable_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.contains(['/', '\0']) && s != "." && s != ".."
}

/// The longest file name or content type the index keeps from the server.
const MAX_ELEMENT_TEXT: usize = 1024;

/// `inst` as the index may keep it: nothing the server sends grows a row without bound.
/// An element whose id or data type cannot be a name (empty, a path, longer than Altinn's
/// ids ever are) is left out, with a warning; an absurdly long file name or content type
/// is cut. Borrowed when nothing had to change (every real instance).
pub(super) fn bounded(inst: &Instance) -> Cow<'_, Instance> {
    let fits = |e: &DataElement| {
        usable_id(&e.id, 100)
            && usable_id(&e.data_type, 255)
            && e.filename
                .as_ref()
                .is_none_or(|f| f.len() <= MAX_ELEMENT_TEXT)
            && e.content_type
                .as_ref()
                .is_none_or(|c| c.len() <= MAX_ELEMENT_TEXT)
    };
    if inst.data.iter().all(fits) {
        return Cow::Borrowed(inst);
    }
    let mut inst = inst.clone();
    inst.data.retain(|e| {
        let keep = usable_id(&e.id, 100) && usable_id(&e.data_type, 255);
        if !keep {
            tracing::warn!(
                "instance {}: left out a data element whose id or data type is not a usable \
                 name ({} and {} bytes)",
                inst.id,
                e.id.len(),
                e.data_type.len()
            );
        }
        keep
    });
    for e in &mut inst.data {
        cut(&mut e.filename);
        cut(&mut e.content_type);
    }
    Cow::Owned(inst)
}

/// Cut `text` to at most `MAX_ELEMENT_TEXT` bytes, at a character boundary.
fn cut(text: &mut Option<String>) {
    if let Some(t) = text.as_mut().filter(|t| t.len() > MAX_ELEMENT_TEXT) {
        let end = (0..=MAX_ELEMENT_TEXT)
            .rev()
            .find(|&i| t.is_char_boundary(i))
            .unwrap_or(0);
        t.truncate(end);
    }
}

/// Seen before with this lastChanged (the cursor's overlap, an instance that moved between
/// pages), or the index already holds a newer state of it.
fn already_known(db: &Db, inst: &Instance) -> IndexResult<bool> {
    let Some((party, stored)) = db.version(inst.guid())? else {
        return Ok(false);
    };
    if party != inst.party_id() {
        return Ok(false);
    }
    let incoming = inst.last_changed.map(|t| t.timestamp_micros());
    Ok(match (stored, incoming) {
        (Some(s), Some(i)) => (s - i).abs() <= 1 || s > i,
        (None, None) => true,
        _ => false,
    })
}

/// Store one instance and note its events and what to invalidate.
pub(super) fn apply_one(
    db: &Db,
    meta: &ApplicationMetadata,
    inst: &Instance,
    mark: Option<i64>,
    silent: bool,
    ch: &mut Changes,
    events: &mut Vec<FeedEvent>,
) -> IndexResult<()> {
    let inst = &*bounded(inst);
    let old = db.get_instance(inst.guid())?;
    let party = inst.party_id();
    let guid = inst.guid().to_string();
    if old.is_none() {
        ch.root |= !db.party_exists(&party)?;
        ch.parties.insert(party.clone());
    }
    if old
        .as_ref()
        .is_some_and(|o| diff::is_deleted(o) != diff::is_deleted(inst))
    {
        ch.parties.insert(party.clone());
    }
    let evs = if silent {
        vec![]
    } else {
        diff::events(old.as_ref(), inst, meta)
    };
    for e in &evs {
        if let (Some(dt), Some(id)) = (&e.data_type, &e.element) {
            ch.elements.insert(ElementKey {
                party: party.clone(),
                guid: guid.clone(),
                data_type: dt.clone(),
                id: id.clone(),
            });
        }
    }
    ch.instances.insert((party, guid));
    db.upsert_instance(inst, mark)?;
    events.extend(evs);
    Ok(())
}

fn remove_one(
    db: &Db,
    party: &str,
    guid: &str,
    ch: &mut Changes,
    events: &mut Vec<FeedEvent>,
) -> IndexResult<()> {
    if !db.delete_instance(guid)? {
        return Ok(());
    }
    ch.root |= !db.party_exists(party)?;
    ch.parties.insert(party.to_string());
    ch.instances.insert((party.to_string(), guid.to_string()));
    events.push(diff::deleted(party, guid));
    Ok(())
}

pub(super) fn ingest<C: AltinnClient + ?Sized>(
    r: &Refresher<C>,
    instances: &[Instance],
) -> Result<Changes, IndexError> {
    let now = chrono::Utc::now();
    r.index.write(|db| {
        let mut ch = Changes::default();
        let mut events = Vec::new();
        for inst in instances.iter().filter(|i| acceptable(i)) {
            apply_one(db, &r.meta, inst, None, false, &mut ch, &mut events)?;
        }
        db.append_events(&mut events, &now)?;
        ch.events = events;
        ch.cap(r.cfg.max_reported);
        Ok(ch)
    })
}

pub(super) fn ingest_deleted<C: AltinnClient + ?Sized>(
    r: &Refresher<C>,
    party: &str,
    guid: &str,
) -> Result<Changes, IndexError> {
    let now = chrono::Utc::now();
    r.index.write(|db| {
        let mut ch = Changes::default();
        let mut events = Vec::new();
        remove_one(db, party, guid, &mut ch, &mut events)?;
        db.append_events(&mut events, &now)?;
        ch.events = events;
        Ok(ch)
    })
}
