//! `PutTraceSegments`, `GetTraceSummaries` and `BatchGetTraces`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use roentgen_sdk::model::{MAX_DOCUMENT_BYTES, Segment};
use roentgen_sdk::scrub::Scrubber;
use serde::Deserialize;
use serde_json::{Value, json};

use super::scope::GroupScope;
use super::{ApiError, AppState, check_window, parse_body, scoped_filter};
use crate::assembly::{AnnotationValue, DocFacts, NodeKey, RootCause, TraceSummary};
use crate::query;
use crate::store::IngestDocument;

/// A document that passed validation, or why it did not.
pub type PreparedDocument = Result<IngestDocument, Value>;

pub(crate) fn unprocessed(id: Option<String>, code: &str, message: String) -> Value {
    let mut v = json!({ "ErrorCode": code, "Message": message });
    if let Some(id) = id {
        v["Id"] = Value::String(id);
    }
    v
}

/// Validates one `PutTraceSegments` document alone (and scrubs it when a scrubber is given);
/// a refusal is the `UnprocessedTraceSegment` to answer with.
pub fn prepare_document(raw: &str, scrubber: Option<&Scrubber>) -> PreparedDocument {
    let loose_id = || {
        serde_json::from_str::<Value>(raw)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
    };
    if raw.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large(loose_id(), raw.len()));
    }
    let segment: Segment = serde_json::from_str(raw).map_err(|e| {
        unprocessed(
            loose_id(),
            "InvalidSegment",
            format!("not a segment document: {e}"),
        )
    })?;
    prepare_segment(segment, Some(raw), scrubber)
}

fn too_large(id: Option<String>, bytes: usize) -> Value {
    unprocessed(
        id,
        "DocumentTooLarge",
        format!("document of {bytes} bytes exceeds {MAX_DOCUMENT_BYTES}"),
    )
}

/// Validates a typed document (scrubbing it when a scrubber is given): one that came as text
/// (`raw`) is kept byte for byte unless the scrubber rewrote something; one made here (an OTLP
/// span's) is written once, here, and held to the same size bound.
pub fn prepare_segment(
    mut segment: Segment,
    raw: Option<&str>,
    scrubber: Option<&Scrubber>,
) -> PreparedDocument {
    validate(&segment)?;
    let changed = scrub(&mut segment, scrubber);
    finish(&segment, raw, changed)
}

/// [`Segment::validate_for_ingest`], refused as `InvalidSegment`.
pub(crate) fn validate(segment: &Segment) -> Result<(), Value> {
    segment
        .validate_for_ingest()
        .map_err(|e| refusal(segment, "InvalidSegment", e.to_string()))
}

/// Scrubs `segment` when a scrubber is given; whether anything was rewritten.
pub(crate) fn scrub(segment: &mut Segment, scrubber: Option<&Scrubber>) -> bool {
    scrubber.is_some_and(|s| s.scrub_segment(segment).total() > 0)
}

fn refusal(segment: &Segment, code: &str, message: String) -> Value {
    unprocessed(Some(segment.id.to_string()), code, message)
}

/// A validated (and scrubbed) document as the store takes it: its text is `raw` when it came
/// as text and was not `changed`, else written here; one written here is held to the size
/// bound.
pub(crate) fn finish(segment: &Segment, raw: Option<&str>, changed: bool) -> PreparedDocument {
    let document = match raw {
        Some(raw) if !changed => raw.to_owned(),
        _ => serde_json::to_string(segment)
            .map_err(|e| refusal(segment, "InternalFailure", e.to_string()))?,
    };
    if raw.is_none() && document.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large(Some(segment.id.to_string()), document.len()));
    }
    let Some(trace_id) = segment.trace_id else {
        return Err(refusal(
            segment,
            "InvalidSegment",
            "trace_id: is required".to_owned(),
        ));
    };
    Ok(IngestDocument {
        trace_id: trace_id.to_string(),
        id: segment.id.to_string(),
        parent_id: segment.parent_id.map(|p| p.to_string()),
        start_time: segment.start_time,
        in_progress: segment.in_progress == Some(true),
        subsegment: segment.is_subsegment(),
        document,
        facts: std::sync::Arc::new(DocFacts::extract(segment)),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutTraceSegmentsRequest {
    trace_segment_documents: Vec<String>,
}

/// Parses a `PutTraceSegments` body and prepares each document: the ones to store, and the
/// `UnprocessedTraceSegments` entries of those refused.
fn prepare_request(
    body: &[u8],
    scrubber: Option<Scrubber>,
) -> Result<(Vec<IngestDocument>, Vec<Value>), ApiError> {
    let req: PutTraceSegmentsRequest = parse_body(body)?;
    let mut docs = Vec::with_capacity(req.trace_segment_documents.len());
    let mut refused = Vec::new();
    let scrubber = scrubber.as_ref().map(Scrubber::lend);
    for raw in &req.trace_segment_documents {
        match prepare_document(raw, scrubber.as_deref()) {
            Ok(d) => docs.push(d),
            Err(u) => refused.push(u),
        }
    }
    Ok((docs, refused))
}

/// `POST /TraceSegments`.
pub async fn put_trace_segments(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state
        .counters
        .ingest_bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    // Parsing, validation, scrubbing and fact extraction are CPU work: off the runtime's
    // workers, so health checks and queries are served while a large batch is prepared.
    let scrubber = state.scrubber.clone();
    let (docs, refused) = tokio::task::spawn_blocking(move || prepare_request(&body, scrubber))
        .await
        .map_err(|e| ApiError::Internal(format!("document preparation stopped: {e}")))??;
    let refused = store_prepared(&state, docs, refused).await?;
    Ok(Json(json!({ "UnprocessedTraceSegments": refused })))
}

/// Stores prepared documents and counts them with those already `refused`; returns every
/// refusal (the ones over a trace's cap added), each an `UnprocessedTraceSegment`.
pub(crate) async fn store_prepared(
    state: &AppState,
    docs: Vec<IngestDocument>,
    mut refused: Vec<Value>,
) -> Result<Vec<Value>, ApiError> {
    let mut accepted = docs.len() as u64;
    if !docs.is_empty() {
        let _writing = state.counters.store_write(docs.len());
        let written = state.store.put_documents(docs).await?;
        accepted -= written.over_trace_cap.len() as u64;
        refused.extend(written.over_trace_cap.into_iter().map(|(trace_id, id)| {
            unprocessed(
                Some(id),
                "TraceTooLarge",
                format!("trace {trace_id} is at its cap (--max-trace-documents, --max-trace-mib)"),
            )
        }));
    }
    state
        .counters
        .documents_accepted
        .fetch_add(accepted, Ordering::Relaxed);
    if !refused.is_empty() {
        state.counters.refuse_documents(&refused);
        tracing::warn!(refused = refused.len(), accepted, "documents refused");
    }
    Ok(refused)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetTraceSummariesRequest {
    start_time: f64,
    end_time: f64,
    #[serde(default)]
    filter_expression: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    time_range_type: Option<String>,
    #[serde(default)]
    sampling: Option<bool>,
    #[serde(default)]
    sampling_strategy: Option<SamplingStrategy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SamplingStrategy {
    name: Option<String>,
    value: Option<f64>,
}

/// Fraction of matching traces `Sampling: true` returns when no strategy says otherwise.
const DEFAULT_SAMPLING_RATE: f64 = 0.1;

/// What a request's sampling asks for: the fraction of the window to scan (`PartialScan`, the
/// newest part of it) and the fraction of matches to keep (`FixedRate`).
fn sampling_of(req: &GetTraceSummariesRequest) -> Result<(f64, Option<f64>), ApiError> {
    let strategy = req.sampling_strategy.as_ref();
    if req.sampling != Some(true) && strategy.is_none() {
        return Ok((1.0, None));
    }
    let name = strategy
        .and_then(|s| s.name.as_deref())
        .unwrap_or("FixedRate");
    let value = strategy
        .and_then(|s| s.value)
        .unwrap_or(DEFAULT_SAMPLING_RATE);
    if !(value > 0.0 && value <= 1.0) {
        return Err(ApiError::InvalidRequest(format!(
            "SamplingStrategy Value must be in (0, 1], got {value}"
        )));
    }
    match name {
        "PartialScan" => Ok((value, None)),
        "FixedRate" => Ok((1.0, Some(value))),
        other => Err(ApiError::InvalidRequest(format!(
            "SamplingStrategy Name must be PartialScan or FixedRate, got {other:?}"
        ))),
    }
}

fn service_id(k: &NodeKey) -> Value {
    let mut v = json!({ "Name": k.name, "Names": [k.name] });
    if !k.kind.is_empty() {
        v["Type"] = Value::String(k.kind.clone());
    }
    v
}

fn annotation_value(v: &AnnotationValue) -> Value {
    match v {
        AnnotationValue::Bool(b) => json!({ "BooleanValue": b }),
        AnnotationValue::Number(n) => json!({ "NumberValue": n }),
        AnnotationValue::String(s) => json!({ "StringValue": s }),
    }
}

/// The X-Ray shape of root causes (`FaultRootCauses` and the like).
fn root_causes_json(causes: &[RootCause]) -> Value {
    causes
        .iter()
        .map(|c| {
            let services: Vec<Value> = c
                .services
                .iter()
                .map(|s| {
                    let mut v = service_id(&s.key);
                    v["Inferred"] = json!(s.inferred);
                    v["EntityPath"] = s
                        .entity_path
                        .iter()
                        .map(|e| {
                            let mut entity = json!({ "Name": e.name, "Remote": e.remote });
                            match e.coverage {
                                Some(c) => entity["Coverage"] = json!(c),
                                None => {
                                    entity["Exceptions"] = e
                                        .exceptions
                                        .iter()
                                        .map(|x| json!({ "Name": x.name, "Message": x.message }))
                                        .collect();
                                }
                            }
                            entity
                        })
                        .collect();
                    v
                })
                .collect();
            json!({ "Services": services, "ClientImpacting": c.client_impacting })
        })
        .collect()
}

/// The X-Ray `TraceSummary` shape of a stored summary.
pub fn summary_json(s: &TraceSummary) -> Value {
    let mut annotations = serde_json::Map::new();
    for a in &s.annotations {
        let entry = annotations
            .entry(a.key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(json!({
                "AnnotationValue": annotation_value(&a.value),
                "ServiceIds": a.services.iter().map(service_id).collect::<Vec<_>>(),
            }));
        }
    }
    let mut v = json!({
        "Id": s.id,
        "StartTime": s.start_time,
        "HasFault": s.has_fault,
        "HasError": s.has_error,
        "HasThrottle": s.has_throttle,
        "IsPartial": s.is_partial,
        "Annotations": annotations,
        "Users": s.users.iter().map(|(u, svcs)| json!({
            "UserName": u,
            "ServiceIds": svcs.iter().map(service_id).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "ServiceIds": s.services.iter().map(|x| {
            let mut id = service_id(&x.key);
            if let Some(account) = &x.account_id {
                id["AccountId"] = Value::String(account.clone());
            }
            id
        }).collect::<Vec<_>>(),
        "ResourceARNs": s.resources.resource_arns.iter().map(|a| json!({ "ARN": a })).collect::<Vec<_>>(),
        "InstanceIds": s.resources.instance_ids.iter().map(|a| json!({ "Id": a })).collect::<Vec<_>>(),
        "AvailabilityZones": s.resources.availability_zones.iter().map(|a| json!({ "Name": a })).collect::<Vec<_>>(),
        "Revision": s.document_count,
        "FaultRootCauses": root_causes_json(&s.fault_root_causes),
        "ErrorRootCauses": root_causes_json(&s.error_root_causes),
        "ResponseTimeRootCauses": root_causes_json(&s.response_time_root_causes),
    });
    if let Some(d) = s.duration {
        v["Duration"] = json!(d);
    }
    if let Some(r) = s.response_time {
        v["ResponseTime"] = json!(r);
    }
    if let Some(e) = &s.entry_point {
        v["EntryPoint"] = service_id(e);
    }
    if let Some(h) = &s.http {
        let mut http = serde_json::Map::new();
        let mut put = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                http.insert(k.to_owned(), val);
            }
        };
        put("HttpURL", h.url.clone().map(Value::String));
        put("HttpStatus", h.status.map(|s| json!(s)));
        put("HttpMethod", h.method.clone().map(Value::String));
        put("UserAgent", h.user_agent.clone().map(Value::String));
        put("ClientIp", h.client_ip.clone().map(Value::String));
        v["Http"] = Value::Object(http);
    }
    v
}

/// `POST /TraceSummaries`.
pub async fn get_trace_summaries(
    State(state): State<AppState>,
    Extension(scope): Extension<GroupScope>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: GetTraceSummariesRequest = parse_body(&body)?;
    check_window(req.start_time, req.end_time)?;
    let filter = scoped_filter(&state, &scope, req.filter_expression.as_deref()).await?;
    let time_range = match req.time_range_type.as_deref() {
        None => query::TimeRangeType::TraceId,
        Some(name) => query::TimeRangeType::parse(name).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "TimeRangeType must be TraceId, Event or Service, got {name:?}"
            ))
        })?,
    };
    let (scanned_fraction, sample_rate) = sampling_of(&req)?;
    let q = query::SummaryQuery {
        start: req.end_time - (req.end_time - req.start_time) * scanned_fraction,
        end: req.end_time,
        time_range,
        filter: filter.as_ref(),
        sample_rate,
        next_token: req.next_token.as_deref(),
    };
    let page = query::search(state.store.as_ref(), &q)
        .await
        .map_err(|e| match e {
            query::QueryError::BadToken => ApiError::InvalidRequest("invalid NextToken".to_owned()),
            query::QueryError::Store(s) => s.into(),
        })?;
    let mut out = json!({
        "TraceSummaries": page.summaries.iter().map(|s| {
            let mut v = summary_json(s);
            if time_range != query::TimeRangeType::TraceId {
                v["MatchedEventTime"] = json!(time_range.time_of(s));
            }
            v
        }).collect::<Vec<_>>(),
        "ApproximateTime": crate::store::now_seconds().floor(),
        "TracesProcessedCount": page.scanned,
    });
    if let Some(t) = page.next_token {
        out["NextToken"] = Value::String(t);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetTracesRequest {
    trace_ids: Vec<String>,
}

/// Most trace ids per `BatchGetTraces` / `GetTraceGraph`.
pub(crate) const MAX_TRACE_IDS: usize = 100;

/// `POST /Traces`.
pub async fn batch_get_traces(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: BatchGetTracesRequest = parse_body(&body)?;
    if req.trace_ids.len() > MAX_TRACE_IDS {
        return Err(ApiError::InvalidRequest(format!(
            "at most {MAX_TRACE_IDS} TraceIds per request"
        )));
    }
    let found = query::trace_segments(state.store.as_ref(), req.trace_ids.clone()).await?;
    let unprocessed: Vec<&String> = req
        .trace_ids
        .iter()
        .filter(|id| !found.iter().any(|(f, _, _)| f == *id))
        .collect();
    let traces: Vec<Value> = found
        .into_iter()
        .map(|(id, duration, segments)| {
            json!({
                "Id": id,
                "Duration": duration,
                "LimitExceeded": false,
                "Segments": segments.into_iter().map(|(sid, doc)| json!({ "Id": sid, "Document": doc })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "Traces": traces,
        "UnprocessedTraceIds": unprocessed,
    })))
}
