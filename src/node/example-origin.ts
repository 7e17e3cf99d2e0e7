// A tiny example origin for docker-compose and the smoke test: `GET /items/<key>` answers
// `origin value of <key>` after a delay, with `Cache-Control: max-age=<ttl>`; `GET /items/missing-*`
// answers 404; `GET /_loads` reports how many item requests it served (to see one load per key).
// Run: node dist/node/example-origin.js   (ORIGIN_PORT, default 8000; ORIGIN_DELAY_MS, default 100;
// ORIGIN_MAX_AGE, seconds, default 60).

import { createServer } from 'node:http';

const port = Number(process.env.ORIGIN_PORT ?? 8000);
const delayMs = Number(process.env.ORIGIN_DELAY_MS ?? 100);
const maxAge = Number(process.env.ORIGIN_MAX_AGE ?? 60);
const loads = new Map<string, number>();
let total = 0;

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/_loads') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ total, keys: Object.fromEntries(loads) }));
    return;
  }
  if (!url.startsWith('/items/')) {
    res.writeHead(404).end();
    return;
  }
  const key = decodeURIComponent(url.slice('/items/'.length));
  total++;
  loads.set(key, (loads.get(key) ?? 0) + 1);
  setTimeout(() => {
    if (key.startsWith('missing-')) {
      res.writeHead(404).end('no such item');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': `max-age=${maxAge}` });
    res.end(`origin value of ${key}`);
  }, delayMs);
});
server.listen(port, () => process.stdout.write(`example origin listening on :${port}\n`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => server.close(() => process.exit(0)));
