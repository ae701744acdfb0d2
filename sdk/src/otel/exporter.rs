//! The span exporter and the X-Ray-compatible id generator.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, TraceId as OtelTraceId};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{IdGenerator, SpanData, SpanExporter};
use rand::Rng;

use super::propagator::is_root_only_parent;
use crate::otlp::{MappingConfig, map_resource_spans};
use crate::recorder::Recorder;

/// Exports OpenTelemetry spans as X-Ray documents through a [`Recorder`]'s emitter, by the
/// mapping the daemon and the collector use for OTLP ([`crate::otlp`]).
///
/// Server and consumer spans, and spans whose parent is remote or absent, become segments named
/// after the service; the others become subsegments sent on their own. Attributes become
/// metadata, but for the keys given to [`XRayExporter::with_annotation_keys`] (and those a
/// span lists in `aws.xray.annotations`).
#[derive(Debug)]
pub struct XRayExporter {
    recorder: Recorder,
    service_name: String,
    resource: ResourceAttributesWithSchema,
    mapping: MappingConfig,
}

fn service_name_attribute(name: &str) -> KeyValue {
    KeyValue {
        key: "service.name".to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(name.to_owned())),
        }),
        ..KeyValue::default()
    }
}

impl XRayExporter {
    /// An exporter naming segments `service_name` (over the resource's `service.name`).
    pub fn new(recorder: Recorder, service_name: &str) -> Self {
        let mut resource = ResourceAttributesWithSchema::default();
        resource
            .attributes
            .0
            .push(service_name_attribute(service_name));
        Self {
            recorder,
            service_name: service_name.to_owned(),
            resource,
            mapping: MappingConfig::default(),
        }
    }

    /// Indexes these attribute keys as annotations (searchable with `annotation.KEY`).
    pub fn with_annotation_keys<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        keys: I,
    ) -> Self {
        self.mapping.annotation_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Converts and queues spans; never blocks (the emitter drops and counts when full).
    pub fn export_spans(&self, batch: Vec<SpanData>) {
        let batch: Vec<SpanData> = batch
            .into_iter()
            .filter(|s| s.span_context.is_valid())
            .map(|mut span| {
                // A load balancer's `Root`-only header leaves the first span a root of that
                // trace: its parent is the propagator's marker, not a span.
                let context = &span.span_context;
                if span.parent_span_is_remote
                    && is_root_only_parent(
                        context.trace_id(),
                        span.parent_span_id,
                        context.trace_state(),
                    )
                {
                    span.parent_span_id = SpanId::INVALID;
                    span.parent_span_is_remote = false;
                }
                span
            })
            .collect();
        let resource_spans = group_spans_by_resource_and_scope(batch, &self.resource);
        let mapped = map_resource_spans(&resource_spans, &self.mapping);
        for rejected in &mapped.rejected {
            tracing::debug!(span = %rejected.span_id, error = %rejected.error, "span not exported");
        }
        for segment in mapped.segments {
            self.recorder.submit(Box::new(segment));
        }
    }
}

impl SpanExporter for XRayExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.export_spans(batch);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.recorder.flush(std::time::Duration::from_secs(5));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut attributes = ResourceAttributesWithSchema::from(resource);
        attributes
            .attributes
            .0
            .retain(|kv| kv.key != "service.name");
        attributes
            .attributes
            .0
            .push(service_name_attribute(&self.service_name));
        self.resource = attributes;
    }
}

/// Generates trace ids X-Ray accepts: the epoch second in the first 32 bits, then 96 bits from
/// the thread's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct XRayIdGenerator;

impl IdGenerator for XRayIdGenerator {
    fn new_trace_id(&self) -> OtelTraceId {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as u32;
        let random: u128 = rand::rng().random();
        let value = (u128::from(seconds) << 96) | (random & ((1u128 << 96) - 1));
        OtelTraceId::from_bytes(value.to_be_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        let mut rng = rand::rng();
        loop {
            let v: u64 = rng.random();
            if v != 0 {
                return SpanId::from_bytes(v.to_be_bytes());
            }
        }
    }
}
