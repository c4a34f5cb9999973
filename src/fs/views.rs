//! `.inbox/` and `.done/` (SPEC §7.4), for app owners (org tokens): the ended instances this
//! org has not confirmed, oldest first, and those this mount confirmed, newest first, each
//! as `<partyId>/<instanceGuid>/` with the main tree below. Both are read from the index
//! (kept fresh by the cursor), reachable by name, not listed in the root, and read-only:
//! writes, unlink, rmdir give EROFS. `mv .inbox/P/G .done/` confirms the instance (POST
//! `complete`) and moves it only once the server accepted.

use super::freshness::IndexLink;
use super::index::{IndexResult, MetaIndex};
use super::layout::View;
use super::*;
use std::collections::HashSet;

/// Rows read from the index per step of a view listing.
const VIEW_PAGE: usize = 500;

fn read_only(path: impl Into<String>) -> FsError {
    FsError::new(ErrorKind::ReadOnly, path)
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// The index and the org, for an org token's mount; None otherwise (no views).
    fn view_owner(&self) -> Option<(&IndexLink<C>, &str)> {
        let link = self.index_link()?;
        Some((link, link.org.as_deref()?))
    }

    /// `.inbox` or `.done` in the root: only for an org token.
    pub(super) fn view_in_root(&self, view: View) -> FsResult<Node> {
        match self.view_owner() {
            Some(_) => Ok(Node::ViewRoot { view }),
            None => Err(FsError::not_found(view.dir_name())),
        }
    }

    /// EROFS for anything that would change the views.
    pub(super) fn refuse_in_view(&self, ino: u64) -> FsResult<()> {
        match self.tree.node(ino) {
            Some(n) if n.in_view() => Err(read_only(self.path_of(&n))),
            _ => Ok(()),
        }
    }

    /// (party, guid) of a view, in its order, for `party` only when given.
    async fn view_rows(&self, view: View, party: Option<PartyId>) -> FsResult<Vec<InstanceId>> {
        let party = party.map(|p| p.to_string());
        let rows = self.view_rows_raw(view, party.as_deref()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, g)| {
                InstanceId::parse(format!("{p}/{g}"))
                    .inspect_err(|e| tracing::warn!("{}: {e}; left out", view.dir_name()))
                    .ok()
            })
            .collect())
    }

    /// The rows of `view_rows` as the index holds them.
    async fn view_rows_raw(
        &self,
        view: View,
        party: Option<&str>,
    ) -> FsResult<Vec<(String, String)>> {
        let Some((link, org)) = self.view_owner() else {
            return Ok(vec![]);
        };
        self.index_fresh(link).await?;
        let ix = link.refresher.index();
        let keep = |p: &str| party.is_none_or(|want| want == p);
        let rows = match view {
            View::Inbox => inbox_rows(ix, org, keep),
            View::Done => done_rows(ix, keep),
        };
        rows.map_err(|e| FsError::io(view.dir_name(), e))
    }

    /// The instance is in the view now (by the index).
    fn in_view_now(&self, view: View, party: PartyId, guid: InstanceGuid) -> bool {
        let Some((link, org)) = self.view_owner() else {
            return false;
        };
        let ix = link.refresher.index();
        let guid = guid.to_string();
        match view {
            View::Done => ix.read(|db| db.is_done(&guid)).unwrap_or(false),
            View::Inbox => match ix.get_instance(&guid) {
                Ok(Some(i)) => {
                    party == i.party_id()
                        && i.process.as_ref().is_some_and(|p| p.ended.is_some())
                        && !crate::fs::refresh::is_deleted(&i)
                        && !i
                            .complete_confirmations
                            .iter()
                            .any(|c| c.stakeholder_id == org)
                }
                _ => false,
            },
        }
    }

    /// The children of `.inbox`, `.done`, their parties, and the main tree below them.
    pub(super) async fn view_children(&self, node: &Node) -> FsResult<Vec<(String, Node)>> {
        Ok(match node {
            Node::ViewRoot { view } => {
                let mut seen = HashSet::new();
                self.view_rows(*view, None)
                    .await?
                    .into_iter()
                    .filter(|id| seen.insert(id.party))
                    .map(|id| {
                        let node = Node::ViewParty {
                            view: *view,
                            party: id.party,
                        };
                        (id.party.to_string(), node)
                    })
                    .collect()
            }
            Node::ViewParty { view, party } => self
                .view_rows(*view, Some(*party))
                .await?
                .into_iter()
                .map(|InstanceId { party, guid }| {
                    let inner = Box::new(Node::Instance { party, guid });
                    (guid.to_string(), Node::InView { view: *view, inner })
                })
                .collect(),
            Node::InView { view, inner } => Box::pin(self.children(inner))
                .await?
                .into_iter()
                .map(|(name, n)| {
                    (
                        name,
                        Node::InView {
                            view: *view,
                            inner: Box::new(n),
                        },
                    )
                })
                .collect(),
            _ => return Err(FsError::new(ErrorKind::NotDir, self.path_of(node))),
        })
    }

    /// `name` under a view node.
    pub(super) async fn view_child(&self, parent: &Node, name: &str) -> FsResult<Node> {
        let nf = || FsError::not_found(name.to_string());
        match parent {
            Node::ViewRoot { view } => {
                let party = PartyId::parse(name).map_err(|_| nf())?;
                if self.view_rows(*view, Some(party)).await?.is_empty() {
                    return Err(nf());
                }
                Ok(Node::ViewParty { view: *view, party })
            }
            Node::ViewParty { view, party } => {
                let guid = InstanceGuid::parse(name).map_err(|_| nf())?;
                if !self.in_view_now(*view, *party, guid) {
                    return Err(nf());
                }
                let inner = Box::new(Node::Instance {
                    party: *party,
                    guid,
                });
                Ok(Node::InView { view: *view, inner })
            }
            Node::InView { view, inner } => {
                let n = Box::pin(self.child(inner, name)).await?;
                Ok(Node::InView {
                    view: *view,
                    inner: Box::new(n),
                })
            }
            _ => Err(FsError::new(ErrorKind::NotDir, name.to_string())),
        }
    }

    /// Attributes in a view: those of the main tree, files read-only.
    pub(super) async fn view_attr(&self, ino: u64, node: &Node) -> FsResult<Attr> {
        match node {
            Node::InView { inner, .. } => {
                let mut a = Box::pin(self.attr_of(ino, inner)).await?;
                if a.kind == Kind::File {
                    a.perm &= !0o222;
                }
                Ok(a)
            }
            _ => Ok(self.dir_attr(ino, self.dir_stamps.mtime(ino, self.started), self.started)),
        }
    }

    /// A read handle on a file in a view; writing is EROFS.
    pub(super) async fn view_open(&self, node: &Node, write: bool) -> FsResult<write::Handle> {
        let path = self.path_of(node);
        match node {
            Node::InView { .. } if write => Err(read_only(path)),
            Node::InView { inner, .. } if !inner.is_dir() => {
                Box::pin(self.open_read(inner, &path)).await
            }
            _ => Err(FsError::new(ErrorKind::IsDir, path)),
        }
    }

    pub(super) fn view_path(&self, node: &Node) -> String {
        match node {
            Node::ViewRoot { view } => format!("/{}", view.dir_name()),
            Node::ViewParty { view, party } => format!("/{}/{party}", view.dir_name()),
            Node::InView { view, inner } => format!("/{}{}", view.dir_name(), self.path_of(inner)),
            other => self.path_of(other),
        }
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// A rename from or into a view: `mv .inbox/P/G .done/` (or `.done/P/`) confirms; any
    /// other is EROFS. None: neither side is a view.
    pub(super) async fn view_rename(
        &self,
        (parent, name): (u64, &str),
        (newparent, newname): (u64, &str),
    ) -> Option<FsResult<()>> {
        let from = self.tree.node(parent)?;
        let to = self.tree.node(newparent);
        if !from.in_view() && !to.as_ref().is_some_and(Node::in_view) {
            return None;
        }
        let path = format!("{}/{name}", self.path_of(&from));
        let Node::ViewParty {
            view: View::Inbox,
            party,
        } = &from
        else {
            return Some(Err(read_only(path)));
        };
        let into_done = match &to {
            Some(Node::ViewRoot { view: View::Done }) => newname == name,
            Some(Node::ViewParty {
                view: View::Done,
                party: p,
            }) => p == party && newname == name,
            _ => false,
        };
        let Ok(guid) = InstanceGuid::parse(name) else {
            return Some(Err(read_only(path)));
        };
        if !into_done || !self.in_view_now(View::Inbox, *party, guid) {
            return Some(Err(read_only(path)));
        }
        Some(self.confirm_from_inbox(*party, guid, &path).await)
    }

    /// POST `complete`; the instance leaves the inbox only once the server accepted.
    async fn confirm_from_inbox(
        &self,
        party: PartyId,
        guid: InstanceGuid,
        path: &str,
    ) -> FsResult<()> {
        let _busy = self.busy();
        let r = InstanceId::new(party, guid);
        let inst = self
            .actions
            .run(&r, &super::actions::Action::Complete, path)
            .await?;
        self.index_confirmed(&inst);
        tracing::info!("{path}: confirmed (moved to .done/)");
        let view_party = |view| inode::ino_of(&Node::ViewParty { view, party });
        let done_root = inode::ino_of(&Node::ViewRoot { view: View::Done });
        self.tree.clear_missing(done_root, &party.to_string());
        self.tree
            .clear_missing(view_party(View::Done), &guid.to_string());
        self.notify(vec![
            Inval::Entry {
                parent: view_party(View::Inbox),
                name: guid.to_string(),
            },
            Inval::Entry {
                parent: done_root,
                name: guid.to_string(),
            },
            Inval::Inode(view_party(View::Inbox)),
            Inval::Inode(view_party(View::Done)),
            Inval::Inode(inode::ino_of(&Node::ViewRoot { view: View::Inbox })),
            Inval::Inode(done_root),
        ]);
        Ok(())
    }

    /// The node an xattr is set on: in a view only `user.altinn.confirm` of an instance
    /// (which acts on the instance itself); anything else there is EROFS.
    pub(super) fn xattr_target(&self, node: Node, name: &str) -> FsResult<Node> {
        match node {
            Node::InView { inner, .. }
                if name == "user.altinn.confirm" && matches!(*inner, Node::Instance { .. }) =>
            {
                Ok(*inner)
            }
            n if n.in_view() => Err(read_only(self.path_of(&n))),
            n => Ok(n),
        }
    }

    /// Invalidations of the views for an instance that changed on the server.
    pub(super) fn view_invalidations(&self, party: PartyId, guid: InstanceGuid) -> Vec<Inval> {
        if self.view_owner().is_none() {
            return vec![];
        }
        let mut inv = Vec::new();
        for view in [View::Inbox, View::Done] {
            let root = inode::ino_of(&Node::ViewRoot { view });
            let p = inode::ino_of(&Node::ViewParty { view, party });
            // Looked up before it arrived: not missing any more.
            self.tree.clear_missing(root, &party.to_string());
            self.tree.clear_missing(p, &guid.to_string());
            inv.push(Inval::Entry {
                parent: root,
                name: party.to_string(),
            });
            inv.push(Inval::Inode(inode::ino_of(&Node::ViewRoot { view })));
            inv.push(Inval::Inode(p));
            inv.push(Inval::Entry {
                parent: p,
                name: guid.to_string(),
            });
        }
        inv
    }
}

/// `.inbox/`'s rows (party, guid) that `keep` keeps, oldest end first, read a page at a time.
fn inbox_rows(
    ix: &MetaIndex,
    org: &str,
    keep: impl Fn(&str) -> bool,
) -> IndexResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = ix.read(|db| {
            db.inbox(
                org,
                after.as_ref().map(|(t, g)| (*t, g.as_str())),
                VIEW_PAGE,
            )
        })?;
        let full = page.len() == VIEW_PAGE;
        after = page.last().map(|s| {
            let t = s.ended.map(|t| t.timestamp_micros()).unwrap_or(i64::MIN);
            (t, s.guid.clone())
        });
        out.extend(
            page.into_iter()
                .filter(|s| keep(&s.party))
                .map(|s| (s.party, s.guid)),
        );
        if !full {
            return Ok(out);
        }
    }
}

/// `.done/`'s rows (party, guid) that `keep` keeps, newest confirmation first, read a page at
/// a time.
fn done_rows(ix: &MetaIndex, keep: impl Fn(&str) -> bool) -> IndexResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut before: Option<(i64, String)> = None;
    loop {
        let page =
            ix.read(|db| db.done(before.as_ref().map(|(t, g)| (*t, g.as_str())), VIEW_PAGE))?;
        let full = page.len() == VIEW_PAGE;
        before = page
            .last()
            .map(|(_, g, t)| (t.timestamp_micros(), g.clone()));
        out.extend(
            page.into_iter()
                .filter(|(p, _, _)| keep(p))
                .map(|(p, g, _)| (p, g)),
        );
        if !full {
            return Ok(out);
        }
    }
}
