//! `exception.stacktrace` text -> X-Ray stack frames, for the formats the OpenTelemetry SDKs
//! print: Java (`at pkg.Class.method(File.java:42)`), Python (`File "x.py", line 10, in f`),
//! JavaScript (`at f (/app/x.js:10:5)`), Go (`main.f(...)` then `/app/x.go:42 +0x1d`), .NET
//! (`at N.C.M() in /app/x.cs:line 42`). A line in no known format is kept as a frame's label
//! (Java's `Caused by: ...` among them, which says where the next frames come from).

use crate::model::StackFrame;
use crate::recorder::stack::MAX_FRAMES;

fn frame(label: &str, path: Option<&str>, line: Option<u64>) -> StackFrame {
    StackFrame {
        label: Some(label.trim().to_owned()).filter(|l| !l.is_empty()),
        path: path.map(|p| p.trim().to_owned()),
        line: line.map(Some),
        ..StackFrame::default()
    }
}

/// `path:line[:column]` split into the path and the line.
fn location(text: &str) -> (&str, Option<u64>) {
    let mut parts = text.rsplitn(3, ':');
    let last = parts.next().unwrap_or("");
    let middle = parts.next();
    let rest = parts.next();
    match (last.parse::<u64>().ok(), middle, rest) {
        (Some(_), Some(m), Some(r)) if m.parse::<u64>().is_ok() => {
            (&text[..r.len()], m.parse().ok())
        }
        (Some(l), Some(_), _) => (&text[..text.len() - last.len() - 1], Some(l)),
        _ => (text, None),
    }
}

fn python(line: &str) -> Option<StackFrame> {
    let rest = line.strip_prefix("File \"")?;
    let (path, rest) = rest.split_once('"')?;
    let rest = rest.trim_start_matches(',').trim();
    let rest = rest.strip_prefix("line ")?;
    let (number, label) = rest.split_once(", in ").unwrap_or((rest, ""));
    Some(frame(label, Some(path), number.trim().parse().ok()))
}

fn at(line: &str) -> Option<StackFrame> {
    let rest = line.strip_prefix("at ")?;
    // .NET: `at N.C.M() in /app/x.cs:line 42`
    if let Some((label, place)) = rest.split_once(" in ")
        && let Some((path, number)) = place.rsplit_once(":line ")
    {
        return Some(frame(label, Some(path), number.trim().parse().ok()));
    }
    // Java `at a.B.c(B.java:42)` and JavaScript `at f (/app/x.js:10:5)`.
    if let (Some(open), true) = (rest.rfind('('), rest.ends_with(')')) {
        let label = &rest[..open];
        let (path, number) = location(&rest[open + 1..rest.len() - 1]);
        return Some(frame(label, Some(path), number));
    }
    // JavaScript `at /app/x.js:10:5`
    let (path, number) = location(rest);
    Some(frame("", Some(path), number))
}

/// The frames of `text`, at most [`MAX_FRAMES`], and how many were left out.
pub(super) fn parse(text: &str) -> (Vec<StackFrame>, u64) {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    let mut frames: Vec<StackFrame> = Vec::new();
    if lines.peek().is_some_and(|l| l.starts_with("Traceback ")) {
        // Python: only the `File` lines are frames (the others are source and the message).
        frames.extend(lines.filter_map(python));
    } else {
        // Elsewhere the first line is the exception's `Type: message`, but Go's.
        if lines
            .peek()
            .is_some_and(|l| !l.starts_with("at ") && !l.starts_with("goroutine "))
        {
            lines.next();
        }
        while let Some(line) = lines.next() {
            if line.starts_with("goroutine ") || line.starts_with("...") {
                continue;
            }
            let parsed = at(line).or_else(|| {
                // Go: a function line followed by its `path:line +0x..` line.
                let place = lines.peek()?.split(" +0x").next()?;
                let (path, number) = location(place);
                number?;
                let frame = frame(line, Some(path), number);
                lines.next();
                Some(frame)
            });
            frames.push(parsed.unwrap_or_else(|| frame(line, None, None)));
        }
    }
    let left_out = frames.len().saturating_sub(MAX_FRAMES) as u64;
    frames.truncate(MAX_FRAMES);
    (frames, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(frames: &[StackFrame]) -> Vec<(String, String, Option<u64>)> {
        frames
            .iter()
            .map(|f| {
                (
                    f.label.clone().unwrap_or_default(),
                    f.path.clone().unwrap_or_default(),
                    f.line.flatten(),
                )
            })
            .collect()
    }

    #[test]
    fn java_python_javascript_go_and_dotnet() {
        let java = "java.lang.IllegalStateException: boom\n\tat com.shop.Cart.add(Cart.java:42)\n\tat com.shop.Api.post(Api.java:7)\n\t... 3 more";
        assert_eq!(
            simple(&parse(java).0),
            [
                ("com.shop.Cart.add".into(), "Cart.java".into(), Some(42)),
                ("com.shop.Api.post".into(), "Api.java".into(), Some(7))
            ]
        );
        let python = "Traceback (most recent call last):\n  File \"/app/shop.py\", line 10, in checkout\n    pay()\n  File \"/app/pay.py\", line 3, in pay\n    raise ValueError('x')\nValueError: x";
        let frames = simple(&parse(python).0);
        assert_eq!(
            frames[0],
            ("checkout".into(), "/app/shop.py".into(), Some(10))
        );
        assert_eq!(frames[1], ("pay".into(), "/app/pay.py".into(), Some(3)));
        assert_eq!(frames.len(), 2);
        let js = "Error: nope\n    at charge (/app/pay.js:10:5)\n    at /app/index.js:3:1";
        assert_eq!(
            simple(&parse(js).0),
            [
                ("charge".into(), "/app/pay.js".into(), Some(10)),
                (String::new(), "/app/index.js".into(), Some(3))
            ]
        );
        let go = "goroutine 1 [running]:\nmain.charge(0x1)\n\t/app/main.go:42 +0x1d\nmain.main()\n\t/app/main.go:10 +0x25";
        assert_eq!(
            simple(&parse(go).0),
            [
                ("main.charge(0x1)".into(), "/app/main.go".into(), Some(42)),
                ("main.main()".into(), "/app/main.go".into(), Some(10))
            ]
        );
        let dotnet = "System.Exception: x\n   at Shop.Cart.Add() in /src/Cart.cs:line 12";
        assert_eq!(
            simple(&parse(dotnet).0),
            [("Shop.Cart.Add()".into(), "/src/Cart.cs".into(), Some(12))]
        );
    }

    #[test]
    fn frames_past_the_limit_are_counted() {
        let text: String = std::iter::once("E: x".to_owned())
            .chain((0..60).map(|i| format!("at f{i} (/a.js:{i}:1)")))
            .collect::<Vec<_>>()
            .join("\n");
        let (frames, truncated) = parse(&text);
        assert_eq!((frames.len(), truncated), (MAX_FRAMES, 10));
    }
}
