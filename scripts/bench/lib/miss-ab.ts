// Same-run A/B of the miss path of two builds (a change to flights or the load path must not make misses slower):
// both builds' Group in one process, measured in alternating slices so a drift in the box's speed hits both
// alike. Prints one JSON line per case with misses per second of each build and their ratio (B ÷ A).
//   node --import tsx scripts/bench/lib/miss-ab.ts <distA> <distB> [<slices>]
// Cases: a local load (get of a new key → getter → main cache, one at a time, as the memory bench loads) and a
// peer fetch (getEntry of a key an in-process peer owns, 100 in flight, no hot cache: core.ts's miss case).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

type GroupModule = typeof import('../../../src/index.js');

const [distA, distB] = [process.argv[2], process.argv[3]];
const SLICES = Number(process.argv[4] ?? 10);
const SLICE_MS = 500;
const VALUE = Buffer.alloc(32, 'v');

interface Subject {
  local(n: number): Promise<void>;
  peer(n: number): Promise<void>;
}

async function load(dist: string, tag: string): Promise<Subject> {
  const m = (await import(pathToFileURL(resolve(dist, 'index.js')).href)) as GroupModule;
  // Budget for a few hundred thousand items: the cache evicts as it goes, as a full cache does.
  const local = new m.Group({
    name: `local-${tag}`,
    cacheBytes: 32 << 20,
    registry: new m.GroupRegistry(),
    getter: async () => VALUE,
  });
  const answer = Promise.resolve({ value: VALUE, minuteQps: 1 });
  const owner = { id: 'owner:1', get: () => answer };
  const peer = new m.Group({
    name: `peer-${tag}`,
    cacheBytes: 0,
    registry: new m.GroupRegistry(),
    peers: { pickPeer: () => owner, peers: () => [owner] },
    getter: async () => VALUE,
  });
  const connection = new AbortController().signal;
  let i = 0;
  let j = 0;
  const batch: Promise<unknown>[] = new Array(100);
  return {
    async local(n) {
      for (let k = 0; k < n; k++) await local.get(`key:${tag}:${i++}`);
    },
    async peer(n) {
      for (let k = 0; k < n; k += batch.length) {
        for (let b = 0; b < batch.length; b++)
          batch[b] = peer.getEntry(`miss:${tag}:${j++}`, { signal: connection });
        await Promise.all(batch);
      }
    },
  };
}

const a = await load(distA, 'a');
const b = await load(distB, 'b');

async function rate(run: (n: number) => Promise<void>): Promise<number> {
  const step = 1_000;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < SLICE_MS) {
    await run(step);
    n += step;
  }
  return (n * 1000) / (performance.now() - t0);
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];

for (const kase of ['local', 'peer'] as const) {
  // Warm both up (JIT) before measuring.
  await rate((n) => a[kase](n));
  await rate((n) => b[kase](n));
  const ra: number[] = [];
  const rb: number[] = [];
  for (let s = 0; s < SLICES; s++) {
    // Alternate which build goes first.
    if (s % 2 === 0) {
      ra.push(await rate((n) => a[kase](n)));
      rb.push(await rate((n) => b[kase](n)));
    } else {
      rb.push(await rate((n) => b[kase](n)));
      ra.push(await rate((n) => a[kase](n)));
    }
  }
  const ma = median(ra);
  const mb = median(rb);
  process.stdout.write(
    `${JSON.stringify({ case: kase, a: Math.round(ma), b: Math.round(mb), 'b/a': Math.round((mb / ma) * 100) / 100 })}\n`,
  );
}
