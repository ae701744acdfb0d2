//! The emitter: hands finished documents to a background thread that scrubs, serializes and
//! sends them to the daemon over UDP, batching system calls with `sendmmsg`.
//!
//! The app's thread only moves a boxed document into a bounded queue; when the queue is full the
//! document is dropped and counted (the app is never slowed down by tracing). The background
//! thread is the only place documents leave the process, and it scrubs every one of them first
//! unless scrubbing was explicitly disabled.

mod address;
mod json;
mod spares;
mod stream;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

use crate::model::{MAX_DOCUMENT_BYTES, Segment, encode_datagram};
use crate::scrub::Scrubber;

pub use address::{AddressError, DEFAULT_DAEMON_ADDRESS, DaemonAddress};
pub use json::write_segment as write_segment_json;
pub(crate) use spares::{Recycled, Spares};
pub use stream::split as split_for_streaming;

/// Whether documents are scrubbed before they leave the process.
#[derive(Debug, Clone)]
pub enum Scrubbing {
    /// Every document goes through this scrubber (the default).
    Enabled(Scrubber),
    /// Documents leave as recorded. Logged as a warning when the emitter starts.
    Disabled,
}

impl Default for Scrubbing {
    fn default() -> Self {
        Self::Enabled(Scrubber::default())
    }
}

/// Fields every segment (not subsegment) carries unless the app set them; filled in on the
/// emitter's thread so the app's thread does not pay for copying them.
#[derive(Debug, Clone, Default)]
pub struct SegmentDefaults {
    /// `origin`, e.g. `AWS::EC2::Instance`.
    pub origin: Option<String>,
    /// `service` (e.g. `{"version": "1.2.3"}`).
    pub service: Option<serde_json::Map<String, serde_json::Value>>,
    /// `aws` (the SDK's name and version under `xray`).
    pub aws: Option<serde_json::Map<String, serde_json::Value>>,
}

impl SegmentDefaults {
    /// Scrubs the defaults as they would be scrubbed inside a segment; returns how many values
    /// were rewritten.
    fn scrub(&mut self, scrubber: &Scrubber) -> u64 {
        let mut template = Segment {
            origin: self.origin.take(),
            service: self.service.take(),
            aws: self.aws.take(),
            ..Segment::default()
        };
        let report = scrubber.scrub_segment(&mut template);
        self.origin = template.origin;
        self.service = template.service;
        self.aws = template.aws;
        report.total()
    }

    fn apply(&self, doc: &mut Segment) {
        if doc.is_subsegment() {
            return;
        }
        if doc.origin.is_none() {
            doc.origin.clone_from(&self.origin);
        }
        if doc.service.is_none() {
            doc.service.clone_from(&self.service);
        }
        if doc.aws.is_none() {
            doc.aws.clone_from(&self.aws);
        }
    }
}

/// Emitter settings.
#[derive(Debug, Clone)]
pub struct EmitterConfig {
    /// Where the daemon listens.
    pub daemon: SocketAddr,
    /// Documents waiting to be sent before new ones are dropped.
    pub queue_capacity: usize,
    /// A segment with more subsegments than this is streamed in pieces (Java and Node use 100);
    /// an open trace holds at most this many finished subsegments before they are sent on
    /// their own.
    pub stream_threshold: usize,
    /// Send each segment once when it begins, `in_progress`, as well as when it ends.
    pub send_in_progress: bool,
    /// Scrubbing policy.
    pub scrubbing: Scrubbing,
    /// Fields added to every segment.
    pub segment_defaults: SegmentDefaults,
}

impl EmitterConfig {
    /// Defaults for a daemon address: 8,192 queued documents, streaming above 100 subsegments,
    /// built-in scrubbing.
    pub fn new(daemon: SocketAddr) -> Self {
        Self {
            daemon,
            queue_capacity: 8192,
            stream_threshold: 100,
            send_in_progress: false,
            scrubbing: Scrubbing::default(),
            segment_defaults: SegmentDefaults::default(),
        }
    }
}

/// Why the emitter could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// The UDP socket could not be created.
    #[error("emitter socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The segment defaults cannot be rendered as JSON.
    #[error("segment defaults: {0}")]
    Defaults(#[from] serde_json::Error),
}

/// Counters an operator would ask about.
#[derive(Debug, Default)]
pub struct EmitterStats {
    /// Documents handed to the emitter.
    pub submitted: AtomicU64,
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Documents dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Documents dropped because they exceed 64 KiB even after streaming.
    pub dropped_oversize: AtomicU64,
    /// Datagrams the kernel refused to send.
    pub send_errors: AtomicU64,
    /// Values rewritten by the scrubber.
    pub scrubbed_values: AtomicU64,
}

/// A point-in-time copy of [`EmitterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmitterSnapshot {
    /// Documents handed to the emitter.
    pub submitted: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Dropped, queue full.
    pub dropped_queue_full: u64,
    /// Dropped, over 64 KiB.
    pub dropped_oversize: u64,
    /// Send failures.
    pub send_errors: u64,
    /// Values rewritten by the scrubber.
    pub scrubbed_values: u64,
}

enum Message {
    Document(Box<Segment>),
    Flush(SyncSender<()>),
}

/// Sends documents to the daemon from a background thread. Dropping it sends what is queued.
#[derive(Debug)]
pub struct Emitter {
    queue: Option<SyncSender<Message>>,
    stats: Arc<EmitterStats>,
    spares: Arc<Spares>,
    thread: Option<JoinHandle<()>>,
    last_drop_warning: AtomicU64,
    stream_threshold: usize,
    send_in_progress: bool,
}

const BATCH: usize = 64;
/// How long the sender sleeps between polls while traffic flows.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Empty polls (about 50 ms of silence) before the sender blocks until the next document.
const IDLE_POLLS: u32 = 50;

impl Emitter {
    /// Starts the background sender.
    pub fn start(config: EmitterConfig) -> Result<Self, EmitterError> {
        let bind: SocketAddr = if config.daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)?;
        // Connected, the kernel resolves the route once instead of for every datagram.
        socket.connect(config.daemon)?;
        if matches!(config.scrubbing, Scrubbing::Disabled) {
            tracing::warn!(
                daemon = %config.daemon,
                "PII scrubbing is DISABLED: documents leave this process as recorded"
            );
        }
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        // The defaults are the same on every segment: scrubbed once here, rendered once.
        let stats = Arc::new(EmitterStats::default());
        let mut segment_defaults = config.segment_defaults;
        if let Scrubbing::Enabled(scrubber) = &config.scrubbing {
            let scrubbed = segment_defaults.scrub(scrubber);
            stats.scrubbed_values.store(scrubbed, Ordering::Relaxed);
        }
        let rendered_defaults = json::RenderedDefaults::new(&segment_defaults)?;
        // The worker scrubs on its own copy of the regexes' caches: this thread used the
        // shared ones just above, and only a pool's first user takes from it without a lock.
        let scrubbing = match config.scrubbing {
            Scrubbing::Enabled(scrubber) => Scrubbing::Enabled(scrubber.with_own_caches()),
            disabled => disabled,
        };
        let spares = Arc::new(Spares::default());
        let (stream_threshold, send_in_progress) =
            (config.stream_threshold, config.send_in_progress);
        let worker = Worker {
            spares: Arc::clone(&spares),
            recycled: Recycled::default(),
            socket,
            scrubbing,
            segment_defaults,
            rendered_defaults,
            stream_threshold: config.stream_threshold,
            stats: Arc::clone(&stats),
            buffers: Vec::new(),
            pieces: Vec::new(),
            json: Vec::new(),
            addresses: vec![None; BATCH],
        };
        let thread = std::thread::Builder::new()
            .name("roentgen-emitter".into())
            .spawn(move || worker.run(rx))?;
        Ok(Self {
            queue: Some(tx),
            stats,
            spares,
            thread: Some(thread),
            last_drop_warning: AtomicU64::new(0),
            stream_threshold,
            send_in_progress,
        })
    }

    /// Queues a finished document; never blocks. Drops and counts it when the queue is full.
    pub fn submit(&self, document: Box<Segment>) {
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Message::Document(document)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let dropped = self
                    .stats
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                self.warn_dropped(dropped);
            }
        }
    }

    /// Finished subsegments an open trace may hold before they are sent on their own.
    pub fn stream_threshold(&self) -> usize {
        self.stream_threshold
    }

    /// Whether segments are also sent when they begin.
    pub fn send_in_progress(&self) -> bool {
        self.send_in_progress
    }

    /// Empty documents handed back by the sender thread, for the recorder to fill.
    pub(crate) fn spares(&self) -> &Spares {
        &self.spares
    }

    /// At most one warning every ten seconds, with the running count.
    fn warn_dropped(&self, dropped: u64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_drop_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_drop_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(dropped, "emitter queue full: dropping trace documents");
        }
    }

    /// Waits until everything queued before this call has been sent, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut message = Message::Flush(tx);
        loop {
            match queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// The counters now.
    pub fn stats(&self) -> EmitterSnapshot {
        let s = &self.stats;
        EmitterSnapshot {
            submitted: s.submitted.load(Ordering::Relaxed),
            sent: s.sent.load(Ordering::Relaxed),
            dropped_queue_full: s.dropped_queue_full.load(Ordering::Relaxed),
            dropped_oversize: s.dropped_oversize.load(Ordering::Relaxed),
            send_errors: s.send_errors.load(Ordering::Relaxed),
            scrubbed_values: s.scrubbed_values.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    socket: UdpSocket,
    spares: Arc<Spares>,
    recycled: Recycled,
    scrubbing: Scrubbing,
    /// Scrubbed once when the emitter starts.
    segment_defaults: SegmentDefaults,
    /// `segment_defaults` as JSON, for the writer.
    rendered_defaults: json::RenderedDefaults,
    stream_threshold: usize,
    stats: Arc<EmitterStats>,
    /// Framed datagrams of the current batch; reused across batches.
    buffers: Vec<Vec<u8>>,
    pieces: Vec<Segment>,
    json: Vec<u8>,
    /// No address per batch slot (`sendmmsg` wants one each): the socket is connected.
    addresses: Vec<Option<SockaddrStorage>>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Message>) {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut flushes = Vec::new();
        let mut idle_polls = 0u32;
        loop {
            // While traffic flows, poll every millisecond instead of blocking: a blocked receiver
            // makes every `submit` on the app's thread pay for a futex wake-up and this thread
            // for a context switch per document. After IDLE_POLLS empty polls, block.
            let first = if idle_polls < IDLE_POLLS {
                match rx.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(message) => Some(message),
                    Err(_) => break,
                }
            };
            let Some(first) = first else {
                idle_polls += 1;
                std::thread::sleep(POLL_INTERVAL);
                continue;
            };
            idle_polls = 0;
            let mut used = 0;
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Document(doc) => used = self.prepare(doc, used, &mut headers),
                    Message::Flush(done) => flushes.push(done),
                }
                next = rx.try_recv().ok();
            }
            self.send(used, &mut headers);
            self.spares.give(&mut self.recycled);
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Scrubs, splits and frames one document into the batch; returns the new batch length.
    fn prepare(
        &mut self,
        mut doc: Box<Segment>,
        mut used: usize,
        headers: &mut MultiHeaders<SockaddrStorage>,
    ) -> usize {
        if let Scrubbing::Enabled(scrubber) = &self.scrubbing {
            let report = scrubber.scrub_segment(&mut doc);
            let total = report.total();
            if total > 0 {
                self.stats
                    .scrubbed_values
                    .fetch_add(total, Ordering::Relaxed);
            }
        }
        if doc.subsegment_count() <= self.stream_threshold {
            // The common case: one datagram, serialized from the box, which is then reused.
            self.json.clear();
            if json::write_document(&mut self.json, &doc, &self.rendered_defaults).is_ok()
                && self.json.len() <= MAX_DOCUMENT_BYTES
            {
                used = self.push_datagram(used, headers);
                self.recycled.keep(doc);
                if self.recycled.len() >= BATCH {
                    // Back in the pool while the app's thread can still use them.
                    self.spares.give(&mut self.recycled);
                }
                return used;
            }
        }
        self.segment_defaults.apply(&mut doc);
        self.pieces.clear();
        stream::split(*doc, self.stream_threshold, &mut self.pieces);
        let mut pending = VecDeque::from(std::mem::take(&mut self.pieces));
        while let Some(piece) = pending.pop_front() {
            self.json.clear();
            let serialized = json::write_segment(&mut self.json, &piece).is_ok();
            if serialized && self.json.len() > MAX_DOCUMENT_BYTES && piece.subsegments.is_some() {
                // Too large as one datagram: send every completed child on its own instead.
                let mut smaller = Vec::new();
                stream::split(piece, 0, &mut smaller);
                if smaller.len() > 1 {
                    for p in smaller.into_iter().rev() {
                        pending.push_front(p);
                    }
                    continue;
                }
                self.drop_oversize(&smaller[0]);
                continue;
            }
            if !serialized || self.json.len() > MAX_DOCUMENT_BYTES {
                self.drop_oversize(&piece);
                continue;
            }
            used = self.push_datagram(used, headers);
        }
        self.pieces = Vec::from(pending);
        used
    }

    /// Frames the serialized document in `self.json` into the batch (sending the batch when it
    /// is full); returns the new batch length.
    fn push_datagram(
        &mut self,
        mut used: usize,
        headers: &mut MultiHeaders<SockaddrStorage>,
    ) -> usize {
        if used == self.buffers.len() {
            self.buffers.push(Vec::with_capacity(1024));
        }
        if encode_datagram(&self.json, &mut self.buffers[used]).is_ok() {
            used += 1;
        }
        if used >= BATCH {
            self.send(used, headers);
            used = 0;
        }
        used
    }

    fn drop_oversize(&self, piece: &Segment) {
        self.stats.dropped_oversize.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            id = %piece.id,
            bytes = self.json.len(),
            "trace document over 64 KiB even on its own: dropped"
        );
    }

    /// Sends the first `used` framed datagrams with as few system calls as possible.
    fn send(&mut self, used: usize, headers: &mut MultiHeaders<SockaddrStorage>) {
        let mut start = 0;
        let mut retried = false;
        while start < used {
            let batch = &self.buffers[start..used];
            let slices: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|b| [IoSlice::new(b)]).collect();
            let sent = sendmmsg(
                self.socket.as_raw_fd(),
                headers,
                &slices,
                &self.addresses[..slices.len()],
                [],
                MsgFlags::empty(),
            )
            .map(|results| results.count());
            match sent {
                Ok(n) if n > 0 => {
                    self.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
                    start += n;
                }
                Err(Errno::ECONNREFUSED) if !retried => {
                    // A connected UDP socket reports an earlier datagram's "port unreachable"
                    // on the next send, which then sends nothing: try it once more (the daemon
                    // may be back by now).
                    retried = true;
                }
                Err(Errno::ECONNREFUSED) => {
                    // Refused again in the same batch: nobody listens; the rest would be too.
                    let rest = (used - start) as u64;
                    self.stats.send_errors.fetch_add(rest, Ordering::Relaxed);
                    start = used;
                }
                Ok(_) | Err(_) => {
                    // Skip the datagram that failed and carry on with the rest.
                    self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    start += 1;
                }
            }
        }
    }
}
