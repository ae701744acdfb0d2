//! A minimal real-HTTP collector for tests and benchmarks: answers the X-Ray calls the daemon
//! makes (`PutTraceSegments`, `PutTelemetryRecords`, the sampling calls) on loopback, records
//! or counts what it got, and can be stopped and restarted on the same port to simulate an
//! outage, or made to misbehave on purpose ([`Fault`]: a refusing status, a body limit, a
//! garbage success) to test the daemon's failure paths. Plain `std` threads, HTTP/1.1 with
//! keep-alive; nothing else.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the collector does with trace segments.
#[derive(Debug, Clone, Default)]
pub struct CollectorOptions {
    /// Keep every document string (tests); otherwise only count them (benchmarks).
    pub record: bool,
    /// Answer the first this many documents as unprocessed with a retryable error code.
    pub throttle_first: usize,
}

/// How the collector misbehaves on `PutTraceSegments`; switchable while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// Answers as X-Ray does.
    #[default]
    None,
    /// Answers every request with this HTTP status and an X-Ray-style error body, taking
    /// nothing.
    Status(u16),
    /// Answers 413 to a request whose body is larger than this many bytes.
    MaxBody(usize),
    /// Answers 200 with a body that is not JSON, taking nothing (a proxy's error page).
    Garbage,
}

#[derive(Default)]
struct State {
    fault: Mutex<Fault>,
    faulted: AtomicU64,
    documents: Mutex<Vec<String>>,
    counted: AtomicU64,
    requests: AtomicU64,
    telemetry: Mutex<Vec<String>>,
    sampling_calls: Mutex<Vec<String>>,
    throttle_left: AtomicUsize,
    running: AtomicBool,
    connections: Mutex<VecDeque<TcpStream>>,
}

/// A running (or stopped) minimal collector.
pub struct MiniCollector {
    addr: SocketAddr,
    options: CollectorOptions,
    state: Arc<State>,
    acceptor: Option<JoinHandle<()>>,
}

impl MiniCollector {
    /// Starts on an ephemeral loopback port.
    pub fn start(options: CollectorOptions) -> io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(io::Error::other)?, options)
    }

    /// Starts on `addr`.
    pub fn start_on(addr: SocketAddr, options: CollectorOptions) -> io::Result<Self> {
        let state = Arc::new(State::default());
        state
            .throttle_left
            .store(options.throttle_first, Ordering::Relaxed);
        let mut collector = Self {
            addr,
            options,
            state,
            acceptor: None,
        };
        collector.listen(addr)?;
        Ok(collector)
    }

    fn listen(&mut self, addr: SocketAddr) -> io::Result<()> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(128)?;
        let listener: TcpListener = socket.into();
        self.addr = listener.local_addr()?;
        self.state.running.store(true, Ordering::Release);
        let state = self.state.clone();
        let record = self.options.record;
        self.acceptor = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !state.running.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                if let Ok(clone) = stream.try_clone()
                    && let Ok(mut c) = state.connections.lock()
                {
                    // Forget connections that already ended (their peer address is gone).
                    c.retain(|s| s.peer_addr().is_ok());
                    c.push_back(clone);
                }
                let state = state.clone();
                std::thread::spawn(move || {
                    let closer = stream.try_clone();
                    let _ = serve(stream, &state, record);
                    // The clone kept for stop() holds the socket open: close it explicitly.
                    if let Ok(c) = closer {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                });
            }
        }));
        Ok(())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:4000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops listening and closes every connection (the port refuses connections after).
    pub fn stop(&mut self) {
        self.state.running.store(false, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        if let Ok(mut conns) = self.state.connections.lock() {
            for c in conns.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    /// Starts again on the same port, keeping what was recorded.
    pub fn restart(&mut self) -> io::Result<()> {
        self.listen(self.addr)
    }

    /// Documents recorded so far (with `record`).
    pub fn documents(&self) -> Vec<String> {
        self.state
            .documents
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Documents received so far (recorded or counted).
    pub fn document_count(&self) -> u64 {
        self.state.counted.load(Ordering::Acquire)
    }

    /// Makes the collector misbehave (or behave again, with [`Fault::None`]).
    pub fn set_fault(&self, fault: Fault) {
        if let Ok(mut f) = self.state.fault.lock() {
            *f = fault;
        }
    }

    /// `PutTraceSegments` requests answered with a [`Fault`].
    pub fn faulted(&self) -> u64 {
        self.state.faulted.load(Ordering::Acquire)
    }

    /// `PutTraceSegments` requests answered.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Acquire)
    }

    /// Bodies of `PutTelemetryRecords` requests.
    pub fn telemetry(&self) -> Vec<String> {
        self.state
            .telemetry
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// `path body` of each sampling call.
    pub fn sampling_calls(&self) -> Vec<String> {
        self.state
            .sampling_calls
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

impl Drop for MiniCollector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn count_documents(body: &[u8]) -> u64 {
    // Each generated or SDK document carries exactly one top-level trace_id, and each OTLP
    // span nested in another's document keeps its own (`model::nest`): counting the escaped
    // key counts entities sent on their own, without decoding the body on a bench's hot path.
    let text = String::from_utf8_lossy(body);
    text.matches("\\\"trace_id\\\"").count() as u64
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutBody {
    trace_segment_documents: Vec<String>,
}

fn put_trace_segments(state: &State, body: &[u8], record: bool) -> String {
    state.requests.fetch_add(1, Ordering::AcqRel);
    let mut unprocessed = Vec::new();
    if record || state.throttle_left.load(Ordering::Acquire) > 0 {
        let Ok(parsed) = serde_json::from_slice::<PutBody>(body) else {
            return r#"{"UnprocessedTraceSegments":[]}"#.to_owned();
        };
        let mut kept = Vec::new();
        for doc in parsed.trace_segment_documents {
            let throttled = state
                .throttle_left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            if throttled {
                let id = serde_json::from_str::<serde_json::Value>(&doc)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                unprocessed.push(serde_json::json!({
                    "Id": id, "ErrorCode": "ThrottledException", "Message": "slow down"
                }));
            } else {
                kept.push(doc);
            }
        }
        state.counted.fetch_add(kept.len() as u64, Ordering::AcqRel);
        if record && let Ok(mut docs) = state.documents.lock() {
            docs.extend(kept);
        }
    } else {
        state
            .counted
            .fetch_add(count_documents(body), Ordering::AcqRel);
    }
    serde_json::json!({ "UnprocessedTraceSegments": unprocessed }).to_string()
}

/// The answer a [`Fault`] gives to a body of `len` bytes, if it applies.
fn faulty_answer(state: &State, len: usize) -> Option<(String, &'static str)> {
    let fault = state.fault.lock().map(|f| *f).unwrap_or_default();
    let answer = match fault {
        Fault::None => return None,
        Fault::Status(code) => (
            format!("{code} {}", reason_phrase(code)),
            r#"{"__type":"PlantedFault","message":"refused on purpose"}"#,
        ),
        Fault::MaxBody(max) if len > max => (
            "413 Payload Too Large".to_owned(),
            r#"{"__type":"PayloadTooLarge","message":"body too large"}"#,
        ),
        Fault::MaxBody(_) => return None,
        Fault::Garbage => (
            "200 OK".to_owned(),
            "<html><body>upstream is being upgraded</body></html>",
        ),
    };
    state.faulted.fetch_add(1, Ordering::AcqRel);
    Some(answer)
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn serve(stream: TcpStream, state: &State, record: bool) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.clear();
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        if !state.running.load(Ordering::Acquire) {
            return Ok(());
        }
        match (method.as_str(), path.as_str()) {
            ("POST", "/TraceSegments") => {
                if let Some((status, answer)) = faulty_answer(state, body.len()) {
                    respond(&mut writer, &status, answer)?;
                    continue;
                }
                let answer = put_trace_segments(state, &body, record);
                respond(&mut writer, "200 OK", &answer)?;
            }
            ("POST", "/TelemetryRecords") => {
                if let Ok(mut t) = state.telemetry.lock() {
                    t.push(String::from_utf8_lossy(&body).into_owned());
                }
                respond(&mut writer, "200 OK", "{}")?;
            }
            ("POST", "/GetSamplingRules") => {
                if let Ok(mut s) = state.sampling_calls.lock() {
                    s.push(format!("{path} {}", String::from_utf8_lossy(&body)));
                }
                respond(
                    &mut writer,
                    "200 OK",
                    r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"Default","Priority":10000,"FixedRate":0.05,"ReservoirSize":1,"ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"*","ResourceARN":"*","Version":1,"Attributes":{}},"CreatedAt":0,"ModifiedAt":0}]}"#,
                )?;
            }
            ("POST", "/SamplingTargets") => {
                if let Ok(mut s) = state.sampling_calls.lock() {
                    s.push(format!("{path} {}", String::from_utf8_lossy(&body)));
                }
                respond(
                    &mut writer,
                    "200 OK",
                    r#"{"SamplingTargetDocuments":[],"LastRuleModification":0,"UnprocessedStatistics":[]}"#,
                )?;
            }
            _ => respond(
                &mut writer,
                "404 Not Found",
                r#"{"message":"unknown operation"}"#,
            )?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(addr: SocketAddr, path: &str, body: &str) -> io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        s.shutdown(Shutdown::Write)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn records_counts_throttles_and_restarts() {
        let mut c = MiniCollector::start(CollectorOptions {
            record: true,
            throttle_first: 1,
        })
        .unwrap();
        let body = r#"{"TraceSegmentDocuments":["{\"id\":\"0000000000000001\",\"trace_id\":\"t\"}","{\"id\":\"0000000000000002\",\"trace_id\":\"t\"}"]}"#;
        let answer = post(c.addr(), "/TraceSegments", body).unwrap();
        assert!(answer.contains("ThrottledException"), "{answer}");
        assert!(answer.contains("0000000000000001"), "{answer}");
        assert_eq!(c.document_count(), 1);
        assert_eq!(c.documents().len(), 1);
        c.stop();
        assert!(post(c.addr(), "/TraceSegments", body).is_err());
        c.restart().unwrap();
        post(c.addr(), "/TraceSegments", body).unwrap();
        assert_eq!(c.document_count(), 3);
        assert_eq!(count_documents(body.as_bytes()), 2);

        c.set_fault(Fault::Status(401));
        assert!(
            post(c.addr(), "/TraceSegments", body)
                .unwrap()
                .starts_with("HTTP/1.1 401")
        );
        c.set_fault(Fault::MaxBody(10));
        assert!(
            post(c.addr(), "/TraceSegments", body)
                .unwrap()
                .starts_with("HTTP/1.1 413")
        );
        c.set_fault(Fault::Garbage);
        assert!(
            post(c.addr(), "/TraceSegments", body)
                .unwrap()
                .contains("<html>")
        );
        assert_eq!(c.faulted(), 3);
        assert_eq!(c.document_count(), 3, "a faulty answer takes nothing");
        c.set_fault(Fault::MaxBody(body.len()));
        post(c.addr(), "/TraceSegments", body).unwrap();
        assert_eq!(c.document_count(), 5);
    }
}
