// The memcached front. Cache hits per server CPU-second through gossipcache's memcached front
// (node A of a 3-node cluster, every key warm on A) against memcached itself (`memcached -t 2 -m 64`, the same
// 1,000 keys and values set beforehand), with the same generator and keys, in alternating 2 s slices (2 rounds,
// 1 with --quick; so a
// drift in this shared box's speed hits both alike): not pipelined (64 connections, one get in flight each),
// pipelined (16 connections × 32 gets in flight), and a 100-key get against 100 single gets (keys per
// server CPU-second). A bare Node net server answering a constant (lib/bare-memcached.mjs) is the Node
// ceiling for single-key gets. Go groupcache's HTTP front (wrk, its own protocol; measured right after, in as many
// slices, not interleaved) is a third subject when it can be built (see lib/go-groupcache.ts). The generator is lib/mcgen.c (why not memaslap: see its header), built
// with the system C compiler into a temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../test/support/ports.js';
import { hasNode, type NodeHandle, startCluster, warmPaths } from './lib/cluster.js';
import { goGroupcache, startGoNode } from './lib/go-groupcache.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { hasMemcached, MemcachedClient, startMemcached } from './lib/memcached.js';
import { hasTool, runMeasured, type Server, startLibServer, stopAll, waitForPort } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';
import { hasWrk, runWrk } from './lib/wrk.js';

const BENCH = 'memcached';
const GROUP = 'bench';
const KEYS = 1000;
const SLICE_S = 2;
const keyOf = (i: number) => `key-${String(i).padStart(4, '0')}`;
/** What the demo origin answers, so memcached holds the same bytes. */
const demoValue = (k: string) => `Value of ${k}`;

interface Load {
  name: string;
  conns: number;
  depth: number;
  keysPerGet: number;
}
const BARE = 'bare Node net server (constant reply, the Node ceiling)';
const LOADS: Load[] = [
  { name: 'get, not pipelined (64 conns × 1)', conns: 64, depth: 1, keysPerGet: 1 },
  { name: 'get, pipelined (16 conns × 32)', conns: 16, depth: 32, keysPerGet: 1 },
  { name: 'get of 100 keys (16 conns × 1)', conns: 16, depth: 1, keysPerGet: 100 },
];

interface GenResult {
  requests: number;
  values: number;
  errors: number;
  seconds: number;
  genCpuS: number;
}

function buildGenerator(): { bin?: string; reason?: string } {
  const cc = ['cc', 'gcc', 'clang'].find((c) => hasTool(c));
  if (!cc) return { reason: 'no C compiler (apt-get install gcc) for lib/mcgen.c' };
  const dir = mkdtempSync(join(tmpdir(), 'gc-bench-mcgen-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'mcgen');
  execFileSync(cc, ['-O2', '-o', bin, new URL('./lib/mcgen.c', import.meta.url).pathname], { stdio: 'pipe' });
  return { bin };
}

async function generate(bin: string, port: number, load: Load, seconds: number): Promise<GenResult> {
  const args = [port, load.conns, load.depth, seconds, KEYS, load.keysPerGet].map(String);
  const { stdout, cpuS } = await runMeasured(bin, args, { timeoutMs: (seconds + 30) * 1000 });
  const m = /requests=(\d+) values=(\d+) errors=(\d+) seconds=([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`mcgen printed: ${stdout}`);
  return { requests: +m[1], values: +m[2], errors: +m[3], seconds: +m[4], genCpuS: cpuS };
}

interface Subject {
  name: string;
  port: number;
  servers: Server[];
  /** Per load name: the slices measured. */
  slices: Map<string, Array<{ g: GenResult; cpu: number }>>;
}

async function startGossipcache(): Promise<{ subject: Subject; nodes: NodeHandle[] }> {
  const mcPorts = [await freePort(), await freePort(), await freePort()];
  const nodes = await startCluster(3, {
    group: GROUP,
    origin: 'demo:0ms',
    cacheBytes: '64MiB',
    perNode: mcPorts.map((p) => ({ env: { GOSSIPCACHE_MEMCACHED_ADDR: `127.0.0.1:${p}` } })),
  });
  try {
    const paths = Array.from({ length: KEYS }, (_, i) => `/${GROUP}/${keyOf(i)}`);
    // Loaded by their owners, then (second round) mirrored in A's hot cache.
    for (let round = 0; round < 2; round++) await warmPaths(nodes[0].httpPort, paths);
    await waitForPort(mcPorts[0], 5000);
  } catch (e) {
    await stopAll(nodes.map((x) => x.server));
    throw e;
  }
  return {
    subject: {
      name: 'gossipcache memcached front, node A of 3',
      port: mcPorts[0],
      servers: nodes.map((x) => x.server),
      slices: new Map(),
    },
    nodes,
  };
}

async function startBare(): Promise<Subject> {
  const { server, port } = await startLibServer('bare-memcached');
  return { name: BARE, port, servers: [server], slices: new Map() };
}

async function startMemcachedSubject(): Promise<Subject> {
  const { server, port } = await startMemcached(64, 2);
  const c = await MemcachedClient.connect(port);
  try {
    for (let i = 0; i < KEYS; i++) {
      await c.setMany(1, () => keyOf(i), Buffer.from(demoValue(keyOf(i))));
    }
    await c.stats(); // replies are in order: every set has been applied
  } finally {
    c.close();
  }
  return { name: 'memcached -t 2 -m 64', port, servers: [server], slices: new Map() };
}

function rowOf(s: Subject, load: Load): BenchRow {
  const sl = s.slices.get(load.name) ?? [];
  const sum = (f: (x: { g: GenResult; cpu: number }) => number) => sl.reduce((a, x) => a + f(x), 0);
  const requests = sum((x) => x.g.requests);
  const values = sum((x) => x.g.values);
  const cpu = sum((x) => x.cpu);
  const seconds = sum((x) => x.g.seconds);
  return {
    bench: BENCH,
    case: `${s.name}: ${load.name}`,
    metrics: {
      'req/s': requests / seconds,
      'keys/s': values / seconds,
      cpu_s: cpu,
      'req/cpu_s': requests / cpu,
      'keys/cpu_s': values / cpu,
      'hit%': (100 * values) / (requests * load.keysPerGet),
      errors: sum((x) => x.g.errors),
      gen_cpu_s: sum((x) => x.g.genCpuS),
    },
  };
}

const perCpu = (r: BenchRow, f = 'keys/cpu_s') => Number(r.metrics[f]);

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!hasNode())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/cli.js missing (npm run build)' } }];
  if (!hasMemcached()) {
    return [
      {
        bench: BENCH,
        case: 'SKIPPED',
        metrics: { reason: 'memcached not found (apt-get install memcached)' },
      },
    ];
  }
  const gen = buildGenerator();
  if (!gen.bin) return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: gen.reason ?? '?' } }];
  const rounds = quick ? 1 : 2;
  const rows: BenchRow[] = [];
  const servers: Server[] = [];
  try {
    const mc = await startMemcachedSubject();
    servers.push(...mc.servers);
    const { subject: gc } = await startGossipcache();
    servers.push(...gc.servers);
    const bare = await startBare();
    servers.push(...bare.servers);
    for (const load of LOADS) {
      // The bare server answers one fixed reply per line: a ceiling for single-key gets only.
      const subjects = load.keysPerGet === 1 ? [mc, bare, gc] : [mc, gc];
      // Unmeasured first (JIT warm-up, connections), once per subject.
      if (load === LOADS[0]) for (const s of subjects) await generate(gen.bin, s.port, load, 1);
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? subjects : [...subjects].reverse();
        for (const s of order) {
          const w = await withCpu([s.servers[0]], () => generate(gen.bin!, s.port, load, SLICE_S));
          const list = s.slices.get(load.name) ?? [];
          list.push({ g: w.result, cpu: w.cpu[0] });
          s.slices.set(load.name, list);
        }
      }
      const base = rowOf(mc, load);
      const subj = rowOf(gc, load);
      rows.push(base);
      if (load.keysPerGet === 1) {
        const b = rowOf(bare, load);
        rows.push({ ...b, baseline: base.case, ratio: perCpu(b) / perCpu(base) });
        subj.metrics.per_cpu_vs_bare = perCpu(subj) / perCpu(b);
      }
      rows.push({
        ...subj,
        baseline: base.case,
        ratio: perCpu(subj) / perCpu(base),
        goal: load.keysPerGet === 1 ? '≥ 0.6× memcached per CPU-s' : undefined,
      });
    }
    // A 100-key get against 100 single gets, on gossipcache: server CPU per key.
    const single = rowOf(gc, LOADS[0]);
    const multi = rowOf(gc, LOADS[2]);
    rows.push({
      bench: BENCH,
      case: 'gossipcache: one get of 100 keys vs 100 single gets (keys per CPU-s)',
      metrics: { 'keys/cpu_s': perCpu(multi), 'single keys/cpu_s': perCpu(single) },
      baseline: 'single gets, not pipelined',
      ratio: perCpu(multi) / perCpu(single),
      goal: 'well under the cost of 100 gets',
    });
    rows.push(...(await goRows(rounds, gc, rows)));
    return rows;
  } finally {
    await stopAll(servers);
  }
}

/**
 * Go groupcache's HTTP front and a bare node:http server, both under wrk (64 connections, the same keys), in
 * alternating slices after the memcached rows. Without Go the bare node:http row still gives an estimate:
 * Go's front measured 1.37× bare node:http per CPU-second on this box (docs/performance.md, 13:36 UTC).
 */
async function goRows(rounds: number, gc: Subject, rows: BenchRow[]): Promise<BenchRow[]> {
  if (!hasWrk()) {
    return [
      {
        bench: BENCH,
        case: 'HTTP baselines SKIPPED',
        metrics: { reason: 'wrk not found (apt-get install wrk)' },
      },
    ];
  }
  const out: BenchRow[] = [];
  const { bin, reason } = goGroupcache();
  const paths = Array.from({ length: KEYS }, (_, i) => `/${GROUP}/${keyOf(i)}`);
  const http: Array<{ name: string; port: number; server: Server; requests: number; cpu: number }> = [];
  try {
    const bare = await startLibServer('bare-http');
    http.push({
      name: 'bare node:http (wrk, 64 conns)',
      port: bare.port,
      server: bare.server,
      requests: 0,
      cpu: 0,
    });
    if (bin) {
      const go = await startGoNode(bin, paths);
      http.push({
        name: 'Go groupcache HTTP front (wrk, 64 conns)',
        port: go.port,
        server: go.server,
        requests: 0,
        cpu: 0,
      });
    } else {
      out.push({
        bench: BENCH,
        case: 'Go groupcache HTTP front SKIPPED',
        metrics: { reason: reason ?? '?' },
      });
    }
    for (const h of http) await runWrk({ port: h.port, paths, connections: 64, durationS: 1 });
    for (let round = 0; round < rounds; round++) {
      for (const h of round % 2 === 0 ? http : [...http].reverse()) {
        const w = await withCpu([h.server], () =>
          runWrk({ port: h.port, paths, connections: 64, durationS: SLICE_S }),
        );
        h.requests += w.result.requests;
        h.cpu += w.cpu[0];
      }
    }
    const ours = rows.find((r) => r.case === `${gc.name}: ${LOADS[0].name}`);
    const oursPerCpu = ours ? perCpu(ours, 'req/cpu_s') : Number.NaN;
    for (const h of http)
      out.push({ bench: BENCH, case: h.name, metrics: { 'req/cpu_s': h.requests / h.cpu, cpu_s: h.cpu } });
    const go = http.find((h) => h.name.startsWith('Go'));
    const bareHttp = http[0].requests / http[0].cpu;
    out.push({
      bench: BENCH,
      case: go
        ? 'memcached front vs Go groupcache HTTP front (hits per CPU-s, not pipelined)'
        : 'memcached front vs Go groupcache HTTP front, ESTIMATED as 1.37× bare node:http (no Go here)',
      metrics: { 'ours req/cpu_s': oursPerCpu, 'bare node:http req/cpu_s': bareHttp },
      baseline: go ? 'Go groupcache HTTP front' : '1.37 × bare node:http',
      ratio: oursPerCpu / (go ? go.requests / go.cpu : 1.37 * bareHttp),
      goal: '≥ 1.5× Go groupcache per CPU-s',
    });
    return out;
  } finally {
    await Promise.all(http.map((h) => h.server.stop()));
  }
}

if (isMain(import.meta.url)) await runAlone(run);
