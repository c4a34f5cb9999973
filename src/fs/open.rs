//! SPEC §4 open and read through a handle: opening for write copies the element into a spool
//! (or starts empty on O_TRUNC); reads of a write handle come from its spool.

use super::read::ReadData;
use super::write::{spool_err, Handle, Target, WriteHandle};
use super::*;
use std::os::unix::fs::FileExt;

/// An open file: its handle, and whether the kernel may keep the pages it has of the file
/// (FOPEN_KEEP_CACHE: they were filled under the version the server still has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFile {
    pub fh: u64,
    pub keep_cache: bool,
}

impl OpenFile {
    fn new(fh: u64) -> Self {
        Self {
            fh,
            keep_cache: false,
        }
    }
}

impl<C: AltinnClient + ?Sized> AltinnFs<C> {
    // ---------------------------------------------------------------- open / read

    pub async fn open(&self, ino: u64, flags: impl Into<OpenFlags>) -> FsResult<u64> {
        Ok(self.open_file(ino, flags).await?.fh)
    }

    /// Open `ino`, and say whether the kernel may keep the pages it has of the file.
    pub async fn open_file(&self, ino: u64, flags: impl Into<OpenFlags>) -> FsResult<OpenFile> {
        let flags: OpenFlags = flags.into();
        let node = self.node(ino)?;
        let (write, trunc) = (flags.write, flags.truncate);
        let path = self.path_of(&node);
        if node.is_dir() {
            return Err(FsError::new(ErrorKind::IsDir, path));
        }
        if node.in_view() {
            let h = self.view_open(&node, write).await?;
            return Ok(OpenFile::new(self.add_handle(h)));
        }
        let h = match &node {
            Node::AppMeta | Node::InstanceJson { .. } | Node::ChangeFeed if write => {
                return Err(FsError::refused(path, "read-only file"))
            }
            Node::Element { .. } if write => self.open_write_existing(ino, &node, trunc).await?,
            Node::StatelessFile { .. } | Node::FormJson { .. } if write => {
                self.open_write_view(ino, &node, trunc).await?
            }
            Node::Local { dt, .. } if write => self.open_local_write(ino, dt, trunc, &path)?,
            Node::Element {
                party, guid, id, ..
            } => {
                let inst = InstanceId::new(*party, *guid);
                let (h, el) = self.open_element(inst, id, &path).await?;
                let keep_cache = self.page_versions.open_for_reading(ino, &el);
                return Ok(OpenFile {
                    fh: self.add_handle(h),
                    keep_cache,
                });
            }
            Node::Local { .. } => {
                let l = self
                    .writer
                    .local(ino)
                    .ok_or_else(|| FsError::not_found(&path))?;
                let f = std::fs::File::open(&l.spool).map_err(|e| spool_err(&path, e))?;
                Handle::File(Arc::new(f))
            }
            _ => self.open_read(&node, &path).await?,
        };
        if write {
            self.page_versions.open_for_writing(ino);
        }
        Ok(OpenFile::new(self.add_handle(h)))
    }

    /// The kernel released a handle of `ino` (`wrote`: one open for writing).
    pub fn file_closed(&self, ino: u64, wrote: bool) {
        self.page_versions.closed(ino, wrote);
    }

    /// A read handle on a file the server has: its bytes in memory, or a blob being streamed.
    pub(super) async fn open_read(&self, node: &Node, path: &str) -> FsResult<Handle> {
        Ok(match node {
            Node::AppMeta => Handle::Static(self.meta_json.clone()),
            Node::ChangeFeed => Handle::File(self.change_feed()?.file),
            Node::InstanceJson { party, guid } => {
                Handle::Static(self.instance(*party, *guid, true).await?.json())
            }
            Node::StatelessFile { dt, name } => Handle::Static(
                self.stateless_bytes(dt, name)
                    .await?
                    .ok_or_else(|| FsError::not_found(path))?,
            ),
            Node::FormJson {
                party, guid, id, ..
            } => {
                let e = self.instance(*party, *guid, true).await?;
                let el = e.element(id).ok_or_else(|| FsError::not_found(path))?;
                Handle::Static(self.json_view(InstanceId::new(*party, *guid), el).await?)
            }
            Node::Element {
                party, guid, id, ..
            } => {
                let inst = InstanceId::new(*party, *guid);
                self.open_element(inst, id, path).await?.0
            }
            _ => return Err(FsError::new(ErrorKind::IsDir, path)),
        })
    }

    /// A read handle on an element (its blob, streamed), and the element it was opened at.
    async fn open_element(
        &self,
        inst: InstanceId,
        id: &ElementId,
        path: &str,
    ) -> FsResult<(Handle, DataElement)> {
        let e = self.instance(inst.party, inst.guid, true).await?;
        let el = e.element(id).ok_or_else(|| FsError::not_found(path))?;
        if el.size <= 0 {
            return Ok((Handle::Static(Bytes::new()), el.clone()));
        }
        let b = self
            .blobs
            .open(self.client.clone(), inst, el)
            .map_err(|e| FsError::io(path, e))?;
        Ok((Handle::Blob(b), el.clone()))
    }

    /// A write handle on a local file: its own spool, truncated on O_TRUNC.
    fn open_local_write(
        &self,
        ino: u64,
        dt: &DataTypeId,
        trunc: bool,
        path: &str,
    ) -> FsResult<Handle> {
        let l = self
            .writer
            .local(ino)
            .ok_or_else(|| FsError::not_found(path))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&l.spool)
            .map_err(|e| spool_err(path, e))?;
        let mut len = l.len;
        if trunc {
            file.set_len(0).map_err(|e| spool_err(path, e))?;
            len = 0;
        }
        let max = self.data_type(dt)?.max_size_bytes();
        self.writer.open_local_writer(ino, len);
        Ok(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            WriteHandle {
                ino,
                target: Target::Local { ino },
                file,
                spool: l.spool,
                len,
                dirty: trunc,
                failed: None,
                max,
                owns_spool: false,
            },
        ))))
    }

    /// The element behind a file opened for writing, fetched fresh; refused when its instance
    /// cannot be changed or the element is locked.
    async fn writable_element(
        &self,
        path: &str,
        inst: InstanceId,
        id: &ElementId,
    ) -> FsResult<DataElement> {
        let e = self.instance(inst.party, inst.guid, true).await?;
        let el = e
            .element(id)
            .ok_or_else(|| FsError::not_found(path))?
            .clone();
        self.check_writable(path, &e.inst)?;
        if el.locked {
            return Err(FsError::refused(
                path,
                "the data element is locked (its task has ended)",
            ));
        }
        Ok(el)
    }

    pub(super) async fn open_write_existing(
        &self,
        ino: u64,
        node: &Node,
        trunc: bool,
    ) -> FsResult<Handle> {
        let Node::Element {
            party,
            guid,
            dt,
            id,
        } = node
        else {
            unreachable!()
        };
        let path = self.path_of(node);
        let inst = InstanceId::new(*party, *guid);
        let el = self.writable_element(&path, inst, id).await?;
        let max = self.data_type(dt)?.max_size_bytes();
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let mut len = 0;
        if !trunc && el.size > 0 {
            // A write into an existing file starts from its old bytes.
            if let Err(e) = self.copy_blob_into(inst, &el, &file).await {
                let _ = std::fs::remove_file(&spool);
                return Err(e.with_path(&path));
            }
            len = el.size as u64;
        }
        self.writer.start_writing(ino, len);
        Ok(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            WriteHandle {
                ino,
                target: Target::Existing {
                    party: *party,
                    guid: *guid,
                    dt: dt.clone(),
                    id: id.clone(),
                },
                file,
                spool,
                len,
                dirty: trunc,
                failed: None,
                max,
                owns_spool: true,
            },
        ))))
    }

    /// A write handle on a generated file (a stateless object, a JSON view), starting from
    /// its current bytes unless truncated.
    pub(super) async fn open_write_view(
        &self,
        ino: u64,
        node: &Node,
        trunc: bool,
    ) -> FsResult<Handle> {
        let path = self.path_of(node);
        if self.cfg.read_only {
            return Err(FsError::refused(path, "the mount is read-only"));
        }
        let (target, old, max) = self.view_target(node, trunc, &path).await?;
        let (spool, file) = self.new_spool().map_err(|e| spool_err(&path, e))?;
        let len = old.as_ref().map(|b| b.len() as u64).unwrap_or(0);
        if let Some(b) = &old {
            if let Err(e) = file.write_all_at(b, 0) {
                let _ = std::fs::remove_file(&spool);
                return Err(spool_err(&path, e));
            }
        }
        if let Target::Stateless { dt, name } = &target {
            self.stateless.begin_write(dt.as_str(), name);
        }
        self.writer.start_writing(ino, len);
        Ok(Handle::Write(Arc::new(tokio::sync::Mutex::new(
            WriteHandle {
                ino,
                target,
                file,
                spool,
                len,
                dirty: trunc,
                failed: None,
                max,
                owns_spool: true,
            },
        ))))
    }

    /// What a write to a generated file goes to, its current bytes (unless truncated) and
    /// its size limit.
    async fn view_target(
        &self,
        node: &Node,
        trunc: bool,
        path: &str,
    ) -> FsResult<(Target, Option<Bytes>, Option<u64>)> {
        match node {
            Node::StatelessFile { dt, name } => {
                let old = if trunc {
                    None
                } else {
                    self.stateless_bytes(dt, name).await?
                };
                let target = Target::Stateless {
                    dt: dt.clone(),
                    name: name.clone(),
                };
                Ok((target, old, Some(super::stateless::MAX_STATELESS_BYTES)))
            }
            Node::FormJson {
                party,
                guid,
                dt,
                id,
            } => {
                let inst = InstanceId::new(*party, *guid);
                let el = self.writable_element(path, inst, id).await?;
                let old = if trunc {
                    None
                } else {
                    Some(self.json_view(inst, &el).await?)
                };
                let target = Target::FormJson {
                    party: *party,
                    guid: *guid,
                    dt: dt.clone(),
                    id: id.clone(),
                };
                Ok((target, old, self.data_type(dt)?.max_size_bytes()))
            }
            _ => Err(FsError::refused(path, "read-only file")),
        }
    }

    /// Stream an element's bytes into `file` (through the blob cache).
    pub(super) async fn copy_blob_into(
        &self,
        inst: InstanceId,
        el: &DataElement,
        file: &std::fs::File,
    ) -> FsResult<()> {
        let path = format!("/{inst}/{}", el.data_type);
        let blob = self
            .blobs
            .open(self.client.clone(), inst, el)
            .map_err(|e| FsError::io(&path, e))?;
        let size = el.size.max(0) as u64;
        let mut off = 0u64;
        let r = async {
            while off < size {
                let b = blob
                    .read(off, 1 << 20)
                    .await
                    .map_err(|e| FsError::server(&path, "GET data", e))?;
                if b.is_empty() {
                    break;
                }
                b.with_slice(|s| file.write_all_at(s, off))
                    .map_err(|e| FsError::io(&path, e))?;
                off += b.len() as u64;
            }
            Ok(())
        }
        .await;
        self.blobs.release(&blob);
        r
    }

    pub async fn read(&self, fh: u64, off: u64, size: u32) -> FsResult<Vec<u8>> {
        Ok(self.read_data(fh, off, size).await?.to_vec())
    }

    /// `read`, as slices of the bytes in memory where they are (no copy on the way).
    pub async fn read_data(&self, fh: u64, off: u64, size: u32) -> FsResult<ReadData> {
        match self.handle(fh)? {
            Handle::Static(b) => {
                let s = (off as usize).min(b.len());
                let e = (s + size as usize).min(b.len());
                Ok(b.slice(s..e).into())
            }
            Handle::Blob(b) => self.read_blob(fh, b, off, size).await,
            Handle::File(f) => read_file_at(&f, off, size).map(ReadData::from),
            Handle::Write(w) => {
                let w = w.lock().await;
                let size = (w.len.saturating_sub(off)).min(size as u64) as u32;
                read_file_at(&w.file, off, size).map(ReadData::from)
            }
        }
    }
}

fn read_file_at(f: &std::fs::File, off: u64, size: u32) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; size as usize];
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return Err(FsError::io("spool", e)),
        }
    }
    buf.truncate(done);
    Ok(buf)
}
