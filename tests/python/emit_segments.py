"""Sends N traced requests with the official X-Ray SDK for Python to AWS_XRAY_DAEMON_ADDRESS.

Every datagram the SDK hands to its UDP socket is also printed on stdout as
`DATAGRAM <json string>`, so a test can compare what the SDK sent with what the collector got.
The SDK itself is unchanged: the print wraps its private send function.
"""
import json
import os
import sys

from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters import udp_emitter

_send = udp_emitter.UDPEmitter._send_data


def _tap(self, data):
    print("DATAGRAM " + json.dumps(data), flush=True)
    _send(self, data)


udp_emitter.UDPEmitter._send_data = _tap

xray_recorder.configure(
    service="py-checkout",
    sampling=False,
    context_missing="LOG_ERROR",
    daemon_address=os.environ["AWS_XRAY_DAEMON_ADDRESS"],
)

count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
for i in range(count):
    segment = xray_recorder.begin_segment("py-checkout")
    segment.put_http_meta("url", "https://shop.example.com/checkout?email=jane.doe@example.com")
    segment.put_http_meta("method", "POST")
    segment.put_annotation("order_id", "ord-%d" % i)
    segment.put_annotation("customer_email", "jane.doe@example.com")
    segment.put_metadata("payment", {"pan": "4111111111111111", "note": "plain text"})
    sub = xray_recorder.begin_subsegment("orders-db")
    sub.put_annotation("rows", i)
    xray_recorder.end_subsegment()
    segment.put_http_meta("status", 200)
    xray_recorder.end_segment()
print("DONE", flush=True)
