//! What the daemon reads from outside besides datagrams: the collector's answer to
//! `PutTraceSegments` (any status, any body) and a spool file (any bytes on disk). Neither may
//! panic; an answer that delivers is a 2xx with a JSON object; a spool file written by the
//! daemon reads back as its body, and any other bytes read back only if they carry a header
//! and checksum that match them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_daemon::forwarder::answer;
use roentgen_daemon::spool::format;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((first, rest)) => (100 + u16::from(*first) * 2, rest),
        None => (200, data),
    };
    if let Ok(unprocessed) = answer::read(status, body) {
        assert!((200..300).contains(&status));
        let value: serde_json::Value = serde_json::from_slice(body).expect("a delivery is JSON");
        assert!(value.is_object());
        let _ = unprocessed.iter().filter(|u| u.retryable()).count();
    }

    let documents = u64::from(data.first().copied().unwrap_or(0) % 4);
    if let Ok(read) = format::check(data.to_vec(), documents) {
        assert_eq!(format::header(documents, &read).as_slice(), &data[..format::HEADER_LEN]);
    }
    let mut file = format::header(documents, body).to_vec();
    file.extend_from_slice(body);
    assert_eq!(format::check(file, documents).expect("own file"), body);
    let _ = format::check_legacy(data.to_vec());
});
