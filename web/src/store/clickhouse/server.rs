//! A throwaway ClickHouse server for tests and benchmarks, on free loopback ports, with its
//! configuration and data under a fresh temporary directory, optionally as one shard of a named
//! cluster of such servers. Two engines: the `clickhouse-server` program (Debian's 18.16 here),
//! and ClickHouse 26.9 from PyPI's `chdb-core` (`clickhouse-local` built as a Python extension,
//! told to `SYSTEM START LISTEN` and kept serving by a query that blocks on a FIFO).
//!
//! The server runs under a small `sh` guard that holds the read end of a pipe from this process:
//! when the [`LocalServer`] is dropped, or this process dies in any way, the pipe closes and the
//! guard stops the server and removes its directory, so no server outlives its test.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An I/O step failed (temporary directory, ports, spawning).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer `/ping` in time.
    #[error("clickhouse-server did not become ready: {0}")]
    NotReady(String),
}

/// Which ClickHouse a [`LocalServer`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// The `clickhouse-server` program on `PATH`.
    Server,
    /// The `chdb-core` package (ClickHouse 26.9), imported by this Python interpreter.
    Chdb(PathBuf),
}

impl Engine {
    /// ClickHouse from `chdb-core`, run by `$ROENTGEN_PYTHON` or else the workspace's
    /// `.venv/bin/python` (where `scripts/setup` installs it).
    pub fn chdb() -> Self {
        let python = std::env::var_os("ROENTGEN_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"))
            });
        Engine::Chdb(python)
    }
}

/// Runs ClickHouse from `chdb-core` as a server: the private one-shot entry point is the only
/// one that opens listeners; the final `SELECT` blocks reading an empty FIFO so the listeners
/// stay up until the process is stopped.
const CHDB_LAUNCHER: &str = r#"import sys
import chdb._chdb as engine
directory = sys.argv[1]
engine.query(
    "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    f"SELECT count() FROM file('{directory}/hold', 'LineAsString')",
    "TabSeparated",
    path=f"{directory}/data",
)
"#;

/// A running local ClickHouse server; stopped and cleaned up on drop.
#[derive(Debug)]
pub struct LocalServer {
    guard: Option<Child>,
    dir: PathBuf,
    /// HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// Native protocol port on 127.0.0.1 (used between shards).
    pub tcp_port: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn fresh_dir() -> std::io::Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "roentgen-clickhouse-{}-{n}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A user with a password on every local server, for tests of the credentials' path.
pub const PASSWORD_USER: (&str, &str) = ("roentgen_pw", "s3cret-roentgen");

const USERS: &str = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <roentgen_pw>
      <password>s3cret-roentgen</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </roentgen_pw>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#;

impl LocalServer {
    /// Starts one standalone `clickhouse-server`.
    pub fn start() -> Result<Self, ServerError> {
        Self::start_engine(&Engine::Server)
    }

    /// Starts one standalone server of `engine`.
    pub fn start_engine(engine: &Engine) -> Result<Self, ServerError> {
        let mut all = Self::cluster_of(engine, "roentgen", 1)?;
        all.pop()
            .ok_or_else(|| ServerError::NotReady("no server".into()))
    }

    /// Starts `shards` servers that all know the cluster `name`, one shard per server (one
    /// replica each), for `Distributed` tables.
    pub fn cluster(name: &str, shards: usize) -> Result<Vec<Self>, ServerError> {
        Self::cluster_of(&Engine::Server, name, shards)
    }

    /// [`LocalServer::cluster`] of `engine` servers.
    pub fn cluster_of(
        engine: &Engine,
        name: &str,
        shards: usize,
    ) -> Result<Vec<Self>, ServerError> {
        // Free ports are picked before the servers bind them, so another process can take
        // one in between: try again with fresh ports a few times.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_cluster(engine, name, shards) {
                Ok(servers) => return Ok(servers),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ServerError::NotReady("no attempt".into())))
    }

    /// Starts one standalone server whose data lives in `dir` and is kept when the server
    /// stops, so a later start finds it again (benchmark datasets built once).
    pub fn start_in(dir: &std::path::Path) -> Result<Self, ServerError> {
        Self::start_engine_in(&Engine::Server, dir)
    }

    /// [`LocalServer::start_in`] for `engine`.
    pub fn start_engine_in(engine: &Engine, dir: &std::path::Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(dir)?;
        let mut last = None;
        for _ in 0..3 {
            let (http, tcp) = (free_port()?, free_port()?);
            let server = Self::spawn(engine, dir.to_path_buf(), false, http, tcp, "")?;
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ServerError::NotReady("no attempt".into())))
    }

    fn try_cluster(engine: &Engine, name: &str, shards: usize) -> Result<Vec<Self>, ServerError> {
        let mut ports = Vec::new();
        for _ in 0..shards {
            ports.push((free_port()?, free_port()?));
        }
        let mut remote = format!("<remote_servers><{name}>");
        for (_, tcp) in &ports {
            remote.push_str(&format!(
                "<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
            ));
        }
        remote.push_str(&format!("</{name}></remote_servers>"));
        let mut servers = Vec::new();
        for (http, tcp) in ports {
            servers.push(Self::spawn(engine, fresh_dir()?, true, http, tcp, &remote)?);
        }
        for s in &servers {
            s.wait_ready()?;
        }
        Ok(servers)
    }

    fn spawn(
        engine: &Engine,
        dir: PathBuf,
        remove: bool,
        http_port: u16,
        tcp_port: u16,
        remote: &str,
    ) -> Result<Self, ServerError> {
        let d = dir.display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  {remote}
</yandex>
"#
        );
        std::fs::write(dir.join("config.xml"), config)?;
        std::fs::write(dir.join("users.xml"), USERS)?;
        let cleanup = if remove {
            format!("rm -rf '{d}'")
        } else {
            String::from("true")
        };
        let start = match engine {
            Engine::Server => format!("exec clickhouse-server --config-file='{d}/config.xml'"),
            Engine::Chdb(python) => {
                // clickhouse-local reads config.xml from its working directory.
                std::fs::write(dir.join("launch.py"), CHDB_LAUNCHER)?;
                let hold = dir.join("hold");
                if !hold.exists() {
                    let made = Command::new("mkfifo").arg(&hold).status()?;
                    if !made.success() {
                        return Err(ServerError::NotReady(format!("mkfifo {}", hold.display())));
                    }
                }
                format!(
                    "cd '{d}' && exec '{}' '{d}/launch.py' '{d}'",
                    python.display()
                )
            }
        };
        let script = format!(
            "( {start} ) >'{d}/stdout.log' 2>&1 </dev/null & \
             server=$!; read _; kill $server; wait $server; {cleanup}"
        );
        let guard = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            guard: Some(guard),
            dir,
            http_port,
            tcp_port,
        })
    }

    fn wait_ready(&self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.http_port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /ping HTTP/1.0\r\n\r\n");
                let mut reply = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut reply);
                if reply.ends_with("Ok.\n") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
                    + &std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                return Err(ServerError::NotReady(format!(
                    "no answer on 127.0.0.1:{} (is ClickHouse installed? scripts/setup installs clickhouse-server and chdb-core): {}",
                    self.http_port,
                    log.chars().take(2000).collect::<String>()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// CPU seconds (user + system) the server process has used so far and its resident
    /// memory in bytes, from `/proc` (Linux; `None` elsewhere or once it has stopped): for
    /// resource figures in benchmarks.
    pub fn usage(&self) -> Option<(f64, u64)> {
        let guard = self.guard.as_ref()?.id();
        let children =
            std::fs::read_to_string(format!("/proc/{guard}/task/{guard}/children")).ok()?;
        let pid = children.split_whitespace().next()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // utime and stime are fields 14 and 15 of stat, rss (pages) field 24; `fields`
        // starts at field 3. Clock ticks are 100 per second on Linux.
        let cpu = (ticks(11)? + ticks(12)?) as f64 / 100.0;
        let rss = ticks(21)? * 4096;
        Some((cpu, rss))
    }

    /// The server's HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            drop(guard.stdin.take());
            let _ = guard.wait();
        }
    }
}
