//! One OTLP span -> one X-Ray document, following AWS's published conversion: server and
//! consumer spans (and local roots) are segments named after the service; client, producer and
//! internal spans are subsegments, remote ones named after what they call; HTTP, database, RPC,
//! messaging and AWS SDK attributes fill the X-Ray blocks; the rest is metadata (annotations
//! only for the keys asked for), so nothing the span said is lost.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, SpanFlags};
use serde_json::{Map, Value, json};

use super::MappingConfig;
use super::attributes::{Attributes, object, to_json};
use super::resource::Resource;
use super::stacktrace;
use crate::model::{
    Cause, CauseDetails, Exception, Http, HttpRequest, HttpResponse, Segment, SegmentId, Sql,
    TraceId, valid_name,
};
use crate::recorder::{SqlDialect, sanitize_sql_as};

const HTTP_METHOD: &[&str] = &["http.request.method", "http.method"];
const HTTP_URL: &[&str] = &["url.full", "http.url"];
const HTTP_STATUS: &[&str] = &["http.response.status_code", "http.status_code"];
const USER_AGENT: &[&str] = &["user_agent.original", "http.user_agent"];
const CLIENT_IP: &[&str] = &["client.address", "http.client_ip"];
const URL_SCHEME: &[&str] = &["url.scheme", "http.scheme"];
const URL_PATH: &[&str] = &["url.path", "http.target"];
const URL_QUERY: &[&str] = &["url.query"];
const SERVER_ADDRESS: &[&str] = &[
    "server.address",
    "net.peer.name",
    "net.host.name",
    "http.host",
];
const SERVER_PORT: &[&str] = &["server.port", "net.peer.port", "net.host.port"];
const CONTENT_LENGTH: &[&str] = &["http.response.body.size", "http.response_content_length"];
const PEER_SERVICE: &[&str] = &["peer.service"];
const DB_SYSTEM: &[&str] = &["db.system.name", "db.system"];
const DB_QUERY: &[&str] = &["db.query.text", "db.statement"];
const DB_NAME: &[&str] = &["db.namespace", "db.name"];
const DB_USER: &[&str] = &["db.user"];
const RPC_SYSTEM: &[&str] = &["rpc.system"];
const RPC_SERVICE: &[&str] = &["rpc.service"];
const RPC_METHOD: &[&str] = &["rpc.method"];
const AWS_REQUEST_ID: &[&str] = &["aws.request_id", "aws.requestId"];
const AWS_REGION: &[&str] = &["aws.region", "cloud.region"];
const AWS_TABLES: &[&str] = &["aws.dynamodb.table_names", "aws.table_name"];
const AWS_QUEUE: &[&str] = &["aws.sqs.queue_url", "aws.queue_url"];
const MESSAGING_SYSTEM: &[&str] = &["messaging.system"];
const MESSAGING_DESTINATION: &[&str] = &["messaging.destination.name", "messaging.destination"];
const END_USER: &[&str] = &["enduser.id"];
const ANNOTATION_KEYS: &[&str] = &["aws.xray.annotations"];

/// Span attributes that become parts of the document (the others become metadata).
const CONSUMED: &[&[&str]] = &[
    HTTP_METHOD,
    HTTP_URL,
    HTTP_STATUS,
    USER_AGENT,
    CLIENT_IP,
    URL_SCHEME,
    URL_PATH,
    URL_QUERY,
    CONTENT_LENGTH,
    DB_QUERY,
    DB_USER,
    AWS_REQUEST_ID,
    END_USER,
    ANNOTATION_KEYS,
];

fn consumed(key: &str) -> bool {
    CONSUMED.iter().any(|group| group.contains(&key))
}

/// Why a span cannot become a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// The trace id is not 16 bytes, or is all zeros.
    #[error("trace id must be 16 bytes, not all zero")]
    TraceId,
    /// The span id is not 8 bytes, or is all zeros.
    #[error("span id must be 8 bytes, not all zero")]
    SpanId,
    /// The parent span id is neither empty nor 8 bytes.
    #[error("parent span id must be empty or 8 bytes")]
    ParentId,
    /// No start time.
    #[error("start time is missing")]
    StartTime,
}

/// An OTLP trace id as an X-Ray trace id ([`TraceId::from_w3c`]); `None` unless 16 bytes,
/// not all zero.
pub fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    (bytes != [0; 16]).then(|| TraceId::from_w3c(bytes))
}

/// An OTLP span id as a segment id.
pub fn segment_id(bytes: &[u8]) -> Option<SegmentId> {
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    let value = u64::from_be_bytes(bytes);
    (value != 0).then(|| SegmentId::from_u64(value))
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Whether a span is a segment: server and consumer spans, and the first span of a process
/// (no parent, or a parent in another process).
fn is_segment(span: &Span, kind: SpanKind) -> bool {
    let remote_parent = span.flags & (SpanFlags::ContextHasIsRemoteMask as u32) != 0
        && span.flags & (SpanFlags::ContextIsRemoteMask as u32) != 0;
    matches!(kind, SpanKind::Server | SpanKind::Consumer)
        || span.parent_span_id.is_empty()
        || remote_parent
}

/// The name of a subsegment for a call to another service.
fn remote_name(a: Attributes<'_>, span: &Span) -> String {
    let server = a.text(SERVER_ADDRESS).or_else(|| {
        let url = a.text(HTTP_URL)?;
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next()?;
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        Some(host.split(':').next().unwrap_or(host).to_owned()).filter(|h| !h.is_empty())
    });
    if let Some(peer) = a.text(PEER_SERVICE) {
        return peer;
    }
    if a.text(RPC_SYSTEM).as_deref() == Some("aws-api")
        && let Some(service) = a.text(RPC_SERVICE)
    {
        return service;
    }
    if a.text(DB_SYSTEM).is_some() {
        return match (a.text(DB_NAME), server) {
            (Some(db), Some(host)) => format!("{db}@{host}"),
            (_, Some(host)) => host,
            (Some(db), None) => db,
            (None, None) => a.text(DB_SYSTEM).unwrap_or_default(),
        };
    }
    if let Some(destination) = a
        .text(MESSAGING_DESTINATION)
        .filter(|_| a.text(MESSAGING_SYSTEM).is_some())
    {
        return destination;
    }
    server
        .or_else(|| a.text(RPC_SERVICE))
        .unwrap_or_else(|| span.name.clone())
}

fn http_block(a: Attributes<'_>, segment: bool) -> Option<(Http, Option<u16>)> {
    let method = a.text(HTTP_METHOD);
    let status = a.int(HTTP_STATUS).and_then(|s| u16::try_from(s).ok());
    if method.is_none() && status.is_none() {
        return None;
    }
    let url = a.text(HTTP_URL).or_else(|| {
        let host = a.text(SERVER_ADDRESS)?;
        let scheme = a.text(URL_SCHEME).unwrap_or_else(|| "http".to_owned());
        let port = a
            .int(SERVER_PORT)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let path = a.text(URL_PATH).unwrap_or_default();
        let query = a
            .text(URL_QUERY)
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        Some(format!("{scheme}://{host}{port}{path}{query}"))
    });
    let http = Http {
        request: Some(HttpRequest {
            method,
            url,
            user_agent: a.text(USER_AGENT),
            client_ip: segment.then(|| a.text(CLIENT_IP)).flatten(),
            ..HttpRequest::default()
        }),
        response: status.map(|s| HttpResponse {
            status: Some(s),
            content_length: a.int(CONTENT_LENGTH).and_then(|n| u64::try_from(n).ok()),
            ..HttpResponse::default()
        }),
        extra: Map::new(),
    };
    Some((http, status))
}

fn sql_block(a: Attributes<'_>) -> Option<Sql> {
    let system = a.text(DB_SYSTEM)?;
    let dialect = SqlDialect::from_database_type(&system);
    let url = a.text(SERVER_ADDRESS).map(|host| {
        let port = a
            .int(SERVER_PORT)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let db = a.text(DB_NAME).map(|d| format!("/{d}")).unwrap_or_default();
        format!("{host}{port}{db}")
    });
    Some(Sql {
        url: url.or_else(|| a.text(DB_NAME)),
        sanitized_query: a.text(DB_QUERY).map(|q| sanitize_sql_as(&q, dialect)),
        database_type: Some(system),
        user: a.text(DB_USER),
        ..Sql::default()
    })
}

fn aws_call(a: Attributes<'_>, resource: &Resource) -> Map<String, Value> {
    let mut aws = Map::new();
    if let Some(operation) = a.text(RPC_METHOD) {
        aws.insert("operation".into(), Value::String(operation));
    }
    if let Some(region) = a.text(AWS_REGION).or_else(|| resource.region.clone()) {
        aws.insert("region".into(), Value::String(region));
    }
    if let Some(id) = a.text(AWS_REQUEST_ID) {
        aws.insert("request_id".into(), Value::String(id));
    }
    if let Some(table) = a.strings(AWS_TABLES).into_iter().next() {
        aws.insert("table_name".into(), Value::String(table));
    }
    if let Some(queue) = a.text(AWS_QUEUE) {
        aws.insert("queue_url".into(), Value::String(queue));
    }
    aws
}

fn exceptions(span: &Span) -> Vec<Exception> {
    span.events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| {
            let a = Attributes(&e.attributes);
            let (stack, truncated) = a
                .text(&["exception.stacktrace"])
                .map(|t| stacktrace::parse(&t))
                .unwrap_or_default();
            Exception {
                kind: a.text(&["exception.type"]),
                message: a.text(&["exception.message"]),
                stack: (!stack.is_empty()).then_some(stack),
                truncated: (truncated > 0).then_some(truncated),
                ..Exception::default()
            }
        })
        .collect()
}

/// The X-Ray annotation key for an attribute key: characters X-Ray refuses become `_`.
fn annotation_key(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(500)
        .collect()
}

/// Span attributes as annotations (the keys asked for, scalar values) and metadata (the
/// rest, under their own keys); an annotation whose key collides with one already made goes
/// to metadata, never over it.
fn annotations_and_metadata(
    span: &Span,
    config: &MappingConfig,
) -> (Map<String, Value>, Map<String, Value>) {
    let listed = Attributes(&span.attributes).strings(ANNOTATION_KEYS);
    let mut annotations = Map::new();
    let mut metadata = Map::new();
    for kv in &span.attributes {
        if consumed(&kv.key) {
            continue;
        }
        let value = to_json(kv.value.as_ref());
        let wanted = config.index_all_attributes
            || config.annotation_keys.contains(&kv.key)
            || listed.contains(&kv.key);
        let scalar = matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_));
        let key = annotation_key(&kv.key);
        if wanted && scalar && !key.is_empty() && !annotations.contains_key(&key) {
            annotations.insert(key, value);
        } else {
            metadata.insert(kv.key.clone(), value);
        }
    }
    (annotations, metadata)
}

/// What the span said that has no X-Ray field: its own name when the document is named
/// otherwise, its kind, its other events and its links.
fn otel_metadata(span: &Span, kind: SpanKind, name: &str) -> Map<String, Value> {
    let mut otel = Map::new();
    if span.name != name {
        otel.insert("span_name".into(), Value::String(span.name.clone()));
    }
    otel.insert(
        "span_kind".into(),
        Value::String(
            kind.as_str_name()
                .trim_start_matches("SPAN_KIND_")
                .to_ascii_lowercase(),
        ),
    );
    let events: Vec<Value> = span
        .events
        .iter()
        .filter(|e| e.name != "exception")
        .map(|e| {
            json!({ "name": e.name, "time": seconds(e.time_unix_nano),
                    "attributes": object(&e.attributes) })
        })
        .collect();
    if !events.is_empty() {
        otel.insert("events".into(), Value::Array(events));
    }
    let links: Vec<Value> = span
        .links
        .iter()
        .filter_map(|l| {
            Some(json!({ "trace_id": trace_id(&l.trace_id)?.to_string(),
                         "span_id": segment_id(&l.span_id)?.to_string(),
                         "attributes": object(&l.attributes) }))
        })
        .collect();
    if !links.is_empty() {
        otel.insert("links".into(), Value::Array(links));
    }
    otel
}

/// Maps one span of `resource`.
pub(super) fn map(
    span: &Span,
    resource: &Resource,
    config: &MappingConfig,
) -> Result<Segment, SpanError> {
    let trace = trace_id(&span.trace_id).ok_or(SpanError::TraceId)?;
    let id = segment_id(&span.span_id).ok_or(SpanError::SpanId)?;
    let parent_id = match span.parent_span_id.len() {
        0 => None,
        8 => segment_id(&span.parent_span_id),
        _ => return Err(SpanError::ParentId),
    };
    if span.start_time_unix_nano == 0 {
        return Err(SpanError::StartTime);
    }
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Internal);
    let a = Attributes(&span.attributes);
    let segment = is_segment(span, kind);
    let aws_api = a.text(RPC_SYSTEM).as_deref() == Some("aws-api");
    let remote = matches!(kind, SpanKind::Client | SpanKind::Producer);
    let raw_name = if segment {
        resource
            .service_name
            .clone()
            .unwrap_or_else(|| span.name.clone())
    } else if remote || (aws_api && !segment) {
        remote_name(a, span)
    } else {
        span.name.clone()
    };
    let start = seconds(span.start_time_unix_nano);
    let mut doc = Segment {
        name: valid_name(&raw_name).into_owned(),
        id,
        trace_id: Some(trace),
        parent_id,
        start_time: start,
        end_time: Some(seconds(span.end_time_unix_nano).max(start)),
        user: a.text(END_USER),
        ..Segment::default()
    };
    if segment {
        doc.origin = resource.origin.clone();
        doc.service = resource.service.clone();
        doc.aws = resource.aws.clone();
    } else {
        doc.kind = Some("subsegment".into());
        if aws_api {
            doc.namespace = Some("aws".into());
            doc.aws = Some(aws_call(a, resource));
        } else if remote || a.text(DB_SYSTEM).is_some() {
            doc.namespace = Some("remote".into());
        }
    }
    let http_status = http_block(a, segment).and_then(|(http, status)| {
        doc.http = Some(http);
        status
    });
    if let Some(status) = http_status {
        doc.apply_status_flags(status);
    }
    doc.sql = sql_block(a);

    let status = span.status.as_ref();
    let failed = status.is_some_and(|s| s.code == StatusCode::Error as i32);
    let exceptions = exceptions(span);
    // A 4xx says whose fault it was (the caller's): an error status or an exception with it
    // stays an error; otherwise they are faults.
    let client_error = http_status.is_some_and(|s| (400..500).contains(&s));
    if (failed || !exceptions.is_empty()) && !client_error {
        doc.fault = Some(true);
    }
    let message = status.map(|s| s.message.clone()).filter(|m| !m.is_empty());
    let exceptions = if exceptions.is_empty() && failed {
        message
            .map(|m| {
                vec![Exception {
                    message: Some(m),
                    ..Exception::default()
                }]
            })
            .unwrap_or_default()
    } else {
        exceptions
    };
    if !exceptions.is_empty() {
        doc.cause = Some(Cause::Details(CauseDetails {
            exceptions: Some(exceptions),
            ..CauseDetails::default()
        }));
    }

    let (annotations, default) = annotations_and_metadata(span, config);
    let mut metadata = Map::new();
    if !default.is_empty() {
        metadata.insert("default".into(), Value::Object(default));
    }
    let mut otel = otel_metadata(span, kind, &doc.name);
    if segment && !resource.metadata.is_empty() {
        otel.insert("resource".into(), Value::Object(resource.metadata.clone()));
    }
    metadata.insert("otel".into(), Value::Object(otel));
    doc.metadata = Some(metadata);
    doc.annotations = (!annotations.is_empty()).then_some(annotations);
    Ok(doc)
}
