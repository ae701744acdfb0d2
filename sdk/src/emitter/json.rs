//! The emitter's JSON writer for segment documents: the same bytes as `serde_json::to_writer`
//! on a [`Segment`], at a fraction of the cost.
//!
//! Serializing through serde spends most of its time escaping every key and string one byte at
//! a time. Here keys are pre-escaped literals, strings are scanned eight bytes at a time and
//! copied in runs, and ids are formatted from stack buffers. Rare blocks (`cause`, precursor
//! ids) and number formatting still go through `serde_json`, so their output is identical by
//! construction. The struct blocks are destructured exhaustively: a field added to the model
//! does not compile here until it is written, and the tests compare the output byte for byte
//! with `serde_json` on the official SDKs' captures.

use serde::Serialize;
use serde_json::{Map, Value};

use super::SegmentDefaults;
use crate::model::{Http, HttpRequest, HttpResponse, Segment, SegmentId, Sql, TraceId};

/// The emitter's [`SegmentDefaults`], rendered once as JSON values.
#[derive(Debug, Default)]
pub(crate) struct RenderedDefaults {
    origin: Option<Vec<u8>>,
    service: Option<Vec<u8>>,
    aws: Option<Vec<u8>>,
}

impl RenderedDefaults {
    /// Renders `defaults` (already scrubbed by the caller).
    pub(crate) fn new(defaults: &SegmentDefaults) -> Result<Self, serde_json::Error> {
        let render_map = |map: &Option<Map<String, Value>>| {
            map.as_ref()
                .map(|m| {
                    let mut out = Vec::new();
                    write_map(&mut out, m).map(|()| out)
                })
                .transpose()
        };
        Ok(Self {
            origin: defaults.origin.as_ref().map(|v| {
                let mut out = Vec::new();
                write_str(&mut out, v);
                out
            }),
            service: render_map(&defaults.service)?,
            aws: render_map(&defaults.aws)?,
        })
    }
}

/// Appends `segment` as compact JSON, exactly as `serde_json::to_writer` would after
/// [`SegmentDefaults::apply`]: a segment (not a subsegment) without `origin`, `service` or
/// `aws` gets the defaults' rendering.
pub(crate) fn write_document(
    out: &mut Vec<u8>,
    segment: &Segment,
    defaults: &RenderedDefaults,
) -> Result<(), serde_json::Error> {
    let defaults = (!segment.is_subsegment()).then_some(defaults);
    write_segment_with(out, segment, defaults)
}

/// Appends `segment` as compact JSON, exactly as `serde_json::to_writer` would, several times
/// faster (the emitter's serializer).
pub fn write_segment(out: &mut Vec<u8>, segment: &Segment) -> Result<(), serde_json::Error> {
    write_segment_with(out, segment, None)
}

fn write_segment_with(
    out: &mut Vec<u8>,
    segment: &Segment,
    defaults: Option<&RenderedDefaults>,
) -> Result<(), serde_json::Error> {
    let Segment {
        name,
        id,
        trace_id,
        parent_id,
        start_time,
        end_time,
        in_progress,
        kind,
        namespace,
        origin,
        user,
        service,
        http,
        sql,
        aws,
        error,
        throttle,
        fault,
        cause,
        annotations,
        metadata,
        subsegments,
        precursor_ids,
        traced,
        resource_arn,
        extra,
    } = segment;
    out.extend_from_slice(b"{\"name\":");
    write_str(out, name);
    out.extend_from_slice(b",\"id\":");
    write_segment_id(out, *id);
    let mut o = Object { first: false };
    if let Some(v) = trace_id {
        o.key(out, "trace_id");
        write_trace_id(out, *v);
    }
    if let Some(v) = parent_id {
        o.key(out, "parent_id");
        write_segment_id(out, *v);
    }
    o.key(out, "start_time");
    leaf(out, start_time)?;
    o.opt_leaf(out, "end_time", end_time)?;
    o.opt_bool(out, "in_progress", *in_progress);
    o.opt_str(out, "type", kind);
    o.opt_str(out, "namespace", namespace);
    o.opt_str(out, "origin", origin);
    if origin.is_none() {
        o.opt_raw(out, "origin", defaults.and_then(|d| d.origin.as_deref()));
    }
    o.opt_str(out, "user", user);
    o.opt_map(out, "service", service)?;
    if service.is_none() {
        o.opt_raw(out, "service", defaults.and_then(|d| d.service.as_deref()));
    }
    if let Some(v) = http {
        o.key(out, "http");
        write_http(out, v)?;
    }
    if let Some(v) = sql {
        o.key(out, "sql");
        write_sql(out, v)?;
    }
    o.opt_map(out, "aws", aws)?;
    if aws.is_none() {
        o.opt_raw(out, "aws", defaults.and_then(|d| d.aws.as_deref()));
    }
    o.opt_bool(out, "error", *error);
    o.opt_bool(out, "throttle", *throttle);
    o.opt_bool(out, "fault", *fault);
    o.opt_leaf(out, "cause", cause)?;
    o.opt_map(out, "annotations", annotations)?;
    o.opt_map(out, "metadata", metadata)?;
    if let Some(children) = subsegments {
        o.key(out, "subsegments");
        out.push(b'[');
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_segment(out, child)?;
        }
        out.push(b']');
    }
    o.opt_leaf(out, "precursor_ids", precursor_ids)?;
    o.opt_bool(out, "traced", *traced);
    o.opt_str(out, "resource_arn", resource_arn);
    o.extra(out, extra)?;
    out.push(b'}');
    Ok(())
}

fn write_http(out: &mut Vec<u8>, http: &Http) -> Result<(), serde_json::Error> {
    let Http {
        request,
        response,
        extra,
    } = http;
    out.push(b'{');
    let mut o = Object { first: true };
    if let Some(request) = request {
        o.key(out, "request");
        let HttpRequest {
            method,
            url,
            user_agent,
            client_ip,
            x_forwarded_for,
            traced,
            extra,
        } = request;
        out.push(b'{');
        let mut r = Object { first: true };
        r.opt_str(out, "method", method);
        r.opt_str(out, "url", url);
        r.opt_str(out, "user_agent", user_agent);
        r.opt_str(out, "client_ip", client_ip);
        r.opt_bool(out, "x_forwarded_for", *x_forwarded_for);
        r.opt_bool(out, "traced", *traced);
        r.extra(out, extra)?;
        out.push(b'}');
    }
    if let Some(response) = response {
        o.key(out, "response");
        let HttpResponse {
            status,
            content_length,
            extra,
        } = response;
        out.push(b'{');
        let mut r = Object { first: true };
        r.opt_leaf(out, "status", status)?;
        r.opt_leaf(out, "content_length", content_length)?;
        r.extra(out, extra)?;
        out.push(b'}');
    }
    o.extra(out, extra)?;
    out.push(b'}');
    Ok(())
}

fn write_sql(out: &mut Vec<u8>, sql: &Sql) -> Result<(), serde_json::Error> {
    let Sql {
        connection_string,
        url,
        sanitized_query,
        database_type,
        database_version,
        driver_version,
        user,
        preparation,
        extra,
    } = sql;
    out.push(b'{');
    let mut o = Object { first: true };
    o.opt_str(out, "connection_string", connection_string);
    o.opt_str(out, "url", url);
    o.opt_str(out, "sanitized_query", sanitized_query);
    o.opt_str(out, "database_type", database_type);
    o.opt_str(out, "database_version", database_version);
    o.opt_str(out, "driver_version", driver_version);
    o.opt_str(out, "user", user);
    o.opt_str(out, "preparation", preparation);
    o.extra(out, extra)?;
    out.push(b'}');
    Ok(())
}

/// The separator state of one JSON object being written.
struct Object {
    first: bool,
}

impl Object {
    /// Writes the separator and `"key":`; `key` must not need escaping (model field names).
    fn key(&mut self, out: &mut Vec<u8>, key: &str) {
        if self.first {
            self.first = false;
            out.push(b'"');
        } else {
            out.extend_from_slice(b",\"");
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    }

    fn opt_str(&mut self, out: &mut Vec<u8>, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.key(out, key);
            write_str(out, v);
        }
    }

    fn opt_raw(&mut self, out: &mut Vec<u8>, key: &str, json: Option<&[u8]>) {
        if let Some(v) = json {
            self.key(out, key);
            out.extend_from_slice(v);
        }
    }

    fn opt_bool(&mut self, out: &mut Vec<u8>, key: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.key(out, key);
            out.extend_from_slice(if v { b"true" } else { b"false" });
        }
    }

    fn opt_leaf<T: Serialize>(
        &mut self,
        out: &mut Vec<u8>,
        key: &str,
        value: &Option<T>,
    ) -> Result<(), serde_json::Error> {
        if let Some(v) = value {
            self.key(out, key);
            leaf(out, v)?;
        }
        Ok(())
    }

    fn opt_map(
        &mut self,
        out: &mut Vec<u8>,
        key: &str,
        value: &Option<Map<String, Value>>,
    ) -> Result<(), serde_json::Error> {
        if let Some(map) = value {
            self.key(out, key);
            write_map(out, map)?;
        }
        Ok(())
    }

    /// The flattened unknown fields, after the known ones (as serde's `flatten` writes them).
    fn extra(
        &mut self,
        out: &mut Vec<u8>,
        extra: &Map<String, Value>,
    ) -> Result<(), serde_json::Error> {
        for (k, v) in extra {
            if self.first {
                self.first = false;
            } else {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            write_value(out, v)?;
        }
        Ok(())
    }
}

/// A value `serde_json` formats (numbers, rare blocks), written by `serde_json` itself.
fn leaf<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    value.serialize(&mut serde_json::Serializer::new(out))
}

fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), serde_json::Error> {
    out.push(b'{');
    let mut first = true;
    for (k, v) in map {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => leaf(out, n)?,
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_map(out, map)?,
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(mut value: u128, out: &mut [u8]) {
    for byte in out.iter_mut().rev() {
        *byte = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn write_segment_id(out: &mut Vec<u8>, id: SegmentId) {
    let mut buf = [b'"'; 18];
    hex_into(u128::from(id.as_u64()), &mut buf[1..17]);
    out.extend_from_slice(&buf);
}

fn write_trace_id(out: &mut Vec<u8>, id: TraceId) {
    // "1-" + 8 hex digits of the epoch second + "-" + 24 hex digits of random bits.
    let mut buf = [b'"'; 2 + 2 + 8 + 1 + 24];
    buf[1] = b'1';
    buf[2] = b'-';
    hex_into(u128::from(id.epoch_seconds()), &mut buf[3..11]);
    buf[11] = b'-';
    hex_into(id.random_bits(), &mut buf[12..36]);
    out.extend_from_slice(&buf);
}

/// Whether any of the 8 bytes in `chunk` needs escaping: a control character, `"` or `\`.
fn chunk_needs_escape(chunk: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGH;
    (below_space
        | has_zero(chunk ^ (ONES * u64::from(b'"')))
        | has_zero(chunk ^ (ONES * u64::from(b'\\'))))
        != 0
}

fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes `s` as a JSON string with `serde_json`'s escapes (`\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t`, other control characters as `\u00xx`; everything else as is).
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if chunk_needs_escape(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        if let Some(tail) = bytes.get(i..).filter(|t| t.len() < 8) {
            // The last few bytes, padded with a byte that needs no escape.
            let mut word = [b'a'; 8];
            word[..tail.len()].copy_from_slice(tail);
            if !chunk_needs_escape(u64::from_le_bytes(word)) {
                break;
            }
        }
        let Some(&b) = bytes.get(i) else { break };
        if byte_needs_escape(b) {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::split_datagram;
    use proptest::prelude::*;

    fn same_as_serde(segment: &Segment) {
        let expected = serde_json::to_vec(segment).unwrap();
        let mut out = Vec::new();
        write_segment(&mut out, segment).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn captured_documents_serialize_byte_for_byte_like_serde() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures");
        let mut documents = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for block in text.split("--- datagram ").skip(1) {
                let body = block.split_once("---\n").unwrap().1.trim_end();
                let json = split_datagram(body.as_bytes()).unwrap();
                let segment: Segment = serde_json::from_slice(json).unwrap();
                same_as_serde(&segment);
                documents += 1;
            }
        }
        assert!(documents >= 30, "only {documents} captured documents");
    }

    #[test]
    fn every_block_and_unknown_fields_serialize_like_serde() {
        let segment: Segment = serde_json::from_str(
            r#"{"name":"a\"b\\c\n\u0001é","id":"0123456789abcdef",
            "trace_id":"1-5759e988-bd862e3fe1be46a994272793","parent_id":"00000000000000ff",
            "start_time":1.5,"end_time":2.25,"in_progress":false,"type":"subsegment",
            "namespace":"remote","origin":"AWS::EC2::Instance","user":"u",
            "service":{"version":"1"},
            "http":{"request":{"method":"GET","url":"http://x/\u0000","user_agent":"ua",
              "client_ip":"1.2.3.4","x_forwarded_for":true,"traced":false,"odd":[1,null]},
              "response":{"status":404,"content_length":12,"more":{"a":-1.5e300}},"h":"x"},
            "sql":{"connection_string":"c","url":"u","sanitized_query":"q","database_type":"t",
              "database_version":"v","driver_version":"d","user":"u","preparation":"call","z":1},
            "aws":{"xray":{"sdk":"s"}},"error":true,"throttle":false,"fault":true,
            "cause":{"working_directory":"/w","exceptions":[{"id":"0000000000000001","message":"m"}]},
            "annotations":{"k":"v","n":7,"f":0.1,"b":true},
            "metadata":{"default":{"deep":{"list":[{},[],"s\t"]}}},
            "subsegments":[{"name":"c","id":"0000000000000002","start_time":3,"end_time":4,
              "cause":"0000000000000003"}],
            "precursor_ids":["0000000000000004"],"traced":true,"resource_arn":"arn:x",
            "unknown":{"kept":true},"zz":"last"}"#,
        )
        .unwrap();
        same_as_serde(&segment);
        same_as_serde(&Segment::default());
    }

    #[test]
    fn defaults_render_as_if_applied() {
        let mut aws = Map::new();
        aws.insert(
            "xray".into(),
            serde_json::json!({"sdk": "Roentgen", "sdk_version": "1"}),
        );
        let mut service = Map::new();
        service.insert("version".into(), Value::String("1.2.3".into()));
        let defaults = SegmentDefaults {
            origin: Some("AWS::EC2::Instance".into()),
            service: Some(service),
            aws: Some(aws),
        };
        let rendered = RenderedDefaults::new(&defaults).unwrap();
        let mut own = Map::new();
        own.insert("own".into(), Value::Bool(true));
        let child = Segment {
            name: "child".into(),
            ..Segment::default()
        };
        for (kind, origin, aws) in [
            (None, None, None),
            (None, Some("mine".to_owned()), Some(own.clone())),
            (Some("subsegment".to_owned()), None, None),
        ] {
            let segment = Segment {
                name: "s".into(),
                kind,
                origin,
                aws,
                subsegments: Some(vec![child.clone()]),
                ..Segment::default()
            };
            let mut applied = segment.clone();
            defaults.apply(&mut applied);
            let mut out = Vec::new();
            write_document(&mut out, &segment, &rendered).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&applied).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn strings_escape_like_serde(s in any::<String>(), ascii in "[ -~\\x00-\\x1f]{0,40}") {
            for text in [&s, &ascii] {
                let mut out = Vec::new();
                write_str(&mut out, text);
                prop_assert_eq!(out, serde_json::to_vec(text).unwrap());
            }
        }

        #[test]
        fn ids_format_like_serde(epoch in any::<u32>(), random in any::<u128>(), id in any::<u64>()) {
            let trace = TraceId::from_parts(epoch, random);
            let mut out = Vec::new();
            write_trace_id(&mut out, trace);
            prop_assert_eq!(&out, &serde_json::to_vec(&trace).unwrap());
            let segment = SegmentId::from_u64(id);
            out.clear();
            write_segment_id(&mut out, segment);
            prop_assert_eq!(&out, &serde_json::to_vec(&segment).unwrap());
        }
    }
}
