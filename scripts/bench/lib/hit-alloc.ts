// Bytes a `getCached` hit allocates, per build: the JS heap's new space used across a run of hits short
// enough for no scavenge to run in it (checked), and Node's Buffer pool bytes (`arrayBuffers`). Keys are
// read at random among many, each run a new stretch of the stream, so that hits miss the stable-copy table
// (docs/memory.md, Hits): the case where a hit has to hand out a new Buffer.
//   node --expose-gc --min-semi-space-size=64 --max-semi-space-size=256 --import tsx \
//     scripts/bench/lib/hit-alloc.ts <dist> [<keys> [<hits>]]

import { resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';

type GroupModule = typeof import('../../../src/index.js');

const dist = process.argv[2];
const KEYS = Number(process.argv[3] ?? 200_000);
const HITS = Number(process.argv[4] ?? 20_000);
const RUNS = 5;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_used_size;

const m = (await import(pathToFileURL(resolve(dist, 'index.js')).href)) as GroupModule;
const g = new m.Group({
  name: 'alloc',
  cacheBytes: 1 << 30,
  registry: new m.GroupRegistry(),
  getter: async (k) => Buffer.alloc(64, k),
});
const keys = Array.from({ length: KEYS }, (_, i) => `key-${i}`);
for (const k of keys) await g.get(k);
// Builds differ in where the hit path lives: group.server now, group.getCached before.
const any = g as unknown as {
  server?: { getCached(k: string): Buffer | undefined };
  getCached?(k: string): Buffer;
};
const getCached = any.server ? (k: string) => any.server!.getCached(k)! : (k: string) => any.getCached!(k)!;
let x = 7;
const order = Int32Array.from({ length: HITS * (RUNS + 3) }, () => {
  x = (x * 48271) % 2147483647;
  return x % KEYS;
});
let gcs = 0;
new PerformanceObserver((l) => {
  gcs += l.getEntries().length;
}).observe({ entryTypes: ['gc'] });
let sink = 0;
/** HITS hits from `from` in the stream (a function of its own, so that the JIT optimizes it whole). */
function hits(from: number): void {
  for (let i = 0; i < HITS; i++) sink += getCached(keys[order[from + i]]).length;
}
for (let r = 0; r < 3; r++) hits(r * HITS);
const runs: string[] = [];
for (let run = 0; run < RUNS; run++) {
  gc();
  await new Promise((r) => setTimeout(r, 10));
  const gcsBefore = gcs;
  const ab0 = process.memoryUsage().arrayBuffers;
  const y0 = young();
  hits((run + 3) * HITS);
  const y1 = young();
  const ab1 = process.memoryUsage().arrayBuffers;
  await new Promise((r) => setTimeout(r, 10));
  const heap = ((y1 - y0) / HITS).toFixed(1);
  const pool = ((ab1 - ab0) / HITS).toFixed(1);
  runs.push(gcs > gcsBefore ? `(a collection ran: ${heap} B)` : `${heap} B heap + ${pool} B pool`);
}
if (sink === 0) throw new Error('no hits');
console.log(JSON.stringify({ dist, keys: KEYS, hits: HITS, 'per hit': runs }));
