//! The SQLite store's read connections: at most a fixed number open at once (each read holds
//! one on a blocking thread), kept for reuse; readers past the cap wait in line (first come,
//! first served) and get [`StoreError::Busy`] when none frees up in time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::store::StoreError;

/// How many read connections may be open and how long a reader waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Most read connections open at once (and reads running at once).
    pub max_connections: usize,
    /// How long a read waits for a connection before it fails with [`StoreError::Busy`].
    pub wait: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_connections: 8,
            wait: Duration::from_secs(10),
        }
    }
}

/// The pool.
pub(super) struct ReadPool {
    pub(super) path: PathBuf,
    limits: ReadLimits,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf, limits: ReadLimits) -> Self {
        Self {
            path,
            limits,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let c = Connection::open(&self.path)?;
        c.busy_timeout(Duration::from_secs(10))?;
        c.pragma_update(None, "query_only", true)?;
        c.pragma_update(None, "cache_size", -16_384)?;
        c.pragma_update(None, "mmap_size", 1_i64 << 30)?;
        Ok(c)
    }

    /// Runs `f` on a read connection on the blocking thread pool, once one is free.
    pub(super) async fn read<T: Send + 'static>(
        self: Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let busy = || {
            StoreError::Busy(format!(
                "all {} read connections stayed busy for {:?}",
                self.limits.max_connections, self.limits.wait
            ))
        };
        let permit = tokio::time::timeout(self.limits.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match idle {
                Some(c) => c,
                None => pool.connect()?,
            };
            let out = f(&conn);
            // At most `max_connections` exist (one per permit), so all of them may stay idle.
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|_| StoreError::WriterGone)?
    }

    /// Read connections open now, idle ones (for tests).
    #[cfg(test)]
    pub(super) fn idle_connections(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pool(max_connections: usize, wait: Duration) -> (tempfile::TempDir, Arc<ReadPool>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let limits = ReadLimits {
            max_connections,
            wait,
        };
        (dir, Arc::new(ReadPool::new(path, limits)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_the_cap_under_many_readers() {
        let (_dir, pool) = pool(3, Duration::from_secs(30));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let reads = (0..40).map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            tokio::spawn(pool.clone().read(move |conn| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?)
            }))
        });
        for read in reads.collect::<Vec<_>>() {
            assert_eq!(read.await.unwrap().unwrap(), 0);
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert!(pool.idle_connections() <= 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_that_waits_too_long_gets_busy() {
        let (_dir, pool) = pool(1, Duration::from_millis(100));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn(pool.clone().read(move |_| {
            let _ = rx.recv_timeout(Duration::from_secs(10));
            Ok(())
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = pool.clone().read(|_| Ok(())).await.unwrap_err();
        assert!(matches!(e, StoreError::Busy(_)), "{e}");
        assert!(e.to_string().contains("read connections"), "{e}");
        tx.send(()).unwrap();
        holder.await.unwrap().unwrap();
        pool.read(|_| Ok(())).await.unwrap();
    }
}
