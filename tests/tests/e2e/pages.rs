//! The dashboard's Content-Security-Policy in a real headless Chromium: the map, the traces
//! list and a timeline keep working with no policy violation in the browser's console, and a
//! page on another origin cannot frame the dashboard.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use roentgen_tests::web::Collector;
use serde_json::json;

use crate::dashboard::{Browser, ELEMENT, known_trace, now, shop_scenario};

/// Console messages that say the policy refused something.
fn violations(console: &[String]) -> Vec<&String> {
    console
        .iter()
        .filter(|m| m.contains("Content Security Policy") || m.contains("Refused to"))
        .collect()
}

#[test]
fn the_map_traces_and_timeline_work_under_the_policy_without_a_violation() {
    let dir = tempfile::tempdir().expect("test setup");
    let collector = Collector::start(dir.path(), &[]);
    shop_scenario(&collector);
    let (trace, docs) = known_trace(now() - 20.0);
    let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
    assert_eq!(status, 200, "{body}");
    let base = collector.endpoint_url();
    let browser = Browser::start();

    // Map: a click on a node opens its panel (the script runs).
    browser.goto(&format!("{base}/?window=5m"));
    browser.click("#map .node[data-name='orders']");
    let title = browser.wait_for(
        "const i = document.querySelector('#panel:not([hidden]) .panel-item:not([hidden]) h2'); \
         return i ? i.textContent : null",
    );
    assert_eq!(title, json!("orders"));

    // Traces list: the rows and histogram are there, and a preset window applies at once.
    browser.goto(&format!("{base}/traces?window=1h"));
    let rows = browser.wait_for("return document.querySelectorAll('#traces tbody tr').length");
    assert!(rows.as_u64() >= Some(10), "{rows}");
    browser.find("#trace-histogram .bar");
    browser.eval(
        "const w = document.getElementById('window'); w.value = '15m'; \
         w.dispatchEvent(new Event('change'));",
    );
    browser.wait_for("return location.search.includes('window=15m')");

    // Timeline: depth and bars come from the script, collapse works, details load.
    browser.goto(&format!("{base}/traces/{trace}"));
    let bar = browser.wait_for(
        "const r = document.getElementById('r-00000000000000a3'); \
         return getComputedStyle(r).getPropertyValue('--l').trim()",
    );
    assert_eq!(bar, json!("85.000%"));
    let indent = browser.eval(
        "return getComputedStyle(document.querySelector('#r-00000000000000b4 .name')).paddingLeft",
    );
    assert_eq!(indent, json!("56px"), "depth 4 indents 4 × 14px");
    browser.click("#r-00000000000000a2 button.tw");
    browser.wait_for("return document.getElementById('r-00000000000000b1').hidden");
    browser.click("#r-00000000000000a2 button.tw");
    browser.click("#r-00000000000000b1 .name");
    let details = browser.wait_for(
        "const d = document.querySelector('#details'); \
         return d.dataset.row === '00000000000000b1' ? d.textContent : null",
    );
    assert!(
        details.as_str().unwrap_or_default().contains("PoolTimeout"),
        "{details}"
    );

    let console = browser.console();
    assert!(
        violations(&console).is_empty(),
        "policy violations: {console:#?}"
    );
    // The console does report a refused inline style: the check above can fail.
    browser.eval(
        "const d = document.createElement('div'); d.innerHTML = '<p style=\"color: red\">x</p>'; \
         document.body.appendChild(d);",
    );
    let probe = browser.console();
    assert!(
        !violations(&probe).is_empty(),
        "no refusal logged: {probe:#?}"
    );
}

/// A page on another loopback port: `/` frames `target` and a frameable page of its own.
struct FramingSite {
    address: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FramingSite {
    fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let home = format!(
            "<!doctype html><title>elsewhere</title>\
             <iframe id=\"victim\" src=\"{target}\"></iframe>\
             <iframe id=\"control\" src=\"/inner\"></iframe>"
        );
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = [0u8; 4096];
                let n = stream.read(&mut head).unwrap_or(0);
                let body = if head[..n].starts_with(b"GET /inner ") {
                    "<!doctype html><title>inner</title><p id=\"inner\">framed fine</p>"
                } else {
                    home.as_str()
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FramingSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `script` inside the iframe `#id` of the current page.
fn in_frame(browser: &Browser, id: &str, script: &str) -> serde_json::Value {
    let frame = browser.find(&format!("#{id}"));
    browser.call(
        "POST",
        &browser.session_path("/frame"),
        Some(json!({"id": {ELEMENT: frame}})),
    );
    let value = browser.eval(script);
    browser.call(
        "POST",
        &browser.session_path("/frame/parent"),
        Some(json!({})),
    );
    value
}

#[test]
fn a_page_on_another_origin_cannot_frame_the_dashboard() {
    let dir = tempfile::tempdir().expect("test setup");
    let collector = Collector::start(dir.path(), &[]);
    let site = FramingSite::start(&format!("{}/", collector.endpoint_url()));
    let browser = Browser::start();
    browser.goto(&format!("http://{}/", site.address));
    let control = roentgen_tests::eventually(Duration::from_secs(30), || {
        let v = in_frame(
            &browser,
            "control",
            "const p = document.getElementById('inner'); return p ? p.textContent : null",
        );
        v.as_str().map(str::to_owned)
    });
    assert_eq!(
        control.as_deref(),
        Some("framed fine"),
        "this site's own page can be framed"
    );
    let refused = roentgen_tests::eventually(Duration::from_secs(30), || {
        let console = browser.console();
        console
            .iter()
            .any(|m| m.contains("frame-ancestors"))
            .then_some(console)
    });
    assert!(refused.is_some(), "Chromium never refused the frame");
    let victim = in_frame(
        &browser,
        "victim",
        "return [location.href, !!document.getElementById('map-counts'), document.title]",
    );
    assert_eq!(
        victim[1],
        json!(false),
        "the framed document is the dashboard: {victim}"
    );
    assert!(
        !victim[0]
            .as_str()
            .unwrap_or_default()
            .starts_with("http://127.0.0.1"),
        "{victim}"
    );
}
