//! Which files a walk reads next, from cached metadata only (never a request). Tools visit a
//! party's instance directories in one of two orders: readdir (name) order (`tar`, `rsync`,
//! `restic`, `find`), or inode order (GNU `cp -r` sorts each directory by `d_ino` to read it
//! fast). Inside one instance any order is followed, since the plan holds its unread files.
//! After the last instance of a party the walk goes on into the next party (name order), as
//! tools take the parties given to them (`cp -r 5*`, `rsync -a /mnt/ dst`).

use super::*;
use std::collections::HashMap;

/// The order a reader visits the instance directories of a party in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Name,
    Inode,
}

/// How a walk goes on after an instance directory: its order, and whether it crosses into
/// the next party. It crosses only once it has crossed a party boundary itself, so copying
/// one party never downloads (and marks as read) another party's elements. `alt`: the last
/// move fitted the other order too (two instances can be neighbours by name and by inode);
/// the plan goes on in it where `order` runs out, until a later move tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Course {
    pub order: Order,
    pub across: bool,
    pub alt: Option<Order>,
}

impl Course {
    pub fn new(order: Order, across: bool) -> Self {
        Self {
            order,
            across,
            alt: None,
        }
    }
}

/// One element in walk order.
#[derive(Debug, Clone)]
pub(super) struct Step {
    pub party: String,
    pub guid: String,
    pub el: DataElement,
}

impl Step {
    fn new(party: &str, guid: &str, el: &DataElement) -> Self {
        Self {
            party: party.to_string(),
            guid: guid.to_string(),
            el: el.clone(),
        }
    }
}

/// How long an instance read from the index for a plan is reused by the next plans (a
/// change applied to the index meanwhile shows after this; the blob cache never serves a
/// blob whose `lastChanged` moved, so a stale plan costs a download, never stale bytes).
pub(super) const PARSED_TTL: Duration = Duration::from_secs(2);

/// One instance directory of a walk: (party, GUID).
pub(super) type Place = (String, String);

/// Parties whose instances sorted by inode number are kept (a walk crosses from one to the
/// next, and asks about both near the boundary).
const INODE_ORDERS: usize = 4;

/// A party's instances as (inode, GUID), ascending.
type ByInode = Arc<Vec<(u64, String)>>;

/// Parties' instances sorted by inode number, for the walks that asked last.
#[derive(Default)]
pub(super) struct InodeOrder {
    /// party -> (made, its instances by inode).
    parties: HashMap<String, (Instant, ByInode)>,
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// Up to `n` instances that follow `guid` in its party, in `order`.
    pub(super) fn instances_after(
        &self,
        party: &str,
        guid: &str,
        order: Order,
        n: usize,
    ) -> Vec<String> {
        match order {
            Order::Name => self.guids_after(party, guid, n),
            Order::Inode => {
                let sorted = self.by_inode(party);
                let at = instance_ino(party, guid);
                let i = sorted.partition_point(|(ino, _)| *ino <= at);
                sorted[i..].iter().take(n).map(|(_, g)| g.clone()).collect()
            }
        }
    }

    /// The first `n` instances of a party, in `order`.
    fn first_instances(&self, party: &str, order: Order, n: usize) -> Vec<String> {
        match order {
            Order::Name if self.index_link().is_some() => self.guids_after(party, "", n),
            Order::Name => {
                let Ok(party) = PartyId::parse(party) else {
                    return Vec::new();
                };
                let set = self.tree.party_guids(party, false).unwrap_or_default();
                set.iter().take(n).map(ToString::to_string).collect()
            }
            Order::Inode => self
                .by_inode(party)
                .iter()
                .take(n)
                .map(|(_, g)| g.clone())
                .collect(),
        }
    }

    /// Up to `n` instance directories after `(party, guid)` in a walk in `course.order`: the
    /// rest of the party, then (`course.across`) the next parties (tools take parties in
    /// name order: a shell glob, or rsync's sorted list).
    pub(super) fn places_after(
        &self,
        party: &str,
        guid: &str,
        course: Course,
        n: usize,
    ) -> Vec<Place> {
        let order = course.order;
        let mut out: Vec<Place> = self
            .instances_after(party, guid, order, n)
            .into_iter()
            .map(|g| (party.to_string(), g))
            .collect();
        let mut from = party.to_string();
        while course.across && out.len() < n {
            let Some(next) = self.party_after(&from) else {
                break;
            };
            for g in self.first_instances(&next, order, n - out.len()) {
                out.push((next.clone(), g));
            }
            from = next;
        }
        out
    }

    /// The orders in which `to` follows `from` closely (within `n` instance directories, in
    /// its party or across into the next), `first` first if it fits.
    pub(super) fn orders_of_move(
        &self,
        from: &Place,
        to: &Place,
        first: Order,
        n: usize,
    ) -> Vec<Order> {
        let other = match first {
            Order::Name => Order::Inode,
            Order::Inode => Order::Name,
        };
        [first, other]
            .into_iter()
            .filter(|o| {
                self.places_after(&from.0, &from.1, Course::new(*o, true), n)
                    .iter()
                    .any(|p| p == to)
            })
            .collect()
    }

    fn by_inode(&self, party: &str) -> ByInode {
        let mut cache = self.walks.inode_order.lock().unwrap();
        let ttl = self.cfg.metadata_ttl;
        if let Some((made, v)) = cache.parties.get(party) {
            if made.elapsed() < ttl {
                return v.clone();
            }
        }
        let mut v: Vec<(u64, String)> = self
            .all_guids(party)
            .into_iter()
            .map(|g| (instance_ino(party, &g), g))
            .collect();
        v.sort();
        let v = Arc::new(v);
        if cache.parties.len() >= INODE_ORDERS {
            cache.parties.clear();
        }
        cache
            .parties
            .insert(party.to_string(), (Instant::now(), v.clone()));
        v
    }

    /// The files a walk at element `id` reads next, up to `n`: the files of its instance
    /// after it (in readdir order) and those not read yet, then the files of the next
    /// instance directories on its `course`.
    pub(super) fn plan(&self, at: &Place, id: &str, course: Course, n: usize) -> Vec<Step> {
        let (party, guid) = at;
        let mut out = Vec::with_capacity(n);
        let Some(e) = self.cached_instance(guid) else {
            return out;
        };
        let mut past = false;
        for el in self.in_readdir_order(&e) {
            if el.id == id {
                past = true;
            } else if past || !self.blobs.holds(el) {
                out.push(Step::new(party, guid, el));
            }
        }
        let mut from = at.clone();
        let mut course = course;
        while out.len() < n {
            let next = self.places_after(&from.0, &from.1, course, n);
            if next.is_empty() {
                match course.alt.take() {
                    Some(alt) => {
                        course.order = alt;
                        continue;
                    }
                    None => break,
                }
            }
            for (p, g) in next {
                // Not listed here yet: the walk does not ask the server.
                let Some(e) = self.cached_instance(&g) else {
                    out.truncate(n);
                    return out;
                };
                for el in self.in_readdir_order(&e) {
                    out.push(Step::new(&p, &g, el));
                }
                from = (p, g);
                if out.len() >= n {
                    break;
                }
            }
        }
        out.truncate(n);
        out
    }

    /// The party after `party` in name order, among those the root shows (from the cache or
    /// the index, never a request).
    fn party_after(&self, party: &str) -> Option<String> {
        if let Some(link) = self.index_link() {
            if !link.parties.is_empty() {
                let mut all: Vec<String> = link.parties.iter().map(|p| p.to_string()).collect();
                all.sort();
                return all.into_iter().find(|p| p.as_str() > party);
            }
            let page = link.refresher.index().parties(Some(party), 1).ok()?;
            return page.into_iter().next().map(|(p, _)| p);
        }
        let mut all: Vec<String> = self
            .tree
            .root_parties()?
            .iter()
            .map(ToString::to_string)
            .collect();
        all.sort();
        all.into_iter().find(|p| p.as_str() > party)
    }

    /// Up to `n` GUIDs after `guid` in a party's listing (name order): from the metadata
    /// index when one is open, else from the tree's listing.
    fn guids_after(&self, party: &str, guid: &str, n: usize) -> Vec<String> {
        let Some(link) = self.index_link() else {
            let (Ok(party), Ok(guid)) = (PartyId::parse(party), InstanceGuid::parse(guid)) else {
                return Vec::new();
            };
            let after = self.tree.guids_after(party, guid, n);
            return after.iter().map(ToString::to_string).collect();
        };
        let page = link.refresher.index().party_instances(party, Some(guid), n);
        page.map(|v| {
            v.into_iter()
                .filter(|s| !s.deleted)
                .map(|s| s.guid)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every GUID of a party's listing.
    fn all_guids(&self, party: &str) -> Vec<String> {
        if self.index_link().is_none() {
            let Ok(party) = PartyId::parse(party) else {
                return Vec::new();
            };
            let set = self.tree.party_guids(party, false).unwrap_or_default();
            return set.iter().map(ToString::to_string).collect();
        }
        let mut out: Vec<String> = Vec::new();
        loop {
            let after = out.last().cloned().unwrap_or_default();
            let page = self.guids_after(party, &after, 1000);
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// An instance as the mount knows it (tree, else the index), never asking the server.
    /// Those read from the index are kept briefly, since each open of a walk plans again.
    fn cached_instance(&self, guid: &str) -> Option<Arc<InstEntry>> {
        if let Some(e) = self.tree.peek_instance(InstanceGuid::parse(guid).ok()?) {
            return Some(e);
        }
        let link = self.index_link()?;
        let mut parsed = self.walks.parsed.lock().unwrap();
        if let Some((made, e)) = parsed.get(guid) {
            if made.elapsed() < PARSED_TTL {
                return Some(e.clone());
            }
        }
        let inst = link.refresher.index().get_instance(guid).ok()??;
        let e = Arc::new(InstEntry::new(inst, &self.meta));
        parsed.put(guid.to_string(), (Instant::now(), e.clone()));
        Some(e)
    }

    /// An instance's elements by data type (app metadata order), then name.
    fn in_readdir_order<'a>(&self, e: &'a InstEntry) -> Vec<&'a DataElement> {
        self.meta
            .data_types
            .iter()
            .flat_map(|t| e.names.get(&t.id).into_iter().flatten())
            .map(|(_, i)| &e.inst.data[*i])
            .collect()
    }

    /// Whether `id` is the first file of its data type directory.
    pub(super) fn first_in_dir(&self, guid: &str, id: &str) -> bool {
        let Ok(id) = ElementId::parse(id) else {
            return false;
        };
        self.cached_instance(guid).is_some_and(|e| {
            e.element(&id)
                .and_then(|el| e.names.get(&el.data_type))
                .and_then(|names| names.first())
                .is_some_and(|(_, i)| id == e.inst.data[*i].id)
        })
    }
}

fn instance_ino(party: &str, guid: &str) -> u64 {
    match (PartyId::parse(party), InstanceGuid::parse(guid)) {
        (Ok(party), Ok(guid)) => inode::ino_of(&Node::Instance { party, guid }),
        _ => 0,
    }
}
