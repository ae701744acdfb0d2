"""Sends N traced requests with the official X-Ray SDK for Python to AWS_XRAY_DAEMON_ADDRESS,
each with 45 subsegments, so the SDK streams completed subsegments as separate documents
(its threshold is 30) before the segment itself. Prints the trace ids, then DONE.
"""
import os
import sys

from aws_xray_sdk.core import xray_recorder

xray_recorder.configure(
    service="py-streamed",
    sampling=False,
    context_missing="LOG_ERROR",
    daemon_address=os.environ["AWS_XRAY_DAEMON_ADDRESS"],
    streaming_threshold=30,
)

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for i in range(count):
    segment = xray_recorder.begin_segment("py-streamed")
    segment.put_annotation("run", "streamed-%d" % i)
    for k in range(45):
        sub = xray_recorder.begin_subsegment("step-%03d" % k)
        sub.put_annotation("step", k)
        xray_recorder.end_subsegment()
    segment.put_http_meta("status", 200)
    print("TRACE " + segment.trace_id, flush=True)
    xray_recorder.end_segment()
print("DONE", flush=True)
