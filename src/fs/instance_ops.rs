//! SPEC §4 instance operations: `mkdir` creates an instance, `rmdir` deletes one, and the
//! `user.altinn.confirm` / `user.altinn.process` attributes run instance actions. The server
//! calls are the [`actions::InstanceActions`] component's; here the tree learns the outcome.

use super::actions::Action;
use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `mkdir PARTY/NAME` creates an instance; NAME stays an alias of its GUID directory.
    pub async fn mkdir(&self, parent: u64, name: &str) -> FsResult<Attr> {
        self.refuse_in_view(parent)?;
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let Node::Party { party } = &pnode else {
            return Err(FsError::refused(
                path,
                "directories can only be made in a party directory (they create instances)",
            ));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        if self.child(&pnode, name).await.is_ok() {
            return Err(FsError::new(ErrorKind::Exists, path));
        }
        let _busy = self.busy();
        let party = *party;
        let inst = self.actions.create(party, &path).await?;
        let guid = InstanceGuid::parse(inst.guid()).map_err(|e| {
            tracing::warn!("{path}: the new instance: {e}");
            FsError::new(ErrorKind::Invalid(e.to_string()), &path)
        })?;
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
        let node = Node::Instance { party, guid };
        self.tree.add_to_party(party, guid, true);
        if guid != *name {
            self.tree.add_alias(party, name, guid);
        }
        self.tree.clear_missing(parent, name);
        self.tree.lookup_ref(&node);
        tracing::info!("{path}: created instance {party}/{guid}");
        self.attr_of(inode::ino_of(&node), &node).await
    }

    /// `rmdir` of an instance directory deletes the instance (EPERM when Altinn refuses).
    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.refuse_in_view(parent)?;
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let node = self.child(&pnode, name).await?;
        let Node::Instance { party, guid } = &node else {
            return Err(FsError::refused(
                path,
                "only instance directories can be removed",
            ));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let _busy = self.busy();
        let (party, guid) = (*party, *guid);
        self.actions
            .delete(&InstanceId::new(party, guid), &path)
            .await?;
        let mut inv: Vec<Inval> = self
            .tree
            .remove_instance(party, guid)
            .into_iter()
            .map(|name| Inval::Entry { parent, name })
            .collect();
        if guid != *name {
            inv.push(Inval::Entry {
                parent,
                name: guid.to_string(),
            });
        }
        self.writer.drop_instance(guid);
        self.index_deleted(party, guid);
        self.notify(inv);
        Ok(())
    }

    /// `user.altinn.confirm=complete` and `user.altinn.process=next[:ACTION]` on an instance
    /// directory run those actions; every other attribute is read-only.
    pub async fn setxattr(&self, ino: u64, name: &str, value: &[u8]) -> FsResult<()> {
        let node = self.xattr_target(self.node(ino)?, name)?;
        let path = self.path_of(&node);
        let value = String::from_utf8_lossy(value).trim().to_string();
        let Node::Instance { party, guid } = &node else {
            return Err(FsError::new(ErrorKind::AttrNotSupported, path));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let action = match Action::parse(name, &value) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(FsError::new(ErrorKind::AttrNotSupported, path)),
            Err(kind) => return Err(FsError::new(kind, path)),
        };
        let _busy = self.busy();
        let r = InstanceId::new(*party, *guid);
        let inst = self.actions.run(&r, &action, &path).await?;
        if matches!(action, Action::Complete) {
            self.index_confirmed(&inst);
        }
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
        Ok(())
    }
}
