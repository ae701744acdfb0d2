//! The embedded daemon's key: with `--auth-keys`, the all-in-one's daemon signs like any other
//! daemon, with the key `--daemon-access-key-id` names, read from the keys file and checked
//! against its principal's policies at start, so a refusal is an error now, never a silent loss
//! of every document later.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use roentgen_daemon::forwarder::sign::Credentials;

use super::DemoError;
use crate::auth::keys::{Keyring, KeysFile};
use crate::auth::policy::{Decision, RequestContext, evaluate};

/// The action without which the embedded daemon is useless.
const REQUIRED: &str = "xray:PutTraceSegments";
/// The actions the embedded daemon also calls (sampling proxy, telemetry).
const WANTED: [&str; 3] = [
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
];

/// The credentials of `access_key_id` from `keys_file`: an error when the key is not an active
/// key there or its policies do not allow `xray:PutTraceSegments`, a warning naming the
/// sampling and telemetry actions they do not allow.
pub fn daemon_credentials(keys_file: &Path, access_key_id: &str) -> Result<Credentials, DemoError> {
    let refuse =
        |why: String| DemoError::Key(format!("--daemon-access-key-id {access_key_id}: {why}"));
    let keyring = KeysFile::load(keys_file)
        .and_then(|file| Keyring::new(&file))
        .map_err(|e| refuse(e.to_string()))?;
    let (secret, principal) = keyring.get(access_key_id).ok_or_else(|| {
        refuse(format!(
            "not an active key in {} (see `roentgen-web keys list`)",
            keys_file.display()
        ))
    })?;
    // The embedded daemon calls the collector over loopback.
    let allowed = |action: &str| {
        evaluate(
            &principal.policies,
            &RequestContext {
                action,
                resource: "*",
                source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            },
        ) == Decision::Allow
    };
    if !allowed(REQUIRED) {
        return Err(refuse(format!(
            "principal {} is not allowed {REQUIRED}, so every document would be refused",
            principal.name
        )));
    }
    let missing: Vec<&str> = WANTED.into_iter().filter(|a| !allowed(a)).collect();
    if !missing.is_empty() {
        tracing::warn!(
            principal = %principal.name,
            missing = %missing.join(","),
            "the embedded daemon's key lacks these actions: those calls will be refused"
        );
    }
    Ok(Credentials {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret.to_owned(),
        region: "us-east-1".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{Principal, allow_policy, new_key};

    fn keys_file(dir: &Path, actions: &[&str], active: bool) -> (std::path::PathBuf, String) {
        let mut key = new_key(0);
        key.active = active;
        let id = key.access_key_id.clone();
        let file = KeysFile {
            principals: vec![Principal {
                name: "daemon".into(),
                policies: vec![allow_policy(
                    &actions.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
                )],
                keys: vec![key],
                rate_limit: None,
            }],
            ..KeysFile::default()
        };
        let path = dir.join("keys.json");
        file.save(&path).unwrap();
        (path, id)
    }

    #[test]
    fn signs_with_an_active_key_allowed_to_put_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (path, id) = keys_file(dir.path(), &["xray:PutTraceSegments"], true);
        let c = daemon_credentials(&path, &id).unwrap();
        assert_eq!(c.access_key_id, id);
        assert_eq!(c.secret_access_key.len(), 40);
    }

    #[test]
    fn refuses_unknown_revoked_and_unauthorized_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (path, id) = keys_file(dir.path(), &["xray:PutTraceSegments"], false);
        let e = daemon_credentials(&path, &id).unwrap_err().to_string();
        assert!(
            e.contains("--daemon-access-key-id") && e.contains("not an active key"),
            "{e}"
        );
        let e = daemon_credentials(&path, "RKIANOSUCHKEY")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an active key"), "{e}");
        let (path, id) = keys_file(dir.path(), &["xray:Get*"], true);
        let e = daemon_credentials(&path, &id).unwrap_err().to_string();
        assert!(e.contains("not allowed xray:PutTraceSegments"), "{e}");
    }
}
