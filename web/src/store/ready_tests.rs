//! `Store::ready` on both stores: ready when open, not ready when the store cannot take writes.

use std::time::Duration;

use super::clickhouse::server::LocalServer;
use super::clickhouse::testing::{Backend, for_each_store, store};
use super::clickhouse::{ClickhouseConfig, ClickhouseStore};
use super::sqlite::SqliteStore;
use super::{Store, StoreError};

for_each_store!(an_open_store_is_ready);

async fn an_open_store_is_ready(backend: Backend) {
    let (_place, store) = store(backend).await;
    store.ready().await.unwrap();
}

#[tokio::test]
async fn sqlite_is_not_ready_while_another_process_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.ready().await.unwrap();
    let other = rusqlite::Connection::open(dir.path().join("roentgen.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let check = tokio::time::timeout(Duration::from_millis(500), store.ready()).await;
    assert!(check.is_err(), "ready while locked: {check:?}");
    other.execute_batch("ROLLBACK").unwrap();
    // The writer gets the lock as soon as it is free and answers the queued checks.
    tokio::time::timeout(Duration::from_secs(20), store.ready())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn clickhouse_is_not_ready_once_its_server_is_gone() {
    let server = LocalServer::start().unwrap();
    let store = ClickhouseStore::open(ClickhouseConfig::new(server.url()))
        .await
        .unwrap();
    store.ready().await.unwrap();
    drop(server);
    // A pooled connection breaks (`Write`) or a new one is refused (`Open`).
    match store.ready().await {
        Err(StoreError::Open(_) | StoreError::Write(_)) => {}
        other => panic!("ready without a server: {other:?}"),
    }
}
