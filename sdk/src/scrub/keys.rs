//! Key names that say what their value holds (`password`, `customer_email`, `cardNumber`,
//! `cvv`, ...): values under them are scrubbed whole, whatever they look like.
//!
//! Only the last word (or last two words) of the key counts, so `card_number` and `apiKey` are
//! hints while `token_type`, `secret_name` and `email_count` are not. Keys are split on
//! punctuation and camelCase without allocating.

/// Longest word a hint is made of; longer words are never hints.
const MAX_WORD: usize = 16;

/// Copies `word` lower-cased into `buf`, or `None` when it is too long to be a hint.
fn lower<'b>(word: &str, buf: &'b mut [u8; MAX_WORD]) -> Option<&'b [u8]> {
    let bytes = word.as_bytes();
    let out = buf.get_mut(..bytes.len())?;
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

/// Detector a key name points at, by built-in detector name. Runs for every scalar of a
/// document, so it only copies the last two words to the stack and matches them as bytes.
pub(crate) fn hint(key: &str) -> Option<&'static str> {
    let mut last: Option<&str> = None;
    let mut before: Option<&str> = None;
    for word in words(key) {
        before = last;
        last = Some(word);
    }
    let mut last_buf = [0u8; MAX_WORD];
    let last = lower(last?, &mut last_buf)?;
    let mut before_buf = [0u8; MAX_WORD];
    if let Some(first) = before.and_then(|w| lower(w, &mut before_buf)) {
        let pair = match (first, last) {
            (b"api" | b"access" | b"private" | b"secret", b"key") | (b"session", b"id") => {
                Some("secret")
            }
            (b"card", b"number" | b"no" | b"num") | (b"cc", b"number") => Some("card"),
            (b"email" | b"mail", b"address") => Some("email"),
            (b"phone" | b"mobile", b"number") => Some("phone"),
            (b"security", b"number") => Some("ssn"),
            _ => None,
        };
        if pair.is_some() {
            return pair;
        }
    }
    match last {
        b"password" | b"passwd" | b"passphrase" | b"pwd" | b"secret" | b"token" | b"apikey"
        | b"accesstoken" | b"refreshtoken" | b"authorization" | b"credential" | b"credentials"
        | b"cookie" | b"sessionid" | b"privatekey" | b"secretkey" => Some("secret"),
        b"email" | b"mail" | b"emailaddress" => Some("email"),
        b"card" | b"pan" | b"cvv" | b"cvc" | b"cvv2" | b"cardnumber" | b"ccnumber"
        | b"creditcard" => Some("card"),
        b"ssn" => Some("ssn"),
        b"rrn" | b"jumin" => Some("kr_rrn"),
        b"phone" | b"mobile" | b"msisdn" | b"telephone" | b"phonenumber" => Some("phone"),
        _ => None,
    }
}

/// Whether `key` is a plain identifier (`order_id`, `sdkVersion`, `field506680`): a lower-case
/// letter, then up to 38 letters, digits and `_`. No built-in detector can match one: each needs
/// a character such a key lacks (`@`, `:`, `=`, `.`, `+`, a space, a non-ASCII word), a word
/// boundary before a digit or an upper-case run (`4111...`, `AKIA...`), or 40 characters
/// (AWS secret keys); nor is there anything to decode. Keys are then not scanned at all, which
/// keeps the cost of scrubbing keys off ordinary documents. Tested against every detector.
#[inline]
pub(crate) fn is_plain(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() < 40
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes.iter().all(|&b| IDENTIFIER[usize::from(b)])
}

/// Bytes of a plain identifier: ASCII letters, digits and `_` (a table: this runs for every
/// key of every document).
static IDENTIFIER: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    table
};

/// Whether a key names a version (`app_version`, `sdkVersion`, `ver`): four dotted numbers
/// under it are a version, not an IPv4 address.
pub(crate) fn is_version(key: &str) -> bool {
    let Some(last) = words(key).last() else {
        return false;
    };
    let mut buf = [0u8; MAX_WORD];
    matches!(lower(last, &mut buf), Some(b"version" | b"ver" | b"build"))
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

    #[test]
    fn plain_keys_hold_nothing_a_built_in_detector_finds() {
        let s = crate::scrub::Scrubber::default();
        let mut keys: Vec<String> = [
            "order_id",
            "sdkVersion",
            "a4111111111111111",
            "x_4111111111111111",
            "zAKIAIOSFODNN7EXAMPLE",
            "eyJhbGciOiJIUzI1NiJ9",
            "passwordhunter2",
            "a01012345678",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKE",
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        // Every plain key built from a detector's favourite characters.
        for seed in 0u32..2000 {
            let alphabet = b"aAeEyJkKIz0123456789_";
            let mut key = String::from("k");
            let mut x = seed.wrapping_mul(2_654_435_761);
            for _ in 0..(seed % 38) {
                key.push(char::from(alphabet[(x % alphabet.len() as u32) as usize]));
                x = x.rotate_left(5) ^ seed;
            }
            keys.push(key);
        }
        for key in keys {
            assert!(super::is_plain(&key), "{key}");
            assert!(!s.finds_anything(&key), "{key}");
        }
        assert!(!super::is_plain("Order"));
        assert!(!super::is_plain("card-number"));
        assert!(!super::is_plain("jane@example.com"));
    }

    #[test]
    fn version_keys() {
        for key in ["app_version", "sdkVersion", "version", "build"] {
            assert!(super::is_version(key), "{key}");
        }
        for key in ["client_ip", "versions_seen", ""] {
            assert!(!super::is_version(key), "{key}");
        }
    }
}
