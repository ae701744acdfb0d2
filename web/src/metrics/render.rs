//! The collector's counters as Prometheus text (`GET /metrics`), named `roentgen_web_*`.

use std::sync::atomic::{AtomicU64, Ordering};

use roentgen_daemon::telemetry::prometheus::{Exposition, Kind};

use super::counters::{Counters, DocumentRefusal, RequestRefusal};
use crate::store::LiveCounters;

/// The alarm task's counters.
fn render_alarms(out: &mut Exposition, c: &Counters) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, kind, value) in [
        (
            "alarm_rounds_total",
            "Alarm rounds this collector ran (while it held the alarms lease).",
            Kind::Counter,
            &c.alarm_rounds,
        ),
        (
            "alarm_transitions_total",
            "Alarm state changes recorded.",
            Kind::Counter,
            &c.alarm_transitions,
        ),
        (
            "alarm_rules",
            "Alarm rules in the last round.",
            Kind::Gauge,
            &c.alarm_rules,
        ),
        (
            "alarm_round_microseconds",
            "How long the last alarm round took.",
            Kind::Gauge,
            &c.alarm_round_micros,
        ),
        (
            "alarm_notifications_sent_total",
            "Alarm notifications delivered (2xx answers).",
            Kind::Counter,
            &c.alarm_notifications_sent,
        ),
        (
            "alarm_notification_failures_total",
            "Failed notification attempts (retried with back-off).",
            Kind::Counter,
            &c.alarm_notification_failures,
        ),
        (
            "alarm_notifications_abandoned_total",
            "Notifications given up: 24 hours of failures, or their rule or webhook removed.",
            Kind::Counter,
            &c.alarm_notifications_abandoned,
        ),
        (
            "insights_opened_total",
            "Insights opened.",
            Kind::Counter,
            &c.insights_opened,
        ),
        (
            "insights_closed_total",
            "Insights closed.",
            Kind::Counter,
            &c.insights_closed,
        ),
    ] {
        out.single(name, help, kind, load(value));
    }
}

/// Renders every metric of the collector (`live`: the store writer's live traces, when it
/// keeps them).
pub fn render(c: &Counters, live: Option<&LiveCounters>) -> String {
    let mut out = Exposition::new("roentgen_web_");
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    out.single(
        "documents_accepted_total",
        "Documents stored by PutTraceSegments.",
        Kind::Counter,
        load(&c.documents_accepted),
    );
    out.family(
        "documents_refused_total",
        "Documents returned in UnprocessedTraceSegments, by ErrorCode.",
        Kind::Counter,
    );
    for r in DocumentRefusal::ALL {
        out.sample(
            "documents_refused_total",
            &[("code", r.as_str())],
            c.documents_refused(r),
        );
    }
    out.single(
        "ingest_bytes_total",
        "Bytes of PutTraceSegments and OTLP request bodies received.",
        Kind::Counter,
        load(&c.ingest_bytes),
    );
    out.single(
        "otlp_spans_total",
        "OTLP spans received at /v1/traces (stored, or refused and counted in documents_refused_total).",
        Kind::Counter,
        load(&c.otlp_spans),
    );
    out.family(
        "requests_refused_total",
        "Whole requests refused, by reason.",
        Kind::Counter,
    );
    for r in RequestRefusal::ALL {
        out.sample(
            "requests_refused_total",
            &[("reason", r.as_str())],
            c.requests_refused(r),
        );
    }
    out.single(
        "requests_failed_total",
        "Requests answered with a server error (5xx).",
        Kind::Counter,
        load(&c.requests_failed),
    );
    out.single(
        "requests_in_flight",
        "Requests being served now.",
        Kind::Gauge,
        load(&c.requests_in_flight),
    );
    out.single(
        "store_batches_in_flight",
        "Store writes (put_documents calls) under way now.",
        Kind::Gauge,
        load(&c.batches_in_flight),
    );
    out.single(
        "store_documents_in_flight",
        "Documents in store writes under way now.",
        Kind::Gauge,
        load(&c.documents_in_flight),
    );
    out.family(
        "store_write_seconds",
        "Time a batch of documents took to become durable in the store (put_documents).",
        Kind::Histogram,
    );
    out.histogram("store_write_seconds", &[], &c.store_write);
    if let Some(l) = live {
        render_live(&mut out, l);
    }
    render_alarms(&mut out, c);
    out.family(
        "request_duration_seconds",
        "Time to answer a request, by X-Ray operation or dashboard route.",
        Kind::Histogram,
    );
    for (operation, histogram) in c.operations() {
        out.histogram(
            "request_duration_seconds",
            &[("operation", &operation)],
            &histogram,
        );
    }
    out.single(
        "uptime_seconds",
        "Seconds since the collector started.",
        Kind::Gauge,
        c.uptime_seconds(),
    );
    out.single(
        "start_time_seconds",
        "When the collector started, seconds since the Unix epoch.",
        Kind::Gauge,
        c.start_time_seconds(),
    );
    if let Some(bytes) = resident_bytes() {
        out.single(
            "resident_memory_bytes",
            "Resident memory of the collector process.",
            Kind::Gauge,
            bytes,
        );
    }
    out.finish()
}

fn render_live(out: &mut Exposition, l: &LiveCounters) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let metrics: [(&str, &str, Kind, &AtomicU64); 13] = [
        (
            "live_trace_hits_total",
            "Pieces of traces the store writer held in memory (folded without reading back).",
            Kind::Counter,
            &l.hits,
        ),
        (
            "live_trace_late_total",
            "Pieces of traces below the live horizon (begun before the start, or evicted), read back from the store (SQLite: by the writer; ClickHouse: by the reconciler, off the write path).",
            Kind::Counter,
            &l.late,
        ),
        (
            "live_trace_evicted_total",
            "Traces evicted from the writer's memory to stay within --live-documents.",
            Kind::Counter,
            &l.evicted,
        ),
        (
            "trace_cap_refused_total",
            "Documents refused because their trace was at --max-trace-documents or --max-trace-mib.",
            Kind::Counter,
            &l.over_cap,
        ),
        (
            "rollup_minutes_settled_total",
            "Minutes of service-graph rollups this collector settled (ClickHouse).",
            Kind::Counter,
            &l.rollup_minutes_settled,
        ),
        (
            "rollup_settle_failures_total",
            "Rounds of settling service-graph rollups that failed and wait for the next round (ClickHouse).",
            Kind::Counter,
            &l.rollup_settle_failures,
        ),
        (
            "reconcile_checked_total",
            "Traces written by several collectors (or begun before this one started) compared with what the store holds, off the write path (ClickHouse).",
            Kind::Counter,
            &l.reconcile_checked,
        ),
        (
            "reconciled_total",
            "Traces folded again from their stored documents because the store held pieces this collector's writer did not (ClickHouse).",
            Kind::Counter,
            &l.reconciled,
        ),
        (
            "reconcile_failures_total",
            "Rounds of reconciling that failed and wait for the next round (ClickHouse).",
            Kind::Counter,
            &l.reconcile_failures,
        ),
        (
            "reconcile_pending_traces",
            "Traces waiting for the reconciler now (ClickHouse).",
            Kind::Gauge,
            &l.reconcile_pending,
        ),
        (
            "fold_pending_traces",
            "Traces whose documents are stored and whose fold waits now (SQLite).",
            Kind::Gauge,
            &l.fold_pending,
        ),
        (
            "live_traces",
            "Traces held in the store writer's memory now.",
            Kind::Gauge,
            &l.traces,
        ),
        (
            "live_documents",
            "Documents held in the store writer's memory now.",
            Kind::Gauge,
            &l.documents,
        ),
    ];
    for (name, help, kind, value) in metrics {
        out.single(name, help, kind, load(value));
    }
}

/// The process's resident set size from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
    }

    #[test]
    fn every_family_has_help_and_type_and_zeroed_reasons() {
        let c = Counters::default();
        c.documents_accepted.fetch_add(7, Ordering::Relaxed);
        c.refuse_documents(&[serde_json::json!({ "ErrorCode": "InvalidSegment" })]);
        c.refuse_request(RequestRefusal::Throttled);
        let text = render(&c, None);
        assert_eq!(
            sample(&text, "roentgen_web_documents_accepted_total"),
            Some("7")
        );
        assert_eq!(
            sample(
                &text,
                "roentgen_web_documents_refused_total{code=\"InvalidSegment\"}"
            ),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                "roentgen_web_documents_refused_total{code=\"DocumentTooLarge\"}"
            ),
            Some("0")
        );
        assert_eq!(
            sample(
                &text,
                "roentgen_web_requests_refused_total{reason=\"throttled\"}"
            ),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                "roentgen_web_requests_refused_total{reason=\"unsigned\"}"
            ),
            Some("0")
        );
        // Each sample belongs to the family declared just above it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("").to_owned();
            } else if !line.starts_with("# HELP ") {
                assert!(line.starts_with(&family), "{line} outside {family}");
            } else {
                let name = line["# HELP ".len()..].split(' ').next().unwrap_or("");
                assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
            }
        }
        assert!(text.contains("# TYPE roentgen_web_store_write_seconds histogram"));
        assert!(text.contains("roentgen_web_store_write_seconds_bucket{le=\"+Inf\"} 0"));
        assert!(sample(&text, "roentgen_web_uptime_seconds").is_some());
    }

    #[test]
    fn operations_get_their_own_histograms() {
        let c = Counters::default();
        c.operation("PutTraceSegments")
            .observe(Duration::from_millis(3));
        c.operation("PutTraceSegments")
            .observe(Duration::from_millis(30));
        c.operation("/traces/{id}")
            .observe(Duration::from_millis(1));
        let text = render(&c, None);
        let put = "roentgen_web_request_duration_seconds";
        assert_eq!(
            sample(
                &text,
                &format!("{put}_bucket{{operation=\"PutTraceSegments\",le=\"0.005\"}}")
            ),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                &format!("{put}_bucket{{operation=\"PutTraceSegments\",le=\"0.05\"}}")
            ),
            Some("2")
        );
        assert_eq!(
            sample(
                &text,
                &format!("{put}_bucket{{operation=\"PutTraceSegments\",le=\"+Inf\"}}")
            ),
            Some("2")
        );
        assert_eq!(
            sample(
                &text,
                &format!("{put}_count{{operation=\"PutTraceSegments\"}}")
            ),
            Some("2")
        );
        assert_eq!(
            sample(
                &text,
                &format!("{put}_sum{{operation=\"PutTraceSegments\"}}")
            ),
            Some("0.033")
        );
        assert_eq!(
            sample(
                &text,
                &format!("{put}_count{{operation=\"/traces/{{id}}\"}}")
            ),
            Some("1")
        );
    }
}
