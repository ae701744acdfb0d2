//! The recorder through a real UDP socket: assembly of subsegments across tasks, propagation,
//! sampling, streaming of large segments, and the emitter's accounting.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures

mod udp;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use roentgen_sdk::model::{SamplingDecision, Segment, TraceHeader, split_datagram};
use roentgen_sdk::recorder::{Recorder, RecorderConfig, current, scope};
use roentgen_sdk::sampling::Rules;
use udp::{ALWAYS, NEVER, nothing_more, receive, setup, setup_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsegments_follow_the_work_across_tasks() {
    let (socket, recorder) = setup(ALWAYS);
    let segment = recorder.begin_segment("checkout", None);
    scope(segment.clone(), async {
        let parent = current().unwrap();
        let mut tasks = Vec::new();
        for i in 0..3 {
            let parent = parent.clone();
            tasks.push(tokio::spawn(async move {
                let sub = parent.begin_subsegment(&format!("worker-{i}"));
                let inner = sub.begin_subsegment("step");
                inner.put_annotation("n", i).unwrap();
                inner.end();
                sub.end();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    segment.put_annotation("tier", "gold").unwrap();
    assert!(segment.put_annotation("bad-key", 1).is_err());
    segment.end();
    recorder.flush(Duration::from_secs(5));

    let doc = receive(&socket);
    assert_eq!(doc.name, "checkout");
    let subs = doc.subsegments.as_ref().unwrap();
    assert_eq!(subs.len(), 3);
    for sub in subs {
        assert!(sub.name.starts_with("worker-"));
        assert!(
            sub.parent_id.is_none(),
            "embedded subsegments need no parent_id"
        );
        let inner = &sub.subsegments.as_ref().unwrap()[0];
        assert_eq!(inner.name, "step");
    }
    assert_eq!(doc.subsegment_count(), 6);
    assert!(nothing_more(&socket));
}

#[test]
fn late_subsegments_are_sent_on_their_own() {
    let (socket, recorder) = setup(ALWAYS);
    let segment = recorder.begin_segment("api", None);
    let slow = segment.begin_subsegment("slow-call");
    segment.end();
    slow.end();
    recorder.flush(Duration::from_secs(5));
    let first = receive(&socket);
    let second = receive(&socket);
    assert_eq!(first.id, segment.id());
    assert!(first.subsegments.is_none());
    assert!(second.is_subsegment());
    assert_eq!(second.parent_id, Some(segment.id()));
    assert_eq!(second.trace_id, first.trace_id);
}

#[test]
fn incoming_header_continues_the_trace_and_outgoing_calls_name_their_subsegment() {
    let (socket, recorder) = setup(NEVER);
    let incoming: TraceHeader =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1"
            .parse()
            .unwrap();
    let segment = recorder.begin_segment("api", Some(&incoming));
    let (call, header) = segment.begin_remote_call("inventory", "GET", "http://inv/items");
    assert_eq!(header.root, incoming.root);
    assert_eq!(header.parent, Some(call.id()));
    assert_eq!(header.sampled, SamplingDecision::Sampled);
    assert_eq!(header.extra, vec![("Lineage".into(), "a:1".into())]);
    call.set_http_response(429, None);
    call.end();
    segment.end();
    recorder.flush(Duration::from_secs(5));
    let doc = receive(&socket);
    assert_eq!(doc.trace_id, incoming.root);
    assert_eq!(doc.parent_id, incoming.parent);
    let sub = &doc.subsegments.as_ref().unwrap()[0];
    assert_eq!(sub.namespace.as_deref(), Some("remote"));
    assert_eq!((sub.error, sub.throttle), (Some(true), Some(true)));
}

#[test]
fn a_header_with_a_bad_field_keeps_the_fields_it_can_read() {
    let (socket, recorder) = setup(ALWAYS);
    // A load balancer's `Root` with a mangled `Parent` and `Sampled`: the trace continues,
    // without a parent, and the sampler decides.
    let (incoming, problem) = TraceHeader::parse_lenient(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=zz;Sampled=maybe;Lineage=a:1",
    );
    assert!(problem.is_some());
    let segment = recorder.begin_segment("api", Some(&incoming));
    assert_eq!(
        segment.outgoing_header().extra,
        vec![("Lineage".into(), "a:1".into())]
    );
    segment.end();
    // A bad `Root`: a new trace, and its `Parent` is not taken from another trace.
    let (orphan, _) = TraceHeader::parse_lenient("Root=1-nothex;Parent=53995c3f42cd8ad8;Sampled=1");
    let other = recorder.begin_segment("api", Some(&orphan));
    other.end();
    recorder.flush(Duration::from_secs(5));
    let doc = receive(&socket);
    assert_eq!(doc.trace_id, incoming.root);
    assert_eq!(doc.parent_id, None);
    let doc = receive(&socket);
    assert_ne!(doc.trace_id, incoming.root);
    assert_eq!(doc.parent_id, None);
}

#[test]
fn unsampled_requests_send_nothing_but_propagate_the_decision() {
    let (socket, recorder) = setup(NEVER);
    let segment = recorder.begin_segment("api", None);
    assert!(!segment.is_sampled());
    let sub = segment.begin_subsegment("db");
    assert_eq!(sub.outgoing_header().sampled, SamplingDecision::NotSampled);
    sub.end();
    segment.end();
    recorder.flush(Duration::from_secs(5));
    assert!(nothing_more(&socket));

    // A caller asking `Sampled=?` gets the decision back.
    let asked: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"
        .parse()
        .unwrap();
    let segment = recorder.begin_segment("api", Some(&asked));
    assert_eq!(
        segment.response_header().sampled,
        SamplingDecision::NotSampled
    );
}

#[test]
fn large_segments_are_streamed_in_pieces() {
    let (socket, recorder) = setup(ALWAYS);
    let segment = recorder.begin_segment("batch-job", None);
    for i in 0..150 {
        segment.begin_subsegment(&format!("step-{i:03}")).end();
        assert!(segment.held_documents() <= 100);
    }
    segment.end();
    recorder.flush(Duration::from_secs(5));
    // Past 100 held, the finished steps went on their own; the rest came with the segment.
    let streamed: Vec<Segment> = (0..101).map(|_| receive(&socket)).collect();
    assert!(
        streamed
            .iter()
            .all(|p| p.is_subsegment() && p.parent_id == Some(segment.id()))
    );
    let last = receive(&socket);
    assert!(!last.is_subsegment());
    assert_eq!(last.subsegment_count(), 49);
    assert_eq!(recorder.stats().sent, 102);
}

/// Documents named `name` in `doc`'s tree, itself included.
fn named(doc: &Segment, name: &str) -> usize {
    usize::from(doc.name == name)
        + doc
            .subsegments
            .iter()
            .flatten()
            .map(|s| named(s, name))
            .sum::<usize>()
}

#[test]
fn a_long_job_keeps_bounded_memory_and_every_subsegment_arrives() {
    let (socket, recorder) = setup_with(ALWAYS, |c| {
        c.emitter.queue_capacity = 20_000;
        c.emitter.send_in_progress = true;
    });
    // Room on the receiving side for a burst between flushes.
    let _ = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
    // The receiver only copies datagrams out of the socket (parsing them as they come, in a
    // debug build on a loaded machine, fell behind the sender until the socket overflowed);
    // it stops once it has as many as the emitter says it sent.
    let expected = Arc::new(AtomicUsize::new(usize::MAX));
    let receiver = std::thread::spawn({
        let expected = Arc::clone(&expected);
        move || {
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut datagrams = Vec::new();
            let mut idle = 0;
            while datagrams.len() < expected.load(Ordering::Acquire) && idle < 100 {
                let mut buf = vec![0u8; 65536];
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        datagrams.push(buf);
                        idle = 0;
                    }
                    Err(_) => idle += 1,
                }
            }
            datagrams
        }
    });
    let segment = recorder.begin_segment("batch-job", None);
    let mut most_held = 0;
    for i in 0..10_000 {
        let step = segment.begin_subsegment("step");
        step.begin_subsegment("io").end();
        step.end();
        most_held = most_held.max(segment.held_documents());
        // At most about 200 datagrams in flight between flushes.
        if i % 200 == 199 {
            assert!(recorder.flush(Duration::from_secs(10)));
        }
    }
    segment.end();
    assert!(recorder.flush(Duration::from_secs(10)));
    assert!(most_held <= 100, "held {most_held}");
    let sent = usize::try_from(recorder.stats().sent).unwrap();
    expected.store(sent, Ordering::Release);
    let datagrams = receiver.join().unwrap();
    assert_eq!(datagrams.len(), sent);
    let (mut steps, mut ios, mut begun, mut ended) = (0, 0, 0, 0);
    for datagram in &datagrams {
        let doc: Segment = serde_json::from_slice(split_datagram(datagram).unwrap()).unwrap();
        steps += named(&doc, "step");
        ios += named(&doc, "io");
        if doc.name == "batch-job" {
            if doc.in_progress == Some(true) {
                begun += 1;
            } else {
                ended += 1;
            }
        }
    }
    assert_eq!((steps, ios, begun, ended), (10_000, 10_000, 1, 1));
    let stats = recorder.stats();
    assert_eq!(stats.dropped_queue_full, 0, "{stats:?}");
}

#[test]
fn every_document_is_sent_or_counted_as_dropped() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let mut config = RecorderConfig::new(address.parse().unwrap());
    config.rules = Rules::from_json(ALWAYS).unwrap();
    config.emitter.queue_capacity = 4;
    let recorder = Recorder::new(config).unwrap();
    for _ in 0..2_000 {
        recorder.begin_segment("burst", None).end();
    }
    recorder.flush(Duration::from_secs(10));
    let stats = recorder.stats();
    assert_eq!(stats.submitted, 2_000);
    assert_eq!(
        stats.sent + stats.dropped_queue_full + stats.send_errors,
        2_000,
        "{stats:?}"
    );
}

#[test]
fn segments_over_64_kib_send_their_children_separately() {
    let (socket, recorder) = setup(ALWAYS);
    let segment = recorder.begin_segment("exporter", None);
    for i in 0..2 {
        let sub = segment.begin_subsegment(&format!("chunk-{i}"));
        sub.put_metadata("payload", serde_json::json!("x".repeat(40_000)));
        sub.end();
    }
    segment.end();
    recorder.flush(Duration::from_secs(5));
    let docs: Vec<Segment> = (0..3).map(|_| receive(&socket)).collect();
    assert_eq!(docs.iter().filter(|d| d.is_subsegment()).count(), 2);
    assert_eq!(
        docs[2].id,
        segment.id(),
        "the segment comes after its pieces"
    );
    assert_eq!(recorder.stats().dropped_oversize, 0);
}

#[test]
fn recorded_document_snapshot() {
    let (socket, recorder) = setup(ALWAYS);
    let incoming: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        .parse()
        .unwrap();
    let segment = recorder.begin_segment("checkout-api", Some(&incoming));
    segment.set_http_request(roentgen_sdk::model::HttpRequest {
        method: Some("POST".into()),
        url: Some("http://shop.example.com/api/checkout".into()),
        ..Default::default()
    });
    segment.put_annotation("items", 3).unwrap();
    segment.put_metadata("cart", serde_json::json!({"currency": "EUR"}));
    let db = segment.begin_subsegment("orders@db");
    db.set_sql(
        "PostgreSQL",
        "postgresql://db/orders",
        "SELECT 1 FROM t WHERE id = 7",
    );
    db.end();
    segment.set_http_response(503, Some(12));
    segment.end();
    recorder.flush(Duration::from_secs(5));
    let doc = receive(&socket);
    insta::assert_json_snapshot!(doc, {
        ".id" => "[id]",
        ".start_time" => "[time]",
        ".end_time" => "[time]",
        ".subsegments[].id" => "[id]",
        ".subsegments[].start_time" => "[time]",
        ".subsegments[].end_time" => "[time]",
    });
}

#[test]
fn segment_defaults_are_scrubbed_and_only_on_segments() {
    let (socket, recorder) = setup_with(ALWAYS, |config| {
        config.origin = Some("AWS::EC2::Instance".into());
        config.service_version = Some("1.2.3 built by jane.doe@example.com".into());
    });
    let segment = recorder.begin_segment("api", None);
    let late = segment.begin_subsegment("late");
    segment.end();
    late.end();
    recorder.flush(Duration::from_secs(5));
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).unwrap();
    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
    assert!(!text.contains("jane.doe@example.com"), "{text}");
    let first: Segment = serde_json::from_slice(split_datagram(&buf[..n]).unwrap()).unwrap();
    assert_eq!(first.origin.as_deref(), Some("AWS::EC2::Instance"));
    let version = first.service.as_ref().unwrap()["version"].as_str().unwrap();
    assert!(version.starts_with("1.2.3 built by "), "{version}");
    assert_eq!(
        first.aws.as_ref().unwrap()["xray"]["sdk"],
        serde_json::json!("Roentgen for Rust")
    );
    let second = receive(&socket);
    assert!(second.is_subsegment());
    assert!(second.origin.is_none() && second.service.is_none() && second.aws.is_none());
    assert!(recorder.stats().scrubbed_values >= 1);
}

#[test]
fn a_daemon_that_comes_back_gets_the_next_document() {
    // Nobody listens on the port at first: the first document is refused (ICMP port
    // unreachable), which the connected socket reports on the next send.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = {
        let mut config = RecorderConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
        config.rules = Rules::from_json(ALWAYS).unwrap();
        config
    };
    let recorder = Recorder::new(config).unwrap();
    recorder.begin_segment("before", None).end();
    assert!(recorder.flush(Duration::from_secs(10)));
    let daemon = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let after = recorder.begin_segment("after", None);
    after.end();
    assert!(recorder.flush(Duration::from_secs(10)));
    let doc = receive(&daemon);
    assert_eq!(doc.id, after.id());
    assert_eq!(doc.name, "after");
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn errors_are_recorded_with_their_source_chain_and_stack_frames() {
    let (socket, recorder) = setup(ALWAYS);
    let segment = recorder.begin_segment("api", None);
    let error = Outer(std::io::Error::other("connection reset"));
    let backtrace = std::backtrace::Backtrace::force_capture();
    segment.add_error_with_backtrace(&error, &backtrace);
    segment.end();
    recorder.flush(Duration::from_secs(5));
    let doc = receive(&socket);
    assert_eq!(doc.fault, Some(true));
    let Some(roentgen_sdk::model::Cause::Details(details)) = doc.cause else {
        panic!("no cause details");
    };
    let exceptions = details.exceptions.unwrap();
    assert_eq!(exceptions.len(), 2);
    assert_eq!(exceptions[0].message.as_deref(), Some("payment failed"));
    assert_eq!(exceptions[1].message.as_deref(), Some("connection reset"));
    assert_eq!(exceptions[0].cause, exceptions[1].id);
    let stack = exceptions[0].stack.as_ref().expect("stack frames");
    assert!(!stack.is_empty() && stack.len() <= 50);
    assert!(
        stack.iter().any(|f| f
            .label
            .as_deref()
            .unwrap_or("")
            .contains("errors_are_recorded")
            && f.path.as_deref().unwrap_or("").ends_with("recorder.rs")
            && matches!(f.line, Some(Some(n)) if n > 0)),
        "{stack:#?}"
    );
    assert!(exceptions[1].stack.is_none());
}
