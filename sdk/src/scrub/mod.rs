//! The PII scrubber: rewrites personal data in segment documents before they leave a process,
//! and again in the daemon and the collector for documents from SDKs that do not scrub.
//!
//! A [`Scrubber`] is compiled once from a [`ScrubConfig`]: every enabled detector's regex goes
//! into one `RegexSet`, so a clean string costs one DFA scan and no allocation; the individual
//! regexes and their validators only run on strings the set flagged. Matches become typed
//! placeholders (`[email]`), keyed hashes (`[email#1f2e...]`) or a dropped field. Placeholders
//! are never matched again, which makes scrubbing idempotent.
//!
//! Field paths (for `exempt_fields` and `[fields."..."]` rules) are the JSON names of the X-Ray
//! document from the (sub)segment it is in, joined by dots, arrays transparent:
//! `http.request.url`, `sql.sanitized_query`, `cause.exceptions.message`, `annotations`,
//! `metadata.default.cart`. Ids, trace ids, parent ids, times, `name`, `type`, `namespace` and
//! numbers (except under key names such as `cvv` or `card_number`) are never touched.

mod config;
mod detectors;
mod keys;
mod log;
mod report;
mod text;
mod walk;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use serde_json::Value;
use sha2::Sha256;

pub use config::{
    Action, ConfigError, CustomDetectorConfig, DetectorConfig, FieldRuleConfig, HashKey,
    ScrubConfig,
};
pub use detectors::BUILT_IN_NAMES;
pub use log::{install_panic_hook, log_safe};
pub use report::ScrubReport;

use crate::model::Segment;
use detectors::Validator;

/// The built-in detectors' names and regexes, in priority order (for baselines and docs).
pub fn built_in_patterns() -> impl Iterator<Item = (&'static str, std::borrow::Cow<'static, str>)> {
    detectors::built_ins()
        .into_iter()
        .map(|b| (b.name, b.pattern))
}

/// Name under which `whole_value` field rules are counted.
pub const FIELD_DETECTOR: &str = "field";

/// Scrubs segment documents. Cheap to clone (shares its compiled detectors); `Default` is the
/// built-in configuration.
#[derive(Debug, Clone)]
pub struct Scrubber {
    inner: Arc<Inner>,
}

impl Default for Scrubber {
    fn default() -> Self {
        // The built-in configuration is covered by tests; failing here would be a bug in the
        // built-in patterns, so fall back to a scrubber that redacts every string rather than
        // one that lets data through.
        Self::new(&ScrubConfig::default()).unwrap_or_else(|_| Self::redact_everything())
    }
}

impl Scrubber {
    /// Compiles a scrubber from its configuration; refuses it with an error naming the key.
    pub fn new(config: &ScrubConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            inner: Arc::new(Inner::compile(config)?),
        })
    }

    fn redact_everything() -> Self {
        let names: Arc<[Box<str>]> = Arc::from(vec![Box::<str>::from(FIELD_DETECTOR)]);
        let rule = Rule {
            all: Some(Action::Redact),
            per: Vec::new(),
            whole_value: true,
        };
        Self {
            inner: Arc::new(Inner {
                detectors: Vec::new(),
                set: RegexSet::empty(),
                names,
                hint_slots: Vec::new(),
                key_names: false,
                field_slot: 0,
                default_action: Action::Redact,
                root_rule: Some(rule),
                rules: Vec::new(),
                paths: PathNode::default(),
                mac: None,
                hash_hex: 16,
            }),
        }
    }

    /// Scrubs one document held as JSON, in place.
    pub fn scrub(&self, document: &mut Value) -> ScrubReport {
        let mut report = ScrubReport::new(&self.inner.names);
        if let Value::Object(map) = document {
            self.inner.walk_document_value(map, &mut report);
        } else {
            self.inner
                .scrub_value(document, None, self.inner.root(), &mut report);
        }
        report
    }

    /// Scrubs one typed document in place, with exactly the results of [`Scrubber::scrub`] on
    /// its JSON form.
    pub fn scrub_segment(&self, segment: &mut Segment) -> ScrubReport {
        let mut report = ScrubReport::new(&self.inner.names);
        self.inner.walk_segment(segment, &mut report);
        report
    }

    /// Scrubs one document held as JSON text (a (sub)segment object), without building a
    /// `serde_json::Value`: the same results as [`Scrubber::scrub`] on its parsed form, with
    /// only the rewritten strings and numbers changed in the text.
    ///
    /// `Some(report)`: when something was rewritten, `out` holds the new document text;
    /// when nothing was, `out` is left empty (the input is the output). `None`: the text pass
    /// cannot decide (not a JSON object `serde_json` would accept, nesting deeper than 100, or
    /// a `drop` action applies); scrub a parsed `Value` with [`Scrubber::scrub`] instead.
    /// `out` is a buffer the caller may reuse between documents.
    pub fn scrub_json_text(&self, document: &str, out: &mut String) -> Option<ScrubReport> {
        self.inner.scrub_text_document(document, out)
    }

    /// Scrubs free text (a log line, a header value) with every detector; a `drop` action
    /// empties it.
    pub fn scrub_text(&self, text: &mut String) -> ScrubReport {
        let mut report = ScrubReport::new(&self.inner.names);
        if self
            .inner
            .scrub_str(text, None, self.inner.root(), &mut report)
            == Fate::Drop
        {
            text.clear();
        }
        report
    }

    /// Whether `text` holds anything an enabled detector would rewrite (no key or field rules).
    /// Runs every detector without the pre-filter, so tests can check the pre-filter with it.
    pub fn finds_anything(&self, text: &str) -> bool {
        let mut hits = Vec::new();
        self.inner.find_unfiltered(text, None, &mut hits);
        !hits.is_empty()
    }

    /// A copy with the same configuration whose regexes keep their own search caches. Clones
    /// share one cache pool per regex, which only its first thread reaches without a lock; a
    /// thread that scrubs many documents (a daemon worker) runs faster on its own copy.
    pub fn with_own_caches(&self) -> Self {
        // Cloning a `Regex` or `RegexSet` gives the clone a new, empty cache pool. The names
        // are copied too: every report holds them, and a shared count bounces between cores.
        let mut inner = (*self.inner).clone();
        inner.names = Arc::from(self.inner.names.to_vec());
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Names of the detectors this scrubber counts, in report order.
    pub fn detector_names(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(|n| &**n)
    }
}

/// Whether a scalar stays (possibly rewritten) or its field goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
}

#[derive(Clone)]
struct Detector {
    slot: usize,
    /// Pattern of this detector in the `RegexSet`.
    prefilter: String,
    name: Box<str>,
    regex: Regex,
    group: Option<usize>,
    validate: Option<Validator>,
    action: Action,
}

/// A compiled `[fields."path"]` rule.
#[derive(Debug, Clone)]
struct Rule {
    all: Option<Action>,
    per: Vec<(usize, Action)>,
    whole_value: bool,
}

impl Rule {
    fn exempts_everything(&self) -> bool {
        self.all == Some(Action::Keep) && self.per.is_empty() && !self.whole_value
    }
}

/// The rules' field paths as a trie, so a walk follows it one key at a time without building
/// path strings.
#[derive(Debug, Default, Clone)]
struct PathNode {
    children: Vec<(Box<str>, PathNode)>,
    rule: Option<usize>,
}

impl PathNode {
    fn child(&self, key: &str) -> Option<&PathNode> {
        self.children
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, n)| n)
    }

    fn insert(&mut self, path: &str, rule: usize) {
        let mut node = self;
        for part in path.split('.') {
            let at = match node.children.iter().position(|(k, _)| &**k == part) {
                Some(at) => at,
                None => {
                    node.children.push((part.into(), PathNode::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.rule = Some(rule);
    }
}

/// Where a walk is: its position in the rule trie and the deepest rule seen on the way.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    node: Option<&'a PathNode>,
    rule: Option<&'a Rule>,
}

#[derive(Clone)]
struct Inner {
    detectors: Vec<Detector>,
    set: RegexSet,
    names: Arc<[Box<str>]>,
    /// Report slot -> index in `detectors` for built-ins that key names may point at.
    hint_slots: Vec<Option<usize>>,
    key_names: bool,
    field_slot: usize,
    default_action: Action,
    root_rule: Option<Rule>,
    rules: Vec<Rule>,
    paths: PathNode,
    mac: Option<Hmac<Sha256>>,
    hash_hex: usize,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field(
                "detectors",
                &self.detectors.iter().map(|d| &d.name).collect::<Vec<_>>(),
            )
            .field("rules", &self.rules.len())
            .field("hash", &self.mac.is_some())
            .finish_non_exhaustive()
    }
}

/// One match to rewrite: byte span, index in `detectors` (or `usize::MAX` for a whole-value
/// rule), action.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    detector: usize,
    action: Action,
}

fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `text` is exactly a placeholder this scrubber writes: `[name]` or `[name#hex]`.
fn is_placeholder(text: &str) -> bool {
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return false;
    };
    let (name, hash) = inner.split_once('#').unwrap_or((inner, ""));
    is_name(name)
        && (hash.is_empty()
            || (hash.len() >= 8 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))))
}

/// Byte spans of the placeholders inside `text`.
fn placeholder_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    text.match_indices('[').filter_map(move |(open, _)| {
        let close = open + text[open..].find(']')?;
        is_placeholder(&text[open..=close]).then_some((open, close + 1))
    })
}

impl Inner {
    fn compile(config: &ScrubConfig) -> Result<Self, ConfigError> {
        let default_action = Action::parse(&config.action, "action")?;
        let built_ins = detectors::built_ins();
        for name in config.detectors.keys() {
            if !BUILT_IN_NAMES.contains(&name.as_str()) {
                return Err(ConfigError::key(
                    format!("detectors.{name}"),
                    format!(
                        "unknown detector (built-in detectors: {}; add others under [[custom]])",
                        BUILT_IN_NAMES.join(", ")
                    ),
                ));
            }
        }
        let mut names: Vec<Box<str>> = BUILT_IN_NAMES.iter().map(|n| (*n).into()).collect();
        let mut detectors = Vec::new();
        let mut uses_hash = None;
        for (slot, b) in built_ins.into_iter().enumerate() {
            let settings = config.detectors.get(b.name);
            if settings.is_some_and(|s| !s.enabled) {
                continue;
            }
            let action = match settings.and_then(|s| s.action.as_deref()) {
                Some(a) => Action::parse(a, &format!("detectors.{}.action", b.name))?,
                None => default_action,
            };
            if action == Action::Hash {
                uses_hash.get_or_insert_with(|| format!("detectors.{}.action", b.name));
            }
            let regex = Regex::new(&b.pattern).map_err(|e| {
                ConfigError::key(format!("detectors.{}", b.name), format!("built-in: {e}"))
            })?;
            let prefilter = b
                .prefilter
                .map_or_else(|| b.pattern.to_string(), str::to_owned);
            detectors.push(Detector {
                slot,
                prefilter,
                name: b.name.into(),
                group: regex.capture_names().position(|n| n == Some("v")),
                regex,
                validate: b.validate,
                action,
            });
        }
        for (i, custom) in config.custom.iter().enumerate() {
            let key = format!("custom[{i}]");
            if !is_name(&custom.name) {
                return Err(ConfigError::key(
                    format!("{key}.name"),
                    format!(
                        "\"{}\" is not a detector name (lowercase letters, digits and _)",
                        custom.name
                    ),
                ));
            }
            if names.iter().any(|n| **n == *custom.name) || custom.name == FIELD_DETECTOR {
                return Err(ConfigError::key(
                    format!("{key}.name"),
                    format!("detector \"{}\" is already defined", custom.name),
                ));
            }
            let slot = names.len();
            names.push(custom.name.as_str().into());
            if !custom.enabled {
                continue;
            }
            let action = match custom.action.as_deref() {
                Some(a) => Action::parse(a, &format!("{key}.action"))?,
                None => default_action,
            };
            if action == Action::Hash {
                uses_hash.get_or_insert_with(|| format!("{key}.action"));
            }
            let regex = Regex::new(&custom.pattern).map_err(|e| {
                ConfigError::key(
                    format!("{key}.pattern"),
                    format!("custom detector \"{}\": invalid regex: {e}", custom.name),
                )
            })?;
            if regex.is_match("") {
                return Err(ConfigError::key(
                    format!("{key}.pattern"),
                    format!(
                        "custom detector \"{}\" matches the empty string",
                        custom.name
                    ),
                ));
            }
            detectors.push(Detector {
                slot,
                prefilter: custom.pattern.clone(),
                name: custom.name.as_str().into(),
                group: regex.capture_names().position(|n| n == Some("v")),
                regex,
                validate: None,
                action,
            });
        }
        let field_slot = names.len();
        names.push(FIELD_DETECTOR.into());

        let mut rules = Vec::new();
        let mut paths = PathNode::default();
        let mut root_rule = None;
        let mut add_rule = |path: &str, rule: Rule, key: &str| -> Result<(), ConfigError> {
            if path.is_empty() {
                root_rule = Some(rule);
                return Ok(());
            }
            if path.split('.').any(str::is_empty) {
                return Err(ConfigError::key(
                    key,
                    "field paths are dotted JSON names like http.request.url",
                ));
            }
            paths.insert(path, rules.len());
            rules.push(rule);
            Ok(())
        };
        for (i, path) in config.exempt_fields.iter().enumerate() {
            let rule = Rule {
                all: Some(Action::Keep),
                per: Vec::new(),
                whole_value: false,
            };
            add_rule(path, rule, &format!("exempt_fields[{i}]"))?;
        }
        for (path, field) in &config.fields {
            let key = format!("fields.\"{path}\"");
            let all = match field.action.as_deref() {
                Some(a) => Some(Action::parse(a, &format!("{key}.action"))?),
                None => None,
            };
            if all == Some(Action::Hash) {
                uses_hash.get_or_insert_with(|| format!("{key}.action"));
            }
            let mut per = Vec::new();
            for (name, action) in &field.detectors {
                let akey = format!("{key}.detectors.{name}");
                let Some(slot) = names.iter().position(|n| **n == **name) else {
                    return Err(ConfigError::key(akey, "unknown detector"));
                };
                let action = Action::parse(action, &akey)?;
                if action == Action::Hash {
                    uses_hash.get_or_insert_with(|| akey.clone());
                }
                per.push((slot, action));
            }
            let rule = Rule {
                all,
                per,
                whole_value: field.whole_value,
            };
            add_rule(path, rule, &key)?;
        }

        if !(8..=64).contains(&config.hash_length) {
            return Err(ConfigError::key(
                "hash_length",
                format!("{} is not between 8 and 64", config.hash_length),
            ));
        }
        let key = match (&config.hash_key, &config.hash_key_env) {
            (Some(k), _) => Some(k.0.clone()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(k) => Some(k),
                Err(_) if uses_hash.is_none() => None,
                Err(_) => {
                    return Err(ConfigError::key(
                        "hash_key_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            },
            (None, None) => None,
        };
        let mac = match key {
            Some(k) if k.len() < 16 => {
                return Err(ConfigError::key(
                    "hash_key",
                    "must be at least 16 characters long",
                ));
            }
            Some(k) => Some(
                Hmac::<Sha256>::new_from_slice(k.as_bytes())
                    .map_err(|e| ConfigError::key("hash_key", e.to_string()))?,
            ),
            None => None,
        };
        if let (Some(used_by), None) = (&uses_hash, &mac) {
            return Err(ConfigError::key(
                "hash_key",
                format!("required because {used_by} is \"hash\" (or set hash_key_env)"),
            ));
        }

        let set = RegexSet::new(detectors.iter().map(|d| d.prefilter.as_str()))
            .map_err(|e| ConfigError::key("custom", e.to_string()))?;
        let mut hint_slots = vec![None; BUILT_IN_NAMES.len()];
        for (i, d) in detectors.iter().enumerate() {
            if let Some(h) = hint_slots.get_mut(d.slot) {
                *h = Some(i);
            }
        }
        Ok(Self {
            detectors,
            set,
            names: Arc::from(names),
            hint_slots,
            key_names: config.key_names,
            field_slot,
            default_action,
            root_rule,
            rules,
            paths,
            mac,
            hash_hex: config.hash_length,
        })
    }

    fn root(&self) -> Ctx<'_> {
        Ctx {
            node: if self.paths.children.is_empty() {
                None
            } else {
                Some(&self.paths)
            },
            rule: self.root_rule.as_ref(),
        }
    }

    fn child<'a>(&'a self, ctx: Ctx<'a>, key: &str) -> Ctx<'a> {
        match ctx.node.and_then(|n| n.child(key)) {
            Some(node) => Ctx {
                node: Some(node),
                rule: node.rule.and_then(|r| self.rules.get(r)).or(ctx.rule),
            },
            None => Ctx {
                node: None,
                rule: ctx.rule,
            },
        }
    }

    fn action(&self, slot: usize, base: Action, rule: Option<&Rule>) -> Action {
        let Some(rule) = rule else { return base };
        rule.per
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, a)| *a)
            .or(rule.all)
            .unwrap_or(base)
    }

    /// Finds every match to rewrite in `text`, non-overlapping and in order.
    fn find(&self, text: &str, rule: Option<&Rule>, hits: &mut Vec<Hit>) {
        if self.set.is_match(text) {
            self.find_unfiltered(text, rule, hits);
        }
    }

    /// [`Inner::find`] without the pre-filter: every detector scans `text`.
    fn find_unfiltered(&self, text: &str, rule: Option<&Rule>, hits: &mut Vec<Hit>) {
        // The set only says whether anything may match: asking it which patterns do (an
        // overlapping search) builds far more DFA states than the detectors' own regexes, which
        // have literal pre-filters and small DFAs.
        for (i, d) in self.detectors.iter().enumerate() {
            let action = self.action(d.slot, d.action, rule);
            if action == Action::Keep {
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
            let spans: Vec<(usize, usize)> = placeholder_spans(text).collect();
            hits.retain(|h| !spans.iter().any(|&(a, b)| h.start < b && a < h.end));
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

    fn replacement(&self, slot: usize, action: Action, matched: &str, out: &mut String) {
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
            let hex = digest
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .take(self.hash_hex);
            for nibble in hex {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        out.push(']');
    }

    /// Rewrites `text` as a whole (key name or whole-value rule) unless already a placeholder;
    /// returns the new text when it changed.
    fn whole(
        &self,
        text: &str,
        slot: usize,
        action: Action,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        if is_placeholder(text) {
            return (Fate::Keep, None);
        }
        report.add(slot);
        if action == Action::Drop {
            return (Fate::Drop, None);
        }
        let mut out = String::with_capacity(slot_len_hint(self.hash_hex));
        self.replacement(slot, action, text, &mut out);
        report.grow(out.len() as i64 - text.len() as i64);
        (Fate::Keep, Some(out))
    }

    /// The hint from a key name, as `(slot, detector action)`, if key names are honoured and
    /// the detector is enabled.
    fn key_hint(&self, key: Option<&str>) -> Option<(usize, Action)> {
        if !self.key_names {
            return None;
        }
        let name = keys::hint(key?)?;
        let slot = BUILT_IN_NAMES.iter().position(|n| *n == name)?;
        let detector = (*self.hint_slots.get(slot)?)?;
        Some((slot, self.detectors.get(detector)?.action))
    }

    /// Scrubs one string found under `key`, in place.
    fn scrub_str(
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
    fn scrub_ref(
        &self,
        text: &str,
        key: Option<&str>,
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
        if let Some((slot, base)) = self.key_hint(key) {
            let action = self.action(slot, base, ctx.rule);
            if action != Action::Keep {
                return self.whole(text, slot, action, report);
            }
        }
        // Rewriting can change what surrounds the other candidates (a card next to a phone
        // number), so repeat until nothing is found: the output is then a fixpoint and a second
        // pass finds nothing. Each round turns at least one character into a placeholder, which
        // is never matched again, so this ends; the bound only guards against a bug.
        let mut hits = Vec::new();
        let mut owned: Option<String> = None;
        for _round in 0..64 {
            let text = owned.as_deref().unwrap_or(text);
            hits.clear();
            self.find(text, ctx.rule, &mut hits);
            if hits.is_empty() {
                break;
            }
            if hits.iter().any(|h| h.action == Action::Drop) {
                for h in &hits {
                    report.add(self.slot_of(h.detector));
                }
                return (Fate::Drop, None);
            }
            let mut out = String::with_capacity(text.len() + 8 * hits.len());
            let mut last = 0;
            for h in &hits {
                out.push_str(&text[last..h.start]);
                let slot = self.slot_of(h.detector);
                self.replacement(slot, h.action, &text[h.start..h.end], &mut out);
                report.add(slot);
                last = h.end;
            }
            out.push_str(&text[last..]);
            owned = Some(out);
        }
        if let Some(new) = &owned
            && new.len() != text.len()
        {
            report.grow(new.len() as i64 - text.len() as i64);
        }
        (Fate::Keep, owned)
    }

    /// Scrubs a number found under `key`: only key names that hold numbers (cards, secrets,
    /// SSNs, phones) with at least three digits turn it into a placeholder string.
    fn scrub_number(
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
    fn number_action(
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

    /// Scrubs any JSON value found under `key` (objects and arrays recursively).
    fn scrub_value(
        &self,
        value: &mut Value,
        key: Option<&str>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> Fate {
        match value {
            Value::String(s) => self.scrub_str(s, key, ctx, report),
            Value::Number(_) => self.scrub_number(value, key, ctx, report),
            Value::Object(map) => {
                self.scrub_map(map, ctx, report);
                Fate::Keep
            }
            Value::Array(items) => {
                if !(ctx.rule.is_some_and(Rule::exempts_everything) && ctx.node.is_none()) {
                    items.retain_mut(|v| self.scrub_value(v, key, ctx, report) == Fate::Keep);
                }
                Fate::Keep
            }
            Value::Bool(_) | Value::Null => Fate::Keep,
        }
    }

    /// Scrubs every entry of a free-form map (annotations, metadata, aws, extra fields).
    fn scrub_map(
        &self,
        map: &mut serde_json::Map<String, Value>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        if ctx.rule.is_some_and(Rule::exempts_everything) && ctx.node.is_none() {
            return;
        }
        map.retain(|k, v| {
            let child = self.child(ctx, k);
            self.scrub_value(v, Some(k), child, report) == Fate::Keep
        });
    }
}

/// Capacity for a whole-value placeholder.
fn slot_len_hint(hash_hex: usize) -> usize {
    24 + hash_hex
}

#[cfg(test)]
mod tests;
