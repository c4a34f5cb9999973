//! A stored (compact) document made whole in its text, so that it is deserialized once: the
//! markers `compact` left among the top-level members are replaced by the JSON of the values
//! they stand for. Building a `serde_json::Value` first and converting it was about a quarter
//! of the daemon's user time in a `find` (every instance a walk enters is loaded).
//!
//! Same result as `compact::expand_*` on the parsed document (tests compare both); a text of
//! another shape (not an object, an `id` with escapes) gives None and the caller takes that
//! path instead.

use super::compact::{LinkBases, Owner};
use std::borrow::Cow;
use std::ops::Range;

/// One top-level member of an object: the raw text of its key (without the quotes) and of
/// its value.
struct Member {
    key: Range<usize>,
    value: Range<usize>,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end of the string whose opening quote is at `i` (past its closing quote).
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The end of the value that starts at `i` (strings and nested containers skipped whole).
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i = string_end(b, i)?;
                if depth == 0 {
                    return Some(i);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            c if depth == 0 && c.is_ascii_whitespace() => return Some(i),
            _ => {}
        }
        i += 1;
    }
    (depth == 0).then_some(i)
}

/// The top-level members of the object `doc` (None: not an object).
fn members(doc: &str) -> Option<Vec<Member>> {
    let b = doc.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = i + 1..key_end - 1;
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        out.push(Member {
            key,
            value: start..end,
        });
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

/// The value of string member `key`, when it has no escapes (its raw text is its value).
fn plain_string<'a>(doc: &'a str, members: &[Member], key: &str) -> Option<&'a str> {
    let m = members.iter().find(|m| &doc[m.key.clone()] == key)?;
    let s = doc[m.value.clone()].strip_prefix('"')?.strip_suffix('"')?;
    (!s.contains('\\')).then_some(s)
}

/// Append `parts` as one JSON string.
fn push_json_string(out: &mut String, parts: &[&str]) {
    out.push('"');
    for p in parts {
        if p.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20) {
            let quoted = serde_json::Value::from(*p).to_string();
            out.push_str(&quoted[1..quoted.len() - 1]);
        } else {
            out.push_str(p);
        }
    }
    out.push('"');
}

/// Append the `selfLinks` object of `path` (`compact::LinkBases::links`).
fn push_links(out: &mut String, b: &LinkBases, path: &[&str]) {
    for (i, (key, base)) in [("apps", &b.apps), ("platform", &b.platform)]
        .into_iter()
        .enumerate()
    {
        out.push_str(if i == 0 { "{\"" } else { ",\"" });
        out.push_str(key);
        out.push_str("\":");
        let mut parts = vec![base.as_str(), "/instances/"];
        parts.extend_from_slice(path);
        push_json_string(out, &parts);
    }
    out.push('}');
}

/// `doc` with every member whose value is the marker `true` and for which `fill(key, out)`
/// appends a value given that value's JSON text instead (`fill` returns false for a key it
/// computes nothing for).
fn put_back<'a>(
    doc: &'a str,
    members: &[Member],
    fill: impl Fn(&str, &mut String) -> bool,
) -> Cow<'a, str> {
    let mut out = String::new();
    let mut done = 0;
    for m in members {
        if &doc[m.value.clone()] != "true" {
            continue;
        }
        if out.is_empty() {
            out.reserve(doc.len() + 256);
        }
        let at = out.len();
        out.push_str(&doc[done..m.value.start]);
        if fill(&doc[m.key.clone()], &mut out) {
            done = m.value.end;
        } else {
            out.truncate(at);
        }
    }
    if done == 0 {
        return Cow::Borrowed(doc);
    }
    out.push_str(&doc[done..]);
    Cow::Owned(out)
}

/// The whole text of a stored instance document (`compact::expand_instance`).
pub fn instance_text<'a>(doc: &'a str, bases: Option<&LinkBases>) -> Option<Cow<'a, str>> {
    let members = members(doc)?;
    let Some(b) = bases else {
        return Some(Cow::Borrowed(doc));
    };
    let Some(id) = plain_string(doc, &members, "id") else {
        // No id: nothing computed was left out. An id with escapes: the other path.
        return members
            .iter()
            .all(|m| &doc[m.key.clone()] != "id")
            .then_some(Cow::Borrowed(doc));
    };
    Some(put_back(doc, &members, |key, out| {
        let links = key == "selfLinks";
        if links {
            push_links(out, b, &[id]);
        }
        links
    }))
}

/// The whole text of a stored element document (`compact::expand_element`).
pub fn element_text<'a>(
    doc: &'a str,
    owner: &Owner,
    bases: Option<&LinkBases>,
) -> Option<Cow<'a, str>> {
    let members = members(doc)?;
    let Some(el) = plain_string(doc, &members, "id") else {
        return members
            .iter()
            .all(|m| &doc[m.key.clone()] != "id")
            .then_some(Cow::Borrowed(doc));
    };
    Some(put_back(doc, &members, |key, out| {
        match (key, bases) {
            ("instanceGuid", _) => push_json_string(out, &[owner.guid]),
            ("blobStoragePath", _) => {
                push_json_string(out, &[owner.app_id, "/", owner.guid, "/data/", el])
            }
            ("selfLinks", Some(b)) => push_links(out, b, &[owner.instance_id, "/data/", el]),
            _ => return false,
        }
        true
    }))
}

#[cfg(test)]
mod tests {
    use super::super::compact::{self, LinkBases, Owner};
    use super::*;
    use serde_json::{json, Value};

    fn bases() -> LinkBases {
        LinkBases {
            apps: "https://ttd.apps/ttd/app".into(),
            platform: "https://platform/storage/api/v1".into(),
        }
    }

    fn owner() -> Owner<'static> {
        Owner {
            instance_id: "5/g",
            guid: "g",
            app_id: "ttd/app",
        }
    }

    /// What the Value path makes of a stored instance text.
    fn by_value_instance(doc: &str, b: Option<&LinkBases>) -> Value {
        let mut v: Value = serde_json::from_str(doc).unwrap();
        compact::expand_instance(&mut v, b);
        v
    }

    fn by_value_element(doc: &str, b: Option<&LinkBases>) -> Value {
        let mut v: Value = serde_json::from_str(doc).unwrap();
        compact::expand_element(&mut v, &owner(), b);
        v
    }

    fn by_text_instance(doc: &str, b: Option<&LinkBases>) -> Value {
        serde_json::from_str(&instance_text(doc, b).expect("an object")).unwrap()
    }

    fn by_text_element(doc: &str, b: Option<&LinkBases>) -> Value {
        serde_json::from_str(&element_text(doc, &owner(), b).expect("an object")).unwrap()
    }

    #[test]
    fn a_compacted_instance_comes_back_as_the_value_path_makes_it() {
        let inst = json!({"id": "5/g", "appId": "ttd/app", "selfLinks": {
            "apps": "https://ttd.apps/ttd/app/instances/5/g",
            "platform": "https://platform/storage/api/v1/instances/5/g"},
            "status": {"isArchived": false}, "dataValues": {"selfLinks": "true"}});
        let mut doc = inst.clone();
        compact::compact_instance(&mut doc, Some(&bases()));
        let text = doc.to_string();
        assert!(text.contains("\"selfLinks\":true"), "{text}");
        assert_eq!(by_text_instance(&text, Some(&bases())), inst);
        assert_eq!(
            by_text_instance(&text, Some(&bases())),
            by_value_instance(&text, Some(&bases()))
        );
    }

    #[test]
    fn a_compacted_element_comes_back_as_the_value_path_makes_it() {
        let el = json!({"id": "e", "instanceGuid": "g", "blobStoragePath": "ttd/app/g/data/e",
            "selfLinks": {"apps": "https://ttd.apps/ttd/app/instances/5/g/data/e",
                          "platform": "https://platform/storage/api/v1/instances/5/g/data/e"},
            "size": 3, "tags": ["a", "b"], "filename": "a \"quoted\", {name}.pdf"});
        let mut doc = el.clone();
        compact::compact_element(&mut doc, &owner(), Some(&bases()));
        let text = doc.to_string();
        assert_eq!(by_text_element(&text, Some(&bases())), el);
        // Without bases only what the owner gives comes back, as on the other path.
        assert_eq!(
            by_text_element(&text, None),
            by_value_element(&text, None),
            "{text}"
        );
    }

    #[test]
    fn only_top_level_markers_are_filled() {
        // A nested `"selfLinks": true` (an unknown field of the server's) stays as it is.
        let text = r#"{ "id" : "5/g", "extra": {"selfLinks":true, "x": [1, {"a": "}"}]},
            "selfLinks" : true, "n": -1.5e3, "ok": true }"#;
        let got = by_text_instance(text, Some(&bases()));
        assert_eq!(got, by_value_instance(text, Some(&bases())));
        assert_eq!(got["extra"]["selfLinks"], json!(true));
        assert_eq!(
            got["ok"],
            json!(true),
            "a key the mount computes nothing for"
        );
        assert!(got["selfLinks"].is_object());
    }

    #[test]
    fn texts_of_another_shape_take_the_value_path() {
        assert!(instance_text("[1, 2]", Some(&bases())).is_none());
        assert!(instance_text("{\"id\": 5", Some(&bases())).is_none());
        // An id with an escape: its raw text is not its value.
        assert!(instance_text(r#"{"id": "5\/g", "selfLinks": true}"#, Some(&bases())).is_none());
        let bare = r#"{"size": 3}"#;
        assert_eq!(element_text(bare, &owner(), None).as_deref(), Some(bare));
        assert_eq!(instance_text("{}", Some(&bases())).as_deref(), Some("{}"));
    }
}
