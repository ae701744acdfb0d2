//! How deeply an expression nests, and its bound. Every walk of an [`Expr`] (evaluation,
//! printing, pushdown, group resolution, drop) recurses once per level, so the parser refuses
//! texts nested deeper than [`MAX_NESTING`] and group resolution never builds such a tree:
//! 2,000 `(` from the network cannot overflow a worker's stack.

use super::Expr;

/// Most levels a filter expression may nest: `(`, `!` and `{ }` bodies open at once in the
/// text, and the same count over a tree once its groups are put in place ([`Expr::nesting`]).
pub const MAX_NESTING: usize = 64;

/// What an expression stands under, for whether it needs parentheses there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Under {
    /// The top of an expression or of a `{ }` body.
    Top,
    /// A term of an AND.
    And,
    /// A term of an OR.
    Or,
    /// The operand of a `!`.
    Not,
}

/// Whether `child` must be written in parentheses under `under`: an OR under AND, and an AND or
/// OR under the same operator (which the parser would flatten) or under `!`.
pub(super) fn parenthesized(under: Under, child: &Expr) -> bool {
    matches!(
        (under, child),
        (Under::And | Under::Not, Expr::And(_) | Expr::Or(_)) | (Under::Or, Expr::Or(_))
    )
}

impl Expr {
    /// The nesting of the expression as it would be written: every `!`, `{ }` body and needed
    /// pair of parentheses adds a level. At most [`MAX_NESTING`] for any `Expr` the parser or
    /// [`Expr::resolve_groups`] returns, and at most the nesting of the text it was parsed from.
    pub fn nesting(&self) -> usize {
        self.nesting_under(Under::Top)
    }

    /// The nesting of the expression standing under `under`.
    pub(super) fn nesting_under(&self, under: Under) -> usize {
        let own = usize::from(parenthesized(under, self));
        own + match self {
            Expr::And(items) => max_nesting(items, Under::And),
            Expr::Or(items) => max_nesting(items, Under::Or),
            Expr::Not(inner) => 1 + inner.nesting_under(Under::Not),
            Expr::Service(_, Some(body))
            | Expr::Edge(_, _, Some(body))
            | Expr::RootCause(_, Some(body)) => 1 + body.nesting_under(Under::Top),
            _ => 0,
        }
    }
}

fn max_nesting(items: &[Expr], under: Under) -> usize {
    items
        .iter()
        .map(|e| e.nesting_under(under))
        .max()
        .unwrap_or(0)
}
