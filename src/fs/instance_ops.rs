//! SPEC §4 instance operations: `mkdir` creates an instance, `rmdir` deletes one, and the
//! `user.altinn.confirm` / `user.altinn.process` attributes run instance actions.

use super::*;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- instances

    /// `mkdir PARTY/NAME` creates an instance; NAME stays an alias of its GUID directory.
    pub async fn mkdir(&self, parent: u64, name: &str) -> FsResult<Attr> {
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
        let inst = self
            .client
            .create_instance(party)
            .await
            .map_err(|e| FsError::server(&path, "POST instances", e))?;
        let guid = inst.guid().to_string();
        let (_, inv) = self.put_instance(inst);
        self.notify(inv);
        let node = Node::Instance {
            party: party.clone(),
            guid: guid.clone(),
        };
        self.tree.add_to_party(party, &guid, true);
        if name != guid {
            self.tree.add_alias(party, name, &guid);
        }
        self.tree.clear_missing(parent, name);
        self.tree.lookup_ref(&node);
        tracing::info!("{path}: created instance {party}/{guid}");
        self.attr_of(inode::ino_of(&node), &node).await
    }

    /// `rmdir` of an instance directory deletes the instance (EPERM when Altinn refuses).
    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
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
        let r = Self::instance_ref(party, guid);
        let hard = self.cfg.hard_delete;
        self.cfg
            .retry
            .run("DELETE instance", || self.client.delete_instance(&r, hard))
            .await
            .map_err(|err| match err.status() {
                Some(400) | Some(403) | Some(409) => FsError::refused(
                    &path,
                    format!("Altinn refused to delete the instance: {err}"),
                ),
                _ => FsError::server(&path, "DELETE instance", err),
            })?;
        let mut inv: Vec<Inval> = self
            .tree
            .remove_instance(party, guid)
            .into_iter()
            .map(|name| Inval::Entry { parent, name })
            .collect();
        if name != guid {
            inv.push(Inval::Entry {
                parent,
                name: guid.clone(),
            });
        }
        self.writer.drop_instance(guid);
        self.notify(inv);
        Ok(())
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    /// `user.altinn.confirm=complete` and `user.altinn.process=next[:ACTION]` on an instance
    /// directory run those actions; every other attribute is read-only.
    pub async fn setxattr(&self, ino: u64, name: &str, value: &[u8]) -> FsResult<()> {
        let node = self.node(ino)?;
        let path = self.path_of(&node);
        let value = String::from_utf8_lossy(value).trim().to_string();
        let Node::Instance { party, guid } = &node else {
            return Err(FsError::new(ErrorKind::AttrNotSupported, path));
        };
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let r = InstanceRef::new(party.clone(), guid.clone());
        let _w = self.busy();
        match (name, value.as_str()) {
            ("user.altinn.confirm", "complete") => {
                let inst = self
                    .client
                    .complete_instance(&r)
                    .await
                    .map_err(|e| FsError::server(&path, "POST complete", e))?;
                let (_, inv) = self.put_instance(inst);
                self.notify(inv);
            }
            ("user.altinn.process", v) if v == "next" || v.starts_with("next:") => {
                let action = v.strip_prefix("next:").filter(|a| !a.is_empty());
                self.client.process_next(&r, action).await.map_err(|e| {
                    let e = FsError::server(&path, "PUT process/next", e);
                    if let ErrorKind::Server { err, .. } = &e.kind {
                        for i in err.issue_codes() {
                            tracing::warn!("{path}: process/next validation issue: {i}");
                        }
                        if matches!(err.status(), Some(400) | Some(403) | Some(409)) {
                            return FsError::refused(&path, format!("process/next refused: {err}"));
                        }
                    }
                    e
                })?;
                let inst = self
                    .cfg
                    .retry
                    .run("GET instance", || self.client.get_instance(&r))
                    .await
                    .map_err(|e| FsError::server(&path, "GET instance", e))?;
                let (_, inv) = self.put_instance(inst);
                self.notify(inv);
            }
            ("user.altinn.confirm", _) | ("user.altinn.process", _) => {
                return Err(FsError::new(
                    ErrorKind::Invalid(format!("{name}: unknown value {value:?}")),
                    path,
                ))
            }
            _ => return Err(FsError::new(ErrorKind::AttrNotSupported, path)),
        }
        Ok(())
    }
}
