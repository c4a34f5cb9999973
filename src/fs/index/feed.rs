//! One line of the change feed (SPEC §7.3) as stored and as printed.

use serde::{Deserialize, Serialize};

/// The events of SPEC §7.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "instance.created")]
    InstanceCreated,
    #[serde(rename = "instance.changed")]
    InstanceChanged,
    #[serde(rename = "instance.deleted")]
    InstanceDeleted,
    #[serde(rename = "instance.confirmed")]
    InstanceConfirmed,
    #[serde(rename = "element.created")]
    ElementCreated,
    #[serde(rename = "element.changed")]
    ElementChanged,
    #[serde(rename = "element.deleted")]
    ElementDeleted,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::InstanceCreated,
        EventKind::InstanceChanged,
        EventKind::InstanceDeleted,
        EventKind::InstanceConfirmed,
        EventKind::ElementCreated,
        EventKind::ElementChanged,
        EventKind::ElementDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::InstanceCreated => "instance.created",
            EventKind::InstanceChanged => "instance.changed",
            EventKind::InstanceDeleted => "instance.deleted",
            EventKind::InstanceConfirmed => "instance.confirmed",
            EventKind::ElementCreated => "element.created",
            EventKind::ElementChanged => "element.changed",
            EventKind::ElementDeleted => "element.deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Longest `path` kept in a feed row (a hostile server cannot make rows grow without bound).
pub const MAX_PATH: usize = 1024;

/// One feed line. `seq` and `seen` are given when the row is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub seq: u64,
    /// When this index saw the change (local clock, RFC 3339 UTC).
    pub seen: String,
    pub event: EventKind,
    pub party: String,
    /// The instance GUID.
    pub instance: String,
    #[serde(rename = "dataType", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// The data element id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// Relative to the mountpoint: `party/guid` or `party/guid/dataType/name`.
    pub path: String,
    /// The server's `lastChanged` of the element (element events) or instance.
    #[serde(
        rename = "lastChanged",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_changed: Option<String>,
}

impl FeedEvent {
    /// An event about an instance (seq and seen are filled in when appended).
    pub fn instance(
        event: EventKind,
        party: &str,
        guid: &str,
        last_changed: Option<String>,
    ) -> Self {
        Self {
            seq: 0,
            seen: String::new(),
            event,
            party: party.to_string(),
            instance: guid.to_string(),
            data_type: None,
            element: None,
            path: format!("{party}/{guid}"),
            last_changed,
        }
    }

    /// The JSON line (serde_json escapes every control character, so any name is safe).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Cut `s` to at most `max` bytes on a char boundary.
pub fn cap(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut n = max;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    s[..n].to_string()
}
