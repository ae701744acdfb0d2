//! The dimensions a set of traces is broken down by: the values each trace has in each, and
//! the filter expression that selects the traces with a value. The two are one rule: a
//! value's count in a breakdown is the number of the set's traces its filter selects (the
//! tests hold every breakdown to that).

use std::fmt;

use crate::assembly::{AnnotationValue, RootCause as StoredCause, TraceSummary};
use crate::filter::{CauseLevel, CauseList, Expr, Flag, Key, Literal, Op, RootCause, StringKey};

/// What a breakdown groups traces by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// The service where a fault root cause started (the last of its services).
    FaultRootCause,
    /// The service where an error root cause started.
    ErrorRootCause,
    /// The service where the response-time root cause ends.
    ResponseTimeRootCause,
    /// The exceptions (by type) on the fault root causes' paths.
    FaultException,
    /// The exceptions on the error root causes' paths.
    ErrorException,
    /// The values of one annotation key.
    Annotation(String),
    /// The entry point's URL.
    Url,
    /// The entry point's HTTP method.
    Method,
    /// The entry point's HTTP status.
    Status,
    /// Users on any segment.
    User,
    /// EC2 instances.
    InstanceId,
    /// Availability zones.
    AvailabilityZone,
}

impl Dimension {
    /// The fixed dimensions, in the order a page shows them (annotations follow, by key).
    pub const FIXED: [Dimension; 11] = [
        Dimension::FaultRootCause,
        Dimension::ErrorRootCause,
        Dimension::ResponseTimeRootCause,
        Dimension::FaultException,
        Dimension::ErrorException,
        Dimension::Url,
        Dimension::Method,
        Dimension::Status,
        Dimension::User,
        Dimension::InstanceId,
        Dimension::AvailabilityZone,
    ];

    /// The API's name of the dimension (`Annotation:KEY` for annotations).
    pub fn name(&self) -> String {
        match self {
            Dimension::FaultRootCause => "FaultRootCauseService".to_owned(),
            Dimension::ErrorRootCause => "ErrorRootCauseService".to_owned(),
            Dimension::ResponseTimeRootCause => "ResponseTimeRootCauseService".to_owned(),
            Dimension::FaultException => "FaultRootCauseException".to_owned(),
            Dimension::ErrorException => "ErrorRootCauseException".to_owned(),
            Dimension::Annotation(k) => format!("Annotation:{k}"),
            Dimension::Url => "Url".to_owned(),
            Dimension::Method => "HttpMethod".to_owned(),
            Dimension::Status => "HttpStatus".to_owned(),
            Dimension::User => "User".to_owned(),
            Dimension::InstanceId => "InstanceId".to_owned(),
            Dimension::AvailabilityZone => "AvailabilityZone".to_owned(),
        }
    }

    /// A short code naming the dimension in stored facets: the position in [`Self::FIXED`],
    /// or `@` and the key of an annotation.
    pub fn code(&self) -> String {
        match self {
            Dimension::Annotation(k) => format!("@{k}"),
            fixed => Self::FIXED
                .iter()
                .position(|d| d == fixed)
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The dimension a [`Self::code`] names.
    pub fn from_code(code: &str) -> Option<Dimension> {
        match code.strip_prefix('@') {
            Some(key) => Some(Dimension::Annotation(key.to_owned())),
            None => Self::FIXED.get(code.parse::<usize>().ok()?).cloned(),
        }
    }

    /// Every value trace `t` has in this dimension, each once, with its [`Value::key`].
    pub fn values_of(&self, t: &TraceSummary) -> Vec<(String, Value)> {
        let text = |s: &str| Value(Literal::Str(s.to_owned()));
        let out: Vec<Value> = match self {
            Dimension::FaultRootCause => last_services(&t.fault_root_causes),
            Dimension::ErrorRootCause => last_services(&t.error_root_causes),
            Dimension::ResponseTimeRootCause => last_services(&t.response_time_root_causes),
            Dimension::FaultException => exceptions(&t.fault_root_causes),
            Dimension::ErrorException => exceptions(&t.error_root_causes),
            Dimension::Annotation(k) => t
                .annotations
                .iter()
                .filter(|a| a.key == *k)
                .map(|a| Value::of_annotation(&a.value))
                .collect(),
            Dimension::Url => http(t, |h| h.url.as_deref().map(text)),
            Dimension::Method => http(t, |h| h.method.as_deref().map(text)),
            Dimension::Status => http(t, |h| h.status.map(|s| Value(Literal::Num(s.into())))),
            Dimension::User => t.users.iter().map(|(u, _)| text(u)).collect(),
            Dimension::InstanceId => t.resources.instance_ids.iter().map(|s| text(s)).collect(),
            Dimension::AvailabilityZone => t
                .resources
                .availability_zones
                .iter()
                .map(|s| text(s))
                .collect(),
        };
        let mut keyed: Vec<(String, Value)> = out.into_iter().map(|v| (v.key(), v)).collect();
        if keyed.len() > 1 {
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            keyed.dedup_by(|a, b| a.0 == b.0);
        }
        keyed
    }

    /// The filter expression selecting the traces that have `value` in this dimension.
    pub fn filter(&self, value: &Value) -> Expr {
        let name_is = |v: &Value| Expr::Compare(Key::String(StringKey::Name), Op::Eq, v.0.clone());
        let last_named = |kind: RootCause, v: &Value| {
            Expr::RootCause(
                CauseList {
                    kind,
                    level: CauseLevel::Service,
                },
                Some(Box::new(Expr::And(vec![
                    Expr::Flag(Flag::Last),
                    name_is(v),
                ]))),
            )
        };
        let exception_named = |kind: RootCause, v: &Value| {
            Expr::RootCause(
                CauseList {
                    kind,
                    level: CauseLevel::Exception,
                },
                Some(Box::new(name_is(v))),
            )
        };
        let string_key = |k: StringKey| Expr::Compare(Key::String(k), Op::Eq, value.0.clone());
        match self {
            Dimension::FaultRootCause => last_named(RootCause::Fault, value),
            Dimension::ErrorRootCause => last_named(RootCause::Error, value),
            Dimension::ResponseTimeRootCause => last_named(RootCause::ResponseTime, value),
            Dimension::FaultException => exception_named(RootCause::Fault, value),
            Dimension::ErrorException => exception_named(RootCause::Error, value),
            Dimension::Annotation(k) => {
                Expr::Compare(Key::Annotation(k.clone()), Op::Eq, value.0.clone())
            }
            Dimension::Url => string_key(StringKey::HttpUrl),
            Dimension::Method => string_key(StringKey::HttpMethod),
            Dimension::Status => Expr::Compare(
                Key::Number(crate::filter::NumberKey::HttpStatus),
                Op::Eq,
                value.0.clone(),
            ),
            Dimension::User => string_key(StringKey::User),
            Dimension::InstanceId => string_key(StringKey::InstanceId),
            Dimension::AvailabilityZone => string_key(StringKey::AvailabilityZone),
        }
    }
}

/// A value in a dimension: a string, a number or a boolean, as the filter language writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Value(pub Literal);

impl Value {
    fn of_annotation(v: &AnnotationValue) -> Self {
        Value(match v {
            AnnotationValue::String(s) => Literal::Str(s.clone()),
            AnnotationValue::Number(n) => Literal::Num(*n),
            AnnotationValue::Bool(b) => Literal::Bool(*b),
        })
    }

    /// The value a [`Self::key`] was made from.
    pub fn from_key(key: &str) -> Option<Value> {
        let rest = key.get(1..)?;
        Some(Value(match key.as_bytes().first()? {
            b's' => Literal::Str(rest.to_owned()),
            b'n' => Literal::Num(rest.parse().ok()?),
            b'b' => Literal::Bool(rest.parse().ok()?),
            _ => return None,
        }))
    }

    /// A key that tells values apart (the string `"1"` from the number `1`).
    pub fn key(&self) -> String {
        match &self.0 {
            Literal::Str(v) => {
                let mut k = String::with_capacity(v.len() + 1);
                k.push('s');
                k.push_str(v);
                k
            }
            Literal::Num(v) => format!("n{v}"),
            Literal::Bool(v) => format!("b{v}"),
        }
    }
}

impl fmt::Display for Value {
    /// The value as a person reads it: strings without their quotes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Literal::Str(s) => f.write_str(s),
            other => write!(f, "{other}"),
        }
    }
}

fn last_services(causes: &[StoredCause]) -> Vec<Value> {
    causes
        .iter()
        .filter_map(|c| c.services.last())
        .map(|s| Value(Literal::Str(s.key.name.clone())))
        .collect()
}

fn exceptions(causes: &[StoredCause]) -> Vec<Value> {
    causes
        .iter()
        .flat_map(|c| &c.services)
        .flat_map(|s| &s.entity_path)
        .flat_map(|e| &e.exceptions)
        .filter_map(|x| x.name.as_ref())
        .map(|n| Value(Literal::Str(n.clone())))
        .collect()
}

fn http(t: &TraceSummary, f: impl Fn(&crate::assembly::HttpFacts) -> Option<Value>) -> Vec<Value> {
    t.http.as_ref().and_then(f).into_iter().collect()
}
