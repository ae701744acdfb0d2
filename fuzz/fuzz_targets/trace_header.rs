//! `X-Amzn-Trace-Id` header values; whatever parses must print and parse back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_sdk::model::TraceHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(header) = text.parse::<TraceHeader>()
    {
        let again: TraceHeader = header
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{header} does not parse back: {e}"));
        assert_eq!(again.to_string(), header.to_string());
    }
});
