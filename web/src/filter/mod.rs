//! The X-Ray filter-expression language: lexer, recursive-descent parser with errors that point
//! at a column, evaluation over trace summaries, and the extraction of the predicates a store
//! can answer from its indexes (time range aside, which every query carries).

mod eval;
mod groups;
mod lexer;
mod nesting;
mod parser;
mod resolve;

use std::fmt;

use crate::store::Pushdown;
use nesting::Under;

pub use eval::matches;
pub use groups::GroupRefs;
pub use nesting::MAX_NESTING;
pub use resolve::{MAX_GROUP_CHAIN, MAX_GROUP_EXPANSIONS};

/// A filter expression that failed to parse, with the 1-based column and what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based column (characters) of the offending token; one past the end for a missing one.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl FilterError {
    fn new(column: usize, message: impl Into<String>) -> Self {
        Self {
            column,
            message: message.into(),
        }
    }
}

/// Boolean keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// No error, throttle or fault.
    Ok,
    /// 4xx.
    Error,
    /// 429.
    Throttle,
    /// 5xx.
    Fault,
    /// Missing pieces.
    Partial,
    /// An inferred service.
    Inferred,
    /// The first service of a path (the root).
    First,
    /// The last service of a path (no downstream).
    Last,
    /// A remote (inferred) service.
    Remote,
    /// The root service.
    Root,
}

/// Number keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberKey {
    /// `responsetime`.
    ResponseTime,
    /// `duration`.
    Duration,
    /// `http.status`.
    HttpStatus,
    /// `index`.
    Index,
    /// `coverage`.
    Coverage,
}

/// String keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringKey {
    /// `http.url`.
    HttpUrl,
    /// `http.method`.
    HttpMethod,
    /// `http.useragent`.
    HttpUserAgent,
    /// `http.clientip`.
    HttpClientIp,
    /// `user`.
    User,
    /// `name`.
    Name,
    /// `type`.
    Type,
    /// `message`.
    Message,
    /// `availabilityzone`.
    AvailabilityZone,
    /// `instance.id`.
    InstanceId,
    /// `resource.arn`.
    ResourceArn,
    /// `account.id`.
    AccountId,
}

/// What a comparison or presence test looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// A number keyword.
    Number(NumberKey),
    /// A string keyword.
    String(StringKey),
    /// `annotation.KEY`.
    Annotation(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `CONTAINS`.
    Contains,
    /// `BEGINSWITH`.
    BeginsWith,
    /// `ENDSWITH`.
    EndsWith,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// String.
    Str(String),
    /// Number.
    Num(f64),
    /// Boolean.
    Bool(bool),
}

/// Which service a `service(...)`, `edge(...)` or `id(...)` names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceSelector {
    /// Name.
    pub name: Option<String>,
    /// Type.
    pub kind: Option<String>,
    /// AWS account (`id(account.id: "…")`): the `aws.account_id` of the service's segments.
    pub account: Option<String>,
}

impl ServiceSelector {
    /// Whether this selector can name the client node (the callers of root services), which
    /// no trace lists among its services: a service-index pushdown would wrongly exclude it.
    fn may_be_client(&self) -> bool {
        let client = crate::assembly::NodeKey::client();
        self.account.is_none()
            && self.name.as_ref().is_none_or(|n| *n == client.name)
            && self.kind.as_ref().is_none_or(|k| *k == client.kind)
    }
}

/// Root-cause kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCause {
    /// `rootcause.fault`.
    Fault,
    /// `rootcause.error`.
    Error,
    /// `rootcause.responsetime`.
    ResponseTime,
}

/// Which enumerated list of a root cause a `rootcause.KIND.LEVEL { }` body walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseLevel {
    /// `.service`: the services of the root cause, from the one that saw it first down to
    /// the one where it started.
    Service,
    /// `.entity`: the segments and subsegments on its path, through every service in turn.
    Entity,
    /// `.exception`: the exceptions those entities recorded, in the same order.
    Exception,
}

/// `rootcause.KIND.LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CauseList {
    /// Fault, error or response time.
    pub kind: RootCause,
    /// Services, entities or exceptions.
    pub level: CauseLevel,
}

impl fmt::Display for CauseList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RootCause::Fault => "fault",
            RootCause::Error => "error",
            RootCause::ResponseTime => "responsetime",
        };
        let level = match self.level {
            CauseLevel::Service => "service",
            CauseLevel::Entity => "entity",
            CauseLevel::Exception => "exception",
        };
        write!(f, "rootcause.{kind}.{level}")
    }
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All of the terms (two or more: `a AND b AND c` is one node, so chains add no depth).
    And(Vec<Expr>),
    /// Any of the terms (two or more).
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A boolean keyword.
    Flag(Flag),
    /// `key op value`.
    Compare(Key, Op, Literal),
    /// A bare keyword: the value is set.
    Exists(Key),
    /// `service(selector) { body }`.
    Service(ServiceSelector, Option<Box<Expr>>),
    /// `edge(from, to) { body }`.
    Edge(ServiceSelector, ServiceSelector, Option<Box<Expr>>),
    /// `id(name: ..., type: ...)`.
    Id(ServiceSelector),
    /// `id("…")`: the trace with this id, given in X-Ray's form or W3C's 32 hex digits (kept
    /// in X-Ray's form).
    TraceId(String),
    /// `group.name = "g"`; resolved to the group's expression before evaluation.
    Group(String),
    /// `rootcause.KIND.LEVEL { body }`: a root cause of the trace (as stored with its summary)
    /// with an element of that list for which the body holds; without a body, one with a
    /// non-empty list.
    RootCause(CauseList, Option<Box<Expr>>),
}

/// Parses a filter expression.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let tokens = lexer::lex(text)?;
    parser::Parser::new(tokens, text.chars().count()).parse_all()
}

impl Expr {
    /// Predicates implied by this expression that a store can answer from its indexes.
    pub fn pushdown(&self) -> Vec<Pushdown> {
        let mut out = Vec::new();
        self.collect_pushdown(&mut out);
        out
    }

    /// The predicates of [`Self::pushdown`] when their conjunction is exactly this expression
    /// (a store applying all of them selects exactly the traces the expression does), `None`
    /// otherwise. Each term must be one of: `fault`, `error`, `throttle` and their negations;
    /// `http.status = N`; `responsetime` or `duration` compared by `<`, `<=`, `>`, `>=`, `=`;
    /// `annotation.KEY = V`; `service("name")` or `id(name: "name")` without a body; `id("…")`.
    pub fn exact_pushdown(&self) -> Option<Vec<Pushdown>> {
        self.is_exact().then(|| self.pushdown())
    }

    fn is_exact(&self) -> bool {
        let named_only =
            |s: &ServiceSelector| s.name.is_some() && s.kind.is_none() && s.account.is_none();
        match self {
            Expr::And(items) => items.iter().all(Expr::is_exact),
            Expr::Flag(Flag::Fault | Flag::Error | Flag::Throttle) => true,
            Expr::Not(inner) => matches!(
                **inner,
                Expr::Flag(Flag::Fault | Flag::Error | Flag::Throttle)
            ),
            Expr::Compare(Key::Number(NumberKey::HttpStatus), Op::Eq, Literal::Num(n)) => {
                n.fract() == 0.0 && (0.0..1000.0).contains(n)
            }
            Expr::Compare(
                Key::Number(NumberKey::ResponseTime | NumberKey::Duration),
                op,
                Literal::Num(_),
            ) => op_symbol(*op).is_some(),
            // The index compares texts: a number equals its text but for zero's sign.
            Expr::Compare(Key::Annotation(_), Op::Eq, lit) => {
                !matches!(lit, Literal::Num(n) if *n == 0.0)
            }
            Expr::Service(sel, None) | Expr::Id(sel) => named_only(sel),
            Expr::TraceId(_) => true,
            _ => false,
        }
    }

    fn collect_pushdown(&self, out: &mut Vec<Pushdown>) {
        match self {
            Expr::And(items) => items.iter().for_each(|e| e.collect_pushdown(out)),
            Expr::Flag(Flag::Fault) => out.push(Pushdown::HasFault(true)),
            Expr::Flag(Flag::Error) => out.push(Pushdown::HasError(true)),
            Expr::Flag(Flag::Throttle) => out.push(Pushdown::HasThrottle(true)),
            Expr::Not(inner) => match **inner {
                Expr::Flag(Flag::Fault) => out.push(Pushdown::HasFault(false)),
                Expr::Flag(Flag::Error) => out.push(Pushdown::HasError(false)),
                Expr::Flag(Flag::Throttle) => out.push(Pushdown::HasThrottle(false)),
                _ => {}
            },
            Expr::Compare(Key::Number(NumberKey::HttpStatus), Op::Eq, Literal::Num(n))
                if n.fract() == 0.0 && (0.0..1000.0).contains(n) =>
            {
                out.push(Pushdown::HttpStatus(*n as u16));
            }
            Expr::Compare(
                Key::Number(k @ (NumberKey::ResponseTime | NumberKey::Duration)),
                op,
                Literal::Num(n),
            ) => {
                if let Some(sym) = op_symbol(*op) {
                    out.push(match k {
                        NumberKey::ResponseTime => Pushdown::ResponseTime(sym, *n),
                        _ => Pushdown::Duration(sym, *n),
                    });
                }
            }
            Expr::Compare(Key::Annotation(k), Op::Eq, lit) => {
                out.push(Pushdown::AnnotationEquals(
                    k.clone(),
                    literal_index_text(lit),
                ));
            }
            Expr::Compare(Key::Annotation(k), op, Literal::Num(n)) => {
                if let Some(sym) = op_symbol(*op) {
                    out.push(Pushdown::AnnotationNumber(k.clone(), sym, *n));
                }
            }
            Expr::Exists(Key::Annotation(k)) => out.push(Pushdown::AnnotationExists(k.clone())),
            Expr::Service(sel, body) => {
                if let Some(name) = &sel.name {
                    out.push(Pushdown::Service(name.clone()));
                }
                if let Some(body) = body {
                    body.collect_trace_flags(out);
                }
            }
            Expr::Id(sel) => {
                if let Some(name) = &sel.name {
                    out.push(Pushdown::Service(name.clone()));
                }
            }
            Expr::TraceId(id) => out.push(Pushdown::TraceId(id.clone())),
            // A fault root cause is a fault recorded somewhere in the trace.
            Expr::RootCause(
                CauseList {
                    kind: RootCause::Fault,
                    ..
                },
                _,
            ) => out.push(Pushdown::HasFault(true)),
            Expr::Edge(a, b, body) => {
                for sel in [a, b].into_iter().filter(|s| !s.may_be_client()) {
                    if let Some(name) = &sel.name {
                        out.push(Pushdown::Service(name.clone()));
                    }
                }
                if let Some(body) = body {
                    body.collect_trace_flags(out);
                }
            }
            _ => {}
        }
    }

    /// The trace flags a service's or an edge's `{ }` body implies: a service or edge that
    /// faulted (or was throttled) makes its trace fault (be throttled) too. Not `error`: an
    /// edge's throttled call counts as an error of the edge, not of the trace.
    fn collect_trace_flags(&self, out: &mut Vec<Pushdown>) {
        match self {
            Expr::And(items) => items.iter().for_each(|e| e.collect_trace_flags(out)),
            Expr::Flag(Flag::Fault) => out.push(Pushdown::HasFault(true)),
            Expr::Flag(Flag::Throttle) => out.push(Pushdown::HasThrottle(true)),
            _ => {}
        }
    }
}

fn op_symbol(op: Op) -> Option<&'static str> {
    match op {
        Op::Lt => Some("<"),
        Op::Le => Some("<="),
        Op::Gt => Some(">"),
        Op::Ge => Some(">="),
        Op::Eq => Some("="),
        _ => None,
    }
}

/// The text a literal is indexed under (the same form as `AnnotationValue::index_text`).
pub(crate) fn literal_index_text(lit: &Literal) -> String {
    match lit {
        Literal::Str(s) => s.clone(),
        Literal::Num(n) => n.to_string(),
        Literal::Bool(b) => b.to_string(),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "CONTAINS",
            Op::BeginsWith => "BEGINSWITH",
            Op::EndsWith => "ENDSWITH",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => {
                write!(f, "\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
            }
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Annotation(k) if lexer::is_word(k) => write!(f, "annotation.{k}"),
            Key::Annotation(k) => write!(f, "annotation[{}]", Literal::Str(k.clone())),
            Key::Number(k) => f.write_str(parser::number_key_name(*k)),
            Key::String(k) => f.write_str(parser::string_key_name(*k)),
        }
    }
}

impl fmt::Display for ServiceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lit = |s: &str| Literal::Str(s.to_owned()).to_string();
        if let (Some(n), None, None) = (&self.name, &self.kind, &self.account) {
            return f.write_str(&lit(n));
        }
        let fields: Vec<String> = [
            ("name", &self.name),
            ("type", &self.kind),
            ("account.id", &self.account),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {}", lit(v))))
        .collect();
        if fields.is_empty() {
            return Ok(());
        }
        write!(f, "id({})", fields.join(", "))
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = |f: &mut fmt::Formatter<'_>, b: &Option<Box<Expr>>| match b {
            Some(b) => write!(f, " {{ {b} }}"),
            None => Ok(()),
        };
        match self {
            Expr::And(items) => write_terms(f, items, Under::And, " AND "),
            Expr::Or(items) => write_terms(f, items, Under::Or, " OR "),
            Expr::Not(a) => {
                f.write_str("!")?;
                write_under(f, a, Under::Not)
            }
            Expr::Flag(flag) => f.write_str(parser::flag_name(*flag)),
            Expr::Compare(k, op, v) => write!(f, "{k} {op} {v}"),
            Expr::Exists(k) => write!(f, "{k}"),
            Expr::Service(sel, b) => {
                write!(f, "service({sel})")?;
                body(f, b)
            }
            Expr::Edge(a, c, b) => {
                write!(f, "edge({a}, {c})")?;
                body(f, b)
            }
            Expr::Id(sel) => match &sel.name {
                Some(n) if sel.kind.is_none() && sel.account.is_none() => {
                    write!(f, "id(name: {})", Literal::Str(n.clone()))
                }
                _ => write!(f, "{sel}"),
            },
            Expr::TraceId(id) => write!(f, "id({})", Literal::Str(id.clone())),
            Expr::Group(name) => write!(f, "group.name = {}", Literal::Str(name.clone())),
            Expr::RootCause(list, b) => {
                write!(f, "{list}")?;
                body(f, b)
            }
        }
    }
}

/// Writes `expr` as it stands under `under`, in parentheses where it needs them.
fn write_under(f: &mut fmt::Formatter<'_>, expr: &Expr, under: Under) -> fmt::Result {
    if nesting::parenthesized(under, expr) {
        write!(f, "({expr})")
    } else {
        write!(f, "{expr}")
    }
}

fn write_terms(f: &mut fmt::Formatter<'_>, items: &[Expr], under: Under, op: &str) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(op)?;
        }
        write_under(f, e, under)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod cases;
#[cfg(test)]
mod tests;
