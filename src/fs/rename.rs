//! SPEC §4 unlink and rename inside a data type directory.

use super::write::LocalFile;
use super::*;
use crate::altinn::rules;

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- unlink / rename

    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        let node = self.child(&pnode, name).await?;
        match &node {
            Node::StatelessFile { dt, name } => {
                self.stateless_unlink(dt, name)?;
                self.notify(vec![Inval::Inode(inode::ino_of(&node))]);
                Ok(())
            }
            Node::FormJson { .. } => Err(FsError::refused(
                path,
                "X.json is the JSON view of X.xml; remove X.xml to delete the element",
            )),
            Node::Local { .. } => {
                let ino = inode::ino_of(&node);
                self.remove_local(ino, true);
                Ok(())
            }
            Node::Element {
                party,
                guid,
                dt,
                id,
            } => {
                let e = self.instance(party, guid, false).await?;
                self.check_writable(&path, &e.inst)?;
                if self.data_type(dt)?.is_main_form() {
                    return Err(FsError::refused(&path, "the main form of an instance cannot be deleted (Altinn: Cannot Delete main data element)"));
                }
                let _busy = self.busy();
                let r = Self::instance_ref(party, guid);
                self.cfg
                    .retry
                    .run("DELETE data", || self.client.delete_data(&r, id))
                    .await
                    .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                self.element_removed(guid, id);
                Ok(())
            }
            n if n.is_dir() => Err(FsError::new(ErrorKind::IsDir, path)),
            _ => Err(FsError::refused(path, "read-only file")),
        }
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        newparent: u64,
        newname: &str,
        flags: u32,
    ) -> FsResult<()> {
        let pnode = self.node(parent)?;
        let path = format!("{}/{name}", self.path_of(&pnode));
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(FsError::new(
                ErrorKind::Invalid("RENAME_EXCHANGE".into()),
                path,
            ));
        }
        let Node::DataTypeDir { party, guid, dt } = pnode.clone() else {
            return Err(FsError::refused(
                path,
                "only files inside a data type directory can be renamed",
            ));
        };
        if parent != newparent {
            return Err(FsError::new(ErrorKind::CrossDevice, path));
        }
        if newname.len() > layout::NAME_MAX {
            return Err(FsError::new(
                ErrorKind::Invalid("name too long".into()),
                path,
            ));
        }
        let src = self.child(&pnode, name).await?;
        let dst = match self.child(&pnode, newname).await {
            Ok(n) => Some(n),
            Err(e) if e.errno() == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        if dst.as_ref() == Some(&src) {
            return Ok(());
        }
        if matches!(src, Node::FormJson { .. }) {
            return Err(FsError::refused(
                path,
                "X.json is the JSON view of X.xml and cannot be renamed",
            ));
        }
        if dst.is_some() && flags & libc::RENAME_NOREPLACE != 0 {
            return Err(FsError::new(
                ErrorKind::Exists,
                format!("{}/{newname}", self.path_of(&pnode)),
            ));
        }
        let newpath = format!("{}/{newname}", self.path_of(&pnode));
        let e = self.instance(&party, &guid, false).await?;
        self.check_writable(&newpath, &e.inst)?;
        let dtype = self.data_type(&dt)?.clone();
        let _busy = self.busy();
        self.clear_negative(parent, newname);
        // A local target is simply replaced.
        let dst = match dst {
            Some(d @ Node::Local { .. }) => {
                self.remove_local(inode::ino_of(&d), true);
                None
            }
            d => d,
        };
        match (&src, &dst) {
            (Node::Local { .. }, None) => {
                let ino = inode::ino_of(&src);
                if !layout::is_temp_name(newname) {
                    self.check_new(&newpath, &e, &dtype, newname, Some(ino))?;
                }
                let l = {
                    let mut st = self.st.lock().unwrap();
                    let l = st
                        .locals
                        .get_mut(&ino)
                        .ok_or_else(|| FsError::not_found(&path))?;
                    l.name = newname.to_string();
                    l.clone()
                };
                // rsync and editors close the temporary file, then rename it; the kernel's
                // release may come after the rename. Bytes flushed at close are complete, so
                // upload now and let rename return once the element exists.
                let flushed = l.writers == 0 || self.write_handles_clean(ino);
                if flushed && l.len > 0 && !layout::is_temp_name(newname) {
                    match self
                        .post_file(&party, &guid, &dt, newname, &l.spool, l.len)
                        .await
                    {
                        Ok(el) => {
                            let _ = std::fs::remove_file(&l.spool);
                            self.local_became_element(ino, &l, el);
                        }
                        Err(err) => {
                            let fe = FsError::server(&newpath, "POST data", err);
                            self.save_unsent(&l.spool, &newpath, &party, &guid, &dt, newname, &fe);
                            self.remove_local(ino, false);
                            return Err(fe);
                        }
                    }
                }
                Ok(())
            }
            (Node::Local { .. }, Some(Node::FormJson { id: did, .. })) => {
                // An editor's temporary file saved over X.json: PUT it as JSON.
                let ino = inode::ino_of(&src);
                let (l, del) = self.local_over(ino, &path, &e, did, &newpath)?;
                let filename = del.filename.clone().unwrap_or_else(|| format!("{dt}.xml"));
                let el = self
                    .put_file_as(
                        &party,
                        &guid,
                        did,
                        &filename,
                        "application/json",
                        &l.spool,
                        l.len,
                    )
                    .await
                    .map_err(|err| FsError::server(&newpath, "PUT data (JSON)", err))?;
                self.remove_local(ino, true);
                self.json_views.lock().unwrap().remove(did);
                let jnode = dst.clone().unwrap();
                self.element_changed(&party, &guid, el);
                self.tree.rebind(ino, &jnode);
                self.notify(vec![
                    Inval::Inode(ino),
                    Inval::Entry {
                        parent,
                        name: newname.to_string(),
                    },
                ]);
                Ok(())
            }
            (Node::Local { .. }, Some(Node::Element { id: did, .. })) => {
                let ino = inode::ino_of(&src);
                let (l, del) = self.local_over(ino, &path, &e, did, &newpath)?;
                let filename = del.filename.clone().unwrap_or_else(|| newname.to_string());
                let el = self
                    .put_file(&party, &guid, did, &filename, &l.spool, l.len)
                    .await
                    .map_err(|err| FsError::server(&newpath, "PUT data", err))?;
                self.remove_local(ino, true);
                let id = el.id.clone();
                self.element_changed(&party, &guid, el);
                self.renamed_onto(inode::ino_of(&src), &party, &guid, &dt, &id, newname);
                Ok(())
            }
            (Node::Element { id: sid, .. }, dst) => {
                let sel = e
                    .element(sid)
                    .cloned()
                    .ok_or_else(|| FsError::not_found(&path))?;
                if dtype.is_main_form() && dst.is_none() {
                    return Err(FsError::refused(
                        &path,
                        "the main form cannot be renamed (it would be deleted)",
                    ));
                }
                let (spool, file) = self.new_spool().map_err(|e| FsError::io(&path, e))?;
                let len = sel.size.max(0) as u64;
                let res = async {
                    self.copy_blob_into(&party, &guid, &sel, &file).await?;
                    drop(file);
                    let r = Self::instance_ref(&party, &guid);
                    match dst {
                        Some(Node::Element { id: did, .. }) => {
                            let del = e
                                .element(did)
                                .cloned()
                                .ok_or_else(|| FsError::not_found(&newpath))?;
                            if del.locked {
                                return Err(FsError::refused(
                                    &newpath,
                                    "the data element is locked",
                                ));
                            }
                            let filename =
                                del.filename.clone().unwrap_or_else(|| newname.to_string());
                            let el = self
                                .put_file(&party, &guid, did, &filename, &spool, len)
                                .await
                                .map_err(|err| FsError::server(&newpath, "PUT data", err))?;
                            let id = el.id.clone();
                            self.element_changed(&party, &guid, el);
                            self.renamed_onto(
                                inode::ino_of(&src),
                                &party,
                                &guid,
                                &dt,
                                &id,
                                newname,
                            );
                        }
                        _ => {
                            rules::check_new_file(&dtype, newname)
                                .map_err(|v| FsError::new(ErrorKind::Rule(v), &newpath))?;
                            // At maxCount the new element only fits once the old one is gone:
                            // delete first; the bytes are in the spool, and go to unsent/ if
                            // the POST then fails, so nothing is lost.
                            let n = e.inst.data.iter().filter(|d| d.data_type == dt).count();
                            let delete_first = !rules::count_allows_one_more(&dtype, n);
                            if delete_first {
                                self.cfg
                                    .retry
                                    .run("DELETE data", || self.client.delete_data(&r, sid))
                                    .await
                                    .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                                self.element_removed(&guid, sid);
                            }
                            let el = match self
                                .post_file(&party, &guid, &dt, newname, &spool, len)
                                .await
                            {
                                Ok(el) => el,
                                Err(err) => {
                                    let fe = FsError::server(&newpath, "POST data", err);
                                    if delete_first {
                                        self.save_unsent(
                                            &spool, &newpath, &party, &guid, &dt, newname, &fe,
                                        );
                                    }
                                    return Err(fe);
                                }
                            };
                            let id = el.id.clone();
                            self.element_changed(&party, &guid, el);
                            self.renamed_onto(
                                inode::ino_of(&src),
                                &party,
                                &guid,
                                &dt,
                                &id,
                                newname,
                            );
                            if delete_first {
                                return Ok(());
                            }
                        }
                    }
                    self.cfg
                        .retry
                        .run("DELETE data", || self.client.delete_data(&r, sid))
                        .await
                        .map_err(|err| FsError::server(&path, "DELETE data", err))?;
                    self.element_removed(&guid, sid);
                    Ok(())
                }
                .await;
                let _ = std::fs::remove_file(&spool);
                res
            }
            _ => Err(FsError::refused(path, "cannot rename this entry")),
        }
    }

    /// A local file saved over element `did`: the local file and the element it replaces;
    /// refused when the element is locked or the file is empty.
    fn local_over(
        &self,
        ino: u64,
        path: &str,
        e: &InstEntry,
        did: &str,
        newpath: &str,
    ) -> FsResult<(LocalFile, DataElement)> {
        let l = self
            .st
            .lock()
            .unwrap()
            .locals
            .get(&ino)
            .cloned()
            .ok_or_else(|| FsError::not_found(path))?;
        let del = e
            .element(did)
            .cloned()
            .ok_or_else(|| FsError::not_found(newpath))?;
        if del.locked {
            return Err(FsError::refused(newpath, "the data element is locked"));
        }
        if l.len == 0 {
            return Err(FsError::new(ErrorKind::Empty, newpath));
        }
        Ok((l, del))
    }
}
