//! Answers sent once what they answer is durable, with the `fsync` off the writer thread.
//!
//! The writer's connection commits with `synchronous = NORMAL`: a commit writes its WAL frames
//! without an `fsync`. This thread then makes them durable with one `fdatasync` of the WAL
//! and only then sends the answers of every commit made before it began. Meanwhile the writer
//! writes the next batch, so its commits no longer wait for the disk, and one `fdatasync`
//! covers as many commits as came in while the last one ran.
//!
//! Why that is as safe as `synchronous = FULL`: SQLite's recovery keeps the WAL's frames only
//! up to the first frame whose checksum chain breaks, so what survives a power loss is a
//! prefix of the commits, and every commit answered was in the WAL before the `fdatasync`
//! that answered it started. A failed `fdatasync` is not retried: the kernel may have dropped
//! the pages it could not write, so every later answer is an error until the collector is
//! restarted (and SQLite's recovery reads what the WAL really holds).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::store::StoreError;

/// An answer to send once the commits before it are durable; it is given the `fdatasync`'s
/// outcome.
pub(super) type OnDurable = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Sends `result` to `reply` once durable (an error if the sync failed).
pub(super) fn reply_when_durable<T: Send + 'static>(
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, StoreError>,
) -> OnDurable {
    Box::new(move |synced| {
        let _ = reply.send(synced.and(result));
    })
}

/// The thread that syncs the WAL and answers. Dropping it lets the thread answer what is
/// queued and stop.
pub(super) struct Syncer {
    tx: mpsc::Sender<OnDurable>,
}

impl Syncer {
    /// Starts the thread for the database at `db_path` (its WAL is `<db_path>-wal`); `None`
    /// if the thread cannot start (the writer then commits with `synchronous = FULL`).
    pub(super) fn start(db_path: &Path) -> Option<Self> {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let (tx, rx) = mpsc::channel::<OnDurable>();
        std::thread::Builder::new()
            .name("roentgen-store-sync".to_owned())
            .spawn(move || sync_loop(&wal, &rx))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the WAL sync thread"))
            .ok()?;
        Some(Self { tx })
    }

    /// Queues `answer` for the next `fdatasync`; call it after the commit it answers.
    pub(super) fn after_commit(&self, answer: OnDurable) {
        if let Err(mpsc::SendError(answer)) = self.tx.send(answer) {
            answer(Err(StoreError::Write(
                "the WAL sync thread stopped".to_owned(),
            )));
        }
    }
}

fn sync_loop(wal: &Path, rx: &mpsc::Receiver<OnDurable>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        // Everything queued now was committed before this sync starts.
        let answers: Vec<OnDurable> = std::iter::once(first).chain(rx.try_iter()).collect();
        if failed.is_none()
            && let Err(e) = sync(wal)
        {
            tracing::error!(
                error = %e,
                wal = %wal.display(),
                "fsync of the store's WAL failed: every write is answered with an error until \
                 the collector is restarted"
            );
            failed = Some(format!(
                "fsync of {} failed ({e}); restart the collector",
                wal.display()
            ));
        }
        for answer in answers {
            answer(match &failed {
                None => Ok(()),
                Some(why) => Err(StoreError::Write(why.clone())),
            });
        }
    }
}

/// `fdatasync` of the WAL, opened by path each time: an `fsync` flushes the file, whichever
/// descriptor asks, and a WAL that SQLite re-created is the one synced.
fn sync(wal: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .open(wal)?
        .sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues an answer and returns what it was given.
    fn answered(syncer: &Syncer) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        syncer.after_commit(reply_when_durable(tx, Ok(())));
        rx.blocking_recv().expect("answered")
    }

    #[test]
    fn answers_after_a_sync_and_refuses_for_good_once_one_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store.db");
        let wal = dir.path().join("store.db-wal");
        std::fs::write(&wal, b"frames").expect("wal");
        let syncer = Syncer::start(&db).expect("sync thread");
        answered(&syncer).expect("a WAL that syncs answers Ok");

        // The WAL gone: the sync fails, and so does every answer after it, even once
        // the file is back (what the failed sync dropped cannot be known).
        std::fs::remove_file(&wal).expect("remove");
        let first = answered(&syncer).expect_err("the sync failed");
        assert!(first.to_string().contains("restart"), "{first}");
        std::fs::write(&wal, b"frames").expect("wal back");
        answered(&syncer).expect_err("still refused");
    }

    #[test]
    fn an_answer_keeps_its_own_error_when_the_sync_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store.db");
        std::fs::write(dir.path().join("store.db-wal"), b"frames").expect("wal");
        let syncer = Syncer::start(&db).expect("sync thread");
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<u8, StoreError>>();
        syncer.after_commit(reply_when_durable(tx, Err(StoreError::WriterGone)));
        assert!(matches!(
            rx.blocking_recv(),
            Ok(Err(StoreError::WriterGone))
        ));
    }
}
