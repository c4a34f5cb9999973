//! Feed events from comparing what the server sent with what the index held (SPEC §7.3).

use crate::altinn::model::{ApplicationMetadata, DataElement, Instance, InstanceStatus, Timestamp};
use crate::fs::index::{EventKind, FeedEvent};
use crate::fs::layout;
use std::collections::{HashMap, HashSet};

/// Two server times are the same change when they differ by less than a microsecond:
/// Storage keeps 6 fractional digits (rounded) while the App API answers with .NET's 7.
pub fn same_time(a: Option<&Timestamp>, b: Option<&Timestamp>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (*a - *b).num_nanoseconds().is_some_and(|d| d.abs() < 1000),
        _ => false,
    }
}

fn rfc3339(t: Option<&Timestamp>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

pub fn is_deleted(i: &Instance) -> bool {
    i.status.is_soft_deleted
        || i.status.is_hard_deleted
        || i.status.soft_deleted.is_some()
        || i.status.hard_deleted.is_some()
}

/// The status without `readStatus`, which changes when someone reads, not when the
/// instance changes.
fn status_key(s: &InstanceStatus) -> InstanceStatus {
    InstanceStatus {
        read_status: Default::default(),
        ..s.clone()
    }
}

/// element id → its file name in its data type directory (SPEC §3).
fn names(inst: &Instance, meta: &ApplicationMetadata) -> HashMap<String, String> {
    let mut by_type: HashMap<&str, Vec<&DataElement>> = HashMap::new();
    for e in &inst.data {
        by_type.entry(e.data_type.as_str()).or_default().push(e);
    }
    let mut out = HashMap::new();
    for (dt, els) in by_type {
        for (name, i) in layout::assign_names(&els, meta.data_type(dt)) {
            out.insert(els[i].id.clone(), name);
        }
    }
    out
}

fn element_event(
    kind: EventKind,
    inst: &Instance,
    el: &DataElement,
    names: &HashMap<String, String>,
) -> FeedEvent {
    let (party, guid) = (inst.party_id(), inst.guid().to_string());
    let name = names
        .get(&el.id)
        .cloned()
        .unwrap_or_else(|| layout::sanitize(&el.id));
    FeedEvent {
        path: format!("{party}/{guid}/{}/{name}", layout::sanitize(&el.data_type)),
        data_type: Some(el.data_type.clone()),
        element: Some(el.id.clone()),
        last_changed: rfc3339(el.last_changed.as_ref()),
        ..FeedEvent::instance(kind, &party, &guid, None)
    }
}

/// The event of one element, named among the elements of its own data type only (what
/// `events` would name it, without naming the whole instance).
pub(super) fn element_event_in(
    kind: EventKind,
    inst: &Instance,
    el: &DataElement,
    meta: &ApplicationMetadata,
) -> FeedEvent {
    let same_type: Vec<&DataElement> = inst
        .data
        .iter()
        .filter(|e| e.data_type == el.data_type)
        .collect();
    let names: HashMap<String, String> =
        layout::assign_names(&same_type, meta.data_type(&el.data_type))
            .into_iter()
            .map(|(name, i)| (same_type[i].id.clone(), name))
            .collect();
    element_event(kind, inst, el, &names)
}

fn instance_event(kind: EventKind, inst: &Instance) -> FeedEvent {
    FeedEvent::instance(
        kind,
        &inst.party_id(),
        inst.guid(),
        rfc3339(inst.last_changed.as_ref()),
    )
}

pub(super) fn element_changed(old: &DataElement, new: &DataElement) -> bool {
    !same_time(old.last_changed.as_ref(), new.last_changed.as_ref())
        || old.size != new.size
        || old.filename != new.filename
        || old.data_type != new.data_type
}

/// The events that turn `old` (None: not in the index) into `new`.
pub fn events(
    old: Option<&Instance>,
    new: &Instance,
    meta: &ApplicationMetadata,
) -> Vec<FeedEvent> {
    let new_names = names(new, meta);
    let Some(old) = old else {
        if is_deleted(new) {
            return vec![]; // first seen already deleted: nothing a reader could have missed
        }
        let mut out = vec![instance_event(EventKind::InstanceCreated, new)];
        out.extend(
            new.data
                .iter()
                .map(|e| element_event(EventKind::ElementCreated, new, e, &new_names)),
        );
        return out;
    };
    if is_deleted(new) {
        return if is_deleted(old) {
            vec![]
        } else {
            vec![instance_event(EventKind::InstanceDeleted, new)]
        };
    }
    let mut out = instance_level(old, new);
    let before: HashMap<&str, &DataElement> = old.data.iter().map(|e| (e.id.as_str(), e)).collect();
    for e in &new.data {
        match before.get(e.id.as_str()) {
            None => out.push(element_event(EventKind::ElementCreated, new, e, &new_names)),
            Some(o) if element_changed(o, e) => {
                out.push(element_event(EventKind::ElementChanged, new, e, &new_names))
            }
            Some(_) => {}
        }
    }
    let now: HashSet<&str> = new.data.iter().map(|e| e.id.as_str()).collect();
    let old_names = names(old, meta);
    for e in old.data.iter().filter(|e| !now.contains(e.id.as_str())) {
        out.push(element_event(EventKind::ElementDeleted, old, e, &old_names));
    }
    out
}

/// instance.confirmed (a new stakeholder confirmed) and instance.changed (process, status,
/// substatus, data values, presentation texts).
fn instance_level(old: &Instance, new: &Instance) -> Vec<FeedEvent> {
    let mut out = Vec::new();
    let had: HashSet<&str> = old
        .complete_confirmations
        .iter()
        .map(|c| c.stakeholder_id.as_str())
        .collect();
    if new
        .complete_confirmations
        .iter()
        .any(|c| !had.contains(c.stakeholder_id.as_str()))
    {
        out.push(instance_event(EventKind::InstanceConfirmed, new));
    }
    if old.process != new.process
        || status_key(&old.status) != status_key(&new.status)
        || old.data_values != new.data_values
        || old.presentation_texts != new.presentation_texts
    {
        out.push(instance_event(EventKind::InstanceChanged, new));
    }
    out
}

/// The event of an instance that is gone from the server (found by a full listing).
pub fn deleted(party: &str, guid: &str) -> FeedEvent {
    FeedEvent::instance(EventKind::InstanceDeleted, party, guid, None)
}
