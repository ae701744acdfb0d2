//! Realistic synthetic traffic for the load generator, the benchmarks and the tests: X-Ray
//! datagrams of about 620 bytes shaped like what the official SDKs send for a web request with
//! one downstream call, with unique ids so that every delivered document can be accounted for.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use roentgen_sdk::model::DAEMON_HEADER;

pub mod collector;

const SENTINEL: u64 = 0x0123_4567_89ab_cdef;
const SUB_MASK: u64 = 0xa5a5_a5a5_0000_0000;

/// Writes datagram number `seq` of a run tagged `run` into `out` (cleared first). The
/// document's `id` is `seq` in hex, and its `trace_id` encodes `run`, so a collector can count
/// what arrived per run and detect duplicates.
pub fn datagram(run: u32, seq: u64, out: &mut Vec<u8>) {
    out.clear();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(1.0e9);
    let epoch = now as u64;
    let mut s = String::with_capacity(700);
    s.push_str(DAEMON_HEADER);
    s.push('\n');
    let _ = write!(
        s,
        concat!(
            "{{\"id\":\"{seq:016x}\",\"name\":\"checkout-api\",\"start_time\":{start:.6},",
            "\"end_time\":{end:.6},\"trace_id\":\"1-{epoch:08x}-{run:08x}{seq:016x}\",",
            "\"http\":{{\"request\":{{\"method\":\"POST\",\"url\":\"https://shop.example.com/api/checkout?item={item}\",",
            "\"user_agent\":\"load-generator/1.0\",\"client_ip\":\"10.0.{a}.{b}\"}},",
            "\"response\":{{\"status\":200,\"content_length\":{len}}}}},",
            "\"annotations\":{{\"tier\":\"gold\",\"items\":{items}}},",
            "\"subsegments\":[{{\"id\":\"{sub:016x}\",\"name\":\"orders-db\",\"start_time\":{sub_start:.6},",
            "\"end_time\":{sub_end:.6},\"namespace\":\"remote\",",
            "\"sql\":{{\"database_type\":\"PostgreSQL\",",
            "\"sanitized_query\":\"SELECT id, total FROM orders WHERE customer_id = $1\"}}}}]}}"
        ),
        seq = seq,
        start = now - 0.05,
        end = now,
        epoch = epoch,
        run = run,
        item = seq % 977,
        a = (seq >> 8) % 256,
        b = seq % 256,
        len = 200 + seq % 800,
        items = 1 + seq % 9,
        sub = seq ^ SUB_MASK,
        sub_start = now - 0.04,
        sub_end = now - 0.01,
    );
    out.extend_from_slice(s.as_bytes());
}

/// A pre-rendered datagram whose sequence number is patched in place, so a load generator can
/// produce unique documents at hundreds of thousands per second without formatting each one.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    seq_at: Vec<usize>,
    sub_at: Vec<usize>,
}

fn positions(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn write_hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().take(16).enumerate() {
        *byte = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

impl Template {
    /// Renders the template for run `run` with the current time.
    pub fn new(run: u32) -> Self {
        let mut bytes = Vec::new();
        datagram(run, SENTINEL, &mut bytes);
        let seq_at = positions(&bytes, format!("{SENTINEL:016x}").as_bytes());
        let sub_at = positions(&bytes, format!("{:016x}", SENTINEL ^ SUB_MASK).as_bytes());
        Self {
            bytes,
            seq_at,
            sub_at,
        }
    }

    /// The datagram for sequence number `seq` (valid until the next call).
    pub fn fill(&mut self, seq: u64) -> &[u8] {
        for &at in &self.seq_at {
            write_hex(&mut self.bytes[at..at + 16], seq);
        }
        for &at in &self.sub_at {
            write_hex(&mut self.bytes[at..at + 16], seq ^ SUB_MASK);
        }
        &self.bytes
    }
}

/// Reads back the run and sequence number from a generated document's `trace_id`.
pub fn run_and_seq(trace_id: &str) -> Option<(u32, u64)> {
    let random = trace_id.get(11..)?;
    let run = u32::from_str_radix(random.get(..8)?, 16).ok()?;
    let seq = u64::from_str_radix(random.get(8..)?, 16).ok()?;
    Some((run, seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roentgen_sdk::model::{DocumentHead, split_datagram};

    #[test]
    fn generated_datagrams_are_valid_and_traceable() {
        let mut buf = Vec::new();
        datagram(7, 123_456, &mut buf);
        assert!((560..=700).contains(&buf.len()), "{}", buf.len());
        let head = DocumentHead::parse(split_datagram(&buf).unwrap()).unwrap();
        assert_eq!(run_and_seq(&head.trace_id.to_string()), Some((7, 123_456)));
        let doc: roentgen_sdk::model::Segment =
            serde_json::from_slice(split_datagram(&buf).unwrap()).unwrap();
        doc.validate().unwrap();
    }

    #[test]
    fn template_patches_the_sequence_number() {
        let mut t = Template::new(3);
        let d = t.fill(99).to_vec();
        let head = DocumentHead::parse(split_datagram(&d).unwrap()).unwrap();
        assert_eq!(head.id.to_string(), format!("{:016x}", 99));
        assert_eq!(run_and_seq(&head.trace_id.to_string()), Some((3, 99)));
        let text = String::from_utf8(d).unwrap();
        assert!(text.contains(&format!("{:016x}", 99 ^ SUB_MASK)));
        assert!(!text.contains("0123456789abcdef"));
    }
}
