//! The HTTP connection to one ClickHouse server (send, execute, insert, select; errors that
//! name the server but never the query or the credentials) and the SQL literal helpers.

use roentgen_sdk::scrub::log_safe;
use serde::de::DeserializeOwned;

use super::ClickhouseConfig;
use super::rowbinary::RowBinary;
use crate::store::StoreError;

/// Trace ids per `IN (...)` list, to stay well under the server's 256 KiB query size limit.
pub(super) const IDS_PER_QUERY: usize = 2_000;
/// Settings sent with every request: exact `FINAL`/`WHERE` semantics (no `PREWHERE` before the
/// replacing merge), numbers as JSON numbers, inserts into `Distributed` tables acknowledged
/// only once on their shard, and `IN` subqueries answered shard-locally (a trace lives whole
/// on one shard).
const SETTINGS: [(&str, &str); 4] = [
    ("optimize_move_to_prewhere", "0"),
    ("output_format_json_quote_64bit_integers", "0"),
    ("insert_distributed_sync", "1"),
    ("distributed_product_mode", "local"),
];

/// Whether a name is a plain identifier (databases and clusters go into DDL unquoted).
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// A string literal for ClickHouse SQL.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A float literal for ClickHouse SQL.
pub(super) fn number(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v:?}")
    }
}

pub(super) fn id_list(ids: &[String]) -> String {
    ids.iter().map(|i| quote(i)).collect::<Vec<_>>().join(",")
}

/// The HTTP connection to one server.
#[derive(Debug, Clone)]
pub(super) struct Connection {
    pub(super) http: reqwest::Client,
    pub(super) config: ClickhouseConfig,
}

impl Connection {
    fn error(&self, e: reqwest::Error) -> StoreError {
        // The request URL carries the query (and the credentials are in headers): keep it out.
        let e = e.without_url();
        if e.is_connect() || e.is_timeout() {
            StoreError::Open(format!(
                "cannot reach ClickHouse at {}: {e}",
                self.config.url
            ))
        } else {
            StoreError::Write(format!("ClickHouse at {}: {e}", self.config.url))
        }
    }

    /// Sends `body` with `query` in the URL (for inserts) or as the body (for everything else).
    pub(super) async fn send(
        &self,
        database: Option<&str>,
        query: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, StoreError> {
        let bytes = self.send_bytes(database, query, body).await?;
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Write("ClickHouse answered text that is not UTF-8".into()))
    }

    /// [`Self::send`], the answer as bytes.
    async fn send_bytes(
        &self,
        database: Option<&str>,
        query: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut params: Vec<(&str, &str)> = SETTINGS.to_vec();
        if let Some(db) = database {
            params.push(("database", db));
        }
        if let Some(q) = query {
            params.push(("query", q));
        }
        let response = self
            .request(&params)
            .body(body)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.error(e))?;
        if !status.is_success() {
            // ClickHouse quotes the row it could not parse: scrubbed before it is logged or
            // passed on.
            let text = String::from_utf8_lossy(&bytes);
            let detail = log_safe(&text.trim().chars().take(1000).collect::<String>());
            tracing::warn!(%status, detail, "ClickHouse refused a request");
            return Err(StoreError::Write(format!("ClickHouse: {detail}")));
        }
        Ok(bytes.to_vec())
    }

    /// A POST with `params` in the query string and the credentials in headers, never in the URL.
    pub(super) fn request(&self, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.config.url)
            .query(params)
            .header("X-ClickHouse-User", &self.config.user);
        let password = self.config.password.expose();
        if !password.is_empty() {
            // A password that is not a valid header value fails the request, without echoing it.
            request = match reqwest::header::HeaderValue::from_str(password) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header("X-ClickHouse-Key", value)
                }
                Err(_) => request.header("X-ClickHouse-Key", password),
            };
        }
        request
    }

    pub(super) async fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.send(Some(&self.config.database), None, sql.as_bytes().to_vec())
            .await
            .map(drop)
    }

    pub(super) async fn insert(&self, table: &str, rows: RowBinary) -> Result<(), StoreError> {
        if rows.0.is_empty() {
            return Ok(());
        }
        let query = format!("INSERT INTO {table} FORMAT RowBinary");
        self.send(Some(&self.config.database), Some(&query), rows.0)
            .await
            .map(drop)
    }

    pub(super) async fn select<T: DeserializeOwned>(
        &self,
        sql: &str,
    ) -> Result<Vec<T>, StoreError> {
        let body = format!("{sql} FORMAT JSONEachRow");
        let text = self
            .send(Some(&self.config.database), None, body.into_bytes())
            .await?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).map_err(StoreError::from))
            .collect()
    }

    /// The answer to `sql` in `RowBinary` (read with [`super::rowbinary::RowReader`]): no
    /// text to escape and parse, for large answers.
    pub(super) async fn select_binary(&self, sql: &str) -> Result<Vec<u8>, StoreError> {
        let body = format!("{sql} FORMAT RowBinary");
        self.send_bytes(Some(&self.config.database), None, body.into_bytes())
            .await
    }

    /// Whether the store's database holds `table` (its `_local` table in a cluster), asked
    /// before the schema is created (the database may not exist yet).
    pub(super) async fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        let suffix = if self.config.cluster.is_some() {
            "_local"
        } else {
            ""
        };
        let sql = format!(
            "SELECT count() FROM system.tables WHERE database = {} AND name = {}",
            quote(&self.config.database),
            quote(&format!("{table}{suffix}"))
        );
        let text = self.send(None, None, sql.into_bytes()).await?;
        Ok(text.trim() != "0")
    }

    /// Reaches the server and the store's database, and checks that this user may write
    /// (`readonly` is 0).
    pub(super) async fn check_writable(&self) -> Result<(), StoreError> {
        #[derive(serde::Deserialize)]
        struct Setting {
            value: String,
        }
        let rows: Vec<Setting> = self
            .select("SELECT value FROM system.settings WHERE name = 'readonly'")
            .await?;
        match rows.first().map(|r| r.value.as_str()) {
            Some("0") | None => Ok(()),
            Some(_) => Err(StoreError::Write(
                "the ClickHouse user is read-only".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_travel_in_headers_not_in_the_url() {
        let config = ClickhouseConfig::new("http://writer:hunter2@ch.internal:8123");
        assert_eq!(config.url, "http://ch.internal:8123");
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
        let conn = Connection {
            http: reqwest::Client::new(),
            config,
        };
        let request = conn.request(&[("query", "SELECT 1")]).build().unwrap();
        assert!(
            !request.url().as_str().contains("hunter2"),
            "{}",
            request.url()
        );
        assert!(
            !request.url().as_str().contains("writer"),
            "{}",
            request.url()
        );
        assert_eq!(request.headers()["X-ClickHouse-User"], "writer");
        assert_eq!(request.headers()["X-ClickHouse-Key"], "hunter2");
        assert!(request.headers()["X-ClickHouse-Key"].is_sensitive());
    }

    #[test]
    fn literals() {
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(1.5), "1.5");
        assert!(is_identifier("roentgen_2"));
        assert!(!is_identifier("x; DROP"));
    }
}
