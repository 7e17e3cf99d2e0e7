// Same-run A/B of the in-process hit paths of two builds (a change to the storage must not make hits slower): both
// builds' Group in one process, the same keys and values, measured in alternating slices so a drift in
// the box's speed hits both alike. Prints one JSON line per case.
//   node --import tsx scripts/bench/lib/hit-ab.ts <distA> <distB> [<keys> [<valueBytes> [<slices>]]]
// Cases: getCached (what the library API returns), and the HTTP front's hit work: getCachedBody where
// the build has it, else getCached + toString('latin1') for values ≤ 1 KiB (what the front did before).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

type GroupModule = typeof import('../../../src/index.js');

const [distA, distB] = [process.argv[2], process.argv[3]];
const KEYS = Number(process.argv[4] ?? 10_000);
const VALUE_BYTES = Number(process.argv[5] ?? 64);
const SLICES = Number(process.argv[6] ?? 10);
const SLICE_MS = 500;

async function load(dist: string) {
  const m = (await import(pathToFileURL(resolve(dist, 'index.js')).href)) as GroupModule;
  const g = new m.Group({
    name: 'ab',
    cacheBytes: 1 << 30,
    registry: new m.GroupRegistry(),
    getter: async (k) => k.padEnd(VALUE_BYTES, '.').slice(0, VALUE_BYTES),
  });
  for (let i = 0; i < KEYS; i++) await g.get(`user:${i}:profile`);
  // Builds differ in where the hit path lives: group.server (lookup/body) now, group.getCached(Body) before.
  const any = g as unknown as {
    server?: {
      getCached(k: string): Buffer | undefined;
      lookup(k: string): number;
      body(h: number): string | Buffer;
    };
    getCached?: (k: string) => Buffer | undefined;
    getCachedBody?: (k: string) => string | Buffer | undefined;
  };
  const server = any.server;
  const getCached = server ? (k: string) => server.getCached(k) : any.getCached!.bind(g);
  const body = server
    ? (k: string) => server.body(server.lookup(k))
    : any.getCachedBody
      ? any.getCachedBody.bind(g)
      : (k: string) => getCached(k)!.toString('latin1');
  return { getCached, body };
}

const groups = { A: await load(distA), B: await load(distB) };
// One string object per key, as a caller looping over an array of its keys has, read in a random order
// that covers every key (a loop over a few thousand of them only would measure a hot set of that size,
// whatever KEYS says).
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}:profile`);
let seed = 42;
const order = Int32Array.from(
  { length: Math.min(1 << 18, Math.max(1 << 16, 2 ** Math.ceil(Math.log2(KEYS * 2)))) },
  () => {
    seed = (seed * 48271) % 2147483647;
    return seed % KEYS;
  },
);
const mask = order.length - 1;
// To build a new key string per lookup: a server's key arrives as a new string with every request
// (parsed from a URL or a command), so V8 has not hashed it yet. Looking up the same string objects again
// and again (the first cases) favours a Map, which keeps a string's hash in it.
let sink = 0;
/** Where the next batch of lookups starts in `order` (the same walk for both builds). */
let at = 0;

const cases: Record<string, (g: (typeof groups)['A']) => () => void> = {
  'getCached (the same key strings each time)': (g) => () => {
    for (let i = 0; i < 4096; i++) sink += g.getCached(keys[order[(at + i) & mask]])!.length;
  },
  'front hit (server.lookup + body; before: getCachedBody, or getCached + latin1)': (g) => () => {
    for (let i = 0; i < 4096; i++) sink += g.body(keys[order[(at + i) & mask]])!.length;
  },
  'getCached, a new key string per lookup (as from a request)': (g) => () => {
    for (let i = 0; i < 4096; i++) sink += g.getCached(`user:${order[(at + i) & mask]}:profile`)!.length;
  },
  'front hit, a new key string per lookup': (g) => () => {
    for (let i = 0; i < 4096; i++) sink += g.body(`user:${order[(at + i) & mask]}:profile`)!.length;
  },
};

for (const [name, make] of Object.entries(cases)) {
  const runs = { A: make(groups.A), B: make(groups.B) };
  const ops = { A: 0, B: 0 };
  const ms = { A: 0, B: 0 };
  for (const w of ['A', 'B'] as const) for (let i = 0; i < 50; i++) runs[w](); // warm-up
  for (let s = 0; s < SLICES; s++) {
    for (const w of s % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < SLICE_MS) {
        runs[w]();
        n += 4096;
        at += 4096;
      }
      ms[w] += performance.now() - t0;
      ops[w] += n;
    }
  }
  const rate = (w: 'A' | 'B') => (ops[w] / ms[w]) * 1000;
  console.log(
    JSON.stringify({
      case: name,
      keys: KEYS,
      valueBytes: VALUE_BYTES,
      A: { dist: distA, 'hits/s': Math.round(rate('A')) },
      B: { dist: distB, 'hits/s': Math.round(rate('B')) },
      'B/A': Math.round((rate('B') / rate('A')) * 100) / 100,
    }),
  );
}
if (sink === 0) throw new Error('no hits');
