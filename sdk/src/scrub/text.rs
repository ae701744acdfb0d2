//! Scrubbing a document in its JSON text, without building a `serde_json::Value`: one strict
//! pass over the tokens asks `visit.rs` what every member is and `scalar.rs` what every string,
//! number and key becomes, exactly as the Value walk does, and splices the rewritten strings
//! into a copy of the text. Everything else stays byte for byte as it came. This is the
//! daemon's hot path.
//!
//! The pass accepts exactly what `serde_json` accepts or gives up: on malformed text, nesting
//! deeper than [`MAX_DEPTH`], numbers out of range, lone surrogates, a `drop` action (which
//! removes a field, so commas would have to move) or a map key to rewrite (rare, and a
//! rewritten key may collide with another) it returns `None` and the caller takes the Value
//! walk, which then decides. So both paths reject and rewrite the same documents.

use std::borrow::Cow;

use super::visit::{Kind, Member, Shape};
use super::{Ctx, Fate, Inner, ScrubReport};

/// Deepest nesting the text pass follows (`serde_json` refuses past 128).
pub(super) const MAX_DEPTH: usize = 100;

/// The pass cannot decide: the caller scrubs a `serde_json::Value` instead.
struct GiveUp;

type Step<T = ()> = Result<T, GiveUp>;

/// One pass over one document's text.
struct Pass<'s, 'd, 'o> {
    inner: &'s Inner,
    src: &'d str,
    bytes: &'d [u8],
    pos: usize,
    depth: usize,
    /// Bytes of `src` already copied to `out`.
    copied: usize,
    out: &'o mut String,
    /// A string value with escapes, decoded.
    scratch: String,
    report: ScrubReport,
}

impl Inner {
    /// Scrubs the JSON object `document` in its text; see [`super::Scrubber::scrub_json_text`].
    pub(super) fn scrub_text_document(
        &self,
        document: &str,
        out: &mut String,
    ) -> Option<ScrubReport> {
        out.clear();
        let mut pass = Pass {
            inner: self,
            src: document,
            bytes: document.as_bytes(),
            pos: 0,
            depth: 0,
            copied: 0,
            out,
            scratch: String::new(),
            report: ScrubReport::new(&self.names),
        };
        let done = pass.run();
        let Pass {
            copied,
            out,
            report,
            ..
        } = pass;
        if done.is_err() {
            out.clear();
            return None;
        }
        if copied > 0 {
            out.push_str(document.get(copied..).unwrap_or_default());
        }
        Some(report)
    }
}

impl<'s, 'd> Pass<'s, 'd, '_> {
    fn run(&mut self) -> Step {
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(GiveUp);
        }
        self.document()?;
        self.ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Step {
        self.ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(GiveUp)
        }
    }

    fn enter(&mut self) -> Step {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(GiveUp)
        } else {
            Ok(())
        }
    }

    /// Walks the members of an object (at `{`), calling `member` with each key; `member` must
    /// consume the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &str) -> Step) -> Step {
        self.sequence(b'{', b'}', |p| {
            let key = p.key()?;
            p.eat(b':')?;
            p.ws();
            member(p, &key)
        })
    }

    /// Walks the items of an array (at `[`); `item` must consume each value.
    fn array(&mut self, item: impl FnMut(&mut Self) -> Step) -> Step {
        self.sequence(b'[', b']', item)
    }

    /// Walks `open` item (`,` item)* `close`, or `open` `close`.
    fn sequence(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Step) -> Step {
        self.eat(open)?;
        self.enter()?;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            item(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b) if b == close => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(GiveUp),
            }
        }
    }

    /// A (sub)segment document.
    fn document(&mut self) -> Step {
        let root = self.inner.root();
        self.map(Shape::Document, root)
    }

    /// A map of `shape` at `ctx` (at `{`), as `walk_map`: gives up when a key must change
    /// (rewritten keys may collide and be renamed; the Value walk does that).
    fn map(&mut self, shape: Shape, ctx: Ctx<'s>) -> Step {
        if shape == Shape::Free && Inner::exempt(ctx) {
            return self.skip();
        }
        self.object(|p, key| {
            let inner = p.inner;
            let member = inner.member(shape, ctx, key);
            if !matches!(
                inner.member_key(key, member, &mut p.report),
                (Fate::Keep, None)
            ) {
                return Err(GiveUp);
            }
            p.member_value(member, key)
        })
    }

    /// The value of `member` (named `key`), as `member_value`.
    fn member_value(&mut self, member: Member<'s>, key: &str) -> Step {
        match (member, self.peek()) {
            (Member::Skip(expect, ctx), byte) => {
                let kind = Kind::starting_with(byte);
                match expect.items() {
                    _ if expect.skips(kind) => self.skip(),
                    Some(item) if kind == Kind::Array => self.array(|p| {
                        if item.skips(Kind::starting_with(p.peek())) {
                            p.skip()
                        } else {
                            p.value(Some(key), ctx)
                        }
                    }),
                    _ => self.value(Some(key), ctx),
                }
            }
            (Member::Object(shape, ctx), Some(b'{')) => {
                let ctx = self.inner.enter(shape, ctx);
                self.map(shape, ctx)
            }
            (Member::Items(shape, ctx), Some(b'[')) => self.array(|p| {
                if p.peek() == Some(b'{') {
                    let inner = p.inner;
                    p.map(shape, inner.enter(shape, ctx))
                } else {
                    p.value(Some(key), ctx)
                }
            }),
            (member, _) => match member.value_ctx() {
                Some(ctx) => self.value(Some(key), ctx),
                None => self.skip(),
            },
        }
    }

    /// Any free-form value found under `key`, as `scrub_value`.
    fn value(&mut self, key: Option<&str>, ctx: Ctx<'s>) -> Step {
        match self.peek() {
            Some(b'"') => self.string_value(key, ctx),
            Some(b'{') => self.map(Shape::Free, ctx),
            Some(b'[') if Inner::exempt(ctx) => self.skip(),
            Some(b'[') => self.array(|p| p.value(key, ctx)),
            Some(b'-' | b'0'..=b'9') => self.number_value(key, ctx),
            _ => self.literal(),
        }
    }

    fn string_value(&mut self, key: Option<&str>, ctx: Ctx<'_>) -> Step {
        let start = self.pos;
        let escaped = self.string()?;
        let end = self.pos;
        let content = self.src.get(start + 1..end - 1).ok_or(GiveUp)?;
        let text = if escaped {
            decode(content, &mut self.scratch)?;
            self.scratch.as_str()
        } else {
            content
        };
        let (fate, rewritten) = self.inner.scrub_ref(text, key, ctx, &mut self.report);
        if fate == Fate::Drop {
            return Err(GiveUp);
        }
        if let Some(new) = rewritten {
            self.splice(start, end, &new);
        }
        Ok(())
    }

    fn number_value(&mut self, key: Option<&str>, ctx: Ctx<'_>) -> Step {
        let start = self.pos;
        let integer = self.number()?;
        let end = self.pos;
        let token = self.src.get(start..end).ok_or(GiveUp)?;
        let digits = || {
            if !integer {
                return 0;
            }
            // serde_json holds integers as u64 or i64, and larger ones as f64 (no digits).
            let fits = token.parse::<u64>().is_ok() || token.parse::<i64>().is_ok();
            if fits {
                token.trim_start_matches('-').len() as u32
            } else {
                0
            }
        };
        let Some((slot, action)) = self.inner.number_action(key, ctx, digits) else {
            return Ok(());
        };
        let (fate, rewritten) = self.inner.whole(token, slot, action, &mut self.report);
        if fate == Fate::Drop {
            return Err(GiveUp);
        }
        let new = rewritten.unwrap_or_else(|| token.to_owned());
        self.splice(start, end, &new);
        Ok(())
    }

    /// Replaces `src[start..end]` (a whole token) with `text` as a JSON string.
    fn splice(&mut self, start: usize, end: usize, text: &str) {
        self.out
            .push_str(self.src.get(self.copied..start).unwrap_or_default());
        self.out.push('"');
        escape(text, self.out);
        self.out.push('"');
        self.copied = end;
    }

    /// The key of an object member (at `"`), decoded.
    fn key(&mut self) -> Step<Cow<'d, str>> {
        let start = self.pos;
        let escaped = self.string()?;
        let content = self.src.get(start + 1..self.pos - 1).ok_or(GiveUp)?;
        if escaped {
            let mut owned = String::new();
            decode(content, &mut owned)?;
            Ok(Cow::Owned(owned))
        } else {
            Ok(Cow::Borrowed(content))
        }
    }

    /// Passes over a string (at `"`) checking it as `serde_json` does; says whether it holds
    /// escapes.
    fn string(&mut self) -> Step<bool> {
        if self.peek() != Some(b'"') {
            return Err(GiveUp);
        }
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos += plain_run(self.bytes.get(self.pos..).unwrap_or_default());
            let b = *self.bytes.get(self.pos).ok_or(GiveUp)?;
            self.pos += 1;
            match b {
                b'"' => return Ok(escaped),
                0..=0x1f => return Err(GiveUp),
                b'\\' => {
                    escaped = true;
                    let e = *self.bytes.get(self.pos).ok_or(GiveUp)?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let unit = self.hex4()?;
                            if (0xDC00..=0xDFFF).contains(&unit) {
                                return Err(GiveUp);
                            }
                            if (0xD800..=0xDBFF).contains(&unit) {
                                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(GiveUp);
                                }
                                self.pos += 2;
                                if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                    return Err(GiveUp);
                                }
                            }
                        }
                        _ => return Err(GiveUp),
                    }
                }
                _ => {}
            }
        }
    }

    fn hex4(&mut self) -> Step<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(GiveUp)?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16).ok_or(GiveUp)?;
        }
        self.pos += 4;
        Ok(unit)
    }

    /// Passes over a number; says whether it is an integer (no fraction or exponent).
    fn number(&mut self) -> Step<bool> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(GiveUp),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        let token = self.src.get(start..self.pos).ok_or(GiveUp)?;
        // Short tokens are always in range: at most 18 digits fit an i64, and a float needs
        // an exponent or over 300 digits to overflow.
        let short = if integer {
            token.len() <= 18
        } else {
            token.len() < 300 && !token.contains(['e', 'E'])
        };
        let in_range = short
            || (integer && (token.parse::<u64>().is_ok() || token.parse::<i64>().is_ok()))
            || token.parse::<f64>().is_ok_and(f64::is_finite);
        if in_range { Ok(integer) } else { Err(GiveUp) }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Step {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(GiveUp);
        }
        self.digits();
        Ok(())
    }

    fn literal(&mut self) -> Step {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        for word in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(word) {
                self.pos += word.len();
                return Ok(());
            }
        }
        Err(GiveUp)
    }

    /// Passes over any value, checking it, without scrubbing.
    fn skip(&mut self) -> Step {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(|p, _| p.skip()),
            Some(b'[') => self.array(Self::skip),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            _ => self.literal(),
        }
    }
}

/// Length of the leading run of `bytes` that needs no look inside a string: no `"`, `\` or
/// control character.
fn plain_run(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|&&b| PLAIN[usize::from(b)]).count()
}

/// Bytes that may stand for themselves inside a JSON string.
static PLAIN: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = false;
        b += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// Decodes the content of a checked JSON string into `out` (cleared first).
fn decode(content: &str, out: &mut String) -> Step {
    out.clear();
    let mut rest = content;
    while let Some(at) = rest.find('\\') {
        out.push_str(rest.get(..at).ok_or(GiveUp)?);
        let bytes = rest.as_bytes();
        let escape = *bytes.get(at + 1).ok_or(GiveUp)?;
        let mut used = 2;
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex(rest.get(at + 2..at + 6))?;
                used = 6;
                let code = if (0xD800..=0xDBFF).contains(&hi) {
                    let lo = hex(rest.get(at + 8..at + 12))?;
                    used = 12;
                    0x10000 + ((hi - 0xD800) << 10) + (lo.checked_sub(0xDC00).ok_or(GiveUp)?)
                } else {
                    hi
                };
                char::from_u32(code).ok_or(GiveUp)?
            }
            _ => return Err(GiveUp),
        };
        out.push(c);
        rest = rest.get(at + used..).ok_or(GiveUp)?;
    }
    out.push_str(rest);
    Ok(())
}

fn hex(digits: Option<&str>) -> Step<u32> {
    u32::from_str_radix(digits.ok_or(GiveUp)?, 16).map_err(|_| GiveUp)
}

/// Appends `text` JSON-escaped (as `serde_json` writes strings).
fn escape(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut last = 0;
    for (i, b) in text.bytes().enumerate() {
        let escaped: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(text.get(last..i).unwrap_or_default());
        if escaped.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escaped);
        }
        last = i + 1;
    }
    out.push_str(text.get(last..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::{ScrubConfig, Scrubber};
    use serde_json::Value;

    #[test]
    fn decode_and_escape_round_trip() {
        let mut out = String::new();
        decode(r#"a\"b\\c\/d\n\u00e9\ud83d\ude00\u0001"#, &mut out).ok();
        assert_eq!(out, "a\"b\\c/d\né\u{1f600}\u{1}");
        let mut json = String::from("\"");
        escape(&out, &mut json);
        json.push('"');
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, out);
    }

    /// The text walk's output, parsed, and its report, next to the Value walk's.
    fn both(scrubber: &Scrubber, text: &str) -> Option<(Value, Value, ScrubReport, ScrubReport)> {
        let mut out = String::new();
        let report = scrubber.scrub_json_text(text, &mut out)?;
        let fast = if out.is_empty() { text } else { &out };
        let fast: Value = serde_json::from_str(fast).unwrap();
        let mut slow: Value = serde_json::from_str(text).unwrap();
        let slow_report = scrubber.scrub(&mut slow);
        Some((fast, slow, report, slow_report))
    }

    #[test]
    fn rewrites_only_the_matched_tokens() {
        let s = Scrubber::default();
        let text = "{ \"id\" : \"70de5b6f19ff9a0a\",\n \"http\": {\"request\": {\"client_ip\": \"10.0.1.2\", \"method\": \"GET\"}},\n \"annotations\": {\"card_number\": 4111111111111111, \"n\": 4111111111111111, \"cvv\": 12, \"e\\u006dail\": \"a\\\"b\"}, \"metadata\": {\"d\": {\"note\": \"mail jane@example.com \\u00e9\\n\"}}}";
        let mut out = String::new();
        let report = s.scrub_json_text(text, &mut out).unwrap();
        assert_eq!(
            out,
            "{ \"id\" : \"70de5b6f19ff9a0a\",\n \"http\": {\"request\": {\"client_ip\": \"[ipv4]\", \"method\": \"GET\"}},\n \"annotations\": {\"card_number\": \"[card]\", \"n\": 4111111111111111, \"cvv\": 12, \"e\\u006dail\": \"[email]\"}, \"metadata\": {\"d\": {\"note\": \"mail [email] \u{e9}\\n\"}}}"
        );
        assert_eq!(report.total(), 4);
        let (fast, slow, fast_report, slow_report) = both(&s, text).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast_report, slow_report);
    }

    #[test]
    fn clean_documents_are_left_as_they_are() {
        let s = Scrubber::default();
        let text =
            r#"{"id":"70de5b6f19ff9a0a","name":"a","metadata":{"k":[1,2.5e3,-0,true,null,{}]}}"#;
        let mut out = String::from("old");
        let report = s.scrub_json_text(text, &mut out).unwrap();
        assert!(report.is_clean());
        assert!(out.is_empty());
    }

    #[test]
    fn gives_up_on_what_serde_json_refuses_or_a_drop() {
        let s = Scrubber::default();
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(120), "]".repeat(120));
        for bad in [
            "",
            "[1]",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1e400}",
            "{\"a\":-1e400}",
            "{\"a\":100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\t\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":tru}",
            "{\"a\":1} x",
            "{\"a\" 1}",
            deep.as_str(),
        ] {
            let mut out = String::new();
            assert!(s.scrub_json_text(bad, &mut out).is_none(), "{bad}");
            assert!(out.is_empty());
        }
        let config = ScrubConfig::from_toml_str("[detectors.email]\naction = \"drop\"\n").unwrap();
        let dropping = Scrubber::new(&config).unwrap();
        let mut out = String::new();
        let text = r#"{"annotations":{"who":"jane@example.com"}}"#;
        assert!(dropping.scrub_json_text(text, &mut out).is_none());
        assert!(s.scrub_json_text(text, &mut out).is_some());
    }
}
