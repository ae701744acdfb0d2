//! A `tracing` layer: an app already instrumented with `tracing` (spans, `#[instrument]`,
//! `error!` events) gets X-Ray subsegments by adding one layer. Each span opened inside a
//! traced task (or inside a span that became a subsegment) becomes a subsegment of it, named
//! after the span, from its creation to its close; its fields become metadata under the
//! `tracing` namespace, or annotations for the field names listed; an event at `ERROR` level
//! becomes a cause of the subsegment it happened in (its message and fields), marking it as
//! a fault. Spans outside any traced task are left alone.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::recorder::{Entity, current};

/// The metadata namespace span fields go to.
pub const METADATA_NAMESPACE: &str = "tracing";

/// The layer; see the [module](self).
#[derive(Debug, Clone, Default)]
pub struct XRayTracingLayer {
    annotations: Arc<HashSet<String>>,
}

impl XRayTracingLayer {
    /// A layer recording every span field as metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the fields named here as annotations (searchable with filter expressions)
    /// instead of metadata. A name X-Ray refuses as an annotation key stays metadata.
    pub fn with_annotations<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        names: I,
    ) -> Self {
        self.annotations = Arc::new(names.into_iter().map(Into::into).collect());
        self
    }

    fn record(&self, entity: &Entity, fields: Map<String, Value>) {
        for (name, value) in fields {
            let annotated = self.annotations.contains(&name)
                && match &value {
                    Value::String(s) => entity.put_annotation(&name, s.as_str()).is_ok(),
                    Value::Bool(b) => entity.put_annotation(&name, *b).is_ok(),
                    Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => entity.put_annotation(&name, i).is_ok(),
                        (None, Some(f)) => entity.put_annotation(&name, f).is_ok(),
                        _ => false,
                    },
                    _ => false,
                };
            if !annotated {
                entity.put_metadata_in(METADATA_NAMESPACE, &name, value);
            }
        }
    }
}

/// Collects an event's or span's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// An `ERROR` event as an error: its message, then its other fields.
#[derive(Debug)]
struct ErrorEvent(String);

impl fmt::Display for ErrorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ErrorEvent {}

impl ErrorEvent {
    fn of(target: &str, mut fields: Map<String, Value>) -> Self {
        let mut text = match fields.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => target.to_owned(),
        };
        for (name, value) in fields {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            text.push_str(&format!(" {name}={value}"));
        }
        Self(text)
    }
}

impl<S> Layer<S> for XRayTracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The nearest enclosing span that is a subsegment, else the task's current entity.
        let parent = span
            .scope()
            .skip(1)
            .find_map(|s| s.extensions().get::<Entity>().cloned())
            .or_else(current);
        let Some(parent) = parent else { return };
        let entity = parent.begin_subsegment(attrs.metadata().name());
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.record(&entity, fields.0);
        span.extensions_mut().insert(entity);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(entity) = span.extensions().get::<Entity>().cloned() else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.record(&entity, fields.0);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let entity = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|s| s.extensions().get::<Entity>().cloned())
            })
            .or_else(current);
        let Some(entity) = entity else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        entity.add_error(&ErrorEvent::of(event.metadata().target(), fields.0));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if let Some(entity) = span.extensions_mut().remove::<Entity>() {
            entity.end();
        }
    }
}
