//! Dashboard rendering: the timeline page of a 5,000-subsegment trace and the service map page
//! of 50 services, each next to the JSON the X-Ray API returns for the same data (the baseline
//! a browser-side renderer would start from). Page weights are printed once per run. And the
//! comparison of two 5,000-subsegment traces, from their stored text, next to reading that
//! text (the least any comparison must do).

#![allow(missing_docs)] // criterion's macros generate undocumented functions

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use roentgen_web::assembly::{NodeKey, Outcome};
use roentgen_web::dashboard::{render_map_page, render_trace_page, trace_diff};
use roentgen_web::graph::{GraphStats, Stats};
use serde_json::{Value, json};

/// A trace of `segments` services (a call chain), each with `per` subsegments nested up to
/// four deep: `segments * per` subsegments in all.
fn big_trace(segments: usize, per: usize) -> Vec<Value> {
    let start = 1_800_000_000.0;
    let mut docs = Vec::new();
    for s in 0..segments {
        let mut subs: Vec<Value> = Vec::new();
        for k in 0..per {
            let t = start + s as f64 * 0.01 + k as f64 * 0.0001;
            let leaf = json!({"name": format!("query-{k}"), "id": format!("{:016x}", (s * per + k) as u64 * 7 + 1),
                "start_time": t, "end_time": t + 0.00008, "namespace": "remote",
                "sql": {"url": "postgresql://db/orders", "sanitized_query": "SELECT * FROM orders WHERE id = ?"},
                "fault": k % 97 == 0});
            // Group every 10 leaves under a parent subsegment.
            if k % 10 == 0 {
                subs.push(json!({"name": format!("batch-{k}"), "id": format!("{:016x}", (s * per + k) as u64 * 7 + 2),
                    "start_time": t, "end_time": t + 0.0011, "subsegments": []}));
            }
            if let Some(Value::Array(list)) = subs.last_mut().and_then(|p| p.get_mut("subsegments"))
            {
                list.push(leaf);
            }
        }
        let mut doc = json!({"name": format!("svc-{s}"), "id": format!("{:016x}", s as u64 * 7 + 3), "trace_id": "1-6b0b563f-bd5f12f36c129ba2856caf10",
            "start_time": start + s as f64 * 0.01, "end_time": start + 1.0 - s as f64 * 0.01, "origin": "AWS::ECS::Container",
            "http": {"request": {"method": "GET", "url": format!("http://svc-{s}/work")}, "response": {"status": 200}},
            "subsegments": subs});
        if s > 0 {
            doc["parent_id"] = json!(format!("{:016x}", (s - 1) as u64 * 7 + 3));
        }
        docs.push(doc);
    }
    docs
}

/// `docs` with every subsegment whose name ends in `7` taking `extra` seconds longer (its
/// parents are not stretched: a slower call inside the same envelope), and one more query in
/// each batch named `batch-40`.
fn slower(docs: &[Value], extra: f64) -> Vec<Value> {
    fn walk(v: &mut Value, extra: f64) {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if name.ends_with('7')
            && let (Some(s), Some(e)) = (v["start_time"].as_f64(), v["end_time"].as_f64())
        {
            v["end_time"] = json!(e.max(s) + extra);
        }
        if let Some(Value::Array(list)) = v.get_mut("subsegments") {
            if name == "batch-40"
                && let Some(last) = list.last().cloned()
            {
                let id = last["id"].as_str().unwrap_or("0");
                let id = u64::from_str_radix(id, 16).unwrap_or(0) ^ 0xfeed_0000;
                let mut more = last;
                more["id"] = json!(format!("{id:016x}"));
                list.push(more);
            }
            list.iter_mut().for_each(|c| walk(c, extra));
        }
    }
    let mut out = docs.to_vec();
    out.iter_mut().for_each(|d| walk(d, extra));
    out
}

fn count_subsegments(v: &Value) -> usize {
    v.get("subsegments")
        .and_then(Value::as_array)
        .map_or(0, |l| {
            l.len() + l.iter().map(count_subsegments).sum::<usize>()
        })
}

/// A graph of 50 services in five tiers, each calling two or three of the next tier.
fn fifty_services() -> Vec<roentgen_web::graph::Service> {
    let mut stats = GraphStats::default();
    let key = |i: usize| NodeKey {
        name: format!("service-{i:02}"),
        kind: if i >= 45 {
            "AWS::DynamoDB".into()
        } else {
            "AWS::ECS::Container".into()
        },
    };
    let add = |s: &mut Stats, n: usize| {
        for r in 0..n {
            let outcome = match r % 50 {
                0 => Outcome::Fault,
                1 => Outcome::Throttle,
                2 | 3 => Outcome::Error,
                _ => Outcome::Ok,
            };
            s.add(outcome, 0.002 * (1 + r % 40) as f64, 1);
        }
    };
    for i in 0..10 {
        add(
            stats.edges.entry((NodeKey::client(), key(i))).or_default(),
            40,
        );
    }
    for i in 0..50 {
        add(stats.nodes.entry(key(i)).or_default(), 60);
        let tier = i / 10;
        if tier < 4 {
            for d in 0..(2 + i % 2) {
                let j = (tier + 1) * 10 + (i * 3 + d * 7) % 10;
                add(stats.edges.entry((key(i), key(j))).or_default(), 20);
            }
        }
    }
    stats.to_services(1_800_000_000.0, 1_800_000_300.0)
}

/// Bytes on the wire when the page is served gzip-compressed by the dashboard's layer.
fn gzip_len(page: &str) -> usize {
    use tower::ServiceExt;
    let page = page.to_owned();
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(move || async move { axum::response::Html(page) }),
        )
        .layer(tower_http::compression::CompressionLayer::new());
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return 0;
    };
    rt.block_on(async {
        let request = axum::http::Request::get("/")
            .header("accept-encoding", "gzip")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let Ok(response) = app.oneshot(request).await;
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_or(0, |b| b.len())
    })
}

fn bench(c: &mut Criterion) {
    let docs = big_trace(10, 500);
    let subsegments: usize = docs.iter().map(count_subsegments).sum();
    let page = render_trace_page("1-6b0b563f-bd5f12f36c129ba2856caf10", &docs, String::new());
    let api = serde_json::to_string(&docs).unwrap_or_default();
    println!(
        "timeline: {subsegments} subsegments; page {} bytes ({} gzip); API JSON {} bytes ({} gzip)",
        page.len(),
        gzip_len(&page),
        api.len(),
        gzip_len(&api)
    );
    let mut g = c.benchmark_group("timeline_5000_subsegments");
    g.bench_function("render_page", |b| {
        b.iter(|| render_trace_page("1-6b0b563f-bd5f12f36c129ba2856caf10", &docs, String::new()))
    });
    g.bench_function("baseline_api_json", |b| {
        b.iter(|| serde_json::to_string(&docs))
    });
    g.finish();

    // Two traces compared from their stored text (as the page loads them).
    let texts = |docs: &[Value]| -> Vec<String> { docs.iter().map(Value::to_string).collect() };
    let (a_text, b_text) = (texts(&docs), texts(&slower(&docs, 0.0004)));
    let parse = |t: &[String]| -> Vec<Value> {
        t.iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    };
    let diff = trace_diff::compare(&parse(&a_text), &parse(&b_text));
    println!(
        "trace comparison: {} aligned rows, {} only in B, first {}",
        diff.rows.len(),
        diff.rows.iter().filter(|r| r.a.is_none()).count(),
        diff.rows[0].path.join(" > ")
    );
    let mut g = c.benchmark_group("trace_compare_5000_subsegments");
    g.bench_function("compare_from_text", |b| {
        b.iter(|| trace_diff::compare(&parse(&a_text), &parse(&b_text)))
    });
    g.bench_function("baseline_parse_both", |b| {
        b.iter(|| (parse(&a_text), parse(&b_text)))
    });
    g.finish();

    let services = fifty_services();
    let page = render_map_page(&services, 5.0);
    let api = serde_json::to_string(&services).unwrap_or_default();
    println!(
        "map: {} services; page {} bytes ({} gzip); API JSON {} bytes ({} gzip)",
        services.len(),
        page.len(),
        gzip_len(&page),
        api.len(),
        gzip_len(&api)
    );
    let mut g = c.benchmark_group("map_50_services");
    g.bench_function("render_page", |b| {
        b.iter(|| render_map_page(&services, 5.0))
    });
    g.bench_function("baseline_api_json", |b| {
        b.iter(|| serde_json::to_string(&services))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
