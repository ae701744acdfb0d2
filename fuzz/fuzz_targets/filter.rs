//! Filter expressions as `GetTraceSummaries` and the dashboard receive them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = roentgen_web::filter::parse(text);
    }
});
