//! Which files a walk reads next, from cached metadata only (never a request). Tools visit a
//! party's instance directories in one of two orders: readdir (name) order (`tar`, `rsync`,
//! `restic`, `find`), or inode order (GNU `cp -r` sorts each directory by `d_ino` to read it
//! fast). Inside one instance any order is followed, since the plan holds its unread files.

use super::*;

/// The order a reader visits the instance directories of a party in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Name,
    Inode,
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

/// A party's instances sorted by inode number, kept for the walk that asked last.
#[derive(Default)]
pub(super) struct InodeOrder {
    party: String,
    made: Option<Instant>,
    /// (inode, GUID), ascending.
    guids: Arc<Vec<(u64, String)>>,
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

    /// The order in which `to` follows `from` closely (within `n` instances), if it does.
    pub(super) fn order_of_move(
        &self,
        party: &str,
        from: &str,
        to: &str,
        n: usize,
    ) -> Option<Order> {
        [Order::Name, Order::Inode].into_iter().find(|o| {
            self.instances_after(party, from, *o, n)
                .iter()
                .any(|g| g == to)
        })
    }

    fn by_inode(&self, party: &str) -> Arc<Vec<(u64, String)>> {
        let mut cache = self.walks.inode_order.lock().unwrap();
        let fresh = cache
            .made
            .is_some_and(|t| t.elapsed() < self.cfg.metadata_ttl);
        if cache.party != party || !fresh {
            let mut v: Vec<(u64, String)> = self
                .all_guids(party)
                .into_iter()
                .map(|g| (instance_ino(party, &g), g))
                .collect();
            v.sort();
            *cache = InodeOrder {
                party: party.to_string(),
                made: Some(Instant::now()),
                guids: Arc::new(v),
            };
        }
        cache.guids.clone()
    }

    /// The next `prefetch_files` elements of a walk at element `id`: the files of its
    /// instance after it (in readdir order) and those not read yet, then the files of the
    /// next instances in `order`.
    pub(super) fn plan(&self, party: &str, guid: &str, id: &str, order: Order) -> Vec<Step> {
        let n = self.walks.files;
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
        let mut from = guid.to_string();
        while out.len() < n {
            let next = self.instances_after(party, &from, order, n);
            if next.is_empty() {
                break;
            }
            for g in next {
                // Not listed here yet: the walk does not ask the server.
                let Some(e) = self.cached_instance(&g) else {
                    out.truncate(n);
                    return out;
                };
                for el in self.in_readdir_order(&e) {
                    out.push(Step::new(party, &g, el));
                }
                from = g;
                if out.len() >= n {
                    break;
                }
            }
        }
        out.truncate(n);
        out
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
    fn cached_instance(&self, guid: &str) -> Option<Arc<InstEntry>> {
        if let Some(e) = self.tree.peek_instance(InstanceGuid::parse(guid).ok()?) {
            return Some(e);
        }
        let inst = self
            .index_link()?
            .refresher
            .index()
            .get_instance(guid)
            .ok()??;
        Some(Arc::new(InstEntry::new(inst, &self.meta)))
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
