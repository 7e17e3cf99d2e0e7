// Issue 7 §5 — memory: RSS and bytes per item after caching 1M small values (11-byte keys, 32-byte values) in
// one gossipcache Group, against memcached storing the same 1M items (its `stats` and its RSS from /proc).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isMain, runAlone } from './lib/main.js';
import { hasMemcached, MemcachedClient, startMemcached } from './lib/memcached.js';
import { itemValue, keyOf } from './lib/memory-data.js';
import { rssBytes } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'memory';
const VALUE_BYTES = 32;
const MEMCACHED = 'memcached';

interface ChildReport {
  before: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
  after: { rss: number; heapUsed: number; external: number; arrayBuffers: number };
  loadS: number;
  cacheItems: number;
  cacheBytes: number;
}

async function gossipcache(items: number, maxLoadS: number): Promise<BenchRow> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [
        '--expose-gc',
        '--max-old-space-size=4096',
        '--import',
        'tsx',
        'scripts/bench/lib/memory-child.ts',
        String(items),
        String(VALUE_BYTES),
        String(maxLoadS),
      ],
      { timeout: Math.round((maxLoadS + 60) * 1000), maxBuffer: 1 << 20 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`memory child: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as ChildReport;
  const MiB = 1024 * 1024;
  return {
    bench: BENCH,
    case:
      r.cacheItems < items
        ? `gossipcache Group, ${r.cacheItems.toLocaleString('en-US')} items (time budget: not ${items.toLocaleString('en-US')})`
        : `gossipcache Group, ${items.toLocaleString('en-US')} items`,
    metrics: {
      items: r.cacheItems,
      rss_MiB: r.after.rss / MiB,
      rss_delta_MiB: (r.after.rss - r.before.rss) / MiB,
      'B/item': (r.after.rss - r.before.rss) / r.cacheItems,
      'heap_B/item': (r.after.heapUsed - r.before.heapUsed) / r.cacheItems,
      'accounted_B/item': r.cacheBytes / r.cacheItems,
      load_s: r.loadS,
    },
  };
}

async function memcached(items: number): Promise<BenchRow> {
  const { server, port } = await startMemcached(1024, 2);
  const client = await MemcachedClient.connect(port);
  try {
    const rss0 = rssBytes(server.pid);
    const t0 = performance.now();
    await client.setMany(items, keyOf, Buffer.from(itemValue(keyOf(0), VALUE_BYTES)));
    const st = await client.stats(); // replies are in order: this waits for every set
    const loadS = (performance.now() - t0) / 1000;
    const rss1 = rssBytes(server.pid);
    const n = Number(st.curr_items);
    const MiB = 1024 * 1024;
    return {
      bench: BENCH,
      case: `memcached -m 1024, ${items.toLocaleString('en-US')} sets`,
      metrics: {
        items: n,
        rss_MiB: rss1 / MiB,
        rss_delta_MiB: (rss1 - rss0) / MiB,
        'B/item': (rss1 - rss0) / n,
        'stats_bytes/item': Number(st.bytes) / n,
        load_s: loadS,
      },
    };
  } finally {
    client.close();
    await server.stop();
  }
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const started = performance.now();
  const items = quick ? 200_000 : 1_000_000;
  const rows: BenchRow[] = [];
  let mc: BenchRow | undefined;
  if (hasMemcached()) {
    mc = await memcached(items);
    rows.push(mc);
  } else {
    rows.push({
      bench: BENCH,
      case: 'memcached SKIPPED',
      metrics: { reason: 'memcached missing (apt-get install memcached)' },
    });
  }
  if (!existsSync('dist/index.js')) {
    rows.push({
      bench: BENCH,
      case: 'gossipcache SKIPPED',
      metrics: { reason: 'dist/index.js missing: npm run build' },
    });
    return rows;
  }
  // What is left of the runner's budget (BENCH_BUDGET_S) after memcached, less a margin for start-up and GC.
  const budgetS = Number(process.env.BENCH_BUDGET_S ?? Number.POSITIVE_INFINITY);
  const maxLoadS = Math.max(10, budgetS - (performance.now() - started) / 1000 - 25);
  const g = await gossipcache(items, Number.isFinite(maxLoadS) ? maxLoadS : 600);
  if (mc) {
    g.baseline = MEMCACHED;
    g.ratio = Number(g.metrics['B/item']) / Number(mc.metrics['B/item']);
    g.goal = 'report (RSS B/item vs memcached)';
  }
  rows.push(g);
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
