//! Bounds on what one request can make the collector do, over real HTTP: bodies of unsigned,
//! unknown-key and oversized requests are refused before they are read, and graph and
//! time-series windows are bounded (`--max-query-window-hours`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use roentgen_web::auth::sigv4::format_amz_date;

use crate::security::{aws, create_key, now, start_collector};

/// Sends only the head of a POST declaring `length` body bytes (plus 1 KiB of it) and returns
/// the status line and the response text, which must come without the rest of the body.
fn head_only(address: &str, path: &str, length: u64, extra_headers: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra_headers}\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(&[b' '; 1024]).expect("send a little body");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the response's own body is in (the server closes or we have the JSON).
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.ends_with(b"}") {
                    break;
                }
            }
            Err(e) => panic!(
                "no answer without the body ({e}); got {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, text)
}

#[test]
fn bodies_of_unsigned_unknown_key_and_oversized_requests_are_not_read() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let reader = create_key(&keys, "reader", "xray:Get*");
    let (collector, _) = start_collector(dir.path());
    let address = collector.address.as_str();
    let ten_mb = 10 * 1024 * 1024;

    let (status, text) = head_only(address, "/TraceSummaries", ten_mb, "");
    assert!(status.contains(" 403 "), "{text}");
    assert!(
        text.contains("MissingAuthenticationTokenException"),
        "{text}"
    );

    let date = format_amz_date(now() as i64);
    let day = &date[..8];
    let unknown = format!(
        "X-Amz-Date: {date}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=RKIAUNKNOWNKEY000000/{day}/us-east-1/xray/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\n",
        "0".repeat(64)
    );
    let (status, text) = head_only(address, "/TraceSummaries", ten_mb, &unknown);
    assert!(status.contains(" 403 "), "{text}");
    assert!(text.contains("UnrecognizedClientException"), "{text}");

    // A known key, but a body over the 16 MiB limit by its own declaration.
    let known = format!(
        "X-Amz-Date: {date}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{day}/us-east-1/xray/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\n",
        reader.id,
        "0".repeat(64)
    );
    let (status, text) = head_only(address, "/TraceSummaries", 17 * 1024 * 1024, &known);
    assert!(status.contains(" 413 "), "{text}");

    // The collector still serves.
    let (ok, _, err) = aws(&collector, &reader, &["get-groups"]);
    assert!(ok, "{err}");
}

#[test]
fn graph_and_time_series_windows_are_bounded_and_the_bound_is_a_flag() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let reader = create_key(&keys, "reader", "xray:Get*");
    let (collector, _) = start_collector(dir.path());
    let end = now() as u64;
    let window = |hours: u64| [format!("{}", end - hours * 3600), format!("{end}")];
    for op in ["get-service-graph", "get-time-series-service-statistics"] {
        let run = |c: &roentgen_tests::web::Collector, hours: u64| {
            let [start, end] = window(hours);
            aws(
                c,
                &reader,
                &[op, "--start-time", &start, "--end-time", &end],
            )
        };
        let (ok, _, err) = run(&collector, 24);
        assert!(ok, "{op} over 24 h: {err}");
        let (ok, _, err) = run(&collector, 25);
        assert!(
            !ok && err.contains("InvalidRequestException"),
            "{op}: {err}"
        );
        assert!(err.contains("--max-query-window-hours"), "{err}");
    }
    drop(collector);
    let data = dir.path().join("data");
    let wide = roentgen_tests::web::Collector::start(
        &data,
        &[
            "--auth-keys",
            keys.to_str().expect("test setup"),
            "--max-query-window-hours",
            "48",
        ],
    );
    let [start, end] = window(30);
    let (ok, _, err) = aws(
        &wide,
        &reader,
        &[
            "get-service-graph",
            "--start-time",
            &start,
            "--end-time",
            &end,
        ],
    );
    assert!(ok, "30 h under --max-query-window-hours 48: {err}");
}
