//! What a write handle's bytes become at `flush`/`fsync`/`close`, decided without I/O:
//! [`upload_verdict`] turns an [`UploadSnapshot`] into an [`UploadVerdict`]. SPEC §4: a new
//! element is POSTed, an existing one replaced with PUT; Altinn refuses empty data, so a new
//! empty file stays local (`user.altinn.pending`) and truncating an element to zero fails with
//! EINVAL leaving it unchanged; a file with an editor's temporary name stays local until it is
//! renamed to a real name.
//!
//! # How to call it
//! At each flush, fsync and release of a write handle, fill an [`UploadSnapshot`] from the
//! handle (its target, `len`, `dirty`, whether an earlier upload of it failed) and from what is
//! known of the target (the local file's current name or that it is gone, the element's lock,
//! the instance's state, the mount's read-only option), then execute the verdict:
//! - `Nothing` / `KeepLocal`: mark the handle clean, send nothing;
//! - `AlreadyFailed`: return the error stored in the handle (already logged);
//! - `Post` / `Put` / `Calculate`: send the spool; a server refusal keeps the spool in
//!   `unsent/` (except `Calculate`, whose bytes live in memory only);
//! - `Refuse(r)`: return `r.into_error(path)`; when [`UploadRefusal::keeps_bytes`] the spool
//!   goes to `unsent/` as after a server refusal, since the user's bytes were never sent.

use super::error::{ErrorKind, FsError};
use super::layout;

/// What the handle writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTarget<'a> {
    /// An existing data element.
    Element,
    /// `X.json`, the JSON view of a form element.
    JsonView,
    /// A file only this mount knows, under its current name.
    Local { name: &'a str },
    /// The local file was unlinked, or renamed into an element, since the handle was opened.
    LocalGone,
    /// `.stateless/<dt>/<name>`: calculated by the app, held in memory.
    Stateless,
}

/// Everything [`upload_verdict`] reads.
#[derive(Debug, Clone, Copy)]
pub struct UploadSnapshot<'a> {
    pub target: UploadTarget<'a>,
    /// Bytes in the spool.
    pub len: u64,
    /// Written (or truncated) since the last upload.
    pub dirty: bool,
    /// An earlier flush of this handle failed; its error is stored in the handle.
    pub failed: bool,
    /// The data type's maxSize in bytes.
    pub max_size: Option<u64>,
    pub read_only: bool,
    /// The instance is neither archived nor deleted (true when unknown: the server decides).
    pub instance_active: bool,
    /// The target element is locked (false for new files and unknown state).
    pub element_locked: bool,
}

/// How a PUT labels its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutAs {
    /// The content type of the element's file name.
    FileType,
    /// `application/json` (the JSON view of an element named `X.xml`).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadVerdict {
    /// Nothing to send: nothing written since the last upload, or the local file is gone.
    Nothing,
    /// The earlier failure stands; return the handle's stored error.
    AlreadyFailed,
    /// A new file that stays local: empty (Altinn refuses empty data) or a temporary name.
    KeepLocal,
    /// POST a new element of the local file's name.
    Post,
    /// PUT the element's new bytes.
    Put(PutAs),
    /// Run the app's calculation on the stateless object.
    Calculate,
    Refuse(UploadRefusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefusal {
    /// An element (or view) truncated to zero: Altinn refuses empty data; the element stays
    /// as it was (EINVAL).
    EmptyReplacement,
    /// Larger than the data type's maxSize (EFBIG); the file can never be sent whole.
    TooLarge { max: u64 },
    /// Read-only mount (EPERM).
    ReadOnlyMount,
    /// The element was locked while the file was open (EPERM).
    Locked,
    /// The instance was archived or deleted while the file was open (EPERM).
    InstanceInactive,
}

impl UploadRefusal {
    /// Whether the user's bytes go to `unsent/` (they are real content that was never sent).
    pub fn keeps_bytes(self) -> bool {
        match self {
            Self::EmptyReplacement | Self::TooLarge { .. } => false,
            Self::ReadOnlyMount | Self::Locked | Self::InstanceInactive => true,
        }
    }

    pub fn into_error(self, path: impl Into<String>) -> FsError {
        let kind = match self {
            Self::EmptyReplacement => ErrorKind::Empty,
            Self::TooLarge { max } => ErrorKind::TooLarge { max },
            Self::ReadOnlyMount => ErrorKind::Refused("the mount is read-only".into()),
            Self::Locked => ErrorKind::Refused("the data element is locked".into()),
            Self::InstanceInactive => {
                ErrorKind::Refused("the instance is archived or deleted".into())
            }
        };
        FsError::new(kind, path)
    }
}

/// Decide what to send. Pure: reads only the snapshot.
pub fn upload_verdict(s: &UploadSnapshot) -> UploadVerdict {
    use UploadVerdict as V;
    if s.failed {
        return V::AlreadyFailed;
    }
    if !s.dirty {
        return V::Nothing;
    }
    if s.target == UploadTarget::Stateless {
        return V::Calculate;
    }
    if let Some(max) = s.max_size.filter(|max| s.len > *max) {
        return V::Refuse(UploadRefusal::TooLarge { max });
    }
    match s.target {
        UploadTarget::LocalGone => V::Nothing,
        UploadTarget::Local { name } if layout::is_temp_name(name) || s.len == 0 => V::KeepLocal,
        UploadTarget::Local { .. } => refusal(s, false).map_or(V::Post, V::Refuse),
        UploadTarget::Element | UploadTarget::JsonView if s.len == 0 => {
            V::Refuse(UploadRefusal::EmptyReplacement)
        }
        UploadTarget::Element => refusal(s, true).map_or(V::Put(PutAs::FileType), V::Refuse),
        UploadTarget::JsonView => refusal(s, true).map_or(V::Put(PutAs::Json), V::Refuse),
        UploadTarget::Stateless => V::Calculate,
    }
}

/// The mount's and the instance's refusals of a change (the element's lock for a PUT).
fn refusal(s: &UploadSnapshot, existing: bool) -> Option<UploadRefusal> {
    if s.read_only {
        Some(UploadRefusal::ReadOnlyMount)
    } else if !s.instance_active {
        Some(UploadRefusal::InstanceInactive)
    } else if existing && s.element_locked {
        Some(UploadRefusal::Locked)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UploadTarget::*;
    use UploadVerdict::*;

    fn base(target: UploadTarget<'static>) -> UploadSnapshot<'static> {
        UploadSnapshot {
            target,
            len: 100,
            dirty: true,
            failed: false,
            max_size: Some(1000),
            read_only: false,
            instance_active: true,
            element_locked: false,
        }
    }

    const NEW: UploadTarget = Local { name: "scan.pdf" };

    type Case = (&'static str, UploadSnapshot<'static>, UploadVerdict);

    /// `base(t)` changed by `f`.
    fn with(t: UploadTarget<'static>, f: fn(&mut UploadSnapshot)) -> UploadSnapshot<'static> {
        let mut s = base(t);
        f(&mut s);
        s
    }

    fn refuse(r: UploadRefusal) -> UploadVerdict {
        Refuse(r)
    }

    /// A new (local) file: POST, or stay local (empty, temporary name).
    fn new_file() -> Vec<Case> {
        vec![
            ("new file with bytes: POST", base(NEW), Post),
            (
                "new empty file: stays local",
                with(NEW, |s| s.len = 0),
                KeepLocal,
            ),
            (
                "new file, temp name (rsync): stays local",
                base(Local {
                    name: ".scan.pdf.Ab12Cd",
                }),
                KeepLocal,
            ),
            (
                "new file, temp name (sed): stays local",
                base(Local { name: "sedAb12Cd" }),
                KeepLocal,
            ),
            (
                "new file, temp name (vim 4913)",
                base(Local { name: "4913" }),
                KeepLocal,
            ),
            (
                "new file, backup name~",
                base(Local { name: "notes.txt~" }),
                KeepLocal,
            ),
        ]
    }

    /// A new file with nothing to send: clean, failed before, or gone.
    fn new_file_nothing_to_send() -> Vec<Case> {
        vec![
            (
                "new file, nothing written since the last upload",
                with(NEW, |s| s.dirty = false),
                Nothing,
            ),
            (
                "new file, earlier failure",
                with(NEW, |s| s.failed = true),
                AlreadyFailed,
            ),
            (
                "earlier failure wins over clean",
                with(NEW, |s| {
                    s.failed = true;
                    s.dirty = false
                }),
                AlreadyFailed,
            ),
            (
                "local file gone (unlinked or renamed into an element)",
                base(LocalGone),
                Nothing,
            ),
            (
                "local file gone, clean",
                with(LocalGone, |s| s.dirty = false),
                Nothing,
            ),
        ]
    }

    /// A new file refused by its size, the mount or the instance (an empty one stays local).
    fn new_file_refused() -> Vec<Case> {
        vec![
            (
                "new file over maxSize",
                with(NEW, |s| s.len = 1001),
                refuse(UploadRefusal::TooLarge { max: 1000 }),
            ),
            (
                "new file exactly maxSize",
                with(NEW, |s| s.len = 1000),
                Post,
            ),
            (
                "new file, no maxSize",
                with(NEW, |s| {
                    s.max_size = None;
                    s.len = 1 << 40
                }),
                Post,
            ),
            (
                "new temp file over maxSize",
                with(Local { name: "x.tmp" }, |s| s.len = 5000),
                refuse(UploadRefusal::TooLarge { max: 1000 }),
            ),
            (
                "new file, read-only mount",
                with(NEW, |s| s.read_only = true),
                refuse(UploadRefusal::ReadOnlyMount),
            ),
            (
                "new file, instance archived meanwhile",
                with(NEW, |s| s.instance_active = false),
                refuse(UploadRefusal::InstanceInactive),
            ),
            (
                "new empty file, instance archived: stays local",
                with(NEW, |s| {
                    s.len = 0;
                    s.instance_active = false
                }),
                KeepLocal,
            ),
        ]
    }

    /// An existing element: PUT, or why not.
    fn element() -> Vec<Case> {
        vec![
            ("element: PUT", base(Element), Put(PutAs::FileType)),
            (
                "element truncated to zero",
                with(Element, |s| s.len = 0),
                refuse(UploadRefusal::EmptyReplacement),
            ),
            (
                "element, clean (opened and closed)",
                with(Element, |s| s.dirty = false),
                Nothing,
            ),
            (
                "element truncated to zero but clean",
                with(Element, |s| {
                    s.len = 0;
                    s.dirty = false
                }),
                Nothing,
            ),
            (
                "element, earlier failure",
                with(Element, |s| s.failed = true),
                AlreadyFailed,
            ),
            (
                "element over maxSize",
                with(Element, |s| s.len = 2000),
                refuse(UploadRefusal::TooLarge { max: 1000 }),
            ),
            (
                "element locked meanwhile",
                with(Element, |s| s.element_locked = true),
                refuse(UploadRefusal::Locked),
            ),
            (
                "element, instance archived",
                with(Element, |s| s.instance_active = false),
                refuse(UploadRefusal::InstanceInactive),
            ),
            (
                "element, read-only mount",
                with(Element, |s| s.read_only = true),
                refuse(UploadRefusal::ReadOnlyMount),
            ),
            (
                "element empty and locked: empty first",
                with(Element, |s| {
                    s.len = 0;
                    s.element_locked = true
                }),
                refuse(UploadRefusal::EmptyReplacement),
            ),
        ]
    }

    /// The JSON view `X.json` (PUT as JSON) and a stateless object (calculated).
    fn json_view_and_stateless() -> Vec<Case> {
        vec![
            ("JSON view: PUT as JSON", base(JsonView), Put(PutAs::Json)),
            (
                "JSON view truncated to zero",
                with(JsonView, |s| s.len = 0),
                refuse(UploadRefusal::EmptyReplacement),
            ),
            (
                "JSON view, locked",
                with(JsonView, |s| s.element_locked = true),
                refuse(UploadRefusal::Locked),
            ),
            (
                "JSON view, clean",
                with(JsonView, |s| s.dirty = false),
                Nothing,
            ),
            ("stateless object: calculate", base(Stateless), Calculate),
            (
                "stateless object, empty: the app decides",
                with(Stateless, |s| s.len = 0),
                Calculate,
            ),
            (
                "stateless object, clean",
                with(Stateless, |s| s.dirty = false),
                Nothing,
            ),
            (
                "stateless object, earlier failure",
                with(Stateless, |s| s.failed = true),
                AlreadyFailed,
            ),
        ]
    }

    /// Every case, each theme's table in turn.
    fn table() -> Vec<Case> {
        [
            new_file(),
            new_file_nothing_to_send(),
            new_file_refused(),
            element(),
            json_view_and_stateless(),
        ]
        .concat()
    }

    #[test]
    fn every_case_of_an_upload() {
        let rows = table();
        // Splitting or merging the tables must keep every case.
        assert_eq!(rows.len(), 36, "cases in the tables");
        let failures: Vec<String> = rows
            .into_iter()
            .filter_map(|(name, s, want)| {
                let got = upload_verdict(&s);
                (got != want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn refusals_errnos_and_what_is_kept() {
        let rows = [
            (UploadRefusal::EmptyReplacement, libc::EINVAL, false),
            (UploadRefusal::TooLarge { max: 1 }, libc::EFBIG, false),
            (UploadRefusal::ReadOnlyMount, libc::EPERM, true),
            (UploadRefusal::Locked, libc::EPERM, true),
            (UploadRefusal::InstanceInactive, libc::EPERM, true),
        ];
        for (r, errno, keeps) in rows {
            let e = r.into_error("/p/g/dt/f.pdf");
            assert_eq!((e.errno(), r.keeps_bytes()), (errno, keeps), "{r:?}");
            assert_eq!(e.path, "/p/g/dt/f.pdf");
        }
    }
}
