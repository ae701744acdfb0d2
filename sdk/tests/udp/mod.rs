//! A recorder sending to a UDP socket the test reads, for the SDK's integration tests.
// Each test file is its own crate and uses some of these.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::UdpSocket;
use std::time::Duration;

use roentgen_sdk::model::{Segment, split_datagram};
use roentgen_sdk::recorder::{Recorder, RecorderConfig};
use roentgen_sdk::sampling::Rules;

/// Sampling rules that sample every request.
pub const ALWAYS: &str = r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#;
/// Sampling rules that sample nothing.
pub const NEVER: &str = r#"{"version":2,"default":{"fixed_target":0,"rate":0}}"#;

/// A socket and a recorder sending to it, with `rules`, after `edit` of its configuration.
pub fn setup_with(rules: &str, edit: impl FnOnce(&mut RecorderConfig)) -> (UdpSocket, Recorder) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let mut config = RecorderConfig::new(address.parse().unwrap());
    config.rules = Rules::from_json(rules).unwrap();
    // These tests decide by their local rules; sdk/tests/sampling.rs covers the daemon's.
    #[cfg(feature = "centralized-sampling")]
    {
        config.centralized_sampling = None;
    }
    edit(&mut config);
    (socket, Recorder::new(config).unwrap())
}

/// [`setup_with`] with the configuration as it is.
pub fn setup(rules: &str) -> (UdpSocket, Recorder) {
    setup_with(rules, |_| {})
}

/// The next document the socket gets, checked valid (panics after 10 s without one).
pub fn receive(socket: &UdpSocket) -> Segment {
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).expect("a datagram");
    let doc: Segment = serde_json::from_slice(split_datagram(&buf[..n]).unwrap()).unwrap();
    doc.validate().unwrap();
    doc
}

/// Whether nothing more arrives within 200 ms.
pub fn nothing_more(socket: &UdpSocket) -> bool {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 16];
    socket.recv(&mut buf).is_err()
}
