//! What a `rename(2)` means on Altinn, decided without I/O: [`plan_rename`] turns a
//! [`RenameSnapshot`] (what the caller knows of both names) into a [`RenamePlan`] or a
//! [`RenameRefusal`]. SPEC §4: rename inside one data type directory works (editors and `rsync`
//! write a temporary name and rename it); anything Altinn cannot express is EXDEV (so `mv`
//! copies) or EPERM; the empty-replacement, name and maxCount rules are those of create.
//!
//! # How to call it
//! 1. Look both names up in the source's directory (a missing target is [`Entry::Missing`];
//!    a lookup error other than ENOENT is returned as it is, before planning).
//! 2. Fill a [`RenameSnapshot`]: the flags, the mount's read-only option, whether the source's
//!    parent is a data type directory and whether both parents are one directory, the new name,
//!    both entries, and — when the parent is a data type directory — its [`DirState`] (the data
//!    type's rules, the instance's state, the counts). Nothing else is read.
//! 3. `match plan_rename(&snapshot)`: a refusal becomes an error with
//!    [`RenameRefusal::into_error`] (errnos come from `error.rs`, the one errno table); each plan
//!    arm is one short execute step. Before executing any arm other than `Noop`, drop a
//!    replaced local target when `replaces_local` says so.
//!
//! The counts are of this instance and data type: `elements` on the server (the cached
//! instance), and `other_pending` = local, not-yet-uploaded files with a non-temporary name,
//! *not counting* the source or the target. They decide maxCount for a local file taking a
//! new name (EDQUOT), and whether an element's rename must delete the old element first.

use super::error::{ErrorKind, FsError};
use super::layout;
use crate::altinn::model::DataType;
use crate::altinn::rules::{self, RuleViolation};

/// The `flags` of `renameat2(2)` that change the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenameFlags {
    pub noreplace: bool,
    pub exchange: bool,
}

impl RenameFlags {
    /// From the kernel's raw flags (RENAME_WHITEOUT and unknown bits are ignored, as today).
    pub fn from_raw(flags: u32) -> Self {
        Self {
            noreplace: flags & libc::RENAME_NOREPLACE != 0,
            exchange: flags & libc::RENAME_EXCHANGE != 0,
        }
    }
}

/// What a name in the source's directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// No such name.
    Missing,
    /// A file only this mount knows (empty, or with a temporary name, not uploaded yet).
    /// `flushed`: no open handle holds bytes not yet flushed (so `len` is final).
    Local { len: u64, flushed: bool },
    /// A data element on the server.
    Element { locked: bool },
    /// `X.json`, the JSON view of the form data element shown as `X.xml`.
    JsonView { locked: bool },
    /// Anything else: a directory, `instance.json`, `applicationmetadata.json`, stateless data.
    Other,
}

/// The data type directory both names are in, as the caller knows it.
#[derive(Debug, Clone, Copy)]
pub struct DirState<'a> {
    pub data_type: &'a DataType,
    /// The instance is neither archived nor deleted.
    pub instance_active: bool,
    /// An app owner (org) token: contributors lists and `disallowUserCreate` do not apply.
    pub org_token: bool,
    /// Elements of this data type in the instance on the server.
    pub elements: usize,
    /// Local non-temporary files of this data type, neither the source nor the target.
    pub other_pending: usize,
}

/// Everything [`plan_rename`] reads.
#[derive(Debug, Clone, Copy)]
pub struct RenameSnapshot<'a> {
    pub flags: RenameFlags,
    pub read_only: bool,
    /// The source's parent is a data type directory (`PARTY/GUID/DATATYPE`).
    pub src_in_data_type_dir: bool,
    /// Source and target parents are the same directory.
    pub same_dir: bool,
    pub new_name: &'a str,
    pub src: Entry,
    pub dst: Entry,
    /// Source and target are the same entry (one element under two names cannot happen;
    /// this is `mv a a`, or a hard-link-like alias).
    pub same_entry: bool,
    /// Set when `src_in_data_type_dir`.
    pub dir: Option<DirState<'a>>,
}

/// What to do. Each arm is one short execute step in `rename.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenamePlan {
    /// Nothing changes (`mv a a`).
    Noop,
    /// A local file takes the new name. `upload`: its bytes are complete and the new name is
    /// real, so POST them now under it (on failure: the spool to `unsent/`, the local file
    /// removed, the error returned); otherwise it stays local.
    LocalToNew { replaces_local: bool, upload: bool },
    /// A local file saved over an element (an editor's save): PUT its bytes to that element
    /// (content type of the element's name), then drop the local file; the source's inode now
    /// shows the element.
    LocalOverElement,
    /// A local file saved over `X.json`: PUT its bytes as `application/json` to the form
    /// element behind the view, forget the cached view.
    LocalOverJsonView,
    /// An element takes a new name: copy its bytes to a spool, POST them under the new name,
    /// then DELETE the old element. `delete_first` (the data type holds maxCount elements):
    /// DELETE first, and if the POST then fails keep the spool in `unsent/`.
    ElementToNew {
        replaces_local: bool,
        delete_first: bool,
    },
    /// An element over another: copy the source's bytes, PUT them to the target element, then
    /// DELETE the source.
    ElementOverElement,
}

/// Why not, by meaning; [`RenameRefusal::into_error`] gives the path-carrying error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameRefusal {
    /// RENAME_EXCHANGE: Altinn cannot swap two elements atomically (EINVAL).
    Exchange,
    /// The source is not in a data type directory: directories, `instance.json`,
    /// `applicationmetadata.json`, stateless data (EPERM).
    NotInDataTypeDir,
    /// Another data type, instance or party (EXDEV, so `mv` copies and removes).
    CrossDirectory,
    NameTooLong,
    SourceMissing,
    /// `X.json` is a view of `X.xml` and has no name of its own (EPERM).
    JsonViewSource,
    /// Only a local file (an editor's save) may replace a JSON view (EPERM).
    JsonViewTarget,
    /// RENAME_NOREPLACE onto an existing name (EEXIST).
    TargetExists,
    ReadOnlyMount,
    InstanceInactive,
    /// The main form would be deleted by a rename to a new name (EPERM).
    MainForm,
    /// The source element is locked (its DELETE would be refused) (EPERM).
    SourceLocked,
    /// The target element is locked (EPERM).
    TargetLocked,
    /// An empty local file cannot replace an element: Altinn refuses empty data (EINVAL).
    EmptyReplacement,
    /// The caller may not create elements of this type (contributors, disallowUserCreate).
    TypeNotWritable(String),
    /// An upload rule of the new name (extension, content type).
    Rule(RuleViolation),
    /// The data type holds maxCount elements (EDQUOT).
    MaxCount {
        data_type: String,
        max: i64,
    },
    /// Any other pair of entries.
    NotAFile,
}

impl RenameRefusal {
    /// The error for the kernel and the log, about `path`.
    pub fn into_error(self, path: impl Into<String>) -> FsError {
        let refused = |why: &str| ErrorKind::Refused(why.to_string());
        let kind = match self {
            Self::Exchange => ErrorKind::Invalid("RENAME_EXCHANGE".into()),
            Self::NotInDataTypeDir => {
                refused("only files inside a data type directory can be renamed")
            }
            Self::CrossDirectory => ErrorKind::CrossDevice,
            Self::NameTooLong => ErrorKind::Invalid("name too long".into()),
            Self::SourceMissing => ErrorKind::NotFound,
            Self::JsonViewSource => {
                refused("X.json is the JSON view of X.xml and cannot be renamed")
            }
            Self::JsonViewTarget => refused("only an edited file can replace the JSON view X.json"),
            Self::TargetExists => ErrorKind::Exists,
            Self::ReadOnlyMount => refused("the mount is read-only"),
            Self::InstanceInactive => refused("the instance is archived or deleted"),
            Self::MainForm => refused("the main form cannot be renamed (it would be deleted)"),
            Self::SourceLocked | Self::TargetLocked => refused("the data element is locked"),
            Self::EmptyReplacement => ErrorKind::Empty,
            Self::TypeNotWritable(why) => ErrorKind::Refused(why),
            Self::Rule(v) => ErrorKind::Rule(v),
            Self::MaxCount { data_type, max } => ErrorKind::MaxCount { data_type, max },
            Self::NotAFile => refused("cannot rename this entry"),
        };
        FsError::new(kind, path)
    }
}

/// Decide a rename. Pure: reads only the snapshot. The order of the checks fixes which errno
/// wins when several apply (the same order as before this function existed).
pub fn plan_rename(s: &RenameSnapshot) -> Result<RenamePlan, RenameRefusal> {
    use RenameRefusal as No;
    if s.flags.exchange {
        return Err(No::Exchange);
    }
    if !s.src_in_data_type_dir {
        return Err(No::NotInDataTypeDir);
    }
    if !s.same_dir {
        return Err(No::CrossDirectory);
    }
    if s.new_name.len() > layout::NAME_MAX {
        return Err(No::NameTooLong);
    }
    if s.src == Entry::Missing {
        return Err(No::SourceMissing);
    }
    if s.same_entry {
        return Ok(RenamePlan::Noop);
    }
    if matches!(s.src, Entry::JsonView { .. }) {
        return Err(No::JsonViewSource);
    }
    if s.dst != Entry::Missing && s.flags.noreplace {
        return Err(No::TargetExists);
    }
    let dir = s.dir.as_ref().ok_or(No::NotInDataTypeDir)?;
    if s.read_only {
        return Err(No::ReadOnlyMount);
    }
    if !dir.instance_active {
        return Err(No::InstanceInactive);
    }
    // A local target is simply replaced: from here on it is a missing name.
    let replaces_local = matches!(s.dst, Entry::Local { .. });
    let dst = if replaces_local {
        Entry::Missing
    } else {
        s.dst
    };
    match (s.src, dst) {
        (Entry::Local { len, flushed }, Entry::Missing) => {
            plan_local_to_new(s.new_name, dir, len, flushed, replaces_local)
        }
        (Entry::Local { len, .. }, Entry::Element { locked }) => {
            local_over(len, locked).map(|_| RenamePlan::LocalOverElement)
        }
        (Entry::Local { len, .. }, Entry::JsonView { locked }) => {
            local_over(len, locked).map(|_| RenamePlan::LocalOverJsonView)
        }
        (Entry::Element { locked }, dst) => {
            plan_element(s.new_name, dir, locked, dst, replaces_local)
        }
        _ => Err(No::NotAFile),
    }
}

fn plan_local_to_new(
    new_name: &str,
    dir: &DirState,
    len: u64,
    flushed: bool,
    replaces_local: bool,
) -> Result<RenamePlan, RenameRefusal> {
    let temp = layout::is_temp_name(new_name);
    if !temp {
        new_file_refusal(dir, new_name, dir.elements + dir.other_pending)?;
    }
    Ok(RenamePlan::LocalToNew {
        replaces_local,
        upload: flushed && len > 0 && !temp,
    })
}

/// A local file replacing an element or a view: the target must be unlocked, the file not empty.
fn local_over(len: u64, target_locked: bool) -> Result<(), RenameRefusal> {
    if target_locked {
        return Err(RenameRefusal::TargetLocked);
    }
    if len == 0 {
        return Err(RenameRefusal::EmptyReplacement);
    }
    Ok(())
}

fn plan_element(
    new_name: &str,
    dir: &DirState,
    src_locked: bool,
    dst: Entry,
    replaces_local: bool,
) -> Result<RenamePlan, RenameRefusal> {
    if dir.data_type.is_main_form() && dst == Entry::Missing {
        return Err(RenameRefusal::MainForm);
    }
    if src_locked {
        return Err(RenameRefusal::SourceLocked);
    }
    match dst {
        Entry::Element { locked: true } => Err(RenameRefusal::TargetLocked),
        Entry::Element { locked: false } => Ok(RenamePlan::ElementOverElement),
        Entry::JsonView { .. } => Err(RenameRefusal::JsonViewTarget),
        _ => {
            rules::check_new_file(dir.data_type, new_name).map_err(RenameRefusal::Rule)?;
            // At maxCount the new element only fits once the old one is gone.
            let delete_first = !rules::count_allows_one_more(dir.data_type, dir.elements);
            Ok(RenamePlan::ElementToNew {
                replaces_local,
                delete_first,
            })
        }
    }
}

/// Altinn's rules for a new element named `name` when `existing` elements (and pending local
/// files) of its type are there: the caller may create this type, the name passes the upload
/// rules, and maxCount is not reached. The same checks as `open(O_CREAT)`.
pub fn new_file_refusal(dir: &DirState, name: &str, existing: usize) -> Result<(), RenameRefusal> {
    type_writable(dir.data_type, dir.org_token).map_err(RenameRefusal::TypeNotWritable)?;
    rules::check_new_file(dir.data_type, name).map_err(RenameRefusal::Rule)?;
    if !rules::count_allows_one_more(dir.data_type, existing) {
        return Err(RenameRefusal::MaxCount {
            data_type: dir.data_type.id.clone(),
            max: dir.data_type.max_count,
        });
    }
    Ok(())
}

/// Whether this caller may add elements of `dt`: a contributors list or `disallowUserCreate`
/// leaves it to the app owner (org token). Err: why not.
pub fn type_writable(dt: &DataType, org_token: bool) -> Result<(), String> {
    if org_token {
        return Ok(());
    }
    let contributors = dt
        .allowed_contributers
        .as_ref()
        .filter(|l| !l.is_empty())
        .or(dt.allowed_contributors.as_ref())
        .filter(|l| !l.is_empty());
    if contributors.is_some() {
        return Err(format!(
            "data type {} only accepts its listed contributors",
            dt.id
        ));
    }
    let disallowed = dt.app_logic.as_ref().and_then(|l| l.disallow_user_create);
    if disallowed == Some(true) {
        return Err(format!("data type {} disallows user create", dt.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! One row per case: the snapshot's difference from a plain "rename a flushed local file
    //! to a free name in `attachments`", and the plan or (refusal, errno) it must give.
    use super::*;
    use crate::altinn::model::ApplicationLogic;
    use RenamePlan::*;

    fn attachments() -> &'static DataType {
        Box::leak(Box::new(DataType {
            id: "attachments".into(),
            allowed_content_types: vec!["application/pdf".into(), "text/plain".into()],
            max_count: 5,
            ..Default::default()
        }))
    }

    fn main_form() -> &'static DataType {
        Box::leak(Box::new(DataType {
            id: "model".into(),
            allowed_content_types: vec!["application/xml".into()],
            app_logic: Some(ApplicationLogic {
                class_ref: Some("App.Model".into()),
                ..Default::default()
            }),
            max_count: 1,
            min_count: 1,
            ..Default::default()
        }))
    }

    fn contributors_only() -> &'static DataType {
        Box::leak(Box::new(DataType {
            id: "signed".into(),
            allowed_contributors: Some(vec!["org:ttd".into()]),
            ..Default::default()
        }))
    }

    fn user_create_disallowed() -> &'static DataType {
        Box::leak(Box::new(DataType {
            id: "receipt".into(),
            app_logic: Some(ApplicationLogic {
                disallow_user_create: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    const LOCAL: Entry = Entry::Local {
        len: 10,
        flushed: true,
    };
    const EMPTY_LOCAL: Entry = Entry::Local {
        len: 0,
        flushed: true,
    };
    const ELEMENT: Entry = Entry::Element { locked: false };
    const LOCKED: Entry = Entry::Element { locked: true };
    const VIEW: Entry = Entry::JsonView { locked: false };

    fn base() -> RenameSnapshot<'static> {
        RenameSnapshot {
            flags: RenameFlags::default(),
            read_only: false,
            src_in_data_type_dir: true,
            same_dir: true,
            new_name: "new.pdf",
            src: LOCAL,
            dst: Entry::Missing,
            same_entry: false,
            dir: Some(DirState {
                data_type: attachments(),
                instance_active: true,
                org_token: false,
                elements: 2,
                other_pending: 0,
            }),
        }
    }

    type Want = Result<RenamePlan, (&'static str, i32)>;

    fn dir<'a>(s: &'a mut RenameSnapshot<'static>) -> &'a mut DirState<'static> {
        s.dir.as_mut().unwrap()
    }

    type Case = (
        &'static str,
        Box<dyn Fn(&mut RenameSnapshot<'static>)>,
        Want,
    );

    const EPERM: i32 = libc::EPERM;
    const EINVAL: i32 = libc::EINVAL;
    const UPLOAD: RenamePlan = LocalToNew {
        replaces_local: false,
        upload: true,
    };
    const STAYS_LOCAL: RenamePlan = LocalToNew {
        replaces_local: false,
        upload: false,
    };

    /// A local (not yet uploaded) file takes a free name: POST now, or it stays local.
    fn local_to_new_name() -> Vec<Case> {
        vec![
            ("local -> new name: POST now", Box::new(|_| {}), Ok(UPLOAD)),
            (
                "local, bytes not flushed -> stays local (POST at close)",
                Box::new(|s| {
                    s.src = Entry::Local {
                        len: 10,
                        flushed: false,
                    }
                }),
                Ok(STAYS_LOCAL),
            ),
            (
                "empty local -> new name: stays local",
                Box::new(|s| s.src = EMPTY_LOCAL),
                Ok(STAYS_LOCAL),
            ),
            (
                "local -> temp name: stays local, no rules",
                Box::new(|s| s.new_name = "x.exe.tmp"),
                Ok(STAYS_LOCAL),
            ),
            (
                "local -> rsync temp name even at maxCount",
                Box::new(|s| {
                    s.new_name = ".new.pdf.Ab12Cd";
                    dir(s).elements = 5
                }),
                Ok(STAYS_LOCAL),
            ),
        ]
    }

    /// A local file's new name the data type's rules refuse (or, for an org, allow).
    fn local_to_new_name_refused() -> Vec<Case> {
        vec![
            (
                "local -> name without extension",
                Box::new(|s| s.new_name = "README"),
                Err(("Rule", EINVAL)),
            ),
            (
                "local -> content type not allowed",
                Box::new(|s| s.new_name = "tool.exe"),
                Err(("Rule", EPERM)),
            ),
            (
                "local -> new name at maxCount",
                Box::new(|s| dir(s).elements = 5),
                Err(("MaxCount", libc::EDQUOT)),
            ),
            (
                "local -> new name, pending locals fill maxCount",
                Box::new(|s| {
                    dir(s).elements = 3;
                    dir(s).other_pending = 2
                }),
                Err(("MaxCount", libc::EDQUOT)),
            ),
            (
                "local -> new name one below maxCount",
                Box::new(|s| {
                    dir(s).elements = 3;
                    dir(s).other_pending = 1
                }),
                Ok(UPLOAD),
            ),
            (
                "local -> contributors-only type (user token)",
                Box::new(|s| dir(s).data_type = contributors_only()),
                Err(("TypeNotWritable", EPERM)),
            ),
            (
                "local -> contributors-only type (org token)",
                Box::new(|s| {
                    dir(s).data_type = contributors_only();
                    dir(s).org_token = true
                }),
                Ok(UPLOAD),
            ),
            (
                "local -> disallowUserCreate type",
                Box::new(|s| dir(s).data_type = user_create_disallowed()),
                Err(("TypeNotWritable", EPERM)),
            ),
        ]
    }

    /// A local file renamed over another local file or an element.
    fn local_over_local_or_element() -> Vec<Case> {
        vec![
            (
                "local over local: the target is replaced",
                Box::new(|s| s.dst = EMPTY_LOCAL),
                Ok(LocalToNew {
                    replaces_local: true,
                    upload: true,
                }),
            ),
            (
                "local over element: PUT",
                Box::new(|s| s.dst = ELEMENT),
                Ok(LocalOverElement),
            ),
            (
                "local over element at maxCount: PUT (no new element)",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    dir(s).elements = 5
                }),
                Ok(LocalOverElement),
            ),
            (
                "local over element from a temp name (editor save)",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    s.new_name = "notes.txt"
                }),
                Ok(LocalOverElement),
            ),
            (
                "empty local over element",
                Box::new(|s| {
                    s.src = EMPTY_LOCAL;
                    s.dst = ELEMENT
                }),
                Err(("EmptyReplacement", EINVAL)),
            ),
            (
                "local over locked element",
                Box::new(|s| s.dst = LOCKED),
                Err(("TargetLocked", EPERM)),
            ),
            (
                "empty local over locked element: locked wins",
                Box::new(|s| {
                    s.src = EMPTY_LOCAL;
                    s.dst = LOCKED
                }),
                Err(("TargetLocked", EPERM)),
            ),
        ]
    }

    /// A local file renamed over a JSON view or something else.
    fn local_over_json_view_or_other() -> Vec<Case> {
        vec![
            (
                "local over JSON view: PUT as JSON",
                Box::new(|s| s.dst = VIEW),
                Ok(LocalOverJsonView),
            ),
            (
                "local over locked JSON view",
                Box::new(|s| s.dst = Entry::JsonView { locked: true }),
                Err(("TargetLocked", EPERM)),
            ),
            (
                "empty local over JSON view",
                Box::new(|s| {
                    s.src = EMPTY_LOCAL;
                    s.dst = VIEW
                }),
                Err(("EmptyReplacement", EINVAL)),
            ),
            (
                "local over something else",
                Box::new(|s| s.dst = Entry::Other),
                Err(("NotAFile", EPERM)),
            ),
        ]
    }

    /// An element takes a free name: POST and DELETE, in an order set by maxCount.
    fn element_to_new_name() -> Vec<Case> {
        vec![
            (
                "element -> new name below maxCount: POST, then DELETE",
                Box::new(|s| s.src = ELEMENT),
                Ok(ElementToNew {
                    replaces_local: false,
                    delete_first: false,
                }),
            ),
            (
                "element -> new name at maxCount: DELETE first",
                Box::new(|s| {
                    s.src = ELEMENT;
                    dir(s).elements = 5
                }),
                Ok(ElementToNew {
                    replaces_local: false,
                    delete_first: true,
                }),
            ),
            (
                "element -> new name, pending locals do not change the order",
                Box::new(|s| {
                    s.src = ELEMENT;
                    dir(s).elements = 4;
                    dir(s).other_pending = 3
                }),
                Ok(ElementToNew {
                    replaces_local: false,
                    delete_first: false,
                }),
            ),
            (
                "element over local: the local is replaced",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = LOCAL
                }),
                Ok(ElementToNew {
                    replaces_local: true,
                    delete_first: false,
                }),
            ),
        ]
    }

    /// An element's new name the data type's rules refuse.
    fn element_to_new_name_refused() -> Vec<Case> {
        vec![
            (
                "element -> name without extension",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.new_name = "notes"
                }),
                Err(("Rule", EINVAL)),
            ),
            (
                "element -> content type not allowed",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.new_name = "notes.exe"
                }),
                Err(("Rule", EPERM)),
            ),
            (
                "element -> temp name is a real new name (rules apply)",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.new_name = "notes.txt~"
                }),
                Err(("Rule", EPERM)),
            ),
        ]
    }

    /// An element renamed over a name in use, and a locked source.
    fn element_over_existing() -> Vec<Case> {
        vec![
            (
                "element over element: PUT, then DELETE",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = ELEMENT
                }),
                Ok(ElementOverElement),
            ),
            (
                "element over element at maxCount",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = ELEMENT;
                    dir(s).elements = 5
                }),
                Ok(ElementOverElement),
            ),
            (
                "element over locked element",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = LOCKED
                }),
                Err(("TargetLocked", EPERM)),
            ),
            (
                "locked element -> new name",
                Box::new(|s| s.src = LOCKED),
                Err(("SourceLocked", EPERM)),
            ),
            (
                "locked element over element",
                Box::new(|s| {
                    s.src = LOCKED;
                    s.dst = ELEMENT
                }),
                Err(("SourceLocked", EPERM)),
            ),
            (
                "element over JSON view",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = VIEW
                }),
                Err(("JsonViewTarget", EPERM)),
            ),
        ]
    }

    /// The main form: it keeps its name, but a local file may replace its bytes.
    fn main_form_renamed() -> Vec<Case> {
        vec![
            (
                "main form -> new name",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.new_name = "m.xml";
                    dir(s).data_type = main_form();
                    dir(s).elements = 1
                }),
                Err(("MainForm", EPERM)),
            ),
            (
                "main form over local: still a new name",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = LOCAL;
                    s.new_name = "m.xml";
                    dir(s).data_type = main_form()
                }),
                Err(("MainForm", EPERM)),
            ),
            (
                "main form over its JSON view",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = VIEW;
                    s.new_name = "model.json";
                    dir(s).data_type = main_form()
                }),
                Err(("JsonViewTarget", EPERM)),
            ),
            (
                "local over the main form: PUT",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    s.new_name = "model.xml";
                    dir(s).data_type = main_form();
                    dir(s).elements = 1
                }),
                Ok(LocalOverElement),
            ),
        ]
    }

    /// JSON view, other or missing sources, and a rename onto itself.
    fn views_other_and_same_entry() -> Vec<Case> {
        vec![
            (
                "JSON view -> anything",
                Box::new(|s| s.src = VIEW),
                Err(("JsonViewSource", EPERM)),
            ),
            (
                "JSON view over element",
                Box::new(|s| {
                    s.src = VIEW;
                    s.dst = ELEMENT
                }),
                Err(("JsonViewSource", EPERM)),
            ),
            (
                "other entry in a data type dir",
                Box::new(|s| s.src = Entry::Other),
                Err(("NotAFile", EPERM)),
            ),
            (
                "missing source",
                Box::new(|s| s.src = Entry::Missing),
                Err(("SourceMissing", libc::ENOENT)),
            ),
            (
                "same entry: nothing to do",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = ELEMENT;
                    s.same_entry = true
                }),
                Ok(Noop),
            ),
            (
                "same JSON view: nothing to do",
                Box::new(|s| {
                    s.src = VIEW;
                    s.dst = VIEW;
                    s.same_entry = true
                }),
                Ok(Noop),
            ),
            (
                "same entry, read-only mount: still nothing to do",
                Box::new(|s| {
                    s.src = ELEMENT;
                    s.dst = ELEMENT;
                    s.same_entry = true;
                    s.read_only = true
                }),
                Ok(Noop),
            ),
        ]
    }

    /// renameat2 flags: RENAME_NOREPLACE and RENAME_EXCHANGE.
    fn flags() -> Vec<Case> {
        vec![
            (
                "RENAME_NOREPLACE onto an existing name",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    s.flags.noreplace = true
                }),
                Err(("TargetExists", libc::EEXIST)),
            ),
            (
                "RENAME_NOREPLACE onto a local file",
                Box::new(|s| {
                    s.dst = LOCAL;
                    s.flags.noreplace = true
                }),
                Err(("TargetExists", libc::EEXIST)),
            ),
            (
                "RENAME_NOREPLACE onto a free name",
                Box::new(|s| s.flags.noreplace = true),
                Ok(UPLOAD),
            ),
            (
                "RENAME_EXCHANGE",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    s.flags.exchange = true
                }),
                Err(("Exchange", EINVAL)),
            ),
            (
                "RENAME_EXCHANGE wins over every other refusal",
                Box::new(|s| {
                    s.flags.exchange = true;
                    s.src_in_data_type_dir = false;
                    s.same_dir = false
                }),
                Err(("Exchange", EINVAL)),
            ),
        ]
    }

    /// Where the two names are, and how long the new one is.
    fn places_and_names() -> Vec<Case> {
        vec![
            (
                "across data types, instances or parties",
                Box::new(|s| s.same_dir = false),
                Err(("CrossDirectory", libc::EXDEV)),
            ),
            (
                "across directories, even read-only",
                Box::new(|s| {
                    s.same_dir = false;
                    s.read_only = true
                }),
                Err(("CrossDirectory", libc::EXDEV)),
            ),
            (
                "directory, instance.json, applicationmetadata.json, stateless",
                Box::new(|s| {
                    s.src_in_data_type_dir = false;
                    s.src = Entry::Other;
                    s.dir = None
                }),
                Err(("NotInDataTypeDir", EPERM)),
            ),
            (
                "out of a non data type dir into one",
                Box::new(|s| {
                    s.src_in_data_type_dir = false;
                    s.same_dir = false;
                    s.dir = None
                }),
                Err(("NotInDataTypeDir", EPERM)),
            ),
            (
                "name over 255 bytes",
                Box::new(|s| {
                    s.new_name = Box::leak(format!("{}.pdf", "x".repeat(252)).into_boxed_str())
                }),
                Err(("NameTooLong", EINVAL)),
            ),
            (
                "name of exactly 255 bytes",
                Box::new(|s| {
                    s.new_name = Box::leak(format!("{}.pdf", "x".repeat(251)).into_boxed_str())
                }),
                Ok(UPLOAD),
            ),
        ]
    }

    /// A read-only mount and an inactive instance.
    fn mount_and_instance() -> Vec<Case> {
        vec![
            (
                "read-only mount",
                Box::new(|s| s.read_only = true),
                Err(("ReadOnlyMount", EPERM)),
            ),
            (
                "read-only mount, element over element",
                Box::new(|s| {
                    s.read_only = true;
                    s.src = ELEMENT;
                    s.dst = ELEMENT
                }),
                Err(("ReadOnlyMount", EPERM)),
            ),
            (
                "inactive (archived) instance",
                Box::new(|s| dir(s).instance_active = false),
                Err(("InstanceInactive", EPERM)),
            ),
            (
                "inactive instance, element source",
                Box::new(|s| {
                    s.src = ELEMENT;
                    dir(s).instance_active = false
                }),
                Err(("InstanceInactive", EPERM)),
            ),
        ]
    }

    /// Which refusal wins when several apply.
    fn refusal_order() -> Vec<Case> {
        vec![
            (
                "missing source in another dir: EXDEV first",
                Box::new(|s| {
                    s.src = Entry::Missing;
                    s.same_dir = false
                }),
                Err(("CrossDirectory", libc::EXDEV)),
            ),
            (
                "JSON view source with NOREPLACE onto a name: view refusal first",
                Box::new(|s| {
                    s.src = VIEW;
                    s.dst = ELEMENT;
                    s.flags.noreplace = true
                }),
                Err(("JsonViewSource", EPERM)),
            ),
            (
                "NOREPLACE before read-only",
                Box::new(|s| {
                    s.dst = ELEMENT;
                    s.flags.noreplace = true;
                    s.read_only = true
                }),
                Err(("TargetExists", libc::EEXIST)),
            ),
        ]
    }

    /// Every case, each theme's table in turn.
    fn table() -> Vec<Case> {
        [
            local_to_new_name(),
            local_to_new_name_refused(),
            local_over_local_or_element(),
            local_over_json_view_or_other(),
            element_to_new_name(),
            element_to_new_name_refused(),
            element_over_existing(),
            main_form_renamed(),
            views_other_and_same_entry(),
            flags(),
            places_and_names(),
            mount_and_instance(),
            refusal_order(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    #[test]
    fn every_case_of_rename() {
        let mut failures = Vec::new();
        let rows = table();
        for (name, edit, want) in &rows {
            let mut s = base();
            edit(&mut s);
            let got = plan_rename(&s).map_err(|r| {
                let variant = format!("{r:?}");
                let variant = variant.split(['(', ' ', '{']).next().unwrap().to_string();
                (variant, r.into_error("p").errno())
            });
            let want = want.map_err(|(v, e)| (v.to_string(), e));
            if got != want {
                failures.push(format!("{name}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // Splitting or merging the tables must keep every case.
        assert_eq!(rows.len(), 66, "cases in the tables");
    }

    #[test]
    fn every_refusal_has_its_errno() {
        let rule = |code| RuleViolation {
            code,
            description: String::new(),
        };
        let rows = [
            (RenameRefusal::Exchange, libc::EINVAL),
            (RenameRefusal::NotInDataTypeDir, libc::EPERM),
            (RenameRefusal::CrossDirectory, libc::EXDEV),
            (RenameRefusal::NameTooLong, libc::EINVAL),
            (RenameRefusal::SourceMissing, libc::ENOENT),
            (RenameRefusal::JsonViewSource, libc::EPERM),
            (RenameRefusal::JsonViewTarget, libc::EPERM),
            (RenameRefusal::TargetExists, libc::EEXIST),
            (RenameRefusal::ReadOnlyMount, libc::EPERM),
            (RenameRefusal::InstanceInactive, libc::EPERM),
            (RenameRefusal::MainForm, libc::EPERM),
            (RenameRefusal::SourceLocked, libc::EPERM),
            (RenameRefusal::TargetLocked, libc::EPERM),
            (RenameRefusal::EmptyReplacement, libc::EINVAL),
            (RenameRefusal::TypeNotWritable("x".into()), libc::EPERM),
            (
                RenameRefusal::Rule(rule("ContentTypeNotAllowed")),
                libc::EPERM,
            ),
            (
                RenameRefusal::Rule(rule("InvalidFileNameFormat")),
                libc::EINVAL,
            ),
            (
                RenameRefusal::MaxCount {
                    data_type: "a".into(),
                    max: 5,
                },
                libc::EDQUOT,
            ),
            (RenameRefusal::NotAFile, libc::EPERM),
        ];
        for (refusal, errno) in rows {
            let e = refusal.clone().into_error("/p/g/dt/x");
            assert_eq!(e.errno(), errno, "{refusal:?}");
            assert_eq!(e.path, "/p/g/dt/x");
        }
    }

    #[test]
    fn flags_from_the_kernel() {
        assert_eq!(RenameFlags::from_raw(0), RenameFlags::default());
        let f = RenameFlags::from_raw(libc::RENAME_NOREPLACE);
        assert!(f.noreplace && !f.exchange);
        let f = RenameFlags::from_raw(libc::RENAME_EXCHANGE);
        assert!(f.exchange && !f.noreplace);
        assert_eq!(
            RenameFlags::from_raw(libc::RENAME_WHITEOUT),
            RenameFlags::default()
        );
    }
}
