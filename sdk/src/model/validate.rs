//! Validation of segment documents with errors that say which field is wrong and why.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use super::document::{Segment, annotation_value_is_valid};
use super::ids::{IdError, SegmentId, TraceId};

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationErrorKind {
    /// A required field is absent.
    #[error("is required")]
    Missing,
    /// `name` is empty or longer than 200 characters.
    #[error("must be 1 to 200 characters, found {0}")]
    NameLength(usize),
    /// `name` holds a character X-Ray does not allow.
    #[error(
        "character {character:?} at column {column} is not allowed (letters, digits, whitespace and _ . : / % & # = + \\ - @)"
    )]
    NameCharacter {
        /// The character.
        character: char,
        /// 1-based column.
        column: usize,
    },
    /// An id or trace id is malformed.
    #[error("{0}")]
    Id(#[from] IdError),
    /// A time is not a positive finite number of epoch seconds.
    #[error("must be positive epoch seconds, found {0}")]
    Time(f64),
    /// `end_time` precedes `start_time`.
    #[error("end_time {end} precedes start_time {start}")]
    EndBeforeStart {
        /// Start.
        start: f64,
        /// End.
        end: f64,
    },
    /// Neither `end_time` nor `in_progress: true` is present.
    #[error("needs end_time or in_progress: true")]
    NotEnded,
    /// An annotation key uses characters other than `[A-Za-z0-9_]` or is too long.
    #[error("annotation key must be 1 to 500 characters of [A-Za-z0-9_]")]
    AnnotationKey,
    /// An annotation value is not a string, number or boolean.
    #[error("annotation value must be a string, number or boolean")]
    AnnotationValue,
    /// The document is not JSON or not an object.
    #[error("not a JSON segment document: {0}")]
    Json(String),
}

/// A validation failure and the path of the field it concerns, e.g. `subsegments[2].name`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// Dotted path of the field.
    pub path: String,
    /// What is wrong.
    pub kind: ValidationErrorKind,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn err(path: &str, field: &str, kind: ValidationErrorKind) -> ValidationError {
    ValidationError {
        path: join(path, field),
        kind,
    }
}

/// Checks a segment or subsegment name against X-Ray's rules.
pub(crate) fn check_name(name: &str) -> Result<(), ValidationErrorKind> {
    let len = name.chars().count();
    if len == 0 || len > 200 {
        return Err(ValidationErrorKind::NameLength(len));
    }
    for (i, c) in name.chars().enumerate() {
        if !name_character_is_valid(c) {
            return Err(ValidationErrorKind::NameCharacter {
                character: c,
                column: i + 1,
            });
        }
    }
    Ok(())
}

/// Whether a character may appear in a segment or subsegment name.
fn name_character_is_valid(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c)
}

/// `name` made valid for X-Ray: characters X-Ray refuses become `_`, at most 200 characters,
/// `unknown` when empty. Unchanged (borrowed) when it was valid.
pub fn valid_name(name: &str) -> std::borrow::Cow<'_, str> {
    if check_name(name).is_ok() {
        return std::borrow::Cow::Borrowed(name);
    }
    let fixed: String = name
        .chars()
        .map(|c| if name_character_is_valid(c) { c } else { '_' })
        .take(200)
        .collect();
    if fixed.is_empty() {
        "unknown".into()
    } else {
        fixed.into()
    }
}

fn check_time(t: f64) -> Result<(), ValidationErrorKind> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(ValidationErrorKind::Time(t))
    }
}

fn check_times(
    path: &str,
    start: f64,
    end: Option<f64>,
    in_progress: Option<bool>,
) -> Result<(), ValidationError> {
    check_time(start).map_err(|k| err(path, "start_time", k))?;
    match end {
        Some(end) => {
            check_time(end).map_err(|k| err(path, "end_time", k))?;
            if end < start {
                return Err(err(
                    path,
                    "end_time",
                    ValidationErrorKind::EndBeforeStart { start, end },
                ));
            }
        }
        None if in_progress == Some(true) => {}
        None => return Err(err(path, "end_time", ValidationErrorKind::NotEnded)),
    }
    Ok(())
}

/// Whether an annotation key is valid: 1 to 500 characters of `[A-Za-z0-9_]`.
pub(crate) fn annotation_key_is_valid(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 500
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How strict a validation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Everything, annotation keys included (what the SDK produces).
    Strict,
    /// What ingest needs; annotation keys are not checked because some official SDKs (Node)
    /// do not validate them and X-Ray ignores such annotations rather than the segment.
    Ingest,
}

impl Segment {
    /// Validates a top-level document (segment or subsegment sent on its own), recursively,
    /// including annotation keys and value types.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_top(Strictness::Strict)
    }

    /// Validates what ingest must refuse: names, ids, times, required fields and annotation
    /// value types. Annotation keys are left alone (see the Node SDK captures).
    pub fn validate_for_ingest(&self) -> Result<(), ValidationError> {
        self.validate_top(Strictness::Ingest)
    }

    fn validate_top(&self, strictness: Strictness) -> Result<(), ValidationError> {
        if self.trace_id.is_none() {
            return Err(err("", "trace_id", ValidationErrorKind::Missing));
        }
        if self.is_subsegment() && self.parent_id.is_none() {
            return Err(err("", "parent_id", ValidationErrorKind::Missing));
        }
        self.validate_at("", strictness)
    }

    fn validate_at(&self, path: &str, strictness: Strictness) -> Result<(), ValidationError> {
        check_name(&self.name).map_err(|k| err(path, "name", k))?;
        check_times(path, self.start_time, self.end_time, self.in_progress)?;
        for (key, value) in self.annotations.iter().flatten() {
            if strictness == Strictness::Strict && !annotation_key_is_valid(key) {
                return Err(err(
                    path,
                    &format!("annotations.{key}"),
                    ValidationErrorKind::AnnotationKey,
                ));
            }
            if !annotation_value_is_valid(value) {
                return Err(err(
                    path,
                    &format!("annotations.{key}"),
                    ValidationErrorKind::AnnotationValue,
                ));
            }
        }
        for (i, sub) in self.subsegments.iter().flatten().enumerate() {
            sub.validate_at(&join(path, &format!("subsegments[{i}]")), strictness)?;
        }
        Ok(())
    }
}

/// The fields of a document that routing and storage need, read without building the whole
/// document (fields it does not name are skipped by the parser, not allocated).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentHead {
    /// `name`.
    pub name: String,
    /// `id`.
    pub id: SegmentId,
    /// `trace_id`.
    pub trace_id: TraceId,
    /// `parent_id`, if any.
    pub parent_id: Option<SegmentId>,
    /// `start_time`.
    pub start_time: f64,
    /// `end_time`, absent while in progress.
    pub end_time: Option<f64>,
    /// `in_progress == true`.
    pub in_progress: bool,
    /// `type == "subsegment"`.
    pub is_subsegment: bool,
}

#[derive(Deserialize)]
struct RawHead<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    parent_id: Option<Cow<'a, str>>,
    #[serde(default)]
    start_time: Option<f64>,
    #[serde(default)]
    end_time: Option<f64>,
    #[serde(default)]
    in_progress: Option<bool>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

impl DocumentHead {
    /// Parses and validates the top-level fields of a document: JSON object, `name`, `id`,
    /// `trace_id`, times, and `parent_id` for a subsegment sent on its own.
    pub fn parse(json: &[u8]) -> Result<Self, ValidationError> {
        let raw: RawHead<'_> = serde_json::from_slice(json).map_err(|e| ValidationError {
            path: String::new(),
            kind: ValidationErrorKind::Json(e.to_string()),
        })?;
        let name = raw
            .name
            .ok_or_else(|| err("", "name", ValidationErrorKind::Missing))?;
        check_name(&name).map_err(|k| err("", "name", k))?;
        let id: SegmentId = raw
            .id
            .ok_or_else(|| err("", "id", ValidationErrorKind::Missing))?
            .parse()
            .map_err(|e: IdError| err("", "id", e.into()))?;
        let trace_id: TraceId = raw
            .trace_id
            .ok_or_else(|| err("", "trace_id", ValidationErrorKind::Missing))?
            .parse()
            .map_err(|e: IdError| err("", "trace_id", e.into()))?;
        let parent_id = raw
            .parent_id
            .map(|p| p.parse::<SegmentId>())
            .transpose()
            .map_err(|e| err("", "parent_id", e.into()))?;
        let start_time = raw
            .start_time
            .ok_or_else(|| err("", "start_time", ValidationErrorKind::Missing))?;
        check_times("", start_time, raw.end_time, raw.in_progress)?;
        let is_subsegment = raw.kind.as_deref() == Some("subsegment");
        if is_subsegment && parent_id.is_none() {
            return Err(err("", "parent_id", ValidationErrorKind::Missing));
        }
        Ok(Self {
            name: name.into_owned(),
            id,
            trace_id,
            parent_id,
            start_time,
            end_time: raw.end_time,
            in_progress: raw.in_progress == Some(true),
            is_subsegment,
        })
    }
}
