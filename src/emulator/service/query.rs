//! Storage's instance query (altinn-api.md §3.1) without HTTP: the parameters parsed into a
//! [`QuerySpec`], the filters as pure predicates over an instance's [`Facts`], and one page cut
//! by `(lastChanged ticks, guid)` so that a continuation token stays stable under either order.
//!
//! Storage's rules relied on here: date parameters are `op:value` with op in gt/gte/lt/lte/eq,
//! repeatable (all must hold); `order` is descending unless it starts with anything but `desc:`;
//! `size` defaults to 100; `next` is only produced when a page came back full; the token is
//! `<ticks>;<id>`; `process.isComplete` means the process has ended; `excludeConfirmedBy` drops
//! instances that stakeholder confirmed; hard-deleted instances are only visible to the owner org.

use super::super::auth::{Principal, SERVICEOWNER_READ};
use crate::altinn::model::{CompleteConfirmation, Instance, Timestamp};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use std::cmp::Ordering;

/// Why a query is refused; the route renders each as Storage does.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryRefusal {
    /// 403: an org token without `altinn:serviceowner/instances.read`.
    MissingScope,
    /// 400: an org token with neither `org` nor `appId`.
    OrgOrAppRequired,
    /// 403 (empty): another org's app, or a party the user may not represent.
    Forbidden,
    /// 400: a user token without `instanceOwner.partyId`.
    PartyRequired,
    /// 400: `instanceOwner.partyId` is not an integer.
    BadParty,
    /// 400: a boolean parameter with another value.
    BadBool { name: String, value: String },
    /// 400 "Invalid date expression".
    BadDate,
    /// 400: `size` is not a positive integer.
    BadSize(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOp {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
}

impl DateOp {
    fn parse(op: &str) -> Option<DateOp> {
        Some(match op {
            "gt" => DateOp::Gt,
            "gte" => DateOp::Gte,
            "lt" => DateOp::Lt,
            "lte" => DateOp::Lte,
            "eq" => DateOp::Eq,
            _ => return None,
        })
    }

    fn holds(self, t: &Timestamp, d: &Timestamp) -> bool {
        match self {
            DateOp::Gt => t > d,
            DateOp::Gte => t >= d,
            DateOp::Lt => t < d,
            DateOp::Lte => t <= d,
            DateOp::Eq => t == d,
        }
    }
}

/// Every condition must hold; an empty filter lets everything through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DateFilter(pub Vec<(DateOp, Timestamp)>);

impl DateFilter {
    /// `["gt:2024-01-01", "lt:2024-02-01"]`; a value without a known op means `eq`.
    pub fn parse(values: &[&str]) -> Result<DateFilter, QueryRefusal> {
        let mut out = Vec::new();
        for v in values {
            let (op, val) = match v
                .split_once(':')
                .and_then(|(op, val)| DateOp::parse(op).map(|op| (op, val)))
            {
                Some(x) => x,
                None => (DateOp::Eq, *v),
            };
            out.push((op, parse_date(val.trim()).ok_or(QueryRefusal::BadDate)?));
        }
        Ok(DateFilter(out))
    }

    pub fn holds(&self, t: Option<&Timestamp>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(t) = t else { return false };
        self.0.iter().all(|(op, d)| op.holds(t, d))
    }
}

pub fn parse_date(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(v) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(v, f) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// .NET ticks (100 ns since 0001-01-01), the first half of Storage's continuation token.
pub fn ticks(t: &Timestamp) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(0) / 100 + 621_355_968_000_000_000
}

/// Where an instance sits in the listing: `(ticks of the order field, guid)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageKey {
    pub ticks: i64,
    pub guid: uuid::Uuid,
}

impl PageKey {
    /// The token as Storage writes it (before its double URL encoding).
    pub fn token(&self) -> String {
        format!("{};{}", self.ticks, self.guid)
    }

    pub fn parse_token(t: &str) -> Option<PageKey> {
        let (a, b) = t.split_once(';')?;
        Some(PageKey {
            ticks: a.trim().parse().ok()?,
            guid: uuid::Uuid::parse_str(b.trim()).ok()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// The order field: `lastChanged` (Storage's) or `created` (accepted, as localtest does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    LastChanged,
    Created,
}

/// `order=desc:lastChanged` (default) or anything else, which Storage treats as ascending.
pub fn parse_order(v: Option<&str>) -> (Direction, OrderBy) {
    let v = v.unwrap_or("desc:lastChanged");
    let dir = if v.starts_with("desc:") {
        Direction::Desc
    } else {
        Direction::Asc
    };
    let by = if v.to_ascii_lowercase().ends_with("created") {
        OrderBy::Created
    } else {
        OrderBy::LastChanged
    };
    (dir, by)
}

/// What the query needs to know about one instance, borrowed (stored instances) or derived
/// without allocation (synthetic ones).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub guid: uuid::Uuid,
    pub app_id: &'a str,
    pub org: &'a str,
    pub party: &'a str,
    pub created: Option<Timestamp>,
    pub last_changed: Option<Timestamp>,
    pub ended: bool,
    pub current_task: Option<&'a str>,
    pub confirmations: &'a [CompleteConfirmation],
    pub is_archived: bool,
    pub is_soft_deleted: bool,
    pub is_hard_deleted: bool,
}

impl<'a> Facts<'a> {
    pub fn of(i: &'a Instance) -> Facts<'a> {
        let process = i.process.as_ref();
        let party = if i.instance_owner.party_id.is_empty() {
            i.id.split('/').next().unwrap_or_default()
        } else {
            i.instance_owner.party_id.as_str()
        };
        Facts {
            guid: uuid::Uuid::parse_str(i.guid()).unwrap_or_default(),
            app_id: &i.app_id,
            org: &i.org,
            party,
            created: i.created,
            last_changed: i.last_changed,
            ended: process.is_some_and(|p| p.ended.is_some()),
            current_task: process
                .and_then(|p| p.current_task.as_ref())
                .and_then(|t| t.element_id.as_deref()),
            confirmations: &i.complete_confirmations,
            is_archived: i.status.is_archived,
            is_soft_deleted: i.status.is_soft_deleted,
            is_hard_deleted: i.status.is_hard_deleted,
        }
    }
}

/// A parsed, authorised query.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySpec {
    pub app_id: Option<String>,
    pub org: Option<String>,
    pub party: Option<String>,
    /// The caller's org: only its apps, and it alone sees hard-deleted instances.
    pub caller_org: Option<String>,
    pub is_complete: Option<bool>,
    pub is_archived: Option<bool>,
    pub is_soft_deleted: Option<bool>,
    pub is_hard_deleted: Option<bool>,
    pub confirmed: Option<bool>,
    pub current_task: Option<String>,
    pub exclude_confirmed_by: Option<String>,
    pub last_changed: DateFilter,
    pub created: DateFilter,
    pub size: usize,
    pub direction: Direction,
    pub order_by: OrderBy,
    pub after: Option<PageKey>,
}

/// Case-insensitive lookups in the decoded query parameters.
pub struct Params<'a>(pub &'a [(String, String)]);

impl<'a> Params<'a> {
    pub fn get(&self, k: &str) -> Option<&'a str> {
        self.all(k).into_iter().next()
    }
    /// The first non-empty value.
    pub fn value(&self, k: &str) -> Option<&'a str> {
        self.get(k).filter(|v| !v.is_empty())
    }
    pub fn all(&self, k: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn bool(&self, k: &str) -> Result<Option<bool>, QueryRefusal> {
        match self.value(k) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(QueryRefusal::BadBool {
                name: k.to_string(),
                value: v.to_string(),
            }),
        }
    }
}

/// The caller checks of Storage's query, in its order.
fn authorise(q: &Params, p: &Principal) -> Result<(), QueryRefusal> {
    match p {
        Principal::Org { org, .. } => {
            if !p.has_scope(SERVICEOWNER_READ) {
                return Err(QueryRefusal::MissingScope);
            }
            let (app_id, org_param) = (q.value("appId"), q.value("org"));
            if app_id.is_none() && org_param.is_none() {
                return Err(QueryRefusal::OrgOrAppRequired);
            }
            let app_org = app_id.map(|a| a.split('/').next().unwrap_or_default());
            if app_org.is_some_and(|o| o != org) || org_param.is_some_and(|o| o != org) {
                return Err(QueryRefusal::Forbidden);
            }
        }
        Principal::User { .. } => {
            let pid = q
                .value("instanceOwner.partyId")
                .ok_or(QueryRefusal::PartyRequired)?;
            if !p.may_access(pid, "") {
                return Err(QueryRefusal::Forbidden);
            }
        }
    }
    if q.value("instanceOwner.partyId")
        .is_some_and(|v| v.parse::<i64>().is_err())
    {
        return Err(QueryRefusal::BadParty);
    }
    Ok(())
}

fn parse_size(v: Option<&str>) -> Result<usize, QueryRefusal> {
    match v {
        None => Ok(100),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n.min(100_000) as usize),
            _ => Err(QueryRefusal::BadSize(v.to_string())),
        },
    }
}

impl QuerySpec {
    pub fn parse(params: &[(String, String)], p: &Principal) -> Result<QuerySpec, QueryRefusal> {
        let q = Params(params);
        authorise(&q, p)?;
        let owned = |k: &str| q.value(k).map(str::to_string);
        let (direction, order_by) = parse_order(q.get("order"));
        Ok(QuerySpec {
            app_id: owned("appId"),
            org: owned("org"),
            party: owned("instanceOwner.partyId"),
            caller_org: p.org().map(str::to_string),
            is_complete: q.bool("process.isComplete")?,
            is_archived: q.bool("status.isArchived")?,
            is_soft_deleted: q.bool("status.isSoftDeleted")?,
            is_hard_deleted: q.bool("status.isHardDeleted")?,
            confirmed: q.bool("confirmed")?,
            current_task: q.get("process.currentTask").map(str::to_string),
            exclude_confirmed_by: owned("excludeConfirmedBy"),
            last_changed: DateFilter::parse(&q.all("lastChanged"))?,
            created: DateFilter::parse(&q.all("created"))?,
            size: parse_size(q.value("size"))?,
            direction,
            order_by,
            after: q
                .value("continuationToken")
                .map(super::super::http::form_decode)
                .and_then(|t| PageKey::parse_token(&t)),
        })
    }

    /// Owner, app and party: which instances this caller may list at all.
    fn in_scope(&self, f: &Facts) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.app_id, f.app_id)
            && eq(&self.org, f.org)
            && eq(&self.caller_org, f.org)
            && eq(&self.party, f.party)
            && (!f.is_hard_deleted || self.caller_org.as_deref() == Some(f.org))
    }

    fn process_ok(&self, f: &Facts) -> bool {
        self.is_complete.is_none_or(|c| c == f.ended)
            && self
                .current_task
                .as_deref()
                .is_none_or(|t| f.current_task == Some(t))
    }

    fn confirmations_ok(&self, f: &Facts) -> bool {
        let by = |who: &str| f.confirmations.iter().any(|c| c.stakeholder_id == who);
        self.exclude_confirmed_by.as_deref().is_none_or(|x| !by(x))
            && self
                .confirmed
                .is_none_or(|c| c != f.confirmations.is_empty())
    }

    fn status_ok(&self, f: &Facts) -> bool {
        self.is_archived.is_none_or(|v| v == f.is_archived)
            && self.is_soft_deleted.is_none_or(|v| v == f.is_soft_deleted)
            && self.is_hard_deleted.is_none_or(|v| v == f.is_hard_deleted)
    }

    /// Does the instance belong in the result (ignoring the page cut)?
    pub fn matches(&self, f: &Facts) -> bool {
        self.in_scope(f)
            && self.process_ok(f)
            && self.confirmations_ok(f)
            && self.status_ok(f)
            && self.last_changed.holds(f.last_changed.as_ref())
            && self.created.holds(f.created.as_ref())
    }

    pub fn key(&self, f: &Facts) -> PageKey {
        let t = match self.order_by {
            OrderBy::LastChanged => f.last_changed,
            OrderBy::Created => f.created,
        };
        PageKey {
            ticks: t.as_ref().map(ticks).unwrap_or(0),
            guid: f.guid,
        }
    }

    /// Listing order: does `a` come before `b`?
    pub fn cmp(&self, a: &PageKey, b: &PageKey) -> Ordering {
        match self.direction {
            Direction::Asc => a.cmp(b),
            Direction::Desc => b.cmp(a),
        }
    }

    /// Is the key past the continuation token (or is there none)?
    pub fn after_token(&self, k: &PageKey) -> bool {
        self.after
            .as_ref()
            .is_none_or(|t| self.cmp(t, k) == Ordering::Less)
    }
}

/// Collects the first `size` keys in listing order from any number of candidates, holding at
/// most `size` of them (a bounded max-heap by listing order).
pub struct PageCut<'s, T> {
    spec: &'s QuerySpec,
    heap: std::collections::BinaryHeap<Ranked<'s, T>>,
}

struct Ranked<'s, T> {
    spec: &'s QuerySpec,
    key: PageKey,
    item: T,
}

impl<T> PartialEq for Ranked<'_, T> {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl<T> Eq for Ranked<'_, T> {}
impl<T> PartialOrd for Ranked<'_, T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Ranked<'_, T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.spec.cmp(&self.key, &o.key)
    }
}

impl<'s, T> PageCut<'s, T> {
    pub fn new(spec: &'s QuerySpec) -> Self {
        PageCut {
            spec,
            heap: std::collections::BinaryHeap::with_capacity(spec.size.min(4096) + 1),
        }
    }

    /// Offer one instance; it is kept when it matches, lies past the token and ranks among the
    /// first `size`.
    pub fn offer(&mut self, f: &Facts, item: impl FnOnce() -> T) {
        if !self.spec.matches(f) {
            return;
        }
        let key = self.spec.key(f);
        if !self.spec.after_token(&key) {
            return;
        }
        if self.heap.len() == self.spec.size {
            let worst = self.heap.peek().map(|r| r.key);
            if worst.is_some_and(|w| self.spec.cmp(&key, &w) != Ordering::Less) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Ranked {
            spec: self.spec,
            key,
            item: item(),
        });
    }

    /// When the page is full: the last key it holds (anything ranked after it is refused).
    pub fn worst_if_full(&self) -> Option<PageKey> {
        (self.heap.len() == self.spec.size)
            .then(|| self.heap.peek().map(|r| r.key))
            .flatten()
    }

    /// The page in listing order, and whether it is full (then Storage sets `next`).
    pub fn finish(self) -> (Vec<(PageKey, T)>, bool) {
        let full = self.heap.len() == self.spec.size;
        let page = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| (r.key, r.item))
            .collect();
        (page, full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::auth::TokenIssuer;
    use chrono::TimeZone;

    fn org_caller() -> Principal {
        let scopes = format!("{SERVICEOWNER_READ} x");
        let claims = TokenIssuer::org_claims("ttd", "991825827", &scopes, 3);
        Principal::Org {
            org: "ttd".into(),
            scopes: vec![SERVICEOWNER_READ.into()],
            claims,
        }
    }

    fn params(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(q: &[(&str, &str)]) -> QuerySpec {
        QuerySpec::parse(&params(q), &org_caller()).unwrap()
    }

    fn at(min: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    fn facts(n: u128, changed: i64) -> Facts<'static> {
        Facts {
            guid: uuid::Uuid::from_u128(n),
            app_id: "ttd/app",
            org: "ttd",
            party: "510001",
            created: Some(at(0)),
            last_changed: Some(at(changed)),
            ended: false,
            current_task: Some("Task_1"),
            confirmations: &[],
            is_archived: false,
            is_soft_deleted: false,
            is_hard_deleted: false,
        }
    }

    #[test]
    fn org_checks_come_in_storages_order() {
        let user = Principal::User {
            user_id: 1001,
            party_id: 510001,
            claims: Default::default(),
        };
        let mut no_scope = org_caller();
        if let Principal::Org { scopes, .. } = &mut no_scope {
            scopes.clear();
        }
        let parse = |q: &[(&str, &str)], p: &Principal| QuerySpec::parse(&params(q), p).err();
        assert_eq!(parse(&[], &no_scope), Some(QueryRefusal::MissingScope));
        assert_eq!(
            parse(&[], &org_caller()),
            Some(QueryRefusal::OrgOrAppRequired)
        );
        assert_eq!(
            parse(&[("appId", "skd/x")], &org_caller()),
            Some(QueryRefusal::Forbidden)
        );
        assert_eq!(parse(&[], &user), Some(QueryRefusal::PartyRequired));
        assert_eq!(
            parse(&[("instanceOwner.partyId", "500600")], &user),
            Some(QueryRefusal::Forbidden)
        );
        assert_eq!(
            parse(
                &[("appId", "ttd/a"), ("instanceOwner.partyId", "x")],
                &org_caller()
            ),
            Some(QueryRefusal::BadParty)
        );
        assert_eq!(
            parse(&[("appId", "ttd/a"), ("size", "0")], &org_caller()),
            Some(QueryRefusal::BadSize("0".into()))
        );
        assert_eq!(
            parse(
                &[("appId", "ttd/a"), ("lastChanged", "gt:yesterday")],
                &org_caller()
            ),
            Some(QueryRefusal::BadDate)
        );
    }

    #[test]
    fn date_filters_combine_and_default_to_eq() {
        let f =
            DateFilter::parse(&["gt:2026-01-01T00:10:00Z", "lte:2026-01-01T00:20:00Z"]).unwrap();
        assert!(!f.holds(Some(&at(10))));
        assert!(f.holds(Some(&at(11))));
        assert!(f.holds(Some(&at(20))));
        assert!(!f.holds(Some(&at(21))));
        assert!(!f.holds(None));
        let ge = DateFilter::parse(&["gte:2026-01-01T00:10:00Z"]).unwrap();
        assert!(ge.holds(Some(&at(10))));
        let lt = DateFilter::parse(&["lt:2026-01-01T00:10:00Z"]).unwrap();
        assert!(lt.holds(Some(&at(9))) && !lt.holds(Some(&at(10))));
        let eq = DateFilter::parse(&["2026-01-01T00:10:00Z"]).unwrap();
        assert_eq!(eq.0[0].0, DateOp::Eq);
        assert!(eq.holds(Some(&at(10))) && !eq.holds(Some(&at(11))));
        assert!(DateFilter::parse(&[]).unwrap().holds(None));
    }

    #[test]
    fn order_is_descending_only_for_desc() {
        assert_eq!(parse_order(None), (Direction::Desc, OrderBy::LastChanged));
        assert_eq!(
            parse_order(Some("asc:lastChanged")),
            (Direction::Asc, OrderBy::LastChanged)
        );
        assert_eq!(parse_order(Some("lastChanged")).0, Direction::Asc);
        assert_eq!(
            parse_order(Some("desc:created")),
            (Direction::Desc, OrderBy::Created)
        );
    }

    #[test]
    fn completion_and_confirmation_filters() {
        let confirmed = [CompleteConfirmation {
            stakeholder_id: "ttd".into(),
            confirmed_on: Some(at(1)),
        }];
        let open = facts(1, 1);
        let ended = Facts {
            ended: true,
            current_task: None,
            ..facts(2, 2)
        };
        let ended_confirmed = Facts {
            confirmations: &confirmed,
            ..ended.clone()
        };
        let inbox = spec(&[
            ("appId", "ttd/app"),
            ("process.isComplete", "true"),
            ("excludeConfirmedBy", "ttd"),
        ]);
        assert!(!inbox.matches(&open));
        assert!(inbox.matches(&ended));
        assert!(!inbox.matches(&ended_confirmed));
        let confirmed_only = spec(&[("appId", "ttd/app"), ("confirmed", "true")]);
        assert!(confirmed_only.matches(&ended_confirmed) && !confirmed_only.matches(&ended));
        let task = spec(&[("appId", "ttd/app"), ("process.currentTask", "Task_1")]);
        assert!(task.matches(&open) && !task.matches(&ended));
    }

    #[test]
    fn hard_deleted_only_for_the_owner_and_other_apps_never() {
        let hard = Facts {
            is_hard_deleted: true,
            ..facts(1, 1)
        };
        assert!(spec(&[("org", "ttd")]).matches(&hard));
        let other_app = Facts {
            app_id: "ttd/other",
            ..facts(2, 1)
        };
        assert!(!spec(&[("appId", "ttd/app")]).matches(&other_app));
    }

    fn page_of(s: &QuerySpec, all: &[Facts]) -> (Vec<u128>, bool) {
        let mut cut = PageCut::new(s);
        for f in all {
            cut.offer(f, || f.guid.as_u128());
        }
        let (page, full) = cut.finish();
        (page.into_iter().map(|(_, g)| g).collect(), full)
    }

    #[test]
    fn pages_follow_the_token_in_both_orders_without_gaps() {
        // Two instances share a lastChanged: the guid breaks the tie.
        let all: Vec<Facts> = [(1, 5), (2, 3), (3, 5), (4, 1), (5, 9)]
            .iter()
            .map(|(g, t)| facts(*g, *t))
            .collect();
        for (order, want) in [
            ("asc:lastChanged", vec![4, 2, 1, 3, 5]),
            ("desc:lastChanged", vec![5, 3, 1, 2, 4]),
        ] {
            let mut got = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut q = vec![("appId", "ttd/app"), ("order", order), ("size", "2")];
                if let Some(t) = &token {
                    q.push(("continuationToken", t.as_str()));
                }
                let s = spec(&q);
                let (page, full) = page_of(&s, &all);
                got.extend(page.iter().copied());
                if !full {
                    break;
                }
                let last = all
                    .iter()
                    .find(|f| f.guid.as_u128() == *page.last().unwrap());
                token = Some(s.key(last.unwrap()).token());
            }
            assert_eq!(got, want, "{order}");
        }
    }

    #[test]
    fn a_full_last_page_still_says_full_and_the_next_is_empty() {
        let all = vec![facts(1, 1), facts(2, 2)];
        let s = spec(&[("appId", "ttd/app"), ("size", "2"), ("order", "asc:x")]);
        let (page, full) = page_of(&s, &all);
        assert_eq!((page.len(), full), (2, true));
        let token = s.key(&all[1]).token();
        let s2 = spec(&[
            ("appId", "ttd/app"),
            ("size", "2"),
            ("order", "asc:x"),
            ("continuationToken", &token),
        ]);
        assert_eq!(page_of(&s2, &all), (vec![], false));
    }

    #[test]
    fn token_round_trips() {
        let k = PageKey {
            ticks: 639_000_000_000_000_000,
            guid: uuid::Uuid::from_u128(7),
        };
        assert_eq!(PageKey::parse_token(&k.token()), Some(k));
        assert_eq!(PageKey::parse_token("nonsense"), None);
    }
}
