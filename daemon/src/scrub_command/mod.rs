//! `roentgen-daemon scrub`: runs the daemon's scrubber over documents from a reader, so operators
//! can try their `[scrub]` rules on real data before deploying them.

use std::io::{BufRead, Write};

use roentgen_sdk::model::DAEMON_HEADER;
use roentgen_sdk::scrub::Scrubber;

/// What a scrub run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScrubSummary {
    /// Documents read and written.
    pub documents: u64,
    /// Documents in which something was rewritten.
    pub scrubbed_documents: u64,
    /// Lines that were neither a header nor a JSON document (reported, skipped).
    pub invalid_lines: u64,
    /// Rewrites per detector.
    pub by_detector: Vec<(String, u64)>,
}

fn is_header(line: &str) -> bool {
    if line == DAEMON_HEADER {
        return true;
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => {
            map.len() == 2
                && map.get("format").and_then(|v| v.as_str()) == Some("json")
                && map.get("version").and_then(|v| v.as_u64()) == Some(1)
        }
        _ => false,
    }
}

/// Reads documents (one JSON document per line, optionally preceded by their datagram header
/// line), writes each scrubbed document on its own line to `output`, and reports problems on
/// `errors`.
pub fn run(
    scrubber: &Scrubber,
    input: impl BufRead,
    mut output: impl Write,
    mut errors: impl Write,
) -> std::io::Result<ScrubSummary> {
    let mut summary = ScrubSummary::default();
    for (number, line) in input.lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() || is_header(line) {
            continue;
        }
        let mut value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                summary.invalid_lines += 1;
                writeln!(errors, "line {}: not a JSON document: {e}", number + 1)?;
                continue;
            }
        };
        let report = scrubber.scrub(&mut value);
        summary.documents += 1;
        if report.total() > 0 {
            summary.scrubbed_documents += 1;
        }
        for (name, count) in report.by_detector() {
            match summary.by_detector.iter_mut().find(|(n, _)| *n == name) {
                Some((_, total)) => *total += count,
                None => summary.by_detector.push((name, count)),
            }
        }
        serde_json::to_writer(&mut output, &value)?;
        output.write_all(b"\n")?;
    }
    output.flush()?;
    writeln!(
        errors,
        "scrubbed {} of {} documents ({} invalid lines)",
        summary.scrubbed_documents, summary.documents, summary.invalid_lines
    )?;
    for (name, count) in &summary.by_detector {
        writeln!(errors, "  {name}: {count}")?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_datagrams() {
        let input = "{\"format\":\"json\",\"version\":1}\n{\"a\":1}\n\n{\"format\": \"json\", \"version\": 1}\n{\"b\":[2]}\nnope\n";
        let mut out = Vec::new();
        let mut err = Vec::new();
        let s = run(&Scrubber::default(), input.as_bytes(), &mut out, &mut err).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"a\":1}\n{\"b\":[2]}\n");
        assert_eq!(s.documents, 2);
        assert_eq!(s.invalid_lines, 1);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("line 6"), "{err}");
        assert!(err.contains("of 2 documents"), "{err}");
    }
}
