//! SigV4's query-string (presigned URL) form as the collector checks it: `presented`, the time
//! check and `verify` over a request built from the input (line 1: the query string; line 2:
//! the `Host` header; further lines: `name: value` headers). And whatever `Signer::presign`
//! makes of the input's own parameters, the verifier accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_web::auth::sigv4::{MAX_EXPIRES_SECS, SignableRequest, Signer, presented};

const SECRET: &str = "fuzz-secret";
const AMZ_DATE: &str = "20261204T120000Z";
/// `AMZ_DATE` in epoch seconds.
const NOW: i64 = 1_796_385_600;

/// A header line as HTTP (and `HeaderValue::to_str`) lets it reach the collector. A declared
/// payload hash is left out: presigned requests sign `UNSIGNED-PAYLOAD`.
fn header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let visible = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b);
    (!name.is_empty()
        && name.bytes().all(token)
        && value.bytes().all(visible)
        && !name.eq_ignore_ascii_case("authorization")
        && !name.eq_ignore_ascii_case("x-amz-content-sha256"))
    .then_some((name, value))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or_default();
    let host = lines.next().unwrap_or("127.0.0.1:4000");
    let mut headers = vec![("host", host)];
    headers.extend(lines.filter_map(header));
    let request = SignableRequest {
        method: "GET",
        path: "/traces",
        query,
        headers: &headers,
    };
    if let Ok(p) = presented(&request) {
        assert!(
            p.expires
                .is_some_and(|e| (1..=MAX_EXPIRES_SECS).contains(&e))
        );
        assert!(p.auth.signed_headers.iter().any(|h| h == "host"));
        let _ = p.check_time(NOW, 300);
        let _ = p.verify(&request, b"", SECRET);
    }

    let own: Vec<&str> = query
        .split('&')
        .filter(|part| !part.starts_with("X-Amz-"))
        .collect();
    let own = own.join("&");
    let signer = Signer {
        access_key_id: "RKIAFUZZ",
        secret: SECRET,
        region: "us-east-1",
        service: "xray",
    };
    let unsigned = SignableRequest {
        query: &own,
        ..request
    };
    let Ok(signed_query) = signer.presign(&unsigned, AMZ_DATE, 300) else {
        return;
    };
    let signed = SignableRequest {
        query: &signed_query,
        ..request
    };
    let p = presented(&signed).unwrap_or_else(|e| panic!("{signed_query:?}: {e}"));
    p.check_time(NOW, 0)
        .unwrap_or_else(|e| panic!("{signed_query:?}: {e}"));
    p.verify(&signed, b"", SECRET)
        .unwrap_or_else(|e| panic!("{signed_query:?} {headers:?}: {e}"));
});
