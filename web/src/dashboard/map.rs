//! The service map as server-side SVG: X-Ray's service list laid out in layers, each node a
//! circle with its outcome ring (ok / error / throttle / fault share), request rate and average
//! latency, edges as curves whose thickness follows traffic; plus the per-node and per-edge
//! panel data and the latency histograms (also SVG).

use std::fmt::Write;

use crate::graph::{HistogramEntry, Service, SummaryStatistics};

use super::layout::{Spacing, layered};
use super::{esc, filter_quote, url_encode};

/// Node radius in the SVG.
const RADIUS: f64 = 28.0;

/// What the page says about one node or edge when it is selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// DOM id (`node-3`, `edge-3-5`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Kind label (`service`, `database`, `edge`, ...).
    pub kind: String,
    /// Total requests.
    pub total: i64,
    /// Ok requests.
    pub ok: i64,
    /// Client errors (other than throttles).
    pub error: i64,
    /// Throttled.
    pub throttle: i64,
    /// Faults.
    pub fault: i64,
    /// Requests per minute.
    pub rate: String,
    /// Average response time.
    pub average: String,
    /// Latency histogram, SVG.
    pub histogram: String,
    /// Filter expression selecting the traces through it.
    pub filter: String,
    /// The same, percent-encoded for a query string.
    pub filter_param: String,
}

/// The rendered map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapView {
    /// The `<svg>` element.
    pub svg: String,
    /// Panels of nodes then edges.
    pub panels: Vec<Panel>,
    /// Number of nodes.
    pub nodes: usize,
    /// Number of edges.
    pub edges: usize,
}

/// Human label of a node's type, as X-Ray's legend names them.
pub fn kind_label(name: &str, kind: Option<&str>) -> &'static str {
    match kind.unwrap_or("") {
        "client" => "client",
        "remote" if name.contains('@') => "database",
        "remote" => "remote",
        k if k.starts_with("Database::") => "database",
        k if crate::graph::is_inferred_type(k) => "AWS service",
        _ => "service",
    }
}

/// Formats seconds as a short latency (`840 µs`, `12 ms`, `1.4 s`).
pub fn latency(seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        "0 ms".to_owned()
    } else if seconds < 0.001 {
        format!("{:.0} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

fn counts(s: &SummaryStatistics) -> (i64, i64, i64, i64, i64) {
    let throttle = s.error_statistics.throttle_count;
    let error = s.error_statistics.other_count;
    let fault = s.fault_statistics.total_count;
    (s.total_count, s.ok_count, error, throttle, fault)
}

/// Most bars of a panel's histogram; neighbouring buckets are merged beyond it.
const MAX_BARS: usize = 16;

/// A latency histogram as a small bar chart (buckets in order, bar height by count; at most
/// [`MAX_BARS`] bars, each labelled with its upper bound).
pub fn histogram_svg(entries: &[HistogramEntry], width: f64, height: f64) -> String {
    let merged: Vec<HistogramEntry>;
    let entries = if entries.len() > MAX_BARS {
        let per = entries.len().div_ceil(MAX_BARS);
        merged = entries
            .chunks(per)
            .map(|c| HistogramEntry {
                value: c.last().map_or(0.0, |e| e.value),
                count: c.iter().map(|e| e.count).sum(),
            })
            .collect();
        &merged[..]
    } else {
        entries
    };
    let mut svg = format!(
        r#"<svg class="histogram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="latency histogram">"#
    );
    let max = entries.iter().map(|e| e.count).max().unwrap_or(0).max(1) as f64;
    if entries.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="muted" text-anchor="middle">no requests</text>"#,
            width / 2.0,
            height / 2.0
        );
    }
    let plot = height - 16.0;
    let bar = (width / entries.len().max(1) as f64).min(24.0);
    for (i, e) in entries.iter().enumerate() {
        let h = (e.count as f64 / max * (plot - 2.0)).max(1.0);
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>≤{}: {}</title></rect>"#,
            i as f64 * bar + 1.0,
            plot - h,
            (bar - 2.0).max(1.0),
            latency(e.value),
            e.count
        );
    }
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{height}" class="axis">{}</text><text x="{width}" y="{height}" class="axis" text-anchor="end">{}</text>"#,
            latency(first.value),
            latency(last.value)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn ring(svg: &mut String, x: f64, y: f64, parts: [(i64, &str); 4], total: i64) {
    let c = 2.0 * std::f64::consts::PI * RADIUS;
    let mut start = 0.0;
    if total <= 0 {
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{RADIUS}" class="ring none"/>"#
        );
        return;
    }
    for (count, class) in parts {
        if count <= 0 {
            continue;
        }
        let len = c * count as f64 / total as f64;
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{RADIUS}" class="ring {class}" stroke-dasharray="{len:.2} {c:.2}" stroke-dashoffset="{:.2}" transform="rotate(-90 {x:.1} {y:.1})"/>"#,
            -start
        );
        start += len;
    }
}

/// Renders services (X-Ray's `Services` list) over a window of `minutes` minutes.
pub fn render(services: &[Service], minutes: f64) -> MapView {
    render_highlighted(services, minutes, None)
}

/// The part of the map an insight impacted, drawn outlined (`impacted`, `root-cause`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Highlight {
    /// Impacted services, by name.
    pub services: std::collections::BTreeSet<String>,
    /// Impacted calls, `(from, to)` by name.
    pub edges: std::collections::BTreeSet<(String, String)>,
    /// The root cause, by name.
    pub root: String,
}

/// [`render`], with `highlight`'s services and calls outlined.
pub fn render_highlighted(
    services: &[Service],
    minutes: f64,
    highlight: Option<&Highlight>,
) -> MapView {
    let index_of = |reference: usize| services.iter().position(|s| s.reference_id == reference);
    let mut edges: Vec<(usize, usize, SummaryStatistics, Vec<HistogramEntry>)> = Vec::new();
    for (i, s) in services.iter().enumerate() {
        for e in &s.edges {
            if let Some(j) = index_of(e.reference_id) {
                edges.push((
                    i,
                    j,
                    e.summary_statistics.clone(),
                    e.response_time_histogram.clone(),
                ));
            }
        }
    }
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.0, e.1)).collect();
    let layout = layered(
        services.len(),
        &pairs,
        Spacing {
            column: 220.0,
            row: 120.0,
            margin: 80.0,
        },
    );
    let minutes = minutes.max(1.0 / 60.0);
    let max_edge = edges
        .iter()
        .map(|e| e.2.total_count)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = format!(
        r#"<svg id="map" class="map" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs><g class="edges">"#,
        w = layout.width.max(300.0),
        h = layout.height.max(200.0)
    );
    let mut panels = Vec::with_capacity(services.len() + edges.len());
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (a, b, stats, hist) in &edges {
        neighbours[*a].push(*b);
        neighbours[*b].push(*a);
        let (x1, y1) = layout.positions[*a];
        let (x2, y2) = layout.positions[*b];
        let (sx, tx) = (x1 + RADIUS + 4.0, x2 - RADIUS - 6.0);
        let path = if tx > sx {
            let mid = (sx + tx) / 2.0;
            format!("M{sx:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {tx:.1},{y2:.1}")
        } else {
            // Back edge (a cycle): loop under the nodes.
            let low = y1.max(y2) + RADIUS * 2.5;
            format!(
                "M{:.1},{:.1} C{:.1},{low:.1} {:.1},{low:.1} {:.1},{:.1}",
                x1,
                y1 + RADIUS + 4.0,
                x1,
                x2,
                x2,
                y2 + RADIUS + 6.0
            )
        };
        let (total, ok, error, throttle, fault) = counts(stats);
        let width = 1.5 + 6.0 * (total as f64 / max_edge).sqrt();
        let class = if fault * 20 > total {
            "fault"
        } else if (error + throttle) * 20 > total {
            "error"
        } else {
            "ok"
        };
        let id = format!("edge-{a}-{b}");
        let marked = highlight.is_some_and(|h| {
            h.edges
                .contains(&(services[*a].name.clone(), services[*b].name.clone()))
        });
        let class = if marked {
            format!("{class} impacted")
        } else {
            class.to_owned()
        };
        let avg = if total > 0 {
            stats.total_response_time / total as f64
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r#"<g class="edge {class}" id="{id}" data-panel="{id}" data-from="{a}" data-to="{b}"><path d="{path}" class="hit"/><path d="{path}" class="line" stroke-width="{width:.1}" marker-end="url(#arrow)"/><title>{} → {}: {total} requests, avg {}</title></g>"#,
            esc(&services[*a].name),
            esc(&services[*b].name),
            latency(avg)
        );
        panels.push(Panel {
            id,
            title: format!("{} → {}", services[*a].name, services[*b].name),
            kind: "edge".to_owned(),
            total,
            ok,
            error,
            throttle,
            fault,
            rate: format!("{:.1}/min", total as f64 / minutes),
            average: latency(avg),
            histogram: histogram_svg(hist, 260.0, 90.0),
            filter: format!(
                "edge({}, {})",
                filter_quote(&services[*a].name),
                filter_quote(&services[*b].name)
            ),
            filter_param: String::new(),
        });
    }
    svg.push_str(r#"</g><g class="nodes">"#);
    let mut node_panels = Vec::with_capacity(services.len());
    for (i, s) in services.iter().enumerate() {
        let (x, y) = layout.positions[i];
        let kind = kind_label(&s.name, s.r#type.as_deref());
        let stats = s.summary_statistics.clone().unwrap_or_default();
        let (total, ok, error, throttle, fault) = counts(&stats);
        let avg = if total > 0 {
            stats.total_response_time / total as f64
        } else {
            0.0
        };
        let rate = format!("{:.1}/min", total as f64 / minutes);
        let id = format!("node-{i}");
        let near: Vec<String> = neighbours[i].iter().map(|n| n.to_string()).collect();
        let _ = write!(
            svg,
            r#"<g class="node {kc}{mark}" id="{id}" data-panel="{id}" data-index="{i}" data-name="{name}" data-neighbours="{near}" tabindex="0" role="button" aria-label="{name}">"#,
            kc = kind.replace(' ', "-"),
            mark = match highlight {
                Some(h) if h.root == s.name => " impacted root-cause",
                Some(h) if h.services.contains(&s.name) => " impacted",
                _ => "",
            },
            name = esc(&s.name),
            near = near.join(" ")
        );
        let _ = write!(
            svg,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r:.1}" class="body"/>"#,
            r = RADIUS - 3.0
        );
        if kind == "client" {
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="{RADIUS}" class="ring client"/><text x="{x:.1}" y="{:.1}" class="inner" text-anchor="middle">client</text>"#,
                y + 4.0
            );
        } else {
            ring(
                &mut svg,
                x,
                y,
                [
                    (ok, "ok"),
                    (error, "error"),
                    (throttle, "throttle"),
                    (fault, "fault"),
                ],
                total,
            );
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" class="inner" text-anchor="middle">{}</text><text x="{x:.1}" y="{:.1}" class="inner small" text-anchor="middle">{}</text>"#,
                y - 2.0,
                latency(avg),
                y + 11.0,
                esc(&rate)
            );
        }
        let short: String = if s.name.chars().count() > 28 {
            s.name.chars().take(27).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" class="label" text-anchor="middle">{}</text><text x="{x:.1}" y="{:.1}" class="kind" text-anchor="middle">{}</text><title>{}</title></g>"#,
            y + RADIUS + 16.0,
            esc(&short),
            y + RADIUS + 29.0,
            esc(s
                .r#type
                .as_deref()
                .filter(|t| !t.is_empty())
                .unwrap_or(kind)),
            esc(&s.name)
        );
        node_panels.push(Panel {
            id,
            title: s.name.clone(),
            kind: kind.to_owned(),
            total,
            ok,
            error,
            throttle,
            fault,
            rate,
            average: latency(avg),
            histogram: histogram_svg(&s.response_time_histogram, 260.0, 90.0),
            filter: format!("service({})", filter_quote(&s.name)),
            filter_param: String::new(),
        });
    }
    svg.push_str("</g></svg>");
    node_panels.extend(panels);
    for p in &mut node_panels {
        p.filter_param = url_encode(&p.filter);
    }
    MapView {
        svg,
        nodes: services.len(),
        edges: edges.len(),
        panels: node_panels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembly::{NodeKey, Outcome};
    use crate::graph::GraphStats;

    fn key(name: &str, kind: &str) -> NodeKey {
        NodeKey {
            name: name.into(),
            kind: kind.into(),
        }
    }

    fn shop() -> Vec<Service> {
        let mut g = GraphStats::default();
        let front = key("frontend", "AWS::EC2::Instance");
        let orders = key("orders", "AWS::ECS::Container");
        let db = key("orders@db", "remote");
        let ddb = key("DynamoDB", "AWS::DynamoDB");
        for (i, outcome) in [Outcome::Ok, Outcome::Ok, Outcome::Error, Outcome::Fault]
            .into_iter()
            .enumerate()
        {
            let rt = 0.01 * (i + 1) as f64;
            g.edges
                .entry((NodeKey::client(), front.clone()))
                .or_default()
                .add(outcome, rt, 1);
            g.nodes
                .entry(front.clone())
                .or_default()
                .add(outcome, rt, 1);
            g.edges
                .entry((front.clone(), orders.clone()))
                .or_default()
                .add(outcome, rt, 1);
            g.nodes
                .entry(orders.clone())
                .or_default()
                .add(outcome, rt, 1);
            for d in [&db, &ddb] {
                g.edges.entry((orders.clone(), d.clone())).or_default().add(
                    Outcome::Ok,
                    rt / 2.0,
                    1,
                );
                g.nodes
                    .entry(d.clone())
                    .or_default()
                    .add(Outcome::Ok, rt / 2.0, 1);
            }
        }
        g.to_services(0.0, 60.0)
    }

    #[test]
    fn shop_map_snapshot() {
        let view = render(&shop(), 1.0);
        assert_eq!((view.nodes, view.edges), (5, 4));
        insta::assert_snapshot!("shop_map_svg", view.svg.replace("><", ">\n<"));
    }

    #[test]
    fn node_kinds_and_panels() {
        let view = render(&shop(), 1.0);
        let kinds: Vec<(&str, &str)> = view
            .panels
            .iter()
            .filter(|p| p.kind != "edge")
            .map(|p| (p.title.as_str(), p.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("DynamoDB", "AWS service"),
                ("client", "client"),
                ("frontend", "service"),
                ("orders", "service"),
                ("orders@db", "database")
            ]
        );
        let orders = view.panels.iter().find(|p| p.title == "orders").unwrap();
        assert_eq!(
            (orders.total, orders.ok, orders.error, orders.fault),
            (4, 2, 1, 1)
        );
        assert_eq!(orders.filter, "service(\"orders\")");
        assert_eq!(orders.filter_param, "service%28%22orders%22%29");
        let edge = view.panels.iter().find(|p| p.kind == "edge").unwrap();
        assert!(edge.filter.starts_with("edge(\""), "{}", edge.filter);
    }

    #[test]
    fn fifty_services_do_not_overlap_and_cross_little() {
        let n = 50;
        let mut edges = Vec::new();
        for i in 0..40 {
            let tier = i / 10;
            for d in 0..(2 + i % 2) {
                edges.push((i, (tier + 1) * 10 + (i * 3 + d * 7) % 10));
            }
        }
        let spacing = Spacing {
            column: 220.0,
            row: 120.0,
            margin: 80.0,
        };
        let l = layered(n, &edges, spacing);
        for a in 0..n {
            for b in a + 1..n {
                let (pa, pb) = (l.positions[a], l.positions[b]);
                assert!(
                    (pa.0 - pb.0).abs() >= 2.0 * RADIUS || (pa.1 - pb.1).abs() >= 2.0 * RADIUS,
                    "{a} and {b} overlap"
                );
            }
        }
        // The sweeps must do better than the input order.
        let unsorted = super::super::layout::Layout {
            positions: (0..n).map(|i| ((i / 10) as f64, (i % 10) as f64)).collect(),
            layers: (0..n).map(|i| i / 10).collect(),
            width: 0.0,
            height: 0.0,
        };
        let before = super::super::layout::crossings(&unsorted, &edges);
        let after = super::super::layout::crossings(&l, &edges);
        assert!(after < before, "crossings {before} -> {after}");
    }
}
