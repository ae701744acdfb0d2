//! Which rollup rows stand for an entity — a service, an edge, or every entry point — the one
//! rule behind `GetTimeSeriesServiceStatistics` and alarm rules.

use crate::assembly::NodeKey;
use crate::filter::{self, Expr, ServiceSelector};
use crate::graph::Stats;

/// What an entity selector expression names.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    /// No selector: the calls into the entry points (the client's edges).
    All,
    /// `service("name")` or `id(name: …, type: …)`.
    Services(ServiceSelector),
    /// `edge("from", "to")`.
    Edge(ServiceSelector, ServiceSelector),
}

/// Where a rollup row counts for an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A node's own statistics.
    Service,
    /// The calls along an edge.
    Edge,
}

impl Entity {
    /// Parses an entity selector expression; blank or absent is [`Entity::All`].
    pub fn parse(text: Option<&str>) -> Result<Entity, String> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(Entity::All);
        };
        match filter::parse(text).map_err(|e| e.to_string())? {
            Expr::Service(sel, None) | Expr::Id(sel) => Ok(Entity::Services(sel)),
            Expr::Edge(a, b, None) => Ok(Entity::Edge(a, b)),
            _ => Err(
                "expected service(\"name\"), id(name: ..., type: ...) or edge(\"a\", \"b\")"
                    .to_owned(),
            ),
        }
    }

    /// Whether the row of node `src` (`dst` absent) or edge `src -> dst` counts, and as what.
    pub fn side(&self, src: &NodeKey, dst: Option<&NodeKey>) -> Option<Side> {
        let taken = match (self, dst) {
            (Entity::All, None) => false,
            (Entity::All, Some(_)) => *src == NodeKey::client(),
            (Entity::Services(sel), None) => selects(sel, src),
            (Entity::Services(sel), Some(dst)) => selects(sel, dst),
            (Entity::Edge(..), None) => false,
            (Entity::Edge(a, b), Some(dst)) => selects(a, src) && selects(b, dst),
        };
        taken.then_some(if dst.is_some() {
            Side::Edge
        } else {
            Side::Service
        })
    }
}

fn selects(sel: &ServiceSelector, key: &NodeKey) -> bool {
    sel.name.as_ref().is_none_or(|n| *n == key.name)
        && sel.kind.as_ref().is_none_or(|k| *k == key.kind)
}

/// An entity's statistics over some rows: its services' own, and the calls into them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityStats {
    /// Rows counted on the service side.
    pub service: Stats,
    /// Rows counted on the edge side.
    pub edge: Stats,
}

impl EntityStats {
    /// Adds a row's statistics to its side.
    pub fn add(&mut self, side: Side, stats: &Stats) {
        match side {
            Side::Service => self.service.merge(stats),
            Side::Edge => self.edge.merge(stats),
        }
    }

    /// Adds a row's counts and total time to its side, not its histogram.
    pub fn add_counts(&mut self, side: Side, stats: &Stats) {
        let to = match side {
            Side::Service => &mut self.service,
            Side::Edge => &mut self.edge,
        };
        to.ok += stats.ok;
        to.error_other += stats.error_other;
        to.throttle += stats.throttle;
        to.fault += stats.fault;
        to.total_response_time += stats.total_response_time;
    }

    /// What the entity's requests were: the services' own statistics when they have any (a
    /// service that sends segments), else the calls into it (an inferred service, an edge,
    /// the entry points).
    pub fn requests(&self) -> &Stats {
        if self.service.total() > 0 {
            &self.service
        } else {
            &self.edge
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, kind: &str) -> NodeKey {
        NodeKey {
            name: name.to_owned(),
            kind: kind.to_owned(),
        }
    }

    #[test]
    fn each_selector_takes_its_rows() {
        let client = NodeKey::client();
        let front = key("front", "AWS::EC2::Instance");
        let pay = key("pay", "");
        let all = Entity::parse(None).unwrap();
        assert_eq!(all.side(&client, Some(&front)), Some(Side::Edge));
        assert_eq!(all.side(&front, Some(&pay)), None);
        assert_eq!(all.side(&front, None), None);
        let svc = Entity::parse(Some("service(\"pay\")")).unwrap();
        assert_eq!(svc.side(&pay, None), Some(Side::Service));
        assert_eq!(svc.side(&front, Some(&pay)), Some(Side::Edge));
        assert_eq!(svc.side(&front, None), None);
        let edge = Entity::parse(Some("edge(\"front\", \"pay\")")).unwrap();
        assert_eq!(edge.side(&front, Some(&pay)), Some(Side::Edge));
        assert_eq!(edge.side(&pay, Some(&front)), None);
        assert_eq!(edge.side(&pay, None), None);
        let typed =
            Entity::parse(Some("id(name: \"front\", type: \"AWS::EC2::Instance\")")).unwrap();
        assert_eq!(typed.side(&front, None), Some(Side::Service));
        assert_eq!(typed.side(&key("front", "other"), None), None);
        let err = Entity::parse(Some("fault")).unwrap_err();
        assert!(err.contains("expected service"), "{err}");
    }

    #[test]
    fn requests_are_the_services_own_when_they_have_any() {
        let mut s = EntityStats::default();
        let mut one = Stats::default();
        one.add(crate::assembly::Outcome::Fault, 0.1, 1);
        s.add(Side::Edge, &one);
        assert_eq!(s.requests().fault, 1);
        let mut two = Stats::default();
        two.add(crate::assembly::Outcome::Ok, 0.1, 2);
        s.add(Side::Service, &two);
        assert_eq!(s.requests().ok, 2);
        assert_eq!(s.requests().fault, 0);
    }
}
