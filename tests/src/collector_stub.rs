//! A minimal real-HTTP collector for the daemon's tests: records the `PutTraceSegments` bodies
//! it gets on a loopback port and can be stopped and restarted on the same port to simulate an
//! outage. It is the daemon crate's [`MiniCollector`], which its benchmark uses too.

pub use roentgen_daemon::loadgen::collector::{CollectorOptions, Fault, MiniCollector};

/// Starts a recording collector on an ephemeral loopback port.
pub fn recording() -> MiniCollector {
    MiniCollector::start(CollectorOptions {
        record: true,
        ..CollectorOptions::default()
    })
    .expect("start the test collector")
}
