//! The typed walk over a [`Segment`] (the SDK's hot path). It visits the typed fields itself but
//! decides nothing: every field asks [`Inner::member`] what it is (so a skipped name is skipped
//! here too), free-form maps and unknown fields go through the same `walk_map` as the Value
//! walk, and strings through the same `scrub_str`. The differential tests prove it gives the
//! Value walk's output and counts.

use serde_json::{Map, Value};

use super::visit::{Member, Shape};
use super::{Ctx, Fate, Inner};
use crate::model::{Cause, CauseDetails, Exception, Http, Segment, Sql, StackFrame};
use crate::scrub::ScrubReport;

impl Inner {
    /// Walks a typed (sub)segment, as `walk_map` walks its JSON form.
    pub(super) fn walk_segment(&self, segment: &mut Segment, report: &mut ScrubReport) {
        let root = self.root();
        let doc = Shape::Document;
        self.field(&mut segment.origin, doc, root, "origin", report);
        self.field(&mut segment.user, doc, root, "user", report);
        self.field(&mut segment.resource_arn, doc, root, "resource_arn", report);
        self.map_field(&mut segment.service, doc, root, "service", report);
        self.map_field(&mut segment.aws, doc, root, "aws", report);
        self.map_field(&mut segment.annotations, doc, root, "annotations", report);
        self.map_field(&mut segment.metadata, doc, root, "metadata", report);
        if let Some(http) = &mut segment.http
            && let Some(ctx) = self.free(doc, root, "http")
        {
            self.walk_http(http, ctx, report);
        }
        if let Some(sql) = &mut segment.sql
            && let Some(ctx) = self.free(doc, root, "sql")
        {
            self.walk_sql(sql, ctx, report);
        }
        match (&mut segment.cause, self.member(doc, root, "cause")) {
            (Some(Cause::Details(details)), Member::Object(shape, ctx)) => {
                self.walk_cause(details, shape, self.enter(shape, ctx), report);
            }
            (Some(Cause::ExceptionId(id)), member) => {
                if let Some(ctx) = member.value_ctx()
                    && self.scrub_str(id, Some("cause"), ctx, report) == Fate::Drop
                {
                    segment.cause = None;
                }
            }
            _ => {}
        }
        self.walk_map(&mut segment.extra, doc, root, report);
        if !matches!(self.member(doc, root, "subsegments"), Member::Skip(..)) {
            for sub in segment.subsegments.iter_mut().flatten() {
                self.walk_segment(sub, report);
            }
        }
    }

    /// The context of a free-form object member, or `None` when it is skipped or exempt.
    fn free<'a>(&'a self, shape: Shape, parent: Ctx<'a>, key: &str) -> Option<Ctx<'a>> {
        self.member(shape, parent, key)
            .value_ctx()
            .filter(|ctx| !Self::exempt(*ctx))
    }

    /// Scrubs an optional string member; a `drop` action clears it.
    fn field(
        &self,
        value: &mut Option<String>,
        shape: Shape,
        parent: Ctx<'_>,
        key: &str,
        report: &mut ScrubReport,
    ) {
        if let Some(text) = value
            && let Some(ctx) = self.member(shape, parent, key).value_ctx()
            && self.scrub_str(text, Some(key), ctx, report) == Fate::Drop
        {
            *value = None;
        }
    }

    fn map_field(
        &self,
        value: &mut Option<Map<String, Value>>,
        shape: Shape,
        parent: Ctx<'_>,
        key: &str,
        report: &mut ScrubReport,
    ) {
        if let Some(map) = value
            && let Some(ctx) = self.member(shape, parent, key).value_ctx()
        {
            self.walk_map(map, Shape::Free, ctx, report);
        }
    }

    fn walk_http(&self, http: &mut Http, ctx: Ctx<'_>, report: &mut ScrubReport) {
        let free = Shape::Free;
        if let Some(request) = &mut http.request
            && let Some(ctx) = self.free(free, ctx, "request")
        {
            self.field(&mut request.method, free, ctx, "method", report);
            self.field(&mut request.url, free, ctx, "url", report);
            self.field(&mut request.user_agent, free, ctx, "user_agent", report);
            self.field(&mut request.client_ip, free, ctx, "client_ip", report);
            self.walk_map(&mut request.extra, free, ctx, report);
        }
        if let Some(response) = &mut http.response
            && let Some(ctx) = self.free(free, ctx, "response")
        {
            self.walk_map(&mut response.extra, free, ctx, report);
        }
        self.walk_map(&mut http.extra, free, ctx, report);
    }

    fn walk_sql(&self, sql: &mut Sql, ctx: Ctx<'_>, report: &mut ScrubReport) {
        let free = Shape::Free;
        self.field(
            &mut sql.connection_string,
            free,
            ctx,
            "connection_string",
            report,
        );
        self.field(&mut sql.url, free, ctx, "url", report);
        self.field(
            &mut sql.sanitized_query,
            free,
            ctx,
            "sanitized_query",
            report,
        );
        self.field(&mut sql.database_type, free, ctx, "database_type", report);
        self.field(
            &mut sql.database_version,
            free,
            ctx,
            "database_version",
            report,
        );
        self.field(&mut sql.driver_version, free, ctx, "driver_version", report);
        self.field(&mut sql.user, free, ctx, "user", report);
        self.field(&mut sql.preparation, free, ctx, "preparation", report);
        self.walk_map(&mut sql.extra, free, ctx, report);
    }

    fn walk_cause(
        &self,
        cause: &mut CauseDetails,
        shape: Shape,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        self.field(
            &mut cause.working_directory,
            shape,
            ctx,
            "working_directory",
            report,
        );
        if let Some(paths) = &mut cause.paths
            && let Some(pctx) = self.free(shape, ctx, "paths")
        {
            paths.retain_mut(|p| self.scrub_str(p, Some("paths"), pctx, report) == Fate::Keep);
        }
        if let Some(exceptions) = &mut cause.exceptions
            && let Member::Items(eshape, ectx) = self.member(shape, ctx, "exceptions")
        {
            for exception in exceptions {
                self.walk_exception(exception, eshape, self.enter(eshape, ectx), report);
            }
        }
        self.walk_map(&mut cause.extra, shape, ctx, report);
    }

    fn walk_exception(
        &self,
        exception: &mut Exception,
        shape: Shape,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        self.field(&mut exception.id, shape, ctx, "id", report);
        self.field(&mut exception.message, shape, ctx, "message", report);
        self.field(&mut exception.kind, shape, ctx, "type", report);
        self.field(&mut exception.cause, shape, ctx, "cause", report);
        if let Some(stack) = &mut exception.stack
            && let Some(sctx) = self.free(shape, ctx, "stack")
        {
            for frame in stack {
                self.walk_frame(frame, sctx, report);
            }
        }
        self.walk_map(&mut exception.extra, shape, ctx, report);
    }

    fn walk_frame(&self, frame: &mut StackFrame, ctx: Ctx<'_>, report: &mut ScrubReport) {
        let free = Shape::Free;
        self.field(&mut frame.path, free, ctx, "path", report);
        self.field(&mut frame.label, free, ctx, "label", report);
        self.walk_map(&mut frame.extra, free, ctx, report);
    }
}
