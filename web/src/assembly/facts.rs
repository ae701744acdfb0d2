//! What one stored document contributes to its trace, extracted once at ingest so that
//! re-folding a trace never re-parses documents.

use roentgen_sdk::model::{Cause, Segment, SegmentId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An annotation value: string, number or boolean (stored as the bare JSON value).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnnotationValue {
    /// Boolean.
    Bool(bool),
    /// Number.
    Number(f64),
    /// String.
    String(String),
}

/// Read by the JSON type it has (serde's `untagged` would try each variant in turn, building
/// an error for each miss: a cost on every stored summary read back).
impl<'de> Deserialize<'de> for AnnotationValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AnnotationValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::Number(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<AnnotationValue, E> {
                Ok(AnnotationValue::String(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl AnnotationValue {
    /// Converts a JSON annotation value; `None` for other JSON types.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => n.as_f64().map(Self::Number),
            Value::String(s) => Some(Self::String(s.clone())),
            _ => None,
        }
    }

    /// Canonical text, used as the store's index key (`true`, `12.5`, the string itself).
    pub fn index_text(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Number(n) => n.to_string(),
            Self::String(s) => s.clone(),
        }
    }
}

/// HTTP facts of a request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HttpFacts {
    /// URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// User agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// A call to a downstream (`remote` or `aws` subsegment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallFacts {
    /// Subsegment id (a downstream segment's `parent_id` points here).
    pub id: SegmentId,
    /// Downstream name.
    pub name: String,
    /// Inferred node type: `remote` or `AWS::<name>`.
    pub kind: String,
    /// Start.
    pub start: f64,
    /// End.
    pub end: Option<f64>,
    /// Still in progress.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
    /// Error flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Throttle flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Fault flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
}

/// Everything the trace fold needs from one stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocFacts {
    /// Document id.
    pub id: SegmentId,
    /// Parent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<SegmentId>,
    /// A subsegment sent on its own.
    #[serde(default, skip_serializing_if = "is_false")]
    pub subsegment: bool,
    /// Name.
    pub name: String,
    /// Segment origin (node type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Start.
    pub start: f64,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    /// Latest end among nested subsegments (for in-progress documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_end: Option<f64>,
    /// In progress.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
    /// Own error flag (or 4xx status).
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// Own throttle flag (or 429).
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// Own fault flag (or 5xx).
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// Any error in the document tree.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any_error: bool,
    /// Any throttle in the document tree.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any_throttle: bool,
    /// Any fault in the document tree.
    #[serde(default, skip_serializing_if = "is_false")]
    pub any_fault: bool,
    /// HTTP facts of the document itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFacts>,
    /// User.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Annotations of the whole tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<(String, AnnotationValue)>,
    /// Ids of nested subsegments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner_ids: Vec<SegmentId>,
    /// Downstream calls in the tree (the document itself included when it is one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallFacts>,
    /// Exception messages (at most 10) and where the document ran.
    #[serde(default, skip_serializing_if = "ResourceFacts::is_empty")]
    pub resources: ResourceFacts,
    /// From the document down to its deepest faulting entity, when something in it faulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_path: Option<CausePath>,
    /// From the document down to its deepest entity with an error or throttle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_path: Option<CausePath>,
    /// From the document down its slowest child at each level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_path: Option<CausePath>,
}

/// An exception as root-cause analysis reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExceptionFacts {
    /// Exception type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One segment or subsegment on the path to a root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathEntity {
    /// Its name.
    pub name: String,
    /// Exceptions it recorded (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionFacts>,
    /// A call to a downstream (`remote`/`aws` namespace).
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
    /// Its share of the top entity's duration (response-time paths only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
}

/// A path of entities from a document's top down, and the id of its last entity (a calling
/// subsegment's id is the `parent_id` of the downstream segment it called).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausePath {
    /// Top first.
    pub entities: Vec<PathEntity>,
    /// Id of the last entity.
    pub last_id: SegmentId,
    /// One per entity of a response-time path (empty on fault and error paths): the fold
    /// follows subsegments sent on their own with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PathStep>,
}

/// An entity's id and duration on a response-time path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PathStep {
    /// Its id (the `parent_id` of subsegments sent on their own under it).
    pub id: SegmentId,
    /// Its duration in seconds.
    #[serde(rename = "d")]
    pub duration: f64,
}

/// An entity's share of its path's top entity's duration, to four decimals: a share, not a
/// measurement; keeps summaries short.
pub fn coverage(duration: f64, total: f64) -> f64 {
    if total > 0.0 {
        ((duration / total).min(1.0) * 10_000.0).round() / 10_000.0
    } else {
        0.0
    }
}

/// Deepest nesting a cause path follows.
pub(super) const MAX_PATH_DEPTH: usize = 32;

fn is_remote(s: &Segment) -> bool {
    matches!(s.namespace.as_deref(), Some("remote" | "aws"))
}

fn path_entity(s: &Segment, coverage: Option<f64>) -> PathEntity {
    let exceptions = match &s.cause {
        Some(Cause::Details(d)) => d
            .exceptions
            .iter()
            .flatten()
            .take(5)
            .map(|e| ExceptionFacts {
                name: e.kind.clone(),
                message: e.message.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    PathEntity {
        name: s.name.clone(),
        exceptions,
        remote: is_remote(s),
        coverage,
    }
}

/// Whether `flag` holds for `s` or anything nested in it.
fn in_tree(s: &Segment, flag: &dyn Fn(&Segment) -> bool, depth: usize) -> bool {
    flag(s)
        || (depth < MAX_PATH_DEPTH
            && s.subsegments
                .iter()
                .flatten()
                .any(|c| in_tree(c, flag, depth + 1)))
}

/// The path from `top` down to the deepest entity with `flag`, following at each level the
/// first child whose tree has it; `None` when nothing in `top` has it.
fn flag_path(top: &Segment, flag: &dyn Fn(&Segment) -> bool) -> Option<CausePath> {
    if !in_tree(top, flag, 0) {
        return None;
    }
    let mut at = top;
    let mut entities = vec![path_entity(top, None)];
    while entities.len() < MAX_PATH_DEPTH {
        let Some(next) = at
            .subsegments
            .iter()
            .flatten()
            .find(|c| in_tree(c, flag, entities.len()))
        else {
            break;
        };
        entities.push(path_entity(next, None));
        at = next;
    }
    Some(CausePath {
        entities,
        last_id: at.id,
        steps: Vec::new(),
    })
}

/// The path from `top` down its longest-running child at each level, with each entity's share
/// of `top`'s duration.
fn slow_path(top: &Segment) -> Option<CausePath> {
    let duration = |s: &Segment| s.end_time.map(|e| (e - s.start_time).max(0.0));
    let total = duration(top)?;
    let mut at = top;
    let mut entities = vec![path_entity(top, Some(1.0))];
    let mut steps = vec![PathStep {
        id: top.id,
        duration: total,
    }];
    while entities.len() < MAX_PATH_DEPTH {
        let Some((next, d)) = at
            .subsegments
            .iter()
            .flatten()
            .filter_map(|c| Some((c, duration(c)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            break;
        };
        entities.push(path_entity(next, Some(coverage(d, total))));
        steps.push(PathStep {
            id: next.id,
            duration: d,
        });
        at = next;
    }
    Some(CausePath {
        entities,
        last_id: at.id,
        steps,
    })
}

/// What a document (or a whole trace) threw and where it ran: exception messages, resource
/// ARNs, EC2 instances, availability zones and accounts; each list without duplicates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceFacts {
    /// Exception messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// Resource ARNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_arns: Vec<String>,
    /// EC2 instance ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_ids: Vec<String>,
    /// Availability zones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub availability_zones: Vec<String>,
    /// Account ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub account_ids: Vec<String>,
}

fn add_unique(list: &mut Vec<String>, value: &str, max: usize) {
    if list.len() < max && !list.iter().any(|x| x == value) {
        list.push(value.to_owned());
    }
}

impl ResourceFacts {
    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.resource_arns.is_empty()
            && self.instance_ids.is_empty()
            && self.availability_zones.is_empty()
            && self.account_ids.is_empty()
    }

    /// Adds another's entries (messages up to `max_messages`).
    pub fn merge(&mut self, other: &ResourceFacts, max_messages: usize) {
        for m in &other.messages {
            add_unique(&mut self.messages, m, max_messages);
        }
        let lists = [
            (&mut self.resource_arns, &other.resource_arns),
            (&mut self.instance_ids, &other.instance_ids),
            (&mut self.availability_zones, &other.availability_zones),
            (&mut self.account_ids, &other.account_ids),
        ];
        for (mine, theirs) in lists {
            for v in theirs {
                add_unique(mine, v, usize::MAX);
            }
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn status_flags(s: &Segment) -> (bool, bool, bool) {
    let status = s
        .http
        .as_ref()
        .and_then(|h| h.response.as_ref())
        .and_then(|r| r.status);
    let mut error = s.error == Some(true);
    let mut throttle = s.throttle == Some(true);
    let mut fault = s.fault == Some(true);
    match status {
        Some(429) => {
            error = true;
            throttle = true;
        }
        Some(400..=499) => error = true,
        Some(500..=599) => fault = true,
        _ => {}
    }
    (error, throttle, fault)
}

fn http_facts(s: &Segment) -> Option<HttpFacts> {
    let h = s.http.as_ref()?;
    let req = h.request.as_ref();
    Some(HttpFacts {
        url: req.and_then(|r| r.url.clone()),
        method: req.and_then(|r| r.method.clone()),
        status: h.response.as_ref().and_then(|r| r.status),
        user_agent: req.and_then(|r| r.user_agent.clone()),
        client_ip: req.and_then(|r| r.client_ip.clone()),
    })
}

fn str_at<'a>(map: &'a serde_json::Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, init) = path.split_last()?;
    let mut at = map;
    for key in init {
        at = at.get(*key)?.as_object()?;
    }
    at.get(*last)?.as_str()
}

impl DocFacts {
    /// The facts of a stored document's text (what ingest extracted from it: the text is the
    /// segment as it was stored, scrubbed), for a store reading a trace back.
    pub fn of_stored(document: &str) -> Result<Self, serde_json::Error> {
        let segment: Segment = serde_json::from_str(document)?;
        Ok(Self::extract(&segment))
    }

    /// Extracts the facts of a validated top-level document.
    pub fn extract(doc: &Segment) -> Self {
        let (error, throttle, fault) = status_flags(doc);
        let mut facts = Self {
            id: doc.id,
            parent_id: doc.parent_id,
            subsegment: doc.is_subsegment(),
            name: doc.name.clone(),
            origin: doc.origin.clone(),
            start: doc.start_time,
            end: doc.end_time,
            max_end: None,
            in_progress: doc.in_progress == Some(true),
            error,
            throttle,
            fault,
            any_error: false,
            any_throttle: false,
            any_fault: false,
            http: http_facts(doc),
            user: doc.user.clone(),
            annotations: Vec::new(),
            inner_ids: Vec::new(),
            calls: Vec::new(),
            resources: ResourceFacts::default(),
            fault_path: None,
            error_path: None,
            slow_path: None,
        };
        facts.visit(doc, true);
        if facts.any_fault {
            facts.fault_path = flag_path(doc, &|s| status_flags(s).2);
        }
        if facts.any_error || facts.any_throttle {
            facts.error_path = flag_path(doc, &|s| {
                let (error, throttle, _) = status_flags(s);
                error || throttle
            });
        }
        facts.slow_path = slow_path(doc);
        facts
    }

    fn visit(&mut self, s: &Segment, top: bool) {
        let (error, throttle, fault) = status_flags(s);
        self.any_error |= error;
        self.any_throttle |= throttle;
        self.any_fault |= fault;
        if !top {
            self.inner_ids.push(s.id);
        }
        if let Some(end) = s.end_time {
            self.max_end = Some(self.max_end.map_or(end, |m: f64| m.max(end)));
        }
        if self.user.is_none() && s.user.is_some() {
            self.user = s.user.clone();
        }
        for (k, v) in s.annotations.iter().flatten() {
            if let Some(v) = AnnotationValue::from_json(v)
                && self.annotations.len() < 50
            {
                self.annotations.push((k.clone(), v));
            }
        }
        if let Some(Cause::Details(d)) = &s.cause {
            for m in d
                .exceptions
                .iter()
                .flatten()
                .filter_map(|e| e.message.as_deref())
            {
                add_unique(&mut self.resources.messages, m, 10);
            }
        }
        let r = &mut self.resources;
        if let Some(arn) = &s.resource_arn {
            add_unique(&mut r.resource_arns, arn, usize::MAX);
        }
        if let Some(aws) = &s.aws {
            let found = [
                (&mut r.instance_ids, str_at(aws, &["ec2", "instance_id"])),
                (
                    &mut r.availability_zones,
                    str_at(aws, &["ec2", "availability_zone"]),
                ),
                (&mut r.account_ids, str_at(aws, &["account_id"])),
            ];
            for (list, value) in found {
                if let Some(v) = value {
                    add_unique(list, v, usize::MAX);
                }
            }
        }
        let namespace = s.namespace.as_deref();
        if (!top || s.is_subsegment()) && is_remote(s) {
            let kind = if namespace == Some("aws") {
                format!("AWS::{}", s.name)
            } else {
                "remote".to_owned()
            };
            self.calls.push(CallFacts {
                id: s.id,
                name: s.name.clone(),
                kind,
                start: s.start_time,
                end: s.end_time,
                in_progress: s.in_progress == Some(true),
                error,
                throttle,
                fault,
            });
        }
        for sub in s.subsegments.iter().flatten() {
            self.visit(sub, false);
        }
    }
}
