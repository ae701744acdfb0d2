//! The alarms page (`GET /alarms`): every rule with its state and why, the recent state changes
//! with their deliveries, and a form to create a rule; `POST /alarms/create` and
//! `POST /alarms/delete` change rules through [`crate::alarms::save`], the one way rules are
//! saved. With `--auth-keys` the forms carry the session's CSRF token and need
//! `xray:CreateAlarmRule` / `xray:DeleteAlarmRule` (the page itself `xray:GetAlarmRules`);
//! without, only a same-origin form is accepted.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{Nav, PageError, Scope, format_time, url_encode};
use crate::alarms::rule::{Comparison, MissingData, Webhook, WebhookFormat};
use crate::alarms::{self, AlarmRule, AlarmState, EventQuery, Metric, SaveError, SaveMode};
use crate::api::AppState;
use crate::auth::Auth;

/// State changes shown.
const HISTORY: usize = 50;

/// The page's query string: what the last form did.
#[derive(Debug, Default, Deserialize)]
pub struct AlarmsQuery {
    /// A rule just saved.
    #[serde(default)]
    pub saved: Option<String>,
    /// A rule just deleted.
    #[serde(default)]
    pub deleted: Option<String>,
}

/// One rule's row.
struct RuleRow {
    name: String,
    watches: String,
    condition: String,
    state: &'static str,
    reason: String,
    since: String,
    webhooks: usize,
}

/// One state change's row.
struct EventRow {
    time: String,
    alarm: String,
    from: &'static str,
    to: &'static str,
    reason: String,
    delivery: String,
    link: String,
}

#[derive(Template)]
#[template(path = "alarms.html")]
struct AlarmsPage {
    nav: Nav,
    csrf: String,
    message: Option<String>,
    problem: Option<String>,
    rules: Vec<RuleRow>,
    events: Vec<EventRow>,
    form: RuleForm,
    metrics: Vec<(String, bool)>,
    comparisons: Vec<(String, bool)>,
    missing: Vec<(String, bool)>,
    formats: Vec<(String, bool)>,
}

/// The create form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    metric: String,
    #[serde(default)]
    comparison: String,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    band_width: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    evaluation_periods: String,
    #[serde(default)]
    datapoints_to_alarm: String,
    #[serde(default)]
    missing: String,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    webhook_format: String,
    #[serde(default)]
    csrf: String,
}

/// The delete form.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    name: String,
    #[serde(default)]
    csrf: String,
}

fn name_of<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_enum<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_owned()))
        .map_err(|_| format!("{field}: {text:?} is not one of the choices"))
}

impl RuleForm {
    /// The rule the form describes, or what is wrong with it.
    fn rule(&self) -> Result<AlarmRule, String> {
        let number = |field: &str, text: &str, default: f64| -> Result<f64, String> {
            let t = text.trim();
            if t.is_empty() {
                return Ok(default);
            }
            t.parse::<f64>()
                .map_err(|_| format!("{field}: {t:?} is not a number"))
        };
        let whole = |field: &str, text: &str, default: u32| -> Result<u32, String> {
            let t = text.trim();
            if t.is_empty() {
                return Ok(default);
            }
            t.parse::<u32>()
                .map_err(|_| format!("{field}: {t:?} is not a whole number"))
        };
        let comparison: Comparison = parse_enum("Comparison", &self.comparison)?;
        let optional = |t: &str| Some(t.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(AlarmRule {
            name: self.name.trim().to_owned(),
            description: None,
            group_name: optional(&self.group),
            entity_selector_expression: optional(&self.entity),
            metric: parse_enum("Metric", &self.metric)?,
            comparison,
            threshold: if comparison.uses_band() {
                None
            } else if self.threshold.trim().is_empty() {
                return Err(format!("{comparison:?} needs a threshold"));
            } else {
                Some(number("Threshold", &self.threshold, 0.0)?)
            },
            band_width: number("Band width", &self.band_width, 3.0)?,
            period: whole("Period", &self.period, 60)?,
            evaluation_periods: whole("Evaluation periods", &self.evaluation_periods, 1)?,
            datapoints_to_alarm: whole("Datapoints to alarm", &self.datapoints_to_alarm, 1)?,
            min_requests: 0,
            treat_missing_data: if self.missing.trim().is_empty() {
                MissingData::default()
            } else {
                parse_enum("Missing data", &self.missing)?
            },
            webhooks: match optional(&self.webhook_url) {
                Some(url) => vec![Webhook {
                    url,
                    format: if self.webhook_format.trim().is_empty() {
                        WebhookFormat::default()
                    } else {
                        parse_enum("Format", &self.webhook_format)?
                    },
                    secret: optional(&self.webhook_secret),
                }],
                None => Vec::new(),
            },
            actions_enabled: true,
        })
    }
}

/// The session's CSRF token (with `--auth-keys`), or empty.
fn session_csrf(auth: Option<&Arc<Auth>>, headers: &HeaderMap) -> Option<String> {
    auth?.session_csrf(headers)
}

/// Refuses a form from another site: with sessions, the session's CSRF token must come back;
/// always, a browser's `Origin` (or `Sec-Fetch-Site`) must say the same site.
fn check_form(
    auth: Option<&Arc<Auth>>,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err("cross-site form refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let same = origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host);
        if !same {
            return Err("cross-origin form refused");
        }
    }
    if auth.is_some() {
        let expected = session_csrf(auth, headers).unwrap_or_default();
        if expected.is_empty()
            || !crate::auth::session::constant_time_eq(expected.as_bytes(), csrf.as_bytes())
        {
            return Err("invalid CSRF token");
        }
    }
    Ok(())
}

async fn render(
    state: &AppState,
    caller: Option<Extension<crate::auth::Caller>>,
    auth: Option<&Arc<Auth>>,
    headers: &HeaderMap,
    message: Option<String>,
    problem: Option<String>,
    form: RuleForm,
) -> Result<Html<String>, PageError> {
    let mut scope = Scope::default();
    let (_, nav) = super::page_frame(state, caller, &mut scope, "alarms", "1h").await?;
    let stored = state
        .store
        .alarm_rules()
        .await
        .map_err(|e| PageError::Query(e.to_string()))?;
    let latest = state
        .store
        .alarm_events(EventQuery {
            latest_only: true,
            limit: 100_000,
            ..EventQuery::default()
        })
        .await
        .map_err(|e| PageError::Query(e.to_string()))?;
    let rules = stored
        .iter()
        .map(|s| {
            let r = &s.rule;
            let last = latest.iter().find(|e| e.alarm == r.name);
            let bound = match r.threshold {
                Some(t) => r.metric.display(t),
                None => format!("band ×{}", r.band_width),
            };
            RuleRow {
                name: r.name.clone(),
                watches: r.entity_label(),
                condition: format!(
                    "{} {} {bound}, {} of {} × {} s",
                    name_of(r.metric),
                    name_of(r.comparison),
                    r.datapoints_to_alarm,
                    r.evaluation_periods,
                    r.period
                ),
                state: last
                    .map_or(AlarmState::InsufficientData, |e| e.new_state)
                    .as_str(),
                reason: last.map_or_else(
                    || "not evaluated yet".to_owned(),
                    |e| e.decision.reason.clone(),
                ),
                since: last.map_or_else(String::new, |e| format_time(e.time)),
                webhooks: r.webhooks.len(),
            }
        })
        .collect();
    let history = state
        .store
        .alarm_events(EventQuery {
            limit: HISTORY,
            ..EventQuery::default()
        })
        .await
        .map_err(|e| PageError::Query(e.to_string()))?;
    let events = history
        .iter()
        .map(|e| {
            let delivered = e.deliveries.iter().filter(|d| d.delivered).count();
            let given_up = e.deliveries.len() - delivered;
            let delivery = match (e.pending.len(), delivered, given_up) {
                (0, 0, 0) => "no webhooks".to_owned(),
                (p, d, g) => {
                    let mut parts = Vec::new();
                    if d > 0 {
                        parts.push(format!("{d} delivered"));
                    }
                    if p > 0 {
                        parts.push(format!("{p} pending"));
                    }
                    if g > 0 {
                        parts.push(format!("{g} given up"));
                    }
                    parts.join(", ")
                }
            };
            let rule = stored.iter().find(|s| s.rule.name == e.alarm);
            EventRow {
                time: format_time(e.time),
                alarm: e.alarm.clone(),
                from: e.old_state.as_str(),
                to: e.new_state.as_str(),
                reason: e.decision.reason.clone(),
                delivery,
                link: rule.map_or_else(String::new, |s| alarms::notify::link("", &s.rule, e)),
            }
        })
        .collect();
    let selected = |all: Vec<String>, chosen: &str, default: &str| {
        let chosen = if chosen.is_empty() { default } else { chosen };
        all.into_iter()
            .map(|v| {
                let on = v == chosen;
                (v, on)
            })
            .collect::<Vec<_>>()
    };
    let page = AlarmsPage {
        nav,
        csrf: session_csrf(auth, headers).unwrap_or_default(),
        message,
        problem,
        rules,
        events,
        metrics: selected(
            Metric::ALL.iter().map(|m| name_of(*m)).collect(),
            &form.metric,
            "FaultRate",
        ),
        comparisons: selected(
            [
                Comparison::GreaterThanThreshold,
                Comparison::GreaterThanOrEqualToThreshold,
                Comparison::LessThanThreshold,
                Comparison::LessThanOrEqualToThreshold,
                Comparison::OutsideBand,
                Comparison::GreaterThanUpperBand,
                Comparison::LessThanLowerBand,
            ]
            .iter()
            .map(|c| name_of(*c))
            .collect(),
            &form.comparison,
            "GreaterThanThreshold",
        ),
        missing: selected(
            [
                MissingData::Missing,
                MissingData::NotBreaching,
                MissingData::Breaching,
                MissingData::Ignore,
            ]
            .iter()
            .map(|m| name_of(*m))
            .collect(),
            &form.missing,
            "Missing",
        ),
        formats: selected(
            [WebhookFormat::Json, WebhookFormat::Slack]
                .iter()
                .map(|f| name_of(*f))
                .collect(),
            &form.webhook_format,
            "Json",
        ),
        form,
    };
    Ok(Html(page.render()?))
}

/// `GET /alarms`.
pub async fn alarms_page(
    State(state): State<AppState>,
    caller: Option<Extension<crate::auth::Caller>>,
    auth: Option<Extension<Arc<Auth>>>,
    headers: HeaderMap,
    Query(q): Query<AlarmsQuery>,
) -> Result<Html<String>, PageError> {
    let message = match (q.saved, q.deleted) {
        (Some(name), _) => Some(format!("Saved rule {name}.")),
        (None, Some(name)) => Some(format!("Deleted rule {name}.")),
        _ => None,
    };
    let auth = auth.map(|a| a.0);
    render(
        &state,
        caller,
        auth.as_ref(),
        &headers,
        message,
        None,
        RuleForm::default(),
    )
    .await
}

/// `POST /alarms/create`.
pub async fn create_rule(
    State(state): State<AppState>,
    caller: Option<Extension<crate::auth::Caller>>,
    auth: Option<Extension<Arc<Auth>>>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    let auth = auth.map(|a| a.0);
    if let Err(why) = check_form(auth.as_ref(), &headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let problem = match form.rule() {
        Err(p) => p,
        Ok(rule) => {
            let name = rule.name.clone();
            match alarms::save(state.store.as_ref(), rule, SaveMode::Create).await {
                Ok(_) => {
                    let to = format!("/alarms?saved={}", url_encode(&name));
                    return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
                }
                Err(SaveError::Invalid(p)) => p,
                Err(e) => e.to_string(),
            }
        }
    };
    match render(
        &state,
        caller,
        auth.as_ref(),
        &headers,
        None,
        Some(problem),
        form,
    )
    .await
    {
        Ok(page) => (StatusCode::BAD_REQUEST, page).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /alarms/delete`.
pub async fn delete_rule(
    State(state): State<AppState>,
    caller: Option<Extension<crate::auth::Caller>>,
    auth: Option<Extension<Arc<Auth>>>,
    headers: HeaderMap,
    Form(form): Form<DeleteForm>,
) -> Response {
    let auth = auth.map(|a| a.0);
    if let Err(why) = check_form(auth.as_ref(), &headers, &form.csrf) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    match state.store.delete_alarm_rule(form.name.clone()).await {
        Ok(()) => {
            let to = format!("/alarms?deleted={}", url_encode(&form.name));
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        Err(e) => {
            let page = render(
                &state,
                caller,
                auth.as_ref(),
                &headers,
                None,
                Some(e.to_string()),
                RuleForm::default(),
            )
            .await;
            match page {
                Ok(page) => (StatusCode::BAD_REQUEST, page).into_response(),
                Err(e) => e.into_response(),
            }
        }
    }
}
