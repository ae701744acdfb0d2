//! Batches of documents ready to send: each is already the body of a `PutTraceSegments` request
//! (`{"TraceSegmentDocuments":["<escaped json>",...]}`), built as documents arrive so that
//! sending, spooling and replaying never re-encode.
//!
//! A batch closes when it holds `batch_size` documents, when the next document would take it
//! past [`MAX_BATCH_BYTES`], or when its oldest document has waited `flush_interval`.

use std::time::{Duration, Instant};

use roentgen_sdk::model::SegmentId;

/// Upper bound on one request body, kept under common collector body limits (2 MiB).
pub const MAX_BATCH_BYTES: usize = 1536 * 1024;

const PREFIX: &[u8] = b"{\"TraceSegmentDocuments\":[";
const SUFFIX: &[u8] = b"]}";

/// One document inside a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DocEntry {
    /// The document's `id` (matches `UnprocessedTraceSegments[].Id`).
    pub id: SegmentId,
    /// Byte range of the escaped string literal in the body.
    pub start: usize,
    /// End of that range.
    pub end: usize,
    /// When the datagram was received.
    pub received_at: Instant,
}

/// A closed or filling batch: the request body and where each document sits in it.
#[derive(Debug)]
pub struct Batch {
    body: Vec<u8>,
    docs: Vec<DocEntry>,
    /// Bytes charged to the memory budget for this batch.
    pub charged: usize,
    /// The spool sequence number, when the batch came from the spool.
    pub spool_seq: Option<u64>,
}

impl Batch {
    /// An empty batch with room for about `capacity` bytes of documents.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut body = Vec::with_capacity(capacity + PREFIX.len() + SUFFIX.len());
        body.extend_from_slice(PREFIX);
        Self {
            body,
            docs: Vec::new(),
            charged: 0,
            spool_seq: None,
        }
    }

    /// Appends one document (valid UTF-8 JSON text) and returns how many bytes the body grew
    /// (which is also added to [`Batch::charged`]).
    pub fn push(&mut self, id: SegmentId, document: &str, received_at: Instant) -> usize {
        let before = self.body.len();
        if !self.docs.is_empty() {
            self.body.push(b',');
        }
        let start = self.body.len();
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.body, document);
        self.docs.push(DocEntry {
            id,
            start,
            end: self.body.len(),
            received_at,
        });
        let grown = self.body.len() - before;
        self.charged += grown;
        grown
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether the batch holds no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Size of the body so far.
    pub fn body_len(&self) -> usize {
        self.body.len() + SUFFIX.len()
    }

    /// The documents.
    pub fn docs(&self) -> &[DocEntry] {
        &self.docs
    }

    /// When the oldest document was received.
    pub fn oldest(&self) -> Option<Instant> {
        self.docs.iter().map(|d| d.received_at).min()
    }

    /// The complete request body.
    pub fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.body.len() + SUFFIX.len());
        body.extend_from_slice(&self.body);
        body.extend_from_slice(SUFFIX);
        body
    }

    /// The escaped JSON string literal of document `index`.
    pub fn literal(&self, index: usize) -> &[u8] {
        let d = &self.docs[index];
        &self.body[d.start..d.end]
    }

    /// A new batch holding only the documents whose index `keep` accepts.
    pub fn subset(&self, mut keep: impl FnMut(usize, &DocEntry) -> bool) -> Batch {
        let mut out = Batch::with_capacity(0);
        for (i, d) in self.docs.iter().enumerate() {
            if keep(i, d) {
                if !out.docs.is_empty() {
                    out.body.push(b',');
                }
                let start = out.body.len();
                out.body.extend_from_slice(self.literal(i));
                out.docs.push(DocEntry {
                    start,
                    end: out.body.len(),
                    ..*d
                });
            }
        }
        out
    }

    /// Rebuilds a batch from a request body (as written to the spool). Documents whose `id`
    /// cannot be read get id 0 (they are still sent).
    pub fn from_body(body: &[u8], received_at: Instant) -> Result<Batch, serde_json::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Body {
            trace_segment_documents: Vec<String>,
        }
        #[derive(serde::Deserialize)]
        struct Id<'a> {
            #[serde(borrow)]
            id: Option<&'a str>,
        }
        let parsed: Body = serde_json::from_slice(body)?;
        let mut batch = Batch::with_capacity(body.len());
        for doc in &parsed.trace_segment_documents {
            let id = serde_json::from_str::<Id<'_>>(doc)
                .ok()
                .and_then(|i| i.id.and_then(|s| s.parse().ok()))
                .unwrap_or(SegmentId::from_u64(0));
            batch.push(id, doc, received_at);
        }
        Ok(batch)
    }
}

/// Accumulates documents into batches by count, size and age.
#[derive(Debug)]
pub struct Batcher {
    batch_size: usize,
    flush_interval: Duration,
    current: Option<Batch>,
    opened_at: Option<Instant>,
}

impl Batcher {
    /// A batcher closing batches at `batch_size` documents or after `flush_interval`.
    pub fn new(batch_size: usize, flush_interval: Duration) -> Self {
        Self {
            batch_size,
            flush_interval,
            current: None,
            opened_at: None,
        }
    }

    /// Adds a document and returns how many bytes it added; hands `closed` the batches that
    /// closed (the previous one if this document did not fit, the current one if now full).
    pub fn push(
        &mut self,
        id: SegmentId,
        document: &str,
        received_at: Instant,
        mut closed: impl FnMut(Batch),
    ) -> usize {
        let expected = document.len() + document.len() / 8 + 4;
        if let Some(current) = &self.current
            && current.body_len() + expected > MAX_BATCH_BYTES
            && !current.is_empty()
            && let Some(full) = self.take()
        {
            closed(full);
        }
        let batch_size = self.batch_size;
        let current = self.current.get_or_insert_with(|| {
            Batch::with_capacity((expected * batch_size).min(MAX_BATCH_BYTES))
        });
        if self.opened_at.is_none() {
            self.opened_at = Some(Instant::now());
        }
        let grown = current.push(id, document, received_at);
        if current.len() >= self.batch_size
            && let Some(full) = self.take()
        {
            closed(full);
        }
        grown
    }

    /// Closes the current batch if it has waited `flush_interval`.
    pub fn poll(&mut self, now: Instant) -> Option<Batch> {
        match self.opened_at {
            Some(opened) if now.duration_since(opened) >= self.flush_interval => self.take(),
            _ => None,
        }
    }

    /// How long until the current batch is due, if there is one.
    pub fn time_to_flush(&self, now: Instant) -> Option<Duration> {
        self.opened_at.map(|opened| {
            self.flush_interval
                .saturating_sub(now.duration_since(opened))
        })
    }

    /// Closes the current batch, if it holds anything.
    pub fn take(&mut self) -> Option<Batch> {
        self.opened_at = None;
        self.current.take().filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> SegmentId {
        SegmentId::from_u64(n)
    }

    #[test]
    fn body_is_a_put_trace_segments_request() {
        let now = Instant::now();
        let mut b = Batch::with_capacity(64);
        b.push(id(1), "{\"a\":\"x\\\"y\"}", now);
        b.push(id(2), "{\"b\":2}", now);
        let v: serde_json::Value = serde_json::from_slice(&b.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"TraceSegmentDocuments": ["{\"a\":\"x\\\"y\"}", "{\"b\":2}"]})
        );
        let back = Batch::from_body(&b.body(), now).unwrap();
        assert_eq!(back.body(), b.body());
        let only_second = b.subset(|i, _| i == 1);
        let v: serde_json::Value = serde_json::from_slice(&only_second.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"TraceSegmentDocuments": ["{\"b\":2}"]})
        );
        assert_eq!(only_second.docs()[0].id, id(2));
        let empty = Batch::with_capacity(0);
        let v: serde_json::Value = serde_json::from_slice(&empty.body()).unwrap();
        assert_eq!(v, serde_json::json!({"TraceSegmentDocuments": []}));
    }

    #[test]
    fn closes_by_count_and_age() {
        let now = Instant::now();
        let mut batcher = Batcher::new(2, Duration::from_millis(50));
        let mut closed = Vec::new();
        batcher.push(id(1), "{}", now, |b| closed.push(b));
        assert!(closed.is_empty());
        batcher.push(id(2), "{}", now, |b| closed.push(b));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].len(), 2);
        assert_eq!(closed[0].charged, closed[0].body_len() - 28);
        batcher.push(id(3), "{}", now, |b| closed.push(b));
        assert!(batcher.poll(Instant::now()).is_none());
        let later = Instant::now() + Duration::from_millis(60);
        assert_eq!(batcher.poll(later).map(|b| b.len()), Some(1));
        assert!(batcher.take().is_none());
    }

    #[test]
    fn closes_by_size() {
        let now = Instant::now();
        let mut batcher = Batcher::new(500, Duration::from_secs(1));
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(60_000));
        let mut closed = Vec::new();
        for i in 0..40 {
            batcher.push(id(i), &big, now, |b| closed.push(b));
        }
        assert!(!closed.is_empty());
        assert!(closed.iter().all(|b| b.body_len() <= MAX_BATCH_BYTES));
    }
}
