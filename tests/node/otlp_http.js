// Three services traced with the OpenTelemetry JS SDK, exported with its OTLP/HTTP exporter
// (JSON) to the endpoint given as argv[2]; prints TRACE <32 hex>.
const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const url = process.argv[2];
const providers = [];
function tracer(service) {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  providers.push(provider);
  return provider.getTracer('e2e');
}

const frontend = tracer('node-frontend');
const checkout = tracer('node-checkout');
const payments = tracer('node-payments');
const under = (span) => api.trace.setSpan(api.ROOT_CONTEXT, span);
const http = (status) => ({ 'http.request.method': 'GET', 'http.response.status_code': status });

const root = frontend.startSpan('GET /cart', { kind: api.SpanKind.SERVER,
  attributes: { ...http(200), 'url.path': '/cart', 'server.address': 'shop.example.com',
    'user.phone': '+1 415 555 0132' } });
const call = frontend.startSpan('GET', { kind: api.SpanKind.CLIENT,
  attributes: { ...http(404), 'peer.service': 'node-checkout' } }, under(root));
const served = checkout.startSpan('GET /api/cart', { kind: api.SpanKind.SERVER,
  attributes: { ...http(404), 'url.path': '/api/cart', 'server.address': 'node-checkout' } }, under(call));
const pay = payments.startSpan('GET', { kind: api.SpanKind.CLIENT,
  attributes: { ...http(200), 'peer.service': 'node-payments' } }, under(served));
const charge = payments.startSpan('GET /charge', { kind: api.SpanKind.SERVER,
  attributes: { ...http(200), 'url.path': '/charge', 'server.address': 'node-payments' } }, under(pay));
const db = payments.startSpan('SELECT', { kind: api.SpanKind.CLIENT,
  attributes: { 'db.system': 'mysql', 'db.name': 'wallets', 'server.address': 'wallet-db',
    'db.statement': "SELECT balance FROM wallets WHERE owner = 'ana@example.org'" } }, under(charge));
db.recordException(new Error('deadlock found'));
db.setStatus({ code: api.SpanStatusCode.ERROR, message: 'deadlock found' });
for (const span of [db, charge, pay, served, call, root]) span.end();

Promise.all(providers.map((p) => p.forceFlush()))
  .then(() => Promise.all(providers.map((p) => p.shutdown())))
  .then(() => console.log('TRACE', root.spanContext().traceId));
