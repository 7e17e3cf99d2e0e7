// The front side of the peer path's Node ceiling: a bare node:http server that answers each request with
// the result of one grpc-js unary call to bare-grpc.mjs, over one channel, with no cache, flight or policy
// in between. Usage: node bare-proxy.mjs <httpPort> <grpcPort>
import { createServer } from 'node:http';
import { Client, credentials } from '@grpc/grpc-js';

const [httpPort, grpcPort] = process.argv.slice(2).map(Number);
const client = new Client(`127.0.0.1:${grpcPort}`, credentials.createInsecure());
const id = (b) => b;
createServer((req, res) => {
  client.makeUnaryRequest('/bench.Bare/Get', id, id, Buffer.from(req.url ?? '/'), (err, value) => {
    if (err) {
      res.writeHead(502).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': value.length });
    res.end(value);
  });
}).listen(httpPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
