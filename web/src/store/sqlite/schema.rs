//! The SQLite store's layout: its tables and indexes, and the format version a data
//! directory must hold.

/// Layout version kept in `PRAGMA user_version`; a store of another version is refused, but
/// for [`FACETS_FORMAT`]'s predecessor, which is upgraded when opened.
pub(super) const STORE_FORMAT: i64 = 4;
/// The format that added `trace_facets`: a store of the format before it gets the table and
/// the facets of every stored trace when opened.
pub(super) const FACETS_FORMAT: i64 = 4;
/// The tables and indexes, created if missing.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS segments (
    trace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT,
    subsegment INTEGER NOT NULL,
    start_time REAL NOT NULL,
    in_progress INTEGER NOT NULL,
    document TEXT NOT NULL
);
-- Documents are large: rows append in arrival order, the key lives in a small index.
CREATE UNIQUE INDEX IF NOT EXISTS segments_by_key ON segments (trace_id, id);
-- `rid` is what the index tables point at; explicit so that VACUUM keeps it.
CREATE TABLE IF NOT EXISTS traces (
    rid INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL UNIQUE,
    start_time REAL NOT NULL,
    end_time REAL,
    duration REAL,
    response_time REAL,
    has_fault INTEGER NOT NULL,
    has_error INTEGER NOT NULL,
    has_throttle INTEGER NOT NULL,
    is_partial INTEGER NOT NULL,
    http_status INTEGER,
    summary TEXT NOT NULL,
    -- What the trace adds to the rollups (`TraceRollup`), bounded however long the trace.
    samples TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start_time, trace_id);
-- Traces whose documents are committed and whose fold waits (see `unfolded.rs`).
CREATE TABLE IF NOT EXISTS unfolded (trace_id TEXT PRIMARY KEY) WITHOUT ROWID;
-- Each trace's analytics facets (`analytics::Facets`) with the columns the scan filters on,
-- under the trace's `rid`: a narrow row, so an analysis reads ~20 traces per page instead of
-- one summary per page.
CREATE TABLE IF NOT EXISTS trace_facets (
    rid INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    start_time REAL NOT NULL,
    duration REAL,
    response_time REAL,
    has_fault INTEGER NOT NULL,
    has_error INTEGER NOT NULL,
    has_throttle INTEGER NOT NULL,
    http_status INTEGER,
    facets TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trace_annotations (
    key TEXT NOT NULL,
    value_text TEXT NOT NULL,
    value_number REAL,
    trace_rowid INTEGER NOT NULL,
    PRIMARY KEY (key, value_text, trace_rowid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trace_services (
    name TEXT NOT NULL,
    trace_rowid INTEGER NOT NULL,
    PRIMARY KEY (name, trace_rowid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups (
    minute INTEGER NOT NULL,
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_other INTEGER NOT NULL,
    throttle INTEGER NOT NULL,
    fault INTEGER NOT NULL,
    total_response_time REAL NOT NULL,
    histogram TEXT NOT NULL,
    PRIMARY KEY (minute, src, dst)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sampling_rules (
    name TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    created_at REAL NOT NULL,
    modified_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry (
    received_at REAL NOT NULL,
    hostname TEXT,
    instance_id TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS telemetry_by_time ON telemetry (received_at);
CREATE TABLE IF NOT EXISTS alarm_rules (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_events (
    alarm TEXT NOT NULL,
    seq INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (alarm, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alarm_events_pending ON alarm_events (alarm, seq) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS insights (
    id TEXT PRIMARY KEY,
    start_time REAL NOT NULL,
    end_time REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS insights_by_start ON insights (start_time);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
";
