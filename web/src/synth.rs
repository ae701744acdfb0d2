//! Synthetic traces for tests and benchmarks: a small shop whose `frontend` calls `orders`
//! (which reports its own segment), `orders` calls DynamoDB and a `payments` API that do not
//! (inferred nodes); outcomes vary with the trace number so graphs carry errors, throttles and
//! faults. Deterministic: the same number gives the same documents.

use serde_json::json;

/// Documents of synthetic trace `n` starting at `start` (epoch seconds): the `frontend` and
/// `orders` segments, as `PutTraceSegments` would carry them.
pub fn shop_trace(n: u64, start: f64) -> Vec<String> {
    let trace_id = format!(
        "1-{:08x}-{:024x}",
        start as u64,
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128 | 1 << 90
    );
    let id = |k: u64| {
        format!(
            "{:016x}",
            (n << 8 | k).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1
        )
    };
    let (front_status, orders_fault, payments_status) = match n % 20 {
        0 => (500, true, 200),
        1 => (429, false, 429),
        2 | 3 => (404, false, 200),
        4 => (502, false, 503),
        _ => (200, false, 200),
    };
    let rt = 0.010 + (n % 7) as f64 * 0.011;
    let tier = ["gold", "silver", "bronze"][(n % 3) as usize];
    let front = json!({
        "name": "frontend", "id": id(1), "trace_id": trace_id,
        "start_time": start, "end_time": start + rt + 0.05,
        "origin": "AWS::EC2::Instance",
        "http": {
            "request": {"method": if n.is_multiple_of(3) { "POST" } else { "GET" }, "url": format!("https://shop.example.com/cart/{}", n % 50), "user_agent": "bench/1.0", "client_ip": "203.0.113.9"},
            "response": {"status": front_status}
        },
        "user": format!("user-{}", n % 100),
        "annotations": {"tier": tier, "order": format!("ord-{n}"), "items": n % 5},
        "fault": front_status >= 500, "error": (400..500).contains(&front_status), "throttle": front_status == 429,
        "subsegments": [
            {"name": "orders", "id": id(2), "namespace": "remote", "start_time": start + 0.001, "end_time": start + rt + 0.04,
             "http": {"request": {"method": "POST", "url": "http://orders.internal/orders"}, "response": {"status": if orders_fault { 500 } else { 200 }}},
             "fault": orders_fault}
        ]
    });
    let orders = json!({
        "name": "orders", "id": id(3), "trace_id": trace_id, "parent_id": id(2),
        "start_time": start + 0.002, "end_time": start + rt + 0.035,
        "origin": "AWS::ECS::Container",
        "http": {"request": {"method": "POST", "url": "http://orders.internal/orders"}, "response": {"status": if orders_fault { 500 } else { 200 }}},
        "fault": orders_fault,
        "annotations": {"warehouse": format!("wh-{}", n % 4)},
        "subsegments": [
            {"name": "DynamoDB", "id": id(4), "namespace": "aws", "start_time": start + 0.003, "end_time": start + 0.003 + rt,
             "aws": {"operation": "PutItem", "table_name": "orders"}},
            {"name": "payments.example.com", "id": id(5), "namespace": "remote", "start_time": start + 0.004 + rt, "end_time": start + 0.03 + rt,
             "http": {"request": {"method": "POST", "url": "https://payments.example.com/v1/charges"}, "response": {"status": payments_status}},
             "throttle": payments_status == 429, "error": payments_status == 429, "fault": payments_status >= 500}
        ]
    });
    vec![front.to_string(), orders.to_string()]
}

/// One trace of `segments` segment documents (a chain of services each calling the next),
/// for `BatchGetTraces` of a large trace.
pub fn chain_trace(n: u64, start: f64, segments: usize) -> Vec<String> {
    let trace_id = format!("1-{:08x}-{:024x}", start as u64, n as u128 | 1 << 88);
    let id = |k: usize| {
        format!(
            "{:016x}",
            ((n << 20) | k as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1
        )
    };
    (0..segments)
        .map(|k| {
            let mut doc = json!({
                "name": format!("svc-{}", k % 25), "id": id(2 * k), "trace_id": trace_id,
                "start_time": start + k as f64 * 0.001, "end_time": start + 1.0 - k as f64 * 0.001,
                "http": {"request": {"method": "GET", "url": format!("http://svc-{}/step/{k}", k % 25)}, "response": {"status": 200}},
                "metadata": {"default": {"payload": "x".repeat(200)}},
                "subsegments": [
                    {"name": format!("svc-{}", (k + 1) % 25), "id": id(2 * k + 1), "namespace": "remote",
                     "start_time": start + k as f64 * 0.001 + 0.0005, "end_time": start + 1.0 - k as f64 * 0.001 - 0.0005}
                ]
            });
            if k > 0 {
                doc["parent_id"] = json!(id(2 * k - 1));
            }
            doc.to_string()
        })
        .collect()
}
