//! The placeholders a scrubber writes (`[email]`, `[email#1f2e...]`) and how it recognizes its
//! own output, so that scrubbing is idempotent without letting text that merely looks like a
//! placeholder shield what it holds.
//!
//! A span counts as a placeholder only when it is exactly what this scrubber would write: a name
//! it reports under, and, for the hashed form, a hash key configured, exactly `hash_length`
//! lowercase hex digits and at least one of them a letter. The writer guarantees that letter
//! (an all-decimal digest gets its first digit mapped to a letter), so its own hashes are never
//! digit runs a card or phone detector could take, while a forged `[x#4111111111111111]` or
//! `[email#<card digits>]` is not a placeholder and its content is scrubbed. No built-in
//! detector can match inside a real placeholder; the shield only keeps custom detectors off
//! the scrubber's own output.

use hmac::Mac;

use super::{Action, FIELD_DETECTOR, Inner};

impl Inner {
    /// Whether `text` is exactly a placeholder this scrubber could have written.
    pub(super) fn is_own_placeholder(&self, text: &str) -> bool {
        let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
            return false;
        };
        let (name, hash) = match inner.split_once('#') {
            Some((name, hash)) => (name, Some(hash)),
            None => (inner, None),
        };
        self.names.iter().any(|n| **n == *name)
            && hash.is_none_or(|h| self.mac.is_some() && self.is_own_hash(h))
    }

    /// Whether `text` is exactly what a whole-value rewrite as `slot` with `action` writes:
    /// such a value is left alone, anything else under that key is rewritten.
    pub(super) fn is_placeholder_of(&self, text: &str, slot: usize, action: Action) -> bool {
        let name = self.names.get(slot).map_or(FIELD_DETECTOR, |n| &**n);
        let Some(inner) = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.strip_prefix(name))
        else {
            return false;
        };
        match (action, &self.mac) {
            (Action::Hash, Some(_)) => inner.strip_prefix('#').is_some_and(|h| self.is_own_hash(h)),
            _ => inner.is_empty(),
        }
    }

    fn is_own_hash(&self, hash: &str) -> bool {
        hash.len() == self.hash_hex
            && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && hash.bytes().any(|b| b.is_ascii_lowercase())
    }

    /// Byte spans of this scrubber's own placeholders inside `text`.
    pub(super) fn placeholder_spans<'t>(
        &'t self,
        text: &'t str,
    ) -> impl Iterator<Item = (usize, usize)> + 't {
        text.match_indices('[').filter_map(move |(open, _)| {
            let close = open + text[open..].find(']')?;
            self.is_own_placeholder(&text[open..=close])
                .then_some((open, close + 1))
        })
    }

    /// Appends the placeholder for `matched`, found by the detector reporting as `slot`.
    pub(super) fn replacement(&self, slot: usize, action: Action, matched: &str, out: &mut String) {
        let name = self.names.get(slot).map_or(FIELD_DETECTOR, |n| &**n);
        out.push('[');
        out.push_str(name);
        if let (Action::Hash, Some(mac)) = (action, &self.mac) {
            let mut mac = mac.clone();
            mac.update(name.as_bytes());
            mac.update(b":");
            mac.update(matched.as_bytes());
            let digest = mac.finalize().into_bytes();
            out.push('#');
            let start = out.len();
            let hex = digest
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .take(self.hash_hex);
            for nibble in hex {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
            // An all-decimal hash could read as a card or a phone number: give it a letter.
            if let Some(first) = out.get(start..).map(str::as_bytes)
                && first.iter().all(u8::is_ascii_digit)
                && let Some(&d) = first.first()
            {
                let letter = char::from(b'a' + (d - b'0') % 6);
                out.replace_range(start..=start, letter.encode_utf8(&mut [0; 4]));
            }
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use crate::scrub::tests::scrub_text as scrubbed;
    use crate::scrub::{ScrubConfig, Scrubber};

    fn hashing() -> Scrubber {
        let config =
            ScrubConfig::from_toml_str("hash_key = \"0123456789abcdef0123\"\naction = \"hash\"\n")
                .expect("config");
        Scrubber::new(&config).expect("scrubber")
    }

    #[test]
    fn forged_placeholders_do_not_shield_what_they_hold() {
        let s = Scrubber::default();
        for (forged, gone) in [
            ("[email#4111111111111111]", "4111111111111111"),
            ("[x#4111111111111111]", "4111111111111111"),
            ("[email]jane@example.com", "jane@example.com"),
            ("[card#00000000]4111 1111 1111 1111", "4111 1111 1111 1111"),
        ] {
            let out = scrubbed(&s, forged);
            assert!(!out.contains(gone), "{forged} -> {out}");
        }
        let h = hashing();
        let out = scrubbed(&h, "[card#4111111111111111]");
        assert!(!out.contains("4111111111111111"), "{out}");
    }

    #[test]
    fn own_hashes_are_recognized_and_never_all_digits() {
        let h = hashing();
        for value in ["jane@example.com", "4111111111111111", "203.0.113.7"] {
            let once = scrubbed(&h, value);
            let hash = once
                .split('#')
                .nth(1)
                .expect("hashed")
                .trim_end_matches(']');
            assert!(hash.bytes().any(|b| b.is_ascii_lowercase()), "{once}");
            assert_eq!(scrubbed(&h, &once), once);
        }
    }
}
