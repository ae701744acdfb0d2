//! UDP datagrams as the daemon receives them: the `{"format":"json","version":1}` header line,
//! then the document's head fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_sdk::model::{DocumentHead, split_datagram};

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = split_datagram(data) {
        let _ = DocumentHead::parse(document);
    }
});
