//! sqlx queries traced through a real SQLite database and a real UDP socket: inside a traced
//! task each query is a `remote` subsegment with its sanitized SQL, a failing query carries its
//! cause, an abandoned stream still ends its subsegment; outside one nothing is sent.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures
#![cfg(feature = "sqlx")]

use std::time::Duration;

use futures_util::StreamExt;
use roentgen_sdk::model::{Cause, Segment};
use roentgen_sdk::recorder::scope;
use roentgen_sdk::sqlx::TracedPool;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;
use udp::{ALWAYS, NEVER, nothing_more, receive, setup};

mod udp;

/// A pool on a fresh database file holding `users(name, tier)`, and the URL it was opened with.
async fn database(dir: &tempfile::TempDir) -> TracedPool<sqlx::Sqlite> {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let pool = SqlitePool::connect(&url).await.unwrap();
    let db = TracedPool::new(pool, &url);
    // Outside a traced task: delegated, nothing recorded.
    sqlx::query("CREATE TABLE users (name TEXT NOT NULL, tier INTEGER NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    db
}

fn sanitized(sub: &Segment) -> &str {
    let sql = sub.sql.as_ref().expect("an sql block");
    sql.sanitized_query.as_deref().unwrap()
}

#[tokio::test]
async fn queries_become_sanitized_remote_subsegments() {
    let (socket, recorder) = setup(ALWAYS);
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir).await;
    assert_eq!(
        db.url(),
        format!("sqlite://{}", dir.path().join("shop.db").display())
    );

    let segment = recorder.begin_segment("shop", None);
    scope(segment.clone(), async {
        sqlx::query("INSERT INTO users (name, tier) VALUES ('Wolfgang Pauli', 42), ('Lise', 7)")
            .execute(&db)
            .await
            .unwrap();
        let tier: i64 = sqlx::query("SELECT tier FROM users WHERE name = ?")
            .bind("Lise")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
        assert_eq!(tier, 7);
        let bad = sqlx::query("SELEC name FROM users WHERE tier = 42")
            .fetch_all(&db)
            .await;
        assert!(bad.is_err());
        // A stream dropped after its first row still ends its subsegment.
        let mut rows = sqlx::query("SELECT name FROM users WHERE tier > 1").fetch(&db);
        assert!(rows.next().await.unwrap().is_ok());
    })
    .await;
    segment.end();
    recorder.flush(Duration::from_secs(5));

    let doc = receive(&socket);
    assert_eq!(doc.name, "shop");
    let subs = doc.subsegments.as_ref().unwrap();
    let queries: Vec<&str> = subs.iter().map(sanitized).collect();
    assert_eq!(
        queries,
        [
            "INSERT INTO users (name, tier) VALUES (?, ?), (?, ?)",
            "SELECT tier FROM users WHERE name = ?",
            "SELEC name FROM users WHERE tier = ?",
            "SELECT name FROM users WHERE tier > ?",
        ]
    );
    for sub in subs {
        assert_eq!(sub.name, "shop.db");
        assert_eq!(sub.namespace.as_deref(), Some("remote"));
        assert!(sub.end_time.is_some(), "ended: {sub:#?}");
        let sql = sub.sql.as_ref().unwrap();
        assert_eq!(sql.database_type.as_deref(), Some("SQLite"));
        let url = sql.url.as_deref().unwrap();
        assert!(url.ends_with("/shop.db"), "no parameters: {url}");
    }
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("Pauli") && !text.contains("Lise"), "{text}");

    let failed = &subs[2];
    assert_eq!(failed.fault, Some(true));
    let Some(Cause::Details(cause)) = &failed.cause else {
        panic!("a cause: {failed:#?}")
    };
    let message = cause.exceptions.as_ref().unwrap()[0].message.as_deref();
    assert!(message.unwrap().contains("syntax error"), "{message:?}");
    for ok in [&subs[0], &subs[1], &subs[3]] {
        assert_eq!(ok.fault, None);
        assert!(ok.cause.is_none());
    }
    assert!(
        nothing_more(&socket),
        "the untraced CREATE TABLE sent nothing"
    );
}

#[tokio::test]
async fn an_unsampled_trace_records_no_query() {
    let (socket, recorder) = setup(NEVER);
    let dir = tempfile::tempdir().unwrap();
    let db = database(&dir).await;
    let segment = recorder.begin_segment("shop", None);
    scope(segment.clone(), async {
        let count: i64 = sqlx::query("SELECT count(*) FROM users")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 0);
    })
    .await;
    segment.end();
    recorder.flush(Duration::from_secs(5));
    assert!(nothing_more(&socket));
}
