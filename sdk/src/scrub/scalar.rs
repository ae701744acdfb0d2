//! The rules for one scalar, the only place a string, a number or a map key is judged: field
//! rules and exemptions, key-name hints, the detectors (pre-filtered by one `RegexSet`), the
//! decoded form of percent- and `\u`-escaped text, and the fixpoint that makes a second pass
//! find nothing. The Value, typed and text walks all end here.

use serde_json::Value;

use super::clean;
use super::decode::Decoded;
use super::needs::Shape;
use super::{Action, BUILT_IN_NAMES, Ctx, Fate, Hit, Inner, Rule, ScrubReport, keys};

/// What to look for in one string: the field rule in force and the key it is under (a key
/// naming a version silences `ipv4`; only asked once a detector runs).
#[derive(Clone, Copy)]
pub(super) struct Scan<'a> {
    rule: Option<&'a Rule>,
    key: Option<&'a str>,
}

/// Whether `hits` (in order, not overlapping) cover all of a text of `len` bytes, end to end.
fn tiles(hits: &[Hit], len: usize) -> bool {
    let mut end = 0;
    for h in hits {
        if h.start != end {
            return false;
        }
        end = h.end;
    }
    end == len
}

impl Inner {
    fn scan<'a>(key: Option<&'a str>, ctx: Ctx<'a>) -> Scan<'a> {
        Scan {
            rule: ctx.rule,
            key,
        }
    }

    /// Whether detector `slot` is silenced for strings under `key`.
    fn quiet(&self, slot: usize, key: Option<&str>) -> bool {
        Some(slot) == self.ipv4_slot && key.is_some_and(keys::is_version)
    }

    pub(super) fn action(&self, slot: usize, base: Action, rule: Option<&Rule>) -> Action {
        let Some(rule) = rule else { return base };
        rule.per
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, a)| *a)
            .or(rule.all)
            .unwrap_or(base)
    }

    /// Finds every match to rewrite in `text`, non-overlapping and in order.
    fn find(&self, text: &str, scan: Scan<'_>, hits: &mut Vec<Hit>) {
        if self.set.is_match(text) || (!text.is_ascii() && self.non_ascii_set.is_match(text)) {
            self.find_all(text, scan, true, hits);
        }
    }

    /// [`Inner::find`] without the pre-filters (the set and the detectors' needs): every
    /// detector scans `text`.
    pub(super) fn find_unfiltered(&self, text: &str, hits: &mut Vec<Hit>) {
        let scan = Scan {
            rule: None,
            key: None,
        };
        self.find_all(text, scan, false, hits);
    }

    /// [`Inner::find_unfiltered`] with the detectors' needs checked (not the set).
    #[cfg(test)]
    pub(super) fn find_gated(&self, text: &str, hits: &mut Vec<Hit>) {
        let scan = Scan {
            rule: None,
            key: None,
        };
        self.find_all(text, scan, true, hits);
    }

    /// Every match of every detector in `text`; with `gated`, only the detectors whose
    /// needs `text` meets are searched (the same hits: what is skipped cannot match).
    fn find_all(&self, text: &str, scan: Scan<'_>, gated: bool, hits: &mut Vec<Hit>) {
        // The set only says whether anything may match: asking it which patterns do (an
        // overlapping search) builds far more DFA states than the detectors' own regexes, which
        // have literal pre-filters and small DFAs. Counting what the text holds is cheaper
        // still, and rules out most of them.
        let shape = gated.then(|| Shape::of(text));
        for (i, d) in self.detectors.iter().enumerate() {
            if shape.is_some_and(|shape| !d.needs.met_by(&shape) || (d.non_ascii && shape.ascii)) {
                continue;
            }
            let action = self.action(d.slot, d.action, scan.rule);
            if action == Action::Keep || self.quiet(d.slot, scan.key) {
                continue;
            }
            // Only detectors with a `v` group pay for capture positions, and only once a plain
            // search found something: most strings the set flagged hold nothing for most
            // detectors.
            let mut locations: Option<regex::CaptureLocations> = None;
            let mut pos = 0;
            while pos <= text.len() {
                let Some(found) = d.regex.find_at(text, pos) else {
                    break;
                };
                let (whole, (start, end)) = match d.group {
                    Some(g) => {
                        let locations =
                            locations.get_or_insert_with(|| d.regex.capture_locations());
                        let Some(whole) = d.regex.captures_read_at(locations, text, pos) else {
                            break;
                        };
                        let span = locations.get(g).unwrap_or((whole.start(), whole.end()));
                        (whole, span)
                    }
                    None => (found, (found.start(), found.end())),
                };
                let span = match d.validate {
                    Some(check) => check(text, start, end),
                    None => Some((start, end)),
                };
                if let Some((start, end)) = span
                    && end > start
                {
                    hits.push(Hit {
                        start,
                        end,
                        detector: i,
                        action,
                    });
                }
                pos = if whole.end() > whole.start() {
                    whole.end()
                } else {
                    text[whole.end()..]
                        .chars()
                        .next()
                        .map_or(text.len() + 1, |c| whole.end() + c.len_utf8())
                };
            }
        }
        if hits.is_empty() {
            return;
        }
        if text.contains('[') {
            // A hit never covers one of this scrubber's placeholders: one that runs into a
            // placeholder (a value extended to the end of its line) stops before it, one that
            // starts inside a placeholder is not a hit.
            let spans: Vec<(usize, usize)> = self.placeholder_spans(text).collect();
            hits.retain_mut(|h| {
                for &(a, b) in &spans {
                    if h.start < b && a < h.end {
                        if a <= h.start {
                            return false;
                        }
                        h.end = a;
                    }
                }
                true
            });
        }
        hits.sort_by_key(|h| (h.start, h.detector, std::cmp::Reverse(h.end)));
        let mut last_end = 0;
        hits.retain(|h| {
            let keep = h.start >= last_end;
            if keep {
                last_end = h.end;
            }
            keep
        });
    }

    fn slot_of(&self, detector: usize) -> usize {
        self.detectors
            .get(detector)
            .map_or(self.field_slot, |d| d.slot)
    }

    /// Rewrites `text` as a whole (key name or whole-value rule) unless it already is what this
    /// rewrite writes; returns the new text when it changed.
    pub(super) fn whole(
        &self,
        text: &str,
        slot: usize,
        action: Action,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        if self.is_placeholder_of(text, slot, action) {
            return (Fate::Keep, None);
        }
        report.add(slot);
        if action == Action::Drop {
            return (Fate::Drop, None);
        }
        let mut out = String::with_capacity(24 + self.hash_hex);
        self.replacement(slot, action, text, &mut out);
        report.grow(out.len() as i64 - text.len() as i64);
        (Fate::Keep, Some(out))
    }

    /// The hint from a key name, as `(slot, detector action)`, if key names are honoured and
    /// the detector is enabled.
    pub(super) fn key_hint(&self, key: Option<&str>) -> Option<(usize, Action)> {
        if !self.key_names {
            return None;
        }
        let key = key?;
        // A rewritten key (`[card]`, `password=[secret]`) hints at what is left of it, not at
        // the placeholder's name.
        let name = if key.contains('[') {
            let mut rest = String::with_capacity(key.len());
            let mut last = 0;
            for (a, b) in self.placeholder_spans(key) {
                rest.push_str(&key[last..a]);
                last = b;
            }
            rest.push_str(&key[last..]);
            keys::hint(&rest)?
        } else {
            keys::hint(key)?
        };
        let slot = BUILT_IN_NAMES.iter().position(|n| *n == name)?;
        let detector = (*self.hint_slots.get(slot)?)?;
        Some((slot, self.detectors.get(detector)?.action))
    }

    /// Scrubs one string found under `key`, in place.
    pub(super) fn scrub_str(
        &self,
        text: &mut String,
        key: Option<&str>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> Fate {
        let (fate, rewritten) = self.scrub_ref(text, key, ctx, report);
        if let Some(new) = rewritten {
            *text = new;
        }
        fate
    }

    /// Scrubs one string found under `key`; returns the new text when it changed.
    pub(super) fn scrub_ref(
        &self,
        text: &str,
        key: Option<&str>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        self.scrub_hinted(text, key, self.key_hint(key), ctx, report)
    }

    /// [`Inner::scrub_ref`] with `key`'s hint ([`Inner::key_hint`]) already worked out.
    pub(super) fn scrub_hinted(
        &self,
        text: &str,
        key: Option<&str>,
        hint: Option<(usize, Action)>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        if text.is_empty() {
            return (Fate::Keep, None);
        }
        if let Some(rule) = ctx.rule {
            if rule.exempts_everything() {
                return (Fate::Keep, None);
            }
            if rule.whole_value {
                let action = self.action(self.field_slot, self.default_action, Some(rule));
                if action != Action::Keep {
                    return self.whole(text, self.field_slot, action, report);
                }
            }
        }
        if let Some((slot, base)) = hint {
            let action = self.action(slot, base, ctx.rule);
            if action != Action::Keep {
                return self.whole(text, slot, action, report);
            }
        }
        self.rewrite(text, Self::scan(key, ctx), report)
    }

    /// Scrubs a map key (its member's context `ctx`): detectors only, as what it decodes to;
    /// key names and whole-value rules speak of values. Returns the new key when it changed.
    pub(super) fn scrub_key(
        &self,
        key: &str,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        if key.is_empty() || ctx.rule.is_some_and(Rule::exempts_everything) {
            return (Fate::Keep, None);
        }
        self.rewrite(key, Self::scan(None, ctx), report)
    }

    /// Rewrites every detector match in `text`, as written and as decoded, until none is left.
    fn rewrite(
        &self,
        text: &str,
        scan: Scan<'_>,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        // Rewriting can change what surrounds the other candidates (a card next to a phone
        // number), so repeat until nothing is found: the output is then a fixpoint and a second
        // pass finds nothing. Each round turns at least one character into a placeholder, which
        // is never matched again, so this ends; the bound only guards against a bug.
        // Remembered clean strings are only asked and told under the conditions `clean.rs`
        // states: no field rule, and (when telling) no key that silences a detector.
        let rememberable =
            self.remember_clean && scan.rule.is_none() && text.len() <= clean::MAX_LEN;
        if rememberable && clean::known(self.id, text) {
            return (Fate::Keep, None);
        }
        let mut hits = Vec::new();
        let mut owned: Option<String> = None;
        for _round in 0..64 {
            let current = owned.as_deref().unwrap_or(text);
            hits.clear();
            self.find(current, scan, &mut hits);
            let decoded = if hits.is_empty() {
                // Nothing as written: look at what it decodes to.
                let Some(decoded) = Decoded::of(current) else {
                    break;
                };
                self.find(&decoded.text, scan, &mut hits);
                if hits.is_empty() {
                    break;
                }
                Some(decoded)
            } else {
                None
            };
            if hits.iter().any(|h| h.action == Action::Drop) {
                for h in &hits {
                    report.add(self.slot_of(h.detector));
                }
                return (Fate::Drop, None);
            }
            let mut out = String::with_capacity(current.len() + 8 * hits.len());
            let mut last = 0;
            for h in &hits {
                let (matched, (start, end)) = match &decoded {
                    Some(d) => (&d.text[h.start..h.end], d.source(h.start, h.end)),
                    None => (&current[h.start..h.end], (h.start, h.end)),
                };
                out.push_str(&current[last..start]);
                let slot = self.slot_of(h.detector);
                self.replacement(slot, h.action, matched, &mut out);
                report.add(slot);
                last = end;
            }
            out.push_str(&current[last..]);
            // Rewritten whole into placeholders, the text holds nothing a detector can match
            // (no hit starts inside a placeholder) nor anything to decode: another round would
            // find nothing.
            let done = decoded.is_none()
                && tiles(&hits, current.len())
                && memchr::memchr3(b'%', b'\\', b'+', out.as_bytes()).is_none();
            owned = Some(out);
            if done {
                break;
            }
        }
        match &owned {
            Some(new) if new.len() != text.len() => {
                report.grow(new.len() as i64 - text.len() as i64);
            }
            Some(_) => {}
            None if rememberable && !scan.key.is_some_and(keys::is_version) => {
                clean::note(self.id, text);
            }
            None => {}
        }
        (Fate::Keep, owned)
    }

    /// Scrubs a number found under `key`: only key names that hold numbers (cards, secrets,
    /// SSNs, phones) with at least three digits turn it into a placeholder string.
    pub(super) fn scrub_number(
        &self,
        value: &mut Value,
        key: Option<&str>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> Fate {
        let Value::Number(n) = value else {
            return Fate::Keep;
        };
        let digits = || match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.checked_ilog10().unwrap_or(0) + 1,
            (None, Some(i)) => i.unsigned_abs().checked_ilog10().unwrap_or(0) + 1,
            _ => 0,
        };
        let Some((slot, action)) = self.number_action(key, ctx, digits) else {
            return Fate::Keep;
        };
        let text = n.to_string();
        let (fate, rewritten) = self.whole(&text, slot, action, report);
        *value = Value::String(rewritten.unwrap_or(text));
        fate
    }

    /// Whether a number under `key` with `digits()` decimal digits (0 for non-integers) is
    /// rewritten whole, and as what: `(report slot, action)`.
    pub(super) fn number_action(
        &self,
        key: Option<&str>,
        ctx: Ctx<'_>,
        digits: impl FnOnce() -> u32,
    ) -> Option<(usize, Action)> {
        if ctx.rule.is_some_and(Rule::exempts_everything) {
            return None;
        }
        let (slot, base) = self.key_hint(key)?;
        if self.names.get(slot).is_some_and(|n| &**n == "email") {
            return None;
        }
        if digits() < 3 {
            return None;
        }
        let action = self.action(slot, base, ctx.rule);
        (action != Action::Keep).then_some((slot, action))
    }
}
