//! What each member of a segment document is, decided once for the three representations: the
//! Value walk and the typed walk (`walk.rs`) and the JSON text pass (`text.rs`) navigate their
//! own data, but ask [`Inner::member`] what every member is and [`Inner::member_key`] what
//! becomes of its key, and hand every scalar to `scalar.rs`. A new rule is written here or
//! there, once.
//!
//! Also here: the walk over a `serde_json::Map`, which the Value walk uses for every map and the
//! typed walk for its free-form maps and unknown fields. Map keys are scrubbed like values
//! (detectors only); a rewritten key that would collide with another gets a `~2`, `~3`, ...
//! suffix in document order, so no member is lost. A member whose key was rewritten is then
//! judged under its new key, which is what a second pass sees: scrubbing stays idempotent.

use serde_json::{Map, Value};

use super::{Ctx, Fate, Inner, Rule, ScrubReport, keys};

/// The kinds of maps a segment document is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A (sub)segment.
    Document,
    /// A `cause` object.
    Cause,
    /// One item of `cause.exceptions`.
    Exception,
    /// Anything else: annotations, metadata, `http`, `sql`, `aws`, unknown fields.
    Free,
}

/// What the value of a member is, and the context it is scrubbed in.
#[derive(Clone, Copy)]
pub(super) enum Member<'a> {
    /// Never scrubbed when it holds what it should: ids, times, names, types, flags. Anything
    /// else there (a string where a flag belongs, an object among `precursor_ids`) is scrubbed
    /// as a free-form value in the context given.
    Skip(Expect, Ctx<'a>),
    /// An object of this shape; any other value there is scrubbed as a free-form value.
    Object(Shape, Ctx<'a>),
    /// An array whose objects have this shape; its other items, or any other value there, are
    /// scrubbed as free-form values.
    Items(Shape, Ctx<'a>),
    /// A free-form value: strings and numbers are scrubbed, objects and arrays walked.
    Value(Ctx<'a>),
}

impl<'a> Member<'a> {
    /// The context a non-object value of this member is scrubbed in (`None`: skipped).
    #[inline]
    pub(super) fn value_ctx(self) -> Option<Ctx<'a>> {
        match self {
            Member::Skip(..) => None,
            Member::Object(_, ctx) | Member::Items(_, ctx) | Member::Value(ctx) => Some(ctx),
        }
    }
}

/// The JSON kind of a value (the text pass knows it from the value's first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    String,
    Number,
    Bool,
    Null,
    Array,
    Object,
}

impl Kind {
    pub(super) fn of(value: &Value) -> Self {
        match value {
            Value::String(_) => Self::String,
            Value::Number(_) => Self::Number,
            Value::Bool(_) => Self::Bool,
            Value::Null => Self::Null,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }

    /// The kind of the well-formed JSON value starting with `byte`.
    pub(super) fn starting_with(byte: Option<u8>) -> Self {
        match byte {
            Some(b'"') => Self::String,
            Some(b'[') => Self::Array,
            Some(b'{') => Self::Object,
            Some(b't' | b'f') => Self::Bool,
            Some(b'n') => Self::Null,
            _ => Self::Number,
        }
    }
}

/// What a skipped member holds when it is what it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// A string: ids, names, types.
    Text,
    /// A number: times.
    Number,
    /// A boolean: flags.
    Flag,
    /// An array of ids: its strings are skipped, its other items scrubbed.
    Ids,
}

impl Expect {
    /// Whether a value of `kind` here is skipped whole (`null` always is: nothing to scrub).
    pub(super) fn skips(self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (_, Kind::Null)
                | (Expect::Text, Kind::String)
                | (Expect::Number, Kind::Number)
                | (Expect::Flag, Kind::Bool)
        )
    }

    /// For an array here, what each item must hold to be skipped (`None`: the array is not
    /// what belongs here, and is scrubbed as a whole).
    pub(super) fn items(self) -> Option<Expect> {
        (self == Expect::Ids).then_some(Expect::Text)
    }
}

/// Document-level keys never scrubbed, and what they hold.
#[inline]
fn skipped(key: &str) -> Option<Expect> {
    match key {
        "id" | "trace_id" | "parent_id" | "name" | "type" | "namespace" => Some(Expect::Text),
        "start_time" | "end_time" => Some(Expect::Number),
        "in_progress" | "error" | "throttle" | "fault" | "traced" => Some(Expect::Flag),
        "precursor_ids" => Some(Expect::Ids),
        _ => None,
    }
}

/// Whether `key` names a field of the typed document (any block): such keys are never
/// rewritten, so that a custom detector matching `user` or `url` cannot make the typed walk,
/// which cannot rename a field, differ from the others.
fn is_structural(key: &str) -> bool {
    skipped(key).is_some()
        || matches!(
            key,
            "origin"
                | "user"
                | "service"
                | "http"
                | "sql"
                | "aws"
                | "cause"
                | "annotations"
                | "metadata"
                | "subsegments"
                | "resource_arn"
                | "request"
                | "response"
                | "method"
                | "url"
                | "user_agent"
                | "client_ip"
                | "x_forwarded_for"
                | "status"
                | "content_length"
                | "connection_string"
                | "sanitized_query"
                | "database_type"
                | "database_version"
                | "driver_version"
                | "preparation"
                | "working_directory"
                | "paths"
                | "exceptions"
                | "message"
                | "remote"
                | "truncated"
                | "skipped"
                | "stack"
                | "path"
                | "line"
                | "label"
        )
}

impl Inner {
    /// What member `key` of a map of `shape` at `ctx` is.
    #[inline]
    pub(super) fn member<'a>(&'a self, shape: Shape, ctx: Ctx<'a>, key: &str) -> Member<'a> {
        // Shape first: most members are in free-form maps, which need no name compared.
        let kind = match shape {
            Shape::Free => None,
            Shape::Document => match skipped(key) {
                Some(expect) => return Member::Skip(expect, self.child(ctx, key)),
                None => match key {
                    "subsegments" => Some((true, Shape::Document)),
                    "cause" => Some((false, Shape::Cause)),
                    _ => None,
                },
            },
            Shape::Cause => (key == "exceptions").then_some((true, Shape::Exception)),
            Shape::Exception if key == "id" => {
                return Member::Skip(Expect::Text, self.child(ctx, key));
            }
            Shape::Exception => None,
        };
        let ctx = self.child(ctx, key);
        match kind {
            None => Member::Value(ctx),
            Some((true, shape)) => Member::Items(shape, ctx),
            Some((false, shape)) => Member::Object(shape, ctx),
        }
    }

    /// The context the members of a map of `shape` found at `ctx` start from: a nested
    /// document starts again at the root of the field paths.
    pub(super) fn enter<'a>(&'a self, shape: Shape, ctx: Ctx<'a>) -> Ctx<'a> {
        if shape == Shape::Document {
            self.root()
        } else {
            ctx
        }
    }

    /// Whether a free-form object or array at `ctx` is exempt as a whole (not looked into).
    pub(super) fn exempt(ctx: Ctx<'_>) -> bool {
        ctx.rule.is_some_and(Rule::exempts_everything) && ctx.node.is_none()
    }

    /// What becomes of the key of `member`: kept, rewritten (the new key), or its member
    /// dropped.
    pub(super) fn member_key(
        &self,
        key: &str,
        member: Member<'_>,
        report: &mut ScrubReport,
    ) -> (Fate, Option<String>) {
        match member.value_ctx() {
            Some(ctx) if !self.key_is_kept(key) => self.scrub_key(key, ctx, report),
            _ => (Fate::Keep, None),
        }
    }

    /// Whether `key` stays as it is whatever its member: a field name of the typed document,
    /// or a plain identifier no detector can match (`keys::is_plain`, with built-ins only; the
    /// field names are plain too). Most keys of a document are, so this is asked first.
    #[inline]
    fn key_is_kept(&self, key: &str) -> bool {
        (self.only_built_ins && keys::is_plain(key)) || is_structural(key)
    }

    /// Scrubs the map `map` of `shape` at `ctx` (members as [`Inner::member`] says, keys as
    /// [`Inner::member_key`] says), in place.
    pub(super) fn walk_map(
        &self,
        map: &mut Map<String, Value>,
        shape: Shape,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) {
        if shape == Shape::Free && Self::exempt(ctx) {
            return;
        }
        let mut renamed = Vec::new();
        for (i, key) in map.keys().enumerate() {
            if self.key_is_kept(key) {
                continue;
            }
            let member = self.member(shape, ctx, key);
            match self.member_key(key, member, report) {
                (Fate::Keep, None) => {}
                (fate, new) => renamed.push((i, fate, new)),
            }
        }
        if renamed.is_empty() {
            map.retain(|key, value| {
                self.member_value(value, shape, ctx, key, report) == Fate::Keep
            });
            return;
        }
        let old = std::mem::take(map);
        let mut renamed = renamed.into_iter().peekable();
        for (i, (key, mut value)) in old.into_iter().enumerate() {
            let (fate, new) = match renamed.next_if(|(at, _, _)| *at == i) {
                Some((_, fate, new)) => (fate, new),
                None => (Fate::Keep, None),
            };
            if fate == Fate::Drop {
                continue;
            }
            let mut new_key = new.unwrap_or(key);
            let base = new_key.len();
            let mut n = 1;
            while map.contains_key(&new_key) {
                n += 1;
                new_key.truncate(base);
                new_key.push('~');
                new_key.push_str(&n.to_string());
            }
            // The value is judged under the key it will have, so that a second pass, which
            // sees that key, judges it the same.
            if self.member_value(&mut value, shape, ctx, &new_key, report) == Fate::Drop {
                continue;
            }
            report.grow((new_key.len() - base) as i64);
            map.insert(new_key, value);
        }
    }

    /// Scrubs the value of member `key` of a map of `shape` at `ctx`.
    fn member_value(
        &self,
        value: &mut Value,
        shape: Shape,
        ctx: Ctx<'_>,
        key: &str,
        report: &mut ScrubReport,
    ) -> Fate {
        match (self.member(shape, ctx, key), value) {
            (Member::Skip(expect, c), value) => {
                let kind = Kind::of(value);
                if expect.skips(kind) {
                    return Fate::Keep;
                }
                match (expect.items(), value) {
                    (Some(item), Value::Array(items)) => {
                        items.retain_mut(|v| {
                            item.skips(Kind::of(v))
                                || self.scrub_value(v, Some(key), c, report) == Fate::Keep
                        });
                        Fate::Keep
                    }
                    (_, value) => self.scrub_value(value, Some(key), c, report),
                }
            }
            (Member::Object(s, c), Value::Object(map)) => {
                self.walk_map(map, s, self.enter(s, c), report);
                Fate::Keep
            }
            (Member::Items(s, c), Value::Array(items)) => {
                items.retain_mut(|item| match item {
                    Value::Object(map) => {
                        self.walk_map(map, s, self.enter(s, c), report);
                        true
                    }
                    other => self.scrub_value(other, Some(key), c, report) == Fate::Keep,
                });
                Fate::Keep
            }
            (member, value) => match member.value_ctx() {
                Some(c) => self.scrub_value(value, Some(key), c, report),
                None => Fate::Keep,
            },
        }
    }

    /// Scrubs any free-form value found under `key` (objects and arrays recursively).
    pub(super) fn scrub_value(
        &self,
        value: &mut Value,
        key: Option<&str>,
        ctx: Ctx<'_>,
        report: &mut ScrubReport,
    ) -> Fate {
        match value {
            Value::String(s) => self.scrub_str(s, key, ctx, report),
            Value::Number(_) => self.scrub_number(value, key, ctx, report),
            Value::Object(map) => {
                self.walk_map(map, Shape::Free, ctx, report);
                Fate::Keep
            }
            Value::Array(items) => {
                if !Self::exempt(ctx) {
                    items.retain_mut(|v| self.scrub_value(v, key, ctx, report) == Fate::Keep);
                }
                Fate::Keep
            }
            Value::Bool(_) | Value::Null => Fate::Keep,
        }
    }
}
