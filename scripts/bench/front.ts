// Issue 7 §1 — front hits. 64 keep-alive connections for 10 s, uniform keys over 1,000 warmed keys, against one
// node of a 3-node cluster; in the same run the Node ceiling (a bare node:http server returning a constant) and
// memcached (-m 64) under memaslap with the same connection count. wrk generates the HTTP load (C, 2 threads,
// keep-alive, Lua picks a uniformly random path per request); server CPU time comes from /proc so the figure
// that is compared — requests per server CPU-second — does not depend on how much CPU the generator took.
import { diffStats, groupStats, hasNode, type NodeHandle, startCluster, warmPaths } from './lib/cluster.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { hasMemcached, memaslapBinary, runMemaslap, startMemcached } from './lib/memcached.js';
import { freePort, type Server, startProcess, stopAll, waitForPort } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk, type WrkResult } from './lib/wrk.js';

const BENCH = 'front';
const GROUP = 'bench';
const KEYS = 1000;
const CONNECTIONS = 64;
const BARE = 'bare node:http';
const GOAL = '≥ 0.95× bare per CPU-s';

function keyPaths(): string[] {
  return Array.from({ length: KEYS }, (_, i) => `/${GROUP}/key-${String(i).padStart(4, '0')}`);
}

function httpRow(
  name: string,
  r: WrkResult,
  cpuS: number,
  extra: Record<string, number | string> = {},
): BenchRow {
  return {
    bench: BENCH,
    case: name,
    metrics: {
      'req/s': r.rps,
      p50_ms: r.p50,
      p99_ms: r.p99,
      cpu_s: cpuS,
      'req/cpu_s': r.requests / cpuS,
      errors: r.errors.connect + r.errors.read + r.errors.write + r.errors.status + r.errors.timeout,
      ...extra,
    },
  };
}

async function loadHttp(servers: Server[], port: number, seconds: number, warmS: number) {
  // A short unmeasured run first, so JIT warm-up and connection setup are not in the figures.
  await runWrk({ port, paths: keyPaths(), connections: CONNECTIONS, durationS: warmS });
  return withCpu(servers, () =>
    runWrk({ port, paths: keyPaths(), connections: CONNECTIONS, durationS: seconds }),
  );
}

async function bare(seconds: number, warmS: number): Promise<BenchRow> {
  const port = await freePort();
  const s = startProcess('bare-http', process.execPath, ['scripts/bench/lib/bare-http.mjs', String(port)]);
  try {
    await waitForPort(port, 5000, s);
    const w = await loadHttp([s], port, seconds, warmS);
    return httpRow(BARE, w.result, w.cpu[0]);
  } finally {
    await s.stop();
  }
}

async function standIn(seconds: number, warmS: number): Promise<BenchRow> {
  const port = await freePort();
  const s = startProcess('standin-http', process.execPath, [
    'scripts/bench/lib/standin-http.mjs',
    String(port),
  ]);
  try {
    await waitForPort(port, 5000, s);
    const w = await loadHttp([s], port, seconds, warmS);
    return httpRow('stand-in Map server (no dist/cli.js yet)', w.result, w.cpu[0]);
  } finally {
    await s.stop();
  }
}

async function gossipcache(seconds: number, warmS: number): Promise<BenchRow> {
  let nodes: NodeHandle[] = [];
  try {
    nodes = await startCluster(3, { group: GROUP, origin: 'demo:0ms', cacheBytes: '64MiB' });
    const a = nodes[0];
    // Warm: every key loaded by its owner and, for keys other nodes own, fetched into A's hot cache.
    for (let round = 0; round < 2; round++) await warmPaths(a.httpPort, keyPaths());
    await runWrk({ port: a.httpPort, paths: keyPaths(), connections: CONNECTIONS, durationS: warmS });
    const before = await groupStats(a.httpPort, GROUP);
    const w = await withCpu(
      nodes.map((x) => x.server),
      () => runWrk({ port: a.httpPort, paths: keyPaths(), connections: CONNECTIONS, durationS: seconds }),
    );
    const d = diffStats(await groupStats(a.httpPort, GROUP), before);
    const clusterCpu = w.cpu.reduce((s, c) => s + c, 0);
    return httpRow('gossipcache node A of 3', w.result, w.cpu[0], {
      cluster_cpu_s: clusterCpu,
      'hit%': d.gets ? (100 * (d.cacheHits ?? 0)) / d.gets : 'n/a',
      peerLoads: d.peerLoads ?? 'n/a',
    });
  } finally {
    await stopAll(nodes.map((x) => x.server));
  }
}

async function memcached(seconds: number): Promise<BenchRow> {
  const { server, port } = await startMemcached(64, 2);
  try {
    const w = await withCpu([server], () =>
      runMemaslap({ port, connections: CONNECTIONS, durationS: seconds }),
    );
    const r = w.result;
    return {
      bench: BENCH,
      case: 'memcached -m 64 -t 2 (memaslap)',
      metrics: {
        'req/s': r.rps,
        p50_ms: r.p50,
        p99_ms: r.p99,
        cpu_s: w.cpu[0],
        'req/cpu_s': r.ops / w.cpu[0],
        get_misses: r.getMisses,
        note: 'p50/p99 = log2-bucket upper bounds',
      },
    };
  } finally {
    await server.stop();
  }
}

function perCpu(r: BenchRow): number {
  return Number(r.metrics['req/cpu_s']);
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const seconds = quick ? 4 : 10;
  const warmS = quick ? 1 : 2;
  if (!hasWrk()) {
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'wrk not found (apt-get install wrk)' } }];
  }
  const rows: BenchRow[] = [];
  const base = await bare(seconds, warmS);
  rows.push(base);
  let subject: BenchRow | undefined;
  if (hasNode() && process.env.BENCH_STAND_IN !== '1') {
    try {
      subject = await gossipcache(seconds, warmS);
    } catch (e) {
      const msg = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);
      rows.push({ bench: BENCH, case: 'gossipcache ERROR', metrics: { error: msg } });
    }
  }
  subject ??= await standIn(seconds, warmS);
  rows.push({ ...subject, baseline: BARE, ratio: perCpu(subject) / perCpu(base), goal: GOAL });
  if (!hasMemcached() || !memaslapBinary()) {
    rows.push({
      bench: BENCH,
      case: 'memcached SKIPPED',
      metrics: { reason: 'memcached or memaslap missing (apt-get install memcached libmemcached-tools)' },
    });
  } else {
    const m = await memcached(seconds);
    rows.push({ ...m, baseline: BARE, ratio: perCpu(m) / perCpu(base) });
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
