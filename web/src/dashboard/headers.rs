//! The security headers every dashboard response carries (pages, sign-in, error pages and
//! assets): one list, applied by one layer wherever dashboard responses are made.
//!
//! The policy allows only the collector's own origin for everything, so the pages may carry no
//! inline code: no `<script>` bodies, no `on...=` handlers and no `style="..."` attributes (a
//! timeline row's depth and bar come as `data-` attributes that the embedded script turns into
//! CSS variables through the CSSOM, which a policy does not govern). `frame-ancestors 'none'`
//! and `X-Frame-Options: DENY` keep other sites from framing the pages (clickjacking).

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HeaderName, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::Response;

/// The `Content-Security-Policy` of every dashboard response.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Every header the layer sets, with its value.
pub const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
    (X_FRAME_OPTIONS, "DENY"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "same-origin"),
];

/// Sets [`SECURITY_HEADERS`] on a response (replacing any earlier values).
pub async fn set_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Wraps `router` so that every response it makes carries [`SECURITY_HEADERS`].
pub fn protect_pages<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(axum::middleware::map_response(set_security_headers))
}

/// Test helpers shared with the authentication layer's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::SECURITY_HEADERS;

    /// Panics unless `headers` carry every security header with its value.
    pub(crate) fn assert_protected(headers: &axum::http::HeaderMap, what: &str) {
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(
                headers.get(&name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{what}: {name}"
            );
        }
    }

    /// Panics if `html` holds code the policy would refuse: a `<script>` body, an `on...`
    /// handler or `style` attribute, a `<style>` element, or a `javascript:` URL.
    pub(crate) fn assert_no_inline_code(html: &str, what: &str) {
        let lower = html.to_ascii_lowercase();
        for tag in lower.split('<').skip(1).filter_map(|t| t.split_once('>')) {
            let mut words = tag.0.split_whitespace();
            let name = words.next().unwrap_or_default();
            let attributes: Vec<&str> = words
                .map(|w| w.split_once('=').map_or(w, |(n, _)| n))
                .collect();
            assert!(
                name != "script" || attributes.contains(&"src"),
                "{what}: inline script <{}>",
                tag.0
            );
            assert!(name != "style", "{what}: a style element");
            for a in attributes {
                assert!(
                    !a.starts_with("on") && a != "style",
                    "{what}: attribute {a} in <{}>",
                    tag.0
                );
            }
        }
        assert!(!lower.contains("javascript:"), "{what}: a javascript: URL");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::testing::{assert_no_inline_code, assert_protected};

    #[tokio::test]
    async fn every_page_asset_and_error_page_carries_the_headers_and_no_inline_code() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(crate::store::sqlite::SqliteStore::open(&dir.path().join("data")).unwrap());
        let state = crate::api::AppState::new(store, None);
        let app = crate::api::router(state.clone()).merge(crate::dashboard::router(state));
        let start = super::super::now() - 60.0;
        let docs = crate::synth::shop_trace(4, start);
        let first: serde_json::Value = serde_json::from_str(&docs[0]).unwrap();
        let (trace, row) = (
            first["trace_id"].as_str().unwrap(),
            first["id"].as_str().unwrap(),
        );
        let put = serde_json::json!({ "TraceSegmentDocuments": docs }).to_string();
        let request = Request::post("/TraceSegments")
            .body(Body::from(put))
            .unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), 200);

        for (path, status) in [
            ("/?window=1h", 200),
            ("/traces?window=1h", 200),
            (&format!("/traces/{trace}") as &str, 200),
            (&format!("/traces/{trace}/rows/{row}"), 200),
            ("/traces/1-00000000-000000000000000000000000", 404),
            ("/traces?filter=(((", 200),
            ("/audit", 200),
            ("/assets/app.css", 200),
            ("/assets/app.js", 200),
        ] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{path}");
            assert_protected(response.headers(), path);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            if !path.starts_with("/assets/") {
                assert_no_inline_code(&String::from_utf8_lossy(&body), path);
            }
        }
    }

    #[test]
    fn the_inline_code_check_finds_what_the_policy_refuses() {
        for bad in [
            "<script>alert(1)</script>",
            "<a onclick=\"x()\">",
            "<div style=\"left:1%\">",
            "<style>p{}</style>",
            "<a href=\"javascript:x()\">",
        ] {
            let caught = std::panic::catch_unwind(|| assert_no_inline_code(bad, "bad"));
            assert!(caught.is_err(), "{bad}");
        }
        assert_no_inline_code(
            "<script src=\"/assets/app.js\" defer></script><p class=\"x\"> one=two style= </p>",
            "good",
        );
    }
}
