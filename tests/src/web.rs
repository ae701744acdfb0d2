//! The collector in the sandbox: starts `roentgen-web` on an ephemeral loopback port over a
//! data directory, posts X-Ray API requests to it, and kills it with SIGKILL to test crash
//! safety. Also locates the AWS CLI installed by `scripts/setup`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Process, binary};

/// A running `roentgen-web`.
pub struct Collector {
    process: Process,
    /// `127.0.0.1:PORT` it serves on.
    pub address: String,
    /// `http`, or `https` when it serves TLS (its listening line says `https=ADDR`).
    pub scheme: &'static str,
    /// CA bundle that clients such as the AWS CLI verify an HTTPS collector with.
    pub ca_bundle: Option<PathBuf>,
    /// `127.0.0.1:PORT` of the OTLP/gRPC port, when started with `--otlp-grpc`.
    pub otlp_grpc: Option<String>,
}

impl Collector {
    /// Starts `roentgen-web --listen 127.0.0.1:0 --data-dir DIR` plus `extra` arguments and
    /// waits for its `listening` line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(binary("roentgen-web"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn");
        let process = Process::start(cmd);
        let line = process.wait_for_line("roentgen-web listening", Duration::from_secs(60));
        let scheme = if line.contains(" https=") {
            "https"
        } else {
            "http"
        };
        let address = Process::field(&line, scheme);
        let otlp_grpc = line
            .contains(" otlp_grpc=")
            .then(|| Process::field(&line, "otlp_grpc"));
        Self {
            process,
            address,
            scheme,
            ca_bundle: None,
            otlp_grpc,
        }
    }

    /// `http://127.0.0.1:PORT` (or `https://`), for `--endpoint-url`.
    pub fn endpoint_url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// POSTs a JSON body; `None` if the connection failed (e.g. the collector is gone).
    pub fn try_post(&self, path: &str, body: &str) -> Option<(u16, String)> {
        post_to(&self.address, path, body)
    }

    /// POSTs a JSON body and panics unless the connection worked.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.try_post(path, body)
            .unwrap_or_else(|| panic!("POST {path} to {} failed", self.address))
    }

    /// `PutTraceSegments` body for documents given as JSON texts.
    pub fn put_body(documents: &[String]) -> String {
        let list: Vec<String> = documents.iter().map(|d| json_string(d)).collect();
        format!("{{\"TraceSegmentDocuments\":[{}]}}", list.join(","))
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill9(mut self) {
        let child = self.process.child();
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
}

/// POSTs a JSON body to `address`; `None` if the exchange failed (e.g. nobody listens).
pub fn post_to(address: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return None;
    }
    Some((status, body.to_owned()))
}

/// A JSON string literal of `s`.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The AWS CLI from the venv `scripts/setup` made (`$ROENTGEN_PYTHON`'s directory, or
/// `.venv/bin` at the workspace root).
pub fn aws_cli() -> PathBuf {
    let python = std::env::var_os("ROENTGEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    let aws = python
        .parent()
        .map(|d| d.join("aws"))
        .unwrap_or_else(|| PathBuf::from("aws"));
    assert!(
        aws.exists(),
        "{} is missing: run scripts/setup (it installs awscli into .venv)",
        aws.display()
    );
    aws
}

/// Runs `aws xray ARGS` against `collector` with no configuration files, signed with
/// `credentials` (access key id, secret) or with `--no-sign-request` when there are none;
/// returns (success, stdout, stderr).
pub fn aws_xray(
    collector: &Collector,
    credentials: Option<(&str, &str)>,
    region: &str,
    args: &[&str],
) -> (bool, String, String) {
    let mut command = Command::new(aws_cli());
    command
        .arg("xray")
        .args(args)
        .args(["--endpoint-url", &collector.endpoint_url()])
        .args(["--region", region, "--output", "json"])
        .args(
            collector
                .ca_bundle
                .iter()
                .flat_map(|ca| [std::ffi::OsStr::new("--ca-bundle"), ca.as_os_str()]),
        )
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_PAGER", "");
    match credentials {
        Some((id, secret)) => {
            // The collector refuses a signature it has seen (replay cache), and two identical
            // requests signed within one second carry the same signature: repeated calls (a
            // test polling until data arrives) wait for the next second.
            wait_for_a_fresh_signature(&signed_key(collector, id, args));
            command
                .env("AWS_ACCESS_KEY_ID", id)
                .env("AWS_SECRET_ACCESS_KEY", secret);
        }
        None => {
            command.arg("--no-sign-request");
        }
    }
    let out = command.output().expect("run aws");
    if let Some((id, _)) = credentials {
        signed_request_finished(&signed_key(collector, id, args));
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What identifies a signed AWS CLI request for [`wait_for_a_fresh_signature`].
fn signed_key(collector: &Collector, id: &str, args: &[&str]) -> String {
    format!("{} {id} {}", collector.address, args.join(" "))
}

/// When each signed request (endpoint, key and arguments) last finished, in epoch seconds.
static SIGNED: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> =
    std::sync::Mutex::new(None);

fn epoch_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Blocks until the wall clock is past the second in which the same `request` last finished,
/// so it is never signed twice with the same `X-Amz-Date` (its signing happened before it
/// finished, this one's happens after now).
fn wait_for_a_fresh_signature(request: &str) {
    loop {
        let finished = SIGNED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(|m| m.get(request).copied());
        match finished {
            Some(s) if epoch_second() <= s => std::thread::sleep(Duration::from_millis(50)),
            _ => return,
        }
    }
}

/// Records that `request` finished now (see [`wait_for_a_fresh_signature`]).
fn signed_request_finished(request: &str) {
    SIGNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(Default::default)
        .insert(request.to_owned(), epoch_second());
}
