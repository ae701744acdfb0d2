//! SQL sanitizing: literals become `?` so queries can be recorded without their values.
//!
//! How a string literal ends depends on the database: `''` is an escaped quote everywhere,
//! `\'` only in MySQL and MariaDB (whose `"..."` are strings too) and in PostgreSQL's
//! `E'...'`; PostgreSQL also has `$$...$$` and `$tag$...$tag$`. [`SqlDialect`] says which
//! rules apply. When the dialect is unknown and the two readings of a literal disagree (a
//! backslash before a quote), everything from that literal on becomes one `?`: a sanitizer
//! that guesses wrong would leave the rest of a literal behind as query text.

/// How a database writes string literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    /// Only `''` escapes a quote, `"..."` is an identifier, `$$...$$` a string (PostgreSQL,
    /// SQLite, SQL Server, Oracle).
    Standard,
    /// `''` and `\'` escape a quote and `\\` a backslash; `"..."` is a string too (MySQL,
    /// MariaDB).
    Backslash,
    /// Not known: whatever either reading would take for a literal goes, `"..."` included.
    Unknown,
}

impl SqlDialect {
    /// The dialect of an X-Ray `sql.database_type` (or OpenTelemetry `db.system`) value.
    pub fn from_database_type(database_type: &str) -> Self {
        // Case-insensitive, without a lowercased copy: this runs on every recorded query.
        let name = database_type.as_bytes();
        let has = |n: &str| {
            name.windows(n.len())
                .any(|w| w.eq_ignore_ascii_case(n.as_bytes()))
        };
        if has("mysql") || has("maria") {
            Self::Backslash
        } else if [
            "postgres",
            "sqlite",
            "sql server",
            "sqlserver",
            "mssql",
            "oracle",
            "redshift",
        ]
        .into_iter()
        .any(has)
        {
            Self::Standard
        } else {
            Self::Unknown
        }
    }
}

/// Replaces string, number and hex literals in `query` with `?`, keeping identifiers, keywords,
/// placeholders (`?`, `$1`, `%s`, `:name`), `` `col` `` identifiers and comments, for a database
/// whose dialect is not known (see [`SqlDialect::Unknown`]; `"col"` is kept by
/// [`sanitize_sql_as`] with [`SqlDialect::Standard`]).
pub fn sanitize_sql(query: &str) -> String {
    sanitize_sql_as(query, SqlDialect::Unknown)
}

/// [`sanitize_sql`] with the rules of `dialect`.
pub fn sanitize_sql_as(query: &str, dialect: SqlDialect) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut copied = 0; // bytes of `query` already in `out`
    let mut i = 0;
    while i < bytes.len() {
        // Most of a query is words, spaces and punctuation that start nothing: skip them.
        match bytes[i..].iter().position(|&b| MAY_START[usize::from(b)]) {
            Some(skip) => i += skip,
            None => break,
        }
        let after_word = i > 0 && is_word(bytes[i - 1]);
        let literal = match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = query[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = query[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\'' => {
                // PostgreSQL's escape strings: `E'...'`, the `E` a prefix, not a word's end.
                let escape = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_word(bytes[i - 2]));
                let start = if escape { i - 1 } else { i };
                let end = if escape {
                    Some(quoted_end(bytes, i, true))
                } else {
                    quoted(bytes, i, dialect)
                };
                Some((start, end.unwrap_or(bytes.len())))
            }
            b'"' => {
                // MySQL's strings may be single words: only a known dialect keeps `"..."`.
                let string = dialect != SqlDialect::Standard;
                if string {
                    Some((i, quoted(bytes, i, dialect).unwrap_or(bytes.len())))
                } else {
                    i = quoted_end(bytes, i, false);
                    continue;
                }
            }
            b'`' => {
                i = quoted_end(bytes, i, false);
                continue;
            }
            b'$' if !after_word && dialect != SqlDialect::Backslash => {
                dollar_quoted(query, i).map(|end| (i, end))
            }
            b'0'..=b'9' if !after_word => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'.') {
                    j += 1;
                }
                Some((i, j))
            }
            _ => None,
        };
        match literal {
            Some((start, end)) => {
                out.push_str(&query[copied..start]);
                out.push('?');
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    out
}

/// Bytes that may start a literal, a comment or a quoted identifier (the arms of
/// [`sanitize_sql_as`]'s match); every other byte is copied as it is.
static MAY_START: [bool; 256] = super::byte_set(b"-/'\"`$0123456789");

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// End (past the closing quote) of the quoted run at `open`, where a doubled quote stands for
/// itself and, with `backslash`, `\x` for `x`; the end of the text when it is not closed.
fn quoted_end(bytes: &[u8], open: usize, backslash: bool) -> usize {
    let quote = bytes[open];
    let mut j = open + 1;
    while j < bytes.len() {
        match bytes[j] {
            b if b == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
            b if b == quote => return j + 1,
            b'\\' if backslash => j += 2,
            _ => j += 1,
        }
    }
    bytes.len()
}

/// End of the string literal at `open` in `dialect`; `None` when the dialect is unknown and
/// the readings disagree (then the literal runs to the end of the query).
fn quoted(bytes: &[u8], open: usize, dialect: SqlDialect) -> Option<usize> {
    match dialect {
        SqlDialect::Standard => Some(quoted_end(bytes, open, false)),
        SqlDialect::Backslash => Some(quoted_end(bytes, open, true)),
        SqlDialect::Unknown => {
            let plain = quoted_end(bytes, open, false);
            (plain == quoted_end(bytes, open, true)).then_some(plain)
        }
    }
}

/// End of a PostgreSQL dollar-quoted string (`$$...$$`, `$tag$...$tag$`) at `open`, if one
/// starts there (`$1` is a placeholder).
fn dollar_quoted(query: &str, open: usize) -> Option<usize> {
    let rest = &query[open + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let tag_ok = tag.is_empty()
        || (tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !tag.as_bytes()[0].is_ascii_digit());
    if !tag_ok {
        return None;
    }
    let delimiter = &query[open..open + tag_len + 2];
    let body = open + delimiter.len();
    Some(
        query[body..]
            .find(delimiter)
            .map_or(query.len(), |n| body + n + delimiter.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::SqlDialect::{Backslash, Standard, Unknown};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replaces_literals_only() {
        assert_eq!(
            sanitize_sql("SELECT * FROM users WHERE email = 'jane@example.com' AND id = 42"),
            "SELECT * FROM users WHERE email = ? AND id = ?"
        );
        assert_eq!(
            sanitize_sql("INSERT INTO t2 (a, b) VALUES ($1, 'it''s', 3.5, 0xFF)"),
            "INSERT INTO t2 (a, b) VALUES ($1, ?, ?, ?)"
        );
        assert_eq!(
            sanitize_sql("SELECT col1 FROM t WHERE x = ?"),
            "SELECT col1 FROM t WHERE x = ?"
        );
    }

    #[test]
    fn escaped_quotes_in_each_dialect() {
        let cases = [
            (
                Standard,
                r"WHERE p = 'C:\' AND e = 'jane@x.io'",
                "WHERE p = ? AND e = ?",
            ),
            (
                Backslash,
                r"WHERE n = 'it\'s jane@x.io' AND k = 1",
                "WHERE n = ? AND k = ?",
            ),
            (
                Backslash,
                r"WHERE n = 'a\\' AND e = 'jane@x.io'",
                "WHERE n = ? AND e = ?",
            ),
            (
                Backslash,
                r#"WHERE e = "jane@x.io" AND s = "it\"s""#,
                "WHERE e = ? AND s = ?",
            ),
            (
                Standard,
                r#"SELECT "email" FROM t WHERE e = 'x''y'"#,
                r#"SELECT "email" FROM t WHERE e = ?"#,
            ),
            (
                Standard,
                r"WHERE n = E'it\'s jane@x.io' AND k = 'b'",
                "WHERE n = ? AND k = ?",
            ),
            (
                Standard,
                "WHERE b = $$jane's@x.io$$ OR c = $q$x$$y$q$ AND d = $1",
                "WHERE b = ? OR c = ? AND d = $1",
            ),
            (
                Standard,
                "SELECT 1 -- don't\nFROM t WHERE e = 'jane@x.io'",
                "SELECT ? -- don't\nFROM t WHERE e = ?",
            ),
            (
                Unknown,
                r"WHERE n = 'it\'s jane@x.io' AND k = 'v'",
                "WHERE n = ?",
            ),
            (
                Unknown,
                r"WHERE p = 'C:\' AND e = 'jane@x.io'",
                "WHERE p = ?",
            ),
            (
                Unknown,
                r#"SELECT "col" FROM t WHERE e = "jane""#,
                "SELECT ? FROM t WHERE e = ?",
            ),
            (Unknown, "WHERE e = 'unterminated jane@x.io", "WHERE e = ?"),
        ];
        for (dialect, query, expected) in cases {
            assert_eq!(
                sanitize_sql_as(query, dialect),
                expected,
                "{dialect:?}: {query}"
            );
        }
        assert_eq!(SqlDialect::from_database_type("MySQL"), Backslash);
        assert_eq!(SqlDialect::from_database_type("PostgreSQL"), Standard);
        assert_eq!(SqlDialect::from_database_type("cassandra"), Unknown);
        assert_eq!(SqlDialect::from_database_type("MariaDB 10"), Backslash);
        assert_eq!(
            SqlDialect::from_database_type("Microsoft SQL Server"),
            Standard
        );
        assert_eq!(SqlDialect::from_database_type("AMAZON REDSHIFT"), Standard);
        assert_eq!(SqlDialect::from_database_type(""), Unknown);
        assert_eq!(SqlDialect::from_database_type("my"), Unknown);
    }

    /// A literal holding `content`, written as `dialect` writes it, in one of its forms.
    fn literal(content: &str, dialect: SqlDialect, form: usize) -> String {
        let backslashed = |q: char| content.replace('\\', r"\\").replace(q, &format!("\\{q}"));
        match (dialect, form % 3) {
            (Backslash, 0) => format!("'{}'", backslashed('\'')),
            (Backslash, 1) => format!("\"{}\"", backslashed('"')),
            (Standard, 1) => format!("E'{}'", backslashed('\'')),
            (Backslash, _) => format!("'{}'", content.replace('\\', r"\\").replace('\'', "''")),
            // Only where the closing tag is the first `$z$` after the opening one (content
            // ending in `$z` would close the string early, as PostgreSQL would).
            (Standard, 2) if format!("{content}$z$").find("$z$") == Some(content.len()) => {
                format!("$z${content}$z$")
            }
            _ => format!("'{}'", content.replace('\'', "''")),
        }
    }

    proptest! {
        #[test]
        fn no_literal_is_left_behind(
            contents in prop::collection::vec("[a-z '\"\\\\$%?-]{0,12}", 1..4),
            forms in prop::collection::vec(0usize..3, 4),
            dialect in prop::sample::select(vec![Standard, Backslash]),
        ) {
            let marker = "SECRETx";
            let mut query = String::from("SELECT \"c\", `d` FROM t WHERE a = $1");
            let mut expected = query.clone();
            for (i, content) in contents.iter().enumerate() {
                let lit = literal(&format!("{content}{marker}{content}"), dialect, forms[i]);
                query.push_str(&format!(" AND f{i} = {lit} OR g = 42"));
                expected.push_str(&format!(" AND f{i} = ? OR g = ?"));
            }
            if dialect == Backslash {
                expected = expected.replace("\"c\"", "?");
            }
            prop_assert_eq!(sanitize_sql_as(&query, dialect), expected);
            let unknown = sanitize_sql(&query);
            prop_assert!(!unknown.contains(marker), "{} -> {}", query, unknown);
        }
    }
}
