//! The built-in detectors: one regex each, plus a validator where the pattern alone would flag
//! too much (Luhn and card prefixes, dates in Korean resident numbers, SSN ranges, ...).
//!
//! Patterns are ASCII-only (`[0-9]`, `(?-u:\b)`) so the lazy DFA never falls back to the slow
//! engine on non-ASCII text. A group named `v` narrows the rewrite to the secret part of a match
//! (`password=<v>`). The order of the table is the priority when matches overlap.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use super::needs::Needs;

/// Checks a candidate `hay[start..end]`; returns the span to rewrite (possibly narrowed) or
/// `None` to reject it.
pub(crate) type Validator = fn(&str, usize, usize) -> Option<(usize, usize)>;

/// A built-in detector.
pub(crate) struct BuiltIn {
    pub name: &'static str,
    pub pattern: Cow<'static, str>,
    /// A simpler or narrower pattern for the `RegexSet` pre-filter; it must match wherever
    /// `pattern` has a match its validator accepts. Digit patterns keep their `\b` anchors:
    /// unanchored counted digit runs from several patterns multiply the set's DFA states until
    /// its cache thrashes on digit-heavy text.
    pub prefilter: Option<&'static str>,
    pub validate: Option<Validator>,
    /// What a text must hold for `pattern` to match in it (see `needs.rs`).
    pub needs: Needs,
}

/// Names of the built-in detectors, in priority order.
pub const BUILT_IN_NAMES: &[&str] = &[
    "url_userinfo",
    "jwt",
    "aws_access_key",
    "secret",
    "bearer",
    "email",
    "kr_rrn",
    "card",
    "ssn",
    "phone",
    "ipv6",
    "ipv4",
    "aws_secret_key",
];

/// Keys whose values are secrets in `key=value` text, query strings, headers and connection
/// strings. The optional `prefix_` words let `db_password` and `aws_secret_access_key` match.
const SECRET_KEY: &str = r#"(?:[A-Za-z0-9]+[_.-])*(?i-u:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|authorization|credentials?|session[_-]?id|sessionid|cookie|passwort|kennwort|senha|contrasena|mot[_ -]de[_ -]passe)"#;

/// The end of camelCase and PascalCase names as SDKs and `repr()` print them
/// (`SecretAccessKey`, `SessionToken`, `dbPassword`; not `PublicKeyToken` or `NextToken`).
/// Matched anywhere in a word: a prefix pattern before it would make the DFA explore every
/// position of every word.
const CAMEL_SECRET_KEY: &str = r#"(?:Password|Passwd|Passphrase|Secret|ApiKey|AccessKey|PrivateKey|SecretKey|Credentials?|Cookie|SessionId|(?:Access|Refresh|Session|Id|Auth|Bearer|Api|Csrf|Security)Token)"#;

/// Words for a secret in the languages our users log in (Korean first), for text such as
/// `비밀번호: …`, `암호=…`, `토큰 …`, `パスワード：…`. Non-ASCII, so outside any case folding.
const SECRET_WORDS: &str = "비밀번호|비번|패스워드|암호|토큰|인증키|인증 키|액세스 키|시크릿|パスワード|暗証番号|トークン|密码|密碼|口令|令牌|contraseña|Contraseña|пароль|Пароль|токен|Токен";

/// Characters a secret value may hold: not whitespace, separators, quotes or brackets.
const VALUE: &str = r#"[^\s&;,"'<>\[\]{}(][^\s&;,"'<>\[\]]*"#;

pub(crate) fn built_ins() -> Vec<BuiltIn> {
    let secret = format!(
        r#"(?:(?:^|[^A-Za-z0-9_.-]){SECRET_KEY}|{CAMEL_SECRET_KEY})["']?[ \t]*(?:=>|[:=])[ \t]*["']?(?P<v>(?:(?i-u:bearer|basic|digest)[ \t]+)?{VALUE})"#
    );
    // A particle (`비밀번호는`), then a separator or at least a space; the validator finds the
    // value after the match and asks more of one with no separator before it. (With the value
    // in the pattern, its Unicode classes made the lazy DFA rebuild states on every string.)
    let secret_words = format!(
        r#"(?:{SECRET_WORDS})(?:[은는이가을를]|を|は|が)?[ \t]*(?:=>|[:=：])?[ \t]*["'“「]?"#
    );
    vec![
        BuiltIn {
            name: "url_userinfo",
            pattern: Cow::Borrowed(
                r"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://(?P<v>[^/\s:@?#\[\]]+(?::[^/\s@?#\[\]]*)?)@",
            ),
            prefilter: Some(r"://[^/ \t\r\n]*@"),
            validate: None,
            // `://` before `@`.
            needs: Needs {
                colons: 1,
                at: true,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "jwt",
            pattern: Cow::Borrowed(
                r"(?-u:\b)eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            ),
            prefilter: Some(r"eyJ[A-Za-z0-9_-]{4}"),
            validate: None,
            // `eyJ…` then two dots.
            needs: Needs {
                dots: 2,
                json_base64: true,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "aws_access_key",
            pattern: Cow::Borrowed(
                r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|APKA)[A-Z0-9]{16}(?-u:\b)",
            ),
            prefilter: Some(
                r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA|APKA)[A-Z0-9]{16}",
            ),
            validate: None,
            // A four-letter prefix and 16 more `[A-Z0-9]`.
            needs: Needs {
                upper_run: 20,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "secret",
            pattern: Cow::Owned(secret),
            prefilter: Some(
                r#"(?i-u:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|secret[_-]?key|client[_-]?secret|authorization|credentials?|session[_-]?id|sessionid|cookie|passwort|kennwort|senha|contrasena|mot[_ -]de[_ -]passe)["']?[ \t]*[:=]"#,
            ),
            validate: Some(secret_value),
            // A `:` or `=` (or `=>`) after the key.
            needs: Needs {
                assign: true,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "secret",
            pattern: Cow::Owned(secret_words),
            prefilter: Some(SECRET_WORDS),
            validate: Some(secret_word_value),
            // Words in other scripts: the separate non-ASCII set decides.
            needs: Needs::default(),
        },
        BuiltIn {
            name: "bearer",
            pattern: Cow::Borrowed(
                r"(?-u:\b)(?i-u:bearer|basic|digest)[ \t]+(?P<v>[A-Za-z0-9._~+/=-]{8,})",
            ),
            prefilter: Some(r"(?i-u:bearer|basic|digest)[ \t]+[A-Za-z0-9._~+/=-]{8}"),
            validate: Some(token_value),
            // A space or tab after the scheme.
            needs: Needs {
                blank: true,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "email",
            pattern: Cow::Borrowed(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?-u:\b)"),
            prefilter: Some(r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+\."),
            validate: None,
            // `@`, then a dot before the top-level domain.
            needs: Needs {
                at: true,
                dots: 1,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "kr_rrn",
            pattern: Cow::Borrowed(
                r"(?-u:\b)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-8][0-9]{6}(?-u:\b)",
            ),
            prefilter: None,
            validate: Some(kr_rrn),
            // 6 digits of a date and 7 more.
            needs: Needs {
                digits: 13,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "card",
            // Every network prefix starts with 2 to 6, so epoch milliseconds never get here.
            pattern: Cow::Borrowed(r"(?-u:\b)[2-6](?:[ -]?[0-9]){12,18}(?-u:\b)"),
            prefilter: None,
            validate: Some(card),
            // 13 to 19 digits.
            needs: Needs {
                digits: 13,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "ssn",
            pattern: Cow::Borrowed(
                r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})(?-u:\b)",
            ),
            prefilter: None,
            validate: Some(ssn),
            // 3, 2 and 4 digits, two dashes or two spaces between them.
            needs: Needs {
                digits: 9,
                dashes_or_spaces: 2,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "phone",
            pattern: Cow::Borrowed(concat!(
                // E.164 and international forms: +, then 8 to 15 digits with separators.
                r"\+[1-9](?:[ .-]?\(?[0-9]\)?){7,14}",
                // North American: (555) 123-4567, 555-123-4567, 1-555-123-4567.
                r"|(?:(?-u:\b)1[ .-])?(?:\([2-9][0-9]{2}\)[ ]?|(?-u:\b)[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}(?-u:\b)",
                // Korean mobile: 010-1234-5678, 010 1234 5678, 01012345678.
                r"|(?-u:\b)01[016789](?:-[0-9]{3,4}-|\.[0-9]{3,4}\.| [0-9]{3,4} |[0-9]{3,4})[0-9]{4}(?-u:\b)",
                // Korean landline: 02-123-4567, 031-123-4567.
                r"|(?-u:\b)0(?:2|[3-6][1-5])[-. ][0-9]{3,4}[-. ][0-9]{4}(?-u:\b)",
                // UK-style national: 020 7946 0958.
                r"|(?-u:\b)0[1-9][0-9]{1,3} [0-9]{3,4} [0-9]{3,4}(?-u:\b)",
            )),
            prefilter: None,
            validate: Some(phone),
            // The shortest form, E.164: `+`, then 8 digits or more (the others take 9 or 10).
            // Every form but E.164 (`+`) and the UK's (spaces) ends in four digits.
            needs: Needs {
                digits: 8,
                plus_blank_or_four_digits: true,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "ipv6",
            pattern: Cow::Borrowed(
                r"(?:^|[^A-Za-z0-9_:.])(?P<v>[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3})",
            ),
            // An address has a `::`, eight groups, or six and an IPv4 tail: times (12:30:45) and
            // MAC addresses never get here.
            prefilter: Some(
                r"::|(?:[0-9A-Fa-f]{1,4}:){6}(?:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]|[0-9]{1,3}\.)",
            ),
            validate: Some(ipv6),
            // At least two groups after the first: two colons.
            needs: Needs {
                colons: 2,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "ipv4",
            pattern: Cow::Borrowed(
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?-u:\b)",
            ),
            prefilter: None,
            validate: Some(ipv4),
            // Four numbers and three dots.
            needs: Needs {
                digits: 4,
                dots: 3,
                ..Needs::default()
            },
        },
        BuiltIn {
            name: "aws_secret_key",
            pattern: Cow::Borrowed(r"(?:^|[^A-Za-z0-9/+])(?P<v>[A-Za-z0-9/+]{40})"),
            // The validator wants the run to end there; longer base64 runs never get here.
            prefilter: Some(r"(?:^|[^A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?:[^A-Za-z0-9/+=]|$)"),
            validate: Some(aws_secret_key),
            // 40 `[A-Za-z0-9/+]` in a row.
            needs: Needs {
                base64_run: 40,
                ..Needs::default()
            },
        },
    ]
}

fn byte_at(hay: &str, i: usize) -> Option<u8> {
    hay.as_bytes().get(i).copied()
}

fn digits(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
}

/// Luhn checksum over the digits of `text`.
pub(crate) fn luhn(text: &str) -> bool {
    let all: Vec<u32> = digits(text).collect();
    let sum: u32 = all
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer prefixes and lengths of the card networks (Visa, Mastercard, Amex, Discover, JCB,
/// Diners, UnionPay, Maestro).
fn card_network(number: &[u8]) -> bool {
    let len = number.len();
    let prefix = |n: usize| -> u32 {
        number
            .iter()
            .take(n)
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16 || matches!(p2, 50 | 56..=59) && len >= 12,
        2 => (2221..=2720).contains(&p4) && len == 16,
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
                || ((matches!(p2, 36 | 38 | 39) || (300..=305).contains(&p3)) && len >= 14)
        }
        6 => (16..=19).contains(&len) || (len >= 12 && matches!(p2, 60..=69)),
        _ => false,
    }
}

/// Cards: the digit run must pass Luhn and start with a network prefix. When the whole run
/// fails, the longest run of whole separator-delimited groups that passes is taken instead
/// (`order 12 4111 1111 1111 1111`).
fn card(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let text = &hay[start..end];
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_start = None;
    for (i, b) in text.bytes().enumerate() {
        match (b.is_ascii_digit(), group_start) {
            (true, None) => group_start = Some(i),
            (false, Some(s)) => {
                groups.push((s, i));
                group_start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = group_start {
        groups.push((s, text.len()));
    }
    let is_card = |a: usize, b: usize| {
        let number: Vec<u8> = text[a..b].bytes().filter(u8::is_ascii_digit).collect();
        (13..=19).contains(&number.len())
            && card_network(&number)
            && luhn(std::str::from_utf8(&number).unwrap_or(""))
    };
    let mut best: Option<(usize, usize)> = None;
    for i in 0..groups.len() {
        for j in (i..groups.len()).rev() {
            let (a, b) = (groups[i].0, groups[j].1);
            if best.is_some_and(|(x, y)| y - x >= b - a) {
                break;
            }
            if is_card(a, b) {
                best = Some((a, b));
                break;
            }
        }
    }
    best.map(|(a, b)| (start + a, start + b))
}

fn ssn(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let d: Vec<u32> = digits(&hay[start..end]).collect();
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5..].iter().fold(0, |a, x| a * 10 + x);
    let ok = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    ok.then_some((start, end))
}

fn days_in_month(month: u32, year: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Korean resident registration numbers: YYMMDD-GNNNNNN with a real date (the 7th digit gives
/// the century); without the dash the old check digit must also hold.
fn kr_rrn(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let text = &hay[start..end];
    let d: Vec<u32> = digits(text).collect();
    let century = match d[6] {
        1 | 2 | 5 | 6 => 1900,
        3 | 4 | 7 | 8 => 2000,
        _ => return None,
    };
    let year = century + d[0] * 10 + d[1];
    let month = d[2] * 10 + d[3];
    let day = d[4] * 10 + d[5];
    if day > days_in_month(month, year) {
        return None;
    }
    if !text.contains('-') {
        const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
        let sum: u32 = d.iter().zip(WEIGHTS).map(|(a, w)| a * w).sum();
        if (11 - sum % 11) % 10 != d[12] {
            return None;
        }
    }
    Some((start, end))
}

/// Phones: not part of a longer run of digit groups (`5527 0325 9770 4154`), and international
/// numbers must not run on into more digits.
fn phone(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let bytes = hay.as_bytes();
    let separator = |b: u8| matches!(b, b' ' | b'.' | b'-');
    if byte_at(hay, end).is_some_and(|b| b.is_ascii_digit())
        || (byte_at(hay, end).is_some_and(separator)
            && byte_at(hay, end + 1).is_some_and(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
        return None;
    }
    if start > 1 && separator(bytes[start - 1]) && bytes[start - 2].is_ascii_digit() {
        return None;
    }
    Some((start, end))
}

/// IPv4: not part of a longer dotted run (OIDs, four-part versions followed by more parts),
/// and not a version: a product token's (`Chrome/124.0.0.0`) or a named one
/// (`Version=13.0.0.0`, `version: 1.2.3.4`).
fn ipv4(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if start > 0 && byte_at(hay, start - 1) == Some(b'.') {
        return None;
    }
    if byte_at(hay, end) == Some(b'.') && byte_at(hay, end + 1).is_some_and(|b| b.is_ascii_digit())
    {
        return None;
    }
    let before = &hay.as_bytes()[..start];
    if let [.., b, b'/'] = before
        && b.is_ascii_alphanumeric()
    {
        return None;
    }
    let named = before.trim_ascii_end();
    let named = named
        .strip_suffix(b"=")
        .or_else(|| named.strip_suffix(b":"))
        .unwrap_or(named)
        .trim_ascii_end();
    if named.len() >= 7 && named[named.len() - 7..].eq_ignore_ascii_case(b"version") {
        return None;
    }
    Some((start, end))
}

/// IPv6: the candidate run of hex digits and colons must parse as an address, contain a digit
/// (so `std::vec` or `cafe::face` stay) and two groups, and must not run on into a word.
fn ipv6(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if byte_at(hay, end).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return None;
    }
    let text = &hay[start..end];
    if !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    // `1::` and `::1` parse but are not worth a placeholder (and `::1` is loopback).
    if text.split(':').filter(|g| !g.is_empty()).count() < 2 {
        return None;
    }
    text.parse::<Ipv6Addr>().ok().map(|_| (start, end))
}

/// AWS secret keys: exactly 40 characters, mixing upper case, lower case and digits.
fn aws_secret_key(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if byte_at(hay, end).is_some_and(|b| b.is_ascii_alphanumeric() || b"/+=".contains(&b)) {
        return None;
    }
    let text = &hay[start..end];
    let upper = text.bytes().any(|b| b.is_ascii_uppercase());
    let lower = text.bytes().any(|b| b.is_ascii_lowercase());
    let digit = text.bytes().any(|b| b.is_ascii_digit());
    (upper && lower && digit).then_some((start, end))
}

/// Secret values: a quoted value runs to its closing quote (it may hold spaces), a value of a
/// `key: value` or `key = value` line (YAML-ish text, ini files) to the end of the line; the
/// closing brackets of the structure around it are not part of it. SQL and format
/// placeholders (`?`, `%s`, `%(name)s`, `$1`, `:name`, `@name`) and masks (`***`) are skipped.
fn secret_value(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let text = hay[start..end].trim_end_matches([')', '.', ',', '!']);
    let ident =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let placeholder = text == "?"
        || matches!(text, "%s" | "%d" | "%b")
        || text
            .strip_prefix("%(")
            .and_then(|t| t.strip_suffix(")s"))
            .is_some_and(ident)
        || text
            .strip_prefix('$')
            .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        || text.strip_prefix(':').is_some_and(ident)
        || text.strip_prefix('@').is_some_and(ident)
        || text.bytes().all(|b| b == b'*' || b == b'x' || b == b'X')
        || ["null", "none", "true", "false", "undefined"]
            .iter()
            .any(|w| text.eq_ignore_ascii_case(w));
    (!placeholder).then(|| (start, value_end(hay, start, end)))
}

/// Secret values after a word in another language (the match is the word and what separates
/// it from the value): with a separator (`비밀번호: …`, `암호=…`) as [`secret_value`]; after a
/// mere space (`토큰 …`) only what looks like a credential, so that `토큰 만료` ("token expired")
/// stays. The value stops at whitespace, separators, quotes and brackets, the CJK ones included.
fn secret_word_value(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let stop = |c: char| c.is_whitespace() || "&;,\"'<>[]“”「」".contains(c);
    let rest = &hay[end..];
    let first = rest.chars().next()?;
    if stop(first) || "{}(".contains(first) {
        return None;
    }
    let value_end = end + rest.find(stop).unwrap_or(rest.len());
    let before = hay[start..end].trim_end_matches(['"', '\'', '“', '「', ' ', '\t']);
    let separated = before.ends_with([':', '=', '>', '：']);
    let spaced = hay[..end].ends_with([' ', '\t']);
    let credential =
        spaced && token_value(hay, end, value_end).is_some() && hay[end..value_end].is_ascii();
    if separated || credential {
        secret_value(hay, end, value_end)
    } else {
        None
    }
}

/// Where a secret value found at `start..end` really ends (see [`secret_value`]).
fn value_end(hay: &str, start: usize, end: usize) -> usize {
    let bytes = hay.as_bytes();
    let line_end = hay[start..]
        .find(['\n', '\r'])
        .map_or(hay.len(), |at| start + at);
    let quote = start
        .checked_sub(1)
        .and_then(|i| bytes.get(i))
        .copied()
        .filter(|b| matches!(b, b'"' | b'\''));
    let end = match quote {
        Some(q) => {
            let mut close = None;
            let mut at = start;
            while at < line_end {
                match bytes[at] {
                    b'\\' => at += 1,
                    b if b == q => {
                        close = Some(at);
                        break;
                    }
                    _ => {}
                }
                at += 1;
            }
            close.unwrap_or(end).max(end)
        }
        // Not in a form body or a connection string (`token=…&page=2`, `Password=…;Server=…`).
        None if starts_a_line(hay, start)
            && !hay[end..line_end]
                .split(['&', ';'])
                .skip(1)
                .any(|part| part.contains('=')) =>
        {
            start + hay[start..line_end].trim_end().len().max(end - start)
        }
        None => end,
    };
    // Closing brackets with no opening one in the value belong to the structure around it.
    let mut end = end.min(line_end.max(end));
    loop {
        let value = &hay[start..end];
        let unbalanced = |open: char, close: char| {
            value.ends_with(close) && value.matches(close).count() > value.matches(open).count()
        };
        if end > start + 1 && (unbalanced('(', ')') || unbalanced('{', '}')) {
            end -= 1;
        } else {
            return end;
        }
    }
}

/// Whether the value at `start` is that of a `key: value` / `key = value` line: only a key
/// (optionally a YAML list dash) and the separator stand between it and the line's start.
fn starts_a_line(hay: &str, start: usize) -> bool {
    let before = &hay[..start];
    let line = before
        .rfind(['\n', '\r'])
        .map_or(before, |at| &before[at + 1..]);
    let Some((key, _)) = line.split_once([':', '=']) else {
        return false;
    };
    let rest = &line[key.len() + 1..];
    let key = key
        .trim()
        .trim_start_matches("- ")
        .trim_matches(['"', '\''])
        .trim();
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && rest
            .trim_start_matches(['>', ' ', '\t', '"', '\''])
            .is_empty()
}

/// Bearer/Basic credentials: a token has a digit or punctuation (so "basic information" stays).
fn token_value(hay: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let text = &hay[start..end];
    text.bytes()
        .any(|b| b.is_ascii_digit() || b"._~+/=-".contains(&b))
        .then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_neighbours() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111111111111112"));
    }

    #[test]
    fn card_narrows_to_the_valid_groups() {
        let hay = "order 12 4111 1111 1111 1111";
        let (a, b) = card(hay, 6, hay.len()).expect("card");
        assert_eq!(&hay[a..b], "4111 1111 1111 1111");
        assert_eq!(card("1234 5678 9012 3456", 0, 19), None);
    }

    #[test]
    fn kr_rrn_checks_dates() {
        let ok = "900101-1234567";
        assert!(kr_rrn(ok, 0, ok.len()).is_some());
        let bad = "900231-1234567";
        assert!(kr_rrn(bad, 0, bad.len()).is_none());
    }

    #[test]
    fn ipv6_needs_a_digit_and_a_parse() {
        let hay = "fe80::1ff:fe23:4567:890a";
        assert!(ipv6(hay, 0, hay.len()).is_some());
        assert!(ipv6("cafe::face", 0, 10).is_none());
        assert!(ipv6("12:30:45", 0, 8).is_none());
    }
}
