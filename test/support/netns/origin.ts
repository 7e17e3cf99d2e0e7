// The test origin: the "database" behind the cache. GET /items/<key> returns a value derived from the
// key and counts every load per key and per loading node (by source IP), so the suite can assert
// "exactly one load per key" and "this node owns keys again".
//
//   missing-*  → 404 (the node must answer not found)
//   fail-*     → 500 (the node must answer an error and not cache it)
//   otherwise  → 200 `value:<key>` after delayMs (a slow origin makes concurrent misses overlap)

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export function expectedValue(key: string): string {
  return `value:${key}`;
}

export interface Origin {
  /** GOSSIPCACHE_ORIGIN value. */
  template: string;
  loads(key: string): number;
  /** key → (source IP → loads) */
  loadsBy(key: string): Map<string, number>;
  totalLoads(): number;
  /** Loads of keys with this prefix, per source IP. */
  loadsByIp(prefix?: string): Map<string, number>;
  setDelay(ms: number): void;
  /** Slowest answer (request parsed → response written) since the last call, ms, excluding the delay. */
  takeMaxServeMs(): number;
  close(): Promise<void>;
}

export async function startOrigin(host: string, delayMs = 0): Promise<Origin> {
  const perKey = new Map<string, Map<string, number>>();
  let delay = delayMs;
  let total = 0;
  let maxServe = 0;
  const server = http.createServer((req, res) => {
    const m = /^\/items\/(.+)$/.exec(req.url ?? '');
    if (req.method !== 'GET' || !m) {
      res.writeHead(400).end('expected GET /items/<key>\n');
      return;
    }
    let key: string;
    try {
      key = decodeURIComponent(m[1]);
    } catch {
      res.writeHead(400).end('bad key encoding\n');
      return;
    }
    const ip = (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    total++;
    let by = perKey.get(key);
    if (!by) perKey.set(key, (by = new Map()));
    by.set(ip, (by.get(ip) ?? 0) + 1);
    const t0 = performance.now();
    const reply = () => {
      maxServe = Math.max(maxServe, performance.now() - t0 - delay);
      if (key.startsWith('missing-')) res.writeHead(404).end('not found\n');
      else if (key.startsWith('fail-')) res.writeHead(500).end('origin failure\n');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(expectedValue(key));
    };
    if (delay > 0) setTimeout(reply, delay);
    else reply();
  });
  // Never close an idle keep-alive connection first: a node reusing it at that moment would see a
  // reset that is the fixture's doing, not the cluster's.
  server.keepAliveTimeout = 10 * 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    template: `http://${host}:${port}/items/{key}`,
    loads: (key) => [...(perKey.get(key)?.values() ?? [])].reduce((a, b) => a + b, 0),
    loadsBy: (key) => new Map(perKey.get(key) ?? []),
    totalLoads: () => total,
    loadsByIp(prefix = '') {
      const out = new Map<string, number>();
      for (const [key, by] of perKey) {
        if (!key.startsWith(prefix)) continue;
        for (const [ip, n] of by) out.set(ip, (out.get(ip) ?? 0) + n);
      }
      return out;
    },
    takeMaxServeMs() {
      const m = Math.round(maxServe);
      maxServe = 0;
      return m;
    },
    setDelay(ms) {
      delay = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
