//! The disk spool: batches that could not reach the collector, one file per batch, replayed
//! oldest first when it is back, and kept across restarts.
//!
//! Each file is a complete `PutTraceSegments` body named `<sequence>-<documents>.json`; it is
//! written to a temporary name and renamed, so a crash never leaves a half batch to replay.
//! The spool is bounded by `--spool-max-mb`; a batch that does not fit is refused and stays in
//! memory (where the memory bound applies).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a batch was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool is at its size bound.
    #[error("spool full ({used} of {max} bytes)")]
    Full {
        /// Bytes in the spool.
        used: u64,
        /// The bound.
        max: u64,
    },
    /// Reading or writing the directory failed.
    #[error("spool I/O in {dir}: {source}")]
    Io {
        /// The spool directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A spooled batch, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number (order of spooling).
    pub seq: u64,
    /// Documents in it.
    pub documents: u64,
    /// Size on disk.
    pub bytes: u64,
}

/// The spool directory and its index.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<BTreeMap<u64, Entry>>,
    used: AtomicU64,
    next_seq: AtomicU64,
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, docs) = stem.split_once('-')?;
    Some((seq.parse().ok()?, docs.parse().ok()?))
}

impl Spool {
    /// Opens (creating if needed) a spool directory and indexes the batches already in it.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let io_err = |source| SpoolError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut index = BTreeMap::new();
        let mut used = 0;
        for item in std::fs::read_dir(dir).map_err(io_err)? {
            let item = item.map_err(io_err)?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(item.path());
                continue;
            }
            let Some((seq, documents)) = parse_name(name) else {
                continue;
            };
            let bytes = item.metadata().map_err(io_err)?.len();
            used += bytes;
            index.insert(
                seq,
                Entry {
                    seq,
                    documents,
                    bytes,
                },
            );
        }
        let next_seq = index.keys().next_back().map_or(1, |s| s + 1);
        if !index.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                batches = index.len(),
                bytes = used,
                "spool holds batches from an earlier run; replaying them"
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(index),
            used: AtomicU64::new(used),
            next_seq: AtomicU64::new(next_seq),
        })
    }

    fn path(&self, entry: &Entry) -> PathBuf {
        self.dir
            .join(format!("{:020}-{}.json", entry.seq, entry.documents))
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Writes one batch body holding `documents` documents.
    pub fn write(&self, body: &[u8], documents: u64) -> Result<Entry, SpoolError> {
        let bytes = body.len() as u64;
        let reserved = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= self.max_bytes).then_some(used + bytes)
            });
        if let Err(used) = reserved {
            return Err(SpoolError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let entry = Entry {
            seq: self.next_seq.fetch_add(1, Ordering::AcqRel),
            documents,
            bytes,
        };
        let path = self.path(&entry);
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(self.io(e));
        }
        if let Ok(mut index) = self.index.lock() {
            index.insert(entry.seq, entry);
        }
        Ok(entry)
    }

    /// The oldest batch, if any.
    pub fn oldest(&self) -> Option<Entry> {
        self.index
            .lock()
            .ok()
            .and_then(|i| i.values().next().copied())
    }

    /// Reads a batch's body.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>, SpoolError> {
        std::fs::read(self.path(entry)).map_err(|e| self.io(e))
    }

    /// Removes a batch (after it was delivered).
    pub fn remove(&self, entry: &Entry) -> Result<(), SpoolError> {
        match std::fs::remove_file(self.path(entry)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        if let Ok(mut index) = self.index.lock()
            && index.remove(&entry.seq).is_some()
        {
            self.used.fetch_sub(entry.bytes, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Bytes in the spool.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Batches in the spool.
    pub fn len(&self) -> usize {
        self.index.lock().map(|i| i.len()).unwrap_or(0)
    }

    /// Whether the spool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bounded_and_persistent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        assert!(spool.oldest().is_none());
        let a = spool.write(&[b'a'; 40], 2).unwrap();
        let b = spool.write(&[b'b'; 40], 3).unwrap();
        assert!(matches!(
            spool.write(&[b'c'; 40], 1),
            Err(SpoolError::Full { used: 80, max: 100 })
        ));
        assert_eq!(spool.oldest(), Some(a));
        assert_eq!(spool.read(&a).unwrap(), vec![b'a'; 40]);
        drop(spool);

        std::fs::write(dir.path().join("junk.tmp"), b"x").unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        assert_eq!(spool.len(), 2);
        assert_eq!(spool.used_bytes(), 80);
        assert_eq!(spool.oldest(), Some(a));
        spool.remove(&a).unwrap();
        assert_eq!(spool.oldest(), Some(b));
        let c = spool.write(&[b'c'; 40], 1).unwrap();
        assert!(c.seq > b.seq);
        assert!(!dir.path().join("junk.tmp").exists());
    }
}
