//! Starting the real `roentgen-daemon` binary for end-to-end tests, reading its `/metrics`, and
//! sending datagrams to it.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use crate::{Process, binary, http};

/// A running daemon process and its bound addresses.
pub struct Daemon {
    /// The process (killed on drop).
    pub process: Process,
    /// UDP address, e.g. `127.0.0.1:40000`.
    pub udp: String,
    /// TCP address (sampling proxy and metrics).
    pub tcp: String,
    /// OTLP/HTTP address (`/v1/traces`).
    pub otlp_http: String,
    /// OTLP/gRPC address (`TraceService/Export`).
    pub otlp_grpc: String,
}

impl Daemon {
    /// Starts the daemon on ephemeral loopback ports, forwarding to `endpoint`, with extra
    /// command-line options; waits for its `listening` line.
    pub fn start(endpoint: &str, extra: &[&str]) -> Self {
        let mut command = Command::new(binary("roentgen-daemon"));
        command
            .args(["--bind", "127.0.0.1:0", "--bind-tcp", "127.0.0.1:0"])
            .args(["--otlp-http", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0"])
            .args(["--endpoint", endpoint])
            .args(["--log-level", "info"])
            .args(extra)
            .env_remove("ROENTGEN_DAEMON_CONFIG");
        let process = Process::start(command);
        let line = process.wait_for_line("roentgen-daemon listening", Duration::from_secs(30));
        Self {
            udp: Process::field(&line, "udp"),
            tcp: Process::field(&line, "tcp"),
            otlp_http: Process::field(&line, "otlp_http"),
            otlp_grpc: Process::field(&line, "otlp_grpc"),
            process,
        }
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        let response = http::request(&self.tcp, "GET", "/metrics", &[], "");
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    }

    /// One metric's value (a line `name value`, `name` including any labels), 0 if absent.
    pub fn metric(&self, name: &str) -> u64 {
        metric(&self.metrics(), name)
    }

    /// A UDP socket connected to the daemon.
    pub fn socket(&self) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        socket.connect(&self.udp).expect("connect UDP");
        socket
    }

    /// Kills the process with SIGKILL (no clean shutdown, nothing flushed) and reaps it.
    pub fn kill9(mut self) {
        let child = self.process.child();
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the final
    /// `roentgen-daemon stopped ...` line.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.process.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let line = self
            .process
            .wait_for_line("roentgen-daemon stopped", Duration::from_secs(60));
        let code = self
            .process
            .child()
            .wait()
            .expect("wait for the daemon")
            .code();
        (code, line)
    }
}

/// Reads `name value` from Prometheus text (exact name with labels); 0 if absent.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The Python interpreter with the official X-Ray SDK (`$ROENTGEN_PYTHON`).
pub fn python() -> String {
    std::env::var("ROENTGEN_PYTHON")
        .unwrap_or_else(|_| format!("{}/../.venv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

/// The `node_modules` folder with the official X-Ray SDK (`$ROENTGEN_NODE_MODULES`).
pub fn node_modules() -> String {
    std::env::var("ROENTGEN_NODE_MODULES")
        .unwrap_or_else(|_| format!("{}/node/node_modules", env!("CARGO_MANIFEST_DIR")))
}
