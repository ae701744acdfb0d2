//! The `tracing` layer through a real UDP socket: `#[instrument]`ed functions and nested spans
//! inside a traced task become subsegments with their fields, an `error!` event becomes a cause,
//! and spans outside any traced task send nothing.

#![allow(clippy::unwrap_used)] // test helpers may panic on setup failures
#![cfg(feature = "tracing-layer")]

use std::time::Duration;

use roentgen_sdk::model::Cause;
use roentgen_sdk::recorder::scope;
use roentgen_sdk::tracing_layer::XRayTracingLayer;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;
use udp::{ALWAYS, nothing_more, receive, setup};

mod udp;

#[tracing::instrument(fields(customer_id = 42, email = "jane.doe@example.com"))]
async fn charge(amount: u64) -> Result<(), String> {
    tokio::task::yield_now().await;
    let query = tracing::info_span!("db_query", table = "orders");
    let _in_query = query.enter();
    tracing::info!("an info event is not a cause");
    tracing::error!(code = 7, "card declined");
    Err("declined".into())
}

#[tokio::test(flavor = "current_thread")]
async fn spans_become_subsegments_and_error_events_causes() {
    let (socket, recorder) = setup(ALWAYS);
    let subscriber = tracing_subscriber::registry()
        .with(XRayTracingLayer::new().with_annotations(["customer_id"]));
    let _default = tracing::subscriber::set_default(subscriber);

    // Outside a traced task: nothing is recorded.
    drop(tracing::info_span!("untraced").entered());
    charge(1).await.unwrap_err();

    let segment = recorder.begin_segment("shop", None);
    scope(segment.clone(), async { charge(5).await.unwrap_err() }).await;
    segment.end();
    recorder.flush(Duration::from_secs(5));

    let doc = receive(&socket);
    assert_eq!(doc.name, "shop");
    let subs = doc.subsegments.as_ref().unwrap();
    assert_eq!(subs.len(), 1, "{subs:#?}");
    let charge = &subs[0];
    assert_eq!(charge.name, "charge");
    assert_eq!(
        charge.annotations.as_ref().unwrap()["customer_id"],
        json!(42)
    );
    let metadata = &charge.metadata.as_ref().unwrap()["tracing"];
    assert_eq!(metadata["amount"], json!(5));
    let email = metadata["email"].as_str().unwrap();
    assert!(
        !email.contains("jane.doe"),
        "scrubbed before it left: {email}"
    );
    let query = &charge.subsegments.as_ref().unwrap()[0];
    assert_eq!(query.name, "db_query");
    assert_eq!(
        query.metadata.as_ref().unwrap()["tracing"]["table"],
        json!("orders")
    );
    assert_eq!(query.fault, Some(true));
    let Some(Cause::Details(details)) = &query.cause else {
        panic!("no cause on {query:#?}");
    };
    let exceptions = details.exceptions.as_ref().unwrap();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(
        exceptions[0].message.as_deref(),
        Some("card declined code=7")
    );
    assert!(query.end_time.unwrap() <= charge.end_time.unwrap());

    assert!(nothing_more(&socket), "nothing else was sent");
}
