//! The dashboard in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` over the W3C WebDriver protocol): the service map of a known scenario, a node
//! leading to its traces, a bad filter's error at its column, and a known trace's timeline with
//! collapse/expand. Screenshots go to `target/screenshots/` (not committed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use roentgen_tests::web::Collector;
use roentgen_tests::{Process, eventually, target_dir};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
pub(crate) const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in a fresh headless Chromium, ended (with its driver) when dropped.
pub(crate) struct Browser {
    _driver: Process,
    _profile: tempfile::TempDir,
    address: String,
    session: String,
}

impl Browser {
    pub(crate) fn start() -> Self {
        for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: run scripts/setup (it installs chromium and chromium-driver)"
            );
        }
        let mut cmd = Command::new("/usr/bin/chromedriver");
        cmd.arg("--port=0");
        let driver = Process::start(cmd);
        let line = driver.wait_for_line("started successfully on port", WAIT);
        let port = line
            .trim_end_matches('.')
            .rsplit(' ')
            .next()
            .expect("a port")
            .to_owned();
        let address = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let mut browser = Self {
            _driver: driver,
            _profile: profile,
            address,
            session: String::new(),
        };
        let created = browser.call("POST", "/session", Some(body));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    /// One WebDriver command; returns its `value`, panicking on a WebDriver error.
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let response = request(&self.address, method, path, &text);
        let value: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", response.body));
        assert!(
            response.status == 200,
            "{method} {path} -> {}: {}",
            response.status,
            response.body
        );
        value["value"].clone()
    }

    pub(crate) fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub(crate) fn goto(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        );
    }

    pub(crate) fn url(&self) -> String {
        self.call("GET", &self.session_path("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs a script in the page and returns what it returns.
    pub(crate) fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls a script until it returns something truthy (not `null`/`false`/`""`/`0`/`[]`).
    pub(crate) fn wait_for(&self, script: &str) -> Value {
        eventually(WAIT, || {
            let v = self.eval(script);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            truthy.then_some(v)
        })
        .unwrap_or_else(|| panic!("condition never held: {script}"))
    }

    pub(crate) fn find(&self, css: &str) -> String {
        let v = eventually(WAIT, || {
            let response = request(
                &self.address,
                "POST",
                &self.session_path("/element"),
                &json!({"using": "css selector", "value": css}).to_string(),
            );
            (response.status == 200).then_some(response.body)
        })
        .unwrap_or_else(|| panic!("no element {css}"));
        let v: Value = serde_json::from_str(&v).expect("json");
        v["value"][ELEMENT].as_str().expect("element id").to_owned()
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/click")),
            Some(json!({})),
        );
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/clear")),
            Some(json!({})),
        );
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        );
    }

    /// The browser console's messages since the last call (CSP refusals are logged there).
    pub(crate) fn console(&self) -> Vec<String> {
        let entries = self.call(
            "POST",
            &self.session_path("/se/log"),
            Some(json!({"type": "browser"})),
        );
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a PNG of the viewport under `target/screenshots/`.
    pub(crate) fn screenshot(&self, name: &str) {
        let data = self.call("GET", &self.session_path("/screenshot"), None);
        let png = base64_decode(data.as_str().unwrap_or_default());
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                &self.address,
                "DELETE",
                &format!("/session/{}", self.session),
                "",
            );
        }
    }
}

/// A WebDriver response: status and body.
struct Reply {
    status: u16,
    body: String,
}

/// One HTTP/1.1 exchange with chromedriver, reading exactly `Content-Length` bytes (the driver
/// keeps connections open, so reading to the end would wait for its idle timeout).
fn request(address: &str, method: &str, path: &str, body: &str) -> Reply {
    let mut stream =
        TcpStream::connect(address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("read timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut buf = vec![0; length];
    reader.read_exact(&mut buf).expect("body");
    Reply {
        status,
        body: String::from_utf8_lossy(&buf).into_owned(),
    }
}

fn screenshots_dir() -> PathBuf {
    target_dir()
        .parent()
        .map(|t| t.join("screenshots"))
        .unwrap_or_else(|| PathBuf::from("screenshots"))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Ten synthetic shop traces (frontend -> orders -> DynamoDB, payments) and one unrelated
/// `reports` trace, all in the last minute.
pub(crate) fn shop_scenario(collector: &Collector) -> usize {
    let start = now() - 40.0;
    let mut docs = Vec::new();
    for n in 0..10 {
        docs.extend(roentgen_web::synth::shop_trace(n + 5, start + n as f64));
    }
    docs.push(
        json!({"name": "reports", "id": "70000000000000a1", "trace_id": format!("1-{:08x}-00000000000000000000a001", start as u64),
            "start_time": start, "end_time": start + 0.2, "origin": "AWS::EC2::Instance",
            "http": {"request": {"method": "GET", "url": "https://reports.example.com/daily"}, "response": {"status": 200}}})
        .to_string(),
    );
    let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"UnprocessedTraceSegments\":[]"), "{body}");
    10
}

#[test]
fn map_renders_the_scenario_and_a_node_leads_to_its_traces() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let through_orders = shop_scenario(&collector);
    let base = collector.endpoint_url();
    let browser = Browser::start();
    browser.goto(&format!("{base}/?window=5m"));
    let names = browser.wait_for(
        "return Array.from(document.querySelectorAll('#map .node')).map(n => n.dataset.name).sort()",
    );
    assert_eq!(
        names,
        json!([
            "DynamoDB",
            "client",
            "frontend",
            "orders",
            "payments.example.com",
            "reports"
        ])
    );
    let edges = browser.eval(
        "return Array.from(document.querySelectorAll('#map .edge')).map(e => \
         document.getElementById('node-' + e.dataset.from).dataset.name + '>' + \
         document.getElementById('node-' + e.dataset.to).dataset.name).sort()",
    );
    assert_eq!(
        edges,
        json!([
            "client>frontend",
            "client>reports",
            "frontend>orders",
            "orders>DynamoDB",
            "orders>payments.example.com"
        ])
    );
    // Callers are laid out left of their callees.
    let left_to_right = browser.eval(
        "const x = n => +document.querySelector(`#map .node[data-name='${n}'] circle`).getAttribute('cx'); \
         return x('client') < x('frontend') && x('frontend') < x('orders') && x('orders') < x('DynamoDB');",
    );
    assert_eq!(left_to_right, json!(true));
    browser.screenshot("map.png");

    // The search box focuses a service and its neighbours; the rest is dimmed.
    browser.type_into("#map-search", "orders");
    let kept = browser.wait_for(
        "return Array.from(document.querySelectorAll('#map .node:not(.dim)')).map(n => n.dataset.name).sort()",
    );
    assert_eq!(
        kept,
        json!(["DynamoDB", "frontend", "orders", "payments.example.com"])
    );
    browser.type_into("#map-search", "\u{E00C}");
    browser.wait_for("return document.querySelectorAll('#map .node.dim').length === 0");

    browser.click("#map .node[data-name='orders']");
    let title = browser.wait_for(
        "const p = document.querySelector('#panel'); const i = document.querySelector('#panel .panel-item:not([hidden]) h2'); \
         return p && !p.hidden && i ? i.textContent : null",
    );
    assert_eq!(title, json!("orders"));
    assert!(browser.url().contains("select=node-"), "{}", browser.url());
    browser.screenshot("map-panel.png");

    browser.click("#panel .panel-item:not([hidden]) .traces-link");
    let rows = browser.wait_for(
        "return location.pathname === '/traces' ? document.querySelectorAll('#traces tbody tr').length : 0",
    );
    assert_eq!(rows, json!(through_orders));
    let filter = browser.eval("return document.querySelector('#filter').value");
    assert_eq!(filter, json!("service(\"orders\")"));
    browser.screenshot("traces.png");

    // Back to the map, with the node still selected from the URL.
    browser.call("POST", &browser.session_path("/back"), Some(json!({})));
    let title = browser.wait_for(
        "const i = document.querySelector('#panel .panel-item:not([hidden]) h2'); return i ? i.textContent : null",
    );
    assert_eq!(title, json!("orders"));

    // An edge from the client leads to the traces that entered through it (its filter names
    // the client node, which no trace lists among its services).
    let edge = browser.eval(
        "const i = n => document.querySelector(`#map .node[data-name='${n}']`).id.slice(5); \
         return `edge-${i('client')}-${i('frontend')}`;",
    );
    browser.click(&format!("#{} .line", edge.as_str().unwrap()));
    let title = browser.wait_for(
        "const i = document.querySelector('#panel .panel-item:not([hidden]) h2'); \
         return i && i.textContent.startsWith('client') ? i.textContent : null",
    );
    assert_eq!(title, json!("client → frontend"));
    browser.click("#panel .panel-item:not([hidden]) .traces-link");
    let rows = browser.wait_for(
        "return location.pathname === '/traces' ? document.querySelectorAll('#traces tbody tr').length : 0",
    );
    assert_eq!(rows, json!(through_orders));
    let filter = browser.eval("return document.querySelector('#filter').value");
    assert_eq!(filter, json!("edge(\"client\", \"frontend\")"));
}

#[test]
fn a_bad_filter_shows_the_parsers_message_at_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    shop_scenario(&collector);
    let browser = Browser::start();
    browser.goto(&format!("{}/traces", collector.endpoint_url()));
    browser.wait_for("return document.querySelectorAll('#traces tbody tr').length");
    let bad = "service(\"orders\") { responsetime >> 1 }";
    let expected = roentgen_web::filter::parse(bad).unwrap_err();
    browser.type_into("#filter", &format!("{bad}\u{E007}"));
    let shown = browser.wait_for(
        "const e = document.querySelector('#filter-error'); return e ? e.textContent : null",
    );
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains(&format!("column {}: {}", expected.column, expected.message)),
        "{shown}"
    );
    let caret = browser.eval("return document.querySelector('#filter-error pre').textContent");
    let caret_line = caret.as_str().unwrap().lines().nth(1).unwrap_or_default();
    assert_eq!(caret_line.find('^'), Some(expected.column - 1), "{caret}");
    assert_eq!(
        browser.eval("return document.querySelectorAll('#traces tbody tr').length"),
        json!(0)
    );
    browser.screenshot("filter-error.png");
    // A good filter brings the table back.
    browser.type_into("#filter", "service(\"orders\") { !fault }\u{E007}");
    browser.wait_for(
        "return !document.querySelector('#filter-error') && document.querySelectorAll('#traces tbody tr').length",
    );
}

/// A known trace: `web` calls `api` (which reports its own segment with a SQL subsegment and a
/// nested pair), then renders.
pub(crate) fn known_trace(start: f64) -> (String, Vec<String>) {
    let trace = format!("1-{:08x}-0000000000000000000b0b01", start as u64);
    let web = json!({"name": "web", "id": "00000000000000a1", "trace_id": trace, "start_time": start, "end_time": start + 1.0,
    "origin": "AWS::EC2::Instance",
    "http": {"request": {"method": "GET", "url": "https://shop.example.com/"}, "response": {"status": 500}}, "fault": true,
    "subsegments": [
        {"name": "call-api", "id": "00000000000000a2", "namespace": "remote", "start_time": start + 0.1, "end_time": start + 0.8,
         "http": {"request": {"method": "POST", "url": "http://api.internal/x"}, "response": {"status": 500}}, "fault": true},
        {"name": "render", "id": "00000000000000a3", "start_time": start + 0.85, "end_time": start + 0.95}
    ]});
    let api = json!({"name": "api", "id": "00000000000000b1", "trace_id": trace, "parent_id": "00000000000000a2",
    "start_time": start + 0.15, "end_time": start + 0.75, "origin": "AWS::ECS::Container", "fault": true,
    "http": {"request": {"method": "POST", "url": "http://api.internal/x"}, "response": {"status": 500}},
    "cause": {"exceptions": [{"id": "0000000000000e01", "type": "PoolTimeout", "message": "no connection within 5s",
                              "stack": [{"path": "src/db.rs", "line": 42, "label": "acquire"}]}]},
    "subsegments": [
        {"name": "orders@db", "id": "00000000000000b2", "namespace": "remote", "start_time": start + 0.2, "end_time": start + 0.5,
         "sql": {"url": "postgresql://db/orders", "sanitized_query": "SELECT * FROM orders WHERE id = ?"}},
        {"name": "compute", "id": "00000000000000b3", "start_time": start + 0.5, "end_time": start + 0.7,
         "subsegments": [{"name": "step-1", "id": "00000000000000b4", "start_time": start + 0.5, "end_time": start + 0.6}]}
    ]});
    (trace, vec![web.to_string(), api.to_string()])
}

#[test]
fn the_timeline_of_a_known_trace_shows_its_rows_in_order_and_collapses() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path(), &[]);
    let (trace, docs) = known_trace(now() - 20.0);
    let (status, body) = collector.post("/TraceSegments", &Collector::put_body(&docs));
    assert_eq!(status, 200, "{body}");
    let browser = Browser::start();
    browser.goto(&format!("{}/traces/{trace}", collector.endpoint_url()));
    let visible = "return Array.from(document.querySelectorAll('#rows .row')).filter(r => !r.hidden) \
                   .map(r => r.dataset.d + ' ' + r.querySelector('b').textContent)";
    let rows = browser.wait_for(visible);
    assert_eq!(
        rows,
        json!([
            "0 web",
            "1 call-api",
            "2 api",
            "3 orders@db",
            "3 compute",
            "4 step-1",
            "1 render"
        ])
    );
    let statuses = browser.eval(
        "return Array.from(document.querySelectorAll('#rows .row')).map(r => r.classList.contains('fault') ? 'fault' : 'ok')",
    );
    assert_eq!(
        statuses,
        json!(["fault", "fault", "fault", "ok", "ok", "ok", "ok"])
    );
    // Bars are to scale: `render` starts at 85% of the trace.
    let left = browser.eval(
        "return getComputedStyle(document.getElementById('r-00000000000000a3')).getPropertyValue('--l').trim()",
    );
    assert_eq!(left, json!("85.000%"));
    browser.screenshot("timeline.png");

    // Collapse the call to the api: everything under it disappears; expand brings it back.
    browser.click("#r-00000000000000a2 button.tw");
    assert_eq!(
        browser.eval(visible),
        json!(["0 web", "1 call-api", "1 render"])
    );
    browser.click("#r-00000000000000a2 button.tw");
    assert_eq!(browser.eval(visible).as_array().map(Vec::len), Some(7));
    // "Level 1": only the first level under the root.
    browser.click("button[data-level='1']");
    assert_eq!(
        browser.eval(visible),
        json!(["0 web", "1 call-api", "1 render"])
    );
    browser.click("button[data-level='999']");
    assert_eq!(browser.eval(visible).as_array().map(Vec::len), Some(7));

    // Selecting the api segment shows its exception with the stack frame, and deep-links it.
    browser.click("#r-00000000000000b1 .name");
    let details = browser.wait_for(
        "const d = document.querySelector('#details'); return d.dataset.row === '00000000000000b1' ? d.textContent : null",
    );
    let details = details.as_str().unwrap();
    assert!(details.contains("PoolTimeout"), "{details}");
    assert!(details.contains("src/db.rs:42"), "{details}");
    assert!(browser.url().contains("row=00000000000000b1"));
    // Keyboard: down moves to the SQL row, whose details show the query.
    browser.eval("document.getElementById('timeline').focus()");
    let id = browser.find("#timeline");
    browser.call(
        "POST",
        &browser.session_path(&format!("/element/{id}/value")),
        Some(json!({"text": "\u{E015}"})),
    );
    let sql = browser.wait_for(
        "const d = document.querySelector('#details'); return d.dataset.row === '00000000000000b2' ? d.textContent : null",
    );
    assert!(
        sql.as_str().unwrap().contains("SELECT * FROM orders"),
        "{sql}"
    );
    browser.screenshot("timeline-details.png");

    // A deep link opens the same row.
    browser.goto(&format!(
        "{}/traces/{trace}?row=00000000000000b4",
        collector.endpoint_url()
    ));
    let selected = browser.wait_for(
        "const r = document.querySelector('#rows .row.sel'); return r ? r.dataset.id : null",
    );
    assert_eq!(selected, json!("00000000000000b4"));
}

#[test]
fn the_all_in_one_demo_shows_a_living_map_with_scrubbed_traces() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(
        dir.path(),
        &[
            "--demo",
            "--daemon-udp",
            "127.0.0.1:0",
            "--daemon-tcp",
            "127.0.0.1:0",
        ],
    );
    let expected = [
        "frontend",
        "checkout",
        "inventory",
        "payments",
        "bank.example.com",
        "orders@postgres.internal",
        "DynamoDB",
        "SQS",
    ];
    // The demo's requests go SDK -> UDP -> embedded daemon -> this collector.
    let map = eventually(Duration::from_secs(90), || {
        let page = roentgen_tests::http::request(&collector.address, "GET", "/?window=5m", &[], "");
        expected
            .iter()
            .all(|n| page.body.contains(&format!("data-name=\"{n}\"")))
            .then_some(page.body)
    })
    .expect("the demo's services never all showed on the map");
    assert!(map.contains("class=\"ring ok\""), "no outcome rings");
    let now = now();
    let body = json!({"StartTime": now - 600.0, "EndTime": now + 60.0}).to_string();
    let (status, summaries) = collector.post("/TraceSummaries", &body);
    assert_eq!(status, 200, "{summaries}");
    let summaries: Value = serde_json::from_str(&summaries).unwrap();
    let ids: Vec<Value> = summaries["TraceSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .take(20)
        .map(|s| s["Id"].clone())
        .collect();
    assert!(!ids.is_empty());
    let (status, traces) = collector.post("/Traces", &json!({"TraceIds": ids}).to_string());
    assert_eq!(status, 200, "{traces}");
    // The demo records customer emails, a card number and a phone number: none is stored.
    // Whole values only: a fragment like "4111" turns up by chance in ids and timestamps.
    assert!(traces.contains("customer_email"), "{traces}");
    for secret in ["@example.com", "4111 1111 1111 1111", "555 0132"] {
        assert!(!traces.contains(secret), "{secret} was stored: {traces}");
    }
}
