//! The index's tables (SPEC §7.1). Bump `SCHEMA_VERSION` on any change: an index of another
//! version is set aside and rebuilt, never migrated in place (it is a cache).

/// `PRAGMA user_version` of an index this build writes.
pub const SCHEMA_VERSION: i64 = 2;
/// `PRAGMA application_id` ("AlFs"): tells our index from any other SQLite file.
pub const APPLICATION_ID: i64 = 0x416c_4673;

/// Times are microseconds since the epoch (Storage keeps 6 fractional digits): integers sort
/// and compare where RFC 3339 strings with 6 or 7 digits would not.
pub const SCHEMA: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per instance; `doc` is the Instance JSON without `data` (elements are below) and
-- without what loading computes again (compact.rs: selfLinks, an element's blob path).
-- `confirmed_by` is ",a,b," so that instr(confirmed_by, ',org,') finds a stakeholder.
-- `mark` is the generation of the last full listing that saw the instance (hard deletes).
CREATE TABLE instances (
    guid            TEXT PRIMARY KEY,
    party           TEXT NOT NULL,
    created_us      INTEGER,
    last_changed_us INTEGER,
    ended_us        INTEGER,
    archived        INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    confirmed_by    TEXT NOT NULL,
    mark            INTEGER NOT NULL DEFAULT 0,
    doc             TEXT NOT NULL
);
CREATE INDEX instances_by_party ON instances (party, guid);
CREATE INDEX instances_by_ended ON instances (ended_us, guid) WHERE ended_us IS NOT NULL;

-- Data elements in the order the server listed them (`pos`); `doc` is the DataElement JSON.
CREATE TABLE elements (
    id              TEXT PRIMARY KEY,
    guid            TEXT NOT NULL REFERENCES instances (guid) ON DELETE CASCADE,
    pos             INTEGER NOT NULL,
    data_type       TEXT NOT NULL,
    filename        TEXT,
    size            INTEGER NOT NULL,
    content_type    TEXT,
    locked          INTEGER NOT NULL,
    last_changed_us INTEGER,
    doc             TEXT NOT NULL
);
CREATE INDEX elements_by_instance ON elements (guid, pos);

-- The change feed (SPEC §7.3); AUTOINCREMENT: a pruned seq is never handed out again.
CREATE TABLE feed (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    seen         TEXT NOT NULL,
    seen_us      INTEGER NOT NULL,
    event        TEXT NOT NULL,
    party        TEXT NOT NULL,
    instance     TEXT NOT NULL,
    data_type    TEXT,
    element      TEXT,
    path         TEXT NOT NULL,
    last_changed TEXT
);
CREATE INDEX feed_by_seen ON feed (seen_us);

-- Instances this mount confirmed (`.done/`, SPEC §7.4).
CREATE TABLE done (
    guid         TEXT PRIMARY KEY,
    party        TEXT NOT NULL,
    confirmed_us INTEGER NOT NULL
);
CREATE INDEX done_by_time ON done (confirmed_us, guid);
"#;
