//! Realistic synthetic traffic for the load generator, the benchmarks and the tests: X-Ray
//! datagrams of about 620 bytes shaped like what the official SDKs send for a web request with
//! one downstream call, with unique ids so that every delivered document can be accounted for.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use roentgen_sdk::model::DAEMON_HEADER;

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
        sub = seq ^ 0xa5a5_a5a5_0000_0000,
        sub_start = now - 0.04,
        sub_end = now - 0.01,
    );
    out.extend_from_slice(s.as_bytes());
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
}
