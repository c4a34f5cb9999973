//! Typed ids of Altinn objects: a party, an instance, a data type, a data element.
//!
//! Each id is a compact value, so a function that takes an instance and an element cannot
//! get them swapped, a malformed id is refused where it enters (the CLI, a path name, a
//! server answer) instead of producing a bad URL later, and the tree's nodes hold no heap
//! string per id:
//! - `PartyId`: the number (Copy). Digits only, no leading zero, so it prints back exactly.
//! - `InstanceGuid`: the 16 bytes of the UUID (Copy). Only the lowercase hyphenated form
//!   Altinn writes is accepted, so it too prints back exactly.
//! - `DataTypeId`: a shared `Arc` (an app has few data types; parsing interns, so a clone or
//!   a re-parse never allocates).
//! - `ElementId`: a GUID's 16 bytes, or a boxed string for a server's odd id.
//!
//! On the wire every id is the plain string (serde `try_from`/`into` String), so a
//! deserialized id went through the same check.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use uuid::Uuid;

/// A string that is not a valid id of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind}: {value:?}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

impl IdError {
    fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            // Bounded: the value may come from a server or a path name.
            value: value.chars().take(80).collect(),
        }
    }
}

/// The conversions every id has: FromStr, TryFrom<String/&str>, Into<String>, Display
/// through `fmt_id`, and comparison with a plain string.
macro_rules! id_conversions {
    ($name:ident) => {
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s.as_str())
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fmt_id(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(\"", stringify!($name))?;
                self.fmt_id(f)?;
                f.write_str("\")")
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                Self::parse(other).is_ok_and(|o| o == *self)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                *self == **other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                *self == *other.as_str()
            }
        }
    };
}

/// An Altinn party id (`instanceOwner.partyId`): a positive number, written in digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartyId(u64);

impl PartyId {
    /// The checked id, or why `s` is not one.
    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        // 18 digits keeps them inside i64; a leading zero would not print back the same.
        let digits = !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits || (s.len() > 1 && s.starts_with('0')) {
            return Err(IdError::new("party id", s));
        }
        s.parse().map(Self).map_err(|_| IdError::new("party id", s))
    }

    /// The party as a number (`Party.partyId` is numeric in the App API).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    fn fmt_id(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for PartyId {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

id_conversions!(PartyId);

/// Parses only the lowercase hyphenated form Altinn writes; `Uuid::parse_str` alone also
/// takes braces, URNs, upper case and the simple form, which would give one object several
/// names.
fn parse_guid(s: &str) -> Option<Uuid> {
    let canonical = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    canonical.then(|| Uuid::try_parse(s).ok()).flatten()
}

/// The GUID half of an instance id, hyphenated in lower case as Altinn writes it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceGuid(Uuid);

impl InstanceGuid {
    /// The checked id, or why `s` is not one.
    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        parse_guid(s)
            .map(Self)
            .ok_or_else(|| IdError::new("instance guid", s))
    }

    /// A fresh random guid (fakes and tests that create instances).
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    fn fmt_id(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

id_conversions!(InstanceGuid);

fn is_segment(s: &str) -> bool {
    // It becomes one URL path segment.
    !s.is_empty() && !s.contains('/') && !s.chars().any(char::is_control)
}

/// A data type id from the application metadata (`dataTypes[].id`). A thin pointer (the
/// `Box` keeps the length behind it) so that a tree node stays small; hashed, compared and
/// ordered as its string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DataTypeId(Arc<Box<str>>);

/// The data type ids in use, so that every parse of one name shares one allocation. Names
/// nobody holds any more are dropped when the set has doubled since the last sweep, so
/// names from failed lookups do not pile up.
struct Interner {
    ids: HashSet<DataTypeId>,
    sweep_at: usize,
}

static DATA_TYPES: OnceLock<Mutex<Interner>> = OnceLock::new();

fn intern(s: &str) -> DataTypeId {
    let interner = DATA_TYPES.get_or_init(|| {
        Mutex::new(Interner {
            ids: HashSet::new(),
            sweep_at: 0,
        })
    });
    let mut set = interner.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = set.ids.get(s) {
        return a.clone();
    }
    if set.ids.len() >= set.sweep_at {
        set.ids.retain(|a| Arc::strong_count(&a.0) > 1);
        set.sweep_at = (set.ids.len() * 2).max(64);
    }
    let a = DataTypeId(Arc::new(s.into()));
    set.ids.insert(a.clone());
    a
}

impl DataTypeId {
    /// The checked id, or why `s` is not one.
    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        if is_segment(s) {
            Ok(intern(s))
        } else {
            Err(IdError::new("data type id", s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn fmt_id(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DataTypeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for DataTypeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

id_conversions!(DataTypeId);

/// A data element id (`data[].id`): a GUID in Altinn, kept as its 16 bytes; anything else
/// a server sends is kept as its string.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ElementId(ElementRepr);

/// A string becomes `Guid` exactly when it is a lowercase hyphenated GUID, so two ids are
/// equal exactly when their strings are.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ElementRepr {
    Guid(Uuid),
    Other(Box<str>),
}

impl ElementId {
    /// The checked id, or why `s` is not one.
    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        if let Some(u) = parse_guid(s) {
            Ok(Self(ElementRepr::Guid(u)))
        } else if is_segment(s) {
            Ok(Self(ElementRepr::Other(s.into())))
        } else {
            Err(IdError::new("data element id", s))
        }
    }

    /// A fresh random element id (fakes and tests that create elements).
    pub fn new_random() -> Self {
        Self(ElementRepr::Guid(Uuid::new_v4()))
    }

    /// The id as Altinn writes it (borrowed when it is an odd one).
    pub fn as_cow(&self) -> std::borrow::Cow<'_, str> {
        match &self.0 {
            ElementRepr::Guid(u) => u.hyphenated().to_string().into(),
            ElementRepr::Other(s) => std::borrow::Cow::Borrowed(s),
        }
    }

    fn fmt_id(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ElementRepr::Guid(u) => fmt::Display::fmt(&u.hyphenated(), f),
            ElementRepr::Other(s) => f.write_str(s),
        }
    }
}

/// In the order of the strings (a GUID's bytes sort as its lowercase hex does).
impl Ord for ElementId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (ElementRepr::Guid(a), ElementRepr::Guid(b)) => a.cmp(b),
            _ => self.as_cow().cmp(&other.as_cow()),
        }
    }
}

impl PartialOrd for ElementId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

id_conversions!(ElementId);

/// One instance: its owner party and its guid. Altinn writes it `"{party}/{guid}"`
/// (`Instance.id`), which is its Display, FromStr and serde form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId {
    pub party: PartyId,
    pub guid: InstanceGuid,
}

impl InstanceId {
    pub fn new(party: PartyId, guid: InstanceGuid) -> Self {
        Self { party, guid }
    }

    /// Parse `"{party}/{guid}"`.
    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        let (party, guid) = s
            .split_once('/')
            .ok_or_else(|| IdError::new("instance id", s))?;
        Ok(Self {
            party: PartyId::parse(party)?,
            guid: InstanceGuid::parse(guid)?,
        })
    }

    /// The id of a wire instance, from `instanceOwner.partyId` (or the id's first half) and
    /// the guid.
    pub fn of(instance: &crate::altinn::model::Instance) -> Result<Self, IdError> {
        Ok(Self {
            party: PartyId::parse(instance.party_id())?,
            guid: InstanceGuid::parse(instance.guid())?,
        })
    }

    fn fmt_id(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.party, self.guid)
    }
}

id_conversions!(InstanceId);

#[cfg(test)]
mod tests;
