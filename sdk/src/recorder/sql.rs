//! SQL sanitizing: literals become `?` so queries can be recorded without their values.

/// Replaces string, number and hex literals in `query` with `?`, keeping identifiers, keywords,
/// placeholders (`?`, `$1`, `%s`, `:name`) and quoted identifiers (`"col"`, `` `col` ``).
pub fn sanitize_sql(query: &str) -> String {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                // A string literal, with '' as an escaped quote.
                i += 1;
                while i < chars.len() {
                    if chars[i] == '\'' {
                        if chars.get(i + 1) == Some(&'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push('?');
            }
            '0'..='9' if i == 0 || !is_word(chars[i - 1]) => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push('?');
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
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
