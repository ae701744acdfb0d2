//! SigV4 `Authorization` header values and `X-Amz-Date` texts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roentgen_web::auth::sigv4::{format_amz_date, parse_amz_date, parse_authorization};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_authorization(text);
        if let Some(t) = parse_amz_date(text) {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
    }
});
