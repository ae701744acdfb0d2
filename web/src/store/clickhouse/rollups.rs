//! Per-minute rollups of the service graph, settled once per minute so that a graph reads
//! minutes × edges × buckets rows, not the traces of its window.
//!
//! A minute's rollup is the sum of the samples the newest fold of every trace puts in it.
//! Folds keep arriving while a trace's pieces do, so a minute is *settled* by a background
//! task ([`settle_loop`], in every collector: computing a minute is idempotent) once nothing
//! has been written in it for a while:
//!
//! - before a writer inserts samples into a minute, the minute carries a *stamp* from the
//!   server's clock (`rollup_writes`) that covers writes until [`STAMP_COVERS_SECS`] after
//!   it; a writer stamps a minute again only once its last stamp is half spent ([`Stamps`]),
//!   so stamps cost one tiny insert per minute every few seconds, not one per batch;
//! - settling a minute reads the server's clock (`started`), computes the minute from the
//!   newest folds and appends its rows to `rollups` under a fresh computation id, then the
//!   computation to `rollup_minutes`;
//! - a minute is *clean* when its newest computation started more than [`MARGIN_SECS`] after
//!   what its newest stamp covers: a write that computation did not see landed after it
//!   started. Any later write makes it dirty again, and the next round settles it again.
//!
//! Reads take clean minutes from `rollups` and compute dirty ones (the tail of a live window)
//! from the samples as settling would, so an answer never depends on whether the task ran.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::ClickhouseStore;
use super::connection::{Connection, quote};
use super::rowbinary::RowBinary;
use super::writer::{LAST_DAY, day_text, fold_id};
use crate::graph::Stats;
use crate::store::{LiveCounters, RollupRow, StoreError};
use std::sync::atomic::Ordering;

/// Seconds a computation must start after a minute's last write to count for it: the clocks
/// of a cluster's servers, and a materialized view that stamps a write a moment before its
/// part is visible.
pub(super) const MARGIN_SECS: i64 = 5;
/// Seconds of writes a stamp covers after the server's clock stamped it.
pub(super) const STAMP_COVERS_SECS: i64 = 5;
/// How long a writer leaves a stamp of its own to cover its writes (half of what it covers:
/// the rest is for the insert that follows).
const STAMP_REUSE: Duration = Duration::from_millis(2_500);
/// Seconds without a write before the task settles a minute (a minute still being written is
/// computed by the reads that ask for it).
const QUIET_SECS: i64 = 10;
/// How often the task looks for minutes to settle.
const SETTLE_EVERY: Duration = Duration::from_secs(15);
/// Minutes computed per query: bounds the query text and the server's set of trace ids.
const MINUTES_PER_QUERY: usize = 5;
/// Minutes read per query of dirty minutes (the query text stays far below 256 KiB).
const MINUTES_PER_READ: usize = 500;

/// What the store knows of one minute: when it was last written, and its newest computation.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MinuteState {
    last_stamp: Option<i64>,
    computed: Option<(u64, i64)>,
}

impl MinuteState {
    /// The computation to read, when the minute is clean (see the module's rule).
    fn clean(&self) -> Option<u64> {
        let (id, started) = self.computed?;
        match self.last_stamp {
            Some(at) if at + STAMP_COVERS_SECS + MARGIN_SECS >= started => None,
            _ => Some(id),
        }
    }
}

/// One row of a minute's rollup as the server groups it.
#[derive(Debug, Deserialize)]
struct Row {
    minute: i64,
    src: String,
    dst: String,
    outcome: u8,
    bucket: i32,
    n: i64,
    rt: f64,
}

impl ClickhouseStore {
    /// Node and edge rollups of minutes `[first, last]`: settled minutes from `rollups`,
    /// the others computed from the newest folds' samples.
    pub(super) async fn rollup_rows(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let states = minute_states(&self.conn, first, last).await?;
        let mut rows = Vec::new();
        let clean: Vec<u64> = states.values().filter_map(MinuteState::clean).collect();
        for chunk in clean.chunks(MINUTES_PER_READ) {
            let ids = chunk.iter().map(u64::to_string).collect::<Vec<_>>();
            rows.extend(
                self.conn
                    .select::<Row>(&format!(
                        "SELECT minute, src, dst, outcome, bucket, n, rt FROM rollups
                         WHERE minute >= {first} AND minute <= {last} AND computed IN ({})",
                        ids.join(",")
                    ))
                    .await?,
            );
        }
        let dirty: Vec<i64> = states
            .iter()
            .filter(|(_, s)| s.clean().is_none() && s.last_stamp.is_some())
            .map(|(m, _)| *m)
            .collect();
        for chunk in dirty.chunks(MINUTES_PER_READ) {
            rows.extend(compute_minutes(&self.conn, chunk).await?);
        }
        Ok(add_up(rows))
    }

    /// The rollups of minutes `[first, last]` computed from the samples as if none were
    /// settled: what a read pays for dirty minutes (for benchmarks, as the baseline of the
    /// settled read).
    pub async fn unsettled_rollup_rows(
        &self,
        first: i64,
        last: i64,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let states = minute_states(&self.conn, first, last).await?;
        let minutes: Vec<i64> = states.keys().copied().collect();
        let mut rows = Vec::new();
        for chunk in minutes.chunks(MINUTES_PER_READ) {
            rows.extend(compute_minutes(&self.conn, chunk).await?);
        }
        Ok(add_up(rows))
    }

    /// Settles every dirty minute, however recently written, first waiting (at most
    /// [`STAMP_COVERS_SECS`] + [`MARGIN_SECS`] + 1 s) until the last stamp is old enough for
    /// a computation to count; for tests and benchmarks.
    pub async fn settle_rollups_now(&self) -> Result<usize, StoreError> {
        let wait = MARGIN_SECS + 1;
        let newest = minute_states(&self.conn, i64::MIN, i64::MAX)
            .await?
            .values()
            .filter_map(|s| s.last_stamp)
            .max();
        if let Some(at) = newest {
            let now = server_clock(&self.conn).await?;
            let behind = (at + STAMP_COVERS_SECS + wait - now).clamp(0, STAMP_COVERS_SECS + wait);
            let behind = behind as u64;
            tokio::time::sleep(Duration::from_secs(behind)).await;
        }
        settle(&self.conn, wait).await
    }
}

/// Rows of minutes added up per minute, node or edge.
fn add_up(rows: Vec<Row>) -> Vec<RollupRow> {
    let mut folded: BTreeMap<(i64, String, String), Stats> = BTreeMap::new();
    for r in rows {
        let s = folded.entry((r.minute, r.src, r.dst)).or_default();
        match r.outcome {
            0 => s.ok += r.n,
            1 => s.error_other += r.n,
            2 => s.throttle += r.n,
            _ => s.fault += r.n,
        }
        s.total_response_time += r.rt;
        *s.histogram.0.entry(r.bucket).or_insert(0) += r.n;
    }
    RollupRow::from_keyed(folded)
}

/// The state of every minute in `[first, last]` that was ever written or computed.
async fn minute_states(
    conn: &Connection,
    first: i64,
    last: i64,
) -> Result<BTreeMap<i64, MinuteState>, StoreError> {
    #[derive(Deserialize)]
    struct Write {
        minute: i64,
        at: i64,
    }
    #[derive(Deserialize)]
    struct Computed {
        minute: i64,
        newest: u64,
        newest_start: i64,
    }
    let writes: Vec<Write> = conn
        .select(&format!(
            "SELECT minute, max(at) AS at FROM rollup_writes
             WHERE minute >= {first} AND minute <= {last} GROUP BY minute"
        ))
        .await?;
    let computed: Vec<Computed> = conn
        .select(&format!(
            "SELECT minute, argMax(computed, (started, computed)) AS newest,
                    max(started) AS newest_start
             FROM rollup_minutes WHERE minute >= {first} AND minute <= {last} GROUP BY minute"
        ))
        .await?;
    let mut out: BTreeMap<i64, MinuteState> = BTreeMap::new();
    let blank = MinuteState {
        last_stamp: None,
        computed: None,
    };
    for w in writes {
        out.entry(w.minute).or_insert(blank).last_stamp = Some(w.at);
    }
    for c in computed {
        out.entry(c.minute).or_insert(blank).computed = Some((c.newest, c.newest_start));
    }
    Ok(out)
}

/// The rollup of `minutes` from the samples of each trace's newest fold. A trace with a
/// sample in one of them has a fold row in the days around it (a trace's day is at most a
/// day before its pieces, an hour after).
async fn compute_minutes(conn: &Connection, minutes: &[i64]) -> Result<Vec<Row>, StoreError> {
    let (Some(lo), Some(hi)) = (minutes.iter().min(), minutes.iter().max()) else {
        return Ok(Vec::new());
    };
    let day = |m: i64, shift: i64| day_text((m / 1_440 + shift).clamp(0, LAST_DAY) as u16);
    let list = minutes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    conn.select(&format!(
        "SELECT minute, src, dst, outcome, bucket, toInt64(count()) AS n,
                sum(response_time) AS rt
         FROM samples
         WHERE minute IN ({list}) AND fold IN (
             SELECT argMax(fold, version) FROM traces
             WHERE day >= toDate({from}) AND day <= toDate({to}) AND trace_id IN (
                 SELECT trace_id FROM samples WHERE minute IN ({list}))
             GROUP BY trace_id)
         GROUP BY minute, src, dst, outcome, bucket",
        from = quote(&day(*lo, -1)),
        to = quote(&day(*hi, 1)),
    ))
    .await
}

/// Settles the dirty minutes whose last write is at least `quiet` seconds old.
async fn settle(conn: &Connection, quiet: i64) -> Result<usize, StoreError> {
    let now = server_clock(conn).await?;
    let due: Vec<i64> = minute_states(conn, i64::MIN, i64::MAX)
        .await?
        .into_iter()
        .filter(|(_, s)| s.clean().is_none())
        .filter(|(_, s)| {
            s.last_stamp
                .is_some_and(|at| at + STAMP_COVERS_SECS + quiet <= now)
        })
        .map(|(m, _)| m)
        .collect();
    for chunk in due.chunks(MINUTES_PER_QUERY) {
        // The clock first: a write this computation misses is stamped after it.
        let started = server_clock(conn).await?;
        let rows = compute_minutes(conn, chunk).await?;
        let ids: HashMap<i64, u64> = chunk.iter().map(|m| (*m, fold_id())).collect();
        let day = |m: i64| (m / 1_440).clamp(0, LAST_DAY) as u16;
        let mut out = RowBinary::default();
        for r in &rows {
            out.u16(day(r.minute))
                .i64(r.minute)
                .u64(ids.get(&r.minute).copied().unwrap_or_default())
                .string(&r.src)
                .string(&r.dst)
                .u8(r.outcome)
                .i32(r.bucket)
                .i64(r.n)
                .f64(r.rt);
        }
        conn.insert("rollups", out).await?;
        // The computation only once its rows are in: a reader never picks a partial one.
        let mut done = RowBinary::default();
        for (minute, id) in &ids {
            done.u16(day(*minute)).i64(*minute).u64(*id).i64(started);
        }
        conn.insert("rollup_minutes", done).await?;
    }
    Ok(due.len())
}

/// The minutes one writer stamped and when, so it stamps a minute again only once its stamp
/// is half spent.
#[derive(Debug, Default)]
pub(super) struct Stamps(HashMap<i64, Instant>);

impl Stamps {
    /// Stamps the `minutes` no stamp of this writer covers for long enough; call before
    /// inserting their samples.
    pub(super) async fn before_write(
        &mut self,
        conn: &Connection,
        minutes: &BTreeSet<i64>,
    ) -> Result<(), StoreError> {
        self.renew(conn, minutes, STAMP_REUSE).await
    }

    /// After the samples are in: stamps again the `minutes` whose stamp may have run out
    /// while the insert ran (a slow server), so what a computation missed is never covered
    /// by a stamp older than it.
    pub(super) async fn after_write(
        &mut self,
        conn: &Connection,
        minutes: &BTreeSet<i64>,
    ) -> Result<(), StoreError> {
        let spent = Duration::from_secs((STAMP_COVERS_SECS - 1) as u64);
        self.renew(conn, minutes, spent).await
    }

    /// Stamps the `minutes` this writer has no stamp for younger than `age`, forgetting the
    /// stamps older than [`STAMP_REUSE`] (never reused again).
    async fn renew(
        &mut self,
        conn: &Connection,
        minutes: &BTreeSet<i64>,
        age: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        self.0
            .retain(|_, at| now.duration_since(*at) < STAMP_REUSE.max(age));
        let due: Vec<i64> = minutes
            .iter()
            .filter(|m| {
                self.0
                    .get(m)
                    .is_none_or(|at| now.duration_since(*at) >= age)
            })
            .copied()
            .collect();
        self.stamp(conn, due, now).await
    }

    async fn stamp(
        &mut self,
        conn: &Connection,
        minutes: Vec<i64>,
        sent: Instant,
    ) -> Result<(), StoreError> {
        if minutes.is_empty() {
            return Ok(());
        }
        stamp(conn, &minutes).await?;
        self.0.extend(minutes.into_iter().map(|m| (m, sent)));
        Ok(())
    }
}

/// Stamps `minutes` with the server's clock (`rollup_writes`).
pub(super) async fn stamp(conn: &Connection, minutes: &[i64]) -> Result<(), StoreError> {
    for chunk in minutes.chunks(MINUTES_PER_READ) {
        let values = chunk
            .iter()
            .map(|m| {
                let day = day_text((m / 1_440).clamp(0, LAST_DAY) as u16);
                format!("({}, {m}, toUInt32(now()))", quote(&day))
            })
            .collect::<Vec<_>>()
            .join(",");
        conn.execute(&format!("INSERT INTO rollup_writes VALUES {values}"))
            .await?;
    }
    Ok(())
}

/// The server's clock, whole seconds (the clock `rollup_writes` is stamped with).
async fn server_clock(conn: &Connection) -> Result<i64, StoreError> {
    #[derive(Deserialize)]
    struct Now {
        now: i64,
    }
    let rows: Vec<Now> = conn
        .select("SELECT toInt64(toUInt32(now())) AS now")
        .await?;
    rows.first()
        .map(|n| n.now)
        .ok_or_else(|| StoreError::Write("the server did not tell its clock".into()))
}

/// Settles minutes every [`SETTLE_EVERY`] until `stop` is dropped; failures are logged and
/// retried on the next round (reads stay exact meanwhile).
pub(super) async fn settle_loop(
    conn: Connection,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    counters: std::sync::Arc<LiveCounters>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(SETTLE_EVERY) => {}
        }
        match settle(&conn, QUIET_SECS).await {
            Ok(0) => {}
            Ok(n) => {
                counters
                    .rollup_minutes_settled
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::debug!(minutes = n, "graph rollups settled");
            }
            Err(e) => {
                counters
                    .rollup_settle_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "settling graph rollups failed; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_is_clean_only_when_computed_well_after_its_last_stamp() {
        let state = |last_stamp, computed| MinuteState {
            last_stamp,
            computed,
        };
        assert_eq!(state(Some(100), None).clean(), None);
        assert_eq!(state(Some(100), Some((7, 100))).clean(), None);
        let covered = 100 + STAMP_COVERS_SECS + MARGIN_SECS;
        assert_eq!(state(Some(100), Some((7, covered))).clean(), None);
        assert_eq!(state(Some(100), Some((7, covered + 1))).clean(), Some(7));
        assert_eq!(state(None, Some((7, 0))).clean(), Some(7));
    }
}
