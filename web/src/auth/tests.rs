//! The layer over the real API router: signatures, replays, policies, 403 bodies, audit lines.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use tower::ServiceExt;

use super::keys::{KeysFile, Principal, allow_policy, new_key};
use super::policy::PolicyDocument;
use super::sigv4::{Signer, format_amz_date};
use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    app: Router,
    auth: Arc<Auth>,
    audit: PathBuf,
    writer: keys::AccessKey,
    reader: keys::AccessKey,
    web_reader: keys::AccessKey,
    slow: keys::AccessKey,
    admin: keys::AccessKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (writer, reader, web_reader, slow, admin) =
        (new_key(0), new_key(0), new_key(0), new_key(0), new_key(0));
    let web_only: PolicyDocument = serde_json::from_str(
        r#"{"Statement":[{"Effect":"Allow","Action":"xray:Get*","Resource":"arn:aws:xray:*:*:group/web"}]}"#,
    )
    .unwrap();
    let file = KeysFile {
        default_rate_limit: None,
        // Slow enough that a test's count is exact however slow the machine is.
        anonymous_rate_limit: Some(limit::RateLimit::per_second(0.01, 20.0)),
        principals: vec![
            Principal {
                name: "daemon".into(),
                policies: vec![allow_policy(&["xray:PutTraceSegments".into()])],
                keys: vec![writer.clone()],
                rate_limit: None,
            },
            Principal {
                name: "reader".into(),
                policies: vec![allow_policy(&[
                    "xray:Get*".into(),
                    "xray:BatchGetTraces".into(),
                ])],
                keys: vec![reader.clone()],
                rate_limit: None,
            },
            Principal {
                name: "web-team".into(),
                policies: vec![web_only],
                keys: vec![web_reader.clone()],
                rate_limit: None,
            },
            Principal {
                name: "slow".into(),
                policies: vec![allow_policy(&["xray:GetGroups".into()])],
                keys: vec![slow.clone()],
                rate_limit: Some(limit::RateLimit::per_second(0.01, 2.0)),
            },
            Principal {
                name: "admin".into(),
                policies: vec![allow_policy(&["xray:*".into()])],
                keys: vec![admin.clone()],
                rate_limit: Some(limit::RateLimit::unlimited()),
            },
        ],
    };
    let keys_file = dir.path().join("keys.json");
    file.save(&keys_file).unwrap();
    let audit = dir.path().join("audit.jsonl");
    let auth = Arc::new(
        Auth::open(AuthConfig {
            keys_file,
            audit_log: Some(audit.clone()),
            max_skew: Duration::from_secs(300),
            metrics_on_loopback: false,
        })
        .unwrap(),
    );
    let store =
        Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("data")).unwrap());
    let state = crate::api::AppState::new(store, None);
    let app = protect(
        crate::api::router(state.clone()).merge(crate::dashboard::router(state)),
        auth.clone(),
    );
    Fixture {
        _dir: dir,
        app,
        auth,
        audit,
        writer,
        reader,
        web_reader,
        slow,
        admin,
    }
}

fn signed(key: &keys::AccessKey, path: &str, body: &str, at: i64) -> Request<Body> {
    let date = format_amz_date(at);
    let headers = [("host", "collector:4000"), ("x-amz-date", date.as_str())];
    let signer = Signer {
        access_key_id: &key.access_key_id,
        secret: &key.secret_access_key,
        region: "eu-west-1",
        service: "xray",
    };
    let request = SignableRequest {
        method: "POST",
        path,
        query: "",
        headers: &headers,
    };
    let authorization = signer
        .authorization(&request, body.as_bytes(), &date)
        .unwrap();
    Request::post(path)
        .header("host", "collector:4000")
        .header("x-amz-date", date)
        .header("authorization", authorization)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(app: &Router, mut request: Request<Body>) -> (u16, serde_json::Value) {
    request
        .extensions_mut()
        .insert(ConnectInfo("127.0.0.1:5555".parse::<SocketAddr>().unwrap()));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if let Some(kind) = kind {
        assert_eq!(value["__type"], kind);
    }
    (status, value)
}

const WINDOW: &str = r#"{"StartTime":0,"EndTime":4102444800}"#;

#[tokio::test]
async fn unsigned_wrong_expired_and_replayed_requests_are_refused() {
    let f = fixture();
    let now = now_secs();
    let unsigned = Request::post("/TraceSummaries")
        .body(Body::from(WINDOW))
        .unwrap();
    let (status, body) = call(&f.app, unsigned).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("MissingAuthenticationTokenException"))
    );

    let mut wrong = f.reader.clone();
    wrong.secret_access_key.push('x');
    let (status, body) = call(&f.app, signed(&wrong, "/TraceSummaries", WINDOW, now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("InvalidSignatureException"))
    );

    let mut unknown = f.reader.clone();
    unknown.access_key_id = "RKIANOSUCHKEY".into();
    let (status, body) = call(&f.app, signed(&unknown, "/TraceSummaries", WINDOW, now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("UnrecognizedClientException"))
    );

    let (status, body) = call(
        &f.app,
        signed(&f.reader, "/TraceSummaries", WINDOW, now - 900),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let (status, _) = call(&f.app, signed(&f.reader, "/TraceSummaries", WINDOW, now)).await;
    assert_eq!(status, 200);
    let (status, body) = call(&f.app, signed(&f.reader, "/TraceSummaries", WINDOW, now)).await;
    assert_eq!(status, 403);
    assert!(
        body["message"].as_str().unwrap().contains("replayed"),
        "{body}"
    );
}

#[tokio::test]
async fn senders_cannot_read_and_readers_cannot_send() {
    let f = fixture();
    let now = now_secs();
    let put = r#"{"TraceSegmentDocuments":[]}"#;
    let (status, _) = call(&f.app, signed(&f.writer, "/TraceSegments", put, now)).await;
    assert_eq!(status, 200);
    let (status, body) = call(&f.app, signed(&f.writer, "/TraceSummaries", WINDOW, now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("AccessDeniedException"))
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("daemon is not authorized to perform: xray:GetTraceSummaries")
    );
    let (status, body) = call(&f.app, signed(&f.reader, "/TraceSegments", put, now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("AccessDeniedException"))
    );
    let (status, _) = call(&f.app, signed(&f.reader, "/Groups", "{}", now)).await;
    assert_eq!(status, 200);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&f.audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["principal"], "daemon");
    assert_eq!(lines[0]["allowed"], true);
    assert_eq!(lines[1]["action"], "xray:GetTraceSummaries");
    assert_eq!(
        lines[1]["principal"], "daemon",
        "denied calls name who was denied"
    );
    assert_eq!(lines[1]["allowed"], false);
    assert_eq!(lines[1]["error"], "AccessDeniedException");
    assert_eq!(lines[1]["sourceIp"], "127.0.0.1");
    assert!(f.auth.audit_log().is_some());
}

#[tokio::test]
async fn a_group_scoped_reader_reads_only_its_group() {
    let f = fixture();
    let now = now_secs();
    let (status, _) = call(
        &f.app,
        signed(
            &f.reader,
            "/CreateGroup",
            r#"{"GroupName":"web","FilterExpression":"service(\"web\")"}"#,
            now,
        ),
    )
    .await;
    assert_eq!(status, 403, "readers cannot create groups");
    let web = r#"{"StartTime":0,"EndTime":4102444800,"GroupName":"web"}"#;
    let db = r#"{"StartTime":0,"EndTime":4102444800,"GroupName":"db"}"#;
    let (status, body) = call(&f.app, signed(&f.web_reader, "/ServiceGraph", db, now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("AccessDeniedException"))
    );
    let (status, _) = call(&f.app, signed(&f.web_reader, "/ServiceGraph", WINDOW, now)).await;
    assert_eq!(status, 403, "no group named: the whole store, not allowed");
    let (status, body) = call(&f.app, signed(&f.web_reader, "/ServiceGraph", web, now)).await;
    assert_ne!(status, 403, "{body}");
    let summaries =
        r#"{"StartTime":0,"EndTime":4102444800,"FilterExpression":"group.name = \"web\""}"#;
    let (status, body) = call(
        &f.app,
        signed(&f.web_reader, "/TraceSummaries", summaries, now),
    )
    .await;
    assert_ne!(status, 403, "{body}");
    let sneaky =
        r#"{"StartTime":0,"EndTime":4102444800,"FilterExpression":"group.name = \"web\" OR ok"}"#;
    let (status, _) = call(
        &f.app,
        signed(&f.web_reader, "/TraceSummaries", sneaky, now),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &f.app,
        signed(&f.web_reader, "/Traces", r#"{"TraceIds":[]}"#, now),
    )
    .await;
    assert_eq!(status, 403);
    // Analytics (our own xray:GetTraceAnalytics, which xray:Get* covers): within its group
    // only.
    let (status, body) = call(&f.app, signed(&f.web_reader, "/TraceAnalytics", web, now)).await;
    assert_ne!(status, 403, "{body}");
    for other in [db, WINDOW] {
        let (status, _) = call(&f.app, signed(&f.web_reader, "/TraceAnalytics", other, now)).await;
        assert_eq!(status, 403, "{other}");
    }
    let (status, _) = call(&f.app, signed(&f.writer, "/TraceAnalytics", web, now)).await;
    assert_eq!(status, 403, "senders cannot read analytics");
}

#[test]
fn paths_map_to_actions() {
    assert_eq!(action_for("/TraceSegments"), Some("xray:PutTraceSegments"));
    assert_eq!(action_for("/v1/traces"), Some("xray:PutTraceSegments"));
    assert_eq!(action_for("/Traces"), Some("xray:BatchGetTraces"));
    assert_eq!(
        action_for("/TraceAnalytics"),
        Some("xray:GetTraceAnalytics")
    );
    assert_eq!(action_for("/traces"), None);
}

async fn raw(app: &Router, mut request: Request<Body>) -> (u16, axum::http::HeaderMap, String) {
    request
        .extensions_mut()
        .insert(ConnectInfo("127.0.0.1:5555".parse::<SocketAddr>().unwrap()));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn set_cookie(headers: &axum::http::HeaderMap, name: &str) -> String {
    let value = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap();
    assert!(
        value.contains("HttpOnly") && value.contains("SameSite=Strict"),
        "{value}"
    );
    value
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn form(path: &str, cookie: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body))
        .unwrap()
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn dashboard_sign_in_session_csrf_and_sign_out() {
    let f = fixture();
    let (status, headers, _) = raw(&f.app, get("/", "")).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/signin");
    let (status, headers, page) = raw(&f.app, get("/signin", "")).await;
    assert_eq!(status, 200);
    let csrf = set_cookie(&headers, session::CSRF_COOKIE);
    assert!(page.contains(&csrf));
    let csrf_cookie = format!("{}={csrf}", session::CSRF_COOKIE);
    let body = |key: &keys::AccessKey, csrf: &str| {
        format!(
            "access_key_id={}&secret_access_key={}&csrf={csrf}",
            enc(&key.access_key_id),
            enc(&key.secret_access_key)
        )
    };

    let (status, _, page) = raw(
        &f.app,
        form("/signin", &csrf_cookie, body(&f.reader, "forged")),
    )
    .await;
    assert_eq!(status, 403, "{page}");
    let (status, _, page) = raw(
        &f.app,
        form("/signin", &csrf_cookie, body(&f.writer, &csrf)),
    )
    .await;
    assert_eq!(status, 403, "a send-only principal may not read: {page}");
    let mut wrong = f.reader.clone();
    wrong.secret_access_key.push('x');
    let (status, _, _) = raw(&f.app, form("/signin", &csrf_cookie, body(&wrong, &csrf))).await;
    assert_eq!(status, 403);

    let (status, headers, _) = raw(
        &f.app,
        form("/signin", &csrf_cookie, body(&f.reader, &csrf)),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/");
    let session = format!(
        "{}={}",
        session::SESSION_COOKIE,
        set_cookie(&headers, session::SESSION_COOKIE)
    );
    let (status, _, _) = raw(&f.app, get("/", &session)).await;
    assert_eq!(status, 200);
    let (status, _, info) = raw(&f.app, get("/session", &session)).await;
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["principal"], "reader");
    let (status, _, _) = raw(&f.app, form("/signout", &session, "csrf=forged".into())).await;
    assert_eq!(status, 403);
    let (status, _, _) = raw(&f.app, get("/", &session)).await;
    assert_eq!(status, 200, "a forged sign-out must not end the session");
    let token = info["csrf"].as_str().unwrap();
    let (status, _, _) = raw(&f.app, form("/signout", &session, format!("csrf={token}"))).await;
    assert_eq!(status, 303);
    let (status, _, _) = raw(&f.app, get("/", &session)).await;
    assert_eq!(status, 303);

    let audit = std::fs::read_to_string(&f.audit).unwrap();
    let signins: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["action"] == "roentgen:SignIn")
        .collect();
    assert_eq!(signins.len(), 4);
    assert_eq!(signins.iter().filter(|l| l["allowed"] == true).count(), 1);
}

#[tokio::test]
async fn a_principal_past_its_rate_limit_gets_429_and_others_do_not() {
    let f = fixture();
    let now = now_secs();
    for i in 0..2 {
        let (status, _) = call(&f.app, signed(&f.slow, "/Groups", "{}", now - i)).await;
        assert_eq!(status, 200);
    }
    let mut request = signed(&f.slow, "/Groups", "{}", now - 2);
    request
        .extensions_mut()
        .insert(ConnectInfo("127.0.0.1:5555".parse::<SocketAddr>().unwrap()));
    let response = f.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(response.headers()["x-amzn-ErrorType"], "ThrottledException");
    let (status, body) = call(&f.app, signed(&f.slow, "/Groups", "{}", now - 3)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (429, Some("ThrottledException"))
    );
    assert_eq!(body["message"], "Rate exceeded");
    // Another principal is unaffected.
    let (status, _) = call(&f.app, signed(&f.reader, "/Groups", "{}", now)).await;
    assert_eq!(status, 200);
    assert_eq!(f.auth.throttled(), 2);
    let audit = std::fs::read_to_string(&f.audit).unwrap();
    let throttled = audit
        .lines()
        .filter(|l| l.contains("\"principal\":\"slow\"") && l.contains("ThrottledException"))
        .count();
    assert_eq!(throttled, 2, "{audit}");
}

#[tokio::test]
async fn failed_signatures_from_one_address_are_throttled_past_the_anonymous_limit() {
    let f = fixture();
    let mut wrong = f.reader.clone();
    wrong.secret_access_key.push('x');
    let now = now_secs();
    let mut statuses = Vec::new();
    for i in 0..25 {
        let (status, _) = call(&f.app, signed(&wrong, "/Groups", "{}", now - i)).await;
        statuses.push(status);
    }
    assert_eq!(statuses[..20], [403; 20], "{statuses:?}");
    assert_eq!(statuses[20..], [429; 5], "{statuses:?}");
    // The address's bucket does not hold back a good signature from it.
    let (status, _) = call(&f.app, signed(&f.reader, "/Groups", "{}", now)).await;
    assert_eq!(status, 200);
}

/// Signs in with a key through the form; returns the session cookie.
async fn sign_in(app: &Router, key: &keys::AccessKey) -> String {
    let (_, headers, _) = raw(app, Request::get("/signin").body(Body::empty()).unwrap()).await;
    let csrf = set_cookie(&headers, session::CSRF_COOKIE);
    let body = format!(
        "access_key_id={}&secret_access_key={}&csrf={csrf}",
        enc(&key.access_key_id),
        enc(&key.secret_access_key)
    );
    let (status, headers, page) = raw(
        app,
        form("/signin", &format!("{}={csrf}", session::CSRF_COOKIE), body),
    )
    .await;
    assert_eq!(status, 303, "{page}");
    format!(
        "{}={}",
        session::SESSION_COOKIE,
        set_cookie(&headers, session::SESSION_COOKIE)
    )
}

async fn page(app: &Router, path: &str, cookie: &str) -> (u16, String) {
    let (status, _, body) = raw(app, get(path, cookie)).await;
    (status, body)
}

mod headers;
mod sessions;

#[tokio::test]
async fn a_group_scoped_reader_sees_only_its_groups_on_the_dashboard() {
    let f = fixture();
    let now = now_secs();
    for (name, filter) in [
        ("web", "service(\"frontend-web\")"),
        ("db", "service(\"ledger-db\")"),
    ] {
        let body = serde_json::json!({"GroupName": name, "FilterExpression": filter}).to_string();
        let (status, body) = call(&f.app, signed(&f.admin, "/CreateGroup", &body, now)).await;
        assert_eq!(status, 200, "{body}");
    }
    let t = now as f64;
    let web_trace = format!("1-{:08x}-00000000000000000000a001", now);
    let db_trace = format!("1-{:08x}-00000000000000000000b002", now);
    let docs: Vec<String> = [
        ("frontend-web", &web_trace, "1000000000000001"),
        ("ledger-db", &db_trace, "1000000000000002"),
    ]
    .iter()
    .map(|(name, trace, id)| {
        serde_json::json!({"name": name, "id": id, "trace_id": trace,
            "start_time": t - 2.0, "end_time": t - 1.0})
        .to_string()
    })
    .collect();
    let put = serde_json::json!({ "TraceSegmentDocuments": docs }).to_string();
    let (status, body) = call(&f.app, signed(&f.writer, "/TraceSegments", &put, now)).await;
    assert_eq!(status, 200, "{body}");

    let admin = sign_in(&f.app, &f.admin).await;
    let web = sign_in(&f.app, &f.web_reader).await;
    // Both traces are stored (the admin sees them), within bounded polling.
    let mut both = false;
    for _ in 0..200 {
        let (_, list) = page(&f.app, "/traces?window=1d", &admin).await;
        if list.contains(&web_trace) && list.contains(&db_trace) {
            both = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(both, "the traces were never stored");

    let (status, list) = page(&f.app, "/traces?window=1d", &web).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&web_trace), "{list}");
    assert!(!list.contains(&db_trace), "{list}");
    assert!(!list.contains("All traces"), "no unscoped choice");
    assert!(
        !list.contains("Group: db"),
        "only its own groups are offered"
    );
    let (status, map) = page(&f.app, "/?window=1d", &web).await;
    assert_eq!(status, 200);
    assert!(
        map.contains("frontend-web") && !map.contains("ledger-db"),
        "{map}"
    );
    let (status, _) = page(&f.app, "/traces?window=1d&group=db", &web).await;
    assert_eq!(status, 403);
    let (status, _) = page(&f.app, &format!("/traces/{db_trace}"), &web).await;
    assert_eq!(status, 404);
    let (status, _) = page(&f.app, &format!("/traces/{web_trace}"), &web).await;
    assert_eq!(status, 200);
    let (status, _) = page(&f.app, &format!("/traces/{db_trace}"), &admin).await;
    assert_eq!(status, 200);

    // The audit page: only for xray:GetAuditEvents, linked only for those who may open it.
    assert!(!list.contains("id=\"audit-link\""));
    let (status, denied) = page(&f.app, "/audit", &web).await;
    assert_eq!(status, 403, "{denied}");
    assert!(denied.contains("xray:GetAuditEvents"), "{denied}");
    let (status, audit) = page(&f.app, "/audit?outcome=denied&principal=web-team", &admin).await;
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains("id=\"audit-link\""));
    assert!(
        audit.contains(
            "data-allowed=\"false\" data-action=\"xray:GetAuditEvents\" data-principal=\"web-team\""
        ),
        "{audit}"
    );
    assert!(!audit.contains("data-allowed=\"true\""), "{audit}");
    let (_, allowed) = page(
        &f.app,
        "/audit?outcome=allowed&action=PutTraceSegments",
        &admin,
    )
    .await;
    assert!(
        allowed.contains(
            "data-allowed=\"true\" data-action=\"xray:PutTraceSegments\" data-principal=\"daemon\""
        ),
        "{allowed}"
    );
}

#[tokio::test]
async fn audit_events_api_pages_through_the_log_for_those_allowed() {
    let f = fixture();
    let now = now_secs();
    let (status, body) = call(&f.app, signed(&f.writer, "/AuditEvents", "{}", now)).await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (403, Some("AccessDeniedException"))
    );
    for i in 0..3 {
        let (status, _) = call(&f.app, signed(&f.writer, "/Groups", "{}", now - i)).await;
        assert_eq!(status, 403);
    }
    let ask = r#"{"Principal":"daemon","Allowed":false,"Action":"GetGroups","MaxResults":2}"#;
    let (status, first) = call(&f.app, signed(&f.admin, "/AuditEvents", ask, now)).await;
    assert_eq!(status, 200, "{first}");
    let events = first["AuditEvents"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{first}");
    assert!(events.iter().all(|e| e["action"] == "xray:GetGroups"
        && e["allowed"] == false
        && e["principal"] == "daemon"));
    assert_eq!(first["NextToken"], "2");
    let ask = r#"{"Principal":"daemon","Allowed":false,"Action":"GetGroups","NextToken":"2"}"#;
    let (status, rest) = call(&f.app, signed(&f.admin, "/AuditEvents", ask, now - 1)).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["AuditEvents"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest["NextToken"].is_null());
    let (status, bad) = call(
        &f.app,
        signed(&f.admin, "/AuditEvents", r#"{"NextToken":"x"}"#, now - 2),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn the_audit_page_says_when_there_is_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("data")).unwrap());
    let state = crate::api::AppState::new(store, None);
    let open = crate::dashboard::router(state.clone());
    let (status, _, body) = raw(&open, Request::get("/audit").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    assert!(body.contains("Authentication is off"), "{body}");
    assert!(!body.contains("id=\"audit-link\""), "{body}");

    let admin = new_key(0);
    let file = KeysFile {
        default_rate_limit: None,
        anonymous_rate_limit: None,
        principals: vec![Principal {
            name: "admin".into(),
            policies: vec![allow_policy(&["xray:*".into()])],
            keys: vec![admin.clone()],
            rate_limit: None,
        }],
    };
    let keys_file = dir.path().join("keys.json");
    file.save(&keys_file).unwrap();
    let auth = Arc::new(
        Auth::open(AuthConfig {
            keys_file,
            audit_log: None,
            max_skew: Duration::from_secs(300),
            metrics_on_loopback: false,
        })
        .unwrap(),
    );
    let app = protect(crate::dashboard::router(state), auth);
    let session = sign_in(&app, &admin).await;
    let (status, body) = page(&app, "/audit", &session).await;
    assert_eq!(status, 200);
    assert!(body.contains("No audit log is configured"), "{body}");
    assert!(body.contains("id=\"audit-link\""), "{body}");
}
