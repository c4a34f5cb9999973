//! A synthetic app of any size (`altinnfs emulator --synthetic-instances N`): instance `i` of
//! the sample app is derived from its index on demand, so a million instances cost no memory
//! and no startup time. An instance is materialised into the store (and its data dir) the first
//! time it is written; from then on the stored copy wins and the derived one is skipped.
//!
//! Ids encode the index: instance `5e000000-0000-4000-8000-<i as 12 hex digits>`, element `k`
//! of it `5e0000<k+1 as 2 hex>-0001-4000-8000-<i>`. Every fact the query needs is arithmetic on
//! `i`; the shape follows the disk sample (every 10th instance ended, half of those confirmed
//! by the owner, every 7th open one in Task_2).

use super::query::{ticks, DateOp, Direction, Facts, OrderBy, PageKey, QuerySpec};
use crate::altinn::model::*;
use crate::emulator::sample::{self, SAMPLE_ORG, SAMPLE_PARTIES};
use crate::emulator::service::app_model::task;
use crate::emulator::xml;
use chrono::Duration;
use serde_json::json;
use std::ops::Range;
use std::sync::LazyLock;

const INSTANCE_TAG: u128 = 0x5e00_0000_0000_4000_8000_0000_0000_0000;
const ELEMENT_TAG: u128 = 0x5e00_0000_0001_4000_8000_0000_0000_0000;
const INDEX_MASK: u128 = 0xffff_ffff_ffff;
/// The `k` field of an element id: bits 96..104.
const SLOT_SHIFT: u32 = 96;

static PARTY_IDS: LazyLock<Vec<String>> =
    LazyLock::new(|| SAMPLE_PARTIES.iter().map(u32::to_string).collect());
static OWNER_CONFIRMED: LazyLock<Vec<CompleteConfirmation>> = LazyLock::new(|| {
    vec![CompleteConfirmation {
        stakeholder_id: SAMPLE_ORG.into(),
        confirmed_on: None,
    }]
});

/// The derived instances `0..count` of the sample app.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub count: u64,
    app_id: String,
}

/// What instance `i` is like.
struct Shape {
    ended: bool,
    confirmed: bool,
    in_task2: bool,
    attachment: bool,
}

fn shape(i: u64) -> Shape {
    let ended = i % 10 == 9;
    Shape {
        ended,
        confirmed: i % 20 == 19,
        in_task2: !ended && i % 7 == 3,
        attachment: i % 4 == 1,
    }
}

/// 2024-01-01T00:00:00Z: instance `i` is created `20 i` seconds later.
const EPOCH_SECS: i64 = 1_704_067_200;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_timestamp(EPOCH_SECS + secs, 0).unwrap_or_default()
}

/// Seconds after the epoch of a tick count (rounded down).
fn secs_of(ticks: i64) -> i64 {
    (ticks - 621_355_968_000_000_000).div_euclid(10_000_000) - EPOCH_SECS
}

fn created(i: u64) -> Timestamp {
    at(20 * i as i64)
}

/// Up to an hour after creation, scattered so that lastChanged order differs from index order.
fn last_changed(i: u64) -> Timestamp {
    at(20 * i as i64 + ((i * 7919) % 3600) as i64 + 1)
}

pub fn instance_guid(i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u128(INSTANCE_TAG | i as u128)
}

fn element_guid(i: u64, k: u8) -> uuid::Uuid {
    uuid::Uuid::from_u128(ELEMENT_TAG | ((k as u128 + 1) << SLOT_SHIFT) | i as u128)
}

/// `(index, slot)` of a synthetic element id.
fn element_index(id: &str) -> Option<(u64, u8)> {
    let v = uuid::Uuid::parse_str(id).ok()?.as_u128();
    let slot = ((v >> SLOT_SHIFT) & 0xff) as u8;
    (v & !INDEX_MASK & !(0xff << SLOT_SHIFT) == ELEMENT_TAG && slot > 0)
        .then(|| ((v & INDEX_MASK) as u64, slot - 1))
}

impl Synthetic {
    pub fn new(count: u64) -> Synthetic {
        Synthetic {
            count,
            app_id: format!("{SAMPLE_ORG}/{}", sample::SAMPLE_APP),
        }
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The index of a synthetic instance guid within `0..count`.
    pub fn index(&self, guid: &str) -> Option<u64> {
        let v = uuid::Uuid::parse_str(guid).ok()?.as_u128();
        let i = (v & INDEX_MASK) as u64;
        (v & !INDEX_MASK == INSTANCE_TAG && i < self.count).then_some(i)
    }

    pub fn facts(&self, i: u64) -> Facts<'_> {
        let s = shape(i);
        Facts {
            guid: instance_guid(i),
            app_id: &self.app_id,
            org: SAMPLE_ORG,
            party: &PARTY_IDS[i as usize % PARTY_IDS.len()],
            created: Some(created(i)),
            last_changed: Some(last_changed(i)),
            ended: s.ended,
            current_task: match (s.ended, s.in_task2) {
                (true, _) => None,
                (false, true) => Some("Task_2"),
                (false, false) => Some("Task_1"),
            },
            confirmations: if s.confirmed {
                &OWNER_CONFIRMED[..]
            } else {
                &[]
            },
            is_archived: s.ended,
            is_soft_deleted: false,
            is_hard_deleted: false,
        }
    }

    /// Instance `i` in full, with its data elements.
    pub fn instance(&self, i: u64) -> Instance {
        let (s, party) = (shape(i), SAMPLE_PARTIES[i as usize % SAMPLE_PARTIES.len()]);
        let (created, changed) = (created(i), last_changed(i));
        let guid = instance_guid(i).to_string();
        let reg = crate::emulator::auth::party(party);
        let mut inst = Instance {
            id: format!("{party}/{guid}"),
            instance_owner: InstanceOwner {
                party_id: party.to_string(),
                person_number: reg.and_then(|r| r.ssn).map(str::to_string),
                organisation_number: reg.and_then(|r| r.org_number).map(str::to_string),
                ..Default::default()
            },
            app_id: self.app_id.clone(),
            org: SAMPLE_ORG.into(),
            visible_after: Some(created),
            process: Some(process(&s, created, changed)),
            created: Some(created),
            created_by: Some("1337".into()),
            last_changed: Some(changed),
            last_changed_by: Some("1337".into()),
            ..Default::default()
        };
        if s.ended {
            inst.status.is_archived = true;
            inst.status.archived = Some(changed);
        }
        if s.confirmed {
            inst.complete_confirmations.push(CompleteConfirmation {
                stakeholder_id: SAMPLE_ORG.into(),
                confirmed_on: Some(changed),
            });
        }
        inst.status.read_status = if i.is_multiple_of(3) {
            ReadStatus::Unread
        } else {
            ReadStatus::Read
        };
        let slots = if s.attachment { 2 } else { 1 };
        inst.data = (0..slots).map(|k| self.element(i, k, &s)).collect();
        inst
    }

    fn element(&self, i: u64, k: u8, s: &Shape) -> DataElement {
        let id = element_guid(i, k).to_string();
        let guid = instance_guid(i).to_string();
        let when = created(i) + Duration::seconds(k as i64 + 1);
        let (data_type, filename, content_type) = match k {
            0 => ("model", None, "application/xml"),
            _ => (
                "attachment",
                Some(format!("vedlegg-{i}.pdf")),
                "application/pdf",
            ),
        };
        DataElement {
            blob_storage_path: Some(format!("{}/{guid}/data/{id}", self.app_id)),
            size: blob(i, k).len() as i64,
            id,
            instance_guid: guid,
            data_type: data_type.into(),
            filename,
            content_type: Some(content_type.into()),
            locked: s.ended || s.in_task2,
            is_read: Some(true),
            file_scan_result: Some("NotApplicable".into()),
            created: Some(when),
            created_by: Some("1337".into()),
            last_changed: Some(when),
            last_changed_by: Some("1337".into()),
            ..Default::default()
        }
    }

    /// The indices a query can match at all: instance `i`'s lastChanged lies within
    /// `[20 i + 1, 20 i + 3600]` seconds after the epoch, so the token and the lastChanged
    /// filters bound `i` (conservatively, by whole seconds and one index of slack).
    pub fn index_range(&self, spec: &QuerySpec) -> Range<u64> {
        let (mut lo, mut hi) = (0i64, self.count as i64);
        let mut at_least = |secs: i64| lo = lo.max((secs - 3600).div_euclid(20) - 1);
        for (op, t) in &spec.last_changed.0 {
            if matches!(op, DateOp::Gt | DateOp::Gte | DateOp::Eq) {
                at_least(t.timestamp() - EPOCH_SECS);
            }
        }
        if let (Some(k), OrderBy::LastChanged, Direction::Asc) =
            (spec.after, spec.order_by, spec.direction)
        {
            at_least(secs_of(k.ticks));
        }
        let mut at_most = |secs: i64| hi = hi.min(secs.div_euclid(20) + 2);
        for (op, t) in &spec.last_changed.0 {
            if matches!(op, DateOp::Lt | DateOp::Lte | DateOp::Eq) {
                at_most(t.timestamp() - EPOCH_SECS);
            }
        }
        if let (Some(k), OrderBy::LastChanged, Direction::Desc) =
            (spec.after, spec.order_by, spec.direction)
        {
            at_most(secs_of(k.ticks));
        }
        let lo = lo.clamp(0, self.count as i64) as u64;
        lo..(hi.clamp(lo as i64, self.count as i64) as u64)
    }

    /// Walking indices in listing order (up for ascending, down for descending), can index
    /// `i` or any after it still rank before `worst`? If not, the page is complete.
    pub fn past_page(&self, spec: &QuerySpec, i: u64, worst: &PageKey) -> bool {
        let created = ticks(&created(i));
        let (min, max) = match spec.order_by {
            OrderBy::Created => (created, created),
            OrderBy::LastChanged => (created + 10_000_000, created + 3600 * 10_000_000),
        };
        match spec.direction {
            Direction::Asc => min > worst.ticks,
            Direction::Desc => max < worst.ticks,
        }
    }

    /// The bytes of a synthetic element, or None for any other id.
    pub fn blob(&self, data_guid: &str) -> Option<Vec<u8>> {
        let (i, k) = element_index(data_guid)?;
        (i < self.count).then(|| blob(i, k))
    }
}

fn process(s: &Shape, created: Timestamp, changed: Timestamp) -> ProcessState {
    let (id, flow) = if s.in_task2 {
        ("Task_2", 3)
    } else {
        ("Task_1", 2)
    };
    let mut current = task(id, flow);
    current.started = Some(created);
    let mut p = ProcessState {
        started: Some(created),
        start_event: Some("StartEvent_1".into()),
        current_task: Some(current),
        ..Default::default()
    };
    if s.ended {
        p.current_task = None;
        p.ended = Some(changed);
        p.end_event = Some("EndEvent_1".into());
    }
    p
}

fn blob(i: u64, k: u8) -> Vec<u8> {
    if k == 0 {
        let (a, b) = (i % 1000, (i / 1000) % 1000);
        let model = json!({"navn": "Synthetic", "beskrivelse": format!("Søknad nummer {i}"),
                           "a": a.to_string(), "b": b.to_string(), "sum": (a + b).to_string()});
        return xml::json_to_xml(xml::ROOT, &model);
    }
    sample::content("pdf", 1024 + (i as usize * 131) % 7168, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_start_in_2024_and_change_within_the_hour() {
        assert_eq!(created(0).to_rfc3339(), "2024-01-01T00:00:00+00:00");
        for i in [0, 1, 999_999] {
            let d = last_changed(i) - created(i);
            assert!(d > Duration::zero() && d <= Duration::hours(1));
        }
    }

    #[test]
    fn ids_round_trip_and_stay_in_range() {
        let s = Synthetic::new(1_000_000);
        let g = instance_guid(999_999).to_string();
        assert_eq!(s.index(&g), Some(999_999));
        assert_eq!(s.index(&instance_guid(1_000_000).to_string()), None);
        assert_eq!(s.index("5e000000-0000-4000-8000-00000000000x"), None);
        assert_eq!(s.index(&element_guid(5, 0).to_string()), None);
        assert_eq!(element_index(&element_guid(5, 1).to_string()), Some((5, 1)));
        assert_eq!(element_index(&g), None);
    }

    #[test]
    fn facts_agree_with_the_full_instance() {
        let s = Synthetic::new(100);
        for i in [0, 1, 3, 9, 19, 29, 99] {
            let full = s.instance(i);
            let f = s.facts(i);
            let g = Facts::of(&full);
            assert_eq!(f.guid, g.guid, "{i}");
            assert_eq!(
                (f.party, f.ended, f.current_task),
                (g.party, g.ended, g.current_task)
            );
            assert_eq!((f.last_changed, f.created), (g.last_changed, g.created));
            assert_eq!(f.confirmations.len(), g.confirmations.len(), "{i}");
            assert_eq!(f.is_archived, g.is_archived);
        }
    }

    #[test]
    fn elements_have_their_bytes_and_sizes() {
        let s = Synthetic::new(10);
        let inst = s.instance(1);
        assert_eq!(inst.data.len(), 2);
        for e in &inst.data {
            assert_eq!(s.blob(&e.id).unwrap().len() as i64, e.size);
        }
        assert!(s.blob(&element_guid(10, 0).to_string()).is_none());
        let ended = s.instance(9);
        assert!(ended.process.unwrap().ended.is_some());
        assert!(ended.complete_confirmations.is_empty());
        assert_eq!(s.instance(19).complete_confirmations.len(), 1);
    }
}
