//! A Lambda-style invocation: the runtime made the segment and passed its header in
//! `_X_AMZN_TRACE_ID`; `recorder.invocation()` returns a facade of that segment whose
//! subsegments are sent on their own under it. Without the variable, a header of a made-up
//! invocation is used so the example runs anywhere.
//!
//! ```sh
//! AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 \
//! _X_AMZN_TRACE_ID='Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1' \
//!   cargo run -p roentgen-sdk --example invocation
//! ```

use std::time::Duration;

use anyhow::Context;
use roentgen_sdk::model::{SamplingDecision, SegmentId, TraceHeader, TraceId};
use roentgen_sdk::recorder::{Recorder, invocation_header, scope};

/// The work of one invocation, in the facade's scope.
async fn handle(recorder: &Recorder, order: u32) -> anyhow::Result<()> {
    let parse = recorder.begin_subsegment("parse-event")?;
    parse.put_annotation("order", order)?;
    parse.end();
    let store = recorder.begin_subsegment("orders@dynamodb")?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.end();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let recorder = Recorder::from_env().context("configuring the recorder")?;
    let header = invocation_header().unwrap_or_else(|| {
        let made_up = TraceHeader::new(
            TraceId::generate(),
            Some(SegmentId::generate()),
            SamplingDecision::Sampled,
        );
        println!("_X_AMZN_TRACE_ID not set; using {made_up}");
        made_up
    });
    let facade = recorder.continue_invocation(Some(&header))?;
    println!("invocation of trace {}", facade.trace_id());
    scope(facade.clone(), handle(&recorder, 42)).await?;
    // The facade itself is never sent: the runtime sends the segment.
    facade.end();
    recorder.flush(Duration::from_secs(2));
    println!("{:?}", recorder.stats());
    Ok(())
}
