//! Dashboard sessions over the real collector follow its keys file: `roentgen-web keys revoke`
//! ends a key's sessions within the reload check (a second), and a policy narrowed in the file
//! applies to an existing session's next page.

use std::time::{Duration, Instant};

use roentgen_tests::eventually;
use serde_json::Value;

use crate::security::{create_key, page, revoke_key, sign_in, start_collector};

/// The keys file is checked once a second; the rest is slack for a busy machine.
const NOTICED_WITHIN: Duration = Duration::from_secs(2);

/// Polls `path` with `session` until it answers `status`; how long that took after `since`.
fn answers_within(
    address: &str,
    path: &str,
    session: &str,
    status: u16,
    since: Instant,
) -> Duration {
    eventually(NOTICED_WITHIN, || {
        (page(address, path, session).status == status).then(|| since.elapsed())
    })
    .unwrap_or_else(|| panic!("{path} never answered {status} within {NOTICED_WITHIN:?}"))
}

#[test]
fn revoking_a_key_ends_its_dashboard_sessions_and_a_narrowed_policy_applies_at_once() {
    let dir = tempfile::tempdir().expect("test setup");
    let keys = dir.path().join("keys.json");
    let oncall = create_key(&keys, "oncall", "xray:Get*");
    let admin = create_key(&keys, "admin", "xray:*");
    let (collector, _) = start_collector(dir.path());
    let address = collector.address.as_str();
    let oncall_session = sign_in(address, &oncall);
    let admin_session = sign_in(address, &admin);
    assert_eq!(page(address, "/", &oncall_session).status, 200);
    assert_eq!(page(address, "/audit", &admin_session).status, 200);

    revoke_key(&keys, &oncall.id);
    let revoked = Instant::now();
    answers_within(address, "/", &oncall_session, 303, revoked);
    let again = page(address, "/traces", &oncall_session);
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(again.header("location"), Some("/signin"));
    assert_eq!(page(address, "/session", &oncall_session).status, 401);
    assert_eq!(
        page(address, "/", &admin_session).status,
        200,
        "another key's session is untouched"
    );

    // Narrow the admin's policy in the file itself: its session keeps the pages it may still
    // read and loses the audit page.
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(&keys).expect("keys file")).expect("json");
    let principals = file["principals"].as_array_mut().expect("principals");
    for p in principals.iter_mut().filter(|p| p["name"] == "admin") {
        p["policies"] = serde_json::json!([{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "xray:GetTraceSummaries"}]}]);
    }
    std::fs::write(&keys, file.to_string()).expect("rewrite keys file");
    let narrowed = Instant::now();
    answers_within(address, "/audit", &admin_session, 403, narrowed);
    assert_eq!(page(address, "/", &admin_session).status, 200);
}
