//! The recorder: the app's entry point for tracing. It owns the sampler and the emitter and
//! hands out [`Entity`] handles for segments and subsegments.

mod context;
mod entity;
mod environment;
mod sql;
pub(crate) mod stack;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::emitter::{
    AddressError, DEFAULT_DAEMON_ADDRESS, DaemonAddress, Emitter, EmitterConfig, EmitterError,
    EmitterSnapshot, Scrubbing, SegmentDefaults,
};
use crate::model::{SamplingDecision, TraceHeader, TraceId};
#[cfg(feature = "centralized-sampling")]
use crate::sampling::centralized::CentralizedConfig;
use crate::sampling::{Rules, RulesError, Sampler, SamplingRequest};
use crate::scrub::{ConfigError, ScrubConfig, Scrubber};

pub use context::{current, scope};
pub use entity::{AnnotationError, AnnotationValue, Entity};
pub use environment::{
    ContextMissing, ContextMissingError, EnvironmentError, SegmentNaming, invocation_header,
};
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
    /// A variable of the official SDKs' environment is malformed.
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// The centralized-sampling poller thread could not start.
    #[error("centralized sampling: cannot start the poller: {0}")]
    Sampling(std::io::Error),
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
    /// Local sampling rules: the only ones without centralized sampling, the fallback with it.
    pub rules: Rules,
    /// Centralized sampling through the daemon's proxy (on by default, polling the `tcp:`
    /// address; `None` or `ROENTGEN_SAMPLING=local`: local rules only).
    #[cfg(feature = "centralized-sampling")]
    pub centralized_sampling: Option<CentralizedConfig>,
    /// `origin` of every segment, e.g. `AWS::EC2::Instance`.
    pub origin: Option<String>,
    /// `service.version` of every segment.
    pub service_version: Option<String>,
    /// Whether anything is recorded (`AWS_XRAY_SDK_ENABLED`); when not, every entity is
    /// unsampled and nothing is sent.
    pub enabled: bool,
    /// The segment name over the one given to [`crate::middleware::XRayLayer`], or over the
    /// fallback of its dynamic naming (`AWS_XRAY_TRACING_NAME`).
    pub tracing_name: Option<String>,
    /// What [`Recorder::begin_subsegment`] does without a current entity
    /// (`AWS_XRAY_CONTEXT_MISSING`).
    pub context_missing: ContextMissing,
}

impl RecorderConfig {
    /// Defaults: the given daemon, X-Ray's default sampling rule, built-in scrubbing.
    pub fn new(daemon: DaemonAddress) -> Self {
        Self {
            emitter: EmitterConfig::new(daemon.udp),
            rules: Rules::default(),
            #[cfg(feature = "centralized-sampling")]
            centralized_sampling: Some(CentralizedConfig::new(daemon.tcp)),
            origin: None,
            service_version: None,
            enabled: true,
            tracing_name: None,
            context_missing: ContextMissing::default(),
        }
    }

    /// Reads the environment: the official SDKs' `AWS_XRAY_DAEMON_ADDRESS` (`host:port` or
    /// `tcp:host:port udp:host:port`, default 127.0.0.1:2000), `AWS_XRAY_SDK_ENABLED`,
    /// `AWS_XRAY_TRACING_NAME` and `AWS_XRAY_CONTEXT_MISSING`; and Roentgen's
    /// `ROENTGEN_SAMPLING_RULES` (a v1/v2 rules file), `ROENTGEN_SAMPLING` (`centralized`, the
    /// default, or `local`), `ROENTGEN_SCRUB_CONFIG` (scrubber TOML) and `ROENTGEN_SCRUBBING=off`
    /// (explicitly disables scrubbing; logged).
    pub fn from_env() -> Result<Self, SdkError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`RecorderConfig::from_env`] over any source of variables (`var` answers a name).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, SdkError> {
        let address =
            var("AWS_XRAY_DAEMON_ADDRESS").unwrap_or_else(|| DEFAULT_DAEMON_ADDRESS.to_owned());
        let mut config = Self::new(address.parse()?);
        config.enabled = environment::enabled(var("AWS_XRAY_SDK_ENABLED").as_deref());
        config.tracing_name = var("AWS_XRAY_TRACING_NAME").filter(|name| !name.trim().is_empty());
        if let Some(value) = var("AWS_XRAY_CONTEXT_MISSING") {
            config.context_missing = value.parse()?;
        }
        if let Some(value) = var("ROENTGEN_SAMPLING") {
            let centralized = environment::centralized_sampling(&value)?;
            #[cfg(feature = "centralized-sampling")]
            if !centralized {
                config.centralized_sampling = None;
            }
            #[cfg(not(feature = "centralized-sampling"))]
            if centralized {
                tracing::warn!(
                    "ROENTGEN_SAMPLING=centralized: this build has no `centralized-sampling` \
                     feature; the local rules decide"
                );
            }
        }
        if let Some(path) = var("ROENTGEN_SAMPLING_RULES") {
            config.rules = Rules::load(std::path::Path::new(&path))?;
        }
        if let Some(path) = var("ROENTGEN_SCRUB_CONFIG") {
            let text = std::fs::read_to_string(&path).map_err(|source| SdkError::Io {
                path: path.clone(),
                source,
            })?;
            let scrub = ScrubConfig::from_toml_str(&text)?;
            config.emitter.scrubbing = Scrubbing::Enabled(Scrubber::new(&scrub)?);
        }
        if var("ROENTGEN_SCRUBBING").is_some_and(|v| v.eq_ignore_ascii_case("off")) {
            config.emitter.scrubbing = Scrubbing::Disabled;
        }
        Ok(config)
    }
}

pub(crate) struct RecorderInner {
    pub(crate) emitter: Emitter,
    sampler: Sampler,
    /// `origin` of every segment, matched by centralized rules' `ServiceType`.
    origin: Option<String>,
    enabled: bool,
    tracing_name: Option<String>,
    context_missing: ContextMissing,
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
        #[cfg(feature = "centralized-sampling")]
        let sampler = match config.centralized_sampling {
            Some(centralized) => {
                Sampler::centralized(config.rules, centralized).map_err(SdkError::Sampling)?
            }
            None => Sampler::new(config.rules),
        };
        #[cfg(not(feature = "centralized-sampling"))]
        let sampler = Sampler::new(config.rules);
        emitter_config.segment_defaults = SegmentDefaults {
            origin: config.origin.clone(),
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
                sampler,
                origin: config.origin,
                enabled: config.enabled,
                tracing_name: config.tracing_name,
                context_missing: config.context_missing,
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
        let sampled = self.inner.enabled
            && decided.unwrap_or_else(|| {
                let request = SamplingRequest {
                    service_name: if request.service_name.is_empty() {
                        name
                    } else {
                        request.service_name
                    },
                    service_type: if request.service_type.is_empty() {
                        self.inner.origin.as_deref().unwrap_or("")
                    } else {
                        request.service_type
                    },
                    ..*request
                };
                self.inner.sampler.should_sample(&request)
            });
        let trace_id = incoming
            .and_then(|h| h.root)
            .unwrap_or_else(TraceId::generate);
        // A `Parent` is only meaningful inside its `Root`'s trace.
        let parent = incoming.filter(|h| h.root.is_some()).and_then(|h| h.parent);
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

    /// The name the official SDKs' environment gives segments, if any
    /// (`AWS_XRAY_TRACING_NAME`).
    pub fn tracing_name(&self) -> Option<&str> {
        self.inner.tracing_name.as_deref()
    }

    /// Begins a subsegment of the task's current entity (see [`scope`]). Without one, what
    /// happens is `AWS_XRAY_CONTEXT_MISSING`'s: an error is logged (`LOG_ERROR`) or not
    /// (`IGNORE_ERROR`) and an entity that records nothing is returned, or the error is
    /// (`RUNTIME_ERROR`).
    pub fn begin_subsegment(&self, name: &str) -> Result<Entity, ContextMissingError> {
        match current() {
            Some(entity) => Ok(entity.begin_subsegment(name)),
            None => self.context_missing("begin_subsegment"),
        }
    }

    /// The entity of a Lambda-style invocation whose runtime made the segment and passed its
    /// header in `_X_AMZN_TRACE_ID`: a facade that is never sent, whose subsegments are sent
    /// on their own under the header's `Parent`, sampled as the header says. Without the
    /// variable, `AWS_XRAY_CONTEXT_MISSING` decides as in [`Recorder::begin_subsegment`].
    pub fn invocation(&self) -> Result<Entity, ContextMissingError> {
        self.continue_invocation(invocation_header().as_ref())
    }

    /// [`Recorder::invocation`] with the header given (`None`: the variable was not set).
    pub fn continue_invocation(
        &self,
        header: Option<&TraceHeader>,
    ) -> Result<Entity, ContextMissingError> {
        match header.filter(|h| h.root.is_some()) {
            Some(header) => Ok(Entity::facade(
                self.clone(),
                header.clone(),
                self.inner.enabled,
            )),
            None => self.context_missing("invocation (_X_AMZN_TRACE_ID)"),
        }
    }

    fn context_missing(&self, operation: &'static str) -> Result<Entity, ContextMissingError> {
        match self.inner.context_missing {
            ContextMissing::RuntimeError => return Err(ContextMissingError { operation }),
            ContextMissing::LogError => {
                tracing::error!(
                    operation,
                    "no current segment; recording nothing (AWS_XRAY_CONTEXT_MISSING=LOG_ERROR)"
                );
            }
            ContextMissing::IgnoreError => {}
        }
        Ok(Entity::new_segment(
            self.clone(),
            operation,
            TraceId::generate(),
            None,
            false,
            false,
            Vec::new(),
        ))
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

/// A lookup table of the bytes in `bytes` (for byte-at-a-time scans on hot paths).
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
}
