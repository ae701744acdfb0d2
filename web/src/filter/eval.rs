//! Evaluates a parsed filter over a trace summary. Keywords refer to the trace at the top
//! level, to one service inside `service(...) { }`, to one edge inside `edge(...) { }` and to
//! one element of a stored root cause's list inside `rootcause.KIND.LEVEL { }`.

use super::{
    CauseLevel, CauseList, Expr, Flag, Key, Literal, NumberKey, Op, RootCause, ServiceSelector,
    StringKey,
};
use crate::assembly::{
    AnnotationValue, EdgeFacts, ExceptionFacts, HttpFacts, NodeKey, PathEntity, RootCauseService,
    ServiceFacts, TraceSummary,
};

#[derive(Clone, Copy)]
enum Scope<'a> {
    Trace,
    Service(&'a ServiceFacts),
    Edge(&'a EdgeFacts),
    Cause(Element<'a>, Position),
}

/// One element of a root cause's list.
#[derive(Clone, Copy)]
enum Element<'a> {
    Service(&'a RootCauseService),
    Entity(&'a PathEntity),
    Exception(&'a ExceptionFacts),
}

/// Where an element stands in its list (`index` counts from 0).
#[derive(Clone, Copy)]
struct Position {
    index: usize,
    count: usize,
}

/// Whether the trace matches the expression (groups must be resolved first; an unresolved
/// `group.name` matches nothing).
pub fn matches(expr: &Expr, trace: &TraceSummary) -> bool {
    eval(expr, trace, Scope::Trace)
}

/// Whether `sel` names the node `key` of trace `t` (its account is that of the node's own
/// segments; the client and nodes only inferred from calls have none).
fn selects(sel: &ServiceSelector, key: &NodeKey, t: &TraceSummary) -> bool {
    sel.name.as_ref().is_none_or(|n| *n == key.name)
        && sel.kind.as_ref().is_none_or(|k| *k == key.kind)
        && sel.account.as_ref().is_none_or(|a| {
            t.services
                .iter()
                .any(|s| s.key == *key && s.account_id.as_ref() == Some(a))
        })
}

/// The elements of each stored root cause of `list.kind`, one list per root cause.
fn cause_lists<'a>(t: &'a TraceSummary, list: CauseList) -> Vec<Vec<Element<'a>>> {
    let causes = match list.kind {
        RootCause::Fault => &t.fault_root_causes,
        RootCause::Error => &t.error_root_causes,
        RootCause::ResponseTime => &t.response_time_root_causes,
    };
    causes
        .iter()
        .map(|c| {
            // An inferred service's path is the remote call that ended its caller's: each
            // entity is listed once.
            let mut entities: Vec<&PathEntity> = Vec::new();
            for e in c.services.iter().flat_map(|s| &s.entity_path) {
                if entities.last() != Some(&e) {
                    entities.push(e);
                }
            }
            let entities = entities.into_iter();
            match list.level {
                CauseLevel::Service => c.services.iter().map(Element::Service).collect(),
                CauseLevel::Entity => entities.map(Element::Entity).collect(),
                CauseLevel::Exception => entities
                    .flat_map(|e| &e.exceptions)
                    .map(Element::Exception)
                    .collect(),
            }
        })
        .collect()
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
            selects(sel, &s.key, t) && body.as_ref().is_none_or(|b| eval(b, t, Scope::Service(s)))
        }),
        Expr::Edge(a, b, body) => t.edges.iter().any(|e| {
            selects(a, &e.src, t)
                && selects(b, &e.dst, t)
                && body.as_ref().is_none_or(|x| eval(x, t, Scope::Edge(e)))
        }),
        Expr::Id(sel) => match scope {
            Scope::Service(s) => selects(sel, &s.key, t),
            Scope::Edge(e) => selects(sel, &e.src, t) || selects(sel, &e.dst, t),
            // The parser allows no `id(...)` inside a root cause's body.
            Scope::Cause(..) => false,
            Scope::Trace => t.services.iter().any(|s| selects(sel, &s.key, t)),
        },
        Expr::TraceId(id) => t.id == *id,
        Expr::Group(_) => false,
        Expr::RootCause(list, body) => cause_lists(t, *list).iter().any(|items| {
            let count = items.len();
            match body {
                None => count > 0,
                Some(b) => items.iter().enumerate().any(|(index, item)| {
                    eval(b, t, Scope::Cause(*item, Position { index, count }))
                }),
            }
        }),
    }
}

/// A boolean keyword about one element of a root cause's list.
fn cause_flag(flag: Flag, element: Element<'_>, at: Position) -> bool {
    match flag {
        Flag::First => at.index == 0,
        Flag::Last => at.index + 1 == at.count,
        Flag::Remote | Flag::Inferred => match element {
            Element::Service(s) => s.inferred,
            Element::Entity(e) => e.remote,
            Element::Exception(_) => false,
        },
        // The parser allows no other flag there.
        _ => false,
    }
}

fn flag_value(flag: Flag, t: &TraceSummary, scope: Scope<'_>) -> bool {
    let (error, throttle, fault) = match scope {
        Scope::Trace => (t.has_error, t.has_throttle, t.has_fault),
        Scope::Service(s) => (s.error, s.throttle, s.fault),
        Scope::Edge(e) => (e.error, e.throttle, e.fault),
        Scope::Cause(element, at) => return cause_flag(flag, element, at),
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
            Scope::Cause(..) => false,
        },
        Flag::Root | Flag::First => match scope {
            Scope::Trace => true,
            Scope::Service(s) => s.root,
            Scope::Edge(e) => e.src == NodeKey::client(),
            Scope::Cause(..) => false,
        },
        Flag::Last => match scope {
            Scope::Trace => true,
            Scope::Service(s) => !s.has_downstream,
            Scope::Edge(e) => t
                .services
                .iter()
                .any(|s| s.key == e.dst && !s.has_downstream),
            Scope::Cause(..) => false,
        },
    }
}

/// The value a keyword has for one element of a root cause's list.
fn cause_value(key: &Key, element: Element<'_>, at: Position) -> Option<AnnotationValue> {
    use AnnotationValue as V;
    let text = |s: &str| Some(V::String(s.to_owned()));
    match (key, element) {
        (Key::Number(NumberKey::Index), _) => Some(V::Number(at.index as f64)),
        (Key::Number(NumberKey::Coverage), Element::Entity(e)) => e.coverage.map(V::Number),
        (Key::String(StringKey::Name), Element::Service(s)) => text(&s.key.name),
        (Key::String(StringKey::Type), Element::Service(s)) => Some(&s.key.kind)
            .filter(|k| !k.is_empty())
            .and_then(|k| text(k)),
        (Key::String(StringKey::Name), Element::Entity(e)) => text(&e.name),
        (Key::String(StringKey::Name), Element::Exception(x)) => x.name.as_deref().and_then(text),
        (Key::String(StringKey::Message), Element::Exception(x)) => {
            x.message.as_deref().and_then(text)
        }
        // The parser allows no other keyword there.
        _ => None,
    }
}

/// The values a key has in scope (possibly several: e.g. a trace's users).
fn values(key: &Key, t: &TraceSummary, scope: Scope<'_>) -> Vec<AnnotationValue> {
    use AnnotationValue as V;
    let http: Option<&HttpFacts> = match scope {
        Scope::Trace => t.http.as_ref(),
        Scope::Service(s) => s.http.as_ref(),
        Scope::Edge(_) => None,
        Scope::Cause(element, at) => return cause_value(key, element, at).into_iter().collect(),
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
                (NumberKey::Index | NumberKey::Coverage, _) | (_, Scope::Cause(..)) => None,
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
                    Scope::Cause(..) => Vec::new(),
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
                    Scope::Cause(..) => Vec::new(),
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
