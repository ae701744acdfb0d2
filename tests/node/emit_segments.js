// Sends N segments with the official X-Ray SDK for Node to AWS_XRAY_DAEMON_ADDRESS.
// Every datagram handed to a UDP socket is also printed on stdout as `DATAGRAM <json string>`,
// so a test can compare what the SDK sent with what the collector got; the SDK is unchanged.
const dgram = require('dgram');

const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function (msg, offset, length, ...rest) {
  const buffer = Buffer.isBuffer(msg) ? msg.subarray(offset, offset + length) : Buffer.from(msg);
  process.stdout.write('DATAGRAM ' + JSON.stringify(buffer.toString('utf8')) + '\n');
  return send.call(this, msg, offset, length, ...rest);
};

const AWSXRay = require('aws-xray-sdk-core');
AWSXRay.setContextMissingStrategy('LOG_ERROR');
AWSXRay.middleware.disableCentralizedSampling();

const count = parseInt(process.argv[2] || '5', 10);
for (let i = 0; i < count; i++) {
  const segment = new AWSXRay.Segment('node-checkout');
  segment.addAnnotation('order_id', 'ord-' + i);
  segment.addAnnotation('customer_email', 'jane.doe@example.com');
  segment.addMetadata('card', '4111 1111 1111 1111');
  const sub = segment.addNewSubsegment('orders-db');
  sub.addAnnotation('rows', i);
  sub.close();
  segment.close();
}
// Give the SDK's asynchronous sends time to reach the socket before exiting.
setTimeout(() => process.stdout.write('DONE\n'), 300);
