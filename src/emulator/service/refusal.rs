//! A refused request as Altinn puts it on the wire: status, ProblemDetails, upload issues or
//! plain text. The routes send it; the in-process client reads it with the HTTP client's own
//! parser, so both see one answer.

use super::checks::Refusal;
use crate::altinn::model::{ProblemDetails, ValidationIssue};
use crate::altinn::rules::RuleViolation;
use serde_json::Value;

/// A refused request, rendered as ProblemDetails, DataPostErrorResponse or plain text.
#[derive(Debug, Clone)]
pub struct Fail {
    pub status: u16,
    pub title: String,
    pub detail: String,
    pub issues: Option<Vec<ValidationIssue>>,
    /// Render as the framework's default ProblemDetails (`Conflict()`).
    pub bare: bool,
    /// A 400 goes out as plain text (the obsolete POST, app-lib's binary PUT).
    pub text400: bool,
}

/// An answer's status, content type and body, before any transport.
#[derive(Debug, Clone)]
pub struct Wire {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

pub const PROBLEM_JSON: &str = "application/problem+json; charset=utf-8";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl Wire {
    pub fn empty(status: u16) -> Wire {
        Wire {
            status,
            content_type: None,
            body: vec![],
        }
    }

    pub fn text(status: u16, msg: impl Into<String>) -> Wire {
        Wire {
            status,
            content_type: Some(TEXT),
            body: msg.into().into_bytes(),
        }
    }

    pub fn problem(p: &ProblemDetails) -> Wire {
        Wire {
            status: p.status.unwrap_or(500),
            content_type: Some(PROBLEM_JSON),
            body: serde_json::to_vec(p).unwrap_or_default(),
        }
    }

    pub fn titled(status: u16, title: &str, detail: impl Into<String>) -> Wire {
        Wire::problem(&ProblemDetails {
            title: Some(title.to_string()),
            status: Some(status),
            detail: Some(detail.into()),
            ..Default::default()
        })
    }

    /// ASP.NET's default ProblemDetails for bare status results (`NotFound()`, `Conflict()`).
    pub fn default_problem(status: u16) -> Wire {
        let title = match status {
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            422 => "Unprocessable Entity",
            500 => "Internal Server Error",
            _ => "Error",
        };
        let section = match status {
            400 => "5.1",
            403 => "5.4",
            404 => "5.5",
            409 => "5.10",
            _ => "6.1",
        };
        let mut p = ProblemDetails {
            kind: Some(format!(
                "https://tools.ietf.org/html/rfc9110#section-15.{section}"
            )),
            title: Some(title.to_string()),
            status: Some(status),
            ..Default::default()
        };
        p.extra.insert(
            "traceId".into(),
            Value::String(format!("00-{}-01", uuid::Uuid::new_v4().simple())),
        );
        Wire::problem(&p)
    }
}

impl Fail {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Fail {
        Fail {
            status,
            title: title.into(),
            detail: detail.into(),
            issues: None,
            bare: false,
            text400: false,
        }
    }

    /// A 500 with no body (app-lib cannot read a chunked upload).
    pub fn bodiless(status: u16) -> Fail {
        Fail::new(status, "", "")
    }

    pub fn upload(v: RuleViolation) -> Fail {
        let mut f = Fail::new(400, "File validation failed", "Common checks failed");
        f.issues = Some(vec![ValidationIssue {
            severity: 1,
            code: Some(v.code.to_string()),
            description: Some(v.description),
            source: Some("DataRestrictionValidation".into()),
            ..Default::default()
        }]);
        f
    }

    /// The same refusal, its 400 as plain text.
    pub fn as_text(mut self, text400: bool) -> Fail {
        self.text400 = text400;
        self
    }

    pub fn wire(self) -> Wire {
        if self.text400 && self.status == 400 {
            let msg = match &self.issues {
                Some(i) => i
                    .iter()
                    .filter_map(|x| x.description.clone())
                    .collect::<Vec<_>>()
                    .join(";"),
                None => self.detail,
            };
            return Wire::text(400, msg);
        }
        if self.bare {
            return Wire::default_problem(self.status);
        }
        if self.status == 500 && self.title.is_empty() {
            return Wire::empty(500);
        }
        Wire::problem(&ProblemDetails {
            title: Some(self.title),
            status: Some(self.status),
            detail: Some(self.detail),
            upload_validation_issues: self.issues,
            ..Default::default()
        })
    }
}

impl From<Refusal> for Fail {
    /// The wire form of a refusal: the titles and texts app-lib uses.
    fn from(r: Refusal) -> Fail {
        let mut f = Fail::new(r.status(), title_of(&r), detail_of(&r));
        // Storage answers a locked element with a bare `Conflict()`: the framework's default
        // ProblemDetails, not this title and text.
        f.bare = matches!(r, Refusal::Locked(_));
        f
    }
}

/// The ProblemDetails title app-lib gives a refusal.
fn title_of(r: &Refusal) -> &'static str {
    use Refusal::*;
    match r {
        InstanceNotFound => "Instance Not Found",
        ElementNotFound(_) => "Data Element Not Found",
        UndeclaredType { .. } | ElementTypeGone(_) => "Data Type Not Found",
        TypeMismatch { .. } => "Bad Request",
        PdfType | NotContributor => "Forbidden",
        NotActive(_) => "Instance Not Active",
        MaxCount { .. } => "Max Count Exceeded",
        UserCreateDisallowed(_) => "User Create Disallowed",
        NoCurrentTask => "No current task",
        MainFormDelete => "Cannot Delete main data element",
        UserDeleteDisallowed(_) => "User Delete Disallowed",
        Locked(_) => "Conflict",
    }
}

/// The ProblemDetails detail app-lib gives a refusal, naming what was refused.
fn detail_of(r: &Refusal) -> String {
    use Refusal::*;
    match r {
        InstanceNotFound => String::new(),
        ElementNotFound(d) => format!("Did not find data element {d}"),
        UndeclaredType {
            data_type,
            instance,
        } => format!("Element type {data_type} not allowed for instance {instance}."),
        ElementTypeGone(t) => format!("Data type {t} not found in application metadata"),
        TypeMismatch { element, is, asked } => {
            format!("Data element {element} is of type {is}, not {asked}")
        }
        PdfType => "Cannot write to the pdf data type".into(),
        NotActive(id) => {
            format!("Cannot update data element of archived or deleted instance {id}")
        }
        NotContributor => "User is not a valid contributor to the data type".into(),
        MaxCount { max, data_type } => {
            format!("Cannot create more than {max} data elements of type {data_type}")
        }
        UserCreateDisallowed(t) => format!("User cannot create data elements of type {t}"),
        NoCurrentTask => "The instance has no current task".into(),
        MainFormDelete => "Cannot delete the main data element".into(),
        UserDeleteDisallowed(t) => format!("User cannot delete data elements of type {t}"),
        Locked(id) => format!("Data element {id} is locked and cannot be updated"),
    }
}
