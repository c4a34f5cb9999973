//! The tree ↔ parties/instances/data types/elements, and file names (SPEC §2, §3).

use crate::altinn::ids::{DataTypeId, ElementId, InstanceGuid, InstanceId, PartyId};
use crate::altinn::model::{DataElement, DataType};
use std::collections::HashSet;

pub const APP_METADATA: &str = "applicationmetadata.json";
pub const STATELESS: &str = ".stateless";
/// The mount's own directory (SPEC §7.3) and the change feed in it.
pub const ALTINN_DIR: &str = ".altinn";
pub const CHANGES: &str = "changes";
/// The app owner's inbox and what this mount confirmed (SPEC §7.4).
pub const INBOX: &str = ".inbox";
pub const DONE: &str = ".done";
pub const INSTANCE_JSON: &str = "instance.json";
/// Longest name the kernel accepts.
pub const NAME_MAX: usize = 255;

/// A node of the tree, by identity (never by display name). Ids are typed and compact, so
/// the nodes of the main tree hold no heap allocation (the inode table holds one per inode
/// the kernel knows).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    AppMeta,
    Stateless,
    StatelessType {
        dt: DataTypeId,
    },
    /// `.stateless/<dt>/<name>`: `new.xml`/`new.json` or a calculated object held in memory.
    StatelessFile {
        dt: DataTypeId,
        name: String,
    },
    Party {
        party: PartyId,
    },
    Instance {
        party: PartyId,
        guid: InstanceGuid,
    },
    InstanceJson {
        party: PartyId,
        guid: InstanceGuid,
    },
    DataTypeDir {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
    },
    Element {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
        id: ElementId,
    },
    /// `X.json`, the JSON view of the form data element shown as `X.xml` (option form_json).
    FormJson {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
        id: ElementId,
    },
    /// `.altinn/`: the mount's own files (reachable by name, not listed in the root).
    AltinnDir,
    /// `.altinn/changes`: the change feed (SPEC §7.3).
    ChangeFeed,
    /// `.inbox/` or `.done/` (SPEC §7.4): org tokens only, not listed in the root.
    ViewRoot {
        view: View,
    },
    /// `.inbox/P` or `.done/P`.
    ViewParty {
        view: View,
        party: PartyId,
    },
    /// A node of the main tree below `.inbox/P/` or `.done/P/` (read-only there).
    InView {
        view: View,
        inner: Box<Node>,
    },
    /// A file that exists only in this mount (empty, temporary name, not yet uploaded).
    Local {
        party: PartyId,
        guid: InstanceGuid,
        dt: DataTypeId,
        local: u64,
    },
}

/// The app owner's views of SPEC §7.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// Ended, not yet confirmed by this org: oldest first.
    Inbox,
    /// Confirmed by this mount: newest first.
    Done,
}

impl View {
    pub fn dir_name(self) -> &'static str {
        match self {
            View::Inbox => INBOX,
            View::Done => DONE,
        }
    }
}

impl Node {
    /// The instance a node of the main tree belongs to (instance, its files and dirs).
    pub fn instance_id(&self) -> Option<InstanceId> {
        match self {
            Node::Instance { party, guid }
            | Node::InstanceJson { party, guid }
            | Node::DataTypeDir { party, guid, .. }
            | Node::Element { party, guid, .. }
            | Node::FormJson { party, guid, .. }
            | Node::Local { party, guid, .. } => Some(InstanceId::new(*party, *guid)),
            _ => None,
        }
    }

    /// Below `.inbox/` or `.done/` (the read-only views).
    pub fn in_view(&self) -> bool {
        matches!(
            self,
            Node::ViewRoot { .. } | Node::ViewParty { .. } | Node::InView { .. }
        )
    }

    /// A directory with no server time of its own: its mtime is the last change of its
    /// listing this mount saw (`fs::dir_stamps`; `attr_of` and `view_attr` report it).
    pub fn mtime_is_stamped(&self) -> bool {
        matches!(
            self,
            Node::Root
                | Node::AltinnDir
                | Node::Stateless
                | Node::StatelessType { .. }
                | Node::Party { .. }
                | Node::ViewRoot { .. }
                | Node::ViewParty { .. }
        )
    }

    pub fn is_dir(&self) -> bool {
        if let Node::InView { inner, .. } = self {
            return inner.is_dir();
        }
        matches!(
            self,
            Node::Root
                | Node::AltinnDir
                | Node::ViewRoot { .. }
                | Node::ViewParty { .. }
                | Node::Stateless
                | Node::StatelessType { .. }
                | Node::Party { .. }
                | Node::Instance { .. }
                | Node::DataTypeDir { .. }
        )
    }
    /// The stable key its inode number is derived from.
    pub fn identity(&self) -> String {
        let mut s = String::new();
        let _ = self.write_identity(&mut s);
        s
    }

    /// [`Self::identity`] written into `w`: inode numbers hash it without a String.
    pub fn write_identity(&self, w: &mut impl std::fmt::Write) -> std::fmt::Result {
        match self {
            Node::Root => w.write_str("root"),
            Node::AppMeta => w.write_str("applicationmetadata"),
            Node::AltinnDir => w.write_str("altinn"),
            Node::ChangeFeed => w.write_str("altinn:changes"),
            Node::ViewRoot { view } => write!(w, "view:{}", view.dir_name()),
            Node::ViewParty { view, party } => write!(w, "view:{}/{party}", view.dir_name()),
            Node::InView { view, inner } => {
                write!(w, "view:{}:", view.dir_name())?;
                inner.write_identity(w)
            }
            Node::Stateless => w.write_str("stateless"),
            Node::StatelessType { dt } => write!(w, "stateless:{dt}"),
            Node::StatelessFile { dt, name } => write!(w, "stateless:{dt}/{name}"),
            Node::FormJson { id, .. } => write!(w, "formjson:{id}"),
            Node::Party { party } => write!(w, "party:{party}"),
            Node::Instance { guid, .. } => write!(w, "instance:{guid}"),
            Node::InstanceJson { guid, .. } => write!(w, "instance.json:{guid}"),
            Node::DataTypeDir { guid, dt, .. } => write!(w, "datatype:{guid}/{dt}"),
            Node::Element { id, .. } => write!(w, "element:{id}"),
            Node::Local {
                guid, dt, local, ..
            } => write!(w, "local:{guid}/{dt}/{local}"),
        }
    }
}

/// SPEC §3: `/` and NUL → `_`; `.`/`..` → `_.`/`_..`; empty → `_`; > 255 bytes shortened
/// keeping the extension.
pub fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if s.is_empty() {
        s = "_".into();
    }
    let s = shorten(&s, NAME_MAX);
    // After shortening too: `..` followed by a long tail must not become `.`.
    if s == "." || s == ".." {
        return format!("_{s}");
    }
    s
}

/// Split `name` into stem and extension (with its dot); a leading dot is not an extension.
pub fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// Cut a name to `max` bytes on a char boundary, keeping its extension when it is short.
pub fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = split_ext(name);
    // A long "extension" is no extension: cut the whole name instead of dropping its tail.
    let (stem, ext) = if ext.len() <= 32 {
        (stem, ext)
    } else {
        (name, "")
    };
    let mut keep = max - ext.len();
    while !stem.is_char_boundary(keep.min(stem.len())) {
        keep -= 1;
    }
    format!("{}{}", &stem[..keep.min(stem.len())], ext)
}

/// The name of an element before collisions are resolved: the filename, else (form data and
/// unnamed attachments) `<dataTypeId>` plus the extension of its content type.
pub fn base_name(el: &DataElement, dt: Option<&DataType>) -> String {
    if let Some(f) = el.filename.as_deref().filter(|f| !f.is_empty()) {
        return sanitize(f);
    }
    let ct = el
        .content_type
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_form = dt.map(|d| d.is_form()).unwrap_or(false);
    let ext = if ct.contains("json") {
        ".json"
    } else if ct.contains("xml") || ct.is_empty() && is_form {
        ".xml"
    } else if ct.contains("pdf") {
        ".pdf"
    } else if is_form {
        ".xml"
    } else {
        ".bin"
    };
    sanitize(&format!("{}{ext}", el.data_type))
}

/// Names of the elements of one directory: `(name, element index)`. The element created first
/// keeps a contested name; each other gets `stem~<first 8 hex digits of its id>.ext`.
pub fn assign_names(elements: &[&DataElement], dt: Option<&DataType>) -> Vec<(String, usize)> {
    let mut order: Vec<usize> = (0..elements.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (elements[a], elements[b]);
        ea.created.cmp(&eb.created).then_with(|| ea.id.cmp(&eb.id))
    });
    let bases: Vec<String> = elements.iter().map(|e| base_name(e, dt)).collect();
    // A plain name goes to the first claimant; plain names are reserved before suffixed ones
    // so that a suffixed name never steals another element's plain name.
    let mut taken: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(elements.len());
    let mut losers = Vec::new();
    for &i in &order {
        if taken.insert(bases[i].clone()) {
            out.push((bases[i].clone(), i));
        } else {
            losers.push(i);
        }
    }
    for i in losers {
        let hex: String = elements[i]
            .id
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let (stem, ext) = split_ext(&bases[i]);
        let suffix = format!("~{hex}{ext}");
        let mut name = format!("{}{suffix}", shorten(stem, NAME_MAX - suffix.len()));
        let mut n = 1;
        while !taken.insert(name.clone()) {
            // Two ids with one 8-digit prefix: extend with a counter (names stay unique).
            n += 1;
            let suffix = format!("~{hex}-{n}{ext}");
            name = format!("{}{suffix}", shorten(stem, NAME_MAX - suffix.len()));
        }
        out.push((name, i));
    }
    out
}

/// The JSON view's name of a form data file `X.xml` (`X.json`), if it has one.
pub fn json_view_name(xml_name: &str) -> Option<String> {
    let (stem, ext) = split_ext(xml_name);
    ext.eq_ignore_ascii_case(".xml")
        .then(|| format!("{stem}.json"))
        .filter(|n| n.len() <= NAME_MAX)
}

/// Names that editors and sync tools give their temporary files before renaming them into
/// place (rsync `.name.XXXXXX`, sed `sedXXXXXX`, vim `4913`, `*~`, `*.swp`, `#x#`). Such a file
/// stays local until it is renamed to a real name, so Altinn's name rules apply to the final
/// name only.
pub fn is_temp_name(name: &str) -> bool {
    let alnum6 = |s: &str| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric());
    if name.starts_with('.') {
        if let Some(i) = name.rfind('.') {
            if i > 0 && alnum6(&name[i + 1..]) {
                return true; // rsync: .NAME.XXXXXX
            }
        }
        if name.ends_with(".swp") || name.ends_with(".swx") {
            return true;
        }
    }
    if let Some(rest) = name.strip_prefix("sed") {
        if alnum6(rest) {
            return true;
        }
    }
    name == "4913"
        || name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || name.starts_with(".#")
        || name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_name_after_two_dots_stays_valid() {
        let n = format!("..{}", "x".repeat(300));
        let s = super::sanitize(&n);
        assert!(s.len() <= super::NAME_MAX && s != "." && s != "..", "{s}");
        assert!(s.starts_with("..x"));
    }

    use super::*;

    fn el(id: &str, name: Option<&str>, created: i64) -> DataElement {
        DataElement {
            id: id.into(),
            data_type: "att".into(),
            filename: name.map(Into::into),
            created: chrono::DateTime::from_timestamp(created, 0),
            ..Default::default()
        }
    }

    #[test]
    fn sanitising() {
        assert_eq!(sanitize("a/b\0c.pdf"), "a_b_c.pdf");
        assert_eq!(sanitize("."), "_.");
        assert_eq!(sanitize(".."), "_..");
        assert_eq!(sanitize(""), "_");
        let long = format!("{}.pdf", "x".repeat(300));
        let s = sanitize(&long);
        assert_eq!(s.len(), 255);
        assert!(s.ends_with(".pdf"));
        let long_utf8 = format!("{}.pdf", "ø".repeat(200));
        let s = sanitize(&long_utf8);
        assert!(s.len() <= 255 && s.ends_with(".pdf"));
    }

    #[test]
    fn collisions_earliest_keeps_name() {
        let a = el("bbbbbbbb-0000-4000-8000-000000000001", Some("x.pdf"), 10);
        let b = el("aaaaaaaa-0000-4000-8000-000000000002", Some("x.pdf"), 5);
        let c = el(
            "cccccccc-0000-4000-8000-000000000003",
            Some("x~aaaaaaaa.pdf"),
            20,
        );
        let names = assign_names(&[&a, &b, &c], None);
        let of = |i: usize| names.iter().find(|(_, j)| *j == i).unwrap().0.clone();
        assert_eq!(of(1), "x.pdf");
        assert_eq!(of(0), "x~bbbbbbbb.pdf");
        assert_eq!(of(2), "x~aaaaaaaa.pdf");
        let set: HashSet<_> = names.iter().map(|n| &n.0).collect();
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn form_names_and_temp_names() {
        let mut f = el("1", None, 0);
        f.data_type = "model".into();
        let dt = DataType {
            id: "model".into(),
            app_logic: Some(crate::altinn::model::ApplicationLogic {
                class_ref: Some("A.B".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(base_name(&f, Some(&dt)), "model.xml");
        assert!(is_temp_name(".report.pdf.Ab12Cd"));
        assert!(is_temp_name("sedAb12Cd"));
        assert!(!is_temp_name("report.pdf"));
        assert!(!is_temp_name(".env"));
    }

    fn ids() -> (PartyId, InstanceGuid, DataTypeId, ElementId) {
        (
            "510001".parse().unwrap(),
            "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b".parse().unwrap(),
            "model".parse().unwrap(),
            "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".parse().unwrap(),
        )
    }

    /// Inode numbers are persisted (the index) and stable across remounts: these values were
    /// computed by the string-based nodes before the ids became typed.
    #[test]
    fn inode_numbers_are_pinned() {
        use crate::fs::inode::ino_of;
        let (party, guid, dt, id) = ids();
        let el = Node::Element {
            party,
            guid,
            dt: dt.clone(),
            id: id.clone(),
        };
        let pins = [
            (Node::Party { party }, 3378695523019500090u64),
            (Node::Instance { party, guid }, 2442954541679191892),
            (Node::InstanceJson { party, guid }, 201320715598048607),
            (
                Node::DataTypeDir {
                    party,
                    guid,
                    dt: dt.clone(),
                },
                8436882278297481680,
            ),
            (el.clone(), 4428136664097480634),
            (
                Node::FormJson {
                    party,
                    guid,
                    dt: dt.clone(),
                    id,
                },
                6539600694401645780,
            ),
            (
                Node::Local {
                    party,
                    guid,
                    dt: dt.clone(),
                    local: 7,
                },
                1642826260920198481,
            ),
            (Node::StatelessType { dt }, 7779425674743070490),
            (
                Node::ViewParty {
                    view: View::Inbox,
                    party,
                },
                7913347399626552224,
            ),
            (
                Node::InView {
                    view: View::Done,
                    inner: Box::new(el),
                },
                1274819023135617838,
            ),
            (Node::AppMeta, 1854353960860913702),
        ];
        for (node, ino) in pins {
            assert_eq!(ino_of(&node), ino, "{node:?} ({})", node.identity());
        }
    }

    #[test]
    fn nodes_are_small() {
        // Element: party 8 + guid 16 + data type 16 + element id 24, and the tag.
        assert!(
            std::mem::size_of::<Node>() <= 72,
            "{}",
            std::mem::size_of::<Node>()
        );
        let (party, guid, dt, id) = ids();
        let n = Node::Element {
            party,
            guid,
            dt,
            id,
        };
        assert_eq!(n.instance_id(), Some(InstanceId::new(party, guid)));
        assert_eq!(n.identity(), "element:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
    }
}
