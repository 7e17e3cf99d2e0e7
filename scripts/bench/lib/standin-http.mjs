// A minimal stand-in for a gossipcache node's HTTP front (GET /<group>/<key> from an in-memory Map), used to
// prove the bench plumbing before the real node exists. Usage: node standin-http.mjs <port>
import { createServer } from 'node:http';

const cache = new Map();
const port = Number(process.argv[2]);
createServer((req, res) => {
  const url = req.url ?? '/';
  const slash = url.indexOf('/', 1);
  if (req.method !== 'GET' || slash < 0) {
    res.writeHead(404).end();
    return;
  }
  let v = cache.get(url);
  if (v === undefined) {
    v = Buffer.from(`value-of-${url.slice(slash + 1)}`.padEnd(32, '.'));
    cache.set(url, v);
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': v.length });
  res.end(v);
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
