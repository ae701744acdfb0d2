//! The `X-Amzn-Trace-Id` header: `Root=...;Parent=...;Sampled=1|0|?` plus keys we keep as given.

use std::fmt;
use std::str::FromStr;

use super::ids::{IdError, SegmentId, TraceId};

/// Name of the HTTP header that carries the trace context.
pub const TRACE_HEADER: &str = "X-Amzn-Trace-Id";

/// The sampling field of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SamplingDecision {
    /// `Sampled=1`.
    Sampled,
    /// `Sampled=0`.
    NotSampled,
    /// `Sampled=?`: the caller asks the callee to decide and to answer with the decision.
    Requested,
    /// No `Sampled` key.
    #[default]
    Unknown,
}

impl SamplingDecision {
    /// `Some(true/false)` when the decision is made, `None` when the callee must decide.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Self::Sampled => Some(true),
            Self::NotSampled => Some(false),
            Self::Requested | Self::Unknown => None,
        }
    }
}

impl From<bool> for SamplingDecision {
    fn from(sampled: bool) -> Self {
        if sampled {
            Self::Sampled
        } else {
            Self::NotSampled
        }
    }
}

/// Why a trace header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A `key=value` pair has no `=`.
    #[error("field {index} `{field}` is not key=value")]
    NotKeyValue {
        /// 1-based index of the field.
        index: usize,
        /// The field as given.
        field: String,
    },
    /// `Root` is malformed.
    #[error("Root: {0}")]
    Root(IdError),
    /// `Parent` is malformed.
    #[error("Parent: {0}")]
    Parent(IdError),
    /// `Sampled` is not `1`, `0` or `?`.
    #[error("Sampled must be 1, 0 or ?, found `{0}`")]
    Sampled(String),
    /// The header has more than 256 fields or 8 KiB.
    #[error("header too large")]
    TooLarge,
}

/// A parsed `X-Amzn-Trace-Id` value. Unknown keys (`Lineage`, `Self`, ...) are kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceHeader {
    /// `Root`: the trace id.
    pub root: Option<TraceId>,
    /// `Parent`: the id of the calling (sub)segment.
    pub parent: Option<SegmentId>,
    /// `Sampled`.
    pub sampled: SamplingDecision,
    /// Other keys, in the order they came.
    pub extra: Vec<(String, String)>,
}

impl TraceHeader {
    const MAX_LEN: usize = 8 * 1024;

    /// A header for a new trace or a call within one.
    pub fn new(root: TraceId, parent: Option<SegmentId>, sampled: SamplingDecision) -> Self {
        Self {
            root: Some(root),
            parent,
            sampled,
            extra: Vec::new(),
        }
    }

    /// The header's text, as `to_string()` gives it, in a string allocated once at its size
    /// (`to_string()` grows its string several times; this runs on every traced call).
    pub fn encode(&self) -> String {
        // "Root=" + 35, ";Parent=" + 16, ";Sampled=?" and ";key=value" per unknown key.
        let extra: usize = self.extra.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut out = String::with_capacity(74 + extra);
        // Writing into a `String` cannot fail.
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{self}"));
        out
    }
}

impl TraceHeader {
    /// Parses a header as the official SDKs do: each field on its own, so a header with one
    /// bad field keeps the fields it can read (a bad `Sampled` leaves the decision to the
    /// callee; a field without `=` is skipped). The first problem is returned beside it. A
    /// header over 8 KiB or 256 unknown keys yields nothing but the error.
    pub fn parse_lenient(s: &str) -> (Self, Option<HeaderError>) {
        let mut problem = None;
        let header = Self::parse_fields(s, |e| {
            problem.get_or_insert(e);
            true
        });
        match problem {
            Some(HeaderError::TooLarge) => (Self::default(), Some(HeaderError::TooLarge)),
            other => (header.unwrap_or_default(), other),
        }
    }

    /// The one parser behind [`FromStr`] (strict: the first problem is the answer) and
    /// [`TraceHeader::parse_lenient`]: `problem` is told each bad field and says whether to
    /// go on without it.
    fn parse_fields(
        s: &str,
        mut problem: impl FnMut(HeaderError) -> bool,
    ) -> Result<Self, HeaderError> {
        if s.len() > Self::MAX_LEN {
            return Err(HeaderError::TooLarge);
        }
        let mut header = TraceHeader::default();
        for (i, field) in s.split(';').enumerate() {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            let step = match field.split_once('=') {
                None => Err(HeaderError::NotKeyValue {
                    index: i + 1,
                    field: field.to_owned(),
                }),
                Some((key, value)) => header.set(key.trim(), value.trim()),
            };
            if let Err(error) = step {
                let too_large = error == HeaderError::TooLarge;
                if !problem(error.clone()) || too_large {
                    return Err(error);
                }
            }
        }
        Ok(header)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), HeaderError> {
        if key.eq_ignore_ascii_case("Root") {
            self.root = Some(value.parse().map_err(HeaderError::Root)?);
        } else if key.eq_ignore_ascii_case("Parent") {
            self.parent = Some(value.parse().map_err(HeaderError::Parent)?);
        } else if key.eq_ignore_ascii_case("Sampled") {
            self.sampled = match value {
                "1" => SamplingDecision::Sampled,
                "0" => SamplingDecision::NotSampled,
                "?" => SamplingDecision::Requested,
                other => return Err(HeaderError::Sampled(other.to_owned())),
            };
        } else {
            if self.extra.len() >= 256 {
                return Err(HeaderError::TooLarge);
            }
            self.extra.push((key.to_owned(), value.to_owned()));
        }
        Ok(())
    }
}

impl FromStr for TraceHeader {
    type Err = HeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_fields(s, |_| false)
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Plain `write_str`s: this runs on every outgoing call, and `write!` costs several
        // times more per piece.
        let mut sep = "";
        if let Some(root) = &self.root {
            f.write_str("Root=")?;
            fmt::Display::fmt(root, f)?;
            sep = ";";
        }
        if let Some(parent) = &self.parent {
            f.write_str(sep)?;
            f.write_str("Parent=")?;
            fmt::Display::fmt(parent, f)?;
            sep = ";";
        }
        let sampled = match self.sampled {
            SamplingDecision::Sampled => Some("1"),
            SamplingDecision::NotSampled => Some("0"),
            SamplingDecision::Requested => Some("?"),
            SamplingDecision::Unknown => None,
        };
        if let Some(sampled) = sampled {
            f.write_str(sep)?;
            f.write_str("Sampled=")?;
            f.write_str(sampled)?;
            sep = ";";
        }
        for (key, value) in &self.extra {
            f.write_str(sep)?;
            f.write_str(key)?;
            f.write_str("=")?;
            f.write_str(value)?;
            sep = ";";
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_header() {
        let h: TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .parse()
                .unwrap();
        assert_eq!(
            h.root.unwrap().to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(h.sampled, SamplingDecision::Sampled);
    }

    #[test]
    fn keeps_unknown_keys_in_order_and_sampled_request() {
        let text = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?;Lineage=a87bd80c:1|68fd508a:5;Self=1-abc";
        let h: TraceHeader = text.parse().unwrap();
        assert_eq!(h.sampled, SamplingDecision::Requested);
        assert_eq!(
            h.extra,
            vec![
                ("Lineage".to_owned(), "a87bd80c:1|68fd508a:5".to_owned()),
                ("Self".to_owned(), "1-abc".to_owned())
            ]
        );
        assert_eq!(h.to_string(), text);
    }

    #[test]
    fn reports_what_is_wrong() {
        assert!(matches!(
            "Root=1-5759e988-bd862e3fe1be46a99427279".parse::<TraceHeader>(),
            Err(HeaderError::Root(IdError::Length { .. }))
        ));
        assert_eq!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=yes".parse::<TraceHeader>(),
            Err(HeaderError::Sampled("yes".into()))
        );
        assert!(matches!(
            "Root".parse::<TraceHeader>(),
            Err(HeaderError::NotKeyValue { index: 1, .. })
        ));
    }

    #[test]
    fn lenient_parsing_keeps_the_fields_it_can_read() {
        let (h, problem) = TraceHeader::parse_lenient(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=nothex;Sampled=yes;junk;Lineage=a:1",
        );
        assert_eq!(
            h.root.unwrap().to_string(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, SamplingDecision::Unknown);
        assert_eq!(h.extra, vec![("Lineage".to_owned(), "a:1".to_owned())]);
        assert!(matches!(problem, Some(HeaderError::Parent(_))));

        let (h, problem) = TraceHeader::parse_lenient("Root=1-5759e988-bd862e3fe1be46a994272793");
        assert!(h.root.is_some() && h.parent.is_none() && problem.is_none());

        let big = "K=v;".repeat(300);
        let (h, problem) = TraceHeader::parse_lenient(&big);
        assert_eq!(h, TraceHeader::default());
        assert_eq!(problem, Some(HeaderError::TooLarge));
    }

    fn arb_header() -> impl Strategy<Value = TraceHeader> {
        let sampled = prop_oneof![
            Just(SamplingDecision::Sampled),
            Just(SamplingDecision::NotSampled),
            Just(SamplingDecision::Requested),
            Just(SamplingDecision::Unknown),
        ];
        (
            proptest::option::of((any::<u32>(), any::<u128>())),
            proptest::option::of(any::<u64>()),
            sampled,
            proptest::collection::vec(("[A-Z][a-z]{1,8}", "[a-z0-9:|-]{0,12}"), 0..3),
        )
            .prop_map(|(root, parent, sampled, extra)| TraceHeader {
                root: root.map(|(e, r)| TraceId::from_parts(e, r)),
                parent: parent.map(SegmentId::from_u64),
                sampled,
                extra: extra
                    .into_iter()
                    .filter(|(k, _)| !["Root", "Parent", "Sampled"].contains(&k.as_str()))
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn parse_print_is_identity(h in arb_header()) {
            let printed = h.to_string();
            let parsed: TraceHeader = printed.parse().unwrap();
            prop_assert_eq!(&parsed, &h);
            prop_assert_eq!(parsed.to_string(), printed.clone());
            prop_assert_eq!(h.encode(), printed.clone());
            prop_assert_eq!(TraceHeader::parse_lenient(&printed), (h, None));
        }

        #[test]
        fn lenient_parsing_agrees_with_strict_parsing_when_that_succeeds(text in "[A-Za-z0-9=;?:|-]{0,80}") {
            let (lenient, problem) = TraceHeader::parse_lenient(&text);
            match text.parse::<TraceHeader>() {
                Ok(strict) => {
                    prop_assert_eq!(lenient, strict);
                    prop_assert!(problem.is_none());
                }
                Err(error) => prop_assert_eq!(problem, Some(error)),
            }
        }
    }
}
