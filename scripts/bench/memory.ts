// Memory. RSS per item for 1M small values (11-byte keys, 32-byte values), 100k of
// 1 KiB and 10k of 64 KiB, each in a fresh gossipcache process (one Group) and in memcached storing the
// same items in the same run (its `stats` and its RSS from /proc). For the 1M case also GC time and the
// longest GC pause during the load and during a server.getCached hit run. Then churn: values of random size
// (1 KB–4 MB) through a Group with a fixed cacheBytes until 10× that went through, RSS against cacheBytes.
// MEMORY_BASELINE_DIST=<dir> (a dist/ built from another commit) runs the gossipcache cases for it too, in
// the same run, so before/after figures share the box's state.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { launcherEnv, launcherNodeArgs } from './lib/launcher.js';
import { isMain, runAlone } from './lib/main.js';
import { hasMemcached, MemcachedClient, startMemcached } from './lib/memcached.js';
import type { ChildConfig, ChurnReport, ItemsReport } from './lib/memory-child.js';
import { itemValue, keyOf } from './lib/memory-data.js';
import { rssBytes } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'memory';
const MEMCACHED = 'memcached';
const MiB = 1024 * 1024;
/** The issue's churn bound: RSS ≤ cacheBytes + this (measured over the process's RSS before loading). */
const CHURN_ALLOWANCE = 64 * MiB;

interface Case {
  label: string;
  items: number;
  valueBytes: number;
  goal?: string;
  hitSeconds?: number;
}

function child<T>(
  cfg: ChildConfig,
  timeoutS: number,
  env?: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    execFile(
      process.execPath,
      [
        ...nodeArgs,
        '--expose-gc',
        '--max-old-space-size=4096',
        '--import',
        'tsx',
        'scripts/bench/lib/memory-child.ts',
        JSON.stringify(cfg),
      ],
      { timeout: Math.round(timeoutS * 1000), maxBuffer: 1 << 20, env: { ...process.env, ...env } },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`memory child: ${err.message}\n${stderr}`))
          : resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as T),
    );
  });
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

async function gossipcache(dist: string, who: string, c: Case, maxLoadS: number): Promise<BenchRow[]> {
  const r = await child<ItemsReport>(
    { dist, mode: 'items', items: c.items, valueBytes: c.valueBytes, maxLoadS, hitSeconds: c.hitSeconds },
    maxLoadS + (c.hitSeconds ?? 0) + 60,
  );
  const n = r.cacheItems;
  const rows: BenchRow[] = [
    {
      bench: BENCH,
      case:
        n < c.items
          ? `${who}, ${c.label}: ${n.toLocaleString('en-US')} items (time budget: not ${c.items.toLocaleString('en-US')})`
          : `${who}, ${c.label}`,
      metrics: {
        items: n,
        rss_MiB: round(r.after.rss / MiB),
        rss_delta_MiB: round((r.after.rss - r.before.rss) / MiB),
        'B/item': round((r.after.rss - r.before.rss) / n, 0),
        'marginal_B/item': r.marginal === undefined ? 'n/a' : round(r.marginal, 0),
        'heap_B/item': round((r.after.heapUsed - r.before.heapUsed) / n, 0),
        // V8's young generation after the load: 16 or 32 MiB moves B/item by ~170 at 100k items (docs/memory.md).
        young_MiB: round((r.after.youngBytes ?? 0) / MiB, 0),
        'stats_B/item': round(r.cacheBytes / n, 0),
        load_s: round(r.loadS, 2),
        load_gc_ms: round(r.loadGc.totalMs, 0),
        load_gc_max_pause_ms: round(r.loadGc.maxMs, 2),
        load_gcs: r.loadGc.count,
        full_gc_ms: round(r.fullGcMs, 1),
      },
    },
  ];
  if (r.hits) {
    const h = r.hits;
    rows.push({
      bench: BENCH,
      case: `${who}, ${c.label}: getCached hits for ${c.hitSeconds} s`,
      metrics: {
        'hits/s': round(h.n / h.s, 0),
        gc_ms: round(h.gc.totalMs, 1),
        gc_max_pause_ms: round(h.gc.maxMs, 2),
        scavenges: h.gc.minor,
        major_gcs: h.gc.major,
        'scavenges/M_hits': round((h.gc.minor * 1e6) / h.n, 2),
      },
      goal: 'GC pauses < 10 ms',
    });
  }
  return rows;
}

async function memcached(c: Case): Promise<BenchRow> {
  const { server, port } = await startMemcached(1024, 2);
  const client = await MemcachedClient.connect(port);
  try {
    const rss0 = rssBytes(server.pid);
    const t0 = performance.now();
    const value = Buffer.from(itemValue(keyOf(0), c.valueBytes));
    const half = c.items >> 1;
    await client.setMany(half, keyOf, value);
    const stHalf = await client.stats(); // replies are in order: this waits for every set
    const rssHalf = rssBytes(server.pid);
    await client.setMany(c.items - half, (i) => keyOf(half + i), value);
    const st = await client.stats();
    const loadS = (performance.now() - t0) / 1000;
    const rss1 = rssBytes(server.pid);
    const n = Number(st.curr_items);
    return {
      bench: BENCH,
      case: `memcached -m 1024, ${c.label}`,
      metrics: {
        items: n,
        rss_MiB: round(rss1 / MiB),
        rss_delta_MiB: round((rss1 - rss0) / MiB),
        'B/item': round((rss1 - rss0) / n, 0),
        'marginal_B/item': round((rss1 - rssHalf) / (n - Number(stHalf.curr_items)), 0),
        'stats_bytes/item': round(Number(st.bytes) / n, 0),
        load_s: round(loadS, 2),
      },
    };
  } finally {
    client.close();
    await server.stop();
  }
}

/**
 * glibc raises its mmap threshold (up to 32 MiB) after freeing a large block, so later values of 1–4 MB come
 * from the heap, whose free holes stay in RSS; a fixed threshold (bin/gossipcache sets it) keeps them mmapped.
 * scripts/bench/allocator.ts compares both ways over several runs, and what the fixed one costs.
 */
const FIXED_MMAP_THRESHOLD = launcherEnv();
/** And the node flags it adds: V8's young generation capped. */
const LAUNCHER_NODE_ARGS = launcherNodeArgs();

async function churn(
  dist: string,
  who: string,
  cacheBytes: number,
  env?: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<BenchRow> {
  const r = await child<ChurnReport>(
    { dist, mode: 'churn', cacheBytes, minBytes: 1000, maxBytes: 4_000_000, factor: 10 },
    120,
    env,
    nodeArgs,
  );
  const over = r.maxRss - r.before.rss - cacheBytes;
  return {
    bench: BENCH,
    case: `${who}, churn: 1 KB–4 MB values, ${round(r.loadedBytes / cacheBytes)}× cacheBytes ${cacheBytes / MiB} MiB${env ? `, MALLOC_MMAP_THRESHOLD_=${env.MALLOC_MMAP_THRESHOLD_}` : ''}${nodeArgs.length > 0 ? `, node ${nodeArgs.join(' ')}` : ''}${env || nodeArgs.length > 0 ? ' (as the gossipcache command starts it)' : ''}`,
    metrics: {
      values: r.values,
      cached_share: round(r.cachedValues / r.values, 2),
      rss_before_MiB: round(r.before.rss / MiB),
      max_rss_MiB: round(r.maxRss / MiB),
      'max_rss_over_cacheBytes_MiB (over before)': round(over / MiB),
      final_rss_MiB: round(r.finalRss / MiB),
      'rss_by_tenth_MiB (over before)': r.samples.map((s) => round((s - r.before.rss) / MiB, 0)).join(' '),
      load_s: round(r.loadS, 2),
      gc_max_pause_ms: round(r.gc.maxMs, 2),
      young_MiB: round(r.youngAfter / MiB, 0),
    },
    goal: `RSS ≤ cacheBytes + ${CHURN_ALLOWANCE / MiB} MiB`,
  };
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const started = performance.now();
  const budgetS = Number(process.env.BENCH_BUDGET_S ?? Number.POSITIVE_INFINITY);
  const left = () => budgetS - (performance.now() - started) / 1000;
  const cases: Case[] = [
    {
      label: `${quick ? '200,000' : '1,000,000'} × 32 B`,
      items: quick ? 200_000 : 1_000_000,
      valueBytes: 32,
      goal: '≤ 2.0× memcached B/item',
      hitSeconds: quick ? 3 : 10,
    },
    {
      label: '100,000 × 1 KiB',
      items: quick ? 50_000 : 100_000,
      valueBytes: 1024,
      goal: '≤ 1.2× memcached B/item',
    },
    {
      label: '10,000 × 64 KiB',
      items: quick ? 5_000 : 10_000,
      valueBytes: 65536,
      goal: 'report (vs memcached)',
    },
  ];
  if (quick) cases[1].label = '50,000 × 1 KiB';
  if (quick) cases[2].label = '5,000 × 64 KiB';
  const subjects: Array<[string, string]> = [['gossipcache Group', 'dist']];
  const baseline = process.env.MEMORY_BASELINE_DIST;
  if (baseline) subjects.push([`baseline Group (${baseline})`, baseline]);
  const rows: BenchRow[] = [];
  if (!existsSync('dist/index.js')) {
    rows.push({ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/index.js missing: npm run build' } });
    return rows;
  }
  for (const [i, c] of cases.entries()) {
    let mc: BenchRow | undefined;
    if (hasMemcached()) {
      mc = await memcached(c);
      rows.push(mc);
    } else if (i === 0) {
      rows.push({
        bench: BENCH,
        case: 'memcached SKIPPED',
        metrics: { reason: 'memcached missing (apt-get install memcached)' },
      });
    }
    for (const [who, dist] of subjects) {
      // What is left of the budget, less room for the later cases (the 1M case is the long one).
      const maxLoadS = Math.max(10, (Number.isFinite(left()) ? left() : 600) - 25 * (cases.length - i) - 30);
      const g = await gossipcache(dist, who, c, maxLoadS);
      if (mc) {
        g[0].baseline = MEMCACHED;
        g[0].ratio = Number(g[0].metrics['B/item']) / Number(mc.metrics['B/item']);
        const m = Number(g[0].metrics['marginal_B/item']) / Number(mc.metrics['marginal_B/item']);
        if (Number.isFinite(m)) g[0].metrics['marginal_vs_memcached'] = round(m, 2);
        g[0].goal = c.goal;
      }
      rows.push(...g);
    }
  }
  for (const [who, dist] of subjects) rows.push(await churn(dist, who, (quick ? 128 : 256) * MiB));
  rows.push(
    await churn('dist', subjects[0][0], (quick ? 128 : 256) * MiB, FIXED_MMAP_THRESHOLD, LAUNCHER_NODE_ARGS),
  );
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
