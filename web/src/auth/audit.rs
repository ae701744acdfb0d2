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
