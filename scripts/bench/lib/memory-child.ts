// Child of memory.ts: one process, one Group, N small values cached through the ordinary load path
// (get → miss → getter → main cache). Prints RSS/heap before and after as one JSON line. Run with --expose-gc.
// Usage: node --expose-gc --import tsx scripts/bench/lib/memory-child.ts <items> <valueBytes> [<maxSeconds>]
// (after npm run build)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { itemValue, keyOf } from './memory-data.js';

// The compiled package (npm run bench builds it first), not the TypeScript sources through tsx: tsx's
// transform adds helpers to the hot path and its loader thread to the RSS.
const { Group, GroupRegistry } = (await import(
  pathToFileURL(resolve('dist/index.js')).href
)) as typeof import('../../../src/index.js');

const items = Number(process.argv[2]);
const valueBytes = Number(process.argv[3]);
const gc = (globalThis as { gc?: () => void }).gc;

function settle(): { rss: number; heapUsed: number; external: number; arrayBuffers: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

const group = new Group({
  name: 'memory',
  cacheBytes: 1024 * 1024 * 1024,
  registry: new GroupRegistry(),
  getter: async (key) => itemValue(key, valueBytes),
});
// Touch the code paths once so their compiled code is in the "before" figure, not counted per item.
await group.get('warm-up');
group.removeLocal('warm-up');
const before = settle();
const t0 = performance.now();
// Stops early (and says so) past the deadline, so a slow box still yields a per-item figure.
const deadline = Date.now() + Number(process.argv[4] ?? Number.POSITIVE_INFINITY) * 1000;
let loaded = 0;
while (loaded < items) {
  await group.get(keyOf(loaded++));
  if (loaded % 10_000 === 0 && Date.now() > deadline) break;
}
const loadS = (performance.now() - t0) / 1000;
const after = settle();
const main = group.cacheStats('main');
process.stdout.write(
  `${JSON.stringify({ before, after, loadS, cacheItems: main.items, cacheBytes: main.bytes })}\n`,
);
group.close();
