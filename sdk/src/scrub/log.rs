//! Scrubbing our own log lines: an error that quotes a document's value (a JSON parse error
//! names the string it did not expect, a store error echoes the row it could not insert, a
//! panic message quotes the text it sliced) is scrubbed with the built-in detectors before it
//! is logged, in the daemon and the collector alike, whatever the ingest scrubbing is set to.

use std::fmt::Display;
use std::sync::LazyLock;

use super::Scrubber;

static LOG_SCRUBBER: LazyLock<Scrubber> = LazyLock::new(Scrubber::default);

/// `detail`'s text with personal data rewritten by the built-in detectors, for a log line.
pub fn log_safe(detail: &dyn Display) -> String {
    let mut text = detail.to_string();
    LOG_SCRUBBER.scrub_text(&mut text);
    text
}

/// Replaces the process's panic hook with one that logs the panic (thread, location and a
/// scrubbed message) through `tracing`, instead of printing the raw message to stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %info.location().map_or_else(String::new, ToString::to_string),
            message = %log_safe(&message),
            "panic"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_value_is_scrubbed_and_the_rest_kept() {
        let error = serde_json::from_str::<u64>("\"jane.doe@example.com\"").unwrap_err();
        let line = log_safe(&error);
        assert!(!line.contains("jane.doe@example.com"), "{line}");
        assert!(line.contains("invalid type"), "{line}");
        assert_eq!(
            log_safe(&"expected 16 characters"),
            "expected 16 characters"
        );
    }
}
