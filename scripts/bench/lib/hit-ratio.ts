// Hit ratio of builds' eviction orders on skewed workloads (a change to recency, such as CLOCK's marks for
// LRU's moves in keyindex.ts, must not make the cache hold the wrong keys): each build's Group, the same
// budget, the same seeded stream of Zipf-distributed keys over more keys than the budget holds; a miss
// loads the key (so it is cached), as a read-through cache's caller does. Prints one JSON line per case.
//   node --import tsx scripts/bench/lib/hit-ratio.ts <dist> [<dist>...]
// Cases: Zipf exponents 0.8, 0.99 and 1.2 over 100k keys, the budget about 10 % of them; and the 0.99 one
// with a one-off scan of 50k unpopular keys in the middle (a scan should not flush the popular keys).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

type GroupModule = typeof import('../../../src/index.js');

const dists = process.argv.slice(2);
if (dists.length === 0) throw new Error('usage: hit-ratio.ts <dist> [<dist>...]');
const KEYS = 100_000;
const REQUESTS = 1_000_000;
const VALUE_BYTES = 64;
/** Budget in bytes: ~10k items of a 16-byte key and 64-byte value with their overhead (cache.ts). */
const CACHE_BYTES = 10_000 * (16 + 64 + 96) + (1 << 20);

/** Key ranks drawn from Zipf(s) over KEYS (inverse CDF, a seeded LCG: the same stream for every build). */
function zipfStream(s: number, n: number, seed: number): Int32Array {
  const cdf = new Float64Array(KEYS);
  let sum = 0;
  for (let r = 0; r < KEYS; r++) cdf[r] = sum += 1 / (r + 1) ** s;
  const out = new Int32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 48271) % 2147483647;
    const u = (x / 2147483647) * sum;
    let lo = 0;
    let hi = KEYS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    // Ranks scattered over key names, so popularity does not follow insertion order.
    out[i] = (lo * 7919) % KEYS;
  }
  return out;
}

const cases: { name: string; stream: Int32Array; scanAt?: number }[] = [
  { name: 'zipf 0.8', stream: zipfStream(0.8, REQUESTS, 42) },
  { name: 'zipf 0.99', stream: zipfStream(0.99, REQUESTS, 43) },
  { name: 'zipf 1.2', stream: zipfStream(1.2, REQUESTS, 44) },
  {
    name: 'zipf 0.99, a 50k-key scan at half time',
    stream: zipfStream(0.99, REQUESTS, 45),
    scanAt: REQUESTS / 2,
  },
];
const keyNames = Array.from({ length: KEYS + 50_000 }, (_, i) => `k:${i}`.padEnd(16, '.'));

for (const c of cases) {
  const row: Record<string, unknown> = { case: c.name, keys: KEYS, requests: REQUESTS };
  for (const dist of dists) {
    const m = (await import(pathToFileURL(resolve(dist, 'index.js')).href)) as GroupModule;
    const value = Buffer.alloc(VALUE_BYTES, 1);
    const g = new m.Group({
      name: 'ratio',
      cacheBytes: CACHE_BYTES,
      registry: new m.GroupRegistry(),
      getter: async () => value,
    });
    let hits = 0;
    // Measured over the second half of the requests (the first half fills the cache and settles it).
    const from = REQUESTS / 2;
    for (let i = 0; i < REQUESTS; i++) {
      if (i === c.scanAt) for (let k = KEYS; k < KEYS + 50_000; k++) await g.get(keyNames[k]);
      const key = keyNames[c.stream[i]];
      if (g.server.getCached(key) !== undefined) {
        if (i >= from) hits++;
      } else await g.get(key);
    }
    row[dist] = {
      'hit ratio': Math.round((hits / (REQUESTS - from)) * 10_000) / 10_000,
      items: g.cacheStats('main').items,
    };
    g.close();
  }
  console.log(JSON.stringify(row));
}
