//! Principals and their access keys: a JSON file written with mode 0600 (SigV4 needs the secret
//! itself to check a signature, so it cannot be hashed), loaded into a [`Keyring`] for lookups,
//! and the `roentgen-web keys create|list|revoke` command that edits it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::limit::{self, Limit, RateLimit};
use super::policy::{Policy, PolicyDocument, PolicyError};

/// One access key of a principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    /// Public id, e.g. `RKIA...`.
    pub access_key_id: String,
    /// The secret (never logged).
    pub secret_access_key: String,
    /// Creation time, epoch seconds.
    pub created: u64,
    /// Revoked keys stay listed but no longer authenticate.
    #[serde(default = "active")]
    pub active: bool,
}

fn active() -> bool {
    true
}

/// A principal: a name, its policies and its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    /// Name, shown in the audit log.
    pub name: String,
    /// IAM-style policy documents.
    #[serde(default)]
    pub policies: Vec<PolicyDocument>,
    /// Access keys (several during a rotation).
    #[serde(default)]
    pub keys: Vec<AccessKey>,
    /// Its rate limit; the file's `default_rate_limit` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// The keys file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeysFile {
    /// Principals.
    pub principals: Vec<Principal>,
    /// Rate limit of principals without their own (500 requests/s, burst 1000 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_rate_limit: Option<RateLimit>,
    /// Rate limit per source address of unsigned and refused requests (50/s, burst 100 when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_rate_limit: Option<RateLimit>,
}

/// Why the keys file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a keys file.
    #[error("{path}: not a keys file: {source}")]
    Json {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_json::Error,
    },
    /// A policy is invalid.
    #[error("principal {principal}: {source}")]
    Policy {
        /// Principal.
        principal: String,
        /// Cause.
        source: PolicyError,
    },
    /// An access key id appears twice.
    #[error("access key {0} appears twice")]
    Duplicate(String),
    /// No such key.
    #[error("no access key {0}")]
    NoSuchKey(String),
    /// A rate limit is invalid.
    #[error("{place}: {message}")]
    RateLimit {
        /// Principal or setting.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// A policy file given to `keys create` is unusable.
    #[error("{0}")]
    PolicyFile(String),
    /// Writing the command's output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

impl KeysFile {
    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, KeysError> {
        let io = |source| KeysError::Io {
            path: path.to_owned(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(e)),
        };
        warn_if_readable_by_others(path);
        serde_json::from_str(&text).map_err(|source| KeysError::Json {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeysError> {
        let io = |source| KeysError::Io {
            path: path.to_owned(),
            source,
        };
        let text = serde_json::to_string_pretty(self).map_err(|source| KeysError::Json {
            path: path.to_owned(),
            source,
        })?;
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "keys file is readable by other users: chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A principal ready for requests.
#[derive(Debug)]
pub struct LoadedPrincipal {
    /// Name.
    pub name: String,
    /// Compiled policies.
    pub policies: Vec<Policy>,
    /// Its rate limit.
    pub limit: Limit,
}

/// Active keys by id, each with its principal.
#[derive(Debug)]
pub struct Keyring {
    keys: HashMap<String, (String, Arc<LoadedPrincipal>)>,
    /// The limit per source address for unsigned and refused requests.
    pub anonymous: Limit,
}

fn compile_limit(
    limit: Option<&RateLimit>,
    fallback: Limit,
    place: &str,
) -> Result<Limit, KeysError> {
    limit.map_or(Ok(fallback), |l| {
        l.compile().map_err(|message| KeysError::RateLimit {
            place: place.to_owned(),
            message,
        })
    })
}

impl Keyring {
    /// Builds the lookup table from a keys file, validating its policies.
    pub fn new(file: &KeysFile) -> Result<Self, KeysError> {
        let mut keys = HashMap::new();
        let default = compile_limit(
            file.default_rate_limit.as_ref(),
            Limit::Bucket {
                rate: limit::DEFAULT_RATE,
                burst: limit::DEFAULT_BURST,
            },
            "default_rate_limit",
        )?;
        let anonymous = compile_limit(
            file.anonymous_rate_limit.as_ref(),
            Limit::Bucket {
                rate: limit::ANONYMOUS_RATE,
                burst: limit::ANONYMOUS_BURST,
            },
            "anonymous_rate_limit",
        )?;
        for p in &file.principals {
            let policies = p
                .policies
                .iter()
                .map(Policy::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| KeysError::Policy {
                    principal: p.name.clone(),
                    source,
                })?;
            let loaded = Arc::new(LoadedPrincipal {
                name: p.name.clone(),
                policies,
                limit: compile_limit(
                    p.rate_limit.as_ref(),
                    default,
                    &format!("principal {}", p.name),
                )?,
            });
            for k in p.keys.iter().filter(|k| k.active) {
                if keys
                    .insert(
                        k.access_key_id.clone(),
                        (k.secret_access_key.clone(), loaded.clone()),
                    )
                    .is_some()
                {
                    return Err(KeysError::Duplicate(k.access_key_id.clone()));
                }
            }
        }
        Ok(Self { keys, anonymous })
    }

    /// The secret and principal of an active key.
    pub fn get(&self, access_key_id: &str) -> Option<(&str, &Arc<LoadedPrincipal>)> {
        self.keys.get(access_key_id).map(|(s, p)| (s.as_str(), p))
    }
}

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_text(prefix: &str, chars: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    let mut s = prefix.to_owned();
    for _ in 0..len {
        s.push(chars[rng.random_range(0..chars.len())] as char);
    }
    s
}

/// A new access key (`RKIA` + 16 characters, 40-character secret) made from the OS's randomness.
pub fn new_key(now: u64) -> AccessKey {
    AccessKey {
        access_key_id: random_text("RKIA", ID_CHARS, 16),
        secret_access_key: random_text("", SECRET_CHARS, 40),
        created: now,
        active: true,
    }
}

/// A policy allowing `actions` on `*`.
pub fn allow_policy(actions: &[String]) -> PolicyDocument {
    PolicyDocument {
        version: Some("2012-10-17".to_owned()),
        statement: vec![super::policy::Statement {
            sid: None,
            effect: super::policy::Effect::Allow,
            action: super::policy::OneOrMany::Many(actions.to_vec()),
            resource: None,
            condition: None,
        }],
    }
}

/// `roentgen-web keys ...` arguments.
#[derive(Debug, clap::Parser)]
#[command(
    name = "roentgen-web keys",
    about = "Manage principals and access keys"
)]
pub struct KeysArgs {
    /// The keys file (created with mode 0600 if missing).
    #[arg(
        long,
        env = "ROENTGEN_WEB_AUTH_KEYS",
        default_value = "roentgen-keys.json"
    )]
    pub keys_file: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// A keys subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Creates a key for a principal (creating the principal if new); prints the secret once.
    Create {
        /// Principal name.
        #[arg(long)]
        principal: String,
        /// Policy document (JSON file) to attach; replaces the principal's policies.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Shortcut for an Allow policy on `*`: actions such as `xray:PutTraceSegments`,
        /// `xray:Get*`, `xray:*` (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        allow: Vec<String>,
        /// The principal's rate limit: `RATE` or `RATE:BURST` requests per second, or
        /// `unlimited` (default: the file's `default_rate_limit`).
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<RateLimit>,
    },
    /// Lists principals and key ids (no secrets).
    List,
    /// Revokes an access key.
    Revoke {
        /// The access key id.
        access_key_id: String,
    },
}

/// Parses `unlimited`, `RATE` or `RATE:BURST`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(RateLimit::unlimited());
    }
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| format!("{t:?} is not a number (use RATE, RATE:BURST or unlimited)"))
    };
    let limit = match text.split_once(':') {
        Some((rate, burst)) => RateLimit::per_second(number(rate)?, number(burst)?),
        None => RateLimit::Bucket {
            requests_per_second: number(text)?,
            burst: None,
        },
    };
    limit.compile()?;
    Ok(limit)
}

/// Runs a keys command, writing its output to `out`.
pub fn run(args: KeysArgs, out: &mut dyn Write) -> Result<(), KeysError> {
    let path = &args.keys_file;
    let mut file = KeysFile::load(path)?;
    match args.command {
        KeysCommand::Create {
            principal,
            policy,
            allow,
            rate_limit,
        } => {
            let mut policies = Vec::new();
            if let Some(p) = policy {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| KeysError::PolicyFile(format!("{}: {e}", p.display())))?;
                let doc: PolicyDocument = serde_json::from_str(&text)
                    .map_err(|e| KeysError::PolicyFile(format!("{}: {e}", p.display())))?;
                Policy::compile(&doc)
                    .map_err(|e| KeysError::PolicyFile(format!("{}: {e}", p.display())))?;
                policies.push(doc);
            }
            if !allow.is_empty() {
                policies.push(allow_policy(&allow));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let key = new_key(now);
            let index = match file.principals.iter().position(|p| p.name == principal) {
                Some(i) => i,
                None => {
                    file.principals.push(Principal {
                        name: principal.clone(),
                        policies: Vec::new(),
                        keys: Vec::new(),
                        rate_limit: None,
                    });
                    file.principals.len() - 1
                }
            };
            let entry = &mut file.principals[index];
            if !policies.is_empty() {
                entry.policies = policies;
            }
            if rate_limit.is_some() {
                entry.rate_limit = rate_limit;
            }
            entry.keys.push(key.clone());
            Keyring::new(&file)?;
            file.save(path)?;
            writeln!(out, "principal={principal}")?;
            writeln!(out, "access_key_id={}", key.access_key_id)?;
            writeln!(out, "secret_access_key={}", key.secret_access_key)?;
        }
        KeysCommand::List => {
            for p in &file.principals {
                let limit = match p.rate_limit {
                    None => "default".to_owned(),
                    Some(RateLimit::Unlimited(_)) => "unlimited".to_owned(),
                    Some(RateLimit::Bucket {
                        requests_per_second,
                        burst,
                    }) => match burst {
                        Some(b) => format!("{requests_per_second}:{b}"),
                        None => requests_per_second.to_string(),
                    },
                };
                for k in &p.keys {
                    writeln!(
                        out,
                        "{}\t{}\t{}\tcreated={}\trate_limit={limit}",
                        p.name,
                        k.access_key_id,
                        if k.active { "active" } else { "revoked" },
                        k.created
                    )?;
                }
            }
        }
        KeysCommand::Revoke { access_key_id } => {
            let key = file
                .principals
                .iter_mut()
                .flat_map(|p| p.keys.iter_mut())
                .find(|k| k.access_key_id == access_key_id)
                .ok_or_else(|| KeysError::NoSuchKey(access_key_id.clone()))?;
            key.active = false;
            file.save(path)?;
            writeln!(out, "revoked {access_key_id}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn keys(dir: &Path, args: &[&str]) -> String {
        let mut v = vec!["keys", "--keys-file"];
        let file = dir.join("keys.json");
        v.push(file.to_str().unwrap());
        v.extend_from_slice(args);
        let mut out = Vec::new();
        run(KeysArgs::parse_from(v), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rate_limits_from_the_command_line_and_the_file() {
        assert_eq!(
            parse_rate_limit("5:10").unwrap(),
            RateLimit::per_second(5.0, 10.0)
        );
        assert_eq!(
            parse_rate_limit("unlimited").unwrap(),
            RateLimit::unlimited()
        );
        assert!(parse_rate_limit("fast").is_err());
        assert!(parse_rate_limit("0").is_err());
        let dir = tempfile::tempdir().unwrap();
        keys(
            dir.path(),
            &[
                "create",
                "--principal",
                "slow",
                "--allow",
                "xray:GetGroups",
                "--rate-limit",
                "2:4",
            ],
        );
        assert!(keys(dir.path(), &["list"]).contains("\trate_limit=2:4"));
        let file = KeysFile::load(&dir.path().join("keys.json")).unwrap();
        assert_eq!(
            file.principals[0].rate_limit,
            Some(RateLimit::per_second(2.0, 4.0))
        );
        let mut bad = file.clone();
        bad.anonymous_rate_limit = Some(RateLimit::per_second(-1.0, 4.0));
        assert!(matches!(
            Keyring::new(&bad),
            Err(KeysError::RateLimit { .. })
        ));
    }

    #[test]
    fn create_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let out = keys(
            dir.path(),
            &[
                "create",
                "--principal",
                "daemon",
                "--allow",
                "xray:PutTraceSegments",
            ],
        );
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("access_key_id="))
            .unwrap()
            .to_owned();
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("secret_access_key="))
            .unwrap()
            .to_owned();
        assert!(id.starts_with("RKIA") && id.len() == 20, "{id}");
        assert_eq!(secret.len(), 40);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let list = keys(dir.path(), &["list"]);
        assert!(list.contains(&id) && list.contains("active"), "{list}");
        assert!(!list.contains(&secret), "list must not show secrets");
        let ring = Keyring::new(&KeysFile::load(&dir.path().join("keys.json")).unwrap()).unwrap();
        let (s, p) = ring.get(&id).unwrap();
        assert_eq!(s, secret);
        assert_eq!(p.name, "daemon");
        keys(dir.path(), &["revoke", &id]);
        let ring = Keyring::new(&KeysFile::load(&dir.path().join("keys.json")).unwrap()).unwrap();
        assert!(ring.get(&id).is_none());
        assert!(keys(dir.path(), &["list"]).contains("revoked"));
    }
}
