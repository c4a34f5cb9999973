//! The statements of the index, on a connection or inside a transaction (`MetaIndex::read`,
//! `MetaIndex::write`).

use super::compact::{self, LinkBases};
use super::feed::{cap, EventKind, FeedEvent, MAX_PATH};
use super::IndexResult;
use crate::altinn::model::{DataElement, Instance, InstanceStatus, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::sync::OnceLock;

/// Microseconds since the epoch (Storage's precision).
pub fn micros(t: Option<&Timestamp>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

fn from_micros(us: Option<i64>) -> Option<Timestamp> {
    us.and_then(chrono::DateTime::from_timestamp_micros)
}

/// What a directory listing needs of an instance, without its document.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSummary {
    pub party: String,
    pub guid: String,
    pub created: Option<Timestamp>,
    pub last_changed: Option<Timestamp>,
    /// `process.ended`.
    pub ended: Option<Timestamp>,
    pub archived: bool,
    /// Soft- or hard-deleted.
    pub deleted: bool,
    /// Stakeholder ids of `completeConfirmations`.
    pub confirmed_by: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexCounts {
    pub instances: u64,
    pub elements: u64,
    pub parties: u64,
    pub feed_rows: u64,
    pub last_seq: u64,
    pub done: u64,
}

const SUMMARY_COLS: &str =
    "party, guid, created_us, last_changed_us, ended_us, archived, deleted, confirmed_by";

fn summary(r: &Row) -> rusqlite::Result<InstanceSummary> {
    let confirmed: String = r.get(7)?;
    Ok(InstanceSummary {
        party: r.get(0)?,
        guid: r.get(1)?,
        created: from_micros(r.get(2)?),
        last_changed: from_micros(r.get(3)?),
        ended: from_micros(r.get(4)?),
        archived: r.get(5)?,
        deleted: r.get(6)?,
        confirmed_by: confirmed
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

const FEED_COLS: &str = "seq, seen, event, party, instance, data_type, element, path, last_changed";

/// Where an instance's elements belong (what their computed fields are made from).
fn owner_of(inst: &Instance) -> compact::Owner<'_> {
    compact::Owner {
        instance_id: &inst.id,
        guid: inst.guid(),
        app_id: &inst.app_id,
    }
}

/// An element's document as stored.
fn element_doc(
    e: &DataElement,
    owner: &compact::Owner,
    bases: Option<&LinkBases>,
) -> IndexResult<String> {
    let mut doc = serde_json::to_value(e)?;
    compact::compact_element(&mut doc, owner, bases);
    Ok(doc.to_string())
}

fn feed_row(r: &Row) -> rusqlite::Result<FeedEvent> {
    let event: String = r.get(2)?;
    Ok(FeedEvent {
        seq: r.get::<_, i64>(0)? as u64,
        seen: r.get(1)?,
        event: EventKind::parse(&event).unwrap_or(EventKind::InstanceChanged),
        party: r.get(3)?,
        instance: r.get(4)?,
        data_type: r.get(5)?,
        element: r.get(6)?,
        path: r.get(7)?,
        last_changed: r.get(8)?,
    })
}

/// The index's statements over one connection or transaction.
pub struct Db<'a> {
    pub(super) conn: &'a Connection,
    /// Where a read transaction keeps the link bases once it found them stored: they never
    /// change afterwards, and reading them is two statements per instance loaded.
    known_bases: Option<&'a OnceLock<LinkBases>>,
}

impl<'a> Db<'a> {
    pub fn new(conn: &'a Connection) -> Self {
        Self {
            conn,
            known_bases: None,
        }
    }

    /// A `Db` that takes the link bases from `known` and fills it when they are stored (a
    /// read transaction's: it sees only what was committed).
    pub(super) fn remembering(conn: &'a Connection, known: &'a OnceLock<LinkBases>) -> Self {
        Self {
            conn,
            known_bases: Some(known),
        }
    }

    // ----- instances and elements -----

    /// The instance with its data elements in the server's order.
    pub fn get_instance(&self, guid: &str) -> IndexResult<Option<Instance>> {
        let Some(doc) = self.doc_of(guid)? else {
            return Ok(None);
        };
        let bases = self.link_bases()?;
        Ok(Some(self.instance_from_doc(&doc, bases.as_ref())?))
    }

    /// The status of a stored instance (None: not stored) without loading its elements:
    /// whether a change deleted it, for an instance the hot set does not hold.
    pub fn status(&self, guid: &str) -> IndexResult<Option<InstanceStatus>> {
        #[derive(serde::Deserialize)]
        struct StatusOnly {
            #[serde(default)]
            status: Option<InstanceStatus>,
        }
        let Some(doc) = self.doc_of(guid)? else {
            return Ok(None);
        };
        let s: StatusOnly = serde_json::from_str(&doc)?;
        Ok(Some(s.status.unwrap_or_default()))
    }

    /// The stored document of an instance (without its elements).
    fn doc_of(&self, guid: &str) -> IndexResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT doc FROM instances WHERE guid = ?1")?
            .query_row([guid], |r| r.get(0))
            .optional()?)
    }

    /// Up to `limit` instances of `party` from GUID `from` on (itself included), in GUID
    /// order, with their elements: what a walk that goes into every instance reads next, in
    /// one statement instead of one per instance.
    pub fn instances_from(
        &self,
        party: &str,
        from: &str,
        limit: usize,
    ) -> IndexResult<Vec<Instance>> {
        let mut st = self.conn.prepare_cached(
            "SELECT doc FROM instances WHERE party = ?1 AND guid >= ?2 ORDER BY guid LIMIT ?3",
        )?;
        let docs = st
            .query_map(params![party, from, limit as i64], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let bases = self.link_bases()?;
        docs.iter()
            .map(|d| self.instance_from_doc(d, bases.as_ref()))
            .collect()
    }

    /// The GUID that follows `after` in `party`'s listing (GUID order).
    pub fn next_guid(&self, party: &str, after: &str) -> IndexResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT guid FROM instances WHERE party = ?1 AND guid > ?2 ORDER BY guid LIMIT 1",
            )?
            .query_row([party, after], |r| r.get(0))
            .optional()?)
    }

    /// A stored (compact) instance document made whole, with its elements.
    fn instance_from_doc(&self, doc: &str, bases: Option<&LinkBases>) -> IndexResult<Instance> {
        let mut doc: serde_json::Value = serde_json::from_str(doc)?;
        compact::expand_instance(&mut doc, bases);
        let mut inst: Instance = serde_json::from_value(doc)?;
        inst.data = self.elements_of(&inst, bases)?;
        Ok(inst)
    }

    fn elements_of(
        &self,
        inst: &Instance,
        bases: Option<&LinkBases>,
    ) -> IndexResult<Vec<DataElement>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT doc FROM elements WHERE guid = ?1 ORDER BY pos")?;
        let docs = st
            .query_map([inst.guid()], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let owner = owner_of(inst);
        docs.iter()
            .map(|d| {
                let mut doc: serde_json::Value = serde_json::from_str(d)?;
                compact::expand_element(&mut doc, &owner, bases);
                serde_json::from_value(doc).map_err(Into::into)
            })
            .collect()
    }

    /// The bases of `selfLinks`, once learned.
    fn link_bases(&self) -> IndexResult<Option<LinkBases>> {
        if let Some(b) = self.known_bases.and_then(OnceLock::get) {
            return Ok(Some(b.clone()));
        }
        let apps = self.meta_get(compact::APPS_BASE)?;
        let platform = self.meta_get(compact::PLATFORM_BASE)?;
        let bases = apps
            .zip(platform)
            .map(|(apps, platform)| LinkBases { apps, platform });
        if let (Some(known), Some(b)) = (self.known_bases, &bases) {
            let _ = known.set(b.clone());
        }
        Ok(bases)
    }

    /// The bases of `selfLinks`, learned from this document when none are known yet.
    fn link_bases_from(&self, doc: &serde_json::Value) -> IndexResult<Option<LinkBases>> {
        if let Some(b) = self.link_bases()? {
            return Ok(Some(b));
        }
        let Some(b) = LinkBases::learn(doc) else {
            return Ok(None);
        };
        self.meta_set(compact::APPS_BASE, &b.apps)?;
        self.meta_set(compact::PLATFORM_BASE, &b.platform)?;
        Ok(Some(b))
    }

    /// The stored (party, lastChanged in µs) of an instance: enough to recognise an
    /// instance seen before (the cursor's overlap) without loading its document.
    pub fn version(&self, guid: &str) -> IndexResult<Option<(String, Option<i64>)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT party, last_changed_us FROM instances WHERE guid = ?1")?
            .query_row([guid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Insert or replace an instance and its elements. `mark`: the full listing that saw it;
    /// None (the mount's own change, a cursor poll) counts as seen by the current listing
    /// generation, so a full listing still running does not sweep it as a hard delete.
    pub fn upsert_instance(&self, inst: &Instance, mark: Option<i64>) -> IndexResult<()> {
        let guid = inst.guid();
        let mut doc = serde_json::to_value(inst)?;
        if let Some(o) = doc.as_object_mut() {
            o.remove("data");
        }
        let bases = self.link_bases_from(&doc)?;
        compact::compact_instance(&mut doc, bases.as_ref());
        let confirmed: String = inst
            .complete_confirmations
            .iter()
            .map(|c| format!("{},", c.stakeholder_id.replace(',', "_")))
            .collect();
        self.conn
            .prepare_cached(
                "INSERT INTO instances (guid, party, created_us, last_changed_us, ended_us,
                     archived, deleted, confirmed_by, mark, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, coalesce(?9, ?11), ?10)
                 ON CONFLICT (guid) DO UPDATE SET party = ?2, created_us = ?3,
                     last_changed_us = ?4, ended_us = ?5, archived = ?6, deleted = ?7,
                     confirmed_by = ?8, mark = coalesce(?9, ?11), doc = ?10",
            )?
            .execute(params![
                guid,
                inst.party_id(),
                micros(inst.created.as_ref()),
                micros(inst.last_changed.as_ref()),
                micros(inst.process.as_ref().and_then(|p| p.ended.as_ref())),
                inst.status.is_archived || inst.status.archived.is_some(),
                inst.status.is_soft_deleted || inst.status.is_hard_deleted,
                format!(",{confirmed}"),
                mark,
                doc.to_string(),
                self.listing_generation()?,
            ])?;
        self.replace_elements(inst, bases.as_ref())
    }

    fn replace_elements(&self, inst: &Instance, bases: Option<&LinkBases>) -> IndexResult<()> {
        let (guid, data) = (inst.guid(), &inst.data);
        let owner = owner_of(inst);
        self.conn
            .prepare_cached("DELETE FROM elements WHERE guid = ?1")?
            .execute([guid])?;
        let mut ins = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO elements (id, guid, pos, data_type, filename, size,
                 content_type, locked, last_changed_us, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for (pos, e) in data.iter().enumerate() {
            ins.execute(params![
                e.id,
                guid,
                pos as i64,
                e.data_type,
                e.filename,
                e.size,
                e.content_type,
                e.locked,
                micros(e.last_changed.as_ref()),
                element_doc(e, &owner, bases)?,
            ])?;
        }
        Ok(())
    }

    /// One stored element of an instance (None: not in the index).
    pub fn element(&self, inst: &Instance, id: &str) -> IndexResult<Option<DataElement>> {
        let doc: Option<String> = self
            .conn
            .prepare_cached("SELECT doc FROM elements WHERE id = ?1 AND guid = ?2")?
            .query_row([id, inst.guid()], |r| r.get(0))
            .optional()?;
        let Some(doc) = doc else { return Ok(None) };
        let mut doc: serde_json::Value = serde_json::from_str(&doc)?;
        compact::expand_element(&mut doc, &owner_of(inst), self.link_bases()?.as_ref());
        Ok(Some(serde_json::from_value(doc)?))
    }

    /// Insert or update one element of a stored instance and take the instance's
    /// `lastChanged` from `inst`: two rows, however many elements the instance has (an own
    /// upload). A new element goes after the others. False when the instance is not stored.
    pub fn upsert_element(&self, inst: &Instance, el: &DataElement) -> IndexResult<bool> {
        if !self.touch_instance(inst)? {
            return Ok(false);
        }
        let doc = element_doc(el, &owner_of(inst), self.link_bases()?.as_ref())?;
        self.conn
            .prepare_cached(
                "INSERT INTO elements (id, guid, pos, data_type, filename, size, content_type,
                     locked, last_changed_us, doc)
                 VALUES (?1, ?2,
                     (SELECT coalesce(max(pos) + 1, 0) FROM elements WHERE guid = ?2),
                     ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (id) DO UPDATE SET guid = ?2, data_type = ?3, filename = ?4,
                     size = ?5, content_type = ?6, locked = ?7, last_changed_us = ?8, doc = ?9",
            )?
            .execute(params![
                el.id,
                inst.guid(),
                el.data_type,
                el.filename,
                el.size,
                el.content_type,
                el.locked,
                micros(el.last_changed.as_ref()),
                doc,
            ])?;
        Ok(true)
    }

    /// Set a stored instance's `lastChanged` (column and document) to `inst`'s; false when
    /// the instance is not stored. Reads and writes the instance's row only, not its elements.
    fn touch_instance(&self, inst: &Instance) -> IndexResult<bool> {
        let doc: Option<String> = self
            .conn
            .prepare_cached("SELECT doc FROM instances WHERE guid = ?1")?
            .query_row([inst.guid()], |r| r.get(0))
            .optional()?;
        let Some(doc) = doc else { return Ok(false) };
        let mut doc: serde_json::Value = serde_json::from_str(&doc)?;
        if let Some(o) = doc.as_object_mut() {
            match inst.last_changed {
                Some(t) => o.insert("lastChanged".into(), serde_json::to_value(t)?),
                None => o.remove("lastChanged"),
            };
        }
        self.conn
            .prepare_cached("UPDATE instances SET last_changed_us = ?2, doc = ?3 WHERE guid = ?1")?
            .execute(params![
                inst.guid(),
                micros(inst.last_changed.as_ref()),
                doc.to_string()
            ])?;
        Ok(true)
    }

    /// Remove one element of an instance; false if it was not there.
    pub fn delete_element(&self, guid: &str, id: &str) -> IndexResult<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM elements WHERE id = ?1 AND guid = ?2")?
            .execute([id, guid])?;
        Ok(n > 0)
    }

    /// The generation of the newest full listing, finished or running (0: none yet).
    pub fn listing_generation(&self) -> IndexResult<i64> {
        Ok(self
            .meta_get("mark")?
            .and_then(|m| m.parse().ok())
            .unwrap_or(0))
    }

    /// Note that the full listing `mark` saw this instance (unchanged since).
    pub fn set_mark(&self, guid: &str, mark: i64) -> IndexResult<()> {
        self.conn
            .prepare_cached("UPDATE instances SET mark = ?2 WHERE guid = ?1")?
            .execute(params![guid, mark])?;
        Ok(())
    }

    /// Instances (of `party`, or all) that the full listing `mark` did not see.
    pub fn unmarked(&self, party: Option<&str>, mark: i64) -> IndexResult<Vec<(String, String)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT party, guid FROM instances
             WHERE mark < ?1 AND (?2 IS NULL OR party = ?2) ORDER BY party, guid",
        )?;
        let rows = st.query_map(params![mark, party], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the index holds any instance of `party`.
    pub fn party_exists(&self, party: &str) -> IndexResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM instances WHERE party = ?1 LIMIT 1")?
            .query_row([party], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Remove an instance and its elements; false if it was not there.
    pub fn delete_instance(&self, guid: &str) -> IndexResult<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM instances WHERE guid = ?1")?
            .execute([guid])?;
        Ok(n > 0)
    }

    /// Up to `limit` instances of `party` with a GUID after `after`, in GUID order: a
    /// directory of any size is read page by page.
    pub fn party_instances(
        &self,
        party: &str,
        after: Option<&str>,
        limit: usize,
    ) -> IndexResult<Vec<InstanceSummary>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLS} FROM instances
             WHERE party = ?1 AND guid > ?2 ORDER BY guid LIMIT ?3"
        ))?;
        let rows = st.query_map(params![party, after.unwrap_or(""), limit as i64], summary)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Like `party_instances`, with whole documents (a walk that goes into every instance).
    pub fn party_documents(
        &self,
        party: &str,
        after: Option<&str>,
        limit: usize,
    ) -> IndexResult<Vec<Instance>> {
        let mut out = Vec::new();
        for s in self.party_instances(party, after, limit)? {
            if let Some(i) = self.get_instance(&s.guid)? {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Up to `limit` parties after `after` with their number of instances, in order.
    pub fn parties(&self, after: Option<&str>, limit: usize) -> IndexResult<Vec<(String, u64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT party, count(*) FROM instances WHERE party > ?1
             GROUP BY party ORDER BY party LIMIT ?2",
        )?;
        let rows = st.query_map(params![after.unwrap_or(""), limit as i64], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Ended instances that `org` has not confirmed, oldest end first (`.inbox/`), after the
    /// (ended µs, guid) of the last row of the previous page.
    pub fn inbox(
        &self,
        org: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> IndexResult<Vec<InstanceSummary>> {
        let (t, g) = after.unwrap_or((i64::MIN, ""));
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLS} FROM instances
             WHERE ended_us IS NOT NULL AND deleted = 0
               AND instr(confirmed_by, ',' || ?1 || ',') = 0
               AND (ended_us > ?2 OR (ended_us = ?2 AND guid > ?3))
             ORDER BY ended_us, guid LIMIT ?4"
        ))?;
        let rows = st.query_map(params![org, t, g, limit as i64], summary)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn counts(&self) -> IndexResult<IndexCounts> {
        let one = |sql: &str| -> IndexResult<u64> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        Ok(IndexCounts {
            instances: one("SELECT count(*) FROM instances")?,
            elements: one("SELECT count(*) FROM elements")?,
            parties: one("SELECT count(DISTINCT party) FROM instances")?,
            feed_rows: one("SELECT count(*) FROM feed")?,
            last_seq: self.last_seq()?,
            done: one("SELECT count(*) FROM done")?,
        })
    }

    // ----- key/value: the cursor and the listing bookkeeping -----

    pub fn meta_get(&self, key: &str) -> IndexResult<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub fn meta_set(&self, key: &str, value: &str) -> IndexResult<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute([key, value])?;
        Ok(())
    }

    /// Every key/value row, by key (cursors, last full listings; `altinnfs cache --show`).
    pub fn meta_all(&self) -> IndexResult<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key, value FROM meta ORDER BY key")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The change cursor of a scope (`app`, or `party:N` for user tokens): the greatest
    /// server `lastChanged` the cursor has seen, as the server wrote it.
    pub fn cursor(&self, scope: &str) -> IndexResult<Option<Timestamp>> {
        Ok(self
            .meta_get(&format!("cursor:{scope}"))?
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    pub fn set_cursor(&self, scope: &str, t: &Timestamp) -> IndexResult<()> {
        let s = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        self.meta_set(&format!("cursor:{scope}"), &s)
    }

    // ----- the feed -----

    /// Append events in order, filling in `seq` and `seen`.
    pub fn append_events(&self, events: &mut [FeedEvent], now: &Timestamp) -> IndexResult<()> {
        let seen = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut st = self.conn.prepare_cached(
            "INSERT INTO feed (seen, seen_us, event, party, instance, data_type, element,
                 path, last_changed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for e in events.iter_mut() {
            e.seen = seen.clone();
            e.path = cap(&e.path, MAX_PATH);
            st.execute(params![
                e.seen,
                now.timestamp_micros(),
                e.event.as_str(),
                e.party,
                e.instance,
                e.data_type,
                e.element,
                e.path,
                e.last_changed,
            ])?;
            e.seq = self.conn.last_insert_rowid() as u64;
        }
        Ok(())
    }

    /// Up to `limit` events with a seq greater than `seq`, in order.
    pub fn feed_since(&self, seq: u64, limit: usize) -> IndexResult<Vec<FeedEvent>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {FEED_COLS} FROM feed WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = st.query_map(params![seq as i64, limit as i64], feed_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to `limit` events seen at or after `t`, in order.
    pub fn feed_since_time(&self, t: &Timestamp, limit: usize) -> IndexResult<Vec<FeedEvent>> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {FEED_COLS} FROM feed WHERE seen_us >= ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = st.query_map(params![t.timestamp_micros(), limit as i64], feed_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The greatest seq ever handed out (0 for none), pruned rows included.
    pub fn last_seq(&self) -> IndexResult<u64> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'feed'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// Drop events seen before `before`, and the oldest beyond `max_rows`. Returns how many.
    pub fn prune_feed(&self, before: &Timestamp, max_rows: u64) -> IndexResult<usize> {
        let old = self
            .conn
            .prepare_cached("DELETE FROM feed WHERE seen_us < ?1")?
            .execute([before.timestamp_micros()])?;
        let over = self
            .conn
            .prepare_cached("DELETE FROM feed WHERE seq <= (SELECT max(seq) FROM feed) - ?1")?
            .execute([max_rows as i64])?;
        Ok(old + over)
    }

    // ----- what this mount confirmed -----

    pub fn mark_done(&self, party: &str, guid: &str, at: &Timestamp) -> IndexResult<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO done (guid, party, confirmed_us) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![guid, party, at.timestamp_micros()])?;
        Ok(())
    }

    /// Confirmed instances as (party, guid, when), newest first, after the (µs, guid) of
    /// the previous page's last row.
    pub fn done(
        &self,
        before: Option<(i64, &str)>,
        limit: usize,
    ) -> IndexResult<Vec<(String, String, Timestamp)>> {
        let (t, g) = before.unwrap_or((i64::MAX, "\u{10FFFF}"));
        let mut st = self.conn.prepare_cached(
            "SELECT party, guid, confirmed_us FROM done
             WHERE confirmed_us < ?1 OR (confirmed_us = ?1 AND guid < ?2)
             ORDER BY confirmed_us DESC, guid DESC LIMIT ?3",
        )?;
        let rows = st.query_map(params![t, g, limit as i64], |r| {
            let us: i64 = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                from_micros(Some(us)).unwrap_or_default(),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn is_done(&self, guid: &str) -> IndexResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM done WHERE guid = ?1")?
            .query_row([guid], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
