// A stand-in for the gossipcache CLI, used only to prove the fault-suite harness (namespaces, DNS per
// namespace, iptables faults, process control, origin and load accounting) before or apart from the
// real node. It speaks the same env/HTTP contract with a deliberately naive design: membership by
// HTTP pings to every address the seed name resolves to, ownership by rendezvous hashing, one cache
// map, one flight per key, fallback to a local load when the owner does not answer.
// Run the suite with it: GOSSIPCACHE_FAULT_NODE=standin node --import tsx --test test/cluster/faults.test.ts

import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import { httpGet } from './client.js';

const env = process.env;
const [httpHost, httpPort] = (env.GOSSIPCACHE_HTTP_ADDR ?? '0.0.0.0:8080').split(':');
const self = env.GOSSIPCACHE_ADVERTISE_HOST ?? '127.0.0.1';
const group = env.GOSSIPCACHE_GROUP ?? 'default';
const origin = env.GOSSIPCACHE_ORIGIN ?? '';
const seeds = (env.GOSSIPCACHE_SEEDS ?? '').split(',').filter(Boolean);
const selfAddr = `${self}:9090`;

const lastSeen = new Map<string, number>(); // peer ip → time of last answered ping
const leftPeers = new Set<string>();
const cache = new Map<string, string>();
const flights = new Map<string, Promise<{ status: number; body: string }>>();
const stats = { loads: 0, peerLoads: 0, peerErrors: 0, serverRequests: 0 };
let leaving = false;

function state(ip: string): string {
  if (leftPeers.has(ip)) return 'left';
  const age = Date.now() - (lastSeen.get(ip) ?? 0);
  return age < 2_000 ? 'alive' : age < 5_000 ? 'suspect' : 'dead';
}

function ring(): string[] {
  const ips = [...lastSeen.keys()].filter((ip) => ['alive', 'suspect'].includes(state(ip)));
  return [self, ...ips].sort();
}

function owner(key: string): string {
  let best = '';
  let bestHash = '';
  for (const ip of ring()) {
    const h = createHash('sha1').update(`${ip}:9090/${key}`).digest('hex');
    if (h > bestHash) [best, bestHash] = [ip, h];
  }
  return best;
}

async function resolveSeeds(): Promise<void> {
  for (const s of seeds) {
    try {
      for (const a of await lookup(s.split(':')[0], { all: true, family: 4 })) {
        if (a.address !== self && !lastSeen.has(a.address)) lastSeen.set(a.address, 0);
      }
    } catch {
      // a seed that does not resolve yet is retried on the next round
    }
  }
}

async function pingAll(): Promise<void> {
  await Promise.all(
    [...lastSeen.keys()].map(async (ip) => {
      const r = await httpGet(`http://${ip}:${httpPort}/_standin/ping`, 400);
      if (r.status === 200) {
        lastSeen.set(ip, Date.now());
        leftPeers.delete(ip);
      } else if (r.status === 410) leftPeers.add(ip);
    }),
  );
}

function loadLocal(key: string): Promise<{ status: number; body: string }> {
  const hit = cache.get(key);
  if (hit !== undefined) return Promise.resolve({ status: 200, body: hit });
  let f = flights.get(key);
  if (!f) {
    stats.loads++;
    f = httpGet(origin.replace('{key}', encodeURIComponent(key)), 5_000).then((r) => {
      flights.delete(key);
      if (r.status === 200) cache.set(key, r.body);
      return { status: r.status === 0 ? 502 : r.status, body: r.body };
    });
    flights.set(key, f);
  }
  return f;
}

async function get(key: string): Promise<{ status: number; body: string }> {
  const hit = cache.get(key);
  if (hit !== undefined) return { status: 200, body: hit };
  const o = owner(key);
  if (o !== self) {
    const r = await httpGet(`http://${o}:${httpPort}/_standin/peer/${encodeURIComponent(key)}`, 2_000);
    if (r.status === 200 || r.status === 404) {
      stats.peerLoads++;
      return r;
    }
    stats.peerErrors++;
  }
  return loadLocal(key);
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const send = (status: number, body: string, type = 'text/plain') =>
    res.writeHead(status, { 'content-type': type }).end(body);
  if (url === '/_standin/ping') return send(leaving ? 410 : 200, 'pong');
  if (url === '/healthz') return send(200, 'ok');
  if (url === '/readyz') return send(leaving ? 503 : 200, leaving ? 'leaving' : 'ready');
  if (url === '/_stats') return send(200, JSON.stringify(stats), 'application/json');
  if (url === '/_cluster') {
    const members = [
      { id: self, state: leaving ? 'left' : 'alive', incarnation: 0, grpcAddr: selfAddr },
      ...[...lastSeen.keys()].map((ip) => ({
        id: ip,
        state: state(ip),
        incarnation: 0,
        grpcAddr: `${ip}:9090`,
      })),
    ];
    const ringChecksum = createHash('sha1').update(ring().join(',')).digest('hex').slice(0, 16);
    return send(200, JSON.stringify({ members, ringChecksum }), 'application/json');
  }
  const peer = /^\/_standin\/peer\/(.+)$/.exec(url);
  const m = peer ?? new RegExp(`^/${group}/(.+)$`).exec(url);
  if (!m) return send(404, 'no such route');
  const key = decodeURIComponent(m[1]);
  if (peer) stats.serverRequests++;
  (peer ? loadLocal(key) : get(key)).then(
    (r) => send(r.status, r.body),
    (err: Error) => send(500, err.message),
  );
});

server.listen(Number(httpPort), httpHost, () => console.log(`stand-in listening on ${httpHost}:${httpPort}`));
const resolver = setInterval(resolveSeeds, 2_000);
const pinger = setInterval(pingAll, 500);
void resolveSeeds();

process.on('SIGTERM', () => {
  leaving = true;
  console.log('stand-in leaving');
  setTimeout(() => {
    clearInterval(resolver);
    clearInterval(pinger);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  }, 1_500);
});
