//! What a string decodes to: percent escapes (`jane%40example.com`, `%2B82`), `+` as a space in
//! form and query text (`a=1&card=4111+1111+...`), and JSON `\u` escapes written into a string
//! (`jane\u0040example.com` in a logged JSON body). Detectors run on the decoded text too, and
//! a match there is rewritten over the source bytes it came from, so no PII survives in either
//! form.
//!
//! Decoding only happens when the string holds a `%XX`, a `\uXXXX`, or a `+` in text with a
//! `=` and no whitespace; one SIMD scan for `%`, `\` and `+` decides, so clean strings pay
//! almost nothing.

/// A decoded string with, for each of its bytes, the span of source bytes it came from.
pub(super) struct Decoded {
    /// The decoded text.
    pub text: String,
    spans: Vec<(usize, usize)>,
}

fn hex_digit(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

fn hex_at(bytes: &[u8], at: usize, len: usize) -> Option<u32> {
    let digits = bytes.get(at..at + len)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + hex_digit(d)?))
}

/// A `\uXXXX` escape (or a surrogate pair of them) at `at`: the character and its length.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    if bytes.get(at..at + 2) != Some(b"\\u") {
        return None;
    }
    let unit = hex_at(bytes, at + 2, 4)?;
    if (0xD800..=0xDBFF).contains(&unit) {
        if bytes.get(at + 6..at + 8) != Some(b"\\u") {
            return None;
        }
        let low = hex_at(bytes, at + 8, 4)?;
        if !(0xDC00..=0xDFFF).contains(&low) {
            return None;
        }
        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
        return char::from_u32(code).map(|c| (c, 12));
    }
    char::from_u32(unit).map(|c| (c, 6))
}

/// Whether `text` holds anything [`Decoded::of`] would decode, and whether `+` means a space.
fn needs_decoding(text: &str) -> Option<bool> {
    let bytes = text.as_bytes();
    let mut escapes = false;
    let mut plus = false;
    for at in memchr::memchr3_iter(b'%', b'\\', b'+', bytes) {
        match bytes[at] {
            b'%' => escapes |= hex_at(bytes, at + 1, 2).is_some(),
            b'\\' => escapes |= unicode_escape(bytes, at).is_some(),
            _ => plus = true,
        }
    }
    let form =
        plus && memchr::memchr(b'=', bytes).is_some() && !bytes.iter().any(u8::is_ascii_whitespace);
    (escapes || form).then_some(form)
}

impl Decoded {
    /// The decoded form of `text`, or `None` when decoding would change nothing.
    pub fn of(text: &str) -> Option<Self> {
        let form = needs_decoding(text)?;
        // Percent escapes may encode bytes that are not UTF-8: then only the ASCII ones are
        // decoded (what detectors look for is ASCII or written as whole characters).
        let decoded = Self::decode(text, form, false).or_else(|| Self::decode(text, form, true))?;
        (decoded.text != text).then_some(decoded)
    }

    fn decode(text: &str, form: bool, ascii_only: bool) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut spans = Vec::with_capacity(bytes.len());
        let mut at = 0;
        while let Some(&b) = bytes.get(at) {
            match b {
                b'%' => {
                    if let Some(v) = hex_at(bytes, at + 1, 2)
                        && (!ascii_only || v < 0x80)
                    {
                        out.push(v as u8);
                        spans.push((at, at + 3));
                        at += 3;
                        continue;
                    }
                }
                b'\\' => {
                    if let Some((c, len)) = unicode_escape(bytes, at) {
                        let mut buf = [0; 4];
                        for &byte in c.encode_utf8(&mut buf).as_bytes() {
                            out.push(byte);
                            spans.push((at, at + len));
                        }
                        at += len;
                        continue;
                    }
                }
                b'+' if form => {
                    out.push(b' ');
                    spans.push((at, at + 1));
                    at += 1;
                    continue;
                }
                _ => {}
            }
            out.push(b);
            spans.push((at, at + 1));
            at += 1;
        }
        let text = String::from_utf8(out).ok()?;
        Some(Self { text, spans })
    }

    /// The source span that decoded bytes `start..end` came from.
    pub fn source(&self, start: usize, end: usize) -> (usize, usize) {
        let first = self.spans.get(start).map_or(0, |s| s.0);
        let last = end
            .checked_sub(1)
            .and_then(|e| self.spans.get(e))
            .map_or(first, |s| s.1);
        (first, last.max(first))
    }
}

#[cfg(test)]
mod tests {
    use super::Decoded;

    #[test]
    fn decodes_percent_plus_and_unicode_escapes_with_their_sources() {
        let src = "q=jane%40example.com&c=4111+1111&n=caf\\u00e9%E2%82%AC";
        let d = Decoded::of(src).expect("decodes");
        assert_eq!(d.text, "q=jane@example.com&c=4111 1111&n=café€");
        let at = d.text.find("jane@example.com").expect("email");
        let (a, b) = d.source(at, at + "jane@example.com".len());
        assert_eq!(&src[a..b], "jane%40example.com");
        let at = d.text.find('é').expect("e");
        let (a, b) = d.source(at, at + 'é'.len_utf8());
        assert_eq!(&src[a..b], "\\u00e9");
        let at = d.text.find('€').expect("euro");
        let (a, b) = d.source(at, at + '€'.len_utf8());
        assert_eq!(&src[a..b], "%E2%82%AC");
    }

    #[test]
    fn leaves_plain_text_and_spaced_pluses_alone() {
        assert!(Decoded::of("plain text").is_none());
        assert!(Decoded::of("+1 555 123 4567 a=b").is_none());
        assert!(Decoded::of("100% sure").is_none());
        // Not UTF-8 once decoded: only the ASCII escapes are.
        let d = Decoded::of("a%FFb%40c").expect("decodes");
        assert_eq!(d.text, "a%FFb@c");
    }
}
