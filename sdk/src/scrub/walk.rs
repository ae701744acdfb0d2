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

/// The typed documents' string fields, by name: the hint each name gives (`keys.rs`) is worked
/// out once per scrubber instead of for every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Origin,
    User,
    ResourceArn,
    Method,
    Url,
    UserAgent,
    ClientIp,
    ConnectionString,
    SanitizedQuery,
    DatabaseType,
    DatabaseVersion,
    DriverVersion,
    Preparation,
    WorkingDirectory,
    Id,
    Message,
    Type,
    Cause,
    Path,
    Label,
}

impl Field {
    /// Every field, in the order of [`Inner`]'s table of their hints.
    pub(super) const ALL: [Self; 20] = [
        Self::Origin,
        Self::User,
        Self::ResourceArn,
        Self::Method,
        Self::Url,
        Self::UserAgent,
        Self::ClientIp,
        Self::ConnectionString,
        Self::SanitizedQuery,
        Self::DatabaseType,
        Self::DatabaseVersion,
        Self::DriverVersion,
        Self::Preparation,
        Self::WorkingDirectory,
        Self::Id,
        Self::Message,
        Self::Type,
        Self::Cause,
        Self::Path,
        Self::Label,
    ];

    /// The field's name in the document.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::User => "user",
            Self::ResourceArn => "resource_arn",
            Self::Method => "method",
            Self::Url => "url",
            Self::UserAgent => "user_agent",
            Self::ClientIp => "client_ip",
            Self::ConnectionString => "connection_string",
            Self::SanitizedQuery => "sanitized_query",
            Self::DatabaseType => "database_type",
            Self::DatabaseVersion => "database_version",
            Self::DriverVersion => "driver_version",
            Self::Preparation => "preparation",
            Self::WorkingDirectory => "working_directory",
            Self::Id => "id",
            Self::Message => "message",
            Self::Type => "type",
            Self::Cause => "cause",
            Self::Path => "path",
            Self::Label => "label",
        }
    }
}

impl Inner {
    /// Walks a typed (sub)segment, as `walk_map` walks its JSON form.
    pub(super) fn walk_segment(&self, segment: &mut Segment, report: &mut ScrubReport) {
        let root = self.root();
        let doc = Shape::Document;
        self.field(&mut segment.origin, doc, root, Field::Origin, report);
        self.field(&mut segment.user, doc, root, Field::User, report);
        self.field(
            &mut segment.resource_arn,
            doc,
            root,
            Field::ResourceArn,
            report,
        );
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
        field: Field,
        report: &mut ScrubReport,
    ) {
        if let Some(text) = value
            && let Some(ctx) = self.member(shape, parent, field.name()).value_ctx()
        {
            let (fate, rewritten) = self.scrub_hinted(
                text,
                Some(field.name()),
                self.typed_hints[field as usize],
                ctx,
                report,
            );
            match (fate, rewritten) {
                (Fate::Drop, _) => *value = None,
                (Fate::Keep, Some(new)) => *text = new,
                (Fate::Keep, None) => {}
            }
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
            self.field(&mut request.method, free, ctx, Field::Method, report);
            self.field(&mut request.url, free, ctx, Field::Url, report);
            self.field(&mut request.user_agent, free, ctx, Field::UserAgent, report);
            self.field(&mut request.client_ip, free, ctx, Field::ClientIp, report);
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
            Field::ConnectionString,
            report,
        );
        self.field(&mut sql.url, free, ctx, Field::Url, report);
        self.field(
            &mut sql.sanitized_query,
            free,
            ctx,
            Field::SanitizedQuery,
            report,
        );
        self.field(
            &mut sql.database_type,
            free,
            ctx,
            Field::DatabaseType,
            report,
        );
        self.field(
            &mut sql.database_version,
            free,
            ctx,
            Field::DatabaseVersion,
            report,
        );
        self.field(
            &mut sql.driver_version,
            free,
            ctx,
            Field::DriverVersion,
            report,
        );
        self.field(&mut sql.user, free, ctx, Field::User, report);
        self.field(&mut sql.preparation, free, ctx, Field::Preparation, report);
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
            Field::WorkingDirectory,
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
        self.field(&mut exception.id, shape, ctx, Field::Id, report);
        self.field(&mut exception.message, shape, ctx, Field::Message, report);
        self.field(&mut exception.kind, shape, ctx, Field::Type, report);
        self.field(&mut exception.cause, shape, ctx, Field::Cause, report);
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
        self.field(&mut frame.path, free, ctx, Field::Path, report);
        self.field(&mut frame.label, free, ctx, Field::Label, report);
        self.walk_map(&mut frame.extra, free, ctx, report);
    }
}
