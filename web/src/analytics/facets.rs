//! A trace's *facets*: the few things an analysis reads of it — start, response time,
//! outcome and its value in every dimension — computed once at ingest from its summary and
//! stored beside it as a short text, so that analysing a set reads and decodes a few hundred
//! bytes per trace instead of its whole summary.
//!
//! The text is JSON: `{"t":START,"r":RESPONSE_TIME,"o":OUTCOME,"v":[[DIMENSION,VALUE],…]}`,
//! where `DIMENSION` is [`Dimension::code`] and `VALUE` is [`Value::key`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::Dimension;
use crate::assembly::TraceSummary;

/// Outcome bits of [`Facets::outcome`].
const ERROR: u8 = 1;
const THROTTLE: u8 = 2;
const FAULT: u8 = 4;

/// A string of the facets' text, borrowed from it when it holds no escapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// What an analysis reads of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facets<'a> {
    /// The trace's start, epoch seconds.
    #[serde(rename = "t")]
    pub start_time: f64,
    /// Its response time, seconds.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
    /// Error, throttle and fault bits.
    #[serde(rename = "o")]
    pub outcome: u8,
    /// `(dimension code, value key)` for every value the trace has, each once.
    #[serde(rename = "v", borrow)]
    pub values: Vec<(Text<'a>, Text<'a>)>,
}

impl Facets<'static> {
    /// The facets of a trace: its value in every fixed dimension and every annotation key.
    pub fn of(t: &TraceSummary) -> Self {
        let mut keys: Vec<&str> = t.annotations.iter().map(|a| a.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let dimensions = Dimension::FIXED.into_iter().chain(
            keys.into_iter()
                .map(|k| Dimension::Annotation(k.to_owned())),
        );
        let mut values = Vec::new();
        for d in dimensions {
            let code = d.code();
            for (key, _) in d.values_of(t) {
                values.push((Text(Cow::Owned(code.clone())), Text(Cow::Owned(key))));
            }
        }
        Self {
            start_time: t.start_time,
            response_time: t.response_time,
            outcome: [
                (t.has_error, ERROR),
                (t.has_throttle, THROTTLE),
                (t.has_fault, FAULT),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .fold(0, |bits, (_, bit)| bits | bit),
            values,
        }
    }

    /// The stored text of a trace's facets.
    pub fn encode(t: &TraceSummary) -> String {
        // Nothing in `Facets` can fail to serialize (no maps, finite or absent numbers are
        // written as JSON writes them).
        serde_json::to_string(&Self::of(t)).unwrap_or_default()
    }
}

impl<'a> Facets<'a> {
    /// Facets from their stored text, borrowing its strings.
    pub fn decode(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// With a client error.
    pub fn has_error(&self) -> bool {
        self.outcome & ERROR != 0
    }

    /// Throttled.
    pub fn has_throttle(&self) -> bool {
        self.outcome & THROTTLE != 0
    }

    /// Faulted.
    pub fn has_fault(&self) -> bool {
        self.outcome & FAULT != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_read_back_as_written_whatever_their_strings_hold() {
        let docs = crate::synth::fleet_trace(7, 1_800_000_000.0);
        let facts: Vec<_> = crate::test_support::prepared(&docs)
            .into_iter()
            .map(|d| (*d.facts).clone())
            .collect();
        let mut summary = crate::assembly::fold_trace("t", &facts).summary;
        summary.annotations.push(crate::assembly::AnnotationEntry {
            key: "quote\"d\\key".to_owned(),
            value: crate::assembly::AnnotationValue::String("é \"x\"\n\u{1}".to_owned()),
            services: Vec::new(),
        });
        let text = Facets::encode(&summary);
        let back = Facets::decode(&text).unwrap();
        assert_eq!(back, Facets::of(&summary));
        assert!(back.values.len() > 5, "{text}");
        assert!(
            back.values
                .iter()
                .any(|(d, v)| d.0 == "@quote\"d\\key" && v.0 == "sé \"x\"\n\u{1}")
        );
        // Plain strings are borrowed from the text, not copied.
        assert!(
            back.values
                .iter()
                .any(|(d, _)| matches!(d.0, Cow::Borrowed(_)))
        );
    }
}
