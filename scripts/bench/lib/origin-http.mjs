// A counting HTTP origin for the herd bench, in its own process so a busy load generator cannot delay it.
// GET /o/<key> answers "origin value of <key>" after <delayMs>; GET /_loads returns { key: loads } as JSON.
// Usage: node origin-http.mjs <port> <delayMs>
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const delayMs = Number(process.argv[3]);
const loads = new Map();
createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/_loads') {
    const body = JSON.stringify(Object.fromEntries(loads));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const key = decodeURIComponent(url.slice('/o/'.length));
  loads.set(key, (loads.get(key) ?? 0) + 1);
  setTimeout(() => {
    const body = `origin value of ${key}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }, delayMs);
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
