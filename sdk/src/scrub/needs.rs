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
}

impl Shape {
    /// Counts what `text` holds.
    pub fn of(text: &str) -> Self {
        let mut shape = Self::default();
        let (mut upper, mut base64) = (0u32, 0u32);
        for &b in text.as_bytes() {
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
                        b' ' | b'\t' => shape.blank = true,
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
        let needs = Needs {
            digits: 4,
            dots: 3,
            ..Needs::default()
        };
        assert!(needs.met_by(&s));
        assert!(!needs.met_by(&Shape::of("v1.2.3")));
        assert!(Needs::default().met_by(&Shape::of("")));
    }
}
