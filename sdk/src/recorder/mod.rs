//! The recorder: the app's entry point for tracing. It owns the sampler and the emitter and
//! hands out [`Entity`] handles for segments and subsegments.

mod context;
mod entity;
mod sql;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::emitter::{
    AddressError, DEFAULT_DAEMON_ADDRESS, DaemonAddress, Emitter, EmitterConfig, EmitterError,
    EmitterSnapshot, Scrubbing, SegmentDefaults,
};
use crate::model::{SamplingDecision, TraceHeader, TraceId};
use crate::sampling::{Rules, RulesError, Sampler, SamplingRequest};
use crate::scrub::{ConfigError, ScrubConfig, Scrubber};

pub use context::{current, scope};
pub use entity::{AnnotationError, AnnotationValue, Entity};
pub use sql::{SqlDialect, sanitize_sql, sanitize_sql_as};

/// Why a recorder could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// `AWS_XRAY_DAEMON_ADDRESS` is malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The emitter's socket or thread could not be created.
    #[error(transparent)]
    Emitter(#[from] EmitterError),
    /// The sampling rules file is invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The scrubber configuration is invalid.
    #[error(transparent)]
    Scrub(#[from] ConfigError),
    /// A configuration file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Recorder settings.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Emitter settings (daemon address, queue, streaming, scrubbing).
    pub emitter: EmitterConfig,
    /// Local sampling rules.
    pub rules: Rules,
    /// `origin` of every segment, e.g. `AWS::EC2::Instance`.
    pub origin: Option<String>,
    /// `service.version` of every segment.
    pub service_version: Option<String>,
}

impl RecorderConfig {
    /// Defaults: the given daemon, X-Ray's default sampling rule, built-in scrubbing.
    pub fn new(daemon: DaemonAddress) -> Self {
        Self {
            emitter: EmitterConfig::new(daemon.udp),
            rules: Rules::default(),
            origin: None,
            service_version: None,
        }
    }

    /// Reads the environment: `AWS_XRAY_DAEMON_ADDRESS` (default 127.0.0.1:2000),
    /// `ROENTGEN_SAMPLING_RULES` (a v1/v2 rules file), `ROENTGEN_SCRUB_CONFIG` (scrubber TOML)
    /// and `ROENTGEN_SCRUBBING=off` (explicitly disables scrubbing; logged).
    pub fn from_env() -> Result<Self, SdkError> {
        let address = std::env::var("AWS_XRAY_DAEMON_ADDRESS")
            .unwrap_or_else(|_| DEFAULT_DAEMON_ADDRESS.to_owned());
        let mut config = Self::new(address.parse()?);
        if let Ok(path) = std::env::var("ROENTGEN_SAMPLING_RULES") {
            config.rules = Rules::load(std::path::Path::new(&path))?;
        }
        if let Ok(path) = std::env::var("ROENTGEN_SCRUB_CONFIG") {
            let text = std::fs::read_to_string(&path).map_err(|source| SdkError::Io {
                path: path.clone(),
                source,
            })?;
            let scrub = ScrubConfig::from_toml_str(&text)?;
            config.emitter.scrubbing = Scrubbing::Enabled(Scrubber::new(&scrub)?);
        }
        if std::env::var("ROENTGEN_SCRUBBING").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            config.emitter.scrubbing = Scrubbing::Disabled;
        }
        Ok(config)
    }
}

pub(crate) struct RecorderInner {
    pub(crate) emitter: Emitter,
    sampler: Sampler,
}

/// The app's tracer. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Recorder {
    pub(crate) inner: Arc<RecorderInner>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts a recorder (and its emitter thread).
    pub fn new(config: RecorderConfig) -> Result<Self, SdkError> {
        let sdk =
            json!({"xray": {"sdk": "Roentgen for Rust", "sdk_version": env!("CARGO_PKG_VERSION")}});
        let mut emitter_config = config.emitter;
        emitter_config.segment_defaults = SegmentDefaults {
            origin: config.origin,
            service: config.service_version.map(|v| {
                let mut m = Map::new();
                m.insert("version".into(), Value::String(v));
                m
            }),
            aws: match sdk {
                Value::Object(m) => Some(m),
                _ => None,
            },
        };
        Ok(Self {
            inner: Arc::new(RecorderInner {
                emitter: Emitter::start(emitter_config)?,
                sampler: Sampler::new(config.rules),
            }),
        })
    }

    /// A recorder configured from the environment (see [`RecorderConfig::from_env`]).
    pub fn from_env() -> Result<Self, SdkError> {
        Self::new(RecorderConfig::from_env()?)
    }

    /// The sampler, for callers that decide themselves.
    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// Begins a segment. With an incoming header the trace continues (its `Root`, `Parent` and
    /// decision); without one, or when it says `Sampled=?`, the sampler decides.
    pub fn begin_segment(&self, name: &str, incoming: Option<&TraceHeader>) -> Entity {
        self.begin_segment_for(name, incoming, &SamplingRequest::default())
    }

    /// Like [`Recorder::begin_segment`], sampling by the request's host, method and path.
    pub fn begin_segment_for(
        &self,
        name: &str,
        incoming: Option<&TraceHeader>,
        request: &SamplingRequest<'_>,
    ) -> Entity {
        let decided = incoming.and_then(|h| h.sampled.as_bool());
        let sampled = decided.unwrap_or_else(|| self.inner.sampler.should_sample(request));
        let trace_id = incoming
            .and_then(|h| h.root)
            .unwrap_or_else(TraceId::generate);
        let parent = incoming.and_then(|h| h.parent);
        let requested = incoming.is_some_and(|h| h.sampled == SamplingDecision::Requested);
        let extra = incoming.map(|h| h.extra.clone()).unwrap_or_default();
        Entity::new_segment(
            self.clone(),
            name,
            trace_id,
            parent,
            sampled,
            requested,
            extra,
        )
    }

    /// Hands a finished document to the emitter (it is scrubbed there before it is sent).
    pub fn submit(&self, document: Box<crate::model::Segment>) {
        self.inner.emitter.submit(document);
    }

    /// Emitter counters: submitted, sent, dropped, scrubbed.
    pub fn stats(&self) -> EmitterSnapshot {
        self.inner.emitter.stats()
    }

    /// Waits until everything recorded so far has been sent, or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.inner.emitter.flush(timeout)
    }
}
