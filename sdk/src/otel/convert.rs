//! OpenTelemetry span -> X-Ray document, following the HTTP and database semantic conventions
//! (both the current names and the older ones still in wide use).

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value as OtelValue};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Map, Value};

use super::propagator::is_root_only_parent;
use super::{segment_id_from_otel, trace_id_from_otel};
use crate::model::{Cause, CauseDetails, Exception, Http, HttpRequest, HttpResponse, Segment, Sql};
use crate::recorder::{SqlDialect, sanitize_sql_as};

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn to_json(value: &OtelValue) -> Value {
    match value {
        OtelValue::Bool(b) => Value::Bool(*b),
        OtelValue::I64(i) => Value::from(*i),
        OtelValue::F64(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        OtelValue::String(s) => Value::String(s.as_str().to_owned()),
        other => Value::String(other.to_string()),
    }
}

/// Attributes consumed into the http/sql blocks (not repeated as annotations).
const HTTP_METHOD: [&str; 2] = ["http.request.method", "http.method"];
const HTTP_URL: [&str; 2] = ["url.full", "http.url"];
const HTTP_STATUS: [&str; 2] = ["http.response.status_code", "http.status_code"];
const USER_AGENT: [&str; 2] = ["user_agent.original", "http.user_agent"];
const CLIENT_IP: [&str; 2] = ["client.address", "http.client_ip"];
const DB_SYSTEM: [&str; 2] = ["db.system.name", "db.system"];
const DB_QUERY: [&str; 2] = ["db.query.text", "db.statement"];
const DB_NAME: [&str; 2] = ["db.namespace", "db.name"];
const CONSUMED: [&str; 6] = [
    "url.path",
    "url.query",
    "server.address",
    "db.user",
    "enduser.id",
    "http.target",
];

fn find<'a>(span: &'a SpanData, keys: &[&str]) -> Option<&'a OtelValue> {
    keys.iter().find_map(|k| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == *k)
            .map(|kv| &kv.value)
    })
}

fn find_str(span: &SpanData, keys: &[&str]) -> Option<String> {
    find(span, keys).map(|v| v.as_str().into_owned())
}

fn is_consumed(key: &Key) -> bool {
    let k = key.as_str();
    [
        &HTTP_METHOD[..],
        &HTTP_URL,
        &HTTP_STATUS,
        &USER_AGENT,
        &CLIENT_IP,
        &DB_SYSTEM,
        &DB_QUERY,
        &DB_NAME,
        &CONSUMED,
    ]
    .iter()
    .any(|group| group.contains(&k))
}

/// Converts one span. Returns `None` for spans whose context is invalid.
pub fn span_to_segment(span: &SpanData, service_name: &str) -> Option<Segment> {
    let context = &span.span_context;
    if !context.is_valid() {
        return None;
    }
    // A load balancer's `Root`-only header leaves the first span a root of that trace.
    let has_parent = span.parent_span_id != opentelemetry::trace::SpanId::INVALID
        && !(span.parent_span_is_remote
            && is_root_only_parent(
                context.trace_id(),
                span.parent_span_id,
                context.trace_state(),
            ));
    let is_segment = matches!(span.span_kind, SpanKind::Server | SpanKind::Consumer)
        || !has_parent
        || span.parent_span_is_remote;
    let mut doc = Segment {
        name: if is_segment {
            service_name.to_owned()
        } else {
            span.name.to_string()
        },
        id: segment_id_from_otel(context.span_id()),
        trace_id: Some(trace_id_from_otel(context.trace_id())),
        parent_id: has_parent.then(|| segment_id_from_otel(span.parent_span_id)),
        start_time: seconds(span.start_time),
        end_time: Some(seconds(span.end_time).max(seconds(span.start_time))),
        ..Segment::default()
    };
    if !is_segment {
        doc.kind = Some("subsegment".into());
        if matches!(span.span_kind, SpanKind::Client | SpanKind::Producer) {
            doc.namespace = Some("remote".into());
        }
    }

    let method = find_str(span, &HTTP_METHOD);
    let status = find(span, &HTTP_STATUS).and_then(|v| match v {
        OtelValue::I64(i) => u16::try_from(*i).ok(),
        other => other.as_str().parse().ok(),
    });
    if method.is_some() || status.is_some() {
        let url = find_str(span, &HTTP_URL).or_else(|| {
            let host = find_str(span, &["server.address"])?;
            let path = find_str(span, &["url.path", "http.target"]).unwrap_or_default();
            Some(format!("http://{host}{path}"))
        });
        doc.http = Some(Http {
            request: Some(HttpRequest {
                method,
                url,
                user_agent: find_str(span, &USER_AGENT),
                client_ip: find_str(span, &CLIENT_IP),
                ..HttpRequest::default()
            }),
            response: status.map(|s| HttpResponse {
                status: Some(s),
                ..HttpResponse::default()
            }),
            extra: Map::new(),
        });
        if let Some(status) = status {
            doc.apply_status_flags(status);
        }
    }
    if let Some(system) = find_str(span, &DB_SYSTEM) {
        doc.namespace = Some("remote".into());
        let dialect = SqlDialect::from_database_type(&system);
        doc.sql = Some(Sql {
            database_type: Some(system),
            url: find_str(span, &DB_NAME),
            sanitized_query: find_str(span, &DB_QUERY).map(|q| sanitize_sql_as(&q, dialect)),
            user: find_str(span, &["db.user"]),
            ..Sql::default()
        });
    }
    doc.user = find_str(span, &["enduser.id"]);

    let mut annotations = Map::new();
    let mut metadata = Map::new();
    for kv in &span.attributes {
        if is_consumed(&kv.key) {
            continue;
        }
        let key: String = kv
            .key
            .as_str()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let value = to_json(&kv.value);
        if matches!(kv.value, OtelValue::Array(_)) || value.is_null() {
            metadata.insert(kv.key.as_str().to_owned(), value);
        } else {
            annotations.insert(key, value);
        }
    }
    if !annotations.is_empty() {
        doc.annotations = Some(annotations);
    }
    if !metadata.is_empty() {
        let mut namespaces = Map::new();
        namespaces.insert("default".into(), Value::Object(metadata));
        doc.metadata = Some(namespaces);
    }

    let exceptions: Vec<Exception> = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|event| {
            let get = |k: &str| {
                event
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.as_str().into_owned())
            };
            Exception {
                message: get("exception.message"),
                kind: get("exception.type"),
                ..Exception::default()
            }
        })
        .collect();
    if let Status::Error { description } = &span.status {
        doc.fault = Some(true);
        if exceptions.is_empty() && !description.is_empty() {
            doc.cause = Some(Cause::Details(CauseDetails {
                exceptions: Some(vec![Exception {
                    message: Some(description.to_string()),
                    ..Exception::default()
                }]),
                ..CauseDetails::default()
            }));
        }
    }
    if !exceptions.is_empty() {
        doc.fault = Some(true);
        doc.cause = Some(Cause::Details(CauseDetails {
            exceptions: Some(exceptions),
            ..CauseDetails::default()
        }));
    }
    Some(doc)
}
