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
//! - [`limit`]: per-principal and per-address token-bucket rate limits (429 when exceeded).

pub mod audit;
pub mod grpc;
pub mod keys;
pub mod limit;
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
use axum::http::header::RETRY_AFTER;
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
/// Our own action for reading the collector's metrics (`GET /metrics`).
pub const METRICS_ACTION: &str = "xray:GetMetrics";
/// Paths a load balancer must reach: served without authentication, they reveal nothing else.
pub const HEALTH_PATHS: [&str; 2] = ["/healthz", "/readyz"];
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
    /// Serve `GET /metrics` unsigned to clients on loopback (a local scraper).
    pub metrics_on_loopback: bool,
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
        "/TraceSegments" | "/v1/traces" => "xray:PutTraceSegments",
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
        "/Insight" => "xray:GetInsight",
        "/InsightEvents" => "xray:GetInsightEvents",
        "/InsightImpactGraph" => "xray:GetInsightImpactGraph",
        "/TraceAnalytics" => "xray:GetTraceAnalytics",
        "/CreateAlarmRule" => "xray:CreateAlarmRule",
        "/UpdateAlarmRule" => "xray:UpdateAlarmRule",
        "/DeleteAlarmRule" => "xray:DeleteAlarmRule",
        "/GetAlarmRules" => "xray:GetAlarmRules",
        "/GetAlarmHistory" => "xray:GetAlarmHistory",
        "/EncryptionConfig" => "xray:GetEncryptionConfig",
        "/AuditEvents" => AUDIT_ACTION,
        "/metrics" => METRICS_ACTION,
        _ => return None,
    })
}

/// A refusal, answered with an X-Ray error body.
#[derive(Debug)]
pub enum Denial {
    /// The signature is missing or wrong.
    Signature(SigError),
    /// The policies do not allow the call.
    AccessDenied(String),
    /// The replay cache is full.
    Busy,
    /// Over the rate limit; try again after this long.
    Throttled(Duration),
    /// The request is refused before it is authorized (a malformed group, a body too large).
    Invalid(crate::api::ApiError),
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
            Denial::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottledException",
                "Rate exceeded".to_owned(),
            ),
            Denial::Invalid(e) => {
                let (status, kind) = e.parts();
                (status, kind, e.to_string())
            }
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
        if let Denial::Throttled(wait) = self {
            let seconds = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

/// The authenticated caller, put in the request's extensions for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal.
    pub principal: Arc<LoadedPrincipal>,
    /// The address the request came from (for `aws:SourceIp` conditions).
    pub source_ip: IpAddr,
}

impl Caller {
    /// Whether the caller's policies allow `action` on `resource`.
    pub fn may(&self, action: &str, resource: &str) -> bool {
        Auth::authorize(&self.principal, action, resource, self.source_ip).is_ok()
    }
}

/// A signature that passed every check but the one over the body.
struct Screened {
    presented: sigv4::Presented,
    secret: String,
    principal: Arc<LoadedPrincipal>,
    until: i64,
}

impl Screened {
    /// Checks the signature over the body.
    fn verify(
        self,
        request: &SignableRequest<'_>,
        body: &[u8],
    ) -> Result<(Arc<LoadedPrincipal>, Admission), Denial> {
        self.presented
            .verify(request, body, &self.secret)
            .map_err(Denial::Signature)?;
        Ok((
            self.principal,
            Admission {
                signature: self.presented.auth.signature,
                until: self.until,
            },
        ))
    }
}

/// What letting a verified signature in needs: the signature and how long to remember it.
#[derive(Debug, Clone, Copy)]
struct Admission {
    signature: [u8; 32],
    until: i64,
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
    limiter: limit::Limiter,
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
    /// The CSRF token of the request's dashboard session, if it has one.
    pub fn session_csrf(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        let token = session::cookie(headers, session::SESSION_COOKIE)?;
        self.sessions.get(token).map(|s| s.csrf)
    }

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
            limiter: limit::Limiter::new(),
            secure_cookies: false,
            config,
        })
    }

    /// The audit log, if one is configured.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// Requests refused for going over a rate limit since the start.
    pub fn throttled(&self) -> u64 {
        self.limiter.throttled()
    }

    /// Charges an unsigned or refused request to its source address.
    fn charge_address(&self, ip: IpAddr) -> Result<(), Denial> {
        let anonymous = self.keyring().anonymous;
        self.limiter
            .address(ip, anonymous, self.limiter.now())
            .map_err(Denial::Throttled)
    }

    /// Charges a request to an authenticated principal.
    fn charge_principal(&self, principal: &LoadedPrincipal) -> Result<(), Denial> {
        self.limiter
            .principal(&principal.name, principal.limit, self.limiter.now())
            .map_err(Denial::Throttled)
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
        let (principal, admission) = self.verified(request, body, now)?;
        self.admit(&principal, admission, now)?;
        Ok(principal)
    }

    /// The signature's checks: who signed, and what [`Auth::admit`] needs to let it in.
    fn verified(
        &self,
        request: &SignableRequest<'_>,
        body: &[u8],
        now: i64,
    ) -> Result<(Arc<LoadedPrincipal>, Admission), Denial> {
        self.screen(request, now)?.verify(request, body)
    }

    /// The checks that need no body: the signature's form and scope, its time, and a known
    /// key. A request that fails them is refused before its body is read.
    fn screen(&self, request: &SignableRequest<'_>, now: i64) -> Result<Screened, Denial> {
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
        Ok(Screened {
            secret: secret.to_owned(),
            principal: principal.clone(),
            until: p.time + p.expires.unwrap_or(0) + skew,
            presented: p,
        })
    }

    /// Lets a verified request in: its principal's rate limit, then the replay cache (in that
    /// order, so a throttled request may be sent again as it was).
    fn admit(
        &self,
        principal: &LoadedPrincipal,
        admission: Admission,
        now: i64,
    ) -> Result<(), Denial> {
        self.charge_principal(principal)?;
        if !self.first_use(admission.signature, admission.until, now)? {
            return Err(Denial::Signature(SigError::Replayed));
        }
        Ok(())
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

    /// Authorizes a dashboard page view: the principal must be allowed `action` on some
    /// resource (a group-scoped reader is); the page then shows only what it may read.
    pub fn authorize_somewhere(
        principal: &LoadedPrincipal,
        action: &str,
        source_ip: IpAddr,
    ) -> Result<(), Denial> {
        if policy::allows_somewhere(&principal.policies, action, source_ip) {
            Ok(())
        } else {
            Err(Denial::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on any resource",
                principal.name
            )))
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
        .route("/AuditEvents", post(audit::audit_events))
        .with_state(auth.clone());
    let app = app
        .merge(signin)
        .layer(axum::middleware::from_fn_with_state(auth, check_request));
    // Outermost, so the sign-in page, redirects and refusals carry the pages' headers too.
    crate::dashboard::headers::protect_pages(app)
}

/// The action a dashboard page needs: the audit page its own, the others
/// [`session::DASHBOARD_ACTION`] on some resource.
pub fn page_action(path: &str) -> &'static str {
    if path == "/audit" || path.starts_with("/audit/") {
        AUDIT_ACTION
    } else if path == "/insights" {
        "xray:GetInsightSummaries"
    } else if path == "/alarms" {
        "xray:GetAlarmRules"
    } else if path == "/alarms/create" {
        "xray:CreateAlarmRule"
    } else if path == "/alarms/delete" {
        "xray:DeleteAlarmRule"
    } else {
        session::DASHBOARD_ACTION
    }
}

/// Authorizes a principal for an API call (`resource`) or a dashboard page (`page`).
fn authorize_call(
    principal: &LoadedPrincipal,
    action: &str,
    resource: &str,
    page: bool,
    source: IpAddr,
) -> Result<(), Denial> {
    if page && action == session::DASHBOARD_ACTION {
        Auth::authorize_somewhere(principal, action, source)
    } else {
        Auth::authorize(principal, action, resource, source)
    }
}

/// A 403 page for a signed-in visitor who may not see a page.
fn forbidden_page(message: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Forbidden · Roentgen</title><link rel=stylesheet href=/assets/app.css><main class=\"page\"><h1>Forbidden</h1><p id=\"forbidden\">{}</p><p><a href=\"/\">Service map</a></p></main>",
        crate::dashboard::esc(message)
    );
    (
        StatusCode::FORBIDDEN,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A dashboard request without a signature: a session's principal (limited, authorized and
/// audited like a signed call), else a redirect to the sign-in page.
async fn session_request(
    auth: Arc<Auth>,
    mut request: Request,
    next: Next,
    source: IpAddr,
    path: &str,
) -> Response {
    let keyring = auth.keyring();
    let session = session::cookie(request.headers(), session::SESSION_COOKIE)
        .and_then(|t| auth.sessions.resolve(t, &keyring));
    let Some((session, principal)) = session else {
        if let Err(denial) = auth.charge_address(source) {
            return denial.into_response();
        }
        return if request.method() == axum::http::Method::GET {
            (
                StatusCode::SEE_OTHER,
                [(axum::http::header::LOCATION, "/signin")],
            )
                .into_response()
        } else {
            Denial::Signature(SigError::Missing).into_response()
        };
    };
    let action = page_action(path);
    let outcome = auth
        .charge_principal(&principal)
        .and_then(|()| authorize_call(&principal, action, "*", true, source));
    auth.record(&AuditEvent {
        time: now_secs(),
        principal: Some(&principal.name),
        access_key_id: Some(&session.access_key_id),
        source_ip: source,
        action,
        resource: "*",
        path,
        allowed: outcome.is_ok(),
        error: outcome.as_ref().err().map(|d| d.parts().1),
    });
    match outcome {
        Ok(()) => {
            request.extensions_mut().insert(Caller {
                principal,
                source_ip: source,
            });
            request.extensions_mut().insert(auth);
            next.run(request).await
        }
        Err(Denial::AccessDenied(message)) => forbidden_page(&message),
        Err(denial) => denial.into_response(),
    }
}

/// The body size a request declares (`Content-Length`), if it does.
fn declared_length(headers: &[(&str, &str)]) -> Option<u64> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The layer's body: authenticate, rate-limit, authorize, audit, then call the inner service.
async fn check_request(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/assets/")
        || matches!(path.as_str(), "/signout" | "/session")
        || HEALTH_PATHS.contains(&path.as_str())
    {
        return next.run(request).await;
    }
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    if path == "/metrics" && auth.config.metrics_on_loopback && source.is_loopback() {
        return next.run(request).await;
    }
    if path == "/signin" {
        // Sign-in attempts count against the address (a brake on guessing secrets).
        if request.method() == axum::http::Method::POST
            && let Err(denial) = auth.charge_address(source)
        {
            return denial.into_response();
        }
        return next.run(request).await;
    }
    let api_action = action_for(&path);
    let page = api_action.is_none();
    if page {
        let signed = request.headers().contains_key("authorization")
            || request
                .uri()
                .query()
                .is_some_and(|q| q.contains("X-Amz-Signature"));
        if !signed {
            return session_request(auth, request, next, source, &path).await;
        }
    }
    let action = api_action.unwrap_or_else(|| page_action(&path));
    let (mut parts, body) = request.into_parts();
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
    let now = now_secs();
    // Unsigned, unknown-key, stale or oversized requests are refused before the body is read.
    let screened = auth
        .screen(&signable, now)
        .and_then(|s| match declared_length(&headers) {
            Some(n) if n > crate::api::MAX_REQUEST_BYTES as u64 => Err(Denial::Invalid(
                crate::api::ApiError::TooLarge(crate::api::MAX_REQUEST_BYTES),
            )),
            _ => Ok(s),
        });
    let mut bytes = Bytes::new();
    let mut scope = Ok(crate::api::scope::GroupScope::Everything);
    let verified = match screened {
        Ok(screened) => match axum::body::to_bytes(body, crate::api::MAX_REQUEST_BYTES).await {
            Ok(b) => {
                bytes = b;
                if !page {
                    scope = crate::api::scope::scope_of(&path, &bytes);
                }
                screened.verify(&signable, &bytes)
            }
            Err(_) => Err(Denial::Invalid(crate::api::ApiError::TooLarge(
                crate::api::MAX_REQUEST_BYTES,
            ))),
        },
        Err(denial) => Err(denial),
    };
    let resource = scope
        .as_ref()
        .map_or_else(|_| "*".to_owned(), crate::api::scope::GroupScope::resource);
    let who = verified.as_ref().ok().map(|(p, _)| p.clone());
    let outcome = match verified {
        Ok((principal, admission)) => auth
            .admit(&principal, admission, now)
            .and_then(|()| match &scope {
                // A malformed scope is the client's mistake, told once it is authenticated.
                Err(e) => Err(Denial::Invalid(crate::api::ApiError::InvalidRequest(
                    e.to_string(),
                ))),
                Ok(_) => authorize_call(&principal, action, &resource, page, source),
            })
            .map(|()| principal),
        // A failed signature counts against the address: past its limit, 429 instead of 403.
        Err(denial) => Err(auth.charge_address(source).err().unwrap_or(denial)),
    };
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
            parts.extensions.insert(Caller {
                principal,
                source_ip: source,
            });
            parts.extensions.insert(auth);
            if let Ok(scope) = scope {
                parts.extensions.insert(scope);
            }
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
