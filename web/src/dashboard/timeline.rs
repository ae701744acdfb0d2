//! The trace timeline: every segment and subsegment of a trace as rows (segments first, each
//! followed by its subsegment tree), bars positioned to scale, outcome classes, the critical
//! path, clock-skew and partial-trace notes, and the details of one row.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::esc;
use super::map::latency;

/// Rows deeper than this start collapsed when the trace is large.
pub const COLLAPSE_DEPTH: usize = 2;
/// Traces with more rows than this start collapsed below [`COLLAPSE_DEPTH`].
pub const COLLAPSE_ABOVE_ROWS: usize = 200;

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Segment or subsegment id.
    pub id: String,
    /// Id of the row it is nested under (its caller for a downstream segment).
    pub parent: Option<String>,
    /// Nesting depth (segments are 0).
    pub depth: usize,
    /// Name.
    pub name: String,
    /// Segment (a service's own document) or subsegment.
    pub segment: bool,
    /// Origin of a segment, or namespace of a subsegment.
    pub kind: String,
    /// `ok`, `error`, `throttle`, `fault` or `pending`.
    pub status: &'static str,
    /// HTTP status, if any.
    pub http_status: Option<i64>,
    /// Start offset from the trace start, seconds.
    pub offset: f64,
    /// Duration, seconds (to the trace end while in progress).
    pub duration: f64,
    /// Bar left, percent.
    pub left: f64,
    /// Bar width, percent.
    pub width: f64,
    /// Has nested rows.
    pub has_children: bool,
    /// On the critical path.
    pub critical: bool,
    /// Clock skew or missing-parent note.
    pub note: Option<String>,
    /// Starts hidden (under a collapsed row).
    pub hidden: bool,
    /// Starts collapsed.
    pub collapsed: bool,
}

impl Row {
    /// Formatted duration.
    pub fn duration_text(&self) -> String {
        latency(self.duration)
    }

    /// Formatted start offset.
    pub fn offset_text(&self) -> String {
        latency(self.offset)
    }
}

/// The timeline of one trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// Rows in display order.
    pub rows: Vec<Row>,
    /// Trace start, epoch seconds.
    pub start: f64,
    /// Trace duration, seconds.
    pub duration: f64,
    /// Some document is in progress or a parent is missing.
    pub partial: bool,
    /// Clock-skew notes were added.
    pub skewed: bool,
    /// Deepest row.
    pub max_depth: usize,
}

impl Timeline {
    /// Formatted trace duration.
    pub fn duration_text(&self) -> String {
        latency(self.duration)
    }
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn status_of(v: &Value) -> &'static str {
    if flag(v, "in_progress") || v.get("end_time").is_none() {
        "pending"
    } else if flag(v, "fault") {
        "fault"
    } else if flag(v, "throttle") {
        "throttle"
    } else if flag(v, "error") {
        "error"
    } else {
        "ok"
    }
}

fn http_status(v: &Value) -> Option<i64> {
    v.pointer("/http/response/status").and_then(Value::as_i64)
}

struct Builder<'a> {
    rows: Vec<Row>,
    /// Segments keyed by the id of the subsegment that called them.
    called: HashMap<&'a str, Vec<&'a Value>>,
    placed: std::collections::HashSet<&'a str>,
}

impl<'a> Builder<'a> {
    fn push(&mut self, v: &'a Value, parent: Option<(&str, f64, Option<f64>)>, depth: usize) {
        let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
        if depth > 200 || !self.placed.insert(id) {
            return;
        }
        let segment = depth == 0 || v.get("trace_id").is_some();
        let start = f(v, "start_time").unwrap_or(0.0);
        let end = f(v, "end_time");
        let mut note = None;
        if let Some((_, pstart, pend)) = parent
            && segment
        {
            // A downstream segment outside its caller's call: the hosts' clocks disagree.
            if start + 0.001 < pstart {
                note = Some(format!(
                    "clock skew: starts {} before its caller",
                    latency(pstart - start)
                ));
            } else if let (Some(e), Some(pe)) = (end, pend)
                && e > pe + 0.001
            {
                note = Some(format!(
                    "clock skew: ends {} after its caller",
                    latency(e - pe)
                ));
            }
        }
        let kind = if segment {
            v.get("origin").and_then(Value::as_str).unwrap_or("segment")
        } else {
            v.get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("local")
        };
        let index = self.rows.len();
        self.rows.push(Row {
            id: id.to_owned(),
            parent: parent.map(|p| p.0.to_owned()),
            depth,
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            segment,
            kind: kind.to_owned(),
            status: status_of(v),
            http_status: http_status(v),
            offset: start,
            duration: end.map(|e| (e - start).max(0.0)).unwrap_or(f64::NAN),
            left: 0.0,
            width: 0.0,
            has_children: false,
            critical: false,
            note,
            hidden: false,
            collapsed: false,
        });
        let mut children: Vec<&'a Value> = v
            .get("subsegments")
            .and_then(Value::as_array)
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        if let Some(downstream) = self.called.get(id) {
            children.extend(downstream.iter().copied());
        }
        by_start(&mut children);
        let before = self.rows.len();
        for c in children {
            self.push(c, Some((id, start, end)), depth + 1);
        }
        self.rows[index].has_children = self.rows.len() > before;
    }
}

/// Sorts documents by start time (each start read once: a lookup in a JSON object is not free).
fn by_start(list: &mut Vec<&Value>) {
    let mut keyed: Vec<(f64, &Value)> = list
        .iter()
        .map(|v| (f(v, "start_time").unwrap_or(0.0), *v))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    list.clear();
    list.extend(keyed.into_iter().map(|(_, v)| v));
}

fn collect_ids<'a>(v: &'a Value, out: &mut HashMap<&'a str, &'a Value>, depth: usize) {
    if depth > 200 {
        return;
    }
    if let Some(id) = v.get("id").and_then(Value::as_str) {
        out.insert(id, v);
    }
    if let Some(list) = v.get("subsegments").and_then(Value::as_array) {
        for c in list {
            collect_ids(c, out, depth + 1);
        }
    }
}

/// Builds the timeline of a trace from its (assembled) segment documents.
pub fn build(documents: &[Value]) -> Timeline {
    let mut all: HashMap<&str, &Value> = HashMap::new();
    for d in documents {
        collect_ids(d, &mut all, 0);
    }
    let mut called: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut roots: Vec<&Value> = Vec::new();
    let mut orphans: Vec<&str> = Vec::new();
    for d in documents {
        match d.get("parent_id").and_then(Value::as_str) {
            Some(p) if all.contains_key(p) => called.entry(p).or_default().push(d),
            Some(_) => {
                if let Some(id) = d.get("id").and_then(Value::as_str) {
                    orphans.push(id);
                }
                roots.push(d);
            }
            None => roots.push(d),
        }
    }
    by_start(&mut roots);
    let mut b = Builder {
        rows: Vec::new(),
        called,
        placed: Default::default(),
    };
    for r in &roots {
        b.push(r, None, 0);
    }
    // Anything unreachable (a cycle of parent ids) still shows.
    for d in documents {
        b.push(d, None, 0);
    }
    let mut rows = b.rows;
    for r in &mut rows {
        if orphans.contains(&r.id.as_str()) {
            r.note = Some("its caller's segment has not arrived: partial trace".to_owned());
        }
    }
    let start = rows.iter().map(|r| r.offset).fold(f64::INFINITY, f64::min);
    let end = rows
        .iter()
        .map(|r| {
            if r.duration.is_nan() {
                r.offset
            } else {
                r.offset + r.duration
            }
        })
        .fold(f64::NEG_INFINITY, f64::max);
    let start = if start.is_finite() { start } else { 0.0 };
    let total = if end.is_finite() {
        (end - start).max(1e-9)
    } else {
        1e-9
    };
    let mut partial = !orphans.is_empty();
    let mut max_depth = 0;
    for r in &mut rows {
        r.offset -= start;
        if r.duration.is_nan() {
            partial = true;
            r.duration = (total - r.offset).max(0.0);
        }
        r.left = (r.offset / total * 100.0).clamp(0.0, 100.0);
        r.width = (r.duration / total * 100.0).clamp(0.0, 100.0 - r.left);
        max_depth = max_depth.max(r.depth);
    }
    mark_critical(&mut rows);
    if rows.len() > COLLAPSE_ABOVE_ROWS {
        for r in &mut rows {
            r.hidden = r.depth > COLLAPSE_DEPTH;
            r.collapsed = r.depth >= COLLAPSE_DEPTH && r.has_children;
        }
    }
    let skewed = rows
        .iter()
        .any(|r| r.note.as_deref().is_some_and(|n| n.starts_with("clock")));
    Timeline {
        rows,
        start,
        duration: if end.is_finite() { end - start } else { 0.0 },
        partial,
        skewed,
        max_depth,
    }
}

/// Marks the critical path: from the first root, walking back from each row's end, the child
/// that ended last before the cursor, then the one that ended before that child started, and
/// so on (the work the row was waiting for), recursively.
fn mark_critical(rows: &mut [Row]) {
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        if let Some(p) = &r.parent {
            children.entry(p.as_str()).or_default().push(i);
        }
    }
    let end = |r: &Row| r.offset + r.duration;
    let mut marked = Vec::new();
    let mut stack: Vec<usize> = rows
        .iter()
        .position(|r| r.parent.is_none())
        .into_iter()
        .collect();
    while let Some(i) = stack.pop() {
        if marked.len() > rows.len() {
            break;
        }
        marked.push(i);
        let Some(kids) = children.get(rows[i].id.as_str()) else {
            continue;
        };
        let mut cursor = end(&rows[i]) + 1e-9;
        loop {
            let next = kids
                .iter()
                .copied()
                .filter(|&k| rows[k].offset < cursor && end(&rows[k]) <= cursor + 1e-6)
                .max_by(|&a, &b| end(&rows[a]).total_cmp(&end(&rows[b])));
            let Some(k) = next else { break };
            stack.push(k);
            cursor = rows[k].offset;
        }
    }
    for i in marked {
        rows[i].critical = true;
    }
}

/// Finds a segment or subsegment by id among the documents.
pub fn find<'a>(documents: &'a [Value], id: &str) -> Option<&'a Value> {
    let mut all = HashMap::new();
    for d in documents {
        collect_ids(d, &mut all, 0);
    }
    all.get(id).copied()
}

fn section(out: &mut String, title: &str, body: &str) {
    let _ = write!(out, "<section><h3>{}</h3>{body}</section>", esc(title));
}

fn table(pairs: &[(String, String)]) -> String {
    let mut t = String::from("<table class=\"kv\">");
    for (k, v) in pairs {
        let _ = write!(t, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    t.push_str("</table>");
    t
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), text(other))),
    }
}

/// The details of one row as an HTML fragment: overview, HTTP, SQL, AWS, annotations,
/// metadata, exceptions with stack frames and the raw JSON (without nested subsegments).
pub fn details(v: &Value) -> String {
    let mut out = String::new();
    let start = f(v, "start_time").unwrap_or(0.0);
    let mut overview = vec![
        (
            "Name".to_owned(),
            text(v.get("name").unwrap_or(&Value::Null)),
        ),
        ("Id".to_owned(), text(v.get("id").unwrap_or(&Value::Null))),
        ("Status".to_owned(), status_of(v).to_owned()),
        (
            "Start".to_owned(),
            format!("{} UTC ({start:.6})", super::format_time(start)),
        ),
    ];
    match f(v, "end_time") {
        Some(end) => overview.push(("Duration".to_owned(), latency(end - start))),
        None => overview.push(("Duration".to_owned(), "in progress".to_owned())),
    }
    for key in [
        "trace_id",
        "parent_id",
        "origin",
        "namespace",
        "user",
        "precursor_ids",
    ] {
        if let Some(x) = v.get(key) {
            overview.push((key.to_owned(), text(x)));
        }
    }
    section(&mut out, "Overview", &table(&overview));
    for (key, title) in [
        ("http", "HTTP"),
        ("sql", "SQL"),
        ("aws", "AWS"),
        ("annotations", "Annotations"),
        ("service", "Service"),
    ] {
        if let Some(x) = v.get(key) {
            let mut pairs = Vec::new();
            flatten("", x, &mut pairs);
            section(&mut out, title, &table(&pairs));
        }
    }
    if let Some(m) = v.get("metadata") {
        let pretty = serde_json::to_string_pretty(m).unwrap_or_default();
        section(
            &mut out,
            "Metadata",
            &format!("<pre class=\"json\">{}</pre>", esc(&pretty)),
        );
    }
    if let Some(exceptions) = v.pointer("/cause/exceptions").and_then(Value::as_array) {
        let mut body = String::new();
        for e in exceptions {
            let _ = write!(
                body,
                "<div class=\"exception\"><p><b>{}</b> {}</p>",
                esc(&e.get("type").map(text).unwrap_or_default()),
                esc(&e.get("message").map(text).unwrap_or_default())
            );
            let frames = e.get("stack").and_then(Value::as_array);
            if frames.is_some_and(|f| !f.is_empty()) {
                body.push_str("<ol class=\"stack\">");
            }
            for frame in frames.into_iter().flatten() {
                let _ = write!(
                    body,
                    "<li><code>{}</code> {}:{}</li>",
                    esc(&frame.get("label").map(text).unwrap_or_default()),
                    esc(&frame.get("path").map(text).unwrap_or_default()),
                    esc(&frame.get("line").map(text).unwrap_or_default())
                );
            }
            if frames.is_some_and(|f| !f.is_empty()) {
                body.push_str("</ol>");
            }
            body.push_str("</div>");
        }
        section(&mut out, "Exceptions", &body);
    }
    let mut raw = v.clone();
    if let Some(o) = raw.as_object_mut()
        && let Some(Value::Array(subs)) = o.remove("subsegments")
    {
        o.insert(
            "subsegments".to_owned(),
            Value::String(format!("({} nested, shown as rows)", subs.len())),
        );
    }
    let pretty = serde_json::to_string_pretty(&raw).unwrap_or_default();
    section(
        &mut out,
        "Raw JSON",
        &format!("<pre class=\"json\">{}</pre>", esc(&pretty)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Value> {
        vec![
            json!({"name": "frontend", "id": "a1", "trace_id": "t", "start_time": 10.0, "end_time": 11.0,
            "subsegments": [
                {"name": "render", "id": "a2", "start_time": 10.8, "end_time": 10.9},
                {"name": "checkout", "id": "a3", "namespace": "remote", "start_time": 10.1, "end_time": 10.7, "fault": true}
            ]}),
            json!({"name": "checkout", "id": "b1", "trace_id": "t", "parent_id": "a3", "start_time": 10.05, "end_time": 10.6, "fault": true,
                   "subsegments": [{"name": "db", "id": "b2", "start_time": 10.2, "end_time": 10.5}]}),
        ]
    }

    #[test]
    fn rows_nest_segments_under_their_callers_in_time_order() {
        let t = build(&docs());
        let names: Vec<(&str, usize)> = t.rows.iter().map(|r| (r.name.as_str(), r.depth)).collect();
        assert_eq!(
            names,
            [
                ("frontend", 0),
                ("checkout", 1),
                ("checkout", 2),
                ("db", 3),
                ("render", 1)
            ]
        );
        assert_eq!(t.rows[1].status, "fault");
        assert!((t.duration - 1.0).abs() < 1e-9);
        assert!(!t.partial);
    }

    #[test]
    fn skew_and_critical_path_are_marked() {
        let t = build(&docs());
        // checkout starts 50 ms before the call that made it.
        assert!(
            t.rows[2]
                .note
                .as_deref()
                .unwrap_or("")
                .contains("clock skew")
        );
        assert!(t.skewed);
        let critical: Vec<&str> = t
            .rows
            .iter()
            .filter(|r| r.critical)
            .map(|r| r.name.as_str())
            .collect();
        // render ends last; before it started, the call to checkout (and within it, db).
        assert_eq!(
            critical,
            ["frontend", "checkout", "checkout", "db", "render"]
        );
    }

    #[test]
    fn missing_parents_and_in_progress_make_a_partial_trace() {
        let t = build(&[
            json!({"name": "x", "id": "c1", "trace_id": "t", "parent_id": "zz", "start_time": 1.0, "in_progress": true}),
        ]);
        assert!(t.partial);
        assert_eq!(t.rows[0].status, "pending");
        assert!(t.rows[0].note.is_some());
    }

    #[test]
    fn details_escape_and_show_exceptions() {
        let v = json!({"name": "<b>", "id": "d1", "start_time": 1.0, "end_time": 2.0,
            "cause": {"exceptions": [{"type": "Boom", "message": "bad", "stack": [{"path": "a.rs", "line": 3, "label": "main"}]}]}});
        let html = details(&v);
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("a.rs:3"));
        assert!(!html.contains("<b><"));
    }
}
