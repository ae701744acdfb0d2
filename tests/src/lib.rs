//! The sandbox for end-to-end tests: finds the workspace's real binaries, starts them as child
//! processes on ephemeral loopback ports, and stops them when the test ends.
//!
//! Binaries are built before the tests run (`scripts/test` runs `cargo build --workspace
//! --bins --examples`); a missing binary is reported with that command, not silently skipped.

pub mod collector_stub;
pub mod daemon;
pub mod http;
pub mod web;
pub mod webhook;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Directory holding the workspace's built binaries (`target/debug` or `target/release`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-HASH -> target/debug
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary, e.g. `roentgen-daemon`; panics with the build command if absent.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins --examples` first (scripts/test does)",
        path.display()
    );
    path
}

/// Path of a workspace example binary, e.g. `axum_app`.
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins --examples` first (scripts/test does)",
        path.display()
    );
    path
}

/// Path of a file under `tests/data/`.
pub fn data(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(relative)
}

/// A child process that is killed when dropped, with its stdout read line by line.
pub struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Process {
    /// Starts `command` with stdout piped (stderr inherited, so its logs show in test output).
    pub fn start(mut command: Command) -> Self {
        let name = command.get_program().to_string_lossy().into_owned();
        command.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, name }
    }

    /// Waits (up to `timeout`) for a stdout line containing `needle`, and returns it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("{} did not print {needle:?} within {timeout:?}", self.name),
            }
        }
    }

    /// Reads a `key=value` field from a line such as `listening udp=127.0.0.1:2000`.
    pub fn field(line: &str, key: &str) -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
            .to_owned()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Mutable access to the child, e.g. to wait for its exit status.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `condition` every 20 ms until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
