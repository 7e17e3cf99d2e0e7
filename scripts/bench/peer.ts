// Issue 7 §3 — the peer-fetch path. Requests enter node A's HTTP front for keys node B owns, 64 concurrent
// (wrk, 64 keep-alive connections), so each one is a real gRPC fetch from the owner. A runs with a 1-byte cache
// budget: its hot cache (1/8 of the budget) can hold nothing, so it can never answer from a mirror — the bench
// checks that with A's own counters (peerLoads ≈ requests, cacheHits 0). B holds the keys warm.
// Same-run baseline: a bare node:http server making one grpc-js unary call per request to a bare grpc-js server
// (no cache, flight, ring or policy) — what the obvious Node design costs. It is not a ceiling: a unary call
// opens an HTTP/2 stream each time, which gossipcache's multiplexed Fetch stream avoids. The two are measured in
// alternating 2 s slices, like front.ts.
import { Ring } from '../../src/ring.js';
import {
  diffStats,
  getJson,
  groupStats,
  hasNode,
  type NodeHandle,
  ringOf,
  startCluster,
  warmPaths,
} from './lib/cluster.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { freePort, type Server, startProcess, stopAll, waitForPort } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk, type WrkResult, wrkErrors } from './lib/wrk.js';

const BENCH = 'peer';
const GROUP = 'bench';
const KEYS = 1000;
const CONNECTIONS = 64;
const GOAL_RPS = 17_400;
const BARE = 'bare http → grpc-js unary per request';
/** Seconds per measured slice (wrk takes whole seconds). */
const SLICE_S = 2;

/** The first `n` keys `owner` owns on a ring of `labels`. */
function keysOwnedBy(labels: string[], owner: string, n: number): string[] {
  const ring = new Ring({ labels });
  const keys: string[] = [];
  for (let i = 0; keys.length < n; i++) {
    const k = `peer-${i}`;
    if (ring.owner(k) === owner) keys.push(k);
  }
  return keys;
}

interface Half {
  r: WrkResult;
  cpu: number[];
  sys: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function combine(halves: Half[]) {
  const sum = (f: (h: Half) => number) => halves.reduce((a, h) => a + f(h), 0);
  const requests = sum((h) => h.r.requests);
  const front = sum((h) => h.cpu[0]);
  const owner = sum((h) => h.cpu[1]);
  return {
    requests,
    metrics: {
      'req/s': requests / sum((h) => h.r.durationS),
      'req/s_median_slice': median(halves.map((h) => h.r.requests / h.r.durationS)),
      p50_ms: sum((h) => h.r.p50) / halves.length,
      p99_ms: sum((h) => h.r.p99) / halves.length,
      cpu_front_s: front,
      cpu_owner_s: owner,
      'front_sys%': (100 * sum((h) => h.sys[0])) / front,
      'req/cpu_s': requests / (front + owner),
      errors: sum((h) => wrkErrors(h.r)),
      wrk_cpu_s: sum((h) => h.r.generatorCpuS ?? Number.NaN),
    } as Record<string, number | string>,
  };
}

async function startBarePair(): Promise<{ http: Server; grpc: Server; port: number }> {
  const grpcPort = await freePort();
  const grpc = startProcess('bare-grpc', process.execPath, [
    'scripts/bench/lib/bare-grpc.mjs',
    String(grpcPort),
  ]);
  await waitForPort(grpcPort, 10000, grpc);
  const port = await freePort();
  const http = startProcess('bare-proxy', process.execPath, [
    'scripts/bench/lib/bare-proxy.mjs',
    String(port),
    String(grpcPort),
  ]);
  await waitForPort(port, 10000, http);
  return { http, grpc, port };
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!hasWrk())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'wrk not found (apt-get install wrk)' } }];
  if (!hasNode())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/cli.js missing: npm run build' } }];
  const seconds = quick ? 4 : 10;
  const warmS = quick ? 1 : 2;
  let nodes: NodeHandle[] = [];
  const servers: Server[] = [];
  try {
    const bare = await startBarePair();
    servers.push(bare.http, bare.grpc);
    nodes = await startCluster(3, {
      group: GROUP,
      origin: 'demo:0ms',
      cacheBytes: '256MiB',
      perNode: [{ cacheBytes: '1' }],
    });
    const [a, b] = nodes;
    const labels = ringOf(await getJson(a.httpPort, '/_cluster'));
    const paths = keysOwnedBy(labels, b.label, KEYS).map((k) => `/${GROUP}/${k}`);
    await warmPaths(b.httpPort, paths); // loads each key on its owner
    await runWrk({ port: bare.port, paths, connections: CONNECTIONS, durationS: warmS });
    await runWrk({ port: a.httpPort, paths, connections: CONNECTIONS, durationS: warmS });
    const beforeA = await groupStats(a.httpPort, GROUP);
    const beforeB = await groupStats(b.httpPort, GROUP);
    const bareHalves: Half[] = [];
    const nodeHalves: Half[] = [];
    // Short alternating slices (see front.ts): the box's speed drifts within a minute.
    const load = (port: number) => () =>
      runWrk({ port, paths, connections: CONNECTIONS, durationS: SLICE_S });
    for (let round = 0; round < seconds / SLICE_S; round++) {
      const bareFirst = round % 2 === 0;
      if (bareFirst) {
        const wb = await withCpu([bare.http, bare.grpc], load(bare.port));
        bareHalves.push({ r: wb.result, cpu: wb.cpu, sys: wb.sys });
      }
      const wn = await withCpu([a.server, b.server], load(a.httpPort));
      nodeHalves.push({ r: wn.result, cpu: wn.cpu, sys: wn.sys });
      if (!bareFirst) {
        const wb = await withCpu([bare.http, bare.grpc], load(bare.port));
        bareHalves.push({ r: wb.result, cpu: wb.cpu, sys: wb.sys });
      }
    }
    const dA = diffStats(await groupStats(a.httpPort, GROUP), beforeA);
    const dB = diffStats(await groupStats(b.httpPort, GROUP), beforeB);
    const base = combine(bareHalves);
    const subj = combine(nodeHalves);
    const perCpu = (m: Record<string, number | string>) => Number(m['req/cpu_s']);
    return [
      { bench: BENCH, case: `${BARE} (naive Node baseline)`, metrics: base.metrics },
      {
        bench: BENCH,
        case: 'A front → gRPC → owner B, 64 conc.',
        metrics: {
          ...subj.metrics,
          'vs_goal_17.4k': Number(subj.metrics['req/s']) / GOAL_RPS,
          'A_peerLoads/req': (dA.peerLoads ?? Number.NaN) / subj.requests,
          A_cacheHits: dA.cacheHits ?? 'n/a',
          B_serverRequests: dB.serverRequests ?? 'n/a',
          B_loads: dB.loads ?? 'n/a',
        },
        baseline: BARE,
        ratio: perCpu(subj.metrics) / perCpu(base.metrics),
        goal: '≥ 17.4k req/s (Go groupcache, tuned pool)',
      },
    ];
  } finally {
    await stopAll([...servers, ...nodes.map((x) => x.server)]);
  }
}

if (isMain(import.meta.url)) await runAlone(run);
