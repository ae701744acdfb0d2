//! Splits a filter expression into tokens, each with the 1-based column where it starts.

use super::FilterError;

/// A token of the filter language.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A keyword or name: letters, digits, `_` and `.` (e.g. `http.status`, `annotation.tier`).
    Word(String),
    /// A double-quoted string, unescaped.
    Str(String),
    /// A number.
    Num(f64),
    /// A comparison operator: `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(&'static str),
    /// `!`.
    Bang,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `{`.
    LBrace,
    /// `}`.
    RBrace,
    /// `,`.
    Comma,
    /// `:`.
    Colon,
    /// `[KEY]` or `["KEY"]` after `annotation`: a key with any characters but `]`.
    Bracketed(String),
}

/// Whether `text` lexes as one word (letters, digits and `_`; no `.`), e.g. an annotation key
/// that can be written `annotation.KEY`.
pub fn is_word(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_')
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Num(n) => format!("number {n}"),
            Token::Cmp(op) => format!("\"{op}\""),
            Token::Bang => "\"!\"".to_owned(),
            Token::LParen => "\"(\"".to_owned(),
            Token::RParen => "\")\"".to_owned(),
            Token::LBrace => "\"{\"".to_owned(),
            Token::RBrace => "\"}\"".to_owned(),
            Token::Comma => "\",\"".to_owned(),
            Token::Colon => "\":\"".to_owned(),
            Token::Bracketed(k) => format!("[{k}]"),
        }
    }
}

/// Tokenizes `text`; errors name the column of the offending character.
pub fn lex(text: &str) -> Result<Vec<(Token, usize)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((Token::LParen, col));
                i += 1;
            }
            ')' => {
                out.push((Token::RParen, col));
                i += 1;
            }
            '{' => {
                out.push((Token::LBrace, col));
                i += 1;
            }
            '}' => {
                out.push((Token::RBrace, col));
                i += 1;
            }
            ',' => {
                out.push((Token::Comma, col));
                i += 1;
            }
            ':' => {
                out.push((Token::Colon, col));
                i += 1;
            }
            '[' => {
                let Some(len) = chars[i + 1..].iter().position(|c| *c == ']') else {
                    return Err(FilterError::new(col, "unterminated [ (expected ])"));
                };
                let raw: String = chars[i + 1..i + 1 + len].iter().collect();
                let raw = raw.trim();
                let key = raw
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .unwrap_or(raw);
                if key.is_empty() {
                    return Err(FilterError::new(col, "empty [ ]: expected a key"));
                }
                out.push((Token::Bracketed(key.to_owned()), col));
                i += len + 2;
            }
            '=' => {
                out.push((Token::Cmp("="), col));
                i += 1;
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push((Token::Cmp("!="), col));
                    i += 2;
                } else {
                    out.push((Token::Bang, col));
                    i += 1;
                }
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    (_, true) => ">=",
                    _ => ">",
                };
                out.push((Token::Cmp(op), col));
                i += if eq { 2 } else { 1 };
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(FilterError::new(col, "unterminated string"));
                        }
                        Some('"') => break,
                        Some('\\') => {
                            match chars.get(j + 1) {
                                Some(e) => s.push(*e),
                                None => {
                                    return Err(FilterError::new(col, "unterminated string"));
                                }
                            }
                            j += 2;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            j += 1;
                        }
                    }
                }
                out.push((Token::Str(s), col));
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_digit()
                        || chars[j] == '.'
                        || chars[j] == 'e'
                        || chars[j] == 'E')
                {
                    j += 1;
                }
                let s: String = chars[i..j].iter().collect();
                let n: f64 = s
                    .parse()
                    .map_err(|_| FilterError::new(col, format!("malformed number {s:?}")))?;
                if !n.is_finite() {
                    return Err(FilterError::new(col, format!("number {s} is out of range")));
                }
                out.push((Token::Num(n), col));
                i = j;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '.')
                {
                    j += 1;
                }
                out.push((Token::Word(chars[i..j].iter().collect()), col));
                i = j;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                out.push((Token::Word("AND".to_owned()), col));
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                out.push((Token::Word("OR".to_owned()), col));
                i += 2;
            }
            '#' => {
                return Err(FilterError::new(col, super::parser::ROOTCAUSE_JSON));
            }
            other => {
                return Err(FilterError::new(
                    col,
                    format!("unexpected character {other:?}"),
                ));
            }
        }
    }
    Ok(out)
}
