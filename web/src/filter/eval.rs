//! Evaluates a parsed filter over a trace summary. Keywords refer to the trace at the top
//! level, to one service inside `service(...) { }` and to one edge inside `edge(...) { }`.

use super::{Expr, Flag, Key, Literal, NumberKey, Op, RootCause, ServiceSelector, StringKey};
use crate::assembly::{AnnotationValue, EdgeFacts, HttpFacts, NodeKey, ServiceFacts, TraceSummary};

#[derive(Clone, Copy)]
enum Scope<'a> {
    Trace,
    Service(&'a ServiceFacts),
    Edge(&'a EdgeFacts),
}

/// Whether the trace matches the expression (groups must be resolved first; an unresolved
/// `group.name` matches nothing).
pub fn matches(expr: &Expr, trace: &TraceSummary) -> bool {
    eval(expr, trace, Scope::Trace)
}

fn selects(sel: &ServiceSelector, key: &NodeKey) -> bool {
    sel.name.as_ref().is_none_or(|n| *n == key.name)
        && sel.kind.as_ref().is_none_or(|k| *k == key.kind)
}

fn eval(expr: &Expr, t: &TraceSummary, scope: Scope<'_>) -> bool {
    match expr {
        Expr::And(items) => items.iter().all(|e| eval(e, t, scope)),
        Expr::Or(items) => items.iter().any(|e| eval(e, t, scope)),
        Expr::Not(a) => !eval(a, t, scope),
        Expr::Flag(flag) => flag_value(*flag, t, scope),
        Expr::Compare(key, op, lit) => values(key, t, scope).iter().any(|v| compare(v, *op, lit)),
        Expr::Exists(key) => !values(key, t, scope).is_empty(),
        Expr::Service(sel, body) => t.services.iter().any(|s| {
            selects(sel, &s.key) && body.as_ref().is_none_or(|b| eval(b, t, Scope::Service(s)))
        }),
        Expr::Edge(a, b, body) => t.edges.iter().any(|e| {
            selects(a, &e.src)
                && selects(b, &e.dst)
                && body.as_ref().is_none_or(|x| eval(x, t, Scope::Edge(e)))
        }),
        Expr::Id(sel) => match scope {
            Scope::Service(s) => selects(sel, &s.key),
            Scope::Edge(e) => selects(sel, &e.src) || selects(sel, &e.dst),
            Scope::Trace => t.services.iter().any(|s| selects(sel, &s.key)),
        },
        Expr::TraceId(id) => t.id == *id,
        Expr::Group(_) => false,
        Expr::RootCause(kind, body) => t.services.iter().any(|s| {
            let cause = match kind {
                RootCause::Fault => s.fault && !downstream_has(t, s, |d| d.fault),
                RootCause::Error => s.error && !downstream_has(t, s, |d| d.error),
                RootCause::ResponseTime => {
                    !s.has_downstream && t.response_time.is_some_and(|r| r > 0.0)
                }
            };
            cause && body.as_ref().is_none_or(|b| eval(b, t, Scope::Service(s)))
        }),
    }
}

/// Whether a service called by `s` in this trace has the property (then `s` is not the root
/// cause: the fault came from further down).
fn downstream_has(t: &TraceSummary, s: &ServiceFacts, f: impl Fn(&ServiceFacts) -> bool) -> bool {
    t.edges
        .iter()
        .filter(|e| e.src == s.key)
        .filter_map(|e| t.services.iter().find(|d| d.key == e.dst))
        .any(f)
}

fn flag_value(flag: Flag, t: &TraceSummary, scope: Scope<'_>) -> bool {
    let (error, throttle, fault) = match scope {
        Scope::Trace => (t.has_error, t.has_throttle, t.has_fault),
        Scope::Service(s) => (s.error, s.throttle, s.fault),
        Scope::Edge(e) => (e.error, e.throttle, e.fault),
    };
    match flag {
        Flag::Ok => !error && !throttle && !fault,
        Flag::Error => error,
        Flag::Throttle => throttle,
        Flag::Fault => fault,
        Flag::Partial => t.is_partial,
        Flag::Inferred | Flag::Remote => match scope {
            Scope::Trace => t.services.iter().any(|s| s.inferred),
            Scope::Service(s) => s.inferred,
            Scope::Edge(e) => t.services.iter().any(|s| s.key == e.dst && s.inferred),
        },
        Flag::Root | Flag::First => match scope {
            Scope::Trace => true,
            Scope::Service(s) => s.root,
            Scope::Edge(e) => e.src == NodeKey::client(),
        },
        Flag::Last => match scope {
            Scope::Trace => true,
            Scope::Service(s) => !s.has_downstream,
            Scope::Edge(e) => t
                .services
                .iter()
                .any(|s| s.key == e.dst && !s.has_downstream),
        },
    }
}

/// The values a key has in scope (possibly several: e.g. a trace's users).
fn values(key: &Key, t: &TraceSummary, scope: Scope<'_>) -> Vec<AnnotationValue> {
    use AnnotationValue as V;
    let http: Option<&HttpFacts> = match scope {
        Scope::Trace => t.http.as_ref(),
        Scope::Service(s) => s.http.as_ref(),
        Scope::Edge(_) => None,
    };
    let strs = |list: &[String]| list.iter().map(|s| V::String(s.clone())).collect();
    match key {
        Key::Annotation(k) => t
            .annotations
            .iter()
            .filter(|a| a.key == *k)
            .filter(|a| match scope {
                Scope::Service(s) => a.services.contains(&s.key),
                _ => true,
            })
            .map(|a| a.value.clone())
            .collect(),
        Key::Number(n) => {
            let v = match (n, scope) {
                (NumberKey::ResponseTime, Scope::Trace) => t.response_time,
                (NumberKey::ResponseTime | NumberKey::Duration, Scope::Service(s)) => {
                    Some(s.response_time)
                }
                (NumberKey::ResponseTime | NumberKey::Duration, Scope::Edge(e)) => {
                    Some(e.response_time)
                }
                (NumberKey::Duration, Scope::Trace) => t.duration,
                (NumberKey::HttpStatus, _) => http.and_then(|h| h.status).map(f64::from),
                (NumberKey::Index | NumberKey::Coverage, _) => None,
            };
            v.map(V::Number).into_iter().collect()
        }
        Key::String(k) => {
            let one = |v: Option<&String>| v.map(|s| V::String(s.clone())).into_iter().collect();
            match k {
                StringKey::HttpUrl => one(http.and_then(|h| h.url.as_ref())),
                StringKey::HttpMethod => one(http.and_then(|h| h.method.as_ref())),
                StringKey::HttpUserAgent => one(http.and_then(|h| h.user_agent.as_ref())),
                StringKey::HttpClientIp => one(http.and_then(|h| h.client_ip.as_ref())),
                StringKey::User => t
                    .users
                    .iter()
                    .filter(|(_, svcs)| match scope {
                        Scope::Service(s) => svcs.contains(&s.key),
                        _ => true,
                    })
                    .map(|(u, _)| V::String(u.clone()))
                    .collect(),
                StringKey::Name => match scope {
                    Scope::Trace => t
                        .services
                        .iter()
                        .map(|s| V::String(s.key.name.clone()))
                        .collect(),
                    Scope::Service(s) => vec![V::String(s.key.name.clone())],
                    Scope::Edge(e) => vec![V::String(e.dst.name.clone())],
                },
                StringKey::Type => match scope {
                    Scope::Trace => t
                        .services
                        .iter()
                        .filter(|s| !s.key.kind.is_empty())
                        .map(|s| V::String(s.key.kind.clone()))
                        .collect(),
                    Scope::Service(s) => one(Some(&s.key.kind).filter(|k| !k.is_empty())),
                    Scope::Edge(e) => one(Some(&e.dst.kind).filter(|k| !k.is_empty())),
                },
                StringKey::Message => strs(&t.resources.messages),
                StringKey::AvailabilityZone => strs(&t.resources.availability_zones),
                StringKey::InstanceId => strs(&t.resources.instance_ids),
                StringKey::ResourceArn => strs(&t.resources.resource_arns),
                StringKey::AccountId => strs(&t.resources.account_ids),
            }
        }
    }
}

fn compare(value: &AnnotationValue, op: Op, lit: &Literal) -> bool {
    use AnnotationValue as V;
    match (value, lit) {
        (V::Number(v), Literal::Num(n)) => match op {
            Op::Eq => v == n,
            Op::Ne => v != n,
            Op::Lt => v < n,
            Op::Le => v <= n,
            Op::Gt => v > n,
            Op::Ge => v >= n,
            _ => false,
        },
        (V::String(v), Literal::Str(s)) => match op {
            Op::Eq => v == s,
            Op::Ne => v != s,
            Op::Contains => v.contains(s.as_str()),
            Op::BeginsWith => v.starts_with(s.as_str()),
            Op::EndsWith => v.ends_with(s.as_str()),
            _ => false,
        },
        (V::Bool(v), Literal::Bool(b)) => match op {
            Op::Eq => v == b,
            Op::Ne => v != b,
            _ => false,
        },
        // Mixed types: equal when their indexed text is equal (as the store's index sees them).
        (v, lit) => match op {
            Op::Eq => v.index_text() == super::literal_index_text(lit),
            Op::Ne => v.index_text() != super::literal_index_text(lit),
            _ => false,
        },
    }
}
