//! SigV4 against the published AWS vectors, and the refusals.

use super::*;

fn vectors() -> Vec<serde_json::Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sigv4/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn headers_of(v: &serde_json::Value) -> Vec<(String, String)> {
    v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn published_vectors_verify_and_sign_the_same() {
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let expected = v["authorization"].as_str().unwrap();
        let owned = headers_of(&v);
        let headers: Vec<(&str, &str)> = owned
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let base = SignableRequest {
            method: v["method"].as_str().unwrap(),
            path: v["path"].as_str().unwrap(),
            query: v["query"].as_str().unwrap(),
            headers: &headers,
        };
        let body = v["body"].as_str().unwrap().as_bytes();
        let auth = parse_authorization(expected).unwrap();
        let signer = Signer {
            access_key_id: v["access_key_id"].as_str().unwrap(),
            secret: v["secret"].as_str().unwrap(),
            region: &auth.region,
            service: &auth.service,
        };
        let amz_date = owned
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date"))
            .unwrap()
            .1
            .clone();
        assert_eq!(
            signer.authorization(&base, body, &amz_date).unwrap(),
            expected,
            "{name}"
        );
        let mut with_auth = headers.clone();
        with_auth.push(("Authorization", expected));
        let request = SignableRequest {
            headers: &with_auth,
            ..base
        };
        let presented = presented(&request).unwrap();
        presented.verify(&request, body, signer.secret).unwrap();
        assert_eq!(
            presented.verify(&request, body, "not-the-secret"),
            Err(SigError::Mismatch),
            "{name}"
        );
        let time = parse_amz_date(&amz_date).unwrap();
        presented.check_time(time + 299, 300).unwrap();
        assert!(presented.check_time(time + 301, 300).is_err());
        assert!(presented.check_time(time - 301, 300).is_err());
    }
}

#[test]
fn amz_dates_round_trip() {
    assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
    assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
    for t in [0, 951_782_400, 1_709_164_800, 4_102_444_799] {
        assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
    }
    for bad in [
        "",
        "20150830T123600",
        "2015083OT123600Z",
        "20151330T123600Z",
        "20150830T246000Z",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

#[test]
fn malformed_headers_are_refused() {
    let good = "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    let a = parse_authorization(good).unwrap();
    assert_eq!(a.access_key_id, "AK");
    assert_eq!(a.service, "xray");
    assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
    for bad in [
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA1 Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AK/2015/us-east-1/xray/aws4_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws5_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host;;x, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/xray/aws4_request, Credential=AK/20150830/us-east-1/xray/aws4_request, SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ] {
        assert!(parse_authorization(bad).is_err(), "{bad}");
    }
}

#[test]
fn query_string_form_verifies_and_expires() {
    let signer_secret = "s3cr3t";
    let amz_date = "20261129T010000Z";
    let scope = "20261129/eu-west-1/xray/aws4_request";
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F{}&X-Amz-Date={amz_date}&X-Amz-Expires=60&X-Amz-SignedHeaders=host",
        scope.replace('/', "%2F")
    );
    let headers = [("host", "127.0.0.1:4000")];
    let base = SignableRequest {
        method: "POST",
        path: "/TraceSummaries",
        query: &query,
        headers: &headers,
    };
    let canonical = canonical_request(&base, &["host".to_owned()], UNSIGNED_PAYLOAD, true).unwrap();
    let text = string_to_sign(amz_date, scope, &canonical);
    let sig = hmac(
        &signing_key(signer_secret, "20261129", "eu-west-1", "xray"),
        text.as_bytes(),
    );
    let full = format!("{query}&X-Amz-Signature={}", hex(&sig));
    let request = SignableRequest {
        query: &full,
        ..base
    };
    let p = presented(&request).unwrap();
    assert_eq!(p.expires, Some(60));
    p.verify(&request, b"{}", signer_secret).unwrap();
    let t = parse_amz_date(amz_date).unwrap();
    p.check_time(t + 60, 300).unwrap();
    assert!(p.check_time(t + 61, 300).is_err());
    let no_sig = SignableRequest { query: "", ..base };
    assert_eq!(presented(&no_sig).unwrap_err(), SigError::Missing);
}

/// Key `AK` with secret `s`, for `xray` in `us-east-1`.
const SIGNER: Signer<'static> = Signer {
    access_key_id: "AK",
    secret: "s",
    region: "us-east-1",
    service: "xray",
};

#[test]
fn a_changed_body_or_path_breaks_the_signature() {
    let headers = [("host", "h"), ("x-amz-date", "20261129T010000Z")];
    let request = SignableRequest {
        method: "POST",
        path: "/TraceSegments",
        query: "",
        headers: &headers,
    };
    let auth = SIGNER
        .authorization(&request, b"{\"a\":1}", "20261129T010000Z")
        .unwrap();
    let mut signed = headers.to_vec();
    signed.push(("authorization", &auth));
    let ok = SignableRequest {
        headers: &signed,
        ..request
    };
    let p = presented(&ok).unwrap();
    p.verify(&ok, b"{\"a\":1}", "s").unwrap();
    assert_eq!(p.verify(&ok, b"{\"a\":2}", "s"), Err(SigError::Mismatch));
    let moved = SignableRequest {
        path: "/TraceSummaries",
        ..ok
    };
    assert_eq!(p.verify(&moved, b"{\"a\":1}", "s"), Err(SigError::Mismatch));
}

#[test]
fn presigned_queries_verify_until_they_expire() {
    let headers = [("Host", "127.0.0.1:4000")];
    let request = SignableRequest {
        method: "GET",
        path: "/traces",
        query: "filter=fault%20AND%20ok&x=a+b",
        headers: &headers,
    };
    let query = SIGNER.presign(&request, "20261204T120000Z", 90).unwrap();
    let signed = SignableRequest {
        query: &query,
        ..request
    };
    let p = presented(&signed).unwrap();
    assert_eq!((p.auth.region.as_str(), p.expires), ("us-east-1", Some(90)));
    p.verify(&signed, b"", "s").unwrap();
    assert_eq!(p.verify(&signed, b"", "t"), Err(SigError::Mismatch));
    let t = parse_amz_date("20261204T120000Z").unwrap();
    assert!(p.check_time(t + 90, 0).is_ok() && p.check_time(t + 91, 0).is_err());
}
