//! `Entity`: a handle on an open segment or subsegment, shared freely across tasks.
//!
//! A trace's pieces are assembled by parent id when they end: a subsegment that ends takes its
//! finished children along and waits in the trace's list; the segment, when it ends, takes the
//! pieces whose parent it is and is handed to the emitter. Pieces that end after the segment
//! (or whose parent is still open then) are sent on their own, as X-Ray allows.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::Recorder;
use crate::model::{
    Cause, CauseDetails, Exception, HttpRequest, HttpResponse, SamplingDecision, Segment,
    SegmentId, Sql, TraceHeader, TraceId,
};

/// An annotation value: string, number or boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationValue {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AnnotationValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}
impl From<String> for AnnotationValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}
impl From<i64> for AnnotationValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for AnnotationValue {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u32> for AnnotationValue {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for AnnotationValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for AnnotationValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

impl From<AnnotationValue> for Value {
    fn from(v: AnnotationValue) -> Self {
        match v {
            AnnotationValue::String(s) => Value::String(s),
            AnnotationValue::Int(i) => Value::from(i),
            AnnotationValue::Float(f) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            AnnotationValue::Bool(b) => Value::Bool(b),
        }
    }
}

/// Why an annotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// The key is empty, too long, or has characters other than `[A-Za-z0-9_]`.
    #[error("annotation key {0:?} must be 1 to 500 characters of [A-Za-z0-9_]")]
    Key(String),
    /// The number is NaN or infinite.
    #[error("annotation {0:?}: number must be finite")]
    NotFinite(String),
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Pieces {
    segment_ended: bool,
    /// Documents in `finished` (with their embedded subsegments): at most the emitter's
    /// stream threshold before they are sent on their own, so an open trace's memory is
    /// bounded however many subsegments it ends.
    held: usize,
    /// Finished subsegments waiting for their parent. Boxed on purpose: they arrive boxed and
    /// leave boxed (to the emitter), so moving them costs a pointer, not a whole document.
    #[allow(clippy::vec_box)]
    finished: Vec<Box<Segment>>,
}

impl Pieces {
    fn new(segment_ended: bool) -> Mutex<Self> {
        Mutex::new(Self {
            segment_ended,
            held: 0,
            finished: Vec::new(),
        })
    }
}

struct TraceState {
    recorder: Recorder,
    trace_id: TraceId,
    sampled: bool,
    /// The caller sent `Sampled=?` and expects the decision back.
    decision_requested: bool,
    /// Unknown header keys, forwarded on outgoing calls.
    header_extra: Vec<(String, String)>,
    pieces: Mutex<Pieces>,
}

struct EntityInner {
    trace: Arc<TraceState>,
    id: SegmentId,
    parent_id: Option<SegmentId>,
    is_segment: bool,
    /// The document while open and sampled; `None` once ended or when not sampled.
    doc: Mutex<Option<Box<Segment>>>,
}

/// A handle on an open segment or subsegment. Clones share the entity; it ends on
/// [`Entity::end`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Entity {
    inner: Arc<EntityInner>,
}

impl std::fmt::Debug for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entity")
            .field("trace_id", &self.inner.trace.trace_id)
            .field("id", &self.inner.id)
            .field("sampled", &self.inner.trace.sampled)
            .finish()
    }
}

impl Entity {
    pub(crate) fn new_segment(
        recorder: Recorder,
        name: &str,
        trace_id: TraceId,
        parent_id: Option<SegmentId>,
        sampled: bool,
        decision_requested: bool,
        header_extra: Vec<(String, String)>,
    ) -> Self {
        let id = SegmentId::generate();
        let doc = sampled.then(|| {
            let mut doc = recorder.inner.emitter.spares().document();
            clean_name_into(name, &mut doc.name);
            doc.id = id;
            doc.trace_id = Some(trace_id);
            doc.parent_id = parent_id;
            doc.start_time = now();
            if recorder.inner.emitter.send_in_progress() {
                let mut begun = doc.clone();
                begun.in_progress = Some(true);
                recorder.inner.emitter.submit(begun);
            }
            doc
        });
        let trace = TraceState {
            recorder,
            trace_id,
            sampled,
            decision_requested,
            header_extra,
            pieces: Pieces::new(false),
        };
        Self::segment(trace, id, parent_id, doc)
    }

    /// The entity of a trace's segment in this process.
    fn segment(
        trace: TraceState,
        id: SegmentId,
        parent_id: Option<SegmentId>,
        doc: Option<Box<Segment>>,
    ) -> Self {
        Self {
            inner: Arc::new(EntityInner {
                trace: Arc::new(trace),
                id,
                parent_id,
                is_segment: true,
                doc: Mutex::new(doc),
            }),
        }
    }

    /// A segment made elsewhere (a Lambda-style runtime) that this process only adds
    /// subsegments to: never sent itself; its subsegments are sent on their own under
    /// `header`'s `Parent`. `header` must have a `Root`.
    pub(crate) fn facade(recorder: Recorder, header: TraceHeader, enabled: bool) -> Self {
        let sampled = enabled && header.sampled.as_bool().unwrap_or(false);
        let id = header.parent.unwrap_or_else(SegmentId::generate);
        let trace = TraceState {
            recorder,
            trace_id: header.root.unwrap_or_else(TraceId::generate),
            sampled,
            decision_requested: false,
            header_extra: header.extra,
            // Its segment is not this process's: every subsegment is sent on its own.
            pieces: Pieces::new(true),
        };
        Self::segment(trace, id, None, None)
    }

    /// Begins a subsegment of this entity.
    pub fn begin_subsegment(&self, name: &str) -> Entity {
        let id = SegmentId::generate();
        let doc = self.inner.trace.sampled.then(|| {
            let mut doc = self.inner.trace.recorder.inner.emitter.spares().document();
            clean_name_into(name, &mut doc.name);
            doc.id = id;
            doc.start_time = now();
            doc
        });
        Entity {
            inner: Arc::new(EntityInner {
                trace: Arc::clone(&self.inner.trace),
                id,
                parent_id: Some(self.inner.id),
                is_segment: false,
                doc: Mutex::new(doc),
            }),
        }
    }

    /// Begins a `remote` subsegment for an outgoing call and returns the header to send with it
    /// (`Parent` = the new subsegment, the same decision, unknown keys kept).
    pub fn begin_remote_call(&self, name: &str, method: &str, url: &str) -> (Entity, TraceHeader) {
        let call = self.begin_subsegment(name);
        call.with_document(|doc| {
            doc.namespace = Some("remote".into());
            let http = doc.http.get_or_insert_with(Default::default);
            http.request = Some(HttpRequest {
                method: Some(method.to_owned()),
                url: Some(url.to_owned()),
                ..HttpRequest::default()
            });
        });
        let header = call.outgoing_header();
        (call, header)
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.inner.trace.trace_id
    }

    /// This entity's id.
    pub fn id(&self) -> SegmentId {
        self.inner.id
    }

    /// Whether the trace is sampled (an unsampled entity records nothing but still propagates).
    pub fn is_sampled(&self) -> bool {
        self.inner.trace.sampled
    }

    /// The header for a call made from this entity: `Root`, `Parent` = this entity, `Sampled`.
    pub fn outgoing_header(&self) -> TraceHeader {
        TraceHeader {
            root: Some(self.inner.trace.trace_id),
            parent: Some(self.inner.id),
            sampled: SamplingDecision::from(self.inner.trace.sampled),
            extra: self.inner.trace.header_extra.clone(),
        }
    }

    /// The header to answer the caller with: `Root` and, when the caller asked (`Sampled=?`),
    /// the decision.
    pub fn response_header(&self) -> TraceHeader {
        TraceHeader {
            root: Some(self.inner.trace.trace_id),
            parent: None,
            sampled: if self.inner.trace.decision_requested {
                SamplingDecision::from(self.inner.trace.sampled)
            } else {
                SamplingDecision::Unknown
            },
            extra: Vec::new(),
        }
    }

    /// An empty map for annotations or metadata, from the emitter's spares when it has one.
    fn spare_map(&self) -> Map<String, Value> {
        self.inner.trace.recorder.inner.emitter.spares().map()
    }

    /// Edits the open document directly; does nothing when unsampled or ended.
    pub fn with_document(&self, edit: impl FnOnce(&mut Segment)) {
        if let Some(doc) = lock(&self.inner.doc).as_mut() {
            edit(doc);
        }
    }

    /// Adds an indexed annotation. Keys are `[A-Za-z0-9_]`, 1 to 500 characters.
    pub fn put_annotation(
        &self,
        key: &str,
        value: impl Into<AnnotationValue>,
    ) -> Result<(), AnnotationError> {
        if key.is_empty()
            || key.len() > 500
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(AnnotationError::Key(key.to_owned()));
        }
        let value: Value = value.into().into();
        if value.is_null() {
            return Err(AnnotationError::NotFinite(key.to_owned()));
        }
        self.with_document(|doc| {
            doc.annotations
                .get_or_insert_with(|| self.spare_map())
                .insert(key.to_owned(), value);
        });
        Ok(())
    }

    /// Adds metadata under the `default` namespace.
    pub fn put_metadata(&self, key: &str, value: Value) {
        self.put_metadata_in("default", key, value);
    }

    /// Adds metadata under `namespace` (`AWS.` is reserved and refused silently by X-Ray; avoid).
    pub fn put_metadata_in(&self, namespace: &str, key: &str, value: Value) {
        self.with_document(|doc| {
            let namespaces = doc.metadata.get_or_insert_with(|| self.spare_map());
            let entry = namespaces
                .entry(namespace.to_owned())
                .or_insert_with(|| Value::Object(self.spare_map()));
            if let Value::Object(map) = entry {
                map.insert(key.to_owned(), value);
            }
        });
    }

    /// Sets the end user.
    pub fn set_user(&self, user: &str) {
        self.with_document(|doc| doc.user = Some(user.to_owned()));
    }

    /// Records the incoming (or outgoing) HTTP request.
    pub fn set_http_request(&self, request: HttpRequest) {
        self.with_document(|doc| {
            doc.http.get_or_insert_with(Default::default).request = Some(request);
        });
    }

    /// Records the HTTP response and sets error (4xx), throttle (429) or fault (5xx).
    pub fn set_http_response(&self, status: u16, content_length: Option<u64>) {
        self.with_document(|doc| {
            doc.http.get_or_insert_with(Default::default).response = Some(HttpResponse {
                status: Some(status),
                content_length,
                ..HttpResponse::default()
            });
            doc.apply_status_flags(status);
        });
    }

    /// Records a SQL call: the query is sanitized (literals become `?`) before it is stored.
    pub fn set_sql(&self, database_type: &str, url: &str, query: &str) {
        if !self.is_sampled() {
            return;
        }
        let sql = Sql {
            database_type: Some(database_type.to_owned()),
            url: Some(url.to_owned()),
            sanitized_query: Some(super::sanitize_sql_as(
                query,
                super::SqlDialect::from_database_type(database_type),
            )),
            ..Sql::default()
        };
        self.with_document(|doc| {
            doc.namespace = Some("remote".into());
            doc.sql = Some(sql);
        });
    }

    /// Records an error and its chain of sources as `cause`, and sets `fault`. When backtraces
    /// are on (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE`), the call's stack is recorded as the
    /// error's stack frames.
    pub fn add_error(&self, error: &(dyn std::error::Error + 'static)) {
        if self.is_sampled() {
            self.add_error_with_backtrace(error, &std::backtrace::Backtrace::capture());
        }
    }

    /// [`Entity::add_error`] with the stack frames of `backtrace` (e.g. the one an
    /// `anyhow::Error` captured where it was made) on the outermost error, at most
    /// [`super::stack::MAX_FRAMES`], the rest counted as `truncated`.
    pub fn add_error_with_backtrace(
        &self,
        error: &(dyn std::error::Error + 'static),
        backtrace: &std::backtrace::Backtrace,
    ) {
        if !self.is_sampled() {
            return;
        }
        let mut exceptions = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
        let mut previous_id: Option<usize> = None;
        while let Some(e) = current {
            let id = SegmentId::generate().to_string();
            if let Some(prev) = previous_id {
                let prev: &mut Exception = &mut exceptions[prev];
                prev.cause = Some(id.clone());
            }
            exceptions.push(Exception {
                id: Some(id),
                message: Some(e.to_string()),
                kind: Some(short_type_name(e)),
                ..Exception::default()
            });
            previous_id = Some(exceptions.len() - 1);
            current = e.source();
        }
        let (frames, truncated) = super::stack::frames(backtrace);
        if let Some(outermost) = exceptions.first_mut()
            && !frames.is_empty()
        {
            outermost.stack = Some(frames);
            outermost.truncated = (truncated > 0).then_some(truncated);
        }
        self.with_document(|doc| {
            doc.fault = Some(true);
            let details = match doc.cause.take() {
                Some(Cause::Details(mut d)) => {
                    d.exceptions.get_or_insert_with(Vec::new).extend(exceptions);
                    d
                }
                _ => CauseDetails {
                    working_directory: std::env::current_dir()
                        .ok()
                        .map(|p| p.display().to_string()),
                    exceptions: Some(exceptions),
                    ..CauseDetails::default()
                },
            };
            doc.cause = Some(Cause::Details(details));
        });
    }

    /// Finished subsegments of this trace held in memory, waiting for their parent (never more
    /// than the emitter's stream threshold: past it they are sent on their own).
    pub fn held_documents(&self) -> usize {
        lock(&self.inner.trace.pieces).held
    }

    /// Ends the entity now. Ending twice, or ending an unsampled entity, does nothing.
    pub fn end(&self) {
        self.inner.finish();
    }
}

/// `Debug` of an error is the closest thing to a type name for `dyn Error`; keep its first word.
fn short_type_name(e: &dyn std::error::Error) -> String {
    let debug = format!("{e:?}");
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(debug.len());
    let name = &debug[..end];
    if name.is_empty() { "Error" } else { name }.to_owned()
}

/// The ASCII bytes allowed in names: alphanumerics, whitespace and `_.:/%&#=+\-@`.
const ASCII_NAME: [bool; 256] = super::byte_set(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/%&#=+\\-@\t\n\r\x0b\x0c",
);

/// Writes `name` into `out` (emptied first; its buffer is reused) with the characters X-Ray
/// refuses in names replaced by `_`, truncated to 200 characters, so an entity never fails
/// validation because of its name.
fn clean_name_into(name: &str, out: &mut String) {
    out.clear();
    // Fast path for the usual ASCII names: a table lookup per byte, no char decoding.
    if !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| ASCII_NAME[usize::from(b)]) {
        out.push_str(name);
        return;
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c);
    out.extend(
        name.chars()
            .take(200)
            .map(|c| if allowed(c) { c } else { '_' }),
    );
    if out.is_empty() {
        out.push_str("unnamed");
    }
}

impl EntityInner {
    fn finish(&self) {
        let Some(mut doc) = lock(&self.doc).take() else {
            return;
        };
        doc.end_time = Some(now().max(doc.start_time));
        doc.in_progress = None;
        let recorder = &self.trace.recorder;
        let mut pieces = lock(&self.trace.pieces);
        // Take the finished children of this entity along.
        // Children move out of their boxes, which go back to the spares for the next entity.
        let spares = recorder.inner.emitter.spares();
        let mut children: Option<Vec<Segment>> = None;
        let mut taken = 0;
        // In the order they ended (usually their start order, so the sort below moves nothing).
        for mut boxed in pieces
            .finished
            .extract_if(.., |piece| piece.parent_id == Some(self.id))
        {
            boxed.parent_id = None;
            taken += 1 + boxed.subsegment_count();
            children
                .get_or_insert_with(|| spares.list())
                .push(std::mem::take(&mut *boxed));
            spares.give_empty(boxed);
        }
        pieces.held = pieces.held.saturating_sub(taken);
        if let Some(mut children) = children {
            children.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
            match &mut doc.subsegments {
                Some(existing) => existing.extend(children),
                None => doc.subsegments = Some(children),
            }
        }
        if self.is_segment {
            pieces.segment_ended = true;
            pieces.held = 0;
            // What is left has a parent that is still open: it is sent on its own.
            let orphans = std::mem::take(&mut pieces.finished);
            drop(pieces);
            recorder.inner.emitter.submit(doc);
            for mut orphan in orphans {
                self.mark_standalone(&mut orphan);
                recorder.inner.emitter.submit(orphan);
            }
        } else if pieces.segment_ended {
            drop(pieces);
            doc.parent_id = self.parent_id;
            self.mark_standalone(&mut doc);
            recorder.inner.emitter.submit(doc);
        } else {
            doc.parent_id = self.parent_id;
            pieces.held += 1 + doc.subsegment_count();
            pieces.finished.push(doc);
            if pieces.held > recorder.inner.emitter.stream_threshold() {
                // Streaming: the finished pieces go now, each under its parent's id.
                pieces.held = 0;
                let streamed = std::mem::take(&mut pieces.finished);
                drop(pieces);
                for mut piece in streamed {
                    self.mark_standalone(&mut piece);
                    recorder.inner.emitter.submit(piece);
                }
            }
        }
    }

    /// Marks a subsegment to be sent on its own.
    fn mark_standalone(&self, doc: &mut Segment) {
        doc.trace_id = Some(self.trace.trace_id);
        doc.kind = Some("subsegment".into());
    }
}

impl Drop for EntityInner {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_name_table_matches_the_character_rule() {
        for b in 0u8..=255 {
            let c = char::from(b);
            let rule = b.is_ascii()
                && (c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c));
            assert_eq!(ASCII_NAME[usize::from(b)], rule, "byte {b:#04x}");
        }
    }

    #[test]
    fn names_are_kept_or_cleaned() {
        let clean_name = |name: &str| {
            let mut out = String::from("left over");
            clean_name_into(name, &mut out);
            out
        };
        assert_eq!(clean_name("orders@db.example.com"), "orders@db.example.com");
        assert_eq!(clean_name("café"), "café");
        assert_eq!(clean_name("a<b>"), "a_b_");
        assert_eq!(clean_name(""), "unnamed");
        assert_eq!(clean_name(&"x".repeat(300)).len(), 200);
    }
}
