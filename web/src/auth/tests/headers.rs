//! With authentication on, the sign-in page, the redirect to it, refusals and signed API
//! answers carry the dashboard's security headers too.

use super::*;
use crate::dashboard::headers::testing::{assert_no_inline_code, assert_protected};

#[tokio::test]
async fn sign_in_redirects_refusals_and_forbidden_pages_carry_the_security_headers() {
    let f = fixture();
    let web_team = sign_in(&f.app, &f.web_reader).await;
    let refused_signin = form(
        "/signin",
        "roentgen_csrf=a",
        "access_key_id=x&secret_access_key=y&csrf=b".into(),
    );
    let now = now_secs();
    for (what, request, status) in [
        ("sign-in form", get("/signin", ""), 200),
        ("refused sign-in", refused_signin, 403),
        ("redirect to sign-in", get("/traces", ""), 303),
        ("no session", get("/session", ""), 401),
        ("forbidden page", get("/audit", &web_team), 403),
        (
            "signed API call",
            signed(&f.reader, "/Groups", "{}", now),
            200,
        ),
        (
            "refused API call",
            signed(&f.writer, "/Groups", "{}", now),
            403,
        ),
    ] {
        let (got, headers, body) = raw(&f.app, request).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_protected(&headers, what);
        assert_no_inline_code(&body, what);
    }
}
