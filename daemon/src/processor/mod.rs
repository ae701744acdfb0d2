//! The processing workers: framing and validation of each datagram on its own, server-side PII
//! scrubbing, and batching. One bad datagram is counted, logged (rate-limited) and skipped;
//! its neighbours are untouched.
//!
//! Validation uses the model's [`DocumentHead`], which reads only the required fields. The
//! scrubber works on the document's text ([`Scrubber::scrub_json_text`]): one pass over its
//! tokens, splicing in only the rewritten strings, so no `serde_json::Value` is built and
//! everything the scrubber leaves alone goes on byte for byte as it came. Documents that pass
//! cannot take (malformed JSON, a `drop` action) are parsed into a `Value` and scrubbed there,
//! which decides their fate exactly as before. Scrub counts are added to the shared counters
//! once per packet batch.
//!
//! A panic while handling one datagram (a bug, e.g. in a detector) is caught around that
//! datagram: it is dropped (never forwarded unscrubbed), counted as `dropped{reason=
//! "worker_panic"}` and `worker_panics_total`, its memory charge released, and the worker goes
//! on with the next datagram. A panic anywhere else in the worker's loop is caught too and the
//! loop starts again with its batcher intact.

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use roentgen_sdk::model::{
    DocumentHead, SegmentId, ValidationError, ValidationErrorKind, WireError, split_datagram,
};
use roentgen_sdk::scrub::{ScrubReport, Scrubber, log_safe};
use tokio::sync::mpsc::UnboundedSender;

use crate::batcher::{Batch, Batcher};
use crate::listener::{PacketBatch, PacketPool};
use crate::memory::MemoryBudget;
use crate::telemetry::{Counters, DropReason, RateLimit, RejectReason};

static PANIC_LOG: LazyLock<RateLimit> = LazyLock::new(|| RateLimit::new(Duration::from_secs(10)));

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Counts and logs a panic caught in a worker. The message may quote the document (a `str`
/// slicing panic does), so it is scrubbed before it is logged.
fn note_panic(counters: &Counters, payload: &(dyn std::any::Any + Send), what: &str) {
    counters.worker_panics.fetch_add(1, Ordering::Relaxed);
    if let Some(suppressed) = PANIC_LOG.check() {
        tracing::error!(
            message = %log_safe(&panic_message(payload)),
            suppressed_since_last = suppressed,
            "a processing worker panicked ({what}); it goes on"
        );
    }
}

static REJECT_LOGS: LazyLock<Vec<RateLimit>> = LazyLock::new(|| {
    RejectReason::ALL
        .iter()
        .map(|_| RateLimit::new(Duration::from_secs(10)))
        .collect()
});

/// Logs a rejected datagram, at most once per 10 s per reason, with its detail scrubbed (a
/// parse error may quote the document).
pub fn log_reject(reason: RejectReason, detail: &dyn Display) {
    let index = RejectReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0);
    if let Some(suppressed) = REJECT_LOGS.get(index).and_then(RateLimit::check) {
        tracing::warn!(
            reason = reason.as_str(),
            detail = %log_safe(detail),
            suppressed_since_last = suppressed,
            "rejected datagram"
        );
    }
}

fn reason_for(error: &ValidationError) -> RejectReason {
    match error.kind {
        ValidationErrorKind::Missing => RejectReason::MissingField,
        ValidationErrorKind::Id(_) => RejectReason::BadId,
        ValidationErrorKind::Time(_)
        | ValidationErrorKind::EndBeforeStart { .. }
        | ValidationErrorKind::NotEnded => RejectReason::BadTime,
        ValidationErrorKind::NameLength(_) | ValidationErrorKind::NameCharacter { .. } => {
            RejectReason::BadName
        }
        _ => RejectReason::NotJson,
    }
}

/// A datagram that passed framing and validation.
#[derive(Debug)]
pub struct Accepted<'a> {
    /// The document text (header stripped, surrounding whitespace trimmed).
    pub document: &'a str,
    /// Its `id`.
    pub id: SegmentId,
}

/// Frames one datagram: header, size and UTF-8; returns the document text.
fn frame(datagram: &[u8], max_document_bytes: usize) -> Result<&str, RejectReason> {
    let document = split_datagram(datagram).map_err(|e| {
        let reason = match e {
            WireError::NoHeader => RejectReason::NoHeader,
            WireError::BadHeader(_) => RejectReason::BadHeader,
            WireError::Empty => RejectReason::Empty,
            WireError::Oversize(_) => RejectReason::Oversize,
        };
        log_reject(reason, &e);
        reason
    })?;
    if document.len() > max_document_bytes {
        log_reject(
            RejectReason::Oversize,
            &format_args!(
                "document of {} bytes exceeds {max_document_bytes}",
                document.len()
            ),
        );
        return Err(RejectReason::Oversize);
    }
    std::str::from_utf8(document).map_err(|e| {
        log_reject(RejectReason::NotJson, &e);
        RejectReason::NotJson
    })
}

/// Checks one datagram: framing, size, UTF-8, required fields, ids and times.
pub fn check(datagram: &[u8], max_document_bytes: usize) -> Result<Accepted<'_>, RejectReason> {
    let text = frame(datagram, max_document_bytes)?;
    let head = DocumentHead::parse(text.as_bytes()).map_err(|e| {
        let reason = reason_for(&e);
        log_reject(reason, &e);
        reason
    })?;
    Ok(Accepted {
        document: text,
        id: head.id,
    })
}

/// Scrubs a document by way of a `serde_json::Value`: the rewritten text when something was
/// scrubbed, and the report. A document that is not JSON, or cannot be re-serialized after
/// scrubbing, is refused (`Err`), never forwarded unscrubbed.
fn scrub_value(
    scrubber: &Scrubber,
    document: &str,
) -> Result<(Option<String>, ScrubReport), RejectReason> {
    let mut value: serde_json::Value =
        serde_json::from_str(document).map_err(|_| RejectReason::NotJson)?;
    let report = scrubber.scrub(&mut value);
    if report.is_clean() {
        return Ok((None, report));
    }
    let text = serde_json::to_string(&value).map_err(|_| RejectReason::NotJson)?;
    Ok((Some(text), report))
}

/// Scrubs a document held as text on a `serde_json::Value` (the general path); returns the
/// rewritten text when something was scrubbed. A document that cannot be re-serialized after
/// scrubbing is refused (`Err`), never forwarded unscrubbed.
pub fn scrub(
    scrubber: &Scrubber,
    document: &str,
    counters: &Counters,
) -> Result<Option<String>, RejectReason> {
    let (text, report) = scrub_value(scrubber, document)?;
    if !report.is_clean() {
        counters.add_scrubbed(report.iter());
    }
    Ok(text)
}

/// Scrub counts gathered over several documents, added to the shared [`Counters`] at once so
/// workers do not take the counters' lock per document.
#[derive(Debug, Default)]
pub struct ScrubTally {
    documents: u64,
    /// Documents the text pass handed to the `Value` walk (a `drop` action, a map key to
    /// rewrite, or text that is not JSON).
    fallbacks: u64,
    report: ScrubReport,
}

impl ScrubTally {
    fn add(&mut self, report: &ScrubReport) {
        if !report.is_clean() {
            self.documents += 1;
            self.report.merge(report);
        }
    }

    /// Adds what was gathered to `counters` and starts again.
    pub fn flush(&mut self, counters: &Counters) {
        if self.fallbacks > 0 {
            counters
                .scrub_fallbacks
                .fetch_add(self.fallbacks, Ordering::Relaxed);
            self.fallbacks = 0;
        }
        if self.documents > 0 {
            counters.add_scrubbed_documents(self.documents, self.report.iter());
            *self = Self::default();
        }
    }
}

/// Validates and (with a scrubber) scrubs one datagram: the accepted document, and in `out`
/// (cleared first) its rewritten text when the scrubber changed something (`out` stays empty
/// otherwise). Scrub counts go to `tally`.
///
/// Validation is [`check`]'s; scrubbing takes the text pass, and documents it cannot take
/// go through a `serde_json::Value` ([`scrub`]'s path), so the reject reasons and the set of
/// accepted documents are exactly those of [`check`] followed by [`scrub`].
pub fn check_and_scrub_into<'a>(
    datagram: &'a [u8],
    max_document_bytes: usize,
    scrubber: Option<&Scrubber>,
    tally: &mut ScrubTally,
    out: &mut String,
) -> Result<Accepted<'a>, RejectReason> {
    out.clear();
    let accepted = check(datagram, max_document_bytes)?;
    #[cfg(test)]
    if accepted.document.contains(tests::PANIC_MARKER) {
        panic!("planted panic in {}", accepted.document);
    }
    let Some(scrubber) = scrubber else {
        return Ok(accepted);
    };
    let report = match scrubber.scrub_json_text(accepted.document, out) {
        Some(report) => report,
        None => {
            tally.fallbacks += 1;
            let (text, report) =
                scrub_value(scrubber, accepted.document).inspect_err(|reason| {
                    log_reject(*reason, &"document is not JSON");
                })?;
            if let Some(text) = text {
                *out = text;
            }
            report
        }
    };
    tally.add(&report);
    Ok(accepted)
}

/// [`check_and_scrub_into`] for one datagram on its own: the accepted document and, when the
/// scrubber rewrote something, its new text; counts go straight to `counters`.
pub fn check_and_scrub<'a>(
    datagram: &'a [u8],
    max_document_bytes: usize,
    scrubber: Option<&Scrubber>,
    counters: &Counters,
) -> Result<(Accepted<'a>, Option<String>), RejectReason> {
    let mut tally = ScrubTally::default();
    let mut out = String::new();
    let accepted =
        check_and_scrub_into(datagram, max_document_bytes, scrubber, &mut tally, &mut out)?;
    tally.flush(counters);
    Ok((accepted, (!out.is_empty()).then_some(out)))
}

/// One processing worker: its input channel and what it needs to turn datagrams into batches.
pub struct Worker {
    /// Packet batches from the listener.
    pub input: Receiver<PacketBatch>,
    /// Where emptied packet batches go back.
    pub pool: Arc<PacketPool>,
    /// The memory bound.
    pub budget: Arc<MemoryBudget>,
    /// Counters.
    pub counters: Arc<Counters>,
    /// The scrubber, if scrubbing is on.
    pub scrubber: Option<Scrubber>,
    /// Largest document accepted.
    pub max_document_bytes: usize,
    /// The batcher (one per worker, so workers never contend).
    pub batcher: Batcher,
    /// Closed batches go to the forwarder.
    pub output: UnboundedSender<Batch>,
}

impl Worker {
    /// Runs until the listener hangs up, then flushes the partial batch. A panic that escapes
    /// [`Worker::process`]'s per-datagram guard is caught here and the loop starts again.
    pub fn run(mut self) {
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.step())) {
                Ok(true) => {}
                Ok(false) => break,
                Err(payload) => note_panic(&self.counters, payload.as_ref(), "outside a datagram"),
            }
        }
        if let Some(batch) = self.batcher.take() {
            self.emit(batch);
        }
    }

    /// Waits for one packet batch (or the flush time) and handles it; false once the listener
    /// hung up.
    fn step(&mut self) -> bool {
        let wait = self
            .batcher
            .time_to_flush(Instant::now())
            .unwrap_or(Duration::from_secs(3600));
        let open = match self.input.recv_timeout(wait) {
            Ok(packets) => {
                self.process(&packets);
                self.budget.release(packets.overhead);
                self.pool.give(packets);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if let Some(batch) = self.batcher.poll(Instant::now()) {
            self.emit(batch);
        }
        open
    }

    fn emit(&self, batch: Batch) {
        if let Err(returned) = self.output.send(batch) {
            // The forwarder is gone (only during a failed start-up): release and count.
            let batch = returned.0;
            self.budget.release(batch.charged);
            self.counters
                .buffered_documents
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            self.counters
                .drop_documents(crate::telemetry::DropReason::Shutdown, batch.len() as u64);
        }
    }

    /// Validates, scrubs and batches every datagram of a packet batch.
    pub fn process(&mut self, packets: &PacketBatch) {
        let received_at = packets.received_at.unwrap_or_else(Instant::now);
        let mut closed = Vec::new();
        let mut tally = ScrubTally::default();
        let mut scrubbed = String::new();
        for datagram in packets.iter() {
            let raw = crate::memory::admission_charge(datagram.len());
            let checked = catch_unwind(AssertUnwindSafe(|| {
                check_and_scrub_into(
                    datagram,
                    self.max_document_bytes,
                    self.scrubber.as_ref(),
                    &mut tally,
                    &mut scrubbed,
                )
            }));
            let accepted = match checked {
                Ok(Ok(accepted)) => accepted,
                Ok(Err(reason)) => {
                    self.counters.reject(reason);
                    self.budget.release(raw);
                    continue;
                }
                Err(payload) => {
                    note_panic(&self.counters, payload.as_ref(), "on one datagram");
                    self.counters.drop_documents(DropReason::WorkerPanic, 1);
                    self.budget.release(raw);
                    scrubbed.clear();
                    continue;
                }
            };
            let text = if scrubbed.is_empty() {
                accepted.document
            } else {
                scrubbed.as_str()
            };
            let grown = self
                .batcher
                .push(accepted.id, text, received_at, |b| closed.push(b));
            if grown > raw {
                self.budget.force_acquire(grown - raw);
            } else {
                self.budget.release(raw - grown);
            }
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            self.counters
                .buffered_documents
                .fetch_add(1, Ordering::Relaxed);
        }
        tally.flush(&self.counters);
        for batch in closed {
            self.emit(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

    fn datagram(doc: &str) -> Vec<u8> {
        format!("{HEADER}{doc}").into_bytes()
    }

    /// A document holding this makes [`check_and_scrub_into`] panic (tests only).
    pub(super) const PANIC_MARKER: &str = "roentgen-planted-panic";

    const GOOD: &str = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1478293361.271,"end_time":1478293361.449}"#;

    #[test]
    fn accepts_a_valid_document_verbatim() {
        let d = datagram(GOOD);
        let a = check(&d, 65536).unwrap();
        assert_eq!(a.document, GOOD);
        assert_eq!(a.id.to_string(), "70de5b6f19ff9a0a");
    }

    #[test]
    fn text_fast_path_scrubs_like_the_value_path() {
        let scrubber = Scrubber::default();
        let counters = Counters::default();
        let mut docs = Vec::new();
        let mut generated = Vec::new();
        crate::loadgen::datagram(1, 7, &mut generated);
        docs.push(generated);
        let planted = GOOD.replace(
            "\"end_time\"",
            "\"annotations\":{\"customer_email\":\"jane@example.com\"},\"odd\":[1,{\"x\":null}],\"end_time\"",
        );
        docs.push(datagram(&planted));
        docs.push(datagram(GOOD));
        for d in &docs {
            let (accepted, fast) = check_and_scrub(d, 65536, Some(&scrubber), &counters).unwrap();
            let general = scrub(&scrubber, accepted.document, &counters).unwrap();
            assert_eq!(fast.is_some(), general.is_some());
            let as_value = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
            let fast = fast.unwrap_or_else(|| accepted.document.to_owned());
            let general = general.unwrap_or_else(|| accepted.document.to_owned());
            assert_eq!(as_value(&fast), as_value(&general));
        }
        // A document the typed model would refuse (a status that is not a number) but ingest
        // accepts goes through.
        let odd = GOOD.replace(
            "\"end_time\"",
            "\"http\":{\"response\":{\"status\":\"200\"}},\"end_time\"",
        );
        let d = datagram(&odd);
        assert!(check_and_scrub(&d, 65536, Some(&scrubber), &counters).is_ok());
        assert_eq!(
            check_and_scrub(b"nope", 65536, Some(&scrubber), &counters).unwrap_err(),
            RejectReason::NoHeader
        );
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let cases: Vec<(Vec<u8>, RejectReason)> = vec![
            (GOOD.as_bytes().to_vec(), RejectReason::NoHeader),
            (
                format!("{{\"format\":\"xml\"}}\n{GOOD}").into_bytes(),
                RejectReason::BadHeader,
            ),
            (datagram("   "), RejectReason::Empty),
            (datagram("not json"), RejectReason::NotJson),
            (datagram("[1,2]"), RejectReason::NotJson),
            (
                datagram(&GOOD.replace("\"name\":\"api\",", "")),
                RejectReason::MissingField,
            ),
            (
                datagram(&GOOD.replace("70de5b6f19ff9a0a", "xyz")),
                RejectReason::BadId,
            ),
            (
                datagram(&GOOD.replace("1-581cf771", "2-581cf771")),
                RejectReason::BadId,
            ),
            (
                datagram(&GOOD.replace("1478293361.449", "1478293000")),
                RejectReason::BadTime,
            ),
            (
                datagram(&GOOD.replace("\"api\"", "\"a<b>\"")),
                RejectReason::BadName,
            ),
            (datagram(GOOD), RejectReason::Oversize),
        ];
        for (i, (d, want)) in cases.iter().enumerate() {
            let max = if i == cases.len() - 1 { 10 } else { 65536 };
            assert_eq!(check(d, max).unwrap_err(), *want, "case {i}");
        }
        let mut bad_utf8 = datagram(GOOD);
        let at = bad_utf8.len() - 3;
        bad_utf8[at] = 0xff;
        assert_eq!(check(&bad_utf8, 65536).unwrap_err(), RejectReason::NotJson);
    }

    #[test]
    fn a_panic_on_one_datagram_drops_only_that_one_and_the_worker_goes_on() {
        let (input, rx) = std::sync::mpsc::sync_channel(4);
        let (output, mut closed) = tokio::sync::mpsc::unbounded_channel();
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let counters = Arc::new(Counters::default());
        let worker = Worker {
            input: rx,
            pool: Arc::new(PacketPool::default()),
            budget: budget.clone(),
            counters: counters.clone(),
            scrubber: Some(Scrubber::default()),
            max_document_bytes: 65536,
            batcher: Batcher::new(100, Duration::from_secs(3600)),
            output,
        };
        let poisoned = GOOD.replace(
            "\"end_time\"",
            &format!("\"annotations\":{{\"m\":\"{PANIC_MARKER} jane@example.com\"}},\"end_time\""),
        );
        let second = GOOD.replace("70de5b6f19ff9a0a", "70de5b6f19ff9a0b");
        let mut packets = PacketBatch::default();
        for doc in [GOOD, poisoned.as_str(), second.as_str()] {
            let d = datagram(doc);
            budget.force_acquire(crate::memory::admission_charge(d.len()));
            packets.push(&d);
        }
        input.send(packets).unwrap();
        drop(input);
        worker.run();

        let batch = closed.try_recv().expect("the other datagrams are batched");
        let ids: Vec<String> = batch.docs().iter().map(|d| d.id.to_string()).collect();
        assert_eq!(ids, ["70de5b6f19ff9a0a", "70de5b6f19ff9a0b"]);
        assert!(closed.try_recv().is_err());
        assert_eq!(counters.worker_panics.load(Ordering::Relaxed), 1);
        assert_eq!(counters.dropped(DropReason::WorkerPanic), 1);
        assert_eq!(counters.accepted.load(Ordering::Relaxed), 2);
        assert_eq!(
            budget.used(),
            batch.charged,
            "the panicked datagram's charge is released"
        );
    }

    #[test]
    fn documents_the_text_pass_gives_up_on_are_counted() {
        let scrubber = Scrubber::default();
        let counters = Counters::default();
        // A metadata key that is an e-mail address: rewriting a key is the Value walk's job.
        let keyed = GOOD.replace(
            "\"end_time\"",
            "\"metadata\":{\"default\":{\"jane@example.com\":1}},\"end_time\"",
        );
        let d = datagram(&keyed);
        let (_, scrubbed) = check_and_scrub(&d, 65536, Some(&scrubber), &counters).unwrap();
        let scrubbed = scrubbed.expect("the key is rewritten");
        assert!(!scrubbed.contains("jane@example.com"), "{scrubbed}");
        assert_eq!(counters.scrub_fallbacks.load(Ordering::Relaxed), 1);
        let d = datagram(GOOD);
        check_and_scrub(&d, 65536, Some(&scrubber), &counters).unwrap();
        assert_eq!(counters.scrub_fallbacks.load(Ordering::Relaxed), 1);
    }
}
