//! Dashboard sign-in: a form that takes an access key, checks its secret and the principal's
//! read permission, and opens a session (an `HttpOnly`, `SameSite=Strict` cookie naming a
//! random token held in memory), with a CSRF token on the sign-in and sign-out forms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;

use super::audit::AuditEvent;
use super::keys::{Keyring, LoadedPrincipal};
use super::{Auth, now_secs};

/// Session cookie name.
pub const SESSION_COOKIE: &str = "roentgen_session";
/// Pre-sign-in CSRF cookie name.
pub const CSRF_COOKIE: &str = "roentgen_csrf";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The action a principal needs (on `*` or on some group) to sign in to the dashboard.
pub const DASHBOARD_ACTION: &str = "xray:GetTraceSummaries";
/// Most sessions held at once (oldest dropped first past it).
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser. It names its access key, not a copy of the principal: each request
/// resolves the key in the current keyring, so a revoked key or a changed policy applies to
/// the session's next request.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access key it signed in with.
    pub access_key_id: String,
    /// Token the sign-out form must carry.
    pub csrf: String,
    /// Ends then.
    pub expires: Instant,
}

/// Open sessions by token.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A random 32-byte token as hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    super::sigv4::hex(&bytes)
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

impl Sessions {
    /// Opens a session for an access key; returns its token.
    pub fn open(&self, access_key_id: &str) -> String {
        let t = token();
        if let Ok(mut map) = self.map.lock() {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(
                t.clone(),
                Session {
                    access_key_id: access_key_id.to_owned(),
                    csrf: token(),
                    expires: now + SESSION_TTL,
                },
            );
        }
        t
    }

    /// The live session of a token.
    pub fn get(&self, token: &str) -> Option<Session> {
        let map = self.map.lock().ok()?;
        map.get(token)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// The live session of a token with its key's principal in `keyring`; a session whose key
    /// is no longer active there (revoked or removed) is ended.
    pub fn resolve(
        &self,
        token: &str,
        keyring: &Keyring,
    ) -> Option<(Session, Arc<LoadedPrincipal>)> {
        let session = self.get(token)?;
        match keyring.get(&session.access_key_id) {
            Some((_, principal)) => Some((session, principal.clone())),
            None => {
                self.close(token);
                None
            }
        }
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(token);
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(csrf: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · Roentgen</title>\
<link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"signin\">\
<h1>Sign in to Roentgen</h1>{error}<form method=\"post\" action=\"/signin\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label>Access key id <input name=\"access_key_id\" autocomplete=\"username\" required></label>\
<label>Secret access key <input name=\"secret_access_key\" type=\"password\" autocomplete=\"current-password\" required></label>\
<button type=\"submit\">Sign in</button></form></main></body></html>"
    )
}

fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `GET /signin`: the form, with a fresh CSRF token in a cookie and a hidden field.
pub async fn signin_page(State(auth): State<Arc<Auth>>) -> Response {
    let csrf = token();
    (
        [(
            SET_COOKIE,
            cookie_header(CSRF_COOKIE, &csrf, 3600, auth.secure_cookies),
        )],
        Html(page(&csrf, None)),
    )
        .into_response()
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct SigninForm {
    /// Access key id.
    pub access_key_id: String,
    /// Secret.
    pub secret_access_key: String,
    /// CSRF token (must equal the cookie's).
    pub csrf: String,
}

/// `POST /signin`: checks CSRF, the key, its secret and read permission; opens a session.
pub async fn signin(
    State(auth): State<Arc<Auth>>,
    connect: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let source = connect.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
        c.0.ip()
    });
    let csrf_ok = cookie(&headers, CSRF_COOKIE)
        .is_some_and(|c| constant_time_eq(c.as_bytes(), form.csrf.as_bytes()));
    let keyring = auth.keyring();
    let principal = keyring
        .get(&form.access_key_id)
        .filter(|(secret, _)| {
            constant_time_eq(secret.as_bytes(), form.secret_access_key.as_bytes())
        })
        .map(|(_, p)| p.clone());
    let outcome = match (&principal, csrf_ok) {
        (_, false) => Err("the form expired; try again"),
        (None, true) => Err("unknown access key or wrong secret"),
        (Some(p), true) => Auth::authorize_somewhere(p, DASHBOARD_ACTION, source)
            .map_err(|_| "this principal may not read traces"),
    };
    auth.record(&AuditEvent {
        time: now_secs(),
        principal: principal.as_ref().map(|p| p.name.as_str()),
        access_key_id: Some(&form.access_key_id),
        source_ip: source,
        action: "roentgen:SignIn",
        resource: "*",
        path: "/signin",
        allowed: outcome.is_ok(),
        error: outcome.err(),
    });
    match (outcome, principal) {
        (Ok(()), Some(_)) => {
            let t = auth.sessions.open(&form.access_key_id);
            (
                StatusCode::SEE_OTHER,
                [
                    (LOCATION, "/".to_owned()),
                    (
                        SET_COOKIE,
                        cookie_header(
                            SESSION_COOKIE,
                            &t,
                            SESSION_TTL.as_secs(),
                            auth.secure_cookies,
                        ),
                    ),
                ],
            )
                .into_response()
        }
        (outcome, _) => {
            let csrf = token();
            (
                StatusCode::FORBIDDEN,
                [(
                    SET_COOKIE,
                    cookie_header(CSRF_COOKIE, &csrf, 3600, auth.secure_cookies),
                )],
                Html(page(&csrf, outcome.err())),
            )
                .into_response()
        }
    }
}

/// The sign-out form's field.
#[derive(Debug, Deserialize)]
pub struct SignoutForm {
    /// The session's CSRF token.
    pub csrf: String,
}

/// `POST /signout`: ends the session if the form carries its CSRF token.
pub async fn signout(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Form(form): Form<SignoutForm>,
) -> Response {
    let Some(t) = cookie(&headers, SESSION_COOKIE) else {
        return (StatusCode::SEE_OTHER, [(LOCATION, "/signin")]).into_response();
    };
    match auth.sessions.get(t) {
        Some(s) if constant_time_eq(s.csrf.as_bytes(), form.csrf.as_bytes()) => {
            auth.sessions.close(t);
            (
                StatusCode::SEE_OTHER,
                [
                    (LOCATION, "/signin".to_owned()),
                    (
                        SET_COOKIE,
                        cookie_header(SESSION_COOKIE, "", 0, auth.secure_cookies),
                    ),
                ],
            )
                .into_response()
        }
        _ => (StatusCode::FORBIDDEN, "invalid CSRF token").into_response(),
    }
}

/// `GET /session`: the signed-in principal and the CSRF token for the sign-out form (JSON).
pub async fn session_info(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    let keyring = auth.keyring();
    match cookie(&headers, SESSION_COOKIE).and_then(|t| auth.sessions.resolve(t, &keyring)) {
        Some((s, principal)) => axum::Json(serde_json::json!({
            "principal": principal.name,
            "csrf": s.csrf,
        }))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{KeysFile, Principal, allow_policy, new_key};

    fn keyring(active: bool, actions: &[&str]) -> (Keyring, String) {
        let mut key = new_key(0);
        key.active = active;
        key.access_key_id = "RKIASESSIONTEST00001".into();
        let file = KeysFile {
            principals: vec![Principal {
                name: "oncall".into(),
                policies: vec![allow_policy(
                    &actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
                )],
                keys: vec![key.clone()],
                rate_limit: None,
            }],
            ..KeysFile::default()
        };
        (Keyring::new(&file).unwrap(), key.access_key_id)
    }

    #[test]
    fn a_session_resolves_its_key_in_the_current_keyring() {
        let sessions = Sessions::default();
        let (before, id) = keyring(true, &["xray:Get*"]);
        let token = sessions.open(&id);
        let (_, principal) = sessions.resolve(&token, &before).unwrap();
        assert!(
            Auth::authorize_somewhere(&principal, DASHBOARD_ACTION, [127, 0, 0, 1].into()).is_ok()
        );

        let (narrowed, _) = keyring(true, &["xray:PutTraceSegments"]);
        let (_, principal) = sessions.resolve(&token, &narrowed).unwrap();
        assert!(
            Auth::authorize_somewhere(&principal, DASHBOARD_ACTION, [127, 0, 0, 1].into()).is_err()
        );

        let (revoked, _) = keyring(false, &["xray:Get*"]);
        assert!(sessions.resolve(&token, &revoked).is_none());
        assert!(
            sessions.resolve(&token, &before).is_none(),
            "a session ended by a revocation stays ended"
        );
    }
}
