// Issue 7 §3 — the peer-fetch path. Requests enter node A's HTTP front for keys node B owns, 64 concurrent
// (wrk, 64 keep-alive connections), so each one is a real gRPC fetch from the owner. A runs with a 1-byte cache
// budget: its hot cache (1/8 of the budget) can hold nothing, so it can never answer from a mirror — the bench
// checks that with A's own counters (peerLoads must equal gets, cacheHits 0). B holds the keys warm.
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
import { stopAll } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk } from './lib/wrk.js';

const BENCH = 'peer';
const GROUP = 'bench';
const KEYS = 1000;
const CONNECTIONS = 64;
const GOAL_RPS = 17_400;

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

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!hasWrk())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'wrk not found (apt-get install wrk)' } }];
  if (!hasNode())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/cli.js missing: npm run build' } }];
  const seconds = quick ? 4 : 10;
  let nodes: NodeHandle[] = [];
  try {
    nodes = await startCluster(3, {
      group: GROUP,
      origin: 'demo:0ms',
      cacheBytes: '256MiB',
      perNode: [{ cacheBytes: '1' }],
    });
    const [a, b] = nodes;
    const labels = ringOf(await getJson(a.httpPort, '/_cluster'));
    const keys = keysOwnedBy(labels, b.label, KEYS);
    const paths = keys.map((k) => `/${GROUP}/${k}`);
    await warmPaths(b.httpPort, paths); // loads each key on its owner
    await runWrk({ port: a.httpPort, paths, connections: CONNECTIONS, durationS: quick ? 1 : 2 });
    const beforeA = await groupStats(a.httpPort, GROUP);
    const beforeB = await groupStats(b.httpPort, GROUP);
    const w = await withCpu([a.server, b.server], () =>
      runWrk({ port: a.httpPort, paths, connections: CONNECTIONS, durationS: seconds }),
    );
    const dA = diffStats(await groupStats(a.httpPort, GROUP), beforeA);
    const dB = diffStats(await groupStats(b.httpPort, GROUP), beforeB);
    const r = w.result;
    const errors = r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout;
    return [
      {
        bench: BENCH,
        case: 'A front → gRPC → owner B, 64 conc.',
        metrics: {
          'req/s': r.rps,
          p50_ms: r.p50,
          p99_ms: r.p99,
          cpu_A_s: w.cpu[0],
          cpu_B_s: w.cpu[1],
          'req/cpu_s(A+B)': r.requests / (w.cpu[0] + w.cpu[1]),
          errors,
          wrk_cpu_s: r.generatorCpuS ?? Number.NaN,
          'A_peerLoads/req': (dA.peerLoads ?? Number.NaN) / r.requests,
          A_cacheHits: dA.cacheHits ?? 'n/a',
          B_serverRequests: dB.serverRequests ?? 'n/a',
          B_loads: dB.loads ?? 'n/a',
        },
        baseline: `goal ${GOAL_RPS} req/s`,
        ratio: r.rps / GOAL_RPS,
        goal: '≥ 17.4k req/s (Go groupcache, tuned pool)',
      },
    ];
  } finally {
    await stopAll(nodes.map((x) => x.server));
  }
}

if (isMain(import.meta.url)) await runAlone(run);
