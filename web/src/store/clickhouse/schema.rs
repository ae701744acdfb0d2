//! The ClickHouse schema: append-only MergeTree tables partitioned by day (of the trace id's
//! epoch, so a trace's rows share one partition and retention drops whole partitions), created
//! idempotently at start-up, with the newer engine features switched on only when the server
//! has them.
//!
//! - `segments`: one row per document arrival, `ReplacingMergeTree(version)` ordered by
//!   `(trace_id, id)`: a complete document (version 1) replaces an in-progress one (version 0).
//! - `traces`: one row per fold of a trace (its summary with indexed columns and its
//!   analytics facets), a `ReplacingMergeTree(version)` ordered by `trace_id`; the fold that
//!   saw the most documents has the highest version and wins.
//! - `samples`: node and edge samples of each fold, ordered by `(minute, src, dst)`; a
//!   minute's rollup adds up the samples of each trace's newest fold.
//!   `ann_pairs` holds its annotations as `key=value` under a bloom filter index, so a
//!   search by annotation reads the few granules that may hold it.
//! - `rollups`, `rollup_minutes`, `rollup_writes`: the graph's per-minute rollups, settled
//!   once a minute is quiet, and the stamps writers leave on the minutes they write (see
//!   `rollups.rs`).
//! - `writers`: each collector writer's newest stamp (server clock), left at most every
//!   few seconds while it writes; the reconciler reads them to know whether another
//!   collector may hold pieces of the traces its writer folded (see `reconcile.rs`).
//! - `sampling_rules`, `groups`, `alarm_rules`: `ReplacingMergeTree(version)` by name with a
//!   deletion flag; `alarm_events` by alarm and sequence number (a newer version records a
//!   delivery); `insights` by id (a newer version records a change); `leases`: the newest
//!   claim of each lease.
//! - `sampling_clients`: each client's latest sampling report per rule and day (a
//!   `ReplacingMergeTree(seen)`), read by every collector to split reservoirs; days before
//!   yesterday are dropped.
//! - `telemetry`: daemon telemetry by day.
//!
//! In a cluster every table is `<name>_local` on each shard with a `Distributed` table
//! `<name>` over them, sharded by trace id so a trace lives whole on one shard.

/// What the connected server supports beyond ClickHouse 18.16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `LowCardinality(String)` columns (19.3 and later).
    pub low_cardinality: bool,
    /// Data-skipping indexes (`bloom_filter`) without an experimental setting; gated at 21.1,
    /// safely past the releases that still wanted one.
    pub skip_indexes: bool,
}

/// The oldest supported server, `(major, minor)`.
pub const MINIMUM_VERSION: (u32, u32) = (18, 16);

impl Features {
    /// Features of a server version `(major, minor)`.
    pub fn of(version: (u32, u32)) -> Self {
        Self {
            low_cardinality: version >= (19, 3),
            skip_indexes: version >= (21, 1),
        }
    }
}

/// Parses `SELECT version()` output, e.g. `18.16.1` or `23.8.2.7`, into `(major, minor)`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// One table: name, columns, engine with its keys, and the sharding key for `Distributed`.
struct Table {
    name: &'static str,
    columns: String,
    engine: &'static str,
    shard_by: &'static str,
}

fn tables(f: Features) -> Vec<Table> {
    let tag = if f.low_cardinality {
        "LowCardinality(String)"
    } else {
        "String"
    };
    let trace_index = if f.skip_indexes {
        format!(
            ", INDEX by_service services TYPE bloom_filter GRANULARITY 4, \
             INDEX {ANN_PAIRS_INDEX}, INDEX {START_INDEX}"
        )
    } else {
        String::new()
    };
    vec![
        Table {
            name: "segments",
            columns: "day Date, trace_id String, id String, parent_id Nullable(String), \
                      subsegment UInt8, start_time Float64, in_progress UInt8, version UInt8, \
                      document String"
                .into(),
            engine: "ReplacingMergeTree(version) PARTITION BY day ORDER BY (trace_id, id)",
            shard_by: "sipHash64(trace_id)",
        },
        Table {
            name: "traces",
            columns: format!(
                "day Date, trace_id String, version UInt64, fold UInt64, start_time Float64, \
                 end_time Nullable(Float64), duration Nullable(Float64), \
                 response_time Nullable(Float64), has_fault UInt8, has_error UInt8, \
                 has_throttle UInt8, is_partial UInt8, http_status Nullable(UInt16), \
                 services Array(String), ann_keys Array(String), ann_text Array(String), \
                 ann_number Array(Float64), summary String, samples String, \
                 ann_pairs Array(String) DEFAULT {ANN_PAIRS_DEFAULT}, \
                 facets String DEFAULT ''{trace_index}"
            ),
            engine: "ReplacingMergeTree(version) PARTITION BY day ORDER BY trace_id",
            shard_by: "sipHash64(trace_id)",
        },
        Table {
            name: "samples",
            columns: format!(
                "day Date, trace_id String, version UInt64, fold UInt64, minute Int64, \
                 src {tag}, dst {tag}, outcome UInt8, response_time Float64, bucket Int32"
            ),
            engine: "MergeTree PARTITION BY day ORDER BY (minute, src, dst, trace_id)",
            shard_by: "sipHash64(trace_id)",
        },
        Table {
            name: "rollups",
            columns: format!(
                "day Date, minute Int64, computed UInt64, src {tag}, dst {tag}, outcome UInt8, \
                 bucket Int32, n Int64, rt Float64"
            ),
            engine: "MergeTree PARTITION BY day ORDER BY (minute, computed)",
            shard_by: "sipHash64(minute)",
        },
        Table {
            name: "rollup_minutes",
            columns: "day Date, minute Int64, computed UInt64, started Int64".into(),
            engine: "MergeTree PARTITION BY day ORDER BY minute",
            shard_by: "sipHash64(minute)",
        },
        Table {
            name: "rollup_writes",
            columns: "day Date, minute Int64, at UInt32".into(),
            engine: "ReplacingMergeTree(at) PARTITION BY day ORDER BY minute",
            shard_by: "sipHash64(minute)",
        },
        Table {
            name: "writers",
            columns: "writer UInt64, at UInt32".into(),
            engine: "ReplacingMergeTree(at) ORDER BY writer",
            shard_by: "sipHash64(writer)",
        },
        Table {
            name: "sampling_rules",
            columns: "name String, rule String, created_at Float64, modified_at Float64, \
                      deleted UInt8, version UInt64"
                .into(),
            engine: "ReplacingMergeTree(version) ORDER BY name",
            shard_by: "sipHash64(name)",
        },
        Table {
            name: "groups",
            columns: "name String, body String, deleted UInt8, version UInt64".into(),
            engine: "ReplacingMergeTree(version) ORDER BY name",
            shard_by: "sipHash64(name)",
        },
        Table {
            name: "alarm_rules",
            columns: "name String, body String, deleted UInt8, version UInt64".into(),
            engine: "ReplacingMergeTree(version) ORDER BY name",
            shard_by: "sipHash64(name)",
        },
        Table {
            name: "alarm_events",
            columns: "alarm String, seq UInt64, pending UInt8, time Float64, body String, \
                      version UInt64"
                .into(),
            engine: "ReplacingMergeTree(version) ORDER BY (alarm, seq)",
            shard_by: "sipHash64(alarm)",
        },
        Table {
            name: "insights",
            columns: "id String, start_time Float64, end_time Float64, body String, version UInt64"
                .into(),
            engine: "ReplacingMergeTree(version) ORDER BY id",
            shard_by: "sipHash64(id)",
        },
        Table {
            name: "leases",
            columns: "name String, holder String, expires Float64, version UInt64".into(),
            engine: "ReplacingMergeTree(version) ORDER BY name",
            shard_by: "sipHash64(name)",
        },
        Table {
            name: "sampling_clients",
            columns: "day Date, rule String, client_id String, seen Float64, \
                      request_count Int64"
                .into(),
            engine: "ReplacingMergeTree(seen) PARTITION BY day ORDER BY (rule, client_id)",
            shard_by: "sipHash64(rule)",
        },
        Table {
            name: "telemetry",
            columns: "day Date, received_at Float64, hostname Nullable(String), \
                      instance_id Nullable(String), record String"
                .into(),
            engine: "MergeTree PARTITION BY day ORDER BY received_at",
            shard_by: "rand()",
        },
    ]
}

/// Tables partitioned by day, dropped partition by partition by retention.
pub const DAILY_TABLES: [&str; 7] = [
    "segments",
    "traces",
    "samples",
    "telemetry",
    "rollups",
    "rollup_minutes",
    "rollup_writes",
];

/// Partitioned by day but only the last two days matter: dropped sooner than retention.
pub const SHORT_LIVED_TABLES: [&str; 1] = ["sampling_clients"];

/// The DDL statements, in order, for `database`; with a cluster, local tables plus
/// `Distributed` tables over them.
pub fn statements(database: &str, cluster: Option<&str>, f: Features) -> Vec<String> {
    let mut out = vec![format!("CREATE DATABASE IF NOT EXISTS {database}")];
    for t in tables(f) {
        let local = match cluster {
            Some(_) => format!("{}_local", t.name),
            None => t.name.to_owned(),
        };
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {database}.{local} ({}) ENGINE = {}",
            t.columns, t.engine
        ));
        if let Some(cluster) = cluster {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {database}.{} AS {database}.{local} \
                 ENGINE = Distributed({cluster}, {database}, {local}, {})",
                t.name, t.shard_by
            ));
        }
    }
    out
}

/// The annotations of a fold as `key=value` texts (`ann_pairs`), which a bloom filter index
/// can answer `has()` on; a pair holding one `=` names one key and value, but a key or value
/// holding `=` makes a pair ambiguous, so then a match is only a candidate, checked against
/// `ann_keys`/`ann_text`.
pub fn annotation_pair(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// The same pairs as a column default, for rows stored before the column existed.
const ANN_PAIRS_DEFAULT: &str = "arrayMap((k, v) -> concat(k, '=', v), ann_keys, ann_text)";

/// One change to a table made by an older release: a column or index `statements` now
/// creates (`wanted`), or one it no longer does, with the `ALTER` clause that makes it so.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The table.
    pub table: &'static str,
    /// The column or index.
    pub name: &'static str,
    /// Whether the table should have it.
    pub wanted: bool,
    /// What `ALTER TABLE` does to it.
    pub clause: String,
}

/// The changes from older releases; `ClickhouseStore::open` runs those whose table has
/// `name` when it is not `wanted`, or lacks it when it is.
pub fn migrations(f: Features) -> Vec<Migration> {
    let mut out = vec![
        Migration {
            table: "traces",
            name: "ann_pairs",
            wanted: true,
            clause: format!("ADD COLUMN ann_pairs Array(String) DEFAULT {ANN_PAIRS_DEFAULT}"),
        },
        // Rows written before get `''`: their traces are analysed from their summaries.
        Migration {
            table: "traces",
            name: "facets",
            wanted: true,
            clause: "ADD COLUMN facets String DEFAULT ''".into(),
        },
        // Facts are extracted again from the documents when a trace is read back.
        Migration {
            table: "segments",
            name: "facts",
            wanted: false,
            clause: "DROP COLUMN facts".into(),
        },
    ];
    if f.skip_indexes {
        out.push(Migration {
            table: "traces",
            name: "by_annotation",
            wanted: true,
            clause: format!("ADD INDEX {ANN_PAIRS_INDEX}"),
        });
        out.push(Migration {
            table: "traces",
            name: "by_start",
            wanted: true,
            clause: format!("ADD INDEX {START_INDEX}"),
        });
    }
    out
}

/// Each granule's range of start times: X-Ray trace ids begin with their epoch, so rows
/// ordered by trace id are nearly ordered by time and a window skips most granules.
const START_INDEX: &str = "by_start start_time TYPE minmax GRANULARITY 1";

/// The bloom filter over `ann_pairs`.
const ANN_PAIRS_INDEX: &str = "by_annotation ann_pairs TYPE bloom_filter GRANULARITY 4";

/// Fills `rollup_writes` for a store created before it existed: every minute already in
/// `samples`, stamped now, so those minutes are settled like new ones.
pub fn backfill_rollup_writes(database: &str, cluster: Option<&str>) -> String {
    let suffix = if cluster.is_some() { "_local" } else { "" };
    format!(
        "INSERT INTO {database}.rollup_writes{suffix} \
         SELECT day, minute, toUInt32(now()) AS at FROM {database}.samples{suffix} \
         GROUP BY day, minute"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_gate_features() {
        assert_eq!(parse_version("18.16.1\n"), Some((18, 16)));
        assert_eq!(parse_version("23.8.2.7"), Some((23, 8)));
        assert_eq!(parse_version("x"), None);
        assert!(!Features::of((18, 16)).low_cardinality);
        assert!(Features::of((23, 8)).skip_indexes);
    }

    /// The DDL of each server generation: 18.16 (what CI runs), 19.x (LowCardinality) and
    /// current releases (skip indexes too). Only 18.16 runs here; the newer variants are
    /// checked as text.
    #[test]
    fn each_server_generation_gets_its_own_ddl() {
        let old = statements("r", None, Features::of(parse_version("18.16.1").unwrap()));
        let mid = statements(
            "r",
            None,
            Features::of(parse_version("19.17.4.11").unwrap()),
        );
        let new = statements(
            "r",
            None,
            Features::of(parse_version("24.3.1.2672").unwrap()),
        );
        for s in [&old, &mid, &new] {
            assert_eq!(s.len(), 1 + tables(Features::of((18, 16))).len());
            assert_eq!(s[0], "CREATE DATABASE IF NOT EXISTS r");
            assert!(
                s[1..]
                    .iter()
                    .all(|x| x.starts_with("CREATE TABLE IF NOT EXISTS r."))
            );
            // Nothing 18.16 lacks, at any version: no TTL, Map, DateTime64.
            assert!(
                s.iter().all(|x| !x.contains("TTL")
                    && !x.contains(" Map(")
                    && !x.contains("DateTime64"))
            );
        }
        let samples = |s: &[String]| {
            s.iter()
                .find(|x| x.contains("r.samples ("))
                .cloned()
                .unwrap()
        };
        let traces = |s: &[String]| {
            s.iter()
                .find(|x| x.contains("r.traces ("))
                .cloned()
                .unwrap()
        };
        let segments = |s: &[String]| {
            s.iter()
                .find(|x| x.contains("r.segments ("))
                .cloned()
                .unwrap()
        };
        assert!(!samples(&old).contains("LowCardinality"));
        assert!(!traces(&old).contains("INDEX"));
        assert!(samples(&mid).contains("src LowCardinality(String), dst LowCardinality(String)"));
        assert!(!traces(&mid).contains("INDEX"));
        assert!(samples(&new).contains("LowCardinality(String)"));
        assert!(traces(&new).contains("INDEX by_service services TYPE bloom_filter GRANULARITY 4"));
        assert!(traces(&new).contains(&format!("INDEX {ANN_PAIRS_INDEX}")));
        assert!(traces(&old).contains(&format!(
            "ann_pairs Array(String) DEFAULT {ANN_PAIRS_DEFAULT}"
        )));
        // An old store gets the column everywhere, the index where the server has them.
        let added = |f: Features| -> Vec<&str> {
            migrations(f)
                .iter()
                .filter(|m| m.wanted)
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(added(Features::of((18, 16))), ["ann_pairs", "facets"]);
        assert_eq!(
            added(Features::of((24, 3))),
            ["ann_pairs", "facets", "by_annotation", "by_start"]
        );
        assert!(!segments(&new).contains("facts"));
        // Apart from the gated features, every version creates the same tables.
        let plain = |s: &[String]| {
            s.iter()
                .map(|x| {
                    x.replace("LowCardinality(String)", "String").replace(
                        &format!(
                            ", INDEX by_service services TYPE bloom_filter GRANULARITY 4, \
                             INDEX {ANN_PAIRS_INDEX}, INDEX {START_INDEX}"
                        ),
                        "",
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(plain(&old), plain(&new));
    }

    #[test]
    fn version_gates_sit_at_the_releases_that_brought_the_features() {
        assert!(!Features::of((19, 2)).low_cardinality);
        assert!(Features::of((19, 3)).low_cardinality);
        assert!(!Features::of((20, 12)).skip_indexes);
        assert!(Features::of((21, 1)).skip_indexes);
        assert!(Features::of((100, 0)).low_cardinality);
        assert_eq!(parse_version(" 21.1.2.15 "), Some((21, 1)));
        assert_eq!(parse_version("21"), None);
        assert!(parse_version("18.16.1").unwrap() >= MINIMUM_VERSION);
        assert!(parse_version("18.14.9").unwrap() < MINIMUM_VERSION);
        assert!(parse_version("1.1.54394").unwrap() < MINIMUM_VERSION);
    }

    #[test]
    fn a_cluster_gets_local_and_distributed_tables() {
        let s = statements("r", Some("c"), Features::of((18, 16)));
        assert!(s.iter().any(|x| x.contains("r.traces_local (")));
        assert!(
            s.iter()
                .any(|x| x.contains("Distributed(c, r, traces_local, sipHash64(trace_id))"))
        );
        assert!(s.iter().all(|x| !x.contains("LowCardinality")));
    }
}
