// Front hits. 64 keep-alive connections, 10 s, uniform keys over 1,000 warmed keys, against one
// node of a 3-node cluster; in the same run the Node ceiling (a bare node:http server returning a constant) and
// memcached (-m 64) under memaslap with the same connection count. wrk generates the HTTP load (C, 2 threads,
// keep-alive, Lua picks a uniformly random path per request); server CPU time comes from /proc so the figure
// that is compared — requests per server CPU-second — does not depend on how much CPU the generator took.
// Go groupcache's own node (scripts/bench/go-groupcache, net/http, warm cache) is a third subject when Go is
// installed. The subjects are measured in alternating 2 s slices (bare, node, go, go, node, bare, ...) so a
// change in the box's speed hits all alike; their rows sum the slices (latencies: mean of slices).

import { diffStats, groupStats, hasNode, type NodeHandle, startCluster, warmPaths } from './lib/cluster.js';
import { goGroupcache, startGoNode } from './lib/go-groupcache.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { hasMemcached, memaslapBinary, runMemaslap, startMemcached } from './lib/memcached.js';
import { type Server, startLibServer, stopAll } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk, type WrkResult, wrkErrors } from './lib/wrk.js';

const BENCH = 'front';
const GROUP = 'bench';
const KEYS = 1000;
const CONNECTIONS = 64;
const BARE = 'bare node:http';
const GO = 'Go groupcache node (net/http front, warm main cache)';
const GOAL = '≥ 0.95× bare per CPU-s';

const paths = Array.from({ length: KEYS }, (_, i) => `/${GROUP}/key-${String(i).padStart(4, '0')}`);

/** Something wrk can load: `servers[0]` is the one whose CPU is "the server's"; all are summed as cluster CPU. */
interface Subject {
  name: string;
  port: number;
  servers: Server[];
  slices: Array<{ r: WrkResult; cpu: number[]; sys: number[] }>;
  /** Extra metrics read around the measured slices (e.g. the node's hit ratio). */
  before?: () => Promise<Record<string, number>>;
  after?: (before: Record<string, number>) => Promise<Record<string, number | string>>;
}

async function startBare(): Promise<Subject> {
  const { server, port } = await startLibServer('bare-http');
  return { name: BARE, port, servers: [server], slices: [] };
}

/** Go groupcache's node (scripts/bench/go-groupcache), one node, every key warm: net/http + groupcache hits. */
async function startGo(): Promise<Subject | string> {
  const { bin, reason } = goGroupcache();
  if (!bin) return reason ?? 'unavailable';
  const { server, port } = await startGoNode(bin, paths);
  return { name: GO, port, servers: [server], slices: [] };
}

async function startStandIn(): Promise<Subject> {
  const { server, port } = await startLibServer('standin-http');
  return { name: 'stand-in Map server (no gossipcache node)', port, servers: [server], slices: [] };
}

async function startGossipcache(
  name = 'gossipcache node A of 3',
  cli?: string,
  nodeArgs?: string[],
): Promise<{ subject: Subject; nodes: NodeHandle[] }> {
  const nodes = await startCluster(3, {
    group: GROUP,
    origin: 'demo:0ms',
    cacheBytes: '64MiB',
    cli,
    nodeArgs,
  });
  const a = nodes[0];
  try {
    // Every key loaded by its owner and, for keys other nodes own, fetched into A's hot cache.
    for (let round = 0; round < 2; round++) await warmPaths(a.httpPort, paths);
  } catch (e) {
    await stopAll(nodes.map((x) => x.server));
    throw e;
  }
  const subject: Subject = {
    name,
    port: a.httpPort,
    servers: nodes.map((x) => x.server),
    slices: [],
    before: () => groupStats(a.httpPort, GROUP),
    after: async (before) => {
      const d = diffStats(await groupStats(a.httpPort, GROUP), before);
      return {
        'hit%': d.gets ? (100 * (d.cacheHits ?? 0)) / d.gets : 'n/a',
        peerLoads: d.peerLoads ?? 'n/a',
      };
    },
  };
  return { subject, nodes };
}

/** Seconds per measured slice (wrk takes whole seconds). */
const SLICE_S = 2;

async function measureSlice(s: Subject, seconds: number): Promise<void> {
  const w = await withCpu(s.servers, () =>
    runWrk({ port: s.port, paths, connections: CONNECTIONS, durationS: seconds }),
  );
  s.slices.push({ r: w.result, cpu: w.cpu, sys: w.sys });
}

async function rowOf(s: Subject, before: Record<string, number> | undefined): Promise<BenchRow> {
  const sum = (f: (h: Subject['slices'][number]) => number) => s.slices.reduce((acc, h) => acc + f(h), 0);
  const mean = (f: (h: Subject['slices'][number]) => number) => sum(f) / s.slices.length;
  const requests = sum((h) => h.r.requests);
  const cpu = sum((h) => h.cpu[0]);
  const metrics: Record<string, number | string> = {
    'req/s': requests / sum((h) => h.r.durationS),
    p50_ms: mean((h) => h.r.p50),
    p99_ms: mean((h) => h.r.p99),
    cpu_s: cpu,
    'sys%': (100 * sum((h) => h.sys[0])) / cpu,
    'req/cpu_s': requests / cpu,
    errors: sum((h) => wrkErrors(h.r)),
    wrk_cpu_s: sum((h) => h.r.generatorCpuS ?? Number.NaN),
  };
  if (s.servers.length > 1) metrics.cluster_cpu_s = sum((h) => h.cpu.reduce((a, c) => a + c, 0));
  if (s.after && before) Object.assign(metrics, await s.after(before));
  return { bench: BENCH, case: s.name, metrics };
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
        memaslap_cpu_s: r.generatorCpuS ?? Number.NaN,
        note: 'p50/p99 = log2-bucket upper bounds',
      },
    };
  } finally {
    await server.stop();
  }
}

const perCpu = (r: BenchRow) => Number(r.metrics['req/cpu_s']);

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!hasWrk()) {
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'wrk not found (apt-get install wrk)' } }];
  }
  const seconds = quick ? 4 : 10;
  const warmS = quick ? 1 : 2;
  const rows: BenchRow[] = [];
  const servers: Server[] = [];
  try {
    const bare = await startBare();
    servers.push(...bare.servers);
    let subject: Subject | undefined;
    if (hasNode() && process.env.BENCH_STAND_IN !== '1') {
      try {
        subject = (await startGossipcache()).subject;
      } catch (e) {
        const msg = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').slice(0, 300);
        rows.push({ bench: BENCH, case: 'gossipcache ERROR', metrics: { error: msg } });
      }
    }
    subject ??= await startStandIn();
    servers.push(...subject.servers);
    const go = await startGo();
    if (typeof go !== 'string') servers.push(...go.servers);
    const subjects = typeof go === 'string' ? [bare, subject] : [bare, subject, go];
    // FRONT_BASELINE_DIST=<dir>: a build of another commit as one more subject, in the same slices.
    const baselineDist = process.env.FRONT_BASELINE_DIST;
    let baseline: Subject | undefined;
    if (baselineDist && subject.before) {
      // FRONT_BASELINE_NODE_ARGS="--flag ...": node flags for the baseline's processes only (e.g. the same
      // build with and without a V8 flag: FRONT_BASELINE_DIST=dist).
      const nodeArgs = process.env.FRONT_BASELINE_NODE_ARGS?.split(' ').filter(Boolean);
      const label = `baseline node A of 3 (${baselineDist}${nodeArgs ? ` ${nodeArgs.join(' ')}` : ''})`;
      baseline = (await startGossipcache(label, `${baselineDist}/cli.js`, nodeArgs)).subject;
      servers.push(...baseline.servers);
      subjects.push(baseline);
    }
    // Unmeasured runs first, so JIT warm-up and connection setup are not in the figures.
    for (const s of subjects) {
      await runWrk({ port: s.port, paths, connections: CONNECTIONS, durationS: warmS });
    }
    const before = await subject.before?.();
    const baselineBefore = await baseline?.before?.();
    // Short alternating slices, not one long run each: this box's speed drifts by up to 2x within a
    // minute, and a drift that lands inside one subject's only run skews the ratio (seen: 0.78-0.98).
    const rounds = seconds / SLICE_S;
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? subjects : [...subjects].reverse();
      for (const s of order) await measureSlice(s, SLICE_S);
    }
    const base = await rowOf(bare, undefined);
    const subj = await rowOf(subject, before);
    const g = typeof go === 'string' ? undefined : await rowOf(go, undefined);
    if (g) subj.metrics.per_cpu_vs_go = perCpu(subj) / perCpu(g);
    if (baseline) {
      const b = await rowOf(baseline, baselineBefore);
      subj.metrics.per_cpu_vs_baseline = perCpu(subj) / perCpu(b);
      rows.push({ ...b, baseline: BARE, ratio: perCpu(b) / perCpu(base) });
    }
    rows.push(base, { ...subj, baseline: BARE, ratio: perCpu(subj) / perCpu(base), goal: GOAL });
    if (g) rows.push({ ...g, baseline: BARE, ratio: perCpu(g) / perCpu(base) });
    else rows.push({ bench: BENCH, case: `${GO} SKIPPED`, metrics: { reason: go as string } });
    await stopAll(servers);
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
  } finally {
    await stopAll(servers);
  }
}

if (isMain(import.meta.url)) await runAlone(run);
