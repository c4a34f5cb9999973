//! One error type for the filesystem core and ONE exhaustive match from it to an errno
//! (SPEC §4 table). Errors carry their context (file, rule, server reason) until here.

use crate::altinn::client::{AltinnError, Meaning, Refusal};
use crate::altinn::rules::RuleViolation;
use std::fmt;

/// What went wrong, with the path it concerns.
#[derive(Debug, Clone)]
pub struct FsError {
    pub kind: ErrorKind,
    /// The path inside the mount (for logs and sidecars), empty when unknown.
    pub path: String,
}

#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// No such entry (a local answer: lookups, unknown inodes).
    NotFound,
    /// The entry exists (`mkdir` of an existing name, `RENAME_NOREPLACE`).
    Exists,
    NotDir,
    IsDir,
    /// Only inside one data type directory (so `mv` copies instead).
    CrossDevice,
    /// A local refusal by Altinn's rules before any request: main form delete, locked element,
    /// inactive instance, read-only mount, data type not writable, layout that cannot change.
    Refused(String),
    /// An upload rule from rules.rs failed before any byte moved.
    Rule(RuleViolation),
    /// maxCount of the data type reached (checked locally).
    MaxCount {
        data_type: String,
        max: i64,
    },
    /// maxSize exceeded while bytes arrive.
    TooLarge {
        max: u64,
    },
    /// Altinn refuses empty data (truncate an element to zero and close).
    Empty,
    /// A bad argument (name too odd, unknown xattr value...).
    Invalid(String),
    /// The extended attribute does not exist.
    NoAttr,
    /// The extended attribute cannot be set.
    AttrNotSupported,
    /// The server (or the network) refused; `op` names the request.
    Server {
        op: &'static str,
        err: AltinnError,
    },
    /// A local I/O problem (spool or cache file).
    Io(String),
    /// A read-only part of the mount (`.inbox/`, `.done/`: the bytes are the platform's).
    ReadOnly,
}

impl FsError {
    pub fn new(kind: ErrorKind, path: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.into(),
        }
    }
    pub fn not_found(path: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, path)
    }
    pub fn refused(path: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused(why.into()), path)
    }
    pub fn server(path: impl Into<String>, op: &'static str, err: AltinnError) -> Self {
        Self::new(ErrorKind::Server { op, err }, path)
    }
    pub fn io(path: impl Into<String>, e: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Io(e.to_string()), path)
    }
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        if self.path.is_empty() {
            self.path = path.into();
        }
        self
    }

    /// The errno the kernel gets. The one place where errors become numbers.
    pub fn errno(&self) -> i32 {
        match &self.kind {
            ErrorKind::NotFound => libc::ENOENT,
            ErrorKind::Exists => libc::EEXIST,
            ErrorKind::NotDir => libc::ENOTDIR,
            ErrorKind::IsDir => libc::EISDIR,
            ErrorKind::CrossDevice => libc::EXDEV,
            ErrorKind::Refused(_) => libc::EPERM,
            ErrorKind::Rule(v) => rule_errno(v.code),
            ErrorKind::MaxCount { .. } => libc::EDQUOT,
            ErrorKind::TooLarge { .. } => libc::EFBIG,
            ErrorKind::Empty => libc::EINVAL,
            ErrorKind::Invalid(_) => libc::EINVAL,
            ErrorKind::NoAttr => libc::ENODATA,
            ErrorKind::AttrNotSupported => libc::ENOTSUP,
            ErrorKind::Server { err, .. } => server_errno(err),
            ErrorKind::Io(_) => libc::EIO,
            ErrorKind::ReadOnly => libc::EROFS,
        }
    }

    /// Plain "no such file" answers are part of normal life (shell completion, `stat` probes)
    /// and not logged; everything else is logged once where it is answered.
    pub fn should_log(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::NotFound
                | ErrorKind::Exists
                | ErrorKind::NoAttr
                | ErrorKind::AttrNotSupported
                | ErrorKind::NotDir
                | ErrorKind::IsDir
                | ErrorKind::CrossDevice
        )
    }

    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self.errno() {
            libc::EPERM => "Altinn does not allow this here; check the data type's rules, the element's lock and the instance's state",
            libc::EINVAL => "give the file a name with an extension and non-empty, well-formed content",
            libc::EFBIG => "the file is larger than the data type's maxSize; split or compress it",
            libc::EDQUOT => "the data type holds its maxCount elements; delete one first",
            libc::EACCES => "the token lacks rights for this (or expired); check the token and party",
            libc::ENOENT => "it is gone on the server; list the directory again",
            libc::EBUSY => "the server reports a conflict; try again later",
            libc::EIO => "the server or network failed; the operation can be retried (unsent uploads are kept in unsent/)",
            _ => "",
        }
    }
}

/// Issue codes of Altinn's upload validation (and our identical local checks) → errno.
fn rule_errno(code: &str) -> i32 {
    match code {
        "ContentTypeNotAllowed" => libc::EPERM,
        "DataElementTooLarge" => libc::EFBIG,
        "InvalidFileNameFormat" | "MissingFileName" | "UnsupportedContentType" => libc::EINVAL,
        _ => libc::EINVAL,
    }
}

/// A server error → errno, by what the client decided it means (SPEC §4 table). Exhaustive
/// over meanings and refusals; message text is never looked at here.
fn server_errno(err: &AltinnError) -> i32 {
    match err.meaning() {
        Meaning::Refused(refusal) => refusal_errno(&refusal),
        Meaning::NotFound => libc::ENOENT,
        Meaning::Unauthorized | Meaning::Forbidden => libc::EACCES,
        Meaning::Transient { .. } | Meaning::Unexpected | Meaning::Local => libc::EIO,
    }
}

fn refusal_errno(refusal: &Refusal) -> i32 {
    match refusal {
        Refusal::MaxCount => libc::EDQUOT,
        Refusal::Locked
        | Refusal::NotActive
        | Refusal::NoCurrentTask
        | Refusal::MainForm
        | Refusal::Disallowed => libc::EPERM,
        Refusal::Rule(code) => rule_errno(code),
        Refusal::TooLarge => libc::EFBIG,
        Refusal::ContentType | Refusal::Invalid => libc::EINVAL,
        Refusal::Conflict => libc::EBUSY,
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(mount)"
        } else {
            &self.path
        };
        match &self.kind {
            ErrorKind::NotFound => write!(f, "{path}: no such entry"),
            ErrorKind::Exists => write!(f, "{path}: exists"),
            ErrorKind::NotDir => write!(f, "{path}: not a directory"),
            ErrorKind::IsDir => write!(f, "{path}: is a directory"),
            ErrorKind::CrossDevice => {
                write!(
                    f,
                    "{path}: rename only works inside one data type directory"
                )
            }
            ErrorKind::Refused(why) => write!(f, "{path}: refused: {why}"),
            ErrorKind::Rule(v) => write!(f, "{path}: rule {}: {}", v.code, v.description),
            ErrorKind::MaxCount { data_type, max } => {
                write!(
                    f,
                    "{path}: data type {data_type} already holds maxCount={max} elements"
                )
            }
            ErrorKind::TooLarge { max } => write!(f, "{path}: larger than maxSize ({max} bytes)"),
            ErrorKind::Empty => write!(f, "{path}: Altinn refuses empty data"),
            ErrorKind::Invalid(why) => write!(f, "{path}: invalid: {why}"),
            ErrorKind::NoAttr => write!(f, "{path}: no such attribute"),
            ErrorKind::AttrNotSupported => write!(f, "{path}: attribute cannot be set"),
            ErrorKind::Server { op, err } => write!(f, "{path}: {op} failed: {err}"),
            ErrorKind::Io(e) => write!(f, "{path}: local I/O error: {e}"),
            ErrorKind::ReadOnly => write!(f, "{path}: read-only (the inbox holds the platform's bytes; mv an instance to .done/ to confirm it)"),
        }?;
        let hint = self.hint();
        if !hint.is_empty() {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for FsError {}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::altinn::client::Answer;
    use crate::altinn::model::{ProblemDetails, ValidationIssue};

    fn status(status: u16, message: &str, code: Option<&str>) -> FsError {
        let problem = code.map(|c| ProblemDetails {
            upload_validation_issues: Some(vec![ValidationIssue {
                code: Some(c.into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        // Built as the HTTP client builds it: the meaning is parsed once, here.
        FsError::server(
            "p",
            "upload",
            AltinnError::from_answer(Answer {
                status,
                method: "POST",
                path: "/x",
                message: message.into(),
                problem,
                retry_after: None,
            }),
        )
    }

    #[test]
    fn spec_table() {
        assert_eq!(
            status(400, "", Some("ContentTypeNotAllowed")).errno(),
            libc::EPERM
        );
        assert_eq!(
            status(400, "", Some("InvalidFileNameFormat")).errno(),
            libc::EINVAL
        );
        assert_eq!(
            status(400, "", Some("DataElementTooLarge")).errno(),
            libc::EFBIG
        );
        assert_eq!(
            status(400, "Cannot Delete main data element", None).errno(),
            libc::EPERM
        );
        assert_eq!(
            status(409, "Max Count Exceeded", None).errno(),
            libc::EDQUOT
        );
        assert_eq!(
            status(409, "Data element x is locked", None).errno(),
            libc::EPERM
        );
        assert_eq!(
            status(409, "Instance Not Active", None).errno(),
            libc::EPERM
        );
        assert_eq!(status(409, "Conflict", None).errno(), libc::EBUSY);
        assert_eq!(status(413, "", None).errno(), libc::EFBIG);
        assert_eq!(status(415, "", None).errno(), libc::EINVAL);
        assert_eq!(status(401, "", None).errno(), libc::EACCES);
        assert_eq!(status(403, "", None).errno(), libc::EACCES);
        assert_eq!(status(404, "", None).errno(), libc::ENOENT);
        assert_eq!(status(503, "", None).errno(), libc::EIO);
        assert_eq!(status(429, "", None).errno(), libc::EIO);
    }

    #[test]
    fn every_refusal_has_its_errno() {
        let table = [
            (Refusal::MaxCount, libc::EDQUOT),
            (Refusal::Locked, libc::EPERM),
            (Refusal::NotActive, libc::EPERM),
            (Refusal::NoCurrentTask, libc::EPERM),
            (Refusal::MainForm, libc::EPERM),
            (Refusal::Disallowed, libc::EPERM),
            (Refusal::Rule("ContentTypeNotAllowed".into()), libc::EPERM),
            (Refusal::Rule("DataElementTooLarge".into()), libc::EFBIG),
            (Refusal::Rule("MissingFileName".into()), libc::EINVAL),
            (Refusal::TooLarge, libc::EFBIG),
            (Refusal::ContentType, libc::EINVAL),
            (Refusal::Invalid, libc::EINVAL),
            (Refusal::Conflict, libc::EBUSY),
        ];
        for (refusal, errno) in table {
            assert_eq!(refusal_errno(&refusal), errno, "{refusal:?}");
        }
    }

    #[test]
    fn errors_without_a_status_map_by_their_shape() {
        let net = AltinnError::Network {
            method: "GET".into(),
            path: "/x".into(),
            message: "max count locked".into(),
        };
        assert_eq!(FsError::server("p", "read", net).errno(), libc::EIO);
        let auth = AltinnError::Auth("expired".into());
        assert_eq!(FsError::server("p", "read", auth).errno(), libc::EACCES);
        let decode = AltinnError::Decode {
            path: "/x".into(),
            message: "x".into(),
        };
        assert_eq!(FsError::server("p", "read", decode).errno(), libc::EIO);
    }
}
