//! Typed ids of Altinn objects: a party, an instance, a data type, a data element.
//!
//! Each is a small newtype over the server's own string, so a function that takes an
//! instance and an element cannot get them swapped, and a malformed id is refused where it
//! enters (the CLI, a path name, a server answer) instead of producing a bad URL later.
//! Checks are cheap ones only: a party id is digits, an instance guid is a hyphenated UUID,
//! a data type or element id is non-empty and has no `/` (it becomes one URL path segment).
//! On the wire every id is the plain string (serde `try_from`/`into` String), so a
//! deserialized id went through the same check.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

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

/// Defines a checked string newtype: Display, AsRef<str>, FromStr, TryFrom<String/&str>,
/// Into<String>, and serde as the plain string through the same check.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The checked id, or why `s` is not one.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                if $check(&s) {
                    Ok(Self(s))
                } else {
                    Err(IdError::new($kind, &s))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
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
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

fn is_party(s: &str) -> bool {
    // Altinn party ids are positive integers; 18 digits keeps them inside i64.
    !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_guid(s: &str) -> bool {
    // Only the hyphenated form Altinn writes; `Uuid::parse_str` alone also takes braces,
    // URNs and the simple form, which would give one instance several names.
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn is_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && !s.chars().any(char::is_control)
}

string_id!(
    /// An Altinn party id (`instanceOwner.partyId`): digits.
    PartyId,
    "party id",
    is_party
);

string_id!(
    /// The GUID half of an instance id, hyphenated, as the server wrote it.
    InstanceGuid,
    "instance guid",
    is_guid
);

string_id!(
    /// A data type id from the application metadata (`dataTypes[].id`).
    DataTypeId,
    "data type id",
    is_segment
);

string_id!(
    /// A data element id (`data[].id`).
    ElementId,
    "data element id",
    is_segment
);

impl From<u64> for PartyId {
    fn from(n: u64) -> Self {
        Self(n.to_string())
    }
}

impl PartyId {
    /// The party as a number (`Party.partyId` is numeric in the App API).
    pub fn as_u64(&self) -> u64 {
        // Checked at construction: at most 18 digits always fits.
        self.0.parse().expect("a party id is digits")
    }
}

impl InstanceGuid {
    /// A fresh random guid (fakes and tests that create instances).
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl ElementId {
    /// A fresh random element id (fakes and tests that create elements).
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// One instance: its owner party and its guid. Altinn writes it `"{party}/{guid}"`
/// (`Instance.id`), which is its Display, FromStr and serde form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    pub fn parse(s: &str) -> Result<Self, IdError> {
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
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.party, self.guid)
    }
}

impl FromStr for InstanceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for InstanceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.to_string()
    }
}

/// Bridges to the string-based `InstanceRef` the `AltinnClient` trait still takes.
impl From<&InstanceId> for crate::altinn::client::InstanceRef {
    fn from(id: &InstanceId) -> Self {
        Self::new(id.party.as_str(), id.guid.as_str())
    }
}

impl From<InstanceId> for crate::altinn::client::InstanceRef {
    fn from(id: InstanceId) -> Self {
        Self::from(&id)
    }
}

impl TryFrom<&crate::altinn::client::InstanceRef> for InstanceId {
    type Error = IdError;
    fn try_from(r: &crate::altinn::client::InstanceRef) -> Result<Self, IdError> {
        Ok(Self {
            party: PartyId::parse(r.party.as_str())?,
            guid: InstanceGuid::parse(r.guid.as_str())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::altinn::client::InstanceRef;

    const GUID: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

    #[test]
    fn party_is_digits() {
        assert_eq!(PartyId::parse("510001").unwrap().as_str(), "510001");
        assert_eq!(PartyId::from(42u64).to_string(), "42");
        assert_eq!(PartyId::parse("510001").unwrap().as_u64(), 510001);
        for bad in ["", "12a", "-1", " 1", "1/2", "1234567890123456789"] {
            let e = PartyId::parse(bad).unwrap_err();
            assert_eq!(e.kind, "party id", "{bad:?}");
        }
    }

    #[test]
    fn guid_is_hyphenated_uuid() {
        assert_eq!(InstanceGuid::parse(GUID).unwrap().as_ref(), GUID);
        let simple = GUID.replace('-', "");
        let braced = format!("{{{GUID}}}");
        for bad in [
            "",
            "not-a-guid",
            simple.as_str(),
            braced.as_str(),
            "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4g",
        ] {
            assert!(InstanceGuid::parse(bad).is_err(), "{bad:?}");
        }
        assert_ne!(InstanceGuid::new_random(), InstanceGuid::new_random());
        assert!(InstanceGuid::parse(InstanceGuid::new_random().to_string()).is_ok());
    }

    #[test]
    fn segments_refuse_empty_and_slash() {
        assert_eq!(DataTypeId::parse("model").unwrap(), "model");
        assert_eq!(ElementId::parse(GUID).unwrap().to_string(), GUID);
        for bad in ["", "a/b", "a\nb"] {
            assert!(DataTypeId::parse(bad).is_err(), "{bad:?}");
            assert!(ElementId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instance_id_round_trips_as_party_slash_guid() {
        let s = format!("510001/{GUID}");
        let id: InstanceId = s.parse().unwrap();
        assert_eq!(id.party, "510001");
        assert_eq!(id.guid, GUID);
        assert_eq!(id.to_string(), s);
        for bad in ["510001".to_string(), format!("x/{GUID}"), "1/nope".into()] {
            assert!(InstanceId::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_is_the_plain_string_and_checks_on_the_way_in() {
        let id = InstanceId::parse(&format!("7/{GUID}")).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"7/{GUID}\""));
        assert_eq!(serde_json::from_str::<InstanceId>(&json).unwrap(), id);
        assert_eq!(
            serde_json::to_string(&PartyId::from(7u64)).unwrap(),
            "\"7\""
        );
        assert!(serde_json::from_str::<PartyId>("\"7x\"").is_err());
        assert!(serde_json::from_str::<DataTypeId>("\"\"").is_err());
        let e: ElementId = serde_json::from_str(&format!("\"{GUID}\"")).unwrap();
        assert_eq!(e, GUID);
    }

    #[test]
    fn bridges_to_instance_ref() {
        let id = InstanceId::parse(&format!("7/{GUID}")).unwrap();
        let r = InstanceRef::from(&id);
        assert_eq!((r.party.as_str(), r.guid.as_str()), ("7", GUID));
        assert_eq!(InstanceId::try_from(&r).unwrap(), id);
        assert!(InstanceId::try_from(&InstanceRef::new("7", "g")).is_err());
    }

    #[test]
    fn error_value_is_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(PartyId::parse(long).unwrap_err().value.len(), 80);
    }

    #[test]
    fn ids_work_as_map_keys_by_str() {
        let mut m = std::collections::HashMap::new();
        m.insert(DataTypeId::parse("model").unwrap(), 1);
        assert_eq!(m.get("model"), Some(&1));
    }
}
