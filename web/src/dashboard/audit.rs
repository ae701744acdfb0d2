//! The audit page (`GET /audit`): the audit log's events, newest first, filtered by principal,
//! action, outcome and time window, fifty to a page, for principals allowed our own
//! `xray:GetAuditEvents` (the auth layer refuses the others with a 403 page). The log is read
//! backwards from its end, through the rotated files if a page needs them.

use std::fmt::Write;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::Query;
use axum::response::Html;
use serde::Deserialize;

use crate::auth::audit::{AuditQuery, AuditSearch, SEARCH_BUDGET};
use crate::auth::{Auth, Caller};

use super::{Nav, PageError, Scope, WINDOWS, format_time, now, parse_time, reach, url_encode};

/// Events per page.
pub const EVENTS_PER_PAGE: usize = 50;

/// The page's query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditParams {
    /// Exactly this principal.
    #[serde(default)]
    pub principal: Option<String>,
    /// Actions containing this text.
    #[serde(default)]
    pub action: Option<String>,
    /// `allowed`, `denied`, or anything else for both.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The window: a preset of [`WINDOWS`], `custom` (with start and end), or `all` (the
    /// default); the scope's filter and group are not used.
    #[serde(flatten)]
    pub scope: Scope,
    /// Page, from 1.
    #[serde(default)]
    pub page: Option<usize>,
}

/// One row of the table (every field is escaped by the template).
#[derive(Debug, Clone)]
pub struct EventRow {
    /// `YYYY-MM-DDTHH:MM:SS`.
    pub time: String,
    /// Principal, or empty.
    pub principal: String,
    /// Access key id, or empty.
    pub access_key_id: String,
    /// Source address.
    pub source_ip: String,
    /// Action.
    pub action: String,
    /// Resource.
    pub resource: String,
    /// Path.
    pub path: String,
    /// Allowed.
    pub allowed: bool,
    /// Error type, or empty.
    pub error: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    unavailable: Option<&'static str>,
    principal: String,
    action: String,
    outcomes: Vec<(&'static str, &'static str, bool)>,
    windows: Vec<(String, String, bool)>,
    start: String,
    end: String,
    events: Vec<EventRow>,
    throttled: u64,
    budget_spent: bool,
    budget_mib: u64,
    page: usize,
    prev: Option<String>,
    next: Option<String>,
}

fn text(v: &Option<String>) -> String {
    v.as_deref().unwrap_or("").trim().to_owned()
}

impl AuditParams {
    /// The search these parameters describe, at `now`.
    pub fn query(&self, now: f64) -> AuditQuery {
        let principal = text(&self.principal);
        let action = text(&self.action);
        let (since, until) = match self.scope.window.as_deref().unwrap_or("all") {
            "all" => (None, None),
            _ => {
                let w = self.scope.window("1h", now);
                (Some(w.start.floor() as i64), Some(w.end.ceil() as i64))
            }
        };
        AuditQuery {
            principal: (!principal.is_empty()).then_some(principal),
            action: (!action.is_empty()).then_some(action),
            allowed: match self.outcome.as_deref() {
                Some("allowed") => Some(true),
                Some("denied") => Some(false),
                _ => None,
            },
            since,
            until,
        }
    }

    /// This page's link with another page number.
    fn link(&self, page: usize) -> String {
        let mut q = String::from("/audit?");
        for (name, value) in [
            ("principal", &self.principal),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("window", &self.scope.window),
            ("start", &self.scope.start),
            ("end", &self.scope.end),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(q, "{name}={}&", url_encode(v));
            }
        }
        let _ = write!(q, "page={page}");
        q
    }
}

fn rows(found: AuditSearch) -> Vec<EventRow> {
    found
        .events
        .into_iter()
        .map(|e| EventRow {
            time: format_time(e.time as f64),
            principal: e.principal.unwrap_or_default(),
            access_key_id: e.access_key_id.unwrap_or_default(),
            source_ip: e.source_ip,
            action: e.action,
            resource: e.resource,
            path: e.path,
            allowed: e.allowed,
            error: e.error.unwrap_or_default(),
        })
        .collect()
}

/// `GET /audit`.
pub async fn audit_page(
    caller: Option<Extension<Caller>>,
    auth: Option<Extension<Arc<Auth>>>,
    Query(params): Query<AuditParams>,
) -> Result<Html<String>, PageError> {
    let caller = caller.map(|c| c.0);
    let now = now();
    let scope = Scope::default();
    let w = scope.window("1h", now);
    let mut nav = Nav::new("audit", &scope, &w).for_caller(caller.as_ref());
    let page = params.page.unwrap_or(1).max(1);
    let query = params.query(now);
    let chosen = params
        .scope
        .window
        .clone()
        .unwrap_or_else(|| "all".to_owned());
    let mut windows: Vec<(String, String, bool)> =
        vec![("all".to_owned(), "Whole log".to_owned(), chosen == "all")];
    windows.extend(
        WINDOWS
            .iter()
            .map(|(v, l, _)| ((*v).to_owned(), (*l).to_owned(), *v == chosen)),
    );
    let mut out = AuditPage {
        unavailable: None,
        principal: text(&params.principal),
        action: text(&params.action),
        outcomes: vec![
            ("", "Allowed and denied", query.allowed.is_none()),
            ("allowed", "Allowed", query.allowed == Some(true)),
            ("denied", "Denied", query.allowed == Some(false)),
        ],
        windows,
        start: params
            .scope
            .start
            .as_deref()
            .and_then(parse_time)
            .map(|t| format_time(t)[..16].to_owned())
            .unwrap_or_default(),
        end: params
            .scope
            .end
            .as_deref()
            .and_then(parse_time)
            .map(|t| format_time(t)[..16].to_owned())
            .unwrap_or_default(),
        events: Vec::new(),
        throttled: 0,
        budget_spent: false,
        budget_mib: SEARCH_BUDGET / (1024 * 1024),
        page,
        prev: None,
        next: None,
        nav: nav.clone(),
    };
    let Some(Extension(auth)) = auth else {
        out.unavailable = Some(
            "Authentication is off (no --auth-keys), so there is no audit log: every request is anonymous.",
        );
        return Ok(Html(out.render()?));
    };
    if !reach::may_audit(caller.as_ref()) {
        return Err(PageError::Forbidden(
            "You may not read the audit log (it needs xray:GetAuditEvents).".to_owned(),
        ));
    }
    nav.audit = true;
    out.nav = nav;
    out.throttled = auth.throttled();
    if auth.audit_log().is_none() {
        out.unavailable =
            Some("No audit log is configured: start the collector with --audit-log FILE.");
        return Ok(Html(out.render()?));
    }
    let skip = (page - 1).saturating_mul(EVENTS_PER_PAGE);
    let found = tokio::task::spawn_blocking(move || {
        auth.audit_log()
            .map(|log| log.search(&query, skip, EVENTS_PER_PAGE))
            .transpose()
    })
    .await
    .map_err(|e| PageError::Query(e.to_string()))?
    .map_err(|e| PageError::Query(format!("reading the audit log: {e}")))?
    .unwrap_or_default();
    out.budget_spent = found.budget_spent;
    out.next = found.more.then(|| params.link(page + 1));
    out.prev = (page > 1).then(|| params.link(page - 1));
    out.events = rows(found);
    Ok(Html(out.render()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_make_a_query_and_links_keep_them() {
        let p = AuditParams {
            principal: Some(" alice ".into()),
            action: Some("".into()),
            outcome: Some("denied".into()),
            scope: Scope {
                window: Some("custom".into()),
                start: Some("100".into()),
                end: Some("200".into()),
                ..Scope::default()
            },
            page: Some(2),
        };
        let q = p.query(1000.0);
        assert_eq!(q.principal.as_deref(), Some("alice"));
        assert_eq!(q.action, None);
        assert_eq!(q.allowed, Some(false));
        assert_eq!((q.since, q.until), (Some(100), Some(200)));
        let link = p.link(3);
        assert!(link.starts_with("/audit?principal=+alice+&"), "{link}");
        assert!(link.ends_with("&page=3") && link.contains("outcome=denied"));
        let uri: axum::http::Uri = "/audit?page=2&window=5m&outcome=allowed".parse().unwrap();
        let Query(parsed) = Query::<AuditParams>::try_from_uri(&uri).unwrap();
        assert_eq!(parsed.page, Some(2));
        assert_eq!(parsed.scope.window.as_deref(), Some("5m"));
        let all = AuditParams::default().query(1000.0);
        assert_eq!(all, AuditQuery::default());
    }
}
