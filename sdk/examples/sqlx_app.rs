//! sqlx queries traced through `TracedPool`: inside a traced task each query becomes a
//! `remote` subsegment with the X-Ray `sql` block, its literals replaced by `?`; a failing
//! query carries its error. It runs one job against an in-memory SQLite database and exits.
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 cargo run -p roentgen-sdk --features sqlx --example sqlx_app
//! ```

use std::time::Duration;

use anyhow::Context;
use roentgen_sdk::recorder::{Recorder, scope};
use roentgen_sdk::sqlx::TracedPool;
use sqlx::sqlite::SqlitePoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let url = "sqlite::memory:";
    // One connection: every connection to `:memory:` is a database of its own.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let db = TracedPool::new(pool, url).with_name("orders@sqlite");

    let segment = recorder.begin_segment("nightly-report", None);
    let total = scope(segment.clone(), async {
        sqlx::query("CREATE TABLE orders (email TEXT, cents INTEGER)")
            .execute(&db)
            .await?;
        // Recorded as `INSERT INTO orders VALUES (?, ?), (?, ?)`.
        sqlx::query("INSERT INTO orders VALUES ('jane@example.com', 1250), ('li@example.com', 80)")
            .execute(&db)
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT sum(cents) FROM orders WHERE cents > ?")
            .bind(100)
            .fetch_one(&db)
            .await?;
        // A failing query: its subsegment is a fault with the error as its cause.
        let missing = sqlx::query("SELECT * FROM refunds").fetch_all(&db).await;
        println!(
            "refunds: {}",
            missing.map_or_else(|e| e.to_string(), |_| "ok".into())
        );
        anyhow::Ok(total)
    })
    .await?;
    segment.end();
    println!("total above 1 EUR: {total} cents");

    recorder.flush(Duration::from_secs(2));
    println!("{:?}", recorder.stats());
    Ok(())
}
