//! What a dashboard visitor may read. Without authentication, or for a principal allowed
//! `xray:GetTraceSummaries` on `*`, everything; for a principal allowed it only on some groups'
//! ARNs, only the traces of those groups: the map and the list are narrowed to one of them
//! (the group's filter AND the visitor's), and a trace outside them is "not found".

use crate::api::AppState;
use crate::assembly::TraceSummary;
use crate::auth::session::DASHBOARD_ACTION;
use crate::auth::{AUDIT_ACTION, Caller};
use crate::group::arn_of as group_arn;

use super::{PageError, Scope, filter_quote, query_err};

/// The traces a visitor may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every trace.
    All,
    /// Only the traces of these groups (names, in the store's order).
    Groups(Vec<String>),
}

impl Reach {
    /// The reach of a caller (`None`: authentication is off).
    pub async fn of(state: &AppState, caller: Option<&Caller>) -> Result<Self, PageError> {
        let Some(caller) = caller else {
            return Ok(Reach::All);
        };
        if caller.may(DASHBOARD_ACTION, "*") {
            return Ok(Reach::All);
        }
        let groups = state.store.groups().await.map_err(query_err)?;
        Ok(Reach::Groups(
            groups
                .into_iter()
                .filter(|g| caller.may(DASHBOARD_ACTION, &group_arn(&g.name)))
                .map(|g| g.name)
                .collect(),
        ))
    }

    /// Whether the visitor may read group `name`.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            Reach::All => true,
            Reach::Groups(names) => names.iter().any(|n| n == name),
        }
    }

    /// Narrows a page's scope: a group-scoped visitor must name one of its groups (the first
    /// when it names none); any other group is refused.
    pub fn restrict(&self, scope: &mut Scope) -> Result<(), PageError> {
        let Reach::Groups(names) = self else {
            return Ok(());
        };
        match scope.group.as_deref().filter(|g| !g.is_empty()) {
            Some(g) if self.allows(g) => Ok(()),
            Some(g) => Err(PageError::Forbidden(format!(
                "You may not read the traces of group {g}."
            ))),
            None => {
                let first = names.first().ok_or_else(|| {
                    PageError::Forbidden("You may not read the traces of any group.".to_owned())
                })?;
                scope.group = Some(first.clone());
                Ok(())
            }
        }
    }

    /// Whether a trace may be shown: always for [`Reach::All`], else when one of the groups'
    /// filters matches its summary.
    pub async fn may_see(&self, state: &AppState, summary: Option<&TraceSummary>) -> bool {
        let Reach::Groups(names) = self else {
            return true;
        };
        let Some(summary) = summary else {
            return false;
        };
        for name in names {
            let text = format!("group.name = {}", filter_quote(name));
            if let Ok(Some(expr)) = crate::api::parse_filter(state, Some(&text)).await
                && crate::filter::matches(&expr, summary)
            {
                return true;
            }
        }
        false
    }
}

/// Whether the caller may open the audit page (never without authentication: there is no log).
pub fn may_audit(caller: Option<&Caller>) -> bool {
    caller.is_some_and(|c| c.may(AUDIT_ACTION, "*"))
}
