//! Compiling a [`ScrubConfig`] into the scrubber's tables: detectors, the pre-filter set, the
//! field-rule trie and the HMAC key. Every configuration error names its key here.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use sha2::Sha256;

use super::detectors::{self, BUILT_IN_NAMES};
use super::walk::Field;
use super::{
    Action, ConfigError, Detector, FIELD_DETECTOR, Inner, PathNode, Rule, ScrubConfig, is_name,
};

impl Inner {
    /// Compiles a configuration; errors name the offending key.
    pub(super) fn compile(config: &ScrubConfig) -> Result<Self, ConfigError> {
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
        for b in built_ins {
            // Several table entries may report under one name (`secret` in several languages).
            let Some(slot) = BUILT_IN_NAMES.iter().position(|n| *n == b.name) else {
                continue;
            };
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
                // A built-in pre-filter with non-ASCII characters is made of words in other
                // scripts: it never matches ASCII text.
                non_ascii: !prefilter.is_ascii(),
                prefilter,
                name: b.name.into(),
                group: regex.capture_names().position(|n| n == Some("v")),
                regex,
                validate: b.validate,
                needs: b.needs,
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
                non_ascii: false,
                name: custom.name.as_str().into(),
                group: regex.capture_names().position(|n| n == Some("v")),
                regex,
                validate: None,
                needs: super::needs::Needs::default(),
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

        let prefilters = |non_ascii: bool| {
            RegexSet::new(
                detectors
                    .iter()
                    .filter(|d| d.non_ascii == non_ascii)
                    .map(|d| d.prefilter.as_str()),
            )
            .map_err(|e| ConfigError::key("custom", e.to_string()))
        };
        let set = prefilters(false)?;
        let non_ascii_set = prefilters(true)?;
        let mut hint_slots = vec![None; BUILT_IN_NAMES.len()];
        for (i, d) in detectors.iter().enumerate() {
            if let Some(h) = hint_slots.get_mut(d.slot) {
                h.get_or_insert(i);
            }
        }
        let only_built_ins = detectors.iter().all(|d| d.slot < BUILT_IN_NAMES.len());
        let mut inner = Self {
            detectors,
            set,
            non_ascii_set,
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
            ipv4_slot: BUILT_IN_NAMES.iter().position(|n| *n == "ipv4"),
            only_built_ins,
            id: super::clean::next_id(),
            remember_clean: false,
            typed_hints: [None; Field::ALL.len()],
        };
        inner.typed_hints = Field::ALL.map(|f| inner.key_hint(Some(f.name())));
        Ok(inner)
    }
}
