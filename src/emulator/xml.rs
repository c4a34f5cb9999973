//! A simple XML ↔ JSON mapping for form data: the root element is the model; child elements
//! become object fields (repeated names become arrays), text-only elements become strings.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};
use serde_json::{Map, Value};

pub const ROOT: &str = "Model";

struct Node {
    name: String,
    fields: Map<String, Value>,
    text: String,
    has_children: bool,
}

fn insert(map: &mut Map<String, Value>, k: String, v: Value) {
    match map.get_mut(&k) {
        Some(Value::Array(a)) => a.push(v),
        Some(old) => {
            let prev = old.take();
            *old = Value::Array(vec![prev, v]);
        }
        None => {
            map.insert(k, v);
        }
    }
}

/// The parse in progress: open elements and, once closed, the root.
#[derive(Default)]
struct Tree {
    stack: Vec<Node>,
    root: Option<(String, Value)>,
}

impl Tree {
    fn open(&mut self, name: String) -> Result<(), String> {
        if self.root.is_some() {
            return Err("Failed to deserialize XML: content after the root element".into());
        }
        if let Some(top) = self.stack.last_mut() {
            top.has_children = true;
        }
        self.stack.push(Node {
            name,
            fields: Map::new(),
            text: String::new(),
            has_children: false,
        });
        Ok(())
    }

    fn empty(&mut self, name: String) -> Result<(), String> {
        match self.stack.last_mut() {
            Some(top) => {
                top.has_children = true;
                insert(&mut top.fields, name, Value::Null);
            }
            None if self.root.is_some() => {
                return Err("Failed to deserialize XML: content after the root element".into())
            }
            None => self.root = Some((name, Value::Object(Map::new()))),
        }
        Ok(())
    }

    fn text(&mut self, s: &str) -> Result<(), String> {
        match self.stack.last_mut() {
            Some(top) => top.text.push_str(s),
            None if !s.trim().is_empty() => {
                return Err("Failed to deserialize XML: text outside the root element".into())
            }
            None => {}
        }
        Ok(())
    }

    /// Close the innermost element: an object if it had children (or is an empty root), else
    /// its text.
    fn close(&mut self) -> Result<(), String> {
        let n = self
            .stack
            .pop()
            .ok_or("Failed to deserialize XML: unbalanced end tag")?;
        let v = if n.has_children || (n.text.is_empty() && self.stack.is_empty()) {
            Value::Object(n.fields)
        } else {
            Value::String(n.text)
        };
        match self.stack.last_mut() {
            Some(top) => insert(&mut top.fields, n.name, v),
            None => self.root = Some((n.name, v)),
        }
        Ok(())
    }

    fn finish(self) -> Result<(String, Value), String> {
        if !self.stack.is_empty() {
            return Err("Failed to deserialize XML: unexpected end of document".into());
        }
        match self.root {
            Some((name, Value::String(s))) => Ok((
                name,
                Value::Object(Map::from_iter([("value".to_string(), Value::String(s))])),
            )),
            Some(r) => Ok(r),
            None => Err("Failed to deserialize XML: no root element".into()),
        }
    }
}

/// Parse XML into (root name, JSON object).
pub fn xml_to_json(bytes: &[u8]) -> Result<(String, Value), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("XML is not UTF-8: {e}"))?;
    let mut r = Reader::from_str(text);
    r.config_mut().trim_text(true);
    let mut tree = Tree::default();
    loop {
        let ev = r.read_event().map_err(|e| {
            format!(
                "Failed to deserialize XML at position {}: {e}",
                r.buffer_position()
            )
        })?;
        match ev {
            Event::Start(s) => tree.open(local(&s))?,
            Event::Empty(s) => tree.empty(local(&s))?,
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| format!("Failed to deserialize XML: {e}"))?;
                tree.text(&s)?;
            }
            Event::CData(t) if !tree.stack.is_empty() => {
                tree.text(&String::from_utf8_lossy(&t))?;
            }
            Event::End(_) => tree.close()?,
            Event::Eof => break,
            _ => {}
        }
    }
    tree.finish()
}

fn local(s: &BytesStart) -> String {
    String::from_utf8_lossy(s.local_name().as_ref()).to_string()
}

/// Serialise a JSON object as XML with the given root element name.
pub fn json_to_xml(root: &str, v: &Value) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
    let mut start = BytesStart::new(root);
    start.push_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"));
    start.push_attribute(("xmlns:xsd", "http://www.w3.org/2001/XMLSchema"));
    write_value(&mut w, start, root, v);
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

fn write_value(w: &mut Writer<Vec<u8>>, start: BytesStart, name: &str, v: &Value) {
    match v {
        Value::Null => {
            let _ = w.write_event(Event::Empty(start));
        }
        Value::Object(m) => {
            let _ = w.write_event(Event::Start(start));
            for (k, v) in m {
                write_field(w, k, v);
            }
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
        Value::Array(a) => {
            let _ = w.write_event(Event::Start(start));
            for v in a {
                write_field(w, "item", v);
            }
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
        other => {
            let s = match other {
                Value::String(s) => s.clone(),
                x => x.to_string(),
            };
            let _ = w.write_event(Event::Start(start));
            let _ = w.write_event(Event::Text(BytesText::new(&s)));
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
    }
}

fn write_field(w: &mut Writer<Vec<u8>>, k: &str, v: &Value) {
    let name = sanitize(k);
    if let Value::Array(a) = v {
        for x in a {
            write_value(w, BytesStart::new(name.as_str()), &name, x);
        }
    } else {
        write_value(w, BytesStart::new(name.as_str()), &name, v);
    }
}

fn sanitize(k: &str) -> String {
    let s: String = k
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || !s.chars().next().unwrap().is_alphabetic() && !s.starts_with('_') {
        format!("_{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let x = br#"<?xml version="1.0"?><Model xmlns:xsi="x"><a>1</a><b>2</b><p><n>x &amp; y</n></p><l>1</l><l>2</l><e/></Model>"#;
        let (root, v) = xml_to_json(x).unwrap();
        assert_eq!(root, "Model");
        assert_eq!(v["a"], "1");
        assert_eq!(v["p"]["n"], "x & y");
        assert_eq!(v["l"][1], "2");
        let back = json_to_xml(&root, &v);
        let (_, v2) = xml_to_json(&back).unwrap();
        assert_eq!(v, v2);
        assert!(xml_to_json(b"<a><b></a>").is_err());
        assert!(xml_to_json(b"not xml").is_err());
    }

    #[test]
    fn roots_text_cdata_and_stray_content() {
        let (root, v) = xml_to_json(b"<Model/>").unwrap();
        assert_eq!((root.as_str(), v), ("Model", Value::Object(Map::new())));
        assert_eq!(
            xml_to_json(b"<Model></Model>").unwrap().1,
            Value::Object(Map::new())
        );
        assert_eq!(
            xml_to_json(b"<Model>hei</Model>").unwrap().1["value"],
            "hei"
        );
        assert_eq!(
            xml_to_json(b"<M><a><![CDATA[<x>]]></a></M>").unwrap().1["a"],
            "<x>"
        );
        assert_eq!(
            xml_to_json(b"<M><e/><e/></M>").unwrap().1["e"],
            serde_json::json!([null, null])
        );
        assert!(xml_to_json(b"<M/><N/>").is_err(), "a second root");
        assert!(xml_to_json(b"<M></M>text").is_err(), "text after the root");
        assert!(xml_to_json(b"<M><a>").is_err(), "unclosed");
        assert!(xml_to_json(b"").is_err(), "no root");
    }
}
