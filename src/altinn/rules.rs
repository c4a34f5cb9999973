//! Altinn's upload rules (altinn-api.md §2), one copy shared by the filesystem's early checks
//! at `open(O_CREAT)` and by the emulator, so both refuse exactly the same uploads.

use crate::altinn::model::DataType;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The app backend's extension → MIME table (`altinn-mimetypes.tsv`, first type is primary).
static MIME_TSV: &str = include_str!("../../data/altinn-mimetypes.tsv");

fn mime_table() -> &'static HashMap<String, Vec<String>> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        MIME_TSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (ext, types) = l.split_once('\t')?;
                let types = types.split(',').map(|t| t.trim().to_string()).collect();
                Some((ext.trim().to_ascii_lowercase(), types))
            })
            .collect()
    })
}

pub const OCTET_STREAM: &str = "application/octet-stream";
/// Kestrel's `RequestSizeLimit` on the data endpoints.
pub const MAX_REQUEST_BYTES: u64 = 2000 * 1024 * 1024;

/// The last extension of a file name, with its dot (`.pdf`), or None when there is none.
pub fn extension(name: &str) -> Option<&str> {
    let idx = name.rfind('.')?;
    if idx + 1 == name.len() {
        return None;
    }
    Some(&name[idx..])
}

/// MIME types (primary first, then aliases) of a file name's extension, as the app maps it;
/// unknown extensions map to `application/octet-stream`.
pub fn mime_types_for(name: &str) -> Vec<String> {
    extension(name)
        .and_then(|e| mime_table().get(&e.to_ascii_lowercase()).cloned())
        .unwrap_or_else(|| vec![OCTET_STREAM.to_string()])
}

/// The primary MIME type a client sends for a file name.
pub fn mime_for(name: &str) -> String {
    mime_types_for(name).remove(0)
}

/// One failed rule: the issue `code` Altinn returns and a human description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub code: &'static str,
    pub description: String,
}

impl RuleViolation {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }
}

/// Name checks of §2.1 steps 3–4: a usable filename with a dot.
pub fn check_filename(name: &str) -> Result<(), RuleViolation> {
    if name.trim_matches('"').is_empty() {
        return Err(RuleViolation::new(
            "MissingFileName",
            "Invalid data provided. Error: The Content-Disposition header must contain a valid filename",
        ));
    }
    if name.split('.').count() < 2 {
        return Err(RuleViolation::new(
            "InvalidFileNameFormat",
            "Invalid data provided. Error: Filename is expected to end with '.{filetype}'.",
        ));
    }
    Ok(())
}

/// Content-type checks of §2.1 steps 5–9 for a binary data type.
pub fn check_content_type(
    dt: &DataType,
    filename: &str,
    content_type: Option<&str>,
) -> Result<(), RuleViolation> {
    let allowed = &dt.allowed_content_types;
    if allowed.is_empty() {
        return Ok(());
    }
    let ext_types = mime_types_for(filename);
    let Some(ct) = content_type else {
        return Err(RuleViolation::new(
            "InvalidFileNameFormat",
            "Invalid data provided. Error: Content type header is missing",
        ));
    };
    if ct != OCTET_STREAM && !ext_types.iter().any(|t| t.eq_ignore_ascii_case(ct)) {
        return Err(RuleViolation::new(
            "InvalidFileNameFormat",
            format!(
                "Invalid data provided. Error: Content type header {ct} does not match mime type {} for uploaded file. Please fix header or upload another file.",
                ext_types[0]
            ),
        ));
    }
    let permitted = allowed.iter().any(|a| a.eq_ignore_ascii_case(ct))
        || allowed.iter().any(|a| a == OCTET_STREAM);
    if !permitted {
        return Err(RuleViolation::new(
            "ContentTypeNotAllowed",
            format!(
                "Invalid content type: {}. Please try another file. Permitted content types include: {}",
                ext_types[0],
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Size check of §2.1 step 2 (strictly greater than maxSize MiB fails).
pub fn check_size(dt: &DataType, len: u64) -> Result<(), RuleViolation> {
    if let Some(max) = dt.max_size_bytes() {
        if len > max {
            return Err(RuleViolation::new(
                "DataElementTooLarge",
                format!("Binary attachment exceeds limit of {max}"),
            ));
        }
    }
    Ok(())
}

/// Whether one more element of `dt` may be added when `existing` exist (maxCount ≤ 0 = unlimited).
pub fn count_allows_one_more(dt: &DataType, existing: usize) -> bool {
    dt.max_count <= 0 || (existing as i64) < dt.max_count
}

/// Whether a form data type accepts this content type (XML or JSON; absent means XML).
pub fn form_content_type_ok(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.contains("application/xml")
                || ct.contains("text/xml")
                || ct.contains("application/json")
        }
    }
}

/// Everything the filesystem can check at `open(O_CREAT)` of a new element, before a byte
/// moves: name with an extension, extension MIME allowed. maxCount and size are separate.
pub fn check_new_file(dt: &DataType, filename: &str) -> Result<(), RuleViolation> {
    check_filename(filename)?;
    if dt.is_form() {
        let ct = mime_for(filename);
        if !form_content_type_ok(Some(&ct)) {
            return Err(RuleViolation::new(
                "UnsupportedContentType",
                format!("Form data must be XML or JSON, not {ct}"),
            ));
        }
        return Ok(());
    }
    check_content_type(dt, filename, Some(&mime_for(filename)))
}

/// `Content-Disposition` value the platform accepts: quoted ASCII `filename` plus RFC 5987
/// `filename*` (PUT reads only the plain one, POST prefers the starred one).
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(filename, RFC5987).to_string();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// attr-char of RFC 5987: everything but ALPHA / DIGIT / "!#$&+-.^_`|~" is encoded.
const RFC5987: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Parse a `Content-Disposition` header as System.Net.Http would: `filename*` (RFC 5987)
/// wins over `filename`; quotes trimmed; NUL and `/` replaced by `_`. None = MissingFileName.
/// An unquoted `filename` containing spaces fails to parse, as on the platform.
pub fn parse_content_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    let mut star = None;
    for part in split_params(value).into_iter().skip(1) {
        let (k, v) = part.split_once('=')?;
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim();
        if k == "filename*" {
            let rest = v.split_once("''").map(|(_, r)| r).unwrap_or(v);
            star = Some(
                percent_encoding::percent_decode_str(rest)
                    .decode_utf8()
                    .ok()?
                    .to_string(),
            );
        } else if k == "filename" {
            if v.starts_with('"') {
                if v.len() < 2 || !v.ends_with('"') {
                    return None;
                }
                plain = Some(v[1..v.len() - 1].replace("\\\"", "\""));
            } else {
                if v.contains(char::is_whitespace) {
                    return None;
                }
                plain = Some(v.to_string());
            }
        }
    }
    let name = star.or(plain)?;
    let name: String = name
        .trim_matches('"')
        .chars()
        .map(|c| if c == '\0' || c == '/' { '_' } else { c })
        .collect();
    if name.is_empty() {
        None
    } else {
        Some(name)
    }
}

/// Split `a; b="x;y"; c` on semicolons outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c)
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(allowed: &[&str], max_size: Option<i64>) -> DataType {
        DataType {
            id: "att".into(),
            allowed_content_types: allowed.iter().map(|s| s.to_string()).collect(),
            max_size,
            ..Default::default()
        }
    }

    #[test]
    fn mime_table_matches_app_backend() {
        assert_eq!(mime_for("a.PDF"), "application/pdf");
        assert_eq!(mime_types_for("x.xml"), vec!["application/xml", "text/xml"]);
        assert_eq!(mime_for("notes.md"), OCTET_STREAM);
        assert_eq!(mime_for("noext"), OCTET_STREAM);
    }

    #[test]
    fn content_type_rules_in_order() {
        let pdf_only = dt(&["application/pdf", "image/png"], None);
        assert!(check_content_type(&pdf_only, "a.pdf", Some("application/pdf")).is_ok());
        assert_eq!(
            check_content_type(&pdf_only, "a.txt", Some("text/plain"))
                .unwrap_err()
                .code,
            "ContentTypeNotAllowed"
        );
        // header disagrees with the extension
        assert_eq!(
            check_content_type(&pdf_only, "a.pdf", Some("image/png"))
                .unwrap_err()
                .code,
            "InvalidFileNameFormat"
        );
        // parameters make the compare fail
        assert!(
            check_content_type(&pdf_only, "a.pdf", Some("application/pdf; charset=x")).is_err()
        );
        // octet-stream header passes step 8 but not step 9 unless allowed
        assert_eq!(
            check_content_type(&pdf_only, "a.pdf", Some(OCTET_STREAM))
                .unwrap_err()
                .code,
            "ContentTypeNotAllowed"
        );
        let any = dt(&[OCTET_STREAM], None);
        assert!(check_content_type(&any, "a.txt", Some("text/plain")).is_ok());
        assert!(check_content_type(&dt(&[], None), "a.exe", Some("x/y")).is_ok());
    }

    #[test]
    fn filename_and_size_rules() {
        assert_eq!(
            check_filename("noext").unwrap_err().code,
            "InvalidFileNameFormat"
        );
        assert!(check_filename(".env").is_ok());
        let d = dt(&[], Some(1));
        assert!(check_size(&d, 1024 * 1024).is_ok());
        assert_eq!(
            check_size(&d, 1024 * 1024 + 1).unwrap_err().code,
            "DataElementTooLarge"
        );
    }

    #[test]
    fn content_disposition_round_trip() {
        let h = content_disposition("Søknad 2026.pdf");
        assert!(h.starts_with(
            "attachment; filename=\"S_knad 2026.pdf\"; filename*=UTF-8''S%C3%B8knad%202026.pdf"
        ));
        assert_eq!(
            parse_content_disposition(&h).as_deref(),
            Some("Søknad 2026.pdf")
        );
        assert_eq!(
            parse_content_disposition("attachment; filename=Test Doc 2025.pdf"),
            None
        );
        assert_eq!(
            parse_content_disposition("attachment; filename=\"Test Doc 2025.pdf\"").as_deref(),
            Some("Test Doc 2025.pdf")
        );
        assert_eq!(parse_content_disposition("attachment"), None);
        assert_eq!(
            parse_content_disposition("attachment; filename=\"a/b.pdf\"").as_deref(),
            Some("a_b.pdf")
        );
    }
}
