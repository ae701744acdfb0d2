//! The two walks over a segment document, one over `serde_json::Value` (daemon, collector) and
//! one over the typed [`Segment`] (SDK hot path), visiting the same strings with the same keys
//! and field paths so that both give the same output and the same counts.
//!
//! Fields that are never scrubbed (ids, times, names, `type`, `namespace`, flags) are skipped
//! by name at document level; exception ids and `cause` ids likewise.

use serde_json::{Map, Value};

use super::{Ctx, Fate, Inner};
use crate::model::{Cause, CauseDetails, Exception, Http, Segment, Sql, StackFrame};
use crate::scrub::ScrubReport;

/// Document-level keys never scrubbed.
pub(super) const SKIPPED: &[&str] = &[
    "id",
    "trace_id",
    "parent_id",
    "name",
    "type",
    "namespace",
    "start_time",
    "end_time",
    "in_progress",
    "precursor_ids",
    "error",
    "throttle",
    "fault",
    "traced",
];

impl Inner {
    /// Walks a (sub)segment document held as a JSON object.
    pub(super) fn walk_document_value(
        &self,
        map: &mut Map<String, Value>,
        report: &mut ScrubReport,
    ) {
        let root = self.root();
        map.retain(|key, value| {
            let key = key.as_str();
            if SKIPPED.contains(&key) {
                return true;
            }
            match (key, &mut *value) {
                ("subsegments", Value::Array(items)) => {
                    for item in items {
                        if let Value::Object(doc) = item {
                            self.walk_document_value(doc, report);
                        }
                    }
                    true
                }
                // A string `cause` is the id of an exception recorded elsewhere.
                ("cause", Value::String(_)) => true,
                ("cause", Value::Object(cause)) => {
                    self.walk_cause_value(cause, self.child(root, key), report);
                    true
                }
                _ => {
                    self.scrub_value(value, Some(key), self.child(root, key), report) == Fate::Keep
                }
            }
        });
    }

    fn walk_cause_value(
        &self,
        cause: &mut Map<String, Value>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        cause.retain(|key, value| match (key.as_str(), &mut *value) {
            ("exceptions", Value::Array(items)) => {
                let ctx = self.child(ctx, key);
                items.retain_mut(|item| match item {
                    Value::Object(exception) => {
                        exception.retain(|k, v| {
                            if k == "id" || k == "cause" {
                                return true;
                            }
                            self.scrub_value(v, Some(k), self.child(ctx, k), report) == Fate::Keep
                        });
                        true
                    }
                    other => self.scrub_value(other, Some("exceptions"), ctx, report) == Fate::Keep,
                });
                true
            }
            _ => self.scrub_value(value, Some(key), self.child(ctx, key), report) == Fate::Keep,
        });
    }

    /// Walks a typed (sub)segment, mirroring [`Inner::walk_document_value`].
    pub(super) fn walk_segment(&self, segment: &mut Segment, report: &mut ScrubReport) {
        let root = self.root();
        self.field(&mut segment.origin, "origin", root, report);
        self.field(&mut segment.user, "user", root, report);
        self.field(&mut segment.resource_arn, "resource_arn", root, report);
        self.map_field(&mut segment.service, "service", root, report);
        self.map_field(&mut segment.aws, "aws", root, report);
        self.map_field(&mut segment.annotations, "annotations", root, report);
        self.map_field(&mut segment.metadata, "metadata", root, report);
        if let Some(http) = &mut segment.http {
            self.walk_http(http, self.child(root, "http"), report);
        }
        if let Some(sql) = &mut segment.sql {
            self.walk_sql(sql, self.child(root, "sql"), report);
        }
        if let Some(Cause::Details(details)) = &mut segment.cause {
            self.walk_cause(details, self.child(root, "cause"), report);
        }
        self.scrub_map(&mut segment.extra, root, report);
        for sub in segment.subsegments.iter_mut().flatten() {
            self.walk_segment(sub, report);
        }
    }

    /// Scrubs an optional string field; a `drop` action clears it.
    fn field(
        &self,
        value: &mut Option<String>,
        key: &str,
        parent: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        if let Some(text) = value
            && self.scrub_str(text, Some(key), self.child(parent, key), report) == Fate::Drop
        {
            *value = None;
        }
    }

    fn map_field(
        &self,
        value: &mut Option<Map<String, Value>>,
        key: &str,
        parent: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        if let Some(map) = value {
            self.scrub_map(map, self.child(parent, key), report);
        }
    }

    fn walk_http(&self, http: &mut Http, ctx: Ctx<'_>, report: &mut ScrubReport) {
        if let Some(request) = &mut http.request {
            let ctx = self.child(ctx, "request");
            self.field(&mut request.method, "method", ctx, report);
            self.field(&mut request.url, "url", ctx, report);
            self.field(&mut request.user_agent, "user_agent", ctx, report);
            self.field(&mut request.client_ip, "client_ip", ctx, report);
            self.scrub_map(&mut request.extra, ctx, report);
        }
        if let Some(response) = &mut http.response {
            self.scrub_map(&mut response.extra, self.child(ctx, "response"), report);
        }
        self.scrub_map(&mut http.extra, ctx, report);
    }

    fn walk_sql(&self, sql: &mut Sql, ctx: Ctx<'_>, report: &mut ScrubReport) {
        self.field(&mut sql.connection_string, "connection_string", ctx, report);
        self.field(&mut sql.url, "url", ctx, report);
        self.field(&mut sql.sanitized_query, "sanitized_query", ctx, report);
        self.field(&mut sql.database_type, "database_type", ctx, report);
        self.field(&mut sql.database_version, "database_version", ctx, report);
        self.field(&mut sql.driver_version, "driver_version", ctx, report);
        self.field(&mut sql.user, "user", ctx, report);
        self.field(&mut sql.preparation, "preparation", ctx, report);
        self.scrub_map(&mut sql.extra, ctx, report);
    }

    fn walk_cause(&self, cause: &mut CauseDetails, ctx: Ctx<'_>, report: &mut ScrubReport) {
        self.field(
            &mut cause.working_directory,
            "working_directory",
            ctx,
            report,
        );
        if let Some(paths) = &mut cause.paths {
            let pctx = self.child(ctx, "paths");
            paths.retain_mut(|p| self.scrub_str(p, Some("paths"), pctx, report) == Fate::Keep);
        }
        if let Some(exceptions) = &mut cause.exceptions {
            let ectx = self.child(ctx, "exceptions");
            for exception in exceptions {
                self.walk_exception(exception, ectx, report);
            }
        }
        self.scrub_map(&mut cause.extra, ctx, report);
    }

    fn walk_exception(&self, exception: &mut Exception, ctx: Ctx<'_>, report: &mut ScrubReport) {
        self.field(&mut exception.message, "message", ctx, report);
        self.field(&mut exception.kind, "type", ctx, report);
        if let Some(stack) = &mut exception.stack {
            let sctx = self.child(ctx, "stack");
            for frame in stack {
                self.walk_frame(frame, sctx, report);
            }
        }
        self.scrub_map(&mut exception.extra, ctx, report);
    }

    fn walk_frame(&self, frame: &mut StackFrame, ctx: Ctx<'_>, report: &mut ScrubReport) {
        self.field(&mut frame.path, "path", ctx, report);
        self.field(&mut frame.label, "label", ctx, report);
        self.scrub_map(&mut frame.extra, ctx, report);
    }
}
