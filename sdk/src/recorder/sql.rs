//! SQL sanitizing: literals become `?` so queries can be recorded without their values.

/// Replaces string, number and hex literals in `query` with `?`, keeping identifiers, keywords,
/// placeholders (`?`, `$1`, `%s`, `:name`) and quoted identifiers (`"col"`, `` `col` ``).
pub fn sanitize_sql(query: &str) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut copied = 0; // bytes of `query` already in `out`
    let mut i = 0;
    while i < bytes.len() {
        let literal_end = match bytes[i] {
            b'\'' => {
                // A string literal, with '' or \' as an escaped quote.
                let mut j = i + 1;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\'' if bytes.get(j + 1) == Some(&b'\'') => j += 2,
                        b'\'' => break,
                        b'\\' => j += 2,
                        _ => j += 1,
                    }
                }
                Some((j + 1).min(bytes.len()))
            }
            b'0'..=b'9' if i == 0 || !is_word(bytes[i - 1]) => {
                let mut j = i;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'.') {
                    j += 1;
                }
                Some(j)
            }
            _ => None,
        };
        match literal_end {
            Some(end) => {
                out.push_str(&query[copied..i]);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
