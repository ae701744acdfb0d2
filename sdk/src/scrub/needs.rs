//! What a built-in detector's pattern cannot match without: so many digits, dots or colons,
//! an `@`, a run of so many base64 characters... Counted once per text the pre-filter set
//! flagged, in one pass over its bytes, so that the detectors whose needs the text does not
//! meet are not searched at all. Each need is implied by its pattern (the comments in
//! `detectors.rs` say why); a differential test checks that skipping never loses a match.

/// The least a text must hold for a detector to match anywhere in it. The default needs
/// nothing (custom detectors: their patterns are not analysed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub digits: u8,
    pub dots: u8,
    pub colons: u8,
    /// An `@`.
    pub at: bool,
    /// A `:` or `=`.
    pub assign: bool,
    /// A space or a tab.
    pub blank: bool,
    /// A run of this many `[A-Z0-9]`.
    pub upper_run: u8,
    /// A run of this many `[A-Za-z0-9/+]`.
    pub base64_run: u8,
    /// This many `-` and spaces, together.
    pub dashes_or_spaces: u8,
    /// `eyJ`, the start of a base64url-encoded JSON object.
    pub json_base64: bool,
    /// A `+`, a space or a tab, or a run of four digits.
    pub plus_blank_or_four_digits: bool,
}

impl Needs {
    /// Whether `shape` holds everything needed.
    pub fn met_by(&self, shape: &Shape) -> bool {
        shape.digits >= u32::from(self.digits)
            && shape.dots >= u32::from(self.dots)
            && shape.colons >= u32::from(self.colons)
            && (shape.at || !self.at)
            && (shape.assign || !self.assign)
            && (shape.blank || !self.blank)
            && shape.upper_run >= u32::from(self.upper_run)
            && shape.base64_run >= u32::from(self.base64_run)
            && shape.dashes_or_spaces >= u32::from(self.dashes_or_spaces)
            && (shape.json_base64 || !self.json_base64)
            && (!self.plus_blank_or_four_digits
                || shape.plus
                || shape.blank
                || shape.digit_run >= 4)
    }
}

/// The counts [`Needs`] are checked against, for one text.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shape {
    digits: u32,
    dots: u32,
    colons: u32,
    at: bool,
    assign: bool,
    blank: bool,
    upper_run: u32,
    base64_run: u32,
    digit_run: u32,
    dashes_or_spaces: u32,
    json_base64: bool,
    plus: bool,
    /// Every byte is ASCII.
    pub ascii: bool,
}

impl Shape {
    /// Counts what `text` holds.
    pub fn of(text: &str) -> Self {
        let mut shape = Self {
            ascii: true,
            ..Self::default()
        };
        let (mut upper, mut base64, mut digit) = (0u32, 0u32, 0u32);
        // The two bytes before `b`, for `eyJ`.
        let mut before = [0u8; 2];
        for &b in text.as_bytes() {
            if b == b'J' && before == *b"ey" {
                shape.json_base64 = true;
            }
            before = [before[1], b];
            if b.is_ascii_digit() {
                digit += 1;
                shape.digit_run = shape.digit_run.max(digit);
            } else {
                digit = 0;
            }
            match b {
                b'0'..=b'9' => {
                    shape.digits += 1;
                    upper += 1;
                    base64 += 1;
                }
                b'A'..=b'Z' => {
                    upper += 1;
                    base64 += 1;
                }
                b'a'..=b'z' | b'/' | b'+' => {
                    upper = 0;
                    base64 += 1;
                    shape.plus |= b == b'+';
                }
                _ => {
                    upper = 0;
                    base64 = 0;
                    match b {
                        b'.' => shape.dots += 1,
                        b':' => {
                            shape.colons += 1;
                            shape.assign = true;
                        }
                        b'=' => shape.assign = true,
                        b'@' => shape.at = true,
                        b' ' => {
                            shape.blank = true;
                            shape.dashes_or_spaces += 1;
                        }
                        b'\t' => shape.blank = true,
                        b'-' => shape.dashes_or_spaces += 1,
                        0x80.. => shape.ascii = false,
                        _ => {}
                    }
                }
            }
            shape.upper_run = shape.upper_run.max(upper);
            shape.base64_run = shape.base64_run.max(base64);
        }
        shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::Scrubber;
    use proptest::prelude::*;

    /// Pieces of what the built-in detectors find, and near misses of them.
    const PIECES: &[&str] = &[
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "123-45-6789",
        "123 45 6789",
        "555.123.4567",
        "01012345678",
        "+44 20 7946 0958",
        "203.0.113.45",
        "+1 555 123 4567",
        "(555) 123-4567",
        "010-1234-5678",
        "02-123-4567",
        "020 7946 0958",
        "900101-1234567",
        "192.168.0.1",
        "10.0.0",
        "2001:db8::1",
        "fe80::1%eth0",
        "12:30:45",
        "jane.doe@example.com",
        "a@b",
        "password=hunter2",
        "apiKey: s3cr3t",
        "Authorization: Bearer abcdefghijklmnop",
        "basic dXNlcjpwYXNz",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "https://user:pass@host.example.com/x",
        "비밀번호: hunter2",
        "contraseña=hunter2",
        "토큰 abcdefgh",
        "v1.2.3.4",
    ];

    fn hits(text: &str, gated: bool) -> Vec<(usize, usize, usize)> {
        static SCRUBBER: std::sync::LazyLock<Scrubber> =
            std::sync::LazyLock::new(Scrubber::default);
        let scrubber = &*SCRUBBER;
        let mut found = Vec::new();
        if gated {
            scrubber.inner.find_gated(text, &mut found);
        } else {
            scrubber.inner.find_unfiltered(text, &mut found);
        }
        found.iter().map(|h| (h.start, h.end, h.detector)).collect()
    }

    proptest! {
        /// Skipping the detectors whose needs a text does not meet loses no match.
        #[test]
        fn gating_by_needs_loses_nothing(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(PIECES).prop_map(str::to_owned),
                    "[0-9a-zA-Z.:@= +/\\t()-]{0,24}",
                ],
                0..5,
            ),
            glue in "[ ,;&?=/]{1,2}",
        ) {
            let text = parts.join(&glue);
            prop_assert_eq!(hits(&text, true), hits(&text, false), "{:?}", text);
        }
    }

    #[test]
    fn counts_and_runs() {
        let s = Shape::of("Key=AKIAIOSFODNN7EXAMPLE ip 10.0.0.1, jane@x.io: ok");
        assert_eq!(s.digits, 6);
        assert_eq!(s.dots, 4);
        assert_eq!(s.colons, 1);
        assert!(s.at && s.assign && s.blank);
        assert_eq!(s.upper_run, 20);
        assert_eq!(s.base64_run, 20);
        assert_eq!((s.digit_run, s.dashes_or_spaces), (2, 4));
        assert!(s.ascii && !s.plus && !s.json_base64);
        let needs = Needs {
            digits: 4,
            dots: 3,
            ..Needs::default()
        };
        assert!(needs.met_by(&s));
        assert!(!needs.met_by(&Shape::of("v1.2.3")));
        assert!(Needs::default().met_by(&Shape::of("")));
        let s = Shape::of("+1-5 eyJhbG 비밀");
        assert!(!s.ascii && s.plus && s.json_base64);
        assert_eq!((s.digit_run, s.dashes_or_spaces), (1, 3));
        let phone = Needs {
            plus_blank_or_four_digits: true,
            ..Needs::default()
        };
        assert!(phone.met_by(&s) && phone.met_by(&Shape::of("555.123.4567")));
        assert!(!phone.met_by(&Shape::of("203.0.113.45")));
    }
}
