//! The group an API request is about, decided once from its body: by `GroupName`, `GroupARN`
//! and the groups its `FilterExpression` names. The auth layer authorizes the call against
//! [`GroupScope::resource`] and hands the same value to the handler (a request extension), so
//! what is checked is what is answered. A request that names two different groups, or a group
//! ARN that is not exactly one of this collector's, is refused.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, MAX_REQUEST_BYTES, parse_body};
use crate::group::GroupName;

/// What a request may read or change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupScope {
    /// Not confined to a group: every trace (authorized on `*`). X-Ray's `Default` group is
    /// every trace, so naming it is this too.
    Everything,
    /// Confined to one group (authorized on its ARN; answered within its filter).
    Group(GroupName),
}

impl GroupScope {
    /// The resource policies are checked against.
    pub fn resource(&self) -> String {
        match self {
            GroupScope::Everything => "*".to_owned(),
            GroupScope::Group(g) => g.arn(),
        }
    }

    /// The group, if the request is confined to one.
    pub fn group(&self) -> Option<&GroupName> {
        match self {
            GroupScope::Everything => None,
            GroupScope::Group(g) => Some(g),
        }
    }
}

/// How an operation takes a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// `GroupName` or `GroupARN`, optional (the graph and time series).
    Optional,
    /// `GroupName`/`GroupARN` optional, and the filter's groups (trace summaries).
    WithFilter,
    /// `GroupName` or `GroupARN` required; a new filter expression may name no group.
    Required,
    /// `GroupName` required, no ARN (a group that does not exist yet has none to give).
    Create,
}

fn takes(path: &str) -> Option<Takes> {
    Some(match path {
        "/ServiceGraph" | "/TimeSeriesServiceStatistics" | "/InsightSummaries" => Takes::Optional,
        "/TraceSummaries" | "/TraceAnalytics" => Takes::WithFilter,
        "/GetGroup" | "/UpdateGroup" | "/DeleteGroup" => Takes::Required,
        "/CreateGroup" => Takes::Create,
        _ => return None,
    })
}

/// The fields of any request that can name a group.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Naming {
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default, rename = "GroupARN")]
    group_arn: Option<String>,
    #[serde(default)]
    filter_expression: Option<String>,
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest(e.to_string())
}

/// The scope of a request to `path` with this body; [`GroupScope::Everything`] for operations
/// that take no group.
pub fn scope_of(path: &str, body: &[u8]) -> Result<GroupScope, ApiError> {
    let Some(takes) = takes(path) else {
        return Ok(GroupScope::Everything);
    };
    let req: Naming = parse_body(body)?;
    // Every group the request names, with where it named it.
    let mut named: Vec<(GroupName, &str)> = Vec::new();
    if let Some(n) = &req.group_name {
        named.push((GroupName::parse(n).map_err(invalid)?, "GroupName"));
    }
    if let Some(a) = &req.group_arn {
        if takes == Takes::Create {
            return Err(invalid("CreateGroup takes a GroupName, not a GroupARN"));
        }
        named.push((GroupName::from_arn(a).map_err(invalid)?, "GroupARN"));
    }
    let mut confined = !named.is_empty();
    if let Some(text) = req
        .filter_expression
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let refs = crate::filter::parse(text)
            .map_err(|e| invalid(format!("invalid filter expression: {e}")))?
            .group_refs();
        if takes != Takes::WithFilter && !refs.all.is_empty() {
            return Err(invalid(
                "a group's FilterExpression may not name a group (group.name, group.arn)",
            ));
        }
        confined |= !refs.confining.is_empty();
        for name in refs.all {
            named.push((
                GroupName::parse(&name).map_err(invalid)?,
                "FilterExpression",
            ));
        }
    }
    if let Some(((first, at), rest)) = named.split_first()
        && let Some((other, other_at)) = rest.iter().find(|(n, _)| n != first)
    {
        return Err(invalid(format!(
            "the request names two different groups: {first} ({at}) and {other} ({other_at})"
        )));
    }
    match named.into_iter().next() {
        Some((group, _)) if confined && !group.is_default() => Ok(GroupScope::Group(group)),
        Some((group, _)) if matches!(takes, Takes::Required | Takes::Create) => {
            // The groups API speaks of `Default` itself; authorized on every trace.
            Ok(GroupScope::Group(group))
        }
        None if matches!(takes, Takes::Required | Takes::Create) => Err(invalid(
            "GroupName (1 to 32 letters, digits, '.', '-' or '_') or GroupARN is required",
        )),
        _ => Ok(GroupScope::Everything),
    }
}

/// Puts the request's [`GroupScope`] in its extensions for the handlers, unless the auth layer
/// already did (it decides the scope before authorizing); refuses a request whose scope is
/// invalid.
pub async fn attach(request: Request, next: Next) -> Response {
    if request.extensions().get::<GroupScope>().is_some() || takes(request.uri().path()).is_none() {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => return ApiError::TooLarge(MAX_REQUEST_BYTES).into_response(),
    };
    match scope_of(parts.uri.path(), &bytes) {
        Ok(scope) => {
            parts.extensions.insert(scope);
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(path: &str, body: &str) -> Result<GroupScope, String> {
        scope_of(path, body.as_bytes()).map_err(|e| e.to_string())
    }

    fn group(name: &str) -> Result<GroupScope, String> {
        Ok(GroupScope::Group(GroupName::parse(name).unwrap()))
    }

    const WEB: &str = "arn:aws:xray:us-east-1:000000000000:group/web";

    #[test]
    fn the_graph_and_time_series_are_confined_by_name_or_arn() {
        for path in ["/ServiceGraph", "/TimeSeriesServiceStatistics"] {
            assert_eq!(
                scope(path, r#"{"StartTime":1}"#),
                Ok(GroupScope::Everything)
            );
            assert_eq!(scope(path, r#"{"GroupName":"web"}"#), group("web"));
            assert_eq!(
                scope(path, &format!(r#"{{"GroupARN":"{WEB}"}}"#)),
                group("web")
            );
            assert_eq!(
                scope(
                    path,
                    &format!(r#"{{"GroupARN":"{WEB}","GroupName":"web"}}"#)
                ),
                group("web")
            );
            let two = scope(
                path,
                &format!(r#"{{"GroupARN":"{WEB}","GroupName":"billing"}}"#),
            );
            assert!(
                two.as_ref().unwrap_err().contains("two different groups"),
                "{two:?}"
            );
            let nested = scope(path, &format!(r#"{{"GroupARN":"{WEB}/billing"}}"#));
            assert!(
                nested
                    .unwrap_err()
                    .contains("not a group of this collector")
            );
            assert!(scope(path, r#"{"GroupName":"web/billing"}"#).is_err());
            assert_eq!(
                scope(path, r#"{"GroupName":"Default"}"#),
                Ok(GroupScope::Everything)
            );
        }
    }

    #[test]
    fn summaries_are_confined_by_name_arn_or_a_top_level_group_conjunct() {
        let p = "/TraceSummaries";
        assert_eq!(
            scope(p, r#"{"FilterExpression":"fault"}"#),
            Ok(GroupScope::Everything)
        );
        assert_eq!(scope(p, r#"{"GroupName":"web"}"#), group("web"));
        assert_eq!(
            scope(p, r#"{"GroupName":"web","FilterExpression":"fault"}"#),
            group("web")
        );
        assert_eq!(
            scope(
                p,
                r#"{"FilterExpression":"fault AND group.name = \"web\""}"#
            ),
            group("web")
        );
        // Named, but not confining: every trace, so authorized on `*`.
        assert_eq!(
            scope(p, r#"{"FilterExpression":"group.name = \"web\" OR fault"}"#),
            Ok(GroupScope::Everything)
        );
        for two in [
            r#"{"GroupName":"web","FilterExpression":"group.name = \"billing\""}"#,
            r#"{"GroupName":"web","FilterExpression":"fault OR group.name = \"billing\""}"#,
            r#"{"FilterExpression":"group.name = \"web\" AND !group.name = \"billing\""}"#,
        ] {
            let r = scope(p, two);
            assert!(
                r.as_ref().unwrap_err().contains("two different groups"),
                "{two}: {r:?}"
            );
        }
        assert_eq!(
            scope(p, r#"{"GroupName":"Default"}"#),
            Ok(GroupScope::Everything)
        );
    }

    #[test]
    fn group_operations_need_exactly_one_group() {
        for p in ["/GetGroup", "/UpdateGroup", "/DeleteGroup"] {
            assert_eq!(scope(p, r#"{"GroupName":"web"}"#), group("web"));
            assert_eq!(
                scope(p, &format!(r#"{{"GroupARN":"{WEB}"}}"#)),
                group("web")
            );
            assert!(scope(p, "{}").unwrap_err().contains("is required"));
            assert!(
                scope(
                    p,
                    &format!(r#"{{"GroupARN":"{WEB}","GroupName":"billing"}}"#)
                )
                .unwrap_err()
                .contains("two different groups")
            );
        }
        assert!(
            scope(
                "/UpdateGroup",
                r#"{"GroupName":"web","FilterExpression":"group.name = \"billing\""}"#
            )
            .unwrap_err()
            .contains("may not name a group")
        );
        assert_eq!(
            scope(
                "/CreateGroup",
                r#"{"GroupName":"web","FilterExpression":"fault"}"#
            ),
            group("web")
        );
        assert!(scope("/CreateGroup", &format!(r#"{{"GroupARN":"{WEB}"}}"#)).is_err());
        assert!(scope("/CreateGroup", r#"{"GroupName":"a b"}"#).is_err());
        assert_eq!(
            scope("/DeleteGroup", r#"{"GroupName":"Default"}"#),
            group("Default")
        );
    }

    #[test]
    fn other_operations_have_no_group_and_bad_bodies_are_refused() {
        assert_eq!(
            scope("/Traces", r#"{"GroupName":"x y"}"#),
            Ok(GroupScope::Everything)
        );
        assert!(scope("/ServiceGraph", "{").is_err());
        assert!(scope("/ServiceGraph", r#"{"GroupName":5}"#).is_err());
        assert!(scope("/ServiceGraph", r#"{"GroupName":"a","GroupName":"b"}"#).is_err());
    }
}
