"""Three services traced with the OpenTelemetry Python SDK and exported to the endpoint in
argv[1] with its OTLP/HTTP exporter (protobuf, gzip; argv[2] "http", the default) or its
OTLP/gRPC exporter (gzip; argv[2] "grpc", endpoint host:port for plain HTTP/2 or
https://host:port for TLS); prints
TRACE <32 hex>.

E2E_BATCH=1 exports each service's spans together at the end (a batch processor, as apps
usually run it) instead of each span as it ends.

Credentials come the way users give them: gRPC metadata from OTEL_EXPORTER_OTLP_HEADERS (read
by the exporter itself); for HTTP, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY sign each request
with SigV4 (service xray) through botocore, as AWS's own OTLP endpoint asks."""

import os
import sys

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

endpoint = sys.argv[1]
transport = sys.argv[2] if len(sys.argv) > 2 else "http"


def exporter():
    if transport == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # https:// verifies the server with OTEL_EXPORTER_OTLP_CERTIFICATE, as users set it.
        insecure = not endpoint.startswith("https://")
        return OTLPSpanExporter(endpoint=endpoint, insecure=insecure, compression=grpc.Compression.Gzip)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip, session=session())


def session():
    """A requests session that signs with SigV4 when AWS credentials are in the environment."""
    import os

    import requests

    if "AWS_ACCESS_KEY_ID" not in os.environ:
        return requests.Session()
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])

    class Signed(requests.Session):
        def request(self, method, url, data=None, headers=None, **kwargs):
            request = AWSRequest(method=method, url=url, data=data, headers=dict(headers or {}))
            SigV4Auth(credentials, "xray", "us-east-1").add_auth(request)
            return super().request(method, url, data=data, headers=dict(request.headers), **kwargs)

    return Signed()


def tracer(service):
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "2.1.0"}))
    if os.environ.get("E2E_BATCH") == "1":
        # Exported at shutdown only: one request per service, whatever the machine's speed.
        processor = BatchSpanProcessor(exporter(), schedule_delay_millis=600_000)
    else:
        processor = SimpleSpanProcessor(exporter())
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("e2e")


providers = {}
for name in ["py-frontend", "py-checkout", "py-payments"]:
    providers[name] = tracer(name)


def serve(service, carrier, name):
    """A server span of `service` continuing the caller's context."""
    parent = propagate.extract(carrier)
    return providers[service][1].start_as_current_span(
        name, context=parent, kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "url.path": name.split(" ")[1],
                    "server.address": service, "http.response.status_code": 500},
    )


def call(service, peer):
    """A client span of `service` calling `peer`; returns the span and the headers it sends."""
    span = providers[service][1].start_span(
        "POST", kind=SpanKind.CLIENT,
        attributes={"peer.service": peer, "http.request.method": "POST",
                    "url.full": f"http://{peer}/api", "http.response.status_code": 500},
    )
    carrier = {}
    token = context.attach(trace.set_span_in_context(span))
    propagate.inject(carrier)
    context.detach(token)
    return span, carrier


with providers["py-frontend"][1].start_as_current_span(
    "POST /checkout", kind=SpanKind.SERVER,
    attributes={"http.request.method": "POST", "url.path": "/checkout",
                "server.address": "shop.example.com", "http.response.status_code": 500,
                "customer.email": "jane.doe@example.com"},
) as root:
    trace_id = format(root.get_span_context().trace_id, "032x")
    out, headers = call("py-frontend", "py-checkout")
    with serve("py-checkout", headers, "POST /api"):
        inner, headers2 = call("py-checkout", "py-payments")
        with serve("py-payments", headers2, "POST /api") as pay:
            db = providers["py-payments"][1].start_span(
                "SELECT cards", kind=SpanKind.CLIENT,
                attributes={"db.system": "postgresql", "db.name": "ledger",
                            "server.address": "ledger-db",
                            "db.statement": "SELECT * FROM cards WHERE number = '4111111111111111'"},
            )
            db.end()
            try:
                raise ValueError("card declined")
            except ValueError as error:
                pay.record_exception(error)
                pay.set_status(Status(StatusCode.ERROR, "card declined"))
        inner.end()
    out.end()

for provider, _ in providers.values():
    provider.shutdown()
print("TRACE", trace_id, flush=True)
