//! The fixtures themselves: every captured datagram is framed as the X-Ray wire format says.

use roentgen_sdk::model::{DocumentHead, split_datagram};

#[test]
fn captured_datagrams_are_well_framed() {
    let text = std::fs::read_to_string(roentgen_tests::data(
        "captures/python-sdk-2.15-checkout.txt",
    ))
    .expect("capture");
    let body = text.split_once("---\n").expect("marker").1.trim_end();
    let doc = split_datagram(body.as_bytes()).expect("framing");
    let head = DocumentHead::parse(doc).expect("head");
    assert_eq!(head.name, "checkout-api");
}
