//! Key names that say what their value holds (`password`, `customer_email`, `cardNumber`,
//! `cvv`, ...): values under them are scrubbed whole, whatever they look like.
//!
//! Only the last word (or last two words) of the key counts, so `card_number` and `apiKey` are
//! hints while `token_type`, `secret_name` and `email_count` are not. Keys are split on
//! punctuation and camelCase without allocating.

/// Detector a key name points at, by built-in detector name.
pub(crate) fn hint(key: &str) -> Option<&'static str> {
    let mut last: Option<&str> = None;
    let mut before: Option<&str> = None;
    for word in words(key) {
        before = last;
        last = Some(word);
    }
    let last = last?;
    const SINGLE: &[(&str, &str)] = &[
        ("password", "secret"),
        ("passwd", "secret"),
        ("passphrase", "secret"),
        ("pwd", "secret"),
        ("secret", "secret"),
        ("token", "secret"),
        ("apikey", "secret"),
        ("accesstoken", "secret"),
        ("refreshtoken", "secret"),
        ("authorization", "secret"),
        ("credential", "secret"),
        ("credentials", "secret"),
        ("cookie", "secret"),
        ("sessionid", "secret"),
        ("privatekey", "secret"),
        ("secretkey", "secret"),
        ("email", "email"),
        ("mail", "email"),
        ("emailaddress", "email"),
        ("card", "card"),
        ("pan", "card"),
        ("cvv", "card"),
        ("cvc", "card"),
        ("cvv2", "card"),
        ("cardnumber", "card"),
        ("ccnumber", "card"),
        ("creditcard", "card"),
        ("ssn", "ssn"),
        ("rrn", "kr_rrn"),
        ("jumin", "kr_rrn"),
        ("phone", "phone"),
        ("mobile", "phone"),
        ("msisdn", "phone"),
        ("telephone", "phone"),
        ("phonenumber", "phone"),
    ];
    const PAIRS: &[(&str, &str, &str)] = &[
        ("api", "key", "secret"),
        ("access", "key", "secret"),
        ("private", "key", "secret"),
        ("secret", "key", "secret"),
        ("session", "id", "secret"),
        ("card", "number", "card"),
        ("card", "no", "card"),
        ("card", "num", "card"),
        ("cc", "number", "card"),
        ("email", "address", "email"),
        ("mail", "address", "email"),
        ("phone", "number", "phone"),
        ("mobile", "number", "phone"),
        ("security", "number", "ssn"),
    ];
    if let Some(first) = before
        && let Some((_, _, d)) = PAIRS
            .iter()
            .find(|(a, b, _)| first.eq_ignore_ascii_case(a) && last.eq_ignore_ascii_case(b))
    {
        return Some(d);
    }
    SINGLE
        .iter()
        .find(|(w, _)| last.eq_ignore_ascii_case(w))
        .map(|(_, d)| *d)
}

/// Words of a key: split on non-alphanumerics and before an upper-case letter that follows a
/// lower-case one (`cardNumber` -> `card`, `Number`).
fn words(key: &str) -> impl Iterator<Item = &str> {
    let bytes = key.as_bytes();
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() && !bytes[pos].is_ascii_alphanumeric() {
            pos += 1;
        }
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        pos += 1;
        while pos < bytes.len()
            && bytes[pos].is_ascii_alphanumeric()
            && !(bytes[pos].is_ascii_uppercase() && bytes[pos - 1].is_ascii_lowercase())
        {
            pos += 1;
        }
        key.get(start..pos)
    })
}

#[cfg(test)]
mod tests {
    use super::hint;

    #[test]
    fn key_names_point_at_detectors() {
        assert_eq!(hint("password"), Some("secret"));
        assert_eq!(hint("db_password"), Some("secret"));
        assert_eq!(hint("customer_email"), Some("email"));
        assert_eq!(hint("cardNumber"), Some("card"));
        assert_eq!(hint("card_number"), Some("card"));
        assert_eq!(hint("x-api-key"), Some("secret"));
        assert_eq!(hint("cvv"), Some("card"));
        assert_eq!(hint("token_type"), None);
        assert_eq!(hint("email_count"), None);
        assert_eq!(hint("order_id"), None);
        assert_eq!(hint(""), None);
    }
}
