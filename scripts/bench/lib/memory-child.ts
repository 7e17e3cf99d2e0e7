// Child of memory.ts: one fresh process, one Group, one case. Prints one JSON line. Run with --expose-gc.
//   items: N values of V bytes cached through the ordinary load path (get → miss → getter → main cache),
//          RSS/heap before and after, GC pauses during the load; then (hitSeconds > 0) a server.getCached run over
//          random loaded keys with its GC pauses and rate.
//   churn: values of random size (minBytes..maxBytes) under a cacheBytes budget until `factor` × the
//          budget went through; RSS sampled after every value.
// Usage: node --expose-gc --import tsx scripts/bench/lib/memory-child.ts '<json ChildConfig>' (after npm run build)

import { resolve } from 'node:path';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { itemValue, keyOf } from './memory-data.js';

export interface ChildConfig {
  /** The compiled package to load (dist/ of this tree, or of a baseline build). */
  dist: string;
  mode: 'items' | 'churn';
  items?: number;
  valueBytes?: number;
  /** Stop loading (and say so) after this long. */
  maxLoadS?: number;
  hitSeconds?: number;
  cacheBytes?: number;
  minBytes?: number;
  maxBytes?: number;
  factor?: number;
}

export interface GcSummary {
  count: number;
  totalMs: number;
  maxMs: number;
  /** Young-generation collections (scavenges): a proxy for how much was allocated. */
  minor: number;
  major: number;
}

export interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** V8's young generation (new space, both semispaces), committed: a fixed cost that grows under loads. */
  youngBytes: number;
}

export interface ItemsReport {
  before: Mem;
  after: Mem;
  loadS: number;
  cacheItems: number;
  cacheBytes: number;
  loadGc: GcSummary;
  /** A forced full collection with everything loaded (what one non-incremental mark-compact costs). */
  fullGcMs: number;
  /** RSS bytes per item between half and all of the items (settled both times). */
  marginal?: number;
  hits?: { n: number; s: number; gc: GcSummary; rssAfter: number };
}

export interface ChurnReport {
  before: Mem;
  cacheBytes: number;
  loadedBytes: number;
  values: number;
  /** Of them, how many were cached (the others were returned to the caller but not kept). */
  cachedValues: number;
  /** RSS (bytes) after every tenth of the load. */
  samples: number[];
  maxRss: number;
  finalRss: number;
  /** V8's young generation at the end (committed): part of what RSS grew by. */
  youngAfter: number;
  loadS: number;
  gc: GcSummary;
}

const cfg = JSON.parse(process.argv[2]) as ChildConfig;
// The compiled package (npm run bench builds it first), not the TypeScript sources through tsx: tsx's
// transform adds helpers to the hot path and its loader thread to the RSS.
const { Group, GroupRegistry } = (await import(
  pathToFileURL(resolve(cfg.dist, 'index.js')).href
)) as typeof import('../../../src/index.js');

const gc = (globalThis as { gc?: () => void }).gc;

/** How long the last settle()'s first forced collection took: a full, non-incremental mark-compact. */
let lastFullGcMs = 0;

/** V8's young generation (new space), committed bytes. */
function youngBytes(): number {
  return getHeapSpaceStatistics().find((sp) => sp.space_name === 'new_space')?.space_size ?? 0;
}

function settle(): Mem {
  const t = performance.now();
  gc?.();
  lastFullGcMs = performance.now() - t;
  gc?.();
  const m = process.memoryUsage();
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    youngBytes: youngBytes(),
  };
}

/**
 * Collects 'gc' performance entries that started between start() and stop(). Entries arrive late (the
 * observer runs on a later tick), so they are picked by start time: the forced collections of settle()
 * just before a start() must not count.
 */
function gcWatch(): { start(): void; stop(): Promise<GcSummary>; exclude(t0: number, t1: number): void } {
  let s: GcSummary = { count: 0, totalMs: 0, maxMs: 0, minor: 0, major: 0 };
  let from = Number.POSITIVE_INFINITY;
  let to = Number.POSITIVE_INFINITY;
  const excluded: Array<[number, number]> = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.startTime < from || e.startTime > to) continue;
      if (excluded.some(([a, b]) => e.startTime >= a && e.startTime <= b)) continue;
      s.count++;
      s.totalMs += e.duration;
      if (e.duration > s.maxMs) s.maxMs = e.duration;
      const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      // perf_hooks constants: NODE_PERFORMANCE_GC_MINOR = 1, MAJOR = 4 (INCREMENTAL 8, WEAKCB 16)
      if (kind === 1) s.minor++;
      else s.major++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    start() {
      s = { count: 0, totalMs: 0, maxMs: 0, minor: 0, major: 0 };
      from = performance.now();
      to = Number.POSITIVE_INFINITY;
    },
    /** Collections that start in [t0, t1] are not counted (the forced ones of a settle() mid-run). */
    exclude(t0: number, t1: number) {
      excluded.push([t0, t1]);
    },
    async stop() {
      to = performance.now();
      // Entries are delivered asynchronously: let the observer run before reading.
      await new Promise((r) => setTimeout(r, 100));
      from = Number.POSITIVE_INFINITY;
      return s;
    },
  };
}

const watch = gcWatch();

async function items(): Promise<ItemsReport> {
  const n = cfg.items!;
  const valueBytes = cfg.valueBytes!;
  const group = new Group({
    name: 'memory',
    cacheBytes: cfg.cacheBytes ?? 1024 * 1024 * 1024,
    registry: new GroupRegistry(),
    getter: async (key) => itemValue(key, valueBytes),
  });
  // Touch the code paths once so their compiled code is in the "before" figure, not counted per item.
  await group.get('warm-up');
  group.server.removeLocal('warm-up');
  const before = settle();
  const deadline = Date.now() + (cfg.maxLoadS ?? Number.POSITIVE_INFINITY) * 1000;
  watch.start();
  const t0 = performance.now();
  // Stops early (and says so) past the deadline, so a slow box still yields a per-item figure.
  let loaded = 0;
  let half: { rss: number; items: number } | undefined;
  while (loaded < n) {
    await group.get(keyOf(loaded++));
    if (loaded === n >> 1) {
      // RSS at half the items, settled: (RSS at N - RSS at N/2) / (N/2) is what one more item costs,
      // without the fixed costs a load brings (a grown young generation, code, tables).
      const t = performance.now();
      half = { rss: settle().rss, items: loaded };
      watch.exclude(t, performance.now());
    }
    if (loaded % 10_000 === 0 && Date.now() > deadline) break;
  }
  const loadS = (performance.now() - t0) / 1000;
  const loadGc = await watch.stop();
  const after = settle();
  const fullGcMs = lastFullGcMs;
  const main = group.cacheStats('main');
  const report: ItemsReport = {
    before,
    after,
    loadS,
    cacheItems: main.items,
    cacheBytes: main.bytes,
    loadGc,
    fullGcMs,
  };
  if (half !== undefined) report.marginal = (after.rss - half.rss) / (main.items - half.items);
  const hitSeconds = cfg.hitSeconds ?? 0;
  if (hitSeconds > 0) {
    // Random loaded keys, made before the run (making them during it would allocate per hit).
    let seed = 12345;
    const keys = Array.from({ length: 1 << 16 }, () => {
      seed = (seed * 48271) % 2147483647;
      return keyOf(seed % loaded);
    });
    const mask = keys.length - 1;
    let sink = 0;
    let hits = 0;
    watch.start();
    const t1 = performance.now();
    const end = t1 + hitSeconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < 8192; i++) sink += group.server.getCached(keys[(hits + i) & mask])?.length ?? 0;
      hits += 8192;
    }
    const s = (performance.now() - t1) / 1000;
    // On stderr, for reading a --trace-gc log of this child: its times are ms since start, as these are.
    process.stderr.write(`hit run: ${t1.toFixed(0)}..${(t1 + s * 1000).toFixed(0)} ms\n`);
    const hgc = await watch.stop();
    if (sink === 0) throw new Error('no hit returned a value');
    report.hits = { n: hits, s, gc: hgc, rssAfter: process.memoryUsage.rss() };
  }
  group.close();
  return report;
}

async function churn(): Promise<ChurnReport> {
  const cacheBytes = cfg.cacheBytes!;
  const minBytes = cfg.minBytes!;
  const maxBytes = cfg.maxBytes!;
  const source = Buffer.alloc(maxBytes, 7);
  let seed = 987654321;
  const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const group = new Group({
    name: 'churn',
    cacheBytes,
    registry: new GroupRegistry(),
    // The group copies what a getter returns, so one source buffer serves every value.
    getter: async () => source.subarray(0, minBytes + Math.floor(rand() * (maxBytes - minBytes + 1))),
  });
  await group.get('warm-up');
  group.server.removeLocal('warm-up');
  const before = settle();
  const target = (cfg.factor ?? 10) * cacheBytes;
  const samples: number[] = [];
  let loadedBytes = 0;
  let values = 0;
  let maxRss = 0;
  let nextSample = target / 10;
  watch.start();
  const t0 = performance.now();
  while (loadedBytes < target) {
    // getEntry: the shared value, no copy for the caller (a copy per value would be churn of its own).
    const e = await group.getEntry(`churn:${values++}`);
    // One value per event-loop turn, as requests arrive in a server: FinalizationRegistry callbacks (how the
    // store learns the collector freed what it evicted) run as tasks, never inside one long chain of awaits.
    await new Promise(setImmediate);
    loadedBytes += e.value.length;
    const rss = process.memoryUsage.rss();
    if (rss > maxRss) maxRss = rss;
    if (loadedBytes >= nextSample) {
      samples.push(rss);
      nextSample += target / 10;
    }
  }
  const loadS = (performance.now() - t0) / 1000;
  const g = await watch.stop();
  const finalRss = process.memoryUsage.rss();
  // Values that went into the cache (held now, or evicted since): the rest were returned but not cached.
  const main = group.cacheStats('main');
  const cachedValues = main.items + main.evictions;
  group.close();
  const youngAfter = youngBytes();
  return {
    before,
    cacheBytes,
    loadedBytes,
    values,
    cachedValues,
    samples,
    maxRss,
    finalRss,
    youngAfter,
    loadS,
    gc: g,
  };
}

const out = cfg.mode === 'churn' ? await churn() : await items();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
