//! Who may send and who may read: an axum layer in front of the X-Ray API and the dashboard that
//! verifies SigV4 signatures against the [`keys`] file, refuses replays, maps each path to its
//! `xray:` action and resource, evaluates the caller's [`policy`] documents, answers refusals
//! with X-Ray error bodies and records every decision in the [`audit`] log.
//!
//! - [`sigv4`]: signature parsing, canonical requests, verification (and signing for tests).
//! - [`policy`]: IAM-style documents and their evaluation.
//! - [`keys`]: principals, access keys, the keys file and the `keys` command.
//! - [`audit`]: the append-only JSON-lines audit log with rotation.
//! - [`session`]: dashboard sign-in with an access key, sessions and CSRF tokens.

pub mod audit;
pub mod keys;
pub mod policy;
pub mod session;
pub mod sigv4;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use audit::{AuditEvent, AuditLog};
use keys::{Keyring, KeysError, KeysFile, LoadedPrincipal};
use policy::{Decision, RequestContext};
use sigv4::{SigError, SignableRequest};

/// The service name requests must be signed for.
pub const SERVICE: &str = "xray";
/// Our own action for reading the audit log.
pub const AUDIT_ACTION: &str = "xray:GetAuditEvents";
/// Most replay-cache entries kept (a full cache refuses new signatures rather than forget).
const REPLAY_CAPACITY: usize = 1_000_000;
/// How often the keys file is checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The keys file.
    pub keys_file: PathBuf,
    /// The audit log file, if any.
    pub audit_log: Option<PathBuf>,
    /// Allowed difference between a request's `X-Amz-Date` and our clock.
    pub max_skew: Duration,
}

/// Why authentication could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The keys file is unusable.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The audit log cannot be opened.
    #[error("audit log {path}: {source}")]
    Audit {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// The `xray:` action of an API path, or `None` for a path that is not an API operation.
pub fn action_for(path: &str) -> Option<&'static str> {
    Some(match path {
        "/TraceSegments" => "xray:PutTraceSegments",
        "/TraceSummaries" => "xray:GetTraceSummaries",
        "/Traces" => "xray:BatchGetTraces",
        "/TraceGraph" => "xray:GetTraceGraph",
        "/ServiceGraph" => "xray:GetServiceGraph",
        "/TimeSeriesServiceStatistics" => "xray:GetTimeSeriesServiceStatistics",
        "/GetSamplingRules" => "xray:GetSamplingRules",
        "/SamplingTargets" => "xray:GetSamplingTargets",
        "/SamplingStatisticSummaries" => "xray:GetSamplingStatisticSummaries",
        "/CreateSamplingRule" => "xray:CreateSamplingRule",
        "/UpdateSamplingRule" => "xray:UpdateSamplingRule",
        "/DeleteSamplingRule" => "xray:DeleteSamplingRule",
        "/TelemetryRecords" => "xray:PutTelemetryRecords",
        "/CreateGroup" => "xray:CreateGroup",
        "/Groups" => "xray:GetGroups",
        "/GetGroup" => "xray:GetGroup",
        "/UpdateGroup" => "xray:UpdateGroup",
        "/DeleteGroup" => "xray:DeleteGroup",
        "/InsightSummaries" => "xray:GetInsightSummaries",
        "/EncryptionConfig" => "xray:GetEncryptionConfig",
        _ => return None,
    })
}

/// The ARN of a group, in the form the groups API returns.
pub fn group_arn(name: &str) -> String {
    format!("arn:aws:xray:us-east-1:000000000000:group/{name}")
}

/// The name in a `group.name = "NAME"` filter expression (nothing else around it).
fn group_of_filter(filter: &str) -> Option<String> {
    let rest = filter.trim().strip_prefix("group.name")?.trim_start();
    let rest = rest.strip_prefix('=')?.trim();
    let inner = rest.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['"', '\\'])).then(|| inner.to_owned())
}

/// The resource a call is about: the group it names (by `GroupName`, `GroupARN` or a
/// `group.name = "..."` filter), else `*`.
pub fn resource_for(action: &str, body: &[u8]) -> String {
    let groupish = matches!(
        action,
        "xray:GetServiceGraph"
            | "xray:GetTimeSeriesServiceStatistics"
            | "xray:GetTraceSummaries"
            | "xray:GetGroup"
            | "xray:UpdateGroup"
            | "xray:DeleteGroup"
            | "xray:CreateGroup"
    );
    if !groupish {
        return "*".to_owned();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return "*".to_owned();
    };
    if let Some(arn) = value.get("GroupARN").and_then(|v| v.as_str()) {
        return arn.to_owned();
    }
    if let Some(name) = value.get("GroupName").and_then(|v| v.as_str()) {
        return group_arn(name);
    }
    if let Some(name) = value
        .get("FilterExpression")
        .and_then(|v| v.as_str())
        .and_then(group_of_filter)
    {
        return group_arn(&name);
    }
    "*".to_owned()
}

/// A refusal, answered with an X-Ray error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The signature is missing or wrong.
    Signature(SigError),
    /// The policies do not allow the call.
    AccessDenied(String),
    /// The replay cache is full.
    Busy,
}

impl Denial {
    /// `(status, __type, message)`.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Denial::Signature(e) => {
                let kind = match e {
                    SigError::Missing => "MissingAuthenticationTokenException",
                    SigError::UnknownKey => "UnrecognizedClientException",
                    SigError::Malformed(_) => "IncompleteSignatureException",
                    _ => "InvalidSignatureException",
                };
                (StatusCode::FORBIDDEN, kind, e.to_string())
            }
            Denial::AccessDenied(m) => (StatusCode::FORBIDDEN, "AccessDeniedException", m.clone()),
            Denial::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ThrottlingException",
                "too many requests".to_owned(),
            ),
        }
    }
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let (status, kind, message) = self.parts();
        let body = serde_json::json!({ "__type": kind, "message": message });
        let mut response = (status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(kind));
        response
    }
}

/// The authenticated caller, put in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal.
    pub principal: Arc<LoadedPrincipal>,
}

struct Reloader {
    checked: Instant,
    modified: Option<SystemTime>,
}

/// The authentication state shared by every request.
pub struct Auth {
    config: AuthConfig,
    keyring: RwLock<Arc<Keyring>>,
    reloader: Mutex<Reloader>,
    replay: Mutex<HashMap<[u8; 32], i64>>,
    audit: Option<AuditLog>,
    sessions: session::Sessions,
    /// Whether cookies get `Secure` (the collector serves HTTPS).
    pub secure_cookies: bool,
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Auth {
    /// Loads the keys file and opens the audit log.
    pub fn open(config: AuthConfig) -> Result<Self, AuthError> {
        let keyring = Keyring::new(&KeysFile::load(&config.keys_file)?)?;
        let audit = match &config.audit_log {
            Some(path) => Some(AuditLog::open(path, audit::ROTATE_BYTES).map_err(|source| {
                AuthError::Audit {
                    path: path.clone(),
                    source,
                }
            })?),
            None => None,
        };
        Ok(Self {
            reloader: Mutex::new(Reloader {
                checked: Instant::now(),
                modified: modified(&config.keys_file),
            }),
            keyring: RwLock::new(Arc::new(keyring)),
            replay: Mutex::new(HashMap::new()),
            audit,
            sessions: session::Sessions::default(),
            secure_cookies: false,
            config,
        })
    }

    /// The audit log, if one is configured.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// The current keyring, reloading the keys file when it changed (checked once a second).
    fn keyring(&self) -> Arc<Keyring> {
        if let Ok(mut r) = self.reloader.lock()
            && r.checked.elapsed() >= RELOAD_EVERY
        {
            r.checked = Instant::now();
            let now = modified(&self.config.keys_file);
            if now != r.modified {
                r.modified = now;
                match KeysFile::load(&self.config.keys_file).and_then(|f| Keyring::new(&f)) {
                    Ok(k) => {
                        if let Ok(mut slot) = self.keyring.write() {
                            *slot = Arc::new(k);
                        }
                        tracing::info!(path = %self.config.keys_file.display(), "keys file reloaded");
                    }
                    Err(error) => {
                        tracing::error!(%error, "keys file changed but is invalid; keeping the old keys");
                    }
                }
            }
        }
        match self.keyring.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Remembers a signature until it could no longer pass the time check; `false` if it was
    /// already seen.
    fn first_use(&self, signature: [u8; 32], until: i64, now: i64) -> Result<bool, Denial> {
        let mut seen = self.replay.lock().map_err(|_| Denial::Busy)?;
        if seen.len() >= REPLAY_CAPACITY / 2 {
            seen.retain(|_, t| *t >= now);
            if seen.len() >= REPLAY_CAPACITY {
                return Err(Denial::Busy);
            }
        }
        Ok(seen.insert(signature, until).is_none())
    }

    /// Authenticates a request: the signature (form, scope, time, key, value, first use).
    pub fn authenticate(
        &self,
        request: &SignableRequest<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<Arc<LoadedPrincipal>, Denial> {
        let p = sigv4::presented(request).map_err(Denial::Signature)?;
        if p.auth.service != SERVICE {
            return Err(Denial::Signature(SigError::Scope(
                "requests must be signed for service xray",
            )));
        }
        let skew = i64::try_from(self.config.max_skew.as_secs()).unwrap_or(i64::MAX);
        p.check_time(now, skew).map_err(Denial::Signature)?;
        let keyring = self.keyring();
        let (secret, principal) = keyring
            .get(&p.auth.access_key_id)
            .ok_or(Denial::Signature(SigError::UnknownKey))?;
        p.verify(request, body, secret).map_err(Denial::Signature)?;
        let until = p.time + p.expires.unwrap_or(0) + skew;
        if !self.first_use(p.auth.signature, until, now)? {
            return Err(Denial::Signature(SigError::Replayed));
        }
        Ok(principal.clone())
    }

    /// Authorizes a principal's call.
    pub fn authorize(
        principal: &LoadedPrincipal,
        action: &str,
        resource: &str,
        source_ip: IpAddr,
    ) -> Result<(), Denial> {
        let context = RequestContext {
            action,
            resource,
            source_ip,
        };
        match policy::evaluate(&principal.policies, &context) {
            Decision::Allow => Ok(()),
            decision => Err(Denial::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: {resource}{}",
                principal.name,
                if decision == Decision::ExplicitDeny {
                    " with an explicit deny"
                } else {
                    ""
                }
            ))),
        }
    }

    /// Records an audit event when the log is on.
    pub fn record(&self, event: &AuditEvent<'_>) {
        if let Some(log) = &self.audit
            && let Err(error) = log.append(event)
        {
            tracing::error!(%error, "audit log write failed");
        }
    }
}

/// Wraps `app` so that every request but the dashboard's static assets must be signed and
/// allowed.
pub fn protect(app: Router, auth: Arc<Auth>) -> Router {
    use axum::routing::{get, post};
    let signin = Router::new()
        .route("/signin", get(session::signin_page).post(session::signin))
        .route("/signout", post(session::signout))
        .route("/session", get(session::session_info))
        .with_state(auth.clone());
    app.merge(signin)
        .layer(axum::middleware::from_fn_with_state(auth, check_request))
}

/// The dashboard's answer to a visitor: a signed-in session's principal, if it may read.
fn dashboard_session(
    auth: &Auth,
    headers: &axum::http::HeaderMap,
    source: IpAddr,
) -> Option<Result<Arc<LoadedPrincipal>, Denial>> {
    let token = session::cookie(headers, session::SESSION_COOKIE)?;
    let s = auth.sessions.get(token)?;
    Some(
        Auth::authorize(&s.principal, session::DASHBOARD_ACTION, "*", source).map(|()| s.principal),
    )
}

/// The layer's body: authenticate, authorize, audit, then call the inner service.
async fn check_request(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/assets/") || matches!(path.as_str(), "/signin" | "/signout" | "/session")
    {
        return next.run(request).await;
    }
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let api_action = action_for(&path);
    if api_action.is_none() {
        let signed = request.headers().contains_key("authorization")
            || request
                .uri()
                .query()
                .is_some_and(|q| q.contains("X-Amz-Signature"));
        if !signed {
            return match dashboard_session(&auth, request.headers(), source) {
                Some(Ok(principal)) => {
                    let mut request = request;
                    request.extensions_mut().insert(Caller { principal });
                    next.run(request).await
                }
                Some(Err(denial)) => denial.into_response(),
                None if request.method() == axum::http::Method::GET => (
                    StatusCode::SEE_OTHER,
                    [(axum::http::header::LOCATION, "/signin")],
                )
                    .into_response(),
                None => Denial::Signature(SigError::Missing).into_response(),
            };
        }
    }
    let action = api_action.unwrap_or(session::DASHBOARD_ACTION);
    let (mut parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, crate::api::MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let signable = SignableRequest {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
    };
    let resource = resource_for(action, &bytes);
    let authenticated = auth.authenticate(&signable, &bytes, now_secs());
    let who = authenticated.as_ref().ok().cloned();
    let outcome = authenticated.and_then(|principal| {
        Auth::authorize(&principal, action, &resource, source).map(|()| principal)
    });
    let key_id = sigv4::presented(&signable)
        .map(|p| p.auth.access_key_id)
        .ok();
    drop(headers);
    auth.record(&AuditEvent {
        time: now_secs(),
        principal: who.as_ref().map(|p| p.name.as_str()),
        access_key_id: key_id.as_deref(),
        source_ip: source,
        action,
        resource: &resource,
        path: &path,
        allowed: outcome.is_ok(),
        error: outcome.as_ref().err().map(|d| d.parts().1),
    });
    match outcome {
        Ok(principal) => {
            parts.extensions.insert(Caller { principal });
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(denial) => {
            tracing::info!(%source, action, path, kind = denial.parts().1, "request refused");
            denial.into_response()
        }
    }
}

#[cfg(test)]
mod tests;
