//! The cursor against a scripted Storage: a fake `AltinnClient` whose instance query filters
//! `lastChanged`, orders ascending and pages with continuation tokens like Storage's.

use super::*;
use crate::altinn::client::{Download, NewElement, Replacement, UploadBody};
use crate::altinn::ids::{DataTypeId, ElementId, InstanceId, PartyId};
use crate::altinn::model::*;
use crate::fs::index::tests::{element, instance, ts};
use crate::fs::index::EventKind;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};

type Hook = Box<dyn FnMut(&mut BTreeMap<String, Instance>, usize) + Send>;

#[derive(Default)]
struct FakeState {
    instances: BTreeMap<String, Instance>,
    /// (params, next) of every query page asked for.
    requests: Vec<(QueryParams, Option<String>)>,
    /// Runs after page n (0-based, counted over the fake's life) was served.
    after_page: Option<Hook>,
    /// Request numbers (0-based) that fail with a 503.
    fail: Vec<usize>,
    /// Every `next` is this same link.
    looping_next: bool,
    /// Each page takes this long to answer (a long listing).
    page_delay: Duration,
    /// Pages being answered now, and the most at once.
    in_flight: usize,
    max_in_flight: usize,
    /// The guid of every instance served in ascending order, in order.
    served: Vec<String>,
    /// A listing's first page comes back empty with `next` set (Storage authorises each
    /// instance of a page, and may drop them all).
    empty_first_page: bool,
    /// Queries for this party answer 403 (a user token may act for it but not list it).
    forbidden_party: Option<String>,
}

#[derive(Default)]
struct FakeStorage {
    st: Mutex<FakeState>,
}

impl FakeStorage {
    fn with(instances: Vec<Instance>) -> Arc<Self> {
        let f = Self::default();
        for i in instances {
            f.put(i);
        }
        Arc::new(f)
    }
    fn put(&self, i: Instance) {
        self.st
            .lock()
            .unwrap()
            .instances
            .insert(i.guid().to_string(), i);
    }
    fn remove(&self, guid: &str) {
        self.st.lock().unwrap().instances.remove(guid);
    }
    fn get(&self, guid: &str) -> Instance {
        self.st.lock().unwrap().instances[guid].clone()
    }
    fn requests(&self) -> Vec<(QueryParams, Option<String>)> {
        self.st.lock().unwrap().requests.clone()
    }
    fn clear_requests(&self) {
        self.st.lock().unwrap().requests.clear();
    }
    /// One page as Storage would answer it, and how long to take to answer.
    fn serve_page(
        &self,
        params: &QueryParams,
        next: Option<&str>,
    ) -> crate::altinn::client::Result<(QueryResponse, Duration)> {
        let mut st = self.st.lock().unwrap();
        let n = st.requests.len();
        st.requests.push((params.clone(), next.map(str::to_string)));
        if st
            .forbidden_party
            .as_deref()
            .is_some_and(|p| param(params, "instanceOwner.partyId") == [p])
        {
            return Err(AltinnError::Status {
                status: 403,
                method: "GET".into(),
                path: "instances".into(),
                message: "forbidden".into(),
                problem: None,
                retry_after: None,
                meaning: crate::altinn::client::Meaning::Forbidden,
            });
        }
        if st.fail.contains(&n) {
            return Err(AltinnError::Status {
                status: 503,
                method: "GET".into(),
                path: "instances".into(),
                message: "unavailable".into(),
                problem: None,
                retry_after: None,
                meaning: crate::altinn::client::Meaning::Transient { retry_after: None },
            });
        }
        let first = next.is_none() && param(params, "lastChanged").is_empty();
        if st.empty_first_page && first && param(params, "order") == vec!["asc:lastChanged"] {
            let page = QueryResponse {
                count: 0,
                self_link: None,
                next: Some("fake:0;".into()),
                instances: vec![],
            };
            return Ok((page, st.page_delay));
        }
        let page = serve(&st, params, next);
        if param(params, "order") == vec!["asc:lastChanged"] {
            let guids = page.instances.iter().map(|i| i.guid().to_string());
            st.served.extend(guids);
        }
        if let Some(mut hook) = st.after_page.take() {
            hook(&mut st.instances, n);
            st.after_page = Some(hook);
        }
        Ok((page, st.page_delay))
    }
}

fn param<'a>(p: &'a QueryParams, k: &str) -> Vec<&'a str> {
    p.iter()
        .filter(|(x, _)| x == k)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn key(i: &Instance) -> (i64, String) {
    (
        i.last_changed.map(|t| t.timestamp_micros()).unwrap_or(0),
        i.guid().to_string(),
    )
}

/// Storage's query, as far as the cursor uses it.
fn serve(st: &FakeState, params: &QueryParams, next: Option<&str>) -> QueryResponse {
    let order = param(params, "order");
    let desc = order == vec!["desc:lastChanged"];
    assert!(desc || order == vec!["asc:lastChanged"], "{order:?}");
    let size: usize = param(params, "size")[0].parse().unwrap();
    // (op, micros): gt and lte, as the cursor and the slices of a listing use them.
    let dates: Vec<(&str, i64)> = param(params, "lastChanged")
        .iter()
        .map(|v| {
            let (op, t) = v.split_once(':').expect("op:date");
            assert!(op == "gt" || op == "lte", "{v}");
            let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
            (op, t.timestamp_micros())
        })
        .collect();
    let in_dates = |t: i64| {
        dates
            .iter()
            .all(|(op, d)| if *op == "gt" { t > *d } else { t <= *d })
    };
    let party = param(params, "instanceOwner.partyId");
    let excluded = param(params, "excludeConfirmedBy");
    let after: Option<(i64, String)> = next.map(|n| {
        let (a, b) = n.trim_start_matches("fake:").split_once(';').unwrap();
        (a.parse().unwrap(), b.to_string())
    });
    let mut all: Vec<&Instance> = st
        .instances
        .values()
        .filter(|i| in_dates(key(i).0))
        .filter(|i| party.iter().all(|p| i.party_id() == *p))
        .filter(|i| {
            let by = |o: &&str| {
                i.complete_confirmations
                    .iter()
                    .any(|c| c.stakeholder_id == *o)
            };
            !excluded.iter().any(by)
        })
        .filter(|i| after.as_ref().is_none_or(|a| key(i) > *a))
        .collect();
    all.sort_by_key(|i| key(i));
    if desc {
        assert!(
            next.is_none(),
            "only the newest is asked for in descending order"
        );
        all.reverse();
        all.truncate(size);
        let instances = all.into_iter().cloned().collect::<Vec<_>>();
        return QueryResponse {
            count: instances.len() as i64,
            self_link: None,
            next: None,
            instances,
        };
    }
    all.truncate(size);
    let next = (all.len() == size).then(|| {
        if st.looping_next {
            return "fake:0;loop".to_string();
        }
        let (t, g) = key(all.last().unwrap());
        format!("fake:{t};{g}")
    });
    QueryResponse {
        count: all.len() as i64,
        self_link: None,
        next,
        instances: all.into_iter().cloned().collect(),
    }
}

#[async_trait]
impl AltinnClient for FakeStorage {
    async fn query_page(
        &self,
        params: &QueryParams,
        next: Option<&str>,
    ) -> crate::altinn::client::Result<QueryResponse> {
        let (page, delay) = self.serve_page(params, next)?;
        if !delay.is_zero() {
            {
                let mut st = self.st.lock().unwrap();
                st.in_flight += 1;
                st.max_in_flight = st.max_in_flight.max(st.in_flight);
            }
            tokio::time::sleep(delay).await;
            self.st.lock().unwrap().in_flight -= 1;
        }
        Ok(page)
    }
    async fn application_metadata(&self) -> crate::altinn::client::Result<ApplicationMetadata> {
        unreachable!("the cursor does not ask")
    }
    async fn parties(&self) -> crate::altinn::client::Result<Vec<Party>> {
        unreachable!()
    }
    async fn get_instance(&self, _: &InstanceId) -> crate::altinn::client::Result<Instance> {
        unreachable!()
    }
    async fn list_data_elements(
        &self,
        _: &InstanceId,
    ) -> crate::altinn::client::Result<Vec<DataElement>> {
        unreachable!()
    }
    async fn download(
        &self,
        _: &InstanceId,
        _: &ElementId,
    ) -> crate::altinn::client::Result<Download> {
        unreachable!()
    }
    async fn get_form_data(
        &self,
        _: &InstanceId,
        _: &ElementId,
        _: &str,
    ) -> crate::altinn::client::Result<Bytes> {
        unreachable!()
    }
    async fn create_data(
        &self,
        _: &InstanceId,
        _: NewElement<'_>,
        _: UploadBody,
    ) -> crate::altinn::client::Result<DataElement> {
        unreachable!()
    }
    async fn replace_data(
        &self,
        _: &InstanceId,
        _: &ElementId,
        _: Replacement<'_>,
        _: UploadBody,
    ) -> crate::altinn::client::Result<DataElement> {
        unreachable!()
    }
    async fn delete_data(
        &self,
        _: &InstanceId,
        _: &ElementId,
    ) -> crate::altinn::client::Result<()> {
        unreachable!()
    }
    async fn create_instance(&self, _: PartyId) -> crate::altinn::client::Result<Instance> {
        unreachable!()
    }
    async fn delete_instance(
        &self,
        _: &InstanceId,
        _: bool,
    ) -> crate::altinn::client::Result<Instance> {
        unreachable!()
    }
    async fn complete_instance(&self, _: &InstanceId) -> crate::altinn::client::Result<Instance> {
        unreachable!()
    }
    async fn process_next(
        &self,
        _: &InstanceId,
        _: Option<&str>,
    ) -> crate::altinn::client::Result<ProcessState> {
        unreachable!()
    }
    async fn stateless_create(
        &self,
        _: &DataTypeId,
        _: Option<PartyId>,
        _: &str,
    ) -> crate::altinn::client::Result<Bytes> {
        unreachable!()
    }
    async fn stateless_calculate(
        &self,
        _: &DataTypeId,
        _: Option<PartyId>,
        _: &str,
        _: Bytes,
        _: &str,
    ) -> crate::altinn::client::Result<Bytes> {
        unreachable!()
    }
}

fn meta() -> Arc<ApplicationMetadata> {
    Arc::new(ApplicationMetadata {
        id: "ttd/app".into(),
        org: "ttd".into(),
        data_types: vec![DataType {
            id: "vedlegg".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
}

fn refresher(fake: &Arc<FakeStorage>, cfg: RefreshConfig) -> Refresher<FakeStorage> {
    let ix = Arc::new(MetaIndex::open_in_memory().unwrap());
    Refresher::new(fake.clone(), ix, meta(), cfg)
}

fn small_pages() -> RefreshConfig {
    RefreshConfig {
        page_size: 3,
        ..Default::default()
    }
}

fn kinds(c: &Changes) -> Vec<(EventKind, String)> {
    c.events.iter().map(|e| (e.event, e.path.clone())).collect()
}

/// Bump an instance's lastChanged as Storage does on any change.
fn touch(i: &mut Instance, secs: i64, micros: u32) {
    i.last_changed = Some(ts(secs, micros));
}

#[tokio::test]
async fn the_first_listing_is_a_silent_baseline_and_sets_the_cursor_from_server_times() {
    // Server times years away from the local clock: the cursor only ever uses them.
    let fake = FakeStorage::with(
        (0..7)
            .map(|n| instance("500", n, 1_000 + n as i64, 1))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    let c = r.refresh().await.unwrap();
    assert!(c.full_listing && c.events.is_empty() && c.root);
    assert_eq!(c.queries, 3, "7 instances in pages of 3");
    assert_eq!(r.index().counts().unwrap().instances, 7);
    assert_eq!(r.index().cursor("app").unwrap(), Some(ts(1_006, 123_456)));
    assert_eq!(r.index().last_seq().unwrap(), 0);
    // The first request asks for everything, oldest change first; the others follow `next`.
    let reqs = fake.requests();
    assert!(param(&reqs[0].0, "lastChanged").is_empty());
    assert_eq!(
        reqs[1].1.as_deref(),
        Some("fake:1002123456;00000000-0000-4000-8000-000000000002")
    );
}

#[tokio::test]
async fn a_poll_asks_from_the_cursor_minus_the_overlap_and_reports_each_change_once() {
    let fake = FakeStorage::with(
        (0..5)
            .map(|n| instance("500", n, 1_000 + n as i64, 1))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    fake.clear_requests();

    // Someone else adds an element to instance 1 and creates an instance for a new party.
    let mut one = fake.get(&crate::fs::index::tests::guid(1));
    one.data
        .push(element("new-el", "vedlegg", "kvittering.pdf", 2_000));
    touch(&mut one, 2_000, 5);
    fake.put(one);
    fake.put(instance("777", 50, 2_001, 1));

    let c = r.refresh().await.unwrap();
    assert!(!c.full_listing);
    let reqs = fake.requests();
    assert_eq!(
        reqs.len(),
        2,
        "4 instances since the overlap, in pages of 3"
    );
    assert_eq!(
        param(&reqs[0].0, "lastChanged"),
        vec!["gt:1970-01-01T00:16:42.123456Z"],
        "cursor 1004.123456 minus 2 s"
    );
    let g1 = crate::fs::index::tests::guid(1);
    let g50 = crate::fs::index::tests::guid(50);
    assert_eq!(
        kinds(&c),
        vec![
            (
                EventKind::ElementCreated,
                format!("500/{g1}/vedlegg/kvittering.pdf")
            ),
            (EventKind::InstanceCreated, format!("777/{g50}")),
            (
                EventKind::ElementCreated,
                format!("777/{g50}/vedlegg/f0.pdf")
            ),
        ]
    );
    assert!(c.root, "party 777 is new");
    assert!(c.instances.contains(&("500".to_string(), g1.clone())));
    assert!(c.elements.iter().any(|e| e.id == "new-el"));
    assert_eq!(
        c.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(r.index().cursor("app").unwrap(), Some(ts(2_001, 123_456)));

    // Nothing changed: one query, and what the overlap returns again is not reported.
    fake.clear_requests();
    let c = r.refresh().await.unwrap();
    assert_eq!(fake.requests().len(), 1);
    assert!(c.is_empty(), "{c:?}");
    assert_eq!(r.index().last_seq().unwrap(), 3);
}

#[tokio::test]
async fn instance_changes_confirmations_and_deletes_are_told_apart() {
    let fake = FakeStorage::with(vec![
        instance("500", 1, 1_000, 2),
        instance("500", 2, 1_000, 0),
        instance("500", 3, 1_000, 0),
    ]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    let g = crate::fs::index::tests::guid;
    let mut a = fake.get(&g(1));
    a.process = Some(ProcessState {
        ended: Some(ts(1_100, 0)),
        ..Default::default()
    });
    a.data[0].size = 99;
    a.data[0].last_changed = Some(ts(1_100, 0));
    a.data.remove(1);
    a.status.read_status = ReadStatus::Read;
    touch(&mut a, 1_100, 0);
    fake.put(a);
    let mut b = fake.get(&g(2));
    b.complete_confirmations.push(CompleteConfirmation {
        stakeholder_id: "ttd".into(),
        confirmed_on: Some(ts(1_101, 0)),
    });
    touch(&mut b, 1_101, 0);
    fake.put(b);
    let mut d = fake.get(&g(3));
    d.status.is_soft_deleted = true;
    touch(&mut d, 1_102, 0);
    fake.put(d);
    let c = r.refresh().await.unwrap();
    let got: Vec<EventKind> = c.events.iter().map(|e| e.event).collect();
    assert_eq!(
        got,
        vec![
            EventKind::InstanceChanged,
            EventKind::ElementChanged,
            EventKind::ElementDeleted,
            EventKind::InstanceConfirmed,
            EventKind::InstanceDeleted,
        ]
    );
    assert_eq!(c.events[2].path, format!("500/{}/vedlegg/f1.pdf", g(1)));
    assert_eq!(
        c.events[1].last_changed.as_deref(),
        Some("1970-01-01T00:18:20Z")
    );
}

#[tokio::test]
async fn a_full_listing_finds_hard_deletes_the_cursor_cannot_see() {
    let fake = FakeStorage::with(
        (0..8)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    fake.put(instance("600", 9, 1_000, 0));
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    let g = crate::fs::index::tests::guid;
    fake.remove(&g(2));
    fake.remove(&g(9));
    let c = r.refresh().await.unwrap();
    assert!(
        c.is_empty(),
        "a hard delete does not bump anything the cursor sees"
    );
    assert_eq!(r.index().counts().unwrap().instances, 9);
    let c = r.full_listing().await.unwrap();
    assert!(c.full_listing);
    assert_eq!(
        kinds(&c),
        vec![
            (EventKind::InstanceDeleted, format!("500/{}", g(2))),
            (EventKind::InstanceDeleted, format!("600/{}", g(9))),
        ]
    );
    assert!(c.root, "party 600 lost its last instance");
    assert_eq!(r.index().counts().unwrap().instances, 7);
    assert!(r.index().get_instance(&g(2)).unwrap().is_none());
}

/// Eight instances listed once; `act` runs (with the server's instances and the refresher,
/// as the mount) right after the first page of the next listing was served.
async fn listed_then_during_the_next_listing(
    act: impl Fn(&mut BTreeMap<String, Instance>, &Refresher<FakeStorage>) + Send + 'static,
) -> (Arc<FakeStorage>, Arc<Refresher<FakeStorage>>) {
    let fake = FakeStorage::with(
        (0..8)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    let r = Arc::new(refresher(&fake, small_pages()));
    r.refresh().await.unwrap();
    let first = fake.requests().len();
    let mount = r.clone();
    fake.st.lock().unwrap().after_page = Some(Box::new(move |all, n| {
        if n == first {
            act(all, &mount);
        }
    }));
    (fake, r)
}

/// A mount creates an instance while a full listing runs, and the listing's remaining pages
/// do not bring it (Storage pages from a position the new instance is not after): the sweep
/// at the end must not take it for a hard delete (`mkdir` then `ls` lost it in CI).
#[tokio::test]
async fn an_instance_this_mount_creates_during_a_full_listing_is_not_swept() {
    let new = instance("500", 40, 1_000, 0);
    let (fake, r) = listed_then_during_the_next_listing(move |_, mount| {
        mount.ingest(std::slice::from_ref(&new)).unwrap();
    })
    .await;
    let c = r.full_listing().await.unwrap();
    assert!(c.full_listing);
    let g = crate::fs::index::tests::guid;
    assert!(
        r.index().get_instance(&g(40)).unwrap().is_some(),
        "swept: {:?}",
        kinds(&c)
    );
    assert_eq!(r.index().counts().unwrap().instances, 9);
    // It stays: the next full listing that does not see it on the server sweeps it.
    fake.st.lock().unwrap().after_page = None;
    let c = r.full_listing().await.unwrap();
    assert_eq!(
        kinds(&c),
        vec![(EventKind::InstanceDeleted, format!("500/{}", g(40)))]
    );
}

/// A page asked for before this mount deleted an instance still holds it: applied after the
/// delete, it must not bring the instance back (`rmdir` then `ls`).
#[tokio::test]
async fn a_page_asked_before_this_mount_deleted_an_instance_does_not_bring_it_back() {
    let g = crate::fs::index::tests::guid;
    // The page holding instance 1 is served, then the mount deletes it (as rmdir does).
    let (_, r) = listed_then_during_the_next_listing(move |all, mount| {
        all.remove(&g(1));
        mount.ingest_deleted("500", &g(1)).unwrap();
    })
    .await;
    r.full_listing().await.unwrap();
    assert!(r.index().get_instance(&g(1)).unwrap().is_none());
    assert_eq!(r.index().counts().unwrap().instances, 7);
}

#[tokio::test]
async fn the_full_listing_is_due_again_after_full_refresh() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let cfg = RefreshConfig {
        full_refresh: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let r = refresher(&fake, cfg);
    assert!(r.refresh().await.unwrap().full_listing);
    assert!(!r.refresh().await.unwrap().full_listing);
    assert!(!r.full_listing_due_now().unwrap());
    assert!(r.full_listing_if_due().await.unwrap().is_none());
    // The last full listing was long ago: a refresh still only polls (readers must not
    // wait for a full listing), and the daily one is due beside it.
    r.index()
        .write(|db| db.meta_set("full:app", "2000-01-01T00:00:00Z"))
        .unwrap();
    assert!(!r.refresh().await.unwrap().full_listing);
    assert!(r.full_listing_due_now().unwrap());
    assert!(r.full_listing_if_due().await.unwrap().unwrap().full_listing);
    assert!(!r.full_listing_due_now().unwrap());
    // A clock set back (last listing "in the future") lists again rather than never.
    r.index()
        .write(|db| db.meta_set("full:app", "2999-01-01T00:00:00Z"))
        .unwrap();
    assert!(r.full_listing_if_due().await.unwrap().unwrap().full_listing);
}

/// Instances 1..=n of party 500, changed at seconds 1000.., one page of `size` per 10.
fn many(n: u64) -> Vec<Instance> {
    (1..=n)
        .map(|k| instance("500", k, 1_000 + k as i64, 0))
        .collect()
}

#[tokio::test]
async fn a_daily_full_listing_holds_up_neither_polls_nor_readers() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(many(100));
    let cfg = RefreshConfig {
        page_size: 10,
        full_refresh: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let r = Arc::new(refresher(&fake, cfg));
    r.refresh().await.unwrap(); // the first listing
    r.index()
        .write(|db| db.meta_set("full:app", "2000-01-01T00:00:00Z"))
        .unwrap();
    fake.remove(&g(7)); // deleted for good: only a full listing sees it
    fake.st.lock().unwrap().page_delay = Duration::from_millis(100);
    // 10 pages of 100 ms: the full listing takes at least a second.
    let full = tokio::spawn({
        let r = r.clone();
        async move { r.full_listing_if_due().await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!full.is_finished());
    fake.put(instance("500", 500, 9_000, 0)); // created elsewhere meanwhile
    let t0 = Instant::now();
    let polled = r.refresh().await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "a poll waited for the full listing: {:?}",
        t0.elapsed()
    );
    assert!(!polled.full_listing);
    assert!(polled.instances.contains(&("500".into(), g(500))));
    assert!(!full.is_finished(), "the full listing was still running");
    // A second daily listing does not start beside the first.
    assert!(r.full_listing_if_due().await.unwrap().is_none());
    let c = full.await.unwrap().unwrap().expect("it was due");
    assert!(c.full_listing);
    assert!(
        c.instances.contains(&("500".into(), g(7))),
        "the hard delete"
    );
    let ix = r.index();
    assert!(ix.get_instance(&g(7)).unwrap().is_none());
    assert!(
        ix.get_instance(&g(500)).unwrap().is_some(),
        "what the poll brought meanwhile is not swept"
    );
}

#[tokio::test]
async fn no_daily_listing_starts_while_the_first_one_runs() {
    let fake = FakeStorage::with(many(50));
    fake.st.lock().unwrap().page_delay = Duration::from_millis(200);
    let cfg = RefreshConfig {
        page_size: 10,
        full_refresh: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let r = Arc::new(refresher(&fake, cfg));
    assert!(r.is_cold().unwrap());
    let first = tokio::spawn({
        let r = r.clone();
        async move { r.refresh().await }
    });
    // A page in: the scope has a cursor already, but no finished full listing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished());
    assert!(r.index().cursor("app").unwrap().is_some());
    assert!(
        r.first_listing_under_way(),
        "readers must not take it for a poll"
    );
    assert!(r.full_listing_if_due().await.unwrap().is_none());
    assert!(first.await.unwrap().unwrap().full_listing);
    assert!(!r.first_listing_under_way());
    assert!(!r.is_cold().unwrap());
    assert!(!r.full_listing_due_now().unwrap());
    let asked = fake.requests().len();
    assert_eq!(
        asked, 6,
        "one listing of 50 in pages of 10 (and the empty end)"
    );
}

#[tokio::test]
async fn an_instance_that_moves_pages_during_a_listing_is_neither_lost_nor_doubled() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(
        (0..9)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    // The baseline took requests 0..=3. During the next full listing, instance 1 (already
    // served on its first page, request 4) changes and moves
    // to the end; instance 7 (not served yet) changes too.
    fake.st.lock().unwrap().after_page = Some(Box::new(|all, n| {
        if n == 4 {
            for k in [1u64, 7] {
                let i = all.get_mut(&crate::fs::index::tests::guid(k)).unwrap();
                i.process = Some(ProcessState {
                    current_task: Some(ProcessElementInfo {
                        element_id: Some("Task_2".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                touch(i, 5_000 + k as i64, 0);
            }
        }
    }));
    let c = r.full_listing().await.unwrap();
    let changed: Vec<String> = c
        .events
        .iter()
        .map(|e| {
            assert_eq!(e.event, EventKind::InstanceChanged);
            e.instance.clone()
        })
        .collect();
    assert_eq!(changed, vec![g(1), g(7)], "each once");
    assert_eq!(r.index().counts().unwrap().instances, 9, "nothing swept");
    assert_eq!(r.index().cursor("app").unwrap(), Some(ts(5_007, 0)));
}

#[tokio::test]
async fn own_writes_are_reported_once_not_again_by_the_poll() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 1)]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    // The tree uploads a file: the App API answers with 7 fractional digits.
    let mut mine = fake.get(&g(1));
    let mut el = element("mine", "vedlegg", "rapport.pdf", 2_000);
    el.last_changed = Some(chrono::DateTime::from_timestamp(2_000, 123_456_700).unwrap());
    mine.data.push(el.clone());
    let c = r.ingest(std::slice::from_ref(&mine)).unwrap();
    assert_eq!(
        kinds(&c),
        vec![(
            EventKind::ElementCreated,
            format!("500/{}/vedlegg/rapport.pdf", g(1))
        )]
    );
    // Storage stored it rounded to 6 digits and bumped the instance.
    let mut server = mine.clone();
    server.data[1].last_changed = Some(ts(2_000, 123_457));
    touch(&mut server, 2_000, 123_457);
    fake.put(server);
    let c = r.refresh().await.unwrap();
    assert!(c.events.is_empty(), "{:?}", kinds(&c));
    assert_eq!(r.index().last_seq().unwrap(), 1);
    // Our own delete: once.
    let c = r.ingest_deleted("500", &g(1)).unwrap();
    assert_eq!(c.events.len(), 1);
    assert!(r.ingest_deleted("500", &g(1)).unwrap().events.is_empty());
}

#[tokio::test]
async fn a_confirmation_by_this_mount_lists_it_as_done() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    let mut i = fake.get(&g(1));
    i.complete_confirmations.push(CompleteConfirmation {
        stakeholder_id: "ttd".into(),
        confirmed_on: Some(ts(1_500, 0)),
    });
    touch(&mut i, 1_500, 0);
    let c = r.record_confirmed(&i).unwrap();
    assert_eq!(c.events[0].event, EventKind::InstanceConfirmed);
    assert!(r.index().read(|db| db.is_done(&g(1))).unwrap());
    fake.put(i);
    assert!(r.refresh().await.unwrap().events.is_empty());
}

#[tokio::test]
async fn a_failed_page_keeps_what_was_applied_and_the_next_poll_goes_on() {
    let fake = FakeStorage::with(
        (0..3)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    for n in 10..17u64 {
        fake.put(instance("500", n, 2_000 + n as i64, 0));
    }
    let done = fake.requests().len();
    fake.st.lock().unwrap().fail = vec![done + 1];
    let first = r.refresh().await.unwrap();
    assert!(first.incomplete.is_some());
    // The first page: instances 1 and 2 again (the overlap) and instance 10.
    assert_eq!(first.events.len(), 1);
    let rest = r.refresh().await.unwrap();
    assert!(rest.incomplete.is_none());
    let mut created: Vec<String> = first
        .events
        .iter()
        .chain(&rest.events)
        .map(|e| e.instance.clone())
        .collect();
    assert_eq!(created.len(), 7, "each of the seven once");
    created.dedup();
    assert_eq!(created.len(), 7);
    // A first page that fails is an error, and changes nothing.
    let n = fake.requests().len();
    fake.st.lock().unwrap().fail = vec![n];
    assert!(matches!(r.refresh().await, Err(RefreshError::Server(_))));
}

#[tokio::test]
async fn a_listing_asks_each_page_once_and_nothing_past_the_last() {
    let fake = FakeStorage::with(
        (0..10)
            .map(|n| instance("500", n, 1_000 + n as i64, 1))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    let c = r.refresh().await.unwrap();
    let asked = fake.requests();
    assert_eq!((c.queries, asked.len()), (4, 4), "ceil(10 / 3) pages");
    let nexts: HashSet<_> = asked.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(nexts.len(), 4, "each page once");
    assert_eq!(r.index().counts().unwrap().instances, 10);
    assert_eq!(r.index().cursor("app").unwrap(), Some(ts(1_009, 123_456)));
}

#[tokio::test]
async fn a_failed_page_after_the_first_stops_the_listing_where_it_failed() {
    let fake = FakeStorage::with(
        (0..10)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    fake.st.lock().unwrap().fail = vec![2];
    let r = refresher(&fake, small_pages());
    let c = r.refresh().await.unwrap();
    assert!(c.incomplete.is_some());
    assert_eq!(c.queries, 2);
    assert_eq!(
        fake.requests().len(),
        3,
        "nothing asked after the failed page"
    );
    assert_eq!(
        r.index().counts().unwrap().instances,
        6,
        "the pages before it are kept"
    );
}

#[tokio::test]
async fn a_looping_next_stops_and_a_cut_full_listing_sweeps_nothing() {
    let fake = FakeStorage::with(
        (0..6)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    fake.remove(&crate::fs::index::tests::guid(0));
    fake.st.lock().unwrap().looping_next = true;
    let c = tokio::time::timeout(Duration::from_secs(10), r.full_listing())
        .await
        .expect("no hang")
        .unwrap();
    assert!(c.incomplete.unwrap().contains("repeats"));
    assert_eq!(r.index().counts().unwrap().instances, 6, "not swept");
}

#[tokio::test]
async fn user_tokens_poll_one_cursor_per_party() {
    let fake = FakeStorage::with(vec![
        instance("500", 1, 1_000, 0),
        instance("600", 2, 2_000, 0),
    ]);
    let cfg = RefreshConfig {
        parties: vec!["500".into(), "600".into()],
        query: vec![
            ("instanceOwner.partyId".into(), "1".into()),
            ("order".into(), "desc:created".into()),
        ],
        ..Default::default()
    };
    let r = refresher(&fake, cfg);
    r.refresh().await.unwrap();
    assert_eq!(
        r.index().cursor("party:500").unwrap(),
        Some(ts(1_000, 123_456))
    );
    assert_eq!(
        r.index().cursor("party:600").unwrap(),
        Some(ts(2_000, 123_456))
    );
    for (p, _) in fake.requests() {
        assert_eq!(param(&p, "instanceOwner.partyId").len(), 1);
        assert_eq!(param(&p, "order"), vec!["asc:lastChanged"]);
    }
    fake.remove(&crate::fs::index::tests::guid(2));
    r.full_listing().await.unwrap();
    assert_eq!(r.index().counts().unwrap().instances, 1);
}

#[tokio::test]
async fn refresh_if_stale_asks_once_within_max_age() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = refresher(&fake, RefreshConfig::default());
    assert!(r
        .refresh_if_stale(Duration::from_secs(60))
        .await
        .unwrap()
        .is_some());
    assert!(r
        .refresh_if_stale(Duration::from_secs(60))
        .await
        .unwrap()
        .is_none());
    assert_eq!(fake.requests().len(), 1);
    assert!(r.refresh_if_stale(Duration::ZERO).await.unwrap().is_some());
}

/// A warm refresher over `many(n)` whose daily full listing is due, pages of 10 taking
/// `delay` each from now on, and instance 7 deleted for good.
async fn due_for_a_daily_listing(
    n: u64,
    delay: Duration,
) -> (Arc<FakeStorage>, Arc<Refresher<FakeStorage>>) {
    let fake = FakeStorage::with(many(n));
    let cfg = RefreshConfig {
        page_size: 10,
        full_refresh: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let r = Arc::new(refresher(&fake, cfg));
    r.refresh().await.unwrap();
    r.index()
        .write(|db| db.meta_set("full:app", "2000-01-01T00:00:00Z"))
        .unwrap();
    fake.remove(&crate::fs::index::tests::guid(7));
    fake.st.lock().unwrap().page_delay = delay;
    (fake, r)
}

#[tokio::test]
async fn the_poller_runs_the_daily_listing_beside_its_polls() {
    let g = crate::fs::index::tests::guid;
    let (fake, r) = due_for_a_daily_listing(100, Duration::from_millis(100)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t0 = Instant::now();
    let _poller = spawn_poller(r.clone(), Some(Duration::from_millis(100)), move |c| {
        let _ = tx.send(c);
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    fake.put(instance("500", 500, 9_000, 0));
    let mut polled_at = None;
    let full = loop {
        let c = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if c.full_listing {
            break c;
        }
        if c.instances.contains(&("500".into(), g(500))) {
            polled_at = Some(t0.elapsed());
        }
    };
    let listed_at = t0.elapsed();
    let polled_at = polled_at.expect("a poll brought the new instance before the listing ended");
    assert!(polled_at < listed_at, "{polled_at:?} vs {listed_at:?}");
    assert!(
        listed_at >= Duration::from_millis(1000),
        "11 pages of 100 ms"
    );
    assert!(
        full.instances.contains(&("500".into(), g(7))),
        "the hard delete"
    );
}

#[tokio::test]
async fn with_polls_off_the_poller_only_lists_cold_indexes_and_daily() {
    let (fake, r) = due_for_a_daily_listing(30, Duration::ZERO).await;
    fake.clear_requests();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _poller = spawn_poller(r.clone(), None, move |c| {
        let _ = tx.send(c);
    });
    let c = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(c.full_listing, "the daily listing, in the background");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = fake.requests();
    assert_eq!(
        asked.len(),
        3,
        "29 instances in pages of 10, and no poll: {asked:?}"
    );
    assert!(asked
        .iter()
        .all(|(p, _)| param(p, "lastChanged").is_empty()));
}

fn in_slices(k: usize) -> RefreshConfig {
    RefreshConfig {
        page_size: 10,
        list_parallel: k,
        full_refresh: Some(Duration::from_secs(3600)),
        ..Default::default()
    }
}

/// Instances 1..=n of party 500, every tenth changed at `tenth(k)` seconds and the others
/// at `rest(k)`.
fn spread(n: u64, tenth: impl Fn(i64) -> i64, rest: impl Fn(i64) -> i64) -> Vec<Instance> {
    (1..=n)
        .map(|k| {
            let at = if k % 10 == 0 {
                tenth(k as i64)
            } else {
                rest(k as i64)
            };
            instance("500", k, at, 0)
        })
        .collect()
}

/// Most instances early and close together, a few spread late (an app that ran for years).
fn uneven(n: u64) -> Vec<Instance> {
    spread(n, |k| 100_000 + k * 500, |k| 1_000 + k)
}

#[tokio::test]
async fn a_listing_in_slices_lists_every_instance_once_side_by_side() {
    for instances in [many(1), many(10), many(95), many(400), uneven(400)] {
        let n = instances.len();
        let fake = FakeStorage::with(instances.clone());
        fake.st.lock().unwrap().page_delay = Duration::from_millis(5);
        let r = refresher(&fake, in_slices(4));
        let c = r.refresh().await.unwrap();
        assert!(c.full_listing && c.incomplete.is_none(), "{n}: {c:?}");
        assert_eq!(r.index().counts().unwrap().instances as usize, n);
        // Once each, but for a page or two where a slice ends: the first goes on past its
        // end (a `next` link cannot be narrowed), and so may one whose end was lowered when
        // it handed its rest over; the part past the end is left out.
        let mut served = fake.st.lock().unwrap().served.clone();
        served.sort();
        let twice = served.windows(2).filter(|w| w[0] == w[1]).count();
        assert!(
            twice <= 20,
            "{n}: {twice} served twice: {:?}",
            fake.requests()
        );
        served.dedup();
        assert_eq!(served.len(), n, "{n}: each instance served");
        let newest = instances.iter().filter_map(|i| i.last_changed).max();
        assert_eq!(r.index().cursor("app").unwrap(), newest, "{n}");
        assert!(!r.is_cold().unwrap() && !r.full_listing_due_now().unwrap());
        // Pages, the newest asked for once, and at most a short last page per slice (4 per
        // worker at most, with the ones split off).
        let asked = fake.requests().len();
        assert!(
            asked <= n.div_ceil(10) + 2 + 16,
            "{n} instances: {asked} queries"
        );
        if n > 100 {
            assert!(
                fake.st.lock().unwrap().max_in_flight >= 2,
                "{n}: side by side"
            );
        }
    }
}

/// A few instances spread over years, and nine in ten in the last hour of them (a deadline).
fn bunched(n: u64) -> Vec<Instance> {
    spread(n, |k| 1_000 + k * 100_000, |k| 50_000_000 + k)
}

/// Equal spans of time would put nine in ten instances of a bunched app into the last slice;
/// slices that end early take over halves of the busy one's rest, so the listing takes about
/// a quarter of its pages' time, and still lists each instance once.
#[tokio::test]
async fn a_listing_in_slices_shares_out_instances_that_bunch_up_in_time() {
    let delay = Duration::from_millis(25);
    let fake = FakeStorage::with(bunched(400));
    fake.st.lock().unwrap().page_delay = delay;
    let r = refresher(&fake, in_slices(4));
    let t0 = Instant::now();
    let c = r.refresh().await.unwrap();
    let took = t0.elapsed();
    assert!(c.full_listing && c.incomplete.is_none(), "{c:?}");
    assert_eq!(r.index().counts().unwrap().instances, 400);
    let mut served = fake.st.lock().unwrap().served.clone();
    served.sort();
    served.dedup();
    assert_eq!(served.len(), 400, "each instance served");
    // The 4 slices of the plan, and more that split the busy one (starting in its hour).
    let dense = ts(50_000_000, 0);
    let starts: Vec<Timestamp> = fake
        .requests()
        .iter()
        .filter(|(p, next)| next.is_none() && param(p, "order") == ["asc:lastChanged"])
        .filter_map(|(p, _)| param(p, "lastChanged").first().map(|v| v.to_string()))
        .filter_map(|v| v.strip_prefix("gt:").and_then(|t| t.parse().ok()))
        .collect();
    assert!(starts.len() > 3, "slices were split: {starts:?}");
    let in_the_hour = starts[3..].iter().filter(|t| **t > dense).count();
    assert!(in_the_hour >= 3, "the busy slice was split: {starts:?}");
    assert!(starts.len() <= 16, "at most 4 slices per worker");
    let asked = fake.requests().len();
    assert!(asked <= 40 + 2 + 16, "{asked} queries");
    // 36 of the 40 pages would be in the last of 4 equal slices, one after another (1.1 s
    // without the splits; 0.4 s with them).
    assert!(
        took < delay * 30,
        "{took:?} for 40 pages of {delay:?} in 4 workers"
    );
}

#[tokio::test]
async fn a_listing_in_slices_whose_first_page_is_empty_goes_on_in_one() {
    let fake = FakeStorage::with(many(50));
    fake.st.lock().unwrap().empty_first_page = true;
    let r = refresher(&fake, in_slices(4));
    let c = r.refresh().await.unwrap();
    assert!(c.full_listing && c.incomplete.is_none(), "{c:?}");
    assert_eq!(r.index().counts().unwrap().instances, 50);
    assert!(!r.full_listing_due_now().unwrap());
}

#[tokio::test]
async fn a_cut_listing_in_slices_leaves_a_cursor_the_next_poll_goes_on_from() {
    let g = crate::fs::index::tests::guid;
    for fail in [2, 5, 9] {
        let fake = FakeStorage::with(uneven(400));
        fake.st.lock().unwrap().fail = vec![fail];
        let r = refresher(&fake, in_slices(4));
        let c = r.refresh().await.unwrap();
        assert!(c.incomplete.is_some(), "request {fail} failed: {c:?}");
        let missing = (1..=400)
            .filter(|k| r.index().get_instance(&g(*k)).unwrap().is_none())
            .count();
        assert!(missing > 0, "request {fail}");
        assert!(!r.is_cold().unwrap(), "a cursor to go on from");
        // The next poll (from the cursor, less the overlap) brings every missing one.
        r.refresh().await.unwrap();
        assert_eq!(r.index().counts().unwrap().instances, 400, "request {fail}");
        assert!(r.full_listing_due_now().unwrap(), "the listing never ended");
    }
}

#[tokio::test]
async fn a_daily_listing_in_slices_finds_hard_deletes_and_polls_before_its_sweep() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(uneven(300));
    let r = refresher(&fake, in_slices(4));
    r.refresh().await.unwrap();
    r.index()
        .write(|db| db.meta_set("full:app", "2000-01-01T00:00:00Z"))
        .unwrap();
    fake.remove(&g(7));
    fake.clear_requests();
    let c = r.full_listing_if_due().await.unwrap().unwrap();
    assert!(c.full_listing && c.incomplete.is_none());
    assert!(
        c.instances.contains(&("500".into(), g(7))),
        "the hard delete"
    );
    assert_eq!(r.index().counts().unwrap().instances, 299);
    let asked = fake.requests();
    let (last, _) = asked.last().unwrap();
    let dates = param(last, "lastChanged");
    assert!(
        dates.len() == 1 && dates[0].starts_with("gt:"),
        "a cursor poll came last: {last:?}"
    );
}

#[tokio::test]
async fn a_party_storage_will_not_list_does_not_keep_the_index_cold() {
    let fake = FakeStorage::with(vec![
        instance("500", 1, 1_000, 0),
        instance("501", 2, 1_000, 0),
    ]);
    fake.st.lock().unwrap().forbidden_party = Some("501".into());
    let cfg = RefreshConfig {
        parties: vec!["500".into(), "501".into()],
        ..Default::default()
    };
    let r = refresher(&fake, cfg);
    assert!(r.is_cold().unwrap());
    r.refresh().await.unwrap();
    assert!(!r.is_cold().unwrap(), "party 501 cannot be listed, 500 was");
    assert_eq!(r.index().counts().unwrap().instances, 1);
    r.index()
        .write(|db| db.meta_set("full:party:500", "2000-01-01T00:00:00Z"))
        .unwrap();
    let c = r
        .full_listing_if_due()
        .await
        .unwrap()
        .expect("party 500 was due");
    assert!(c.full_listing);
}

#[tokio::test]
async fn the_poller_reports_changes_within_an_interval_and_stops_when_dropped() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = Arc::new(refresher(&fake, RefreshConfig::default()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let poller = spawn_poller(r.clone(), Some(Duration::from_millis(50)), move |c| {
        let _ = tx.send(c);
    });
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(first.full_listing);
    fake.put(instance("500", 2, 3_000, 0));
    let c = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.events[0].event, EventKind::InstanceCreated);
    drop(poller);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = fake.requests().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.requests().len(), n, "stopped");
}

#[tokio::test]
async fn a_refresh_made_meanwhile_counts_as_the_pollers_next_one() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = Arc::new(refresher(&fake, RefreshConfig::default()));
    let interval = Duration::from_millis(1000);
    let poller = spawn_poller(r.clone(), Some(interval), |_| {});
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.requests().len(), 1, "the first poll is at once");
    // A listing refreshes 600 ms into the interval (its metadata_ttl ran out): the poller's
    // next poll is then due 1 s after that one, not at 1 s.
    tokio::time::sleep(Duration::from_millis(400)).await;
    r.refresh_if_stale(Duration::ZERO).await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        fake.requests().len(),
        2,
        "no second poll in the same interval"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(fake.requests().len(), 3, "the poller's next poll came");
    drop(poller);
}

/// The cold mount's first listing is long (a party of 100,000 instances): the poller, due
/// many times meanwhile, waits for it instead of polling beside it, and polls once an
/// interval after it ends. A change made while the listing ran but after its page was read
/// is not lost: the cursor stays at the newest time the listing saw, so that poll brings it.
#[tokio::test]
async fn no_poll_runs_during_a_long_listing_and_the_next_poll_brings_what_changed_meanwhile() {
    let fake = FakeStorage::with(
        (0..12)
            .map(|n| instance("500", n, 1_000 + n as i64, 0))
            .collect(),
    );
    // Pages of 3: 0..3, 3..6 (then the change), 6..9, 9..12, then instances 1 and 40.
    let pages = 5;
    {
        let mut st = fake.st.lock().unwrap();
        st.page_delay = Duration::from_millis(60);
        // Page 1 read instances 0..3: instance 1 changes, a new one is created, both
        // newer than anything yet listed (so after the listing's last page, or on it).
        st.after_page = Some(Box::new(|all, n| {
            if n == 1 {
                let mut i = all[&instance("500", 1, 0, 0).guid().to_string()].clone();
                touch(&mut i, 9_000, 0);
                all.insert(i.guid().to_string(), i);
                let new = instance("500", 40, 9_001, 0);
                all.insert(new.guid().to_string(), new);
            }
        }));
    }
    let r = Arc::new(refresher(&fake, small_pages()));
    let interval = Duration::from_millis(50);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    // The first readdir lists while the poller starts (as a cold mount does).
    let listing = tokio::spawn({
        let r = r.clone();
        async move { r.refresh().await.unwrap() }
    });
    let poller = spawn_poller(r.clone(), Some(interval), move |c| {
        let _ = tx.send(c);
    });
    let listed = listing.await.unwrap();
    let listing_took = started.elapsed();
    assert!(listed.full_listing);
    assert!(listing_took > 4 * interval, "the listing spans intervals");
    let during = fake.requests();
    assert!(
        during
            .iter()
            .all(|(p, _)| param(p, "lastChanged").is_empty()),
        "no cursor poll while the listing ran: {during:?}"
    );
    // The listing picked up the change made after page 1 on its later pages (it is newer
    // than everything listed so far). A change after its last page: the poll brings it.
    assert_eq!(during.len(), pages, "{during:?}");
    let listing_done = Instant::now();
    fake.put(instance("500", 41, 9_002, 0));
    let polled = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        listing_done.elapsed() >= interval / 2,
        "no poll right after the listing: it was the first refresh"
    );
    let after = fake.requests();
    assert!(!param(&after[during.len()].0, "lastChanged").is_empty());
    // From the cursor minus the overlap: instances 1, 40 (known) and 41, a full page of 3.
    assert_eq!(polled.queries, 2);
    assert_eq!(
        kinds(&polled)
            .iter()
            .filter(|(k, _)| *k == EventKind::InstanceCreated)
            .count(),
        1,
        "{:?}",
        kinds(&polled)
    );
    let ix = r.index();
    assert_eq!(ix.counts().unwrap().instances, 14);
    let changed = ix.get_instance(instance("500", 1, 0, 0).guid());
    assert_eq!(changed.unwrap().unwrap().last_changed, Some(ts(9_000, 0)));
    assert_eq!(ix.cursor("app").unwrap(), Some(ts(9_002, 123_456)));
    drop(poller);
}

/// A warm mount's first `ls` may refresh before the poller starts (or while it starts):
/// that refresh is the poller's first one, so the remount asks once, not twice.
#[tokio::test]
async fn a_refresh_running_as_the_poller_starts_is_its_first_poll() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    fake.st.lock().unwrap().page_delay = Duration::from_millis(40);
    let earlier = refresher(&fake, RefreshConfig::default());
    earlier.refresh().await.unwrap(); // the cold listing, by an earlier mount
    fake.clear_requests();
    let (ix, cfg) = (earlier.index().clone(), RefreshConfig::default());
    let r = Arc::new(Refresher::new(fake.clone(), ix, meta(), cfg));
    let first_ls = tokio::spawn({
        let r = r.clone();
        async move { r.refresh_if_stale(Duration::from_secs(30)).await.unwrap() }
    });
    tokio::task::yield_now().await; // the listing holds the refresh when the poller starts
    let poller = spawn_poller(r.clone(), Some(Duration::from_millis(400)), |_| {});
    assert!(first_ls.await.unwrap().is_some(), "the ls polled");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(fake.requests().len(), 1, "{:?}", fake.requests());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.requests().len(),
        2,
        "the next poll is an interval later"
    );
    drop(poller);
}

/// The same when that `ls` finished before the poller started: it was the mount's poll.
#[tokio::test]
async fn a_refresh_made_before_the_poller_started_is_its_first_poll() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = Arc::new(refresher(&fake, RefreshConfig::default()));
    r.refresh().await.unwrap();
    let poller = spawn_poller(r.clone(), Some(Duration::from_millis(300)), |_| {});
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.requests().len(), 1, "{:?}", fake.requests());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        fake.requests().len(),
        2,
        "the next poll is an interval later"
    );
    drop(poller);
}

#[tokio::test]
async fn hostile_ids_are_not_indexed() {
    let mut bad = instance("500", 1, 1_000, 0);
    bad.id = "500/..".into();
    let mut slash = instance("5/00", 2, 1_000, 0);
    slash.id = "5/00/x".into();
    let fake = FakeStorage::with(vec![bad, instance("500", 3, 1_000, 0)]);
    fake.st.lock().unwrap().instances.insert("x".into(), slash);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    assert_eq!(r.index().counts().unwrap().instances, 1);
}

#[tokio::test]
async fn an_instance_first_seen_already_deleted_is_not_reported_as_created() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    let mut gone = instance("500", 2, 2_000, 1);
    gone.status.is_soft_deleted = true;
    fake.put(gone);
    fake.put(instance("500", 3, 2_001, 0));
    let c = r.refresh().await.unwrap();
    assert_eq!(
        c.events.iter().map(|e| e.event).collect::<Vec<_>>(),
        vec![EventKind::InstanceCreated]
    );
    assert_eq!(c.events[0].instance, crate::fs::index::tests::guid(3));
}

#[tokio::test]
async fn two_mounts_sharing_one_index_file_report_each_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let fake = FakeStorage::with(
        (0..50)
            .map(|n| instance("500", n, 1_000 + n as i64, 1))
            .collect(),
    );
    let open = || {
        let ix = Arc::new(MetaIndex::open(&path).unwrap());
        Arc::new(Refresher::new(fake.clone(), ix, meta(), small_pages()))
    };
    let (a, b) = (open(), open());
    a.refresh().await.unwrap();
    for n in 100..160u64 {
        fake.put(instance("500", n, 3_000 + n as i64, 1));
    }
    // Both poll at once, on two threads, through two connections to one file.
    let (ra, rb) = (a.clone(), b.clone());
    let ta = tokio::task::spawn_blocking(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(ra.refresh())
    });
    let tb = tokio::task::spawn_blocking(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(rb.refresh())
    });
    let (ca, cb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
    assert_eq!(
        ca.events.len() + cb.events.len(),
        120,
        "60 instances and 60 elements, once"
    );
    let all = a.index().feed_since(0, 1000).unwrap();
    let mut created: Vec<&str> = all
        .iter()
        .filter(|e| e.event == EventKind::InstanceCreated)
        .map(|e| e.instance.as_str())
        .collect();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 60);
    assert_eq!(all.len(), 120);
    assert_eq!(b.index().counts().unwrap().instances, 110);
}

#[tokio::test]
async fn an_instance_that_leaves_the_mounts_filters_leaves_the_index() {
    let fake = FakeStorage::with(vec![
        instance("500", 1, 1_000, 0),
        instance("500", 2, 1_000, 0),
    ]);
    let cfg = RefreshConfig {
        query: vec![("excludeConfirmedBy".into(), "ttd".into())],
        ..Default::default()
    };
    let r = refresher(&fake, cfg);
    r.refresh().await.unwrap();
    assert_eq!(r.index().counts().unwrap().instances, 2);
    let g = crate::fs::index::tests::guid;
    let mut b = fake.get(&g(2));
    b.complete_confirmations.push(CompleteConfirmation {
        stakeholder_id: "ttd".into(),
        confirmed_on: Some(ts(1_101, 0)),
    });
    touch(&mut b, 1_101, 0);
    fake.put(b);
    let c = r.refresh().await.unwrap();
    assert_eq!(
        c.queries, 2,
        "the filtered poll, then what changed without the filters"
    );
    assert_eq!(kinds(&c).len(), 1);
    assert_eq!(c.events[0].event, EventKind::InstanceConfirmed);
    assert!(c.instances.contains(&("500".into(), g(2))));
    assert!(r.index().get_instance(&g(2)).unwrap().is_none(), "dropped");
    assert!(r.index().get_instance(&g(1)).unwrap().is_some(), "kept");
    // Nothing changed: one filtered query and one unfiltered, no events.
    let c = r.refresh().await.unwrap();
    assert!(c.events.is_empty());
    assert_eq!(r.index().counts().unwrap().instances, 1);
}

#[tokio::test]
async fn an_own_upload_is_ingested_as_one_element_reported_once_and_not_again_by_the_poll() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 2)]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    // The tree uploads a file: the App API answers with 7 fractional digits.
    let mut mine = fake.get(&g(1));
    let mut el = element("mine", "vedlegg", "f0.pdf", 2_000);
    el.last_changed = Some(chrono::DateTime::from_timestamp(2_000, 123_456_700).unwrap());
    mine.data.push(el.clone());
    mine.last_changed = el.last_changed;
    let c = r.ingest_element(&mine, &el).unwrap();
    // Named as a full ingest names it: a second "f0.pdf" of the type gets the id suffix.
    let full = diff::events(Some(&fake.get(&g(1))), &mine, &meta());
    assert_eq!(
        kinds(&c),
        vec![(EventKind::ElementCreated, full[0].path.clone())]
    );
    assert_eq!(full.len(), 1);
    assert_eq!(r.index().get_instance(&g(1)).unwrap().unwrap(), mine);
    // The same answer again (a retried close): nothing new.
    assert!(r.ingest_element(&mine, &el).unwrap().events.is_empty());
    // Replaced: element.changed.
    el.size = 99;
    el.last_changed = Some(ts(2_001, 0));
    *mine.data.last_mut().unwrap() = el.clone();
    mine.last_changed = el.last_changed;
    let c = r.ingest_element(&mine, &el).unwrap();
    assert_eq!(c.events[0].event, EventKind::ElementChanged);
    // Storage stored it rounded to 6 digits and bumped the instance: the poll is quiet.
    fake.put(mine.clone());
    let c = r.refresh().await.unwrap();
    assert!(c.events.is_empty(), "{:?}", kinds(&c));
    assert_eq!(r.index().last_seq().unwrap(), 2);
    // Our own delete of it: once, under the name it had.
    let c = r.ingest_element_removed(&mine, "mine").unwrap();
    assert_eq!(
        kinds(&c),
        vec![(EventKind::ElementDeleted, full[0].path.clone())]
    );
    assert!(r
        .ingest_element_removed(&mine, "mine")
        .unwrap()
        .events
        .is_empty());
    mine.data.pop();
    assert_eq!(r.index().get_instance(&g(1)).unwrap().unwrap(), mine);
    fake.put(mine);
    assert!(r.refresh().await.unwrap().events.is_empty());
}

#[tokio::test]
async fn an_upload_into_an_instance_the_index_lacks_stores_the_whole_instance() {
    let g = crate::fs::index::tests::guid;
    let fake = FakeStorage::with(vec![]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    let mut mine = instance("500", 1, 1_000, 1);
    let el = element("mine", "vedlegg", "new.pdf", 2_000);
    mine.data.push(el.clone());
    let c = r.ingest_element(&mine, &el).unwrap();
    assert_eq!(c.events[0].event, EventKind::InstanceCreated);
    assert_eq!(c.events.len(), 3, "{:?}", kinds(&c));
    assert_eq!(r.index().get_instance(&g(1)).unwrap().unwrap(), mine);
}

/// Issue 12 "clock skew": a server whose clock runs ahead of ours (its times in 2100). The
/// cursor and the poll's `lastChanged=gt:` are the server's times minus the overlap, never
/// held back to the local clock, and a later change is seen once.
#[tokio::test]
async fn a_server_clock_ahead_of_ours_is_used_as_it_is() {
    const Y2100: i64 = 4_102_444_800;
    let fake = FakeStorage::with(
        (0..4)
            .map(|n| instance("500", n, Y2100 + n as i64, 0))
            .collect(),
    );
    let r = refresher(&fake, small_pages());
    r.refresh().await.unwrap();
    assert_eq!(
        r.index().cursor("app").unwrap(),
        Some(ts(Y2100 + 3, 123_456))
    );
    fake.clear_requests();
    fake.put(instance("500", 9, Y2100 + 10, 0));
    let c = r.refresh().await.unwrap();
    assert_eq!(
        param(&fake.requests()[0].0, "lastChanged"),
        vec!["gt:2100-01-01T00:00:01.123456Z"],
        "cursor 2100-01-01T00:00:03.123456 minus 2 s"
    );
    assert_eq!(
        kinds(&c),
        vec![(
            EventKind::InstanceCreated,
            format!("500/{}", crate::fs::index::tests::guid(9))
        )]
    );
    assert_eq!(
        r.index().cursor("app").unwrap(),
        Some(ts(Y2100 + 10, 123_456))
    );
}

/// Issue 12 "nothing the server sends can make the index grow without bound": however many
/// changes the polls bring, the refresher prunes the feed to `feed_max_rows` after each
/// refresh, and a pruned seq is never handed out again.
#[tokio::test]
async fn the_refresher_keeps_the_feed_within_feed_max_rows() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let cfg = RefreshConfig {
        feed_max_rows: 5,
        ..small_pages()
    };
    let r = refresher(&fake, cfg);
    r.refresh().await.unwrap();
    for round in 0..2u64 {
        for n in 0..20u64 {
            let k = 100 + round * 100 + n;
            fake.put(instance("500", k, 2_000 + k as i64, 1));
        }
        let c = r.refresh().await.unwrap();
        assert_eq!(c.events.len(), 40, "20 instances and their elements");
        let kept = r.index().feed_since(0, 1_000).unwrap();
        assert_eq!(kept.len(), 5, "round {round}: {} rows kept", kept.len());
        let last = r.index().last_seq().unwrap();
        assert_eq!(last, 40 * (round + 1));
        assert_eq!(kept.last().unwrap().seq, last, "the newest rows are kept");
    }
}

/// Issue 12 "cap ... the name lengths": a server sending a 100 KB element id or data type
/// must not put them as they are into every feed row about them (the feed keeps up to
/// `feed_max_rows` rows); only `path` is capped today (`MAX_PATH`).
/// Such elements are left out (no Altinn id or data type is that long), and a 1 MB file
/// name is cut.
#[tokio::test]
async fn hostile_long_element_ids_and_types_are_capped_in_the_feed() {
    let fake = FakeStorage::with(vec![instance("500", 1, 1_000, 0)]);
    let r = refresher(&fake, RefreshConfig::default());
    r.refresh().await.unwrap();
    let mut i = instance("500", 2, 2_000, 0);
    let long_id = "e".repeat(100_000);
    i.data
        .push(element(&long_id, "vedlegg", &"n".repeat(1_000_000), 2_000));
    i.data
        .push(element("short", &"t".repeat(100_000), "x.pdf", 2_000));
    fake.put(i);
    r.refresh().await.unwrap();
    // `MAX_PATH` (1024) of fs/index/feed.rs, private to the index.
    let max = 1024;
    for e in r.index().feed_since(0, 100).unwrap() {
        let element = e.element.as_deref().unwrap_or_default().len();
        let data_type = e.data_type.as_deref().unwrap_or_default().len();
        assert!(e.path.len() <= max, "path {}", e.path.len());
        assert!(element <= max, "element {element} bytes");
        assert!(data_type <= max, "dataType {data_type} bytes");
    }
    let g = crate::fs::index::tests::guid;
    let stored = r
        .index()
        .get_instance(&g(2))
        .unwrap()
        .expect("instance 2 kept");
    assert!(
        stored
            .data
            .iter()
            .all(|e| e.id.len() <= 100 && e.data_type.len() <= 255),
        "unusable ids and data types are left out"
    );
    let names: Vec<usize> = stored
        .data
        .iter()
        .filter_map(|e| e.filename.as_ref())
        .map(String::len)
        .collect();
    assert!(names.iter().all(|&n| n <= max), "file names cut: {names:?}");
}
