//! Queries of an sqlx pool traced from the task's current entity (feature `sqlx`).
//!
//! [`TracedPool`] wraps a `sqlx::Pool` and is itself an executor (`&TracedPool`): inside a
//! sampled traced task each query gets a `remote` subsegment with the X-Ray `sql` block (the
//! query sanitized with the database's dialect, `database_type`, the URL without credentials
//! or parameters) that ends when the query's future or stream completes or is dropped; an
//! error becomes its cause and sets `fault`. Outside a traced task (or in an unsampled one)
//! every call goes straight to the pool.
//!
//! sqlx's `Execute::sql` consumes the query, so the query is wrapped (`Recorded`) and its
//! text recorded at the moment the driver takes it: no copy of the query is made before.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::sqlx::Either;
use ::sqlx::database::Database;
use ::sqlx::error::BoxDynError;
use ::sqlx::{Describe, Error, Execute, Executor, Pool, SqlStr};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream};

use crate::recorder::{Entity, current};

/// An sqlx pool whose queries are traced (see the [module](self)):
/// `let db = TracedPool::new(pool, url); sqlx::query("...").fetch_all(&db).await`.
pub struct TracedPool<DB: Database> {
    pool: Pool<DB>,
    name: String,
    /// Shared with each query's [`Recorded`], which must not borrow the pool.
    url: Arc<str>,
}

impl<DB: Database> fmt::Debug for TracedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedPool")
            .field("pool", &self.pool)
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

impl<DB: Database> Clone for TracedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            name: self.name.clone(),
            url: self.url.clone(),
        }
    }
}

impl<DB: Database> TracedPool<DB> {
    /// Wraps `pool`, connected to `url` (recorded without its credentials and parameters).
    /// Subsegments are named after the URL's host, else its file, else the database type.
    pub fn new(pool: Pool<DB>, url: &str) -> Self {
        let url = url_without_credentials(url);
        let name = subsegment_name(&url).unwrap_or(DB::NAME).to_owned();
        Self {
            pool,
            name,
            url: url.into(),
        }
    }

    /// Names the subsegments `name` (e.g. `orders@db`).
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// The pool, for what is not traced (transactions, `acquire`, `close`).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The URL recorded in each query's `sql` block.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens a query's subsegment under the current entity; `None` outside a sampled task.
    fn begin(&self) -> Option<Entity> {
        let parent = current().filter(Entity::is_sampled)?;
        let call = parent.begin_subsegment(&self.name);
        call.with_document(|doc| doc.namespace = Some("remote".into()));
        Some(call)
    }
}

impl<'p, DB: Database> Executor<'p> for &'p TracedPool<DB>
where
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match self.begin() {
            None => self.pool.fetch_many(query),
            Some(call) => Box::pin(TracedStream {
                inner: self.pool.fetch_many(Recorded::new(query, &self.url, &call)),
                call: Ended(call),
            }),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        match self.begin() {
            None => self.pool.fetch_optional(query),
            Some(call) => {
                let query = Recorded::new(query, &self.url, &call);
                traced(self.pool.fetch_optional(query), call)
            }
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, Error>>
    where
        'p: 'e,
    {
        match self.begin() {
            None => self.pool.prepare_with(sql, parameters),
            Some(call) => {
                record::<DB>(&call, &self.url, sql.as_str());
                traced(self.pool.prepare_with(sql, parameters), call)
            }
        }
    }

    // Part of the trait when sqlx-core's `offline` is on, which the workspace's `macros`
    // guarantees (see Cargo.toml). Not a query: not traced.
    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'p: 'e,
    {
        self.pool.describe(sql)
    }
}

/// Ends the call when dropped: when its query completes, fails, or is abandoned.
struct Ended(Entity);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// `future` with its outcome recorded on `call`, which ends with it.
fn traced<'e, T: Send + 'e>(
    future: BoxFuture<'e, Result<T, Error>>,
    call: Entity,
) -> BoxFuture<'e, Result<T, Error>> {
    let call = Ended(call);
    Box::pin(async move {
        let result = future.await;
        if let Err(error) = &result {
            call.0.add_error(error);
        }
        result
    })
}

/// A query's stream whose errors are recorded on its call, which ends with the stream.
struct TracedStream<'e, T> {
    inner: BoxStream<'e, Result<T, Error>>,
    call: Ended,
}

impl<T> Stream for TracedStream<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Err(error))) => self.call.0.add_error(error),
            Poll::Ready(None) => self.call.0.end(),
            _ => {}
        }
        polled
    }
}

/// Records `sql` in the call's `sql` block (sanitized there with `DB`'s dialect).
fn record<DB: Database>(call: &Entity, url: &str, sql: &str) {
    call.set_sql(DB::NAME, url, sql);
}

/// A query that records its text on its call when the driver takes it.
struct Recorded<E, DB> {
    query: E,
    url: Arc<str>,
    call: Entity,
    database: PhantomData<fn() -> DB>,
}

impl<E, DB> Recorded<E, DB> {
    fn new(query: E, url: &Arc<str>, call: &Entity) -> Self {
        Self {
            query,
            url: Arc::clone(url),
            call: call.clone(),
            database: PhantomData,
        }
    }
}

impl<'q, E: Execute<'q, DB>, DB: Database> Execute<'q, DB> for Recorded<E, DB> {
    fn sql(self) -> SqlStr {
        let sql = self.query.sql();
        record::<DB>(&self.call, &self.url, sql.as_str());
        sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.query.statement()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.query.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.query.persistent()
    }
}

/// `url` without `user:password@` and without its `?parameters` (which may hold a password).
fn url_without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The URL's host; for SQLite, the database file's name (`sqlite://data/orders.db` ->
/// `orders.db`); `None` for an in-memory database.
fn subsegment_name(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let rest = rest.trim_start_matches('/');
    let name = if scheme.starts_with("sqlite") {
        rest.rsplit('/').next().unwrap_or_default()
    } else {
        let authority = rest.split('/').next().unwrap_or_default();
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    (!name.is_empty() && !name.starts_with(':')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_parameters() {
        let cases = [
            (
                "postgres://app:s3cret@db.internal:5432/orders?sslmode=require",
                "postgres://db.internal:5432/orders",
                Some("db.internal"),
            ),
            (
                "mysql://root@localhost/shop#x",
                "mysql://localhost/shop",
                Some("localhost"),
            ),
            (
                "sqlite://data/orders.db?mode=rwc",
                "sqlite://data/orders.db",
                Some("orders.db"),
            ),
            (
                "sqlite:///var/lib/app.db",
                "sqlite:///var/lib/app.db",
                Some("app.db"),
            ),
            ("sqlite::memory:", "sqlite::memory:", None),
            ("sqlite:orders.db", "sqlite:orders.db", Some("orders.db")),
        ];
        for (url, cleaned, name) in cases {
            let clean = url_without_credentials(url);
            assert_eq!(clean, cleaned, "{url}");
            assert_eq!(subsegment_name(&clean), name, "{url}");
        }
    }
}
