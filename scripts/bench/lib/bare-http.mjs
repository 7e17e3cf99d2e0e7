// The Node ceiling: a bare node:http server answering every request with the same small constant body.
// Started as its own process so its CPU time can be read from /proc. Usage: node bare-http.mjs <port>
import { createServer } from 'node:http';

const body = Buffer.from('v'.repeat(32));
const port = Number(process.argv[2]);
createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
