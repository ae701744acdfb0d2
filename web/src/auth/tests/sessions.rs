//! Dashboard sessions follow the keys file: a revoked key ends its sessions and a narrowed
//! policy applies to a session's next request.

use super::*;

/// Rewrites the fixture's keys file with `edit` and waits out the reload check.
async fn edit_keys(f: &Fixture, edit: impl FnOnce(&mut KeysFile)) {
    let path = &f.auth.config.keys_file;
    let mut file = KeysFile::load(path).unwrap();
    edit(&mut file);
    file.save(path).unwrap();
    tokio::time::sleep(RELOAD_EVERY + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_revoked_key_ends_its_sessions_and_a_narrowed_policy_applies_at_once() {
    let f = fixture();
    let reader = sign_in(&f.app, &f.reader).await;
    let admin = sign_in(&f.app, &f.admin).await;
    assert_eq!(page(&f.app, "/", &reader).await.0, 200);
    assert_eq!(page(&f.app, "/audit", &admin).await.0, 200);

    edit_keys(&f, |file| {
        for p in &mut file.principals {
            match p.name.as_str() {
                "reader" => p.keys.iter_mut().for_each(|k| k.active = false),
                "admin" => p.policies = vec![allow_policy(&["xray:GetTraceSummaries".into()])],
                _ => {}
            }
        }
    })
    .await;

    let (status, headers, _) = raw(&f.app, get("/", &reader)).await;
    assert_eq!(status, 303, "a revoked key's session must end");
    assert_eq!(headers["location"], "/signin");
    assert_eq!(page(&f.app, "/session", &reader).await.0, 401);
    // The narrowed principal keeps its session but loses the audit page.
    assert_eq!(page(&f.app, "/", &admin).await.0, 200);
    let (status, body) = page(&f.app, "/audit", &admin).await;
    assert_eq!(status, 403, "{body}");
    let audit = std::fs::read_to_string(&f.audit).unwrap();
    assert!(
        audit.lines().any(|l| l.contains(&f.admin.access_key_id)
            && l.contains("\"path\":\"/audit\"")
            && l.contains("\"allowed\":false")),
        "a session's page views name its key: {audit}"
    );
}
