//! Stack frames for a cause, from a `std::backtrace::Backtrace`: the frames of its text
//! (`N: function` then `at path:line:column`, the format std prints and the only stable way
//! to read one), without the frames of the capture itself, at most [`MAX_FRAMES`], the rest
//! counted as `truncated` as the official SDKs do.

use std::backtrace::{Backtrace, BacktraceStatus};

use crate::model::StackFrame;

/// Frames kept per exception.
pub const MAX_FRAMES: usize = 50;

/// The frames of `backtrace` (none unless it was captured) and how many were left out.
pub fn frames(backtrace: &Backtrace) -> (Vec<StackFrame>, u64) {
    if backtrace.status() != BacktraceStatus::Captured {
        return (Vec::new(), 0);
    }
    parse(&backtrace.to_string())
}

fn parse(text: &str) -> (Vec<StackFrame>, u64) {
    let mut all: Vec<StackFrame> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(location) = trimmed.strip_prefix("at ") {
            if let Some(frame) = all.last_mut() {
                let (path, line) = split_location(location);
                frame.path = Some(path.to_owned());
                frame.line = line.map(Some);
            }
        } else if let Some((number, label)) = trimmed.split_once(": ")
            && number.bytes().all(|b| b.is_ascii_digit())
            && !number.is_empty()
        {
            all.push(StackFrame {
                label: Some(label.trim().to_owned()),
                ..StackFrame::default()
            });
        }
    }
    // The capture's own frames come first: drop them.
    let own = all
        .iter()
        .take_while(|f| {
            f.label.as_deref().is_some_and(|l| {
                l.starts_with("std::backtrace") || l.contains("roentgen_sdk::recorder::")
            })
        })
        .count();
    all.drain(..own);
    let truncated = all.len().saturating_sub(MAX_FRAMES) as u64;
    all.truncate(MAX_FRAMES);
    (all, truncated)
}

/// `path:line:column` (or `path:line`, or a bare path) into the path and the line.
fn split_location(location: &str) -> (&str, Option<u64>) {
    fn number_at_end(s: &str) -> Option<(&str, u64)> {
        s.rsplit_once(':')
            .and_then(|(head, n)| n.parse::<u64>().ok().map(|n| (head, n)))
    }
    match number_at_end(location) {
        Some((head, last)) => match number_at_end(head) {
            Some((path, line)) => (path, Some(line)),
            None => (head, Some(last)),
        },
        None => (location, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/x/library/std/src/backtrace.rs:312:13
   1: roentgen_sdk::recorder::entity::Entity::add_error
             at ./sdk/src/recorder/entity.rs:390:20
   2: shop::checkout::pay
             at ./src/checkout.rs:42:9
   3: shop::main
             at ./src/main.rs:7:5
   4: __libc_start_main
";

    #[test]
    fn frames_are_read_without_the_capture_own() {
        let (frames, truncated) = parse(TEXT);
        assert_eq!(truncated, 0);
        let labels: Vec<&str> = frames.iter().filter_map(|f| f.label.as_deref()).collect();
        assert_eq!(
            labels,
            ["shop::checkout::pay", "shop::main", "__libc_start_main"]
        );
        assert_eq!(frames[0].path.as_deref(), Some("./src/checkout.rs"));
        assert_eq!(frames[0].line, Some(Some(42)));
        assert_eq!(frames[2].path, None);
    }

    #[test]
    fn long_backtraces_are_truncated_and_counted() {
        let text: String = (0..80)
            .map(|i| format!("  {i}: f{i}\n        at src/f.rs:{i}\n"))
            .collect();
        let (frames, truncated) = parse(&text);
        assert_eq!(frames.len(), MAX_FRAMES);
        assert_eq!(truncated, 30);
        assert_eq!(frames[3].line, Some(Some(3)));
        assert_eq!(frames[3].path.as_deref(), Some("src/f.rs"));
    }

    #[test]
    fn locations() {
        assert_eq!(split_location("src/a.rs:12:5"), ("src/a.rs", Some(12)));
        assert_eq!(split_location("src/a.rs:12"), ("src/a.rs", Some(12)));
        assert_eq!(split_location("C:/x/a.rs:12:5"), ("C:/x/a.rs", Some(12)));
        assert_eq!(split_location("somewhere"), ("somewhere", None));
    }
}
