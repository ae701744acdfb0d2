//! The PII scrubber: rewrites personal data in segment documents before they leave a process,
//! and again in the daemon and the collector for documents from SDKs that do not scrub.
//!
//! A [`Scrubber`] is compiled once from a [`ScrubConfig`]: every enabled detector's regex goes
//! into one `RegexSet` (those that need non-ASCII text, such as secrets named in Korean, into a
//! second one asked only of non-ASCII strings), so a clean string costs one DFA scan, a scan for
//! escapes to decode, and no allocation; the individual regexes and their validators only run
//! on strings a set flagged. Matches become typed
//! placeholders (`[email]`), keyed hashes (`[email#1f2e...]`) or a dropped field. The scrubber's
//! own placeholders are never matched again, which makes scrubbing idempotent; text that only
//! looks like one is still checked (`placeholder.rs`).
//!
//! One set of rules, three representations: `scalar.rs` judges every string, number and map key
//! (field rules, key names, detectors, decoded forms), `visit.rs` says what each member of a
//! document is (skipped, a nested document, a cause, a free-form value) and walks free-form
//! maps; the Value walk and the typed walk (`walk.rs`) and the JSON text pass (`text.rs`) only
//! navigate their representation and ask those two files every question.
//!
//! Field paths (for `exempt_fields` and `[fields."..."]` rules) are the JSON names of the X-Ray
//! document from the (sub)segment it is in, joined by dots, arrays transparent:
//! `http.request.url`, `sql.sanitized_query`, `cause.exceptions.message`, `annotations`,
//! `metadata.default.cart`. Ids, trace ids, parent ids, times, `name`, `type`, `namespace` and
//! numbers (except under key names such as `cvv` or `card_number`) are never touched. Map keys
//! are scrubbed by the detectors (not by key names or whole-value rules).

mod clean;
mod compile;
mod config;
mod decode;
mod detectors;
mod keys;
mod lend;
mod log;
mod needs;
mod placeholder;
mod report;
mod scalar;
mod text;
mod visit;
mod walk;

use std::sync::Arc;

use hmac::Hmac;
use regex::{Regex, RegexSet};
use serde_json::Value;
use sha2::Sha256;

pub use config::{
    Action, ConfigError, CustomDetectorConfig, DetectorConfig, FieldRuleConfig, HashKey,
    ScrubConfig,
};
pub use detectors::BUILT_IN_NAMES;
pub use lend::Lent;
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
    /// The copies it and its clones lend (`lend.rs`).
    copies: Arc<lend::Copies>,
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
            copies: Arc::default(),
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
                non_ascii_set: RegexSet::empty(),
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
                ipv4_slot: None,
                only_built_ins: true,
                id: clean::next_id(),
                remember_clean: false,
                // `key_names` is off: no key gives a hint.
                typed_hints: [None; walk::Field::ALL.len()],
            }),
            copies: Arc::default(),
        }
    }

    /// Scrubs one document held as JSON, in place.
    pub fn scrub(&self, document: &mut Value) -> ScrubReport {
        let mut report = ScrubReport::new(&self.inner.names);
        if let Value::Object(map) = document {
            let root = self.inner.root();
            self.inner
                .walk_map(map, visit::Shape::Document, root, &mut report);
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
    /// cannot decide (not a JSON object `serde_json` would accept, nesting deeper than 100, a
    /// `drop` action applies, or a map key must be rewritten); scrub a parsed `Value` with
    /// [`Scrubber::scrub`] instead.
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
        self.inner.find_unfiltered(text, &mut hits);
        !hits.is_empty()
    }

    /// A copy with the same configuration whose regexes keep their own search caches. Clones
    /// share one cache pool per regex, which only its first thread reaches without a lock; a
    /// thread that scrubs many documents (a daemon worker) runs faster on its own copy. The
    /// copy also remembers the short strings it found clean (`clean.rs`, a bounded table per
    /// thread): meant for a thread of its own; a pool of many threads borrows copies with
    /// [`Scrubber::lend`] instead.
    pub fn with_own_caches(&self) -> Self {
        // Cloning a `Regex` or `RegexSet` gives the clone a new, empty cache pool. The names
        // are copied too: every report holds them, and a shared count bounces between cores.
        let mut inner = (*self.inner).clone();
        inner.names = Arc::from(self.inner.names.to_vec());
        inner.remember_clean = true;
        Self {
            inner: Arc::new(inner),
            copies: Arc::default(),
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
    /// Only matches text with non-ASCII characters (secrets named in Korean...): its pattern
    /// goes into `non_ascii_set`, which ASCII text never reaches.
    non_ascii: bool,
    name: Box<str>,
    regex: Regex,
    group: Option<usize>,
    validate: Option<Validator>,
    /// What a text must hold for `regex` to match in it (nothing, for custom detectors).
    needs: needs::Needs,
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
    /// Pre-filter of the detectors that need non-ASCII text. Apart from the main set because
    /// its multi-byte literals multiplied the main set's lazy DFA states until its cache
    /// thrashed (5x slower on the PII corpus).
    non_ascii_set: RegexSet,
    names: Arc<[Box<str>]>,
    /// Report slot -> index in `detectors` for built-ins that key names may point at.
    hint_slots: Vec<Option<usize>>,
    key_names: bool,
    /// No custom detector is enabled, so plain identifier keys need no scan (`keys.rs`).
    only_built_ins: bool,
    field_slot: usize,
    default_action: Action,
    root_rule: Option<Rule>,
    rules: Vec<Rule>,
    paths: PathNode,
    mac: Option<Hmac<Sha256>>,
    hash_hex: usize,
    /// Report slot of `ipv4`, which key names about versions silence.
    ipv4_slot: Option<usize>,
    /// Identifies this configuration among the strings remembered clean (`clean.rs`).
    id: u64,
    /// Whether strings found clean are remembered (copies made by `with_own_caches`).
    remember_clean: bool,
    /// [`Inner::key_hint`] of each typed field's name, in [`walk::Field::ALL`] order.
    typed_hints: [Option<(usize, Action)>; walk::Field::ALL.len()],
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

impl Inner {
    /// The context at the top of a document: the root of the rule trie.
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

    /// The context of member `key` of a map at `ctx`.
    #[inline]
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
}

#[cfg(test)]
mod tests;
