//! The settings the official X-Ray SDKs take from the environment, with their meanings kept:
//! `AWS_XRAY_SDK_ENABLED` (false: record nothing), `AWS_XRAY_TRACING_NAME` (the segment name,
//! over the one in code), `AWS_XRAY_CONTEXT_MISSING` (what asking for the current segment does
//! when there is none), `_X_AMZN_TRACE_ID` (the trace of a Lambda-style invocation), and
//! dynamic segment naming by host pattern.

use std::str::FromStr;

use crate::model::TraceHeader;
use crate::sampling::wildcard_match;

/// What happens when code asks for the current segment and there is none
/// (`AWS_XRAY_CONTEXT_MISSING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextMissing {
    /// Log an error and go on with an entity that records nothing (`LOG_ERROR`, the default).
    #[default]
    LogError,
    /// Return [`ContextMissingError`] (`RUNTIME_ERROR`).
    RuntimeError,
    /// Go on silently with an entity that records nothing (`IGNORE_ERROR`).
    IgnoreError,
}

impl FromStr for ContextMissing {
    type Err = EnvironmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOG_ERROR" => Ok(Self::LogError),
            "RUNTIME_ERROR" => Ok(Self::RuntimeError),
            "IGNORE_ERROR" => Ok(Self::IgnoreError),
            _ => Err(EnvironmentError {
                variable: "AWS_XRAY_CONTEXT_MISSING",
                value: s.to_owned(),
                expected: "LOG_ERROR, RUNTIME_ERROR or IGNORE_ERROR",
            }),
        }
    }
}

/// A variable of the environment holds a value the SDK does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: expected {expected}")]
pub struct EnvironmentError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it may hold.
    pub expected: &'static str,
}

/// There is no current segment and `AWS_XRAY_CONTEXT_MISSING=RUNTIME_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no current segment for {operation} (AWS_XRAY_CONTEXT_MISSING=RUNTIME_ERROR)")]
pub struct ContextMissingError {
    /// What was asked for.
    pub operation: &'static str,
}

/// Reads `AWS_XRAY_SDK_ENABLED`: anything but a case-insensitive `false` enables the SDK, as in
/// the official SDKs.
pub(super) fn enabled(value: Option<&str>) -> bool {
    !value.is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// `ROENTGEN_SAMPLING`: `true` for `centralized` (rules from the daemon's proxy, the local ones
/// as fallback), `false` for `local`.
pub(super) fn centralized_sampling(value: &str) -> Result<bool, EnvironmentError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "centralized" => Ok(true),
        "local" => Ok(false),
        _ => Err(EnvironmentError {
            variable: "ROENTGEN_SAMPLING",
            value: value.to_owned(),
            expected: "centralized or local",
        }),
    }
}

/// The header of the current Lambda-style invocation (`_X_AMZN_TRACE_ID`), read leniently.
pub fn invocation_header() -> Option<TraceHeader> {
    let value = std::env::var("_X_AMZN_TRACE_ID").ok()?;
    let (header, _) = TraceHeader::parse_lenient(&value);
    header.root.is_some().then_some(header)
}

/// How the segments of incoming requests are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentNaming {
    /// Always this name.
    Fixed(String),
    /// The request's host when it matches `host_pattern` (`*` and `?` wildcards), else
    /// `fallback` (as the official SDKs' dynamic naming strategy).
    Dynamic {
        /// The name when the host does not match.
        fallback: String,
        /// Which hosts name their segments.
        host_pattern: String,
    },
}

impl SegmentNaming {
    /// The name for a request to `host` (its `Host` header, port removed).
    pub fn name_for<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        match self {
            Self::Fixed(name) => name,
            Self::Dynamic {
                fallback,
                host_pattern,
            } => match host {
                Some(host) if !host.is_empty() && wildcard_match(host_pattern, host) => host,
                _ => fallback,
            },
        }
    }

    /// The same naming with `AWS_XRAY_TRACING_NAME` in force: it replaces the fixed name, or
    /// the fallback of a dynamic one.
    pub fn with_tracing_name(self, tracing_name: Option<&str>) -> Self {
        let Some(name) = tracing_name else {
            return self;
        };
        match self {
            Self::Fixed(_) => Self::Fixed(name.to_owned()),
            Self::Dynamic { host_pattern, .. } => Self::Dynamic {
                fallback: name.to_owned(),
                host_pattern,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_missing_values() {
        assert_eq!("LOG_ERROR".parse(), Ok(ContextMissing::LogError));
        assert_eq!(" runtime_error ".parse(), Ok(ContextMissing::RuntimeError));
        assert_eq!("IGNORE_ERROR".parse(), Ok(ContextMissing::IgnoreError));
        let error = "THROW".parse::<ContextMissing>().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("AWS_XRAY_CONTEXT_MISSING=\"THROW\"")
        );
    }

    #[test]
    fn only_false_disables() {
        assert!(enabled(None));
        assert!(enabled(Some("true")));
        assert!(enabled(Some("0")));
        assert!(!enabled(Some("FALSE")));
        assert!(!enabled(Some(" false")));
    }

    #[test]
    fn dynamic_naming_uses_matching_hosts_and_the_tracing_name_replaces_the_fallback() {
        let naming = SegmentNaming::Dynamic {
            fallback: "shop".into(),
            host_pattern: "*.example.com".into(),
        };
        assert_eq!(naming.name_for(Some("api.example.com")), "api.example.com");
        assert_eq!(naming.name_for(Some("localhost")), "shop");
        assert_eq!(naming.name_for(None), "shop");
        let named = naming.with_tracing_name(Some("from-env"));
        assert_eq!(named.name_for(Some("localhost")), "from-env");
        assert_eq!(named.name_for(Some("api.example.com")), "api.example.com");
        let fixed = SegmentNaming::Fixed("code".into()).with_tracing_name(Some("env"));
        assert_eq!(fixed.name_for(Some("api.example.com")), "env");
        assert_eq!(
            SegmentNaming::Fixed("code".into()).with_tracing_name(None),
            SegmentNaming::Fixed("code".into())
        );
    }
}
