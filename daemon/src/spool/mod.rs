//! The disk spool: batches that could not reach the collector, one file per batch, replayed
//! when it is back, and kept across restarts, power loss and corruption.
//!
//! Each file is `<sequence>-<documents>.spool`: a [`format`] header (magic, version, document
//! count, body length, CRC-32 of the body) followed by a complete `PutTraceSegments` body. It
//! is written to a temporary name, `fsync`ed, renamed, and the directory `fsync`ed, so a crash
//! or a power cut leaves either the whole batch or nothing under its final name.
//!
//! A file that cannot be read back (a checksum that does not match, a short file, an unknown
//! version, an I/O error) is moved to `quarantine/` and counted, documents and bytes, never
//! deleted: an operator can inspect it and send what is left by hand. Leftover temporary
//! files (a crash during a write) go there too. Files of the first format (`.json`, a bare
//! body) are still replayed.
//!
//! The spool is bounded by `--spool-max-mb`; a batch that does not fit is refused and stays in
//! memory (where the memory bound applies). Every call here is blocking file I/O: the async
//! forwarder runs them on the blocking pool.

pub mod format;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use format::Corruption;

/// The subdirectory unreadable files are moved to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Why a batch was not spooled or read.
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
    /// A spooled file is damaged; it should be quarantined.
    #[error("spool file {file} is damaged: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: Corruption,
    },
}

/// A spooled batch, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number (order of spooling).
    pub seq: u64,
    /// Documents in it (from its name).
    pub documents: u64,
    /// Size on disk.
    pub bytes: u64,
    /// Whether it is a file of the first format (a bare body named `.json`).
    pub legacy: bool,
}

/// Files, documents and bytes moved to quarantine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quarantined {
    /// Files moved.
    pub files: u64,
    /// Documents in them (as their names say; 0 when the name does not say).
    pub documents: u64,
    /// Their size.
    pub bytes: u64,
}

impl Quarantined {
    fn add(&mut self, documents: u64, bytes: u64) {
        self.files += 1;
        self.documents += documents;
        self.bytes += bytes;
    }
}

#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<u64, Entry>,
    /// Entries being replayed now: not handed out again until released or removed.
    claimed: BTreeSet<u64>,
}

/// The spool directory and its index.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    used: AtomicU64,
    next_seq: AtomicU64,
    opened_with: Quarantined,
    /// Renames done so far, and (under the lock) how many of them a directory `fsync` covers:
    /// writers that renamed while another was syncing the directory share its next sync.
    renamed: AtomicU64,
    dir_synced: Mutex<u64>,
}

/// `(seq, documents, legacy)` from a spool file name.
fn parse_name(name: &str) -> Option<(u64, u64, bool)> {
    let (stem, legacy) = match name.strip_suffix(".spool") {
        Some(stem) => (stem, false),
        None => (name.strip_suffix(".json")?, true),
    };
    let (seq, docs) = stem.split_once('-')?;
    Some((seq.parse().ok()?, docs.parse().ok()?, legacy))
}

/// Makes a rename or a new file durable: `fsync` on the directory that holds it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (creating if needed) a spool directory and indexes the batches already in it;
    /// leftover temporary files are quarantined.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let io_err = |source| SpoolError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut index = BTreeMap::new();
        let mut used = 0;
        let mut last_seq = 0;
        let mut leftovers = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io_err)? {
            let item = item.map_err(io_err)?;
            if !item.file_type().map_err(io_err)?.is_file() {
                continue;
            }
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".tmp") {
                if let Some((seq, _, _)) = parse_name(&format!("{stem}.spool")) {
                    last_seq = last_seq.max(seq);
                }
                leftovers.push(name.to_owned());
                continue;
            }
            let Some((seq, documents, legacy)) = parse_name(name) else {
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
                    legacy,
                },
            );
        }
        let next_seq = index.keys().next_back().map_or(0, |s| *s).max(last_seq) + 1;
        let mut spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(Index {
                entries: index,
                claimed: BTreeSet::new(),
            }),
            used: AtomicU64::new(used),
            next_seq: AtomicU64::new(next_seq),
            opened_with: Quarantined::default(),
            renamed: AtomicU64::new(0),
            dir_synced: Mutex::new(0),
        };
        for name in leftovers {
            let documents = name
                .strip_suffix(".tmp")
                .and_then(|stem| parse_name(&format!("{stem}.spool")))
                .map_or(0, |(_, d, _)| d);
            let bytes = std::fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
            spool.move_to_quarantine(&name).map_err(io_err)?;
            tracing::error!(
                file = %dir.join(QUARANTINE_DIR).join(&name).display(),
                documents,
                bytes,
                "a spool write was cut short (crash or power loss); the partial file is quarantined"
            );
            spool.opened_with.add(documents, bytes);
        }
        if !spool.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                batches = spool.len(),
                bytes = used,
                "spool holds batches from an earlier run; replaying them"
            );
        }
        Ok(spool)
    }

    /// What [`Spool::open`] quarantined (leftover temporary files).
    pub fn quarantined_at_open(&self) -> Quarantined {
        self.opened_with
    }

    fn name(entry: &Entry) -> String {
        let ext = if entry.legacy { "json" } else { "spool" };
        format!("{:020}-{}.{ext}", entry.seq, entry.documents)
    }

    fn path(&self, entry: &Entry) -> PathBuf {
        self.dir.join(Self::name(entry))
    }

    fn io(&self, source: io::Error) -> SpoolError {
        SpoolError::Io {
            dir: self.dir.clone(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // The index holds plain data: a panic while it was held leaves it consistent.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes one batch body holding `documents` documents, durably: it is on disk under its
    /// final name when this returns `Ok`.
    pub fn write(&self, body: &[u8], documents: u64) -> Result<Entry, SpoolError> {
        let bytes = (format::HEADER_LEN + body.len()) as u64;
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
            legacy: false,
        };
        let path = self.path(&entry);
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(&format::header(documents, body))?;
            file.write_all(body)?;
            file.sync_data()?;
            drop(file);
            std::fs::rename(&tmp, &path)?;
            self.sync_renames()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            return Err(self.io(e));
        }
        self.lock().entries.insert(entry.seq, entry);
        Ok(entry)
    }

    /// Makes this thread's rename durable: a directory `fsync` that began after it, shared by
    /// every writer that renamed before that sync began (group commit).
    fn sync_renames(&self) -> io::Result<()> {
        let mine = self.renamed.fetch_add(1, Ordering::AcqRel) + 1;
        let mut synced = self
            .dir_synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *synced >= mine {
            return Ok(());
        }
        let covered = self.renamed.load(Ordering::Acquire);
        sync_dir(&self.dir)?;
        *synced = covered;
        Ok(())
    }

    /// The oldest batch, if any (claimed or not).
    pub fn oldest(&self) -> Option<Entry> {
        self.lock().entries.values().next().copied()
    }

    /// Claims up to `count` of the oldest batches nobody is replaying; each must be given
    /// back with [`Spool::release`], [`Spool::remove`] or [`Spool::quarantine`].
    pub fn claim_oldest(&self, count: usize) -> Vec<Entry> {
        let mut index = self.lock();
        let Index { entries, claimed } = &mut *index;
        let picked: Vec<Entry> = entries
            .values()
            .filter(|e| !claimed.contains(&e.seq))
            .take(count)
            .copied()
            .collect();
        claimed.extend(picked.iter().map(|e| e.seq));
        picked
    }

    /// Gives back a claimed batch that stays in the spool (its replay failed).
    pub fn release(&self, entry: &Entry) {
        self.lock().claimed.remove(&entry.seq);
    }

    /// Reads a batch's body, checking its header and checksum.
    pub fn read(&self, entry: &Entry) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(entry);
        let data = std::fs::read(&path).map_err(|e| self.io(e))?;
        let checked = if entry.legacy {
            format::check_legacy(data)
        } else {
            format::check(data, entry.documents)
        };
        checked.map_err(|reason| SpoolError::Corrupt { file: path, reason })
    }

    fn forget(&self, entry: &Entry) {
        let mut index = self.lock();
        index.claimed.remove(&entry.seq);
        if index.entries.remove(&entry.seq).is_some() {
            self.used.fetch_sub(entry.bytes, Ordering::AcqRel);
        }
    }

    /// Removes a batch (after it was delivered).
    pub fn remove(&self, entry: &Entry) -> Result<(), SpoolError> {
        match std::fs::remove_file(self.path(entry)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        self.forget(entry);
        Ok(())
    }

    fn move_to_quarantine(&self, name: &str) -> io::Result<()> {
        let quarantine = self.dir.join(QUARANTINE_DIR);
        std::fs::create_dir_all(&quarantine)?;
        // Never replace a file already there (a sequence number reused after a restart).
        let mut target = quarantine.join(name);
        let mut n = 0;
        while target.exists() {
            n += 1;
            target = quarantine.join(format!("{name}.{n}"));
        }
        std::fs::rename(self.dir.join(name), target)?;
        sync_dir(&quarantine)?;
        sync_dir(&self.dir)
    }

    /// Moves a batch that cannot be replayed to `quarantine/`, out of the spool's index and
    /// size; returns what it held.
    pub fn quarantine(&self, entry: &Entry) -> Result<Quarantined, SpoolError> {
        let name = Self::name(entry);
        match self.move_to_quarantine(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(e)),
        }
        self.forget(entry);
        let mut moved = Quarantined::default();
        moved.add(entry.documents, entry.bytes);
        Ok(moved)
    }

    /// Bytes in the spool.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Batches in the spool.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
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
mod tests;
