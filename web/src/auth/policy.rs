//! IAM-style policy documents and their evaluation: `Effect` Allow/Deny, `Action` and `Resource`
//! with `*`/`?` wildcards, `Condition` on `aws:SourceIp` (`IpAddress`/`NotIpAddress`). As in IAM,
//! an explicit deny wins and anything not allowed is denied.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A string or a list of strings, as IAM accepts for `Action`, `Resource` and condition values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else allows.
    Deny,
}

/// One statement of a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Statement {
    /// Optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: Effect,
    /// Actions, e.g. `xray:Get*`.
    pub action: OneOrMany,
    /// Resources, e.g. `*` or `arn:aws:xray:*:*:group/web`; `*` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<OneOrMany>,
    /// Conditions: operator -> key -> values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, OneOrMany>>>,
}

/// A policy document as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    /// Policy language version (`2012-10-17`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Statements.
    pub statement: Vec<Statement>,
}

/// Why a policy document is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a policy document.
    #[error("not a policy document: {0}")]
    Json(#[from] serde_json::Error),
    /// An unsupported condition operator or key.
    #[error("unsupported condition {0} (use IpAddress or NotIpAddress on aws:SourceIp)")]
    Condition(String),
    /// A CIDR block that does not parse.
    #[error("{0:?} is not an IP address or CIDR block")]
    Cidr(String),
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { network, prefix })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct IpCondition {
    negate: bool,
    blocks: Vec<Cidr>,
}

#[derive(Debug, Clone)]
struct CompiledStatement {
    effect: Effect,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<IpCondition>,
}

/// A validated policy, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<CompiledStatement>,
}

/// What a request asks: an action on a resource from an address.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// `xray:PutTraceSegments` etc.
    pub action: &'a str,
    /// The resource ARN, or `*` when the call is not about one resource.
    pub resource: &'a str,
    /// The caller's address.
    pub source_ip: IpAddr,
}

/// The outcome of evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
}

impl Policy {
    /// Validates a document.
    pub fn compile(doc: &PolicyDocument) -> Result<Self, PolicyError> {
        let mut statements = Vec::with_capacity(doc.statement.len());
        for s in &doc.statement {
            let mut conditions = Vec::new();
            for (operator, keys) in s.condition.iter().flatten() {
                let negate = match operator.as_str() {
                    "IpAddress" => false,
                    "NotIpAddress" => true,
                    other => return Err(PolicyError::Condition(other.to_owned())),
                };
                for (key, values) in keys {
                    if !key.eq_ignore_ascii_case("aws:SourceIp") {
                        return Err(PolicyError::Condition(format!("{operator} {key}")));
                    }
                    let blocks = values
                        .values()
                        .iter()
                        .map(|v| Cidr::parse(v).ok_or_else(|| PolicyError::Cidr(v.clone())))
                        .collect::<Result<Vec<_>, _>>()?;
                    conditions.push(IpCondition { negate, blocks });
                }
            }
            statements.push(CompiledStatement {
                effect: s.effect,
                actions: s.action.values().to_vec(),
                resources: s
                    .resource
                    .as_ref()
                    .map_or_else(|| vec!["*".to_owned()], |r| r.values().to_vec()),
                conditions,
            });
        }
        Ok(Self { statements })
    }

    /// Parses and validates a JSON document.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        Self::compile(&serde_json::from_str(text)?)
    }
}

/// IAM wildcard match: `*` any run, `?` one character.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl CompiledStatement {
    /// Whether the action and the conditions match, whatever the resource.
    fn applies(&self, action: &str, source_ip: IpAddr) -> bool {
        self.actions.iter().any(|a| wildcard_match(a, action, true))
            && self
                .conditions
                .iter()
                .all(|c| c.blocks.iter().any(|b| b.contains(source_ip)) != c.negate)
    }

    fn matches(&self, request: &RequestContext<'_>) -> bool {
        self.applies(request.action, request.source_ip)
            && self
                .resources
                .iter()
                .any(|r| wildcard_match(r, request.resource, false))
    }
}

/// Whether the policies allow `action` on at least some resource (e.g. only on some groups)
/// and do not deny it on every resource. Callers then check each resource they show.
pub fn allows_somewhere(policies: &[Policy], action: &str, source_ip: IpAddr) -> bool {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        if !statement.applies(action, source_ip) {
            continue;
        }
        match statement.effect {
            Effect::Deny
                if statement
                    .resources
                    .iter()
                    .any(|r| r.chars().all(|c| c == '*')) =>
            {
                return false;
            }
            Effect::Deny => {}
            Effect::Allow => allowed = true,
        }
    }
    allowed
}

/// Evaluates a principal's policies for a request: explicit deny wins, default deny.
pub fn evaluate(policies: &[Policy], request: &RequestContext<'_>) -> Decision {
    let mut allowed = false;
    for statement in policies.iter().flat_map(|p| &p.statements) {
        if statement.matches(request) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(action: &'a str, resource: &'a str, ip: &str) -> RequestContext<'a> {
        RequestContext {
            action,
            resource,
            source_ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn explicit_deny_wins_and_default_is_deny() {
        let p = Policy::from_json(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"xray:*","Resource":"*"},
                {"Effect":"Deny","Action":["xray:Delete*","xray:PutTraceSegments"]}]}"#,
        )
        .unwrap();
        let ps = [p];
        assert_eq!(
            evaluate(&ps, &ctx("xray:GetTraceSummaries", "*", "10.0.0.1")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "10.0.0.1")),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:DeleteGroup", "*", "10.0.0.1")),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate(&[], &ctx("xray:GetGroups", "*", "10.0.0.1")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&ps, &ctx("s3:GetObject", "*", "10.0.0.1")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn action_wildcards_ignore_case_and_resources_scope_to_groups() {
        let p = Policy::from_json(
            r#"{"Statement":[{"Effect":"Allow","Action":"XRay:Get*",
                "Resource":["arn:aws:xray:*:*:group/web"]}]}"#,
        )
        .unwrap();
        let ps = [p];
        let web = "arn:aws:xray:us-east-1:000000000000:group/web";
        let db = "arn:aws:xray:us-east-1:000000000000:group/db";
        assert_eq!(
            evaluate(&ps, &ctx("xray:GetServiceGraph", web, "::1")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:GetServiceGraph", db, "::1")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:GetServiceGraph", "*", "::1")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", web, "::1")),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn allowed_somewhere_means_some_resource() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let web = Policy::from_json(
            r#"{"Statement":[{"Effect":"Allow","Action":"xray:Get*","Resource":"arn:aws:xray:*:*:group/web"},
                {"Effect":"Deny","Action":"xray:GetTraceSummaries","Resource":"arn:aws:xray:*:*:group/db"}]}"#,
        )
        .unwrap();
        assert!(allows_somewhere(
            std::slice::from_ref(&web),
            "xray:GetTraceSummaries",
            ip
        ));
        assert!(!allows_somewhere(
            std::slice::from_ref(&web),
            "xray:PutTraceSegments",
            ip
        ));
        let denied =
            Policy::from_json(r#"{"Statement":[{"Effect":"Deny","Action":"xray:*"}]}"#).unwrap();
        assert!(!allows_somewhere(
            &[web, denied],
            "xray:GetTraceSummaries",
            ip
        ));
        assert!(!allows_somewhere(&[], "xray:GetTraceSummaries", ip));
    }

    #[test]
    fn source_ip_conditions() {
        let p = Policy::from_json(
            r#"{"Statement":[{"Effect":"Allow","Action":"xray:PutTraceSegments",
                "Condition":{"IpAddress":{"aws:SourceIp":["127.0.0.0/8","2001:db8::/32"]}}},
                {"Effect":"Deny","Action":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.66"}}}]}"#,
        )
        .unwrap();
        let ps = [p];
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "127.0.0.2")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "::ffff:127.0.0.2")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "2001:db8::5")),
            Decision::Allow
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "10.1.1.1")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&ps, &ctx("xray:PutTraceSegments", "*", "127.0.0.66")),
            Decision::ExplicitDeny
        );
        let not = Policy::from_json(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            evaluate(
                std::slice::from_ref(&not),
                &ctx("xray:GetGroups", "*", "10.2.3.4")
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate(&[not], &ctx("xray:GetGroups", "*", "192.0.2.1")),
            Decision::Allow
        );
    }

    #[test]
    fn unsupported_documents_are_refused() {
        for bad in [
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Condition":{"StringEquals":{"aws:username":"x"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/40"}}}]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Action":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","NotAction":"*"}]}"#,
        ] {
            assert!(Policy::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("a?c", "ac", false));
        assert!(!wildcard_match("a*d", "abc", false));
        assert!(wildcard_match("*group/*", "arn:x:group/web", false));
    }
}
