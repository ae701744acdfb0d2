//! AWS Signature Version 4 for the daemon's `PutTraceSegments` requests, so that a collector
//! with authentication on (or any X-Ray-compatible endpoint) knows which principal sends.

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use roentgen_sdk::model::calendar::civil_from_days;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The daemon's access key and the region it signs for.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never logged).
    pub secret_access_key: String,
    /// Region of the credential scope.
    pub region: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// `YYYYMMDDTHHMMSSZ` of a time.
pub fn amz_date(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Headers that sign a `POST` of `body` to `url`: `(x-amz-date, x-amz-content-sha256,
/// authorization)`. The `host` header signed is the URL's, as the HTTP client sends it.
pub fn sign_post(
    credentials: &Credentials,
    url: &reqwest::Url,
    body: &[u8],
    at: SystemTime,
) -> (String, String, String) {
    let date = amz_date(at);
    let day = &date[..8];
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut path = String::new();
    for b in url.path().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            path.push(b as char);
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
    let payload = hex(&Sha256::digest(body));
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "POST\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{date}\n\n{signed}\n{payload}"
    );
    let scope = format!("{day}/{}/xray/aws4_request", credentials.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    let k_region = hmac(&k_date, credentials.region.as_bytes());
    let k_service = hmac(&k_region, b"xray");
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key_id
    );
    (date, payload, authorization)
}

/// A `POST` of `body` to `url` with `content_type`, SigV4-signed now when `credentials` are
/// given (the forwarder, the sampling proxy and telemetry all send this way).
pub fn post<B>(
    client: &reqwest::Client,
    url: &reqwest::Url,
    credentials: Option<&Credentials>,
    content_type: &str,
    body: B,
) -> reqwest::RequestBuilder
where
    B: AsRef<[u8]> + Into<reqwest::Body>,
{
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, content_type);
    if let Some(credentials) = credentials {
        let (date, payload, authorization) =
            sign_post(credentials, url, body.as_ref(), SystemTime::now());
        request = request
            .header("x-amz-date", date)
            .header("x-amz-content-sha256", payload)
            .header(reqwest::header::AUTHORIZATION, authorization);
    }
    request.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_a_known_signature() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(amz_date(SystemTime::UNIX_EPOCH), "19700101T000000Z");
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
        };
        let url = reqwest::Url::parse("http://127.0.0.1:4000/TraceSegments").unwrap();
        let (date, payload, auth) = sign_post(&c, &url, b"{}", t);
        assert_eq!(date, "20150830T123600Z");
        assert_eq!(payload, hex(&Sha256::digest(b"{}")));
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/xray/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert!(!format!("{c:?}").contains("wJalr"));
    }
}
