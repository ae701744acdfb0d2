//! The audit log, CloudTrail-style: one JSON line per API call or sign-in (who, when, from where,
//! which action on which resource, allowed or denied), appended to a file that is rotated to
//! `FILE.1` .. `FILE.N` when it grows past a size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// Size at which the log is rotated.
pub const ROTATE_BYTES: u64 = 64 * 1024 * 1024;
/// Rotated files kept.
pub const KEEP_FILES: u32 = 5;

/// One audited decision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent<'a> {
    /// Epoch seconds.
    pub time: i64,
    /// The authenticated principal, if the signature was good.
    pub principal: Option<&'a str>,
    /// The access key id presented, if any.
    pub access_key_id: Option<&'a str>,
    /// The caller's address.
    pub source_ip: IpAddr,
    /// `xray:...`.
    pub action: &'a str,
    /// Resource ARN or `*`.
    pub resource: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Whether the call went through.
    pub allowed: bool,
    /// The error type when refused.
    pub error: Option<&'a str>,
}

/// The body of `POST /AuditEvents` (our own API form of the audit page; every field optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuditEventsRequest {
    /// Exactly this principal.
    pub principal: Option<String>,
    /// Actions containing this text (case-insensitive).
    pub action: Option<String>,
    /// Only allowed (`true`) or denied (`false`) events.
    pub allowed: Option<bool>,
    /// Epoch seconds.
    pub start_time: Option<f64>,
    /// Epoch seconds.
    pub end_time: Option<f64>,
    /// From a previous answer.
    pub next_token: Option<String>,
    /// Events per answer (default and most: 100).
    pub max_results: Option<usize>,
}

/// Most events per `POST /AuditEvents` answer.
pub const MAX_RESULTS: usize = 100;

/// `POST /AuditEvents`: matching events, newest first, with a `NextToken` while more follow
/// (the auth layer has already checked `xray:GetAuditEvents`).
pub async fn audit_events(
    axum::extract::State(auth): axum::extract::State<std::sync::Arc<super::Auth>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let invalid = |message: String| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            [("x-amzn-ErrorType", "InvalidRequestException")],
            axum::Json(
                serde_json::json!({"__type": "InvalidRequestException", "message": message}),
            ),
        )
            .into_response()
    };
    let request: AuditEventsRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AuditEventsRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return invalid(e.to_string()),
        }
    };
    let skip = match request.next_token.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return invalid("invalid NextToken".to_owned()),
    };
    let limit = request
        .max_results
        .unwrap_or(MAX_RESULTS)
        .clamp(1, MAX_RESULTS);
    let query = AuditQuery {
        principal: request.principal,
        action: request.action,
        allowed: request.allowed,
        since: request.start_time.map(|t| t.floor() as i64),
        until: request.end_time.map(|t| t.ceil() as i64),
    };
    let found = tokio::task::spawn_blocking(move || {
        auth.audit_log()
            .map(|log| log.search(&query, skip, limit))
            .transpose()
    })
    .await;
    match found {
        Ok(Ok(found)) => {
            let found = found.unwrap_or_default();
            let next = found.more.then(|| (skip + found.events.len()).to_string());
            axum::Json(serde_json::json!({
                "AuditEvents": found.events,
                "NextToken": next,
            }))
            .into_response()
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "reading the audit log failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(error) => {
            tracing::error!(%error, "audit search task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Bytes one search reads at most (then it says so and the window should be narrowed).
pub const SEARCH_BUDGET: u64 = 32 * 1024 * 1024;
/// How far out of time order lines may be written (concurrent requests), in seconds.
const ORDER_SLACK: i64 = 60;
/// Bytes read per step when reading a file backwards.
const CHUNK: u64 = 64 * 1024;

/// One event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Epoch seconds.
    pub time: i64,
    /// The principal, if known.
    #[serde(default)]
    pub principal: Option<String>,
    /// The access key id presented, if any.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The caller's address.
    pub source_ip: String,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The path.
    pub path: String,
    /// Allowed or not.
    pub allowed: bool,
    /// The error type when refused.
    #[serde(default)]
    pub error: Option<String>,
}

/// What to look for in the audit log (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Exactly this principal.
    pub principal: Option<String>,
    /// Actions containing this text (case-insensitive), e.g. `PutTrace`.
    pub action: Option<String>,
    /// Only allowed (`true`) or only denied (`false`) events.
    pub allowed: Option<bool>,
    /// Events at or after this time.
    pub since: Option<i64>,
    /// Events at or before this time.
    pub until: Option<i64>,
}

impl AuditQuery {
    /// Whether an event matches.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.principal
            .as_deref()
            .is_none_or(|p| r.principal.as_deref() == Some(p))
            && self.action.as_deref().is_none_or(|a| {
                r.action
                    .to_ascii_lowercase()
                    .contains(&a.to_ascii_lowercase())
            })
            && self.allowed.is_none_or(|a| r.allowed == a)
            && self.since.is_none_or(|s| r.time >= s)
            && self.until.is_none_or(|u| r.time <= u)
    }
}

/// A page of search results.
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    /// Matching events, newest first.
    pub events: Vec<AuditRecord>,
    /// More matches follow.
    pub more: bool,
    /// The search stopped at [`SEARCH_BUDGET`] (older events were not looked at).
    pub budget_spent: bool,
    /// The search reached events older than the window.
    pub reached_start: bool,
}

/// Calls `f` with each line of `path` from the last to the first, until it returns `false`
/// (then `Ok(false)`) or the budget of bytes runs out. A missing file has no lines.
fn lines_backwards(
    path: &Path,
    budget: &mut u64,
    f: &mut dyn FnMut(&[u8]) -> bool,
) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut pos = file.metadata()?.len();
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 {
        if *budget == 0 {
            return Ok(true);
        }
        let n = CHUNK.min(pos).min(*budget);
        pos -= n;
        *budget -= n;
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&carry);
        let mut end = buf.len();
        while let Some(i) = buf[..end].iter().rposition(|&b| b == b'\n') {
            let line = &buf[i + 1..end];
            if !line.is_empty() && !f(line) {
                return Ok(false);
            }
            end = i;
        }
        buf.truncate(end);
        carry = buf;
    }
    if !carry.is_empty() && !f(&carry) {
        return Ok(false);
    }
    Ok(true)
}

struct Inner {
    file: File,
    size: u64,
}

/// An append-only JSON-lines file with size-based rotation.
pub struct AuditLog {
    path: PathBuf,
    rotate_at: u64,
    inner: Mutex<Inner>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl AuditLog {
    /// Opens (or creates) the log; rotates when it passes `rotate_at` bytes.
    pub fn open(path: &Path, rotate_at: u64) -> std::io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            rotate_at,
            inner: Mutex::new(Inner { file, size }),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as a JSON line.
    pub fn append(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        if inner.size > 0 && inner.size + line.len() as u64 > self.rotate_at {
            self.rotate()?;
            inner.file = open_append(&self.path)?;
            inner.size = 0;
        }
        inner.file.write_all(&line)?;
        inner.size += line.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&self) -> std::io::Result<()> {
        for n in (1..KEEP_FILES).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    /// Events matching `query`, newest first, across the current file and the rotated ones:
    /// skips `skip` matches, returns up to `limit`. Reads backwards from each file's end and
    /// stops at the limit, at an event well before the window, or after [`SEARCH_BUDGET`] bytes.
    pub fn search(
        &self,
        query: &AuditQuery,
        skip: usize,
        limit: usize,
    ) -> std::io::Result<AuditSearch> {
        let mut out = AuditSearch::default();
        let mut budget = SEARCH_BUDGET;
        let mut skipped = 0;
        for n in 0..=KEEP_FILES {
            let path = if n == 0 {
                self.path.clone()
            } else {
                self.rotated(n)
            };
            let done = lines_backwards(&path, &mut budget, &mut |line| {
                let Ok(record) = serde_json::from_slice::<AuditRecord>(line) else {
                    return true;
                };
                if query.since.is_some_and(|s| record.time < s - ORDER_SLACK) {
                    out.reached_start = true;
                    return false;
                }
                if !query.matches(&record) {
                    return true;
                }
                if skipped < skip {
                    skipped += 1;
                    return true;
                }
                if out.events.len() == limit {
                    out.more = true;
                    return false;
                }
                out.events.push(record);
                true
            })?;
            if !done {
                break;
            }
            if budget == 0 {
                out.budget_spent = true;
                break;
            }
        }
        Ok(out)
    }

    /// The last `limit` events of the current file, newest first, as JSON values.
    pub fn tail(&self, limit: usize) -> std::io::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str(l).ok())
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(allowed: bool) -> AuditEvent<'static> {
        AuditEvent {
            time: 1,
            principal: Some("p"),
            access_key_id: Some("RKIA"),
            source_ip: "127.0.0.1".parse().unwrap(),
            action: "xray:GetGroups",
            resource: "*",
            path: "/Groups",
            allowed,
            error: (!allowed).then_some("AccessDeniedException"),
        }
    }

    #[test]
    fn search_reads_backwards_across_rotated_files_with_filters_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 3000).unwrap();
        let names = ["alice", "bob"];
        for i in 0..60i64 {
            let mut e = event(i % 3 != 0);
            e.time = 1000 + i;
            e.principal = Some(names[(i % 2) as usize]);
            log.append(&e).unwrap();
        }
        assert!(dir.path().join("audit.jsonl.2").exists());
        let all = log.search(&AuditQuery::default(), 0, 1000).unwrap();
        let kept: usize = (0..=KEEP_FILES)
            .map(|n| if n == 0 { path.clone() } else { log.rotated(n) })
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().count())
            .sum();
        assert_eq!(all.events.len(), kept);
        assert!(all.events.windows(2).all(|w| w[0].time > w[1].time));
        assert_eq!(all.events[0].time, 1059);
        assert!(!all.more);

        let denied_bob = AuditQuery {
            principal: Some("bob".into()),
            allowed: Some(false),
            ..AuditQuery::default()
        };
        let found = log.search(&denied_bob, 0, 1000).unwrap();
        assert!(!found.events.is_empty());
        assert!(
            found
                .events
                .iter()
                .all(|e| e.principal.as_deref() == Some("bob")
                    && !e.allowed
                    && e.error.as_deref() == Some("AccessDeniedException"))
        );

        let first = log.search(&AuditQuery::default(), 0, 7).unwrap();
        let second = log.search(&AuditQuery::default(), 7, 7).unwrap();
        assert!(first.more && second.more);
        assert_eq!(first.events[6].time, second.events[0].time + 1);

        let window = AuditQuery {
            since: Some(1050),
            until: Some(1054),
            action: Some("getgroups".into()),
            ..AuditQuery::default()
        };
        let found = log.search(&window, 0, 1000).unwrap();
        let times: Vec<i64> = found.events.iter().map(|e| e.time).collect();
        assert_eq!(times, [1054, 1053, 1052, 1051, 1050]);
        assert!(
            log.search(
                &AuditQuery {
                    action: Some("PutTrace".into()),
                    ..AuditQuery::default()
                },
                0,
                10
            )
            .unwrap()
            .events
            .is_empty()
        );
    }

    #[test]
    fn lines_backwards_handles_chunk_boundaries_and_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines");
        let lines: Vec<String> = (0..5000)
            .map(|i| format!("line-{i}-{}", "x".repeat(i % 97)))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut seen = Vec::new();
        let mut budget = u64::MAX;
        assert!(
            lines_backwards(&path, &mut budget, &mut |l| {
                seen.push(String::from_utf8(l.to_vec()).unwrap());
                true
            })
            .unwrap()
        );
        seen.reverse();
        assert_eq!(seen, lines);
        let mut budget = 0;
        let mut count = 0;
        lines_backwards(&path, &mut budget, &mut |_| {
            count += 1;
            true
        })
        .unwrap();
        assert_eq!(count, 0);
        assert!(lines_backwards(&dir.path().join("none"), &mut budget, &mut |_| true).unwrap());
    }

    #[test]
    fn appends_lines_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, 2000).unwrap();
        for i in 0..20 {
            log.append(&event(i % 2 == 0)).unwrap();
        }
        assert!(dir.path().join("audit.jsonl.1").exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 2000);
        let tail = log.tail(100).unwrap();
        assert!(!tail.is_empty());
        assert_eq!(tail[0]["action"], "xray:GetGroups");
        assert_eq!(tail[0]["allowed"], false);
        let all: usize = (0..=KEEP_FILES)
            .map(|n| if n == 0 { path.clone() } else { log.rotated(n) })
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().count())
            .sum();
        assert_eq!(all, 20);
    }
}
