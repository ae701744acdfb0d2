//! Synthetic traces for tests and benchmarks: a small shop whose `frontend` calls `orders`
//! (which reports its own segment), `orders` calls DynamoDB and a `payments` API that do not
//! (inferred nodes); outcomes vary with the trace number so graphs carry errors, throttles and
//! faults. Deterministic: the same number gives the same documents.

use serde_json::json;

/// The trace id of synthetic trace `n` (its family told apart by bit `family`) and a function
/// giving its documents' ids by number.
fn ids(n: u64, start: f64, family: u32) -> (String, impl Fn(u64) -> String) {
    let trace_id = format!(
        "1-{:08x}-{:024x}",
        start as u64,
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128 | 1 << family
    );
    let id = move |k: u64| {
        format!(
            "{:016x}",
            (n << 8 | k).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1
        )
    };
    (trace_id, id)
}

/// Documents of synthetic trace `n` starting at `start` (epoch seconds): the `frontend` and
/// `orders` segments, as `PutTraceSegments` would carry them.
pub fn shop_trace(n: u64, start: f64) -> Vec<String> {
    let (trace_id, id) = ids(n, start, 90);
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

/// Services of [`fleet_trace`], in call order.
pub const FLEET_SERVICES: [&str; 5] = ["web", "checkout", "inventory", "payments", "notify"];

/// Documents of synthetic trace `n` as a fleet sends them: five services on five hosts
/// (`web` calls `checkout`, which calls `inventory`, `payments` and `notify`), one segment
/// each, so a trace's pieces travel through different daemons. Documents vary in size and
/// shape with `n` (SQL, AWS and remote subsegments, annotations, metadata of varying length,
/// outcomes), and some carry personal data for the scrubbers: e-mail addresses, card numbers,
/// client addresses. Deterministic: the same `n` gives the same documents.
pub fn fleet_trace(n: u64, start: f64) -> Vec<String> {
    let (trace_id, id) = ids(n, start, 91);
    let fault = n.is_multiple_of(23);
    let throttled = n % 31 == 1;
    let not_found = n % 9 == 2;
    let rt = 0.005 + (n % 13) as f64 * 0.007;
    let user = format!("customer{}@example.com", n % 997);
    let pii = n.is_multiple_of(4);
    let note = if pii {
        format!("card 4111 1111 1111 {:04} for {user}", n % 10_000)
    } else {
        "x".repeat((n % 11 * 40) as usize)
    };
    let status = |bad: bool, code: u16| if bad { code } else { 200 };
    let web_status = if fault {
        500
    } else if throttled {
        429
    } else if not_found {
        404
    } else {
        200
    };
    let zone = ["eu-central-1a", "eu-central-1b"][(n % 2) as usize];
    let method = ["GET", "POST", "PUT"][(n % 3) as usize];
    let tier = ["gold", "silver", "bronze"][(n % 3) as usize];
    let web = json!({
        "name": "web", "id": id(1), "trace_id": trace_id,
        "start_time": start, "end_time": start + rt + 0.03,
        "origin": "AWS::EC2::Instance",
        "aws": {"ec2": {"instance_id": format!("i-{:017x}", n % 6), "availability_zone": zone}},
        "http": {
            "request": {"method": method, "url": format!("https://shop.example.com/cart/{}?session={}", n % 50, n % 7), "user_agent": "Mozilla/5.0", "client_ip": format!("198.51.100.{}", n % 250)},
            "response": {"status": web_status, "content_length": 512 + n % 4096}
        },
        "user": if pii { user.clone() } else { format!("user-{}", n % 100) },
        "annotations": {"tier": tier, "order": format!("ord-{n}"), "items": n % 9, "express": n.is_multiple_of(2)},
        "metadata": {"default": {"note": note}},
        "fault": web_status >= 500, "error": (400..500).contains(&web_status), "throttle": web_status == 429,
        "subsegments": [
            {"name": "checkout", "id": id(2), "namespace": "remote", "start_time": start + 0.001, "end_time": start + rt + 0.025,
             "http": {"request": {"method": "POST", "url": "http://checkout.internal/checkout"}, "response": {"status": status(fault, 500)}},
             "fault": fault}
        ]
    });
    let checkout = json!({
        "name": "checkout", "id": id(3), "trace_id": trace_id, "parent_id": id(2),
        "start_time": start + 0.002, "end_time": start + rt + 0.024,
        "origin": "AWS::ECS::Container",
        "http": {"request": {"method": "POST", "url": "http://checkout.internal/checkout"}, "response": {"status": status(fault, 500)}},
        "fault": fault,
        "annotations": {"cart_size": n % 9},
        "subsegments": [
            {"name": "inventory", "id": id(4), "namespace": "remote", "start_time": start + 0.003, "end_time": start + 0.0055 + rt / 3.0,
             "http": {"request": {"method": "GET", "url": format!("http://inventory.internal/items/{}", n % 200)}, "response": {"status": 200}}},
            {"name": "payments", "id": id(5), "namespace": "remote", "start_time": start + 0.006 + rt / 3.0, "end_time": start + rt + 0.02,
             "http": {"request": {"method": "POST", "url": "http://payments.internal/charge"}, "response": {"status": status(fault, 500)}},
             "fault": fault},
            {"name": "notify", "id": id(6), "namespace": "remote", "start_time": start + rt + 0.021, "end_time": start + rt + 0.023,
             "http": {"request": {"method": "POST", "url": "http://notify.internal/mail"}, "response": {"status": 202}}}
        ]
    });
    let inventory = json!({
        "name": "inventory", "id": id(7), "trace_id": trace_id, "parent_id": id(4),
        "start_time": start + 0.0035, "end_time": start + 0.005 + rt / 3.0,
        "origin": "AWS::ECS::Container",
        "http": {"request": {"method": "GET", "url": format!("http://inventory.internal/items/{}", n % 200)}, "response": {"status": 200}},
        "subsegments": [
            {"name": "stock@db.internal", "id": id(8), "namespace": "remote", "start_time": start + 0.004, "end_time": start + 0.0045 + rt / 4.0,
             "sql": {"url": "postgresql://db.internal:5432/stock", "database_type": "PostgreSQL", "sanitized_query": format!("SELECT qty FROM stock WHERE sku = $1 AND warehouse = {}", n % 4)}}
        ]
    });
    let payments = json!({
        "name": "payments", "id": id(9), "trace_id": trace_id, "parent_id": id(5),
        "start_time": start + 0.0065 + rt / 3.0, "end_time": start + rt + 0.019,
        "origin": "AWS::EC2::Instance",
        "http": {"request": {"method": "POST", "url": "http://payments.internal/charge"}, "response": {"status": status(fault, 500)}},
        "fault": fault,
        "metadata": {"default": {"customer": if pii { user.clone() } else { String::new() }}},
        "subsegments": [
            {"name": "bank.example.com", "id": id(10), "namespace": "remote", "start_time": start + 0.007 + rt / 3.0, "end_time": start + rt + 0.018,
             "http": {"request": {"method": "POST", "url": "https://bank.example.com/v2/authorize"}, "response": {"status": status(fault, 503)}},
             "fault": fault},
            {"name": "DynamoDB", "id": id(11), "namespace": "aws", "start_time": start + rt + 0.0181, "end_time": start + rt + 0.0185,
             "aws": {"operation": "PutItem", "table_name": "payments", "request_id": format!("req-{n}")}}
        ]
    });
    let notify = json!({
        "name": "notify", "id": id(12), "trace_id": trace_id, "parent_id": id(6),
        "start_time": start + rt + 0.0212, "end_time": start + rt + 0.0228,
        "origin": "AWS::ECS::Container",
        "http": {"request": {"method": "POST", "url": "http://notify.internal/mail"}, "response": {"status": 202}},
        "subsegments": [
            {"name": "SQS", "id": id(13), "namespace": "aws", "start_time": start + rt + 0.0213, "end_time": start + rt + 0.0227,
             "aws": {"operation": "SendMessage", "queue_url": "https://sqs.eu-central-1.amazonaws.com/000000000000/mail"}}
        ]
    });
    [web, checkout, inventory, payments, notify]
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// A long trace streamed in `pieces` documents, as an SDK streams one whose segment outgrows
/// its limit: the in-progress `worker` segment first, then subsegments sent on their own (SQL
/// queries, DynamoDB and HTTP calls, some failing, some with annotations), then the complete
/// segment last.
pub fn streamed_trace(n: u64, start: f64, pieces: usize) -> Vec<String> {
    let (trace_id, _) = ids(n, start, 92);
    // Unique per (trace, piece) for up to 2^20 pieces: an odd multiplier is a bijection.
    let id = |k: u64| {
        format!(
            "{:016x}",
            (n << 20 | k).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 1
        )
    };
    let root = id(0);
    let subsegments = pieces.saturating_sub(2) as u64;
    let end = start + 0.002 * (subsegments + 1) as f64;
    let segment = |in_progress: bool| {
        let mut s = json!({
            "name": "worker", "id": root, "trace_id": trace_id, "start_time": start,
            "origin": "AWS::EC2::Instance",
            "http": {"request": {"method": "POST", "url": "https://worker.internal/batch"}},
            "annotations": {"batch": format!("b-{n}")},
        });
        if in_progress {
            s["in_progress"] = json!(true);
        } else {
            s["end_time"] = json!(end);
            s["http"]["response"] = json!({"status": 200});
        }
        s.to_string()
    };
    let mut out = vec![segment(true)];
    for k in 1..=subsegments {
        let at = start + 0.002 * k as f64;
        let mut sub = json!({
            "type": "subsegment", "id": id(k), "trace_id": trace_id, "parent_id": root,
            "start_time": at, "end_time": at + 0.0015 + (k % 7) as f64 * 0.0001,
        });
        match k % 4 {
            0 => {
                sub["name"] = json!("orders@db.internal");
                sub["namespace"] = json!("remote");
                sub["sql"] = json!({"url": "postgresql://db.internal/orders", "sanitized_query": format!("SELECT * FROM items WHERE batch = $1 -- part {}", k % 50)});
            }
            1 => {
                sub["name"] = json!("DynamoDB");
                sub["namespace"] = json!("aws");
                sub["aws"] = json!({"operation": "PutItem", "table_name": "results"});
                if k % 97 == 1 {
                    sub["throttle"] = json!(true);
                    sub["error"] = json!(true);
                    sub["http"] = json!({"response": {"status": 400}});
                }
            }
            2 => {
                sub["name"] = json!("pricing.internal");
                sub["namespace"] = json!("remote");
                let status = if k % 61 == 2 { 503 } else { 200 };
                sub["http"] = json!({"request": {"method": "GET", "url": format!("http://pricing.internal/p/{}", k % 100)}, "response": {"status": status}});
                sub["fault"] = json!(status >= 500);
            }
            _ => {
                sub["name"] = json!("transform");
                sub["annotations"] = json!({"step": k % 10});
                sub["metadata"] =
                    json!({"default": {"rows": k * 3, "note": "x".repeat((k % 40) as usize)}});
            }
        }
        out.push(sub.to_string());
    }
    out.push(segment(false));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_streamed_trace_has_the_pieces_asked_for_all_valid_and_distinct() {
        let docs = super::streamed_trace(3, 1_800_000_000.0, 500);
        assert_eq!(docs.len(), 500);
        let mut ids = std::collections::HashSet::new();
        for d in &docs {
            let prepared = crate::api::prepare_document(d, None).expect("valid");
            ids.insert((prepared.id.clone(), prepared.in_progress));
        }
        assert_eq!(ids.len(), 500);
    }

    #[test]
    fn fleet_traces_are_valid_documents_of_five_services() {
        for n in 0..400 {
            let docs = super::fleet_trace(n, 1_800_000_000.0 + n as f64);
            assert_eq!(docs.len(), super::FLEET_SERVICES.len());
            for d in &docs {
                if let Err(e) = crate::api::prepare_document(d, None) {
                    panic!("trace {n}: {e}");
                }
            }
        }
    }
}
