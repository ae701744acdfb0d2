//! Putting groups' own filter expressions in place of `group.name = "g"`, with the limits that
//! keep it finite: no group may name itself (directly or through others), chains of groups stop
//! at [`MAX_GROUP_CHAIN`], one expression expands at most [`MAX_GROUP_EXPANSIONS`] groups, and
//! the result nests no deeper than [`MAX_NESTING`] (checked before each group goes in, so the
//! walk itself stays shallow).

use super::nesting::{MAX_NESTING, Under, parenthesized};
use super::{Expr, Flag, parse};

/// Longest chain of groups naming groups.
pub const MAX_GROUP_CHAIN: usize = 8;
/// Most groups one expression may expand, counting every occurrence.
pub const MAX_GROUP_EXPANSIONS: usize = 256;

/// A group's filter expression text, `None` when it has none; `None` outside for no such group.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<Option<String>>;

struct Resolver<'a> {
    lookup: Lookup<'a>,
    /// The groups being expanded, outermost first.
    chain: Vec<String>,
    expansions: usize,
}

impl Expr {
    /// Replaces `group.name = "g"` by the group's own expression; `lookup` returns the group's
    /// expression text. Fails on unknown groups, groups that name themselves, chains or numbers
    /// of groups past the limits, and results nested deeper than [`MAX_NESTING`].
    pub fn resolve_groups(self, lookup: Lookup<'_>) -> Result<Expr, String> {
        let mut resolver = Resolver {
            lookup,
            chain: Vec::new(),
            expansions: 0,
        };
        resolver.resolve(self, Under::Top, 0)
    }

    /// An expression that every trace satisfies.
    fn or_true(self) -> Expr {
        Expr::Or(vec![self.clone(), Expr::Not(Box::new(self))])
    }
}

impl Resolver<'_> {
    /// Resolves `expr` standing under `under` at nesting `level` (the levels above it).
    fn resolve(&mut self, expr: Expr, under: Under, level: usize) -> Result<Expr, String> {
        let own = level + usize::from(parenthesized(under, &expr));
        Ok(match expr {
            Expr::Group(name) => return self.expand(name, under, level),
            Expr::And(items) => Expr::And(self.terms(items, Under::And, own)?),
            Expr::Or(items) => Expr::Or(self.terms(items, Under::Or, own)?),
            Expr::Not(a) => Expr::Not(Box::new(self.resolve(*a, Under::Not, own + 1)?)),
            Expr::Service(s, Some(b)) => Expr::Service(s, Some(self.body(*b, own)?)),
            Expr::Edge(a, b, Some(body)) => Expr::Edge(a, b, Some(self.body(*body, own)?)),
            Expr::RootCause(k, Some(b)) => Expr::RootCause(k, Some(self.body(*b, own)?)),
            other => other,
        })
    }

    fn terms(&mut self, items: Vec<Expr>, under: Under, level: usize) -> Result<Vec<Expr>, String> {
        items
            .into_iter()
            .map(|e| self.resolve(e, under, level))
            .collect()
    }

    fn body(&mut self, body: Expr, level: usize) -> Result<Box<Expr>, String> {
        self.resolve(body, Under::Top, level + 1).map(Box::new)
    }

    /// The expression of group `name`, resolved, standing where `group.name = "name"` stood.
    fn expand(&mut self, name: String, under: Under, level: usize) -> Result<Expr, String> {
        if self.chain.contains(&name) {
            return Err(format!(
                "group {name:?} refers to itself (through {})",
                self.chain.join(" -> ")
            ));
        }
        if self.chain.len() >= MAX_GROUP_CHAIN {
            return Err(format!(
                "groups refer to each other too deeply (more than {MAX_GROUP_CHAIN} in a chain)"
            ));
        }
        self.expansions += 1;
        if self.expansions > MAX_GROUP_EXPANSIONS {
            return Err(format!(
                "the expression names more than {MAX_GROUP_EXPANSIONS} groups once resolved"
            ));
        }
        let expr = match (self.lookup)(&name) {
            None => return Err(format!("group {name:?} does not exist")),
            Some(None) => Expr::Flag(Flag::Ok).or_true(),
            Some(Some(text)) => parse(&text).map_err(|e| format!("group {name:?}: {e}"))?,
        };
        if level + expr.nesting_under(under) > MAX_NESTING {
            return Err(format!(
                "nesting deeper than {MAX_NESTING} once group {name:?} is put in place"
            ));
        }
        self.chain.push(name);
        let resolved = self.resolve(expr, under, level);
        self.chain.pop();
        resolved
    }
}
