"""Raw OTLP/gRPC calls (grpcio, no serializer) to TraceService/Export at argv[1]:
for each kind in argv[2:] ("garbage": bytes that are no protobuf; "oversize": 17 MiB, past the
16 MiB bound; "empty": a valid empty request) prints "<kind> <STATUS_CODE_NAME>". The
metadata `authorization` is sent as ROENTGEN_GRPC_AUTHORIZATION says, if set."""

import os
import sys

import grpc

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BODIES = {"garbage": b"\xff" * 16, "oversize": b"\x00" * (17 << 20), "empty": b""}

channel = grpc.insecure_channel(
    sys.argv[1], options=[("grpc.max_send_message_length", -1)]
)
call = channel.unary_unary(EXPORT)
metadata = []
if "ROENTGEN_GRPC_AUTHORIZATION" in os.environ:
    metadata.append(("authorization", os.environ["ROENTGEN_GRPC_AUTHORIZATION"]))
for kind in sys.argv[2:]:
    try:
        call(BODIES[kind], timeout=30, metadata=metadata)
        print(kind, "OK", flush=True)
    except grpc.RpcError as error:
        print(kind, error.code().name, flush=True)
