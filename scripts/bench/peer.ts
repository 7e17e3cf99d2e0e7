// The peer-fetch path. Requests enter node A's HTTP front for keys node B owns, 64 concurrent
// (wrk, 64 keep-alive connections), so each one is a real gRPC fetch from the owner. A runs with a 1-byte cache
// budget: its hot cache (1/8 of the budget) can hold nothing, so it can never answer from a mirror — the bench
// checks that with A's own counters (peerLoads ≈ requests, cacheHits 0). B holds the keys warm.
// Same-run baseline: a bare node:http server making one grpc-js unary call per request to a bare grpc-js server
// (no cache, flight, ring or policy) — what the obvious Node design costs. It is not a ceiling: a unary call
// opens an HTTP/2 stream each time, which gossipcache's multiplexed Fetch stream avoids. When Go is installed,
// Go groupcache (scripts/bench/go-groupcache: two nodes, HTTP peers with a tuned pool, A with a 1-byte cache) is
// a third subject. All are measured in alternating 2 s slices, like front.ts.
import { Ring } from '../../src/ring.js';
import { httpGet } from '../../test/support/http.js';
import { freePort } from '../../test/support/ports.js';
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
import { goGroupcache } from './lib/go-groupcache.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { type Server, startProcess, stopAll, waitForPort } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk, type WrkResult, wrkErrors } from './lib/wrk.js';

const BENCH = 'peer';
const GROUP = 'bench';
const KEYS = 1000;
const CONNECTIONS = 64;
const GOAL_RPS = 17_400;
const BARE = 'bare http → grpc-js unary per request';
const GO = 'Go groupcache (HTTPPool, tuned transport): A front → owner B, 64 conc.';
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

interface Slice {
  r: WrkResult;
  cpu: number[];
  sys: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function combine(slices: Slice[]) {
  const sum = (f: (h: Slice) => number) => slices.reduce((a, h) => a + f(h), 0);
  const requests = sum((h) => h.r.requests);
  const front = sum((h) => h.cpu[0]);
  const owner = sum((h) => h.cpu[1]);
  return {
    requests,
    metrics: {
      'req/s': requests / sum((h) => h.r.durationS),
      'req/s_median_slice': median(slices.map((h) => h.r.requests / h.r.durationS)),
      p50_ms: sum((h) => h.r.p50) / slices.length,
      p99_ms: sum((h) => h.r.p99) / slices.length,
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

/** One system under load: the processes whose CPU is read (front first, then owner), the port and paths wrk hits. */
interface Subject {
  servers: Server[];
  port: number;
  paths: string[];
  slices: Slice[];
}

/**
 * Go groupcache: node A (a 1-byte cache, so every request is a fetch from its owner) and node B, peers over
 * groupcache's HTTP protocol with a tuned pool; returns the pair, or why it could not run.
 */
async function startGoPair(): Promise<{ a: Server; b: Server; port: number; paths: string[] } | string> {
  const { bin, reason } = goGroupcache();
  if (!bin) return reason ?? 'unavailable';
  const [pa, pb, fa, fb] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const peers = `http://127.0.0.1:${pa},http://127.0.0.1:${pb}`;
  const node = (name: string, peer: number, front: number, cacheBytes: string) =>
    startProcess(name, bin, [
      `-self=http://127.0.0.1:${peer}`,
      `-peers=${peers}`,
      `-peer-listen=127.0.0.1:${peer}`,
      `-front=127.0.0.1:${front}`,
      `-cache-bytes=${cacheBytes}`,
    ]);
  const a = node('go-a', pa, fa, '1');
  const b = node('go-b', pb, fb, String(256 << 20));
  await waitForPort(fa, 10000, a);
  await waitForPort(fb, 10000, b);
  const r = await httpGet(`http://127.0.0.1:${fa}/_remote_keys?n=${KEYS}&prefix=peer-`);
  const paths = r.text
    .split('\n')
    .filter(Boolean)
    .map((k) => `/${GROUP}/${k}`);
  await warmPaths(fb, paths); // loads each key on its owner
  return { a, b, port: fa, paths };
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
    const goPair = await startGoPair();
    if (typeof goPair !== 'string') servers.push(goPair.a, goPair.b);
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
    const naive: Subject = { servers: [bare.http, bare.grpc], port: bare.port, paths, slices: [] };
    const ours: Subject = { servers: [a.server, b.server], port: a.httpPort, paths, slices: [] };
    const go: Subject | undefined =
      typeof goPair === 'string'
        ? undefined
        : { servers: [goPair.a, goPair.b], port: goPair.port, paths: goPair.paths, slices: [] };
    const subjects = go ? [naive, ours, go] : [naive, ours];
    for (const s of subjects) {
      await runWrk({ port: s.port, paths: s.paths, connections: CONNECTIONS, durationS: warmS });
    }
    const beforeA = await groupStats(a.httpPort, GROUP);
    const beforeB = await groupStats(b.httpPort, GROUP);
    const goStats = async () => (go ? ((await getJson(go.port, '/_stats')) as Record<string, number>) : {});
    const beforeGo = await goStats();
    // Short alternating slices (see front.ts): the box's speed drifts within a minute.
    for (let round = 0; round < seconds / SLICE_S; round++) {
      for (const s of round % 2 === 0 ? subjects : [...subjects].reverse()) {
        const w = await withCpu(s.servers, () =>
          runWrk({ port: s.port, paths: s.paths, connections: CONNECTIONS, durationS: SLICE_S }),
        );
        s.slices.push({ r: w.result, cpu: w.cpu, sys: w.sys });
      }
    }
    const dA = diffStats(await groupStats(a.httpPort, GROUP), beforeA);
    const dB = diffStats(await groupStats(b.httpPort, GROUP), beforeB);
    const base = combine(naive.slices);
    const subj = combine(ours.slices);
    const perCpu = (m: Record<string, number | string>) => Number(m['req/cpu_s']);
    const rps = (m: Record<string, number | string>) => Number(m['req/s']);
    const rows: BenchRow[] = [{ bench: BENCH, case: `${BARE} (naive Node baseline)`, metrics: base.metrics }];
    let goMetrics: Record<string, number | string> | undefined;
    if (go) {
      const goRun = combine(go.slices);
      const dGo = diffStats(await goStats(), beforeGo);
      goMetrics = { ...goRun.metrics, 'A_peerLoads/req': (dGo.peerLoads ?? Number.NaN) / goRun.requests };
      rows.push({ bench: BENCH, case: GO, metrics: goMetrics });
    } else {
      rows.push({ bench: BENCH, case: `${GO} SKIPPED`, metrics: { reason: goPair as string } });
    }
    rows.push({
      bench: BENCH,
      case: 'A front → gRPC → owner B, 64 conc.',
      metrics: {
        ...subj.metrics,
        'vs_goal_17.4k': rps(subj.metrics) / GOAL_RPS,
        ...(goMetrics
          ? {
              'req/s_vs_go': rps(subj.metrics) / rps(goMetrics),
              per_cpu_vs_go: perCpu(subj.metrics) / perCpu(goMetrics),
            }
          : {}),
        'A_peerLoads/req': (dA.peerLoads ?? Number.NaN) / subj.requests,
        A_cacheHits: dA.cacheHits ?? 'n/a',
        B_serverRequests: dB.serverRequests ?? 'n/a',
        B_loads: dB.loads ?? 'n/a',
      },
      baseline: BARE,
      ratio: perCpu(subj.metrics) / perCpu(base.metrics),
      goal: '≥ 17.4k req/s (Go groupcache, tuned pool)',
    });
    return rows;
  } finally {
    await stopAll([...servers, ...nodes.map((x) => x.server)]);
  }
}

if (isMain(import.meta.url)) await runAlone(run);
