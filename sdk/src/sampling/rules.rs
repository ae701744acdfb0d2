//! Local sampling rules in the X-Ray v1/v2 JSON format, and the wildcard matcher they use.

use serde::Deserialize;

/// Why a rules file was refused; names the rule and the key.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not JSON, or a field has the wrong type.
    #[error("sampling rules: {0}")]
    Json(#[from] serde_json::Error),
    /// `version` is not 1 or 2.
    #[error("sampling rules: version must be 1 or 2, found {0}")]
    Version(u64),
    /// A rate outside 0..=1.
    #[error("sampling rules: {rule}.rate must be between 0 and 1, found {rate}")]
    Rate {
        /// `default` or `rules[N]`.
        rule: String,
        /// The rate given.
        rate: f64,
    },
    /// A required key is absent.
    #[error("sampling rules: {0} is required")]
    Missing(String),
    /// The file cannot be read.
    #[error("sampling rules {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One rule: which requests it matches and how it samples them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Free text.
    pub description: Option<String>,
    /// Host pattern (v2 `host`, v1 `service_name`).
    pub host: String,
    /// Method pattern.
    pub http_method: String,
    /// URL path pattern.
    pub url_path: String,
    /// Requests per second taken before the rate applies.
    pub fixed_target: u32,
    /// Share of the remaining requests to sample.
    pub rate: f64,
}

/// A rules file: rules tried in order, then the default.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Rules in file order; the first match wins.
    pub rules: Vec<Rule>,
    /// Used when no rule matches.
    pub default: Rule,
}

impl Default for Rules {
    /// X-Ray's default: one request per second, then 5%.
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default: Rule {
                description: Some("default".into()),
                host: "*".into(),
                http_method: "*".into(),
                url_path: "*".into(),
                fixed_target: 1,
                rate: 0.05,
            },
        }
    }
}

#[derive(Deserialize)]
struct RawRule {
    description: Option<String>,
    host: Option<String>,
    service_name: Option<String>,
    http_method: Option<String>,
    url_path: Option<String>,
    fixed_target: Option<u32>,
    rate: Option<f64>,
}

#[derive(Deserialize)]
struct RawRules {
    version: u64,
    default: Option<RawRule>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

impl Rules {
    /// Parses a v1 or v2 rules document.
    pub fn from_json(text: &str) -> Result<Self, RulesError> {
        let raw: RawRules = serde_json::from_str(text)?;
        if raw.version != 1 && raw.version != 2 {
            return Err(RulesError::Version(raw.version));
        }
        let default = raw
            .default
            .ok_or_else(|| RulesError::Missing("default".into()))?;
        let default = convert(default, "default", raw.version)?;
        let rules = raw
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| convert(r, &format!("rules[{i}]"), raw.version))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules, default })
    }

    /// Reads and parses a rules file.
    pub fn load(path: &std::path::Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }
}

fn convert(raw: RawRule, name: &str, version: u64) -> Result<Rule, RulesError> {
    let rate = raw
        .rate
        .ok_or_else(|| RulesError::Missing(format!("{name}.rate")))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(RulesError::Rate {
            rule: name.to_owned(),
            rate,
        });
    }
    let fixed_target = raw
        .fixed_target
        .ok_or_else(|| RulesError::Missing(format!("{name}.fixed_target")))?;
    let host = if version == 1 {
        raw.service_name
    } else {
        raw.host
    };
    Ok(Rule {
        description: raw.description,
        host: host.unwrap_or_else(|| "*".into()),
        http_method: raw.http_method.unwrap_or_else(|| "*".into()),
        url_path: raw.url_path.unwrap_or_else(|| "*".into()),
        fixed_target,
        rate,
    })
}

/// Case-insensitive wildcard match: `*` any run of characters, `?` exactly one.
///
/// Iterative with one backtrack point (the last `*`), so it runs in O(pattern × text) at worst
/// and allocates nothing.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (mut p, mut t) = (pattern.chars(), text.chars());
    // Where to resume after the last `*`: the pattern after it, and the text from the next char.
    let mut backtrack: Option<(std::str::Chars<'_>, std::str::Chars<'_>)> = None;
    loop {
        match (p.next(), t.clone().next()) {
            (Some('*'), _) => {
                backtrack = Some((p.clone(), t.clone()));
            }
            (Some(pc), Some(tc)) if pc == '?' || eq_ci(pc, tc) => {
                t.next();
            }
            (None, None) => return true,
            _ => {
                // Mismatch (or one side ended): let the last `*` swallow one more character.
                let Some((after_star, star_text)) = &mut backtrack else {
                    return false;
                };
                if star_text.next().is_none() {
                    return false;
                }
                p = after_star.clone();
                t = star_text.clone();
            }
        }
    }
}

/// A wildcard pattern prepared once for the hot path: the common shapes (`*` alone, plain text,
/// a prefix and one trailing `*`) skip the general matcher; each matches exactly what
/// [`wildcard_match`] would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`: anything.
    Any,
    /// ASCII text without wildcards, compared ignoring ASCII case.
    Exact(String),
    /// ASCII text followed by one `*`.
    Prefix(String),
    /// Anything else.
    Wildcard(String),
}

impl Pattern {
    /// Prepares `pattern`.
    pub(crate) fn new(pattern: &str) -> Self {
        let plain = |p: &str| p.is_ascii() && !p.contains(['*', '?']);
        if pattern == "*" {
            Self::Any
        } else if plain(pattern) {
            Self::Exact(pattern.to_owned())
        } else if let Some(prefix) = pattern.strip_suffix('*').filter(|p| plain(p)) {
            Self::Prefix(prefix.to_owned())
        } else {
            Self::Wildcard(pattern.to_owned())
        }
    }

    /// Whether `text` matches. `*` (what rules leave most fields at) is decided inline; the
    /// rest out of line, so a rule's six checks stay small enough to inline.
    #[inline(always)]
    pub(crate) fn matches(&self, text: &str) -> bool {
        matches!(self, Self::Any) || self.matches_text(text)
    }

    /// An ASCII pattern character only ever matches the same ASCII character in either case,
    /// so comparing bytes is exact.
    #[inline(never)]
    fn matches_text(&self, text: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(p) => text.as_bytes().eq_ignore_ascii_case(p.as_bytes()),
            Self::Prefix(p) => text
                .as_bytes()
                .get(..p.len())
                .is_some_and(|t| t.eq_ignore_ascii_case(p.as_bytes())),
            Self::Wildcard(p) => wildcard_match(p, text),
        }
    }
}

fn eq_ci(a: char, b: char) -> bool {
    a == b
        || (a.is_ascii() && b.is_ascii() && a.eq_ignore_ascii_case(&b))
        || (!a.is_ascii() && a.to_lowercase().eq(b.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("/api/*", "/API/orders/1"));
        assert!(wildcard_match("GET", "get"));
        assert!(wildcard_match("/v?/items", "/v2/items"));
        assert!(!wildcard_match("/v?/items", "/v10/items"));
        assert!(wildcard_match("*.example.com", "shop.example.com"));
        assert!(!wildcard_match("*.example.com", "example.org"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "x"));
        assert!(wildcard_match("*a", "aaa"));
        assert!(wildcard_match("**", ""));
        assert!(!wildcard_match("?", ""));
        assert!(wildcard_match("ÄPI*", "äpi/x"));
    }

    proptest::proptest! {
        /// A prepared pattern matches exactly what the general matcher does.
        #[test]
        fn prepared_patterns_match_as_the_general_matcher(
            pattern in "[aB/*?é]{0,6}",
            text in "[Ab/é]{0,8}",
        ) {
            proptest::prop_assert_eq!(
                Pattern::new(&pattern).matches(&text),
                wildcard_match(&pattern, &text)
            );
        }
    }

    #[test]
    fn parses_v2_and_v1() {
        let v2 = r#"{"version":2,"rules":[{"description":"Player moves.","host":"*","http_method":"*","url_path":"/api/move/*","fixed_target":0,"rate":0.05}],"default":{"fixed_target":1,"rate":0.1}}"#;
        let rules = Rules::from_json(v2).unwrap();
        assert_eq!(rules.rules[0].url_path, "/api/move/*");
        assert_eq!(rules.default.rate, 0.1);
        let v1 = r#"{"version":1,"rules":[{"service_name":"api.*","http_method":"POST","url_path":"*","fixed_target":2,"rate":0.5}],"default":{"fixed_target":1,"rate":0.05}}"#;
        let rules = Rules::from_json(v1).unwrap();
        assert_eq!(rules.rules[0].host, "api.*");
    }

    #[test]
    fn refuses_bad_files_with_the_key() {
        let e = Rules::from_json(r#"{"version":2,"default":{"fixed_target":1,"rate":1.5}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampling rules: default.rate must be between 0 and 1, found 1.5"
        );
        let e = Rules::from_json(r#"{"version":3,"default":{"fixed_target":1,"rate":0.5}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("version"));
        let e = Rules::from_json(
            r#"{"version":2,"rules":[{"rate":0.5}],"default":{"fixed_target":1,"rate":0.5}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "sampling rules: rules[0].fixed_target is required"
        );
    }
}
