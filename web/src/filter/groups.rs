//! Which groups an expression names, and whether it is confined to one: what the request's
//! group scope (`api::scope`) is decided from.

use super::Expr;

/// The groups an expression names (`group.name`/`group.arn`), in order of appearance.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GroupRefs {
    /// Every group named anywhere in the expression.
    pub all: Vec<String>,
    /// The groups named as a top-level conjunct (`group.name = "g" AND ...`): every trace the
    /// expression matches is in each of them.
    pub confining: Vec<String>,
}

impl Expr {
    /// The groups this expression names.
    pub fn group_refs(&self) -> GroupRefs {
        let mut refs = GroupRefs::default();
        self.collect_groups(&mut refs.all);
        self.collect_confining(&mut refs.confining);
        refs
    }

    fn collect_groups(&self, out: &mut Vec<String>) {
        // An explicit stack: the expression's depth is the client's choice.
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Group(name) => out.push(name.clone()),
                Expr::And(items) | Expr::Or(items) => stack.extend(items.iter().rev()),
                Expr::Not(a)
                | Expr::Service(_, Some(a))
                | Expr::Edge(_, _, Some(a))
                | Expr::RootCause(_, Some(a)) => stack.push(a),
                _ => {}
            }
        }
    }

    fn collect_confining(&self, out: &mut Vec<String>) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Group(name) => out.push(name.clone()),
                Expr::And(items) => stack.extend(items.iter().rev()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::filter::parse;

    fn refs(text: &str) -> (Vec<String>, Vec<String>) {
        let r = parse(text).unwrap().group_refs();
        (r.all, r.confining)
    }

    #[test]
    fn a_top_level_conjunct_confines_and_other_places_only_name() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(refs("fault"), (s(&[]), s(&[])));
        assert_eq!(refs("group.name = \"web\""), (s(&["web"]), s(&["web"])));
        assert_eq!(
            refs("fault AND (group.name = \"web\" AND ok)"),
            (s(&["web"]), s(&["web"]))
        );
        assert_eq!(refs("group.name = \"web\" OR fault"), (s(&["web"]), s(&[])));
        assert_eq!(refs("!group.name = \"web\""), (s(&["web"]), s(&[])));
        assert_eq!(
            refs(
                "service(\"a\") { group.name = \"web\" } AND group.arn = \"arn:aws:xray:us-east-1:000000000000:group/db\""
            ),
            (s(&["web", "db"]), s(&["db"]))
        );
    }
}
