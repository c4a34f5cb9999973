//! What the tree learned about one element itself (its own upload, replace or delete): the
//! index takes that element's row and the instance's `lastChanged`, not the whole instance,
//! so n uploads into one instance cost O(n) writes, not O(n²). The feed gets the same event
//! a full ingest would derive, once, so the next poll de-duplicates it (SPEC §7.2, §7.3).

use super::listing::{acceptable, apply_one};
use super::{diff, Changes, ElementKey, Refresher};
use crate::altinn::client::AltinnClient;
use crate::altinn::model::{DataElement, Instance};
use crate::fs::index::{Db, EventKind, FeedEvent, IndexError, IndexResult};

/// `inst` is the instance's new state, holding `el`.
pub(super) fn ingest_element<C: AltinnClient + ?Sized>(
    r: &Refresher<C>,
    inst: &Instance,
    el: &DataElement,
) -> Result<Changes, IndexError> {
    if !acceptable(inst) {
        return Ok(Changes::default());
    }
    commit(r, |db, ch, events| {
        let old = db.element(inst, &el.id)?;
        if !db.upsert_element(inst, el)? {
            // Not in the index yet: store the whole instance (once).
            return apply_one(db, &r.meta, inst, None, false, ch, events);
        }
        let kind = match &old {
            None => EventKind::ElementCreated,
            Some(o) if diff::element_changed(o, el) => EventKind::ElementChanged,
            Some(_) => return Ok(()),
        };
        note(ch, events, diff::element_event_in(kind, inst, el, &r.meta));
        Ok(())
    })
}

/// `before` is the instance's state that still holds element `id`.
pub(super) fn ingest_element_removed<C: AltinnClient + ?Sized>(
    r: &Refresher<C>,
    before: &Instance,
    id: &str,
) -> Result<Changes, IndexError> {
    let Some(el) = before.data.iter().find(|e| e.id == id) else {
        return Ok(Changes::default());
    };
    commit(r, |db, ch, events| {
        if db.delete_element(before.guid(), id)? {
            let ev = diff::element_event_in(EventKind::ElementDeleted, before, el, &r.meta);
            note(ch, events, ev);
        }
        Ok(())
    })
}

/// Run `f` in one transaction and append the events it noted.
fn commit<C: AltinnClient + ?Sized>(
    r: &Refresher<C>,
    f: impl FnOnce(&Db, &mut Changes, &mut Vec<FeedEvent>) -> IndexResult<()>,
) -> Result<Changes, IndexError> {
    let now = chrono::Utc::now();
    r.index.write(|db| {
        let mut ch = Changes::default();
        let mut events = Vec::new();
        f(db, &mut ch, &mut events)?;
        db.append_events(&mut events, &now)?;
        ch.events = events;
        ch.cap(r.cfg.max_reported);
        Ok(ch)
    })
}

fn note(ch: &mut Changes, events: &mut Vec<FeedEvent>, ev: FeedEvent) {
    if let (Some(dt), Some(id)) = (&ev.data_type, &ev.element) {
        ch.elements.insert(ElementKey {
            party: ev.party.clone(),
            guid: ev.instance.clone(),
            data_type: dt.clone(),
            id: id.clone(),
        });
    }
    ch.instances.insert((ev.party.clone(), ev.instance.clone()));
    events.push(ev);
}
