//! Recursive-descent parser for filter expressions:
//!
//! ```text
//! expr      := and (OR and)*
//! and       := unary ((AND)? unary)*        -- terms side by side are ANDed, as X-Ray's do
//! unary     := '!' unary | primary
//! primary   := '(' expr ')' | service | edge | id | rootcause | predicate
//! service   := 'service' '(' selector? ')' body?
//! edge      := 'edge' '(' selector ',' selector ')' body?
//! selector  := STRING | 'id' '(' ('name' | 'type' | 'account.id') ':' STRING (',' ...)* ')'
//! rootcause := 'rootcause.' ('fault' | 'error' | 'responsetime') '.'
//!              ('service' | 'entity' | 'exception') body?
//! body      := '{' expr '}'
//! predicate := keyword (op value)? | 'annotation' '[' KEY ']' (op value)?
//! ```
//!
//! AND and OR chains become one node each. `(`, `!` and `{` (and `flag = false`, which is a
//! `!`) open a level; past [`MAX_NESTING`] levels the text is refused at that token's column.
//!
//! Every keyword is checked against where it stands ([`Place`]): one that would mean nothing
//! there (`coverage` outside a response-time root cause's entities, `http.status` on an edge,
//! `annotation.x` inside a root cause) is refused with the keywords that do apply, never
//! accepted and left to match nothing.

use super::lexer::Token;
use super::nesting::MAX_NESTING;
use super::{
    CauseLevel, CauseList, Expr, FilterError, Flag, Key, Literal, NumberKey, Op, RootCause,
    ServiceSelector, StringKey,
};
use crate::group::GroupName;

const FLAGS: &[(&str, Flag)] = &[
    ("ok", Flag::Ok),
    ("error", Flag::Error),
    ("throttle", Flag::Throttle),
    ("fault", Flag::Fault),
    ("partial", Flag::Partial),
    ("inferred", Flag::Inferred),
    ("first", Flag::First),
    ("last", Flag::Last),
    ("remote", Flag::Remote),
    ("root", Flag::Root),
];

const NUMBERS: &[(&str, NumberKey)] = &[
    ("responsetime", NumberKey::ResponseTime),
    ("duration", NumberKey::Duration),
    ("http.status", NumberKey::HttpStatus),
    ("index", NumberKey::Index),
    ("coverage", NumberKey::Coverage),
];

const STRINGS: &[(&str, StringKey)] = &[
    ("http.url", StringKey::HttpUrl),
    ("http.method", StringKey::HttpMethod),
    ("http.useragent", StringKey::HttpUserAgent),
    ("http.clientip", StringKey::HttpClientIp),
    ("user", StringKey::User),
    ("name", StringKey::Name),
    ("type", StringKey::Type),
    ("message", StringKey::Message),
    ("availabilityzone", StringKey::AvailabilityZone),
    ("instance.id", StringKey::InstanceId),
    ("resource.arn", StringKey::ResourceArn),
    ("account.id", StringKey::AccountId),
];

/// Keyword text of a flag.
pub(super) fn flag_name(flag: Flag) -> &'static str {
    FLAGS
        .iter()
        .find(|(_, f)| *f == flag)
        .map_or("ok", |(n, _)| n)
}

/// Keyword text of a number key.
pub(super) fn number_key_name(key: NumberKey) -> &'static str {
    NUMBERS
        .iter()
        .find(|(_, k)| *k == key)
        .map_or("responsetime", |(n, _)| n)
}

/// Keyword text of a string key.
pub(super) fn string_key_name(key: StringKey) -> &'static str {
    STRINGS
        .iter()
        .find(|(_, k)| *k == key)
        .map_or("name", |(n, _)| n)
}

/// What the keywords at the cursor refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// The whole trace.
    Trace,
    /// One service, inside `service(...) { }`.
    Service,
    /// One edge, inside `edge(...) { }`.
    Edge,
    /// One element of a root cause's list, inside `rootcause.KIND.LEVEL { }`.
    Cause(CauseList),
}

/// The keywords that apply to an element of a root cause's list.
fn cause_keywords(list: CauseList) -> &'static [&'static str] {
    match (list.level, list.kind) {
        (CauseLevel::Service, _) => &[
            "name", "type", "inferred", "remote", "first", "last", "index",
        ],
        (CauseLevel::Entity, RootCause::ResponseTime) => {
            &["name", "remote", "coverage", "first", "last", "index"]
        }
        (CauseLevel::Entity, _) => &["name", "remote", "first", "last", "index"],
        (CauseLevel::Exception, _) => &["name", "message", "first", "last", "index"],
    }
}

/// Why `keyword` (lower case) cannot stand at `place`, if it cannot.
fn misplaced(keyword: &str, place: Place) -> Option<String> {
    match place {
        Place::Cause(list) => {
            let allowed = cause_keywords(list);
            (!allowed.contains(&keyword)).then(|| {
                format!(
                    "{keyword} does not apply inside {list} {{ }}: expected one of {}",
                    allowed.join(", ")
                )
            })
        }
        _ if keyword == "index" => {
            Some("index applies only inside rootcause.KIND.service|entity|exception { }".to_owned())
        }
        _ if keyword == "coverage" => {
            Some("coverage applies only inside rootcause.responsetime.entity { }".to_owned())
        }
        Place::Edge if keyword.starts_with("http.") => Some(format!(
            "{keyword} is not recorded per edge: use service(...) {{ {keyword} ... }}"
        )),
        _ => None,
    }
}

/// Why `rootcause.json` (and its `#[...]` values) are refused.
pub(super) const ROOTCAUSE_JSON: &str = "rootcause.json is not supported: match root causes \
    with rootcause.fault|error|responsetime.service|entity|exception { ... }";

/// `KIND.LEVEL` after `rootcause.`.
fn cause_list(rest: &str) -> Result<CauseList, String> {
    let expected = "expected rootcause.fault, rootcause.error or rootcause.responsetime followed \
                    by .service, .entity or .exception";
    if rest == "json" {
        return Err(ROOTCAUSE_JSON.to_owned());
    }
    let (kind, level) = rest
        .split_once('.')
        .ok_or_else(|| format!("{expected}, found \"rootcause.{rest}\""))?;
    let kind = match kind {
        "fault" => RootCause::Fault,
        "error" => RootCause::Error,
        "responsetime" => RootCause::ResponseTime,
        _ => return Err(format!("{expected}, found \"rootcause.{rest}\"")),
    };
    let level = match level {
        "service" => CauseLevel::Service,
        "entity" => CauseLevel::Entity,
        "exception" if kind != RootCause::ResponseTime => CauseLevel::Exception,
        "exception" => {
            return Err("response-time root causes record no exceptions: expected \
                 rootcause.responsetime.service or rootcause.responsetime.entity"
                .to_owned());
        }
        _ => return Err(format!("{expected}, found \"rootcause.{rest}\"")),
    };
    Ok(CauseList { kind, level })
}

/// The parser state: tokens with their columns and a cursor.
pub(super) struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    end_column: usize,
    /// Levels open at the cursor.
    depth: usize,
    /// What keywords at the cursor refer to.
    place: Place,
}

impl Parser {
    /// A parser over `tokens` of a text `len` characters long.
    pub(super) fn new(tokens: Vec<(Token, usize)>, len: usize) -> Self {
        Self {
            tokens,
            pos: 0,
            end_column: len + 1,
            depth: 0,
            place: Place::Trace,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.end_column, |(_, c)| *c)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or("the end of the expression".to_owned(), Token::describe)
    }

    fn expected(&self, what: &str) -> FilterError {
        FilterError::new(
            self.column(),
            format!("expected {what}, found {}", self.found()),
        )
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Result<(), FilterError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.expected(&token.describe()))
        }
    }

    /// Refuses one more level at `column` when [`MAX_NESTING`] are open.
    fn room_for_level(&self, column: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_NESTING {
            return Err(FilterError::new(
                column,
                format!("nesting deeper than {MAX_NESTING}"),
            ));
        }
        Ok(())
    }

    /// Consumes the token that opens a level (`(`, `!`, `{`) and parses what it holds with `f`.
    fn nested(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<Expr, FilterError>,
    ) -> Result<Expr, FilterError> {
        self.room_for_level(self.column())?;
        self.pos += 1;
        self.depth += 1;
        let inner = f(self);
        self.depth -= 1;
        inner
    }

    /// `(` expr `)` or `{` expr `}`: the opening token, then an expression and `close`.
    fn enclosed(&mut self, close: Token) -> Result<Expr, FilterError> {
        self.nested(|p| {
            let e = p.expr()?;
            p.expect(&close)?;
            Ok(e)
        })
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// Parses the whole input.
    pub(super) fn parse_all(mut self) -> Result<Expr, FilterError> {
        if self.tokens.is_empty() {
            return Err(FilterError::new(1, "the expression is empty"));
        }
        let e = self.expr()?;
        if self.peek().is_some() {
            return Err(self.expected("AND, OR or the end of the expression"));
        }
        Ok(e)
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and()?];
        while self.is_word("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(chain(terms, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.unary()?];
        loop {
            if self.is_word("and") {
                self.pos += 1;
            } else if !self.starts_term() {
                break;
            }
            terms.push(self.unary()?);
        }
        Ok(chain(terms, Expr::And))
    }

    /// Whether the cursor is at a term written beside the previous one (`ok !partial`).
    fn starts_term(&self) -> bool {
        match self.peek() {
            Some(Token::Bang | Token::LParen) => true,
            Some(Token::Word(w)) => !w.eq_ignore_ascii_case("or"),
            _ => false,
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Token::Bang) {
            return self.nested(|p| Ok(Expr::Not(Box::new(p.unary()?))));
        }
        self.primary()
    }

    /// An optional `{ }` body whose keywords refer to `place`.
    fn body(&mut self, place: Place) -> Result<Option<Box<Expr>>, FilterError> {
        if self.peek() != Some(&Token::LBrace) {
            return Ok(None);
        }
        if self.tokens.get(self.pos + 1).map(|(t, _)| t) == Some(&Token::RBrace) {
            self.pos += 2;
            return Ok(None);
        }
        let outer = std::mem::replace(&mut self.place, place);
        let body = self.enclosed(Token::RBrace);
        self.place = outer;
        Ok(Some(Box::new(body?)))
    }

    fn string(&mut self, what: &str) -> Result<String, FilterError> {
        match self.peek() {
            Some(Token::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// `id(name: "n", type: "t", account.id: "a")`, after the word `id`.
    fn id_fields(&mut self) -> Result<ServiceSelector, FilterError> {
        self.expect(&Token::LParen)?;
        let mut sel = ServiceSelector::default();
        loop {
            let col = self.column();
            let field = match self.next() {
                Some(Token::Word(w)) => w.to_ascii_lowercase(),
                _ => {
                    self.pos -= 1;
                    return Err(self.expected("name, type or account.id"));
                }
            };
            self.expect(&Token::Colon)?;
            let value = self.string("a quoted string")?;
            match field.as_str() {
                "name" => sel.name = Some(value),
                "type" => sel.kind = Some(value),
                "account.id" => sel.account = Some(value),
                other => {
                    return Err(FilterError::new(
                        col,
                        format!("expected name, type or account.id, found {other:?}"),
                    ));
                }
            }
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(&Token::RParen)?;
        Ok(sel)
    }

    fn selector(&mut self) -> Result<ServiceSelector, FilterError> {
        match self.peek() {
            Some(Token::Str(_)) => Ok(ServiceSelector {
                name: Some(self.string("a service name")?),
                ..ServiceSelector::default()
            }),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("id") => {
                self.pos += 1;
                self.id_fields()
            }
            _ => Err(self.expected("a quoted service name or id(...)")),
        }
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let col = self.column();
        let word = match self.peek() {
            Some(Token::LParen) => {
                return self.enclosed(Token::RParen);
            }
            Some(Token::Word(w)) => w.clone(),
            _ => return Err(self.expected("a keyword, service(...), edge(...), \"!\" or \"(\"")),
        };
        self.pos += 1;
        let lower = word.to_ascii_lowercase();
        if !matches!(lower.as_str(), "and" | "or")
            && let Some(why) = misplaced(&lower, self.place)
        {
            return Err(FilterError::new(col, why));
        }
        match lower.as_str() {
            "service" => {
                self.expect(&Token::LParen)?;
                let sel = if self.peek() == Some(&Token::RParen) {
                    ServiceSelector::default()
                } else {
                    self.selector()?
                };
                self.expect(&Token::RParen)?;
                let body = self.body(Place::Service)?;
                return Ok(Expr::Service(sel, body));
            }
            "edge" => {
                self.expect(&Token::LParen)?;
                let from = self.selector()?;
                self.expect(&Token::Comma)?;
                let to = self.selector()?;
                self.expect(&Token::RParen)?;
                let body = self.body(Place::Edge)?;
                return Ok(Expr::Edge(from, to, body));
            }
            "id" => {
                if let Some(Token::Str(text)) = self.tokens.get(self.pos + 1).map(|(t, _)| t) {
                    let at = self.column();
                    let id = roentgen_sdk::model::TraceId::parse_either(text).map_err(|e| {
                        FilterError::new(
                            at,
                            format!("id(\"{text}\") takes a trace id, 1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx or 32 hex digits: {e}"),
                        )
                    })?;
                    self.pos += 2;
                    self.expect(&Token::RParen)?;
                    return Ok(Expr::TraceId(id.to_string()));
                }
                return Ok(Expr::Id(self.id_fields()?));
            }
            "and" | "or" => {
                return Err(FilterError::new(
                    col,
                    format!(
                        "expected a keyword before {}, found {word:?}",
                        word.to_uppercase()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(rest) = lower.strip_prefix("rootcause.") {
            let list = cause_list(rest).map_err(|m| FilterError::new(col, m))?;
            return Ok(Expr::RootCause(list, self.body(Place::Cause(list))?));
        }
        if lower == "group.name" || lower == "group.arn" {
            if !self.eat(&Token::Cmp("=")) {
                return Err(self.expected("\"=\" after group.name"));
            }
            let at = self.column();
            let text = self.string("a quoted group name")?;
            let name = if lower == "group.arn" {
                GroupName::from_arn(&text)
            } else {
                GroupName::parse(&text)
            };
            let name = name.map_err(|e| FilterError::new(at, e.to_string()))?;
            return Ok(Expr::Group(name.as_str().to_owned()));
        }
        if let Some((_, flag)) = FLAGS.iter().find(|(n, _)| *n == lower) {
            // `fault = true` is accepted as well as the bare keyword.
            if let Some(Token::Cmp(op @ ("=" | "!="))) = self.peek() {
                let negate = *op == "!=";
                self.pos += 1;
                let value = match self.next() {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => true,
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => false,
                    _ => {
                        self.pos -= 1;
                        return Err(self.expected("true or false"));
                    }
                };
                let e = Expr::Flag(*flag);
                if value != negate {
                    return Ok(e);
                }
                self.room_for_level(col)?;
                return Ok(Expr::Not(Box::new(e)));
            }
            return Ok(Expr::Flag(*flag));
        }
        let key = if let Some((_, k)) = NUMBERS.iter().find(|(n, _)| *n == lower) {
            Key::Number(*k)
        } else if let Some((_, k)) = STRINGS.iter().find(|(n, _)| *n == lower) {
            Key::String(*k)
        } else if lower == "annotation"
            && let Some(Token::Bracketed(k)) = self.peek()
        {
            let k = k.clone();
            self.pos += 1;
            Key::Annotation(k)
        } else if let Some(k) = word
            .strip_prefix("annotation.")
            .or_else(|| word.strip_prefix("Annotation."))
        {
            if k.is_empty() || k.contains('.') {
                return Err(FilterError::new(
                    col,
                    format!(
                        "expected annotation.KEY with KEY of letters, digits and _, found {word:?}"
                    ),
                ));
            }
            Key::Annotation(k.to_owned())
        } else {
            return Err(FilterError::new(col, format!("unknown keyword {word:?}")));
        };
        let op = match self.peek() {
            Some(Token::Cmp(op)) => match *op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("contains") => Op::Contains,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("beginswith") => Op::BeginsWith,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("endswith") => Op::EndsWith,
            _ => return Ok(Expr::Exists(key)),
        };
        let op_col = self.column();
        self.pos += 1;
        let value_col = self.column();
        let value = match self.next() {
            Some(Token::Str(s)) => Literal::Str(s),
            Some(Token::Num(n)) => Literal::Num(n),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => {
                self.pos -= 1;
                return Err(self.expected(&format!("a value after {op}")));
            }
        };
        let string_op = matches!(op, Op::Contains | Op::BeginsWith | Op::EndsWith);
        let ordering_op = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        match (&key, &value) {
            (Key::Number(_), Literal::Num(_)) if !string_op => {}
            (Key::Number(_), _) if string_op => {
                return Err(FilterError::new(
                    op_col,
                    format!("{word} is a number: expected =, !=, <, <=, > or >=, found {op}"),
                ));
            }
            (Key::Number(_), _) => {
                return Err(FilterError::new(
                    value_col,
                    format!("{word} is a number: expected a number after {op}"),
                ));
            }
            (Key::String(_), Literal::Str(_)) if !ordering_op => {}
            (Key::String(_), _) if ordering_op => {
                return Err(FilterError::new(
                    op_col,
                    format!(
                        "{word} is a string: expected =, !=, CONTAINS, BEGINSWITH or ENDSWITH, found {op}"
                    ),
                ));
            }
            (Key::String(_), _) => {
                return Err(FilterError::new(
                    value_col,
                    format!("{word} is a string: expected a quoted string after {op}"),
                ));
            }
            (Key::Annotation(_), Literal::Str(_)) if !ordering_op => {}
            (Key::Annotation(_), Literal::Num(_)) if !string_op => {}
            (Key::Annotation(_), Literal::Bool(_)) if matches!(op, Op::Eq | Op::Ne) => {}
            (Key::Annotation(_), _) => {
                return Err(FilterError::new(
                    op_col,
                    format!("operator {op} does not apply to that value"),
                ));
            }
        }
        Ok(Expr::Compare(key, op, value))
    }
}

/// One term alone, or the chain `make` builds of two or more.
fn chain(mut terms: Vec<Expr>, make: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.swap_remove(0)
    } else {
        make(terms)
    }
}
