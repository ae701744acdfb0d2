//! AWS Signature Version 4: parsing the `Authorization` header and the `X-Amz-*` query form,
//! building the canonical request, and verifying (or, for tests and benches, making) signatures
//! with HMAC-SHA256, so that unmodified AWS clients authenticate with Roentgen keys.

use hmac::{Hmac, Mac};
use roentgen_sdk::model::calendar::{civil_from_days, days_from_civil};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm SigV4 defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Payload hash a client may declare instead of hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Longest lifetime of a presigned (query-string) request, as AWS allows: 7 days.
pub const MAX_EXPIRES_SECS: i64 = 604_800;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No `Authorization` header and no `X-Amz-Algorithm` query parameter.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header or query parameters are not SigV4's form.
    #[error("malformed signature: {0}")]
    Malformed(&'static str),
    /// The credential scope names another service or a date that is not the request's.
    #[error("credential scope is wrong: {0}")]
    Scope(&'static str),
    /// The request time is outside the allowed window.
    #[error("Signature expired or not yet valid: request time {0} is outside the allowed window")]
    Expired(String),
    /// The access key id is unknown or revoked.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    Mismatch,
    /// The same signature was already used.
    #[error("the request was already received (replayed signature)")]
    Replayed,
}

/// The parts of a SigV4 `Authorization` header (or of the query form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Access key id.
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD`.
    pub date: String,
    /// Scope region.
    pub region: String,
    /// Scope service.
    pub service: String,
    /// Signed header names, lower case, in the order given.
    pub signed_headers: Vec<String>,
    /// The signature's 32 bytes.
    pub signature: [u8; 32],
}

/// Parses `Credential=AKID/DATE/REGION/SERVICE/aws4_request`'s value.
fn parse_credential(value: &str) -> Result<(String, String, String, String), SigError> {
    let mut parts = value.rsplitn(5, '/');
    let terminator = parts.next().ok_or(SigError::Malformed("credential"))?;
    let service = parts.next().ok_or(SigError::Malformed("credential"))?;
    let region = parts.next().ok_or(SigError::Malformed("credential"))?;
    let date = parts.next().ok_or(SigError::Malformed("credential"))?;
    let key = parts.next().ok_or(SigError::Malformed("credential"))?;
    if terminator != "aws4_request" {
        return Err(SigError::Malformed(
            "credential scope must end in aws4_request",
        ));
    }
    if key.is_empty() || region.is_empty() || service.is_empty() {
        return Err(SigError::Malformed("credential"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SigError::Malformed("credential date"));
    }
    Ok((key.into(), date.into(), region.into(), service.into()))
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigError> {
    let names: Vec<String> = value.split(';').map(str::to_ascii_lowercase).collect();
    if names.iter().any(String::is_empty) {
        return Err(SigError::Malformed("SignedHeaders"));
    }
    Ok(names)
}

fn parse_signature(value: &str) -> Result<[u8; 32], SigError> {
    let bytes = value.as_bytes();
    if bytes.len() != 64 {
        return Err(SigError::Malformed("Signature must be 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_value(pair[0]).ok_or(SigError::Malformed("Signature"))?;
        let lo = hex_value(pair[1]).ok_or(SigError::Malformed("Signature"))?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
/// header value.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or(SigError::Malformed("algorithm must be AWS4-HMAC-SHA256"))?;
    if !rest.starts_with(' ') {
        return Err(SigError::Malformed("algorithm must be AWS4-HMAC-SHA256"));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (name, value) = field
            .trim()
            .split_once('=')
            .ok_or(SigError::Malformed("field without ="))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return Err(SigError::Malformed("unknown field")),
        };
        if slot.replace(value).is_some() {
            return Err(SigError::Malformed("repeated field"));
        }
    }
    let (access_key_id, date, region, service) =
        parse_credential(credential.ok_or(SigError::Malformed("no Credential"))?)?;
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: parse_signed_headers(
            signed.ok_or(SigError::Malformed("no SignedHeaders"))?,
        )?,
        signature: parse_signature(signature.ok_or(SigError::Malformed("no Signature"))?)?,
    })
}

/// Seconds since the Unix epoch of an `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// `YYYYMMDDTHHMMSSZ` of seconds since the Unix epoch.
pub fn format_amz_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Hex SHA-256 of a payload.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn uri_encode(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn percent_decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(hi), Some(lo)) = (hex_value(b[i + 1]), hex_value(b[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI of a raw (as received, percent-encoded) path: each byte other than
/// unreserved characters and `/` is encoded again, as AWS does for every service but S3.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len() + 8);
    uri_encode(&mut out, path.as_bytes(), true);
    out
}

/// The canonical query string of a raw query, leaving out `X-Amz-Signature` when `presigned`.
fn canonical_query(query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        if presigned && name == "X-Amz-Signature" {
            continue;
        }
        let mut n = String::new();
        uri_encode(&mut n, &percent_decode(name), false);
        let mut v = String::new();
        uri_encode(&mut v, &percent_decode(value), false);
        pairs.push((n, v));
    }
    pairs.sort();
    let mut out = String::new();
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// What is signed: the request line, the headers and the payload hash.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path as received.
    pub path: &'a str,
    /// Raw query (without `?`), possibly empty.
    pub query: &'a str,
    /// Headers, names in any case; repeated names allowed.
    pub headers: &'a [(&'a str, &'a str)],
}

fn canonical_headers(headers: &[(&str, &str)], signed: &[String]) -> Result<String, SigError> {
    let mut out = String::new();
    for name in signed {
        let mut first = true;
        out.push_str(name);
        out.push(':');
        for (n, v) in headers {
            if n.eq_ignore_ascii_case(name) {
                if !first {
                    out.push(',');
                }
                first = false;
                let mut space = false;
                for c in v.trim().chars() {
                    if c == ' ' || c == '\t' {
                        space = true;
                    } else {
                        if space {
                            out.push(' ');
                        }
                        space = false;
                        out.push(c);
                    }
                }
            }
        }
        if first {
            return Err(SigError::Malformed("a signed header is missing"));
        }
        out.push('\n');
    }
    Ok(out)
}

/// The canonical request text.
pub fn canonical_request(
    request: &SignableRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    presigned: bool,
) -> Result<String, SigError> {
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query, presigned),
        canonical_headers(request.headers, signed_headers)?,
        signed_headers.join(";"),
        payload_hash
    ))
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of a secret for a scope (date `YYYYMMDD`, region, service).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The string to sign of a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    )
}

/// Checks `signature` over `text` with `key` in constant time.
fn signature_matches(key: &[u8; 32], text: &str, signature: &[u8; 32]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    mac.update(text.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// A request's signature, found in its header or query string, not yet checked.
#[derive(Debug, Clone)]
pub struct Presented {
    /// The parsed authorization.
    pub auth: Authorization,
    /// `X-Amz-Date` text.
    pub amz_date: String,
    /// Its time, epoch seconds.
    pub time: i64,
    /// `Some(expires)` for the query-string form.
    pub expires: Option<i64>,
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Finds the signature of a request: the `Authorization` header, or `X-Amz-*` query parameters.
pub fn presented(request: &SignableRequest<'_>) -> Result<Presented, SigError> {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    if let Some(value) = header("authorization") {
        let auth = parse_authorization(value)?;
        let amz_date = header("x-amz-date").ok_or(SigError::Malformed("no X-Amz-Date header"))?;
        if !auth.signed_headers.iter().any(|h| h == "x-amz-date") {
            return Err(SigError::Malformed("X-Amz-Date must be signed"));
        }
        return finish(auth, amz_date, None);
    }
    let Some(algorithm) = query_param(request.query, "X-Amz-Algorithm") else {
        return Err(SigError::Missing);
    };
    if algorithm != ALGORITHM {
        return Err(SigError::Malformed("algorithm must be AWS4-HMAC-SHA256"));
    }
    let get = |name: &'static str| {
        query_param(request.query, name)
            .map(|v| String::from_utf8_lossy(&percent_decode(v)).into_owned())
            .ok_or(SigError::Malformed(name))
    };
    let (access_key_id, date, region, service) = parse_credential(&get("X-Amz-Credential")?)?;
    let expires: i64 = get("X-Amz-Expires")?
        .parse()
        .map_err(|_| SigError::Malformed("X-Amz-Expires"))?;
    if !(1..=MAX_EXPIRES_SECS).contains(&expires) {
        return Err(SigError::Malformed("X-Amz-Expires out of range"));
    }
    let auth = Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: parse_signed_headers(&get("X-Amz-SignedHeaders")?)?,
        signature: parse_signature(&get("X-Amz-Signature")?)?,
    };
    finish(auth, &get("X-Amz-Date")?, Some(expires))
}

fn finish(
    auth: Authorization,
    amz_date: &str,
    expires: Option<i64>,
) -> Result<Presented, SigError> {
    let time = parse_amz_date(amz_date).ok_or(SigError::Malformed("X-Amz-Date"))?;
    if !amz_date.starts_with(&auth.date) {
        return Err(SigError::Scope("scope date is not the X-Amz-Date's date"));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed("Host must be signed"));
    }
    Ok(Presented {
        auth,
        amz_date: amz_date.to_owned(),
        time,
        expires,
    })
}

impl Presented {
    /// Checks the request time against `now` (epoch seconds) with `skew` seconds of tolerance.
    pub fn check_time(&self, now: i64, skew: i64) -> Result<(), SigError> {
        let ok = match self.expires {
            None => (self.time - now).abs() <= skew,
            Some(expires) => now >= self.time - skew && now <= self.time + expires,
        };
        if ok {
            Ok(())
        } else {
            Err(SigError::Expired(self.amz_date.clone()))
        }
    }

    /// Checks the signature with the key's `secret` over `request` and `body`.
    pub fn verify(
        &self,
        request: &SignableRequest<'_>,
        body: &[u8],
        secret: &str,
    ) -> Result<(), SigError> {
        let a = &self.auth;
        let scope = format!("{}/{}/{}/aws4_request", a.date, a.region, a.service);
        let key = signing_key(secret, &a.date, &a.region, &a.service);
        let declared = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"))
            .map(|(_, v)| v.trim());
        let body_hash = payload_hash(body);
        let mut candidates: Vec<&str> = Vec::with_capacity(2);
        match declared {
            Some(UNSIGNED_PAYLOAD) => candidates.push(UNSIGNED_PAYLOAD),
            Some(d) if d.eq_ignore_ascii_case(&body_hash) => candidates.push(d),
            Some(_) => return Err(SigError::Mismatch),
            None => {
                candidates.push(&body_hash);
                if self.expires.is_some() {
                    candidates.push(UNSIGNED_PAYLOAD);
                }
            }
        }
        for hash in candidates {
            let canonical =
                canonical_request(request, &a.signed_headers, hash, self.expires.is_some())?;
            let text = string_to_sign(&self.amz_date, &scope, &canonical);
            if signature_matches(&key, &text, &a.signature) {
                return Ok(());
            }
        }
        Err(SigError::Mismatch)
    }
}

/// Who signs: a key and a scope.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret: &'a str,
    /// Region of the scope.
    pub region: &'a str,
    /// Service of the scope (`xray`).
    pub service: &'a str,
}

impl Signer<'_> {
    /// The `Authorization` header value for `request` (which must carry `host` and `x-amz-date`
    /// headers, all of which are signed) at `amz_date`.
    pub fn authorization(
        &self,
        request: &SignableRequest<'_>,
        body: &[u8],
        amz_date: &str,
    ) -> Result<String, SigError> {
        let signed = signed_names(request);
        let scope = self.scope(amz_date)?;
        let canonical = canonical_request(request, &signed, &payload_hash(body), false)?;
        Ok(format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
            self.access_key_id,
            signed.join(";"),
            self.signature(amz_date, &scope, &canonical)
        ))
    }

    /// The query string of a presigned (query-form) `request`: its own query followed by the
    /// `X-Amz-*` parameters and the signature, valid for `expires` seconds from `amz_date`.
    /// Every header of `request` is signed (it must carry `host`); the payload is unsigned.
    pub fn presign(
        &self,
        request: &SignableRequest<'_>,
        amz_date: &str,
        expires: i64,
    ) -> Result<String, SigError> {
        let signed = signed_names(request);
        let scope = self.scope(amz_date)?;
        let mut query = request.query.to_owned();
        let mut param = |name: &str, value: &str| {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(name);
            query.push('=');
            uri_encode(&mut query, value.as_bytes(), false);
        };
        param("X-Amz-Algorithm", ALGORITHM);
        param(
            "X-Amz-Credential",
            &format!("{}/{scope}", self.access_key_id),
        );
        param("X-Amz-Date", amz_date);
        param("X-Amz-Expires", &expires.to_string());
        param("X-Amz-SignedHeaders", &signed.join(";"));
        let with_params = SignableRequest {
            query: &query,
            ..*request
        };
        let canonical = canonical_request(&with_params, &signed, UNSIGNED_PAYLOAD, true)?;
        let signature = self.signature(amz_date, &scope, &canonical);
        Ok(format!("{query}&X-Amz-Signature={signature}"))
    }

    /// The credential scope at `amz_date`: `DATE/REGION/SERVICE/aws4_request`.
    fn scope(&self, amz_date: &str) -> Result<String, SigError> {
        let date = amz_date.get(..8).ok_or(SigError::Malformed("X-Amz-Date"))?;
        Ok(format!(
            "{date}/{}/{}/aws4_request",
            self.region, self.service
        ))
    }

    /// The hex signature of a canonical request.
    fn signature(&self, amz_date: &str, scope: &str, canonical: &str) -> String {
        let date = scope.get(..8).unwrap_or_default();
        let text = string_to_sign(amz_date, scope, canonical);
        hex(&hmac(
            &signing_key(self.secret, date, self.region, self.service),
            text.as_bytes(),
        ))
    }
}

/// The names of a request's headers to sign: lower case, sorted, once each, without
/// `authorization`.
fn signed_names(request: &SignableRequest<'_>) -> Vec<String> {
    let mut signed: Vec<String> = request
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n != "authorization")
        .collect();
    signed.sort();
    signed.dedup();
    signed
}

#[cfg(test)]
mod tests;
