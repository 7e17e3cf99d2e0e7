// Core: (1) in-process hit throughput of group.get / group.server.getCached against a bare lru-cache get
// on the same keys, same run, sequential and batched; (2) the miss path (peer fetches) through the core;
// (3) hot-key policy: peer fetches per 100k gets for a Zipf(1.1) workload over
// a simulated 5-node cluster (in-memory peers, fixed seed), random 1-in-10 vs rate-based at equal memory.
import { LRUCache } from 'lru-cache';
import { Group, GroupRegistry } from '../../src/group.js';
import type { HotKeyPolicy } from '../../src/hotkeys.js';
import { randomPromotion, rateBasedPromotion } from '../../src/hotkeys.js';
import type { Peer, PeerPicker } from '../../src/peers.js';
import { Ring } from '../../src/ring.js';
import { prng } from '../../test/support/prng.js';
import { isMain, runAlone } from './lib/main.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'core';

// ── 1. hit throughput ────────────────────────────────────────────────────────────────────────────────

const HIT_KEYS = 10_000;
const HIT_VALUE_BYTES = 64;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function hitThroughput(quick: boolean): Promise<BenchRow[]> {
  const keys = Array.from({ length: HIT_KEYS }, (_, i) => `user:${i}:profile`);
  const value = (k: string) => Buffer.from(k.padEnd(HIT_VALUE_BYTES, '.'));
  const cacheBytes = 64 << 20;
  const lru = new LRUCache<string, Buffer>({
    maxSize: cacheBytes,
    sizeCalculation: (v, k) => Buffer.byteLength(k) + v.length,
  });
  const group = new Group({
    name: 'bench-hit',
    cacheBytes,
    registry: new GroupRegistry(),
    getter: async (k) => value(k),
  });
  for (const k of keys) {
    lru.set(k, value(k));
    await group.get(k);
  }
  // A shuffled access order, the same for every case.
  const r = prng(42);
  const order = Array.from({ length: 1 << 16 }, () => keys[Math.floor(r() * keys.length)]);
  const mask = order.length - 1;
  const ops = quick ? 100_000 : 300_000;
  let sink = 0;
  const asyncLruGet = async (k: string) => lru.get(k)!;
  const BATCH = 1000;
  const batch: Promise<Buffer>[] = new Array(BATCH);
  // Many gets in flight at once, the way a server calls it: BATCH promises, then one Promise.all.
  const batched = async (get: (k: string) => Promise<Buffer>) => {
    for (let i = 0; i < ops; i += BATCH) {
      for (let j = 0; j < BATCH; j++) batch[j] = get(order[(i + j) & mask]);
      const vs = await Promise.all(batch);
      for (let j = 0; j < BATCH; j++) sink += vs[j].length;
    }
  };
  const groupGet = (k: string) => group.get(k);

  const cases: Record<string, () => Promise<void> | void> = {
    [BARE]: () => {
      for (let i = 0; i < ops; i++) sink += lru.get(order[i & mask])!.length;
    },
    'group.server.getCached (sync, shared buffer)': () => {
      const served = group.server;
      for (let i = 0; i < ops; i++) sink += served.getCached(order[i & mask])!.length;
    },
    [SEQ]: async () => {
      for (let i = 0; i < ops; i++) sink += (await group.get(order[i & mask])).length;
    },
    // What any promise-returning get costs on top of a map lookup: the await itself.
    [SEQ_WRAP]: async () => {
      for (let i = 0; i < ops; i++) sink += (await asyncLruGet(order[i & mask])).length;
    },
    [BATCHED]: () => batched(groupGet),
    [BATCHED_WRAP]: () => batched(asyncLruGet),
  };
  const rates = await interleaved(cases, quick ? 3 : 5, () => ops);
  if (sink === 42) console.error(sink); // keep `sink` alive
  group.close();
  const rounds = rates[BARE].length;
  const base = median(rates[BARE]);
  const rows: BenchRow[] = [];
  for (const n of Object.keys(cases)) {
    const ops_s = median(rates[n]);
    const row: BenchRow = {
      bench: BENCH,
      case: `hit: ${n}`,
      metrics: { 'ops/s': ops_s, 'ns/op': 1e9 / ops_s, keys: HIT_KEYS, value_B: HIT_VALUE_BYTES, rounds },
    };
    if (n !== BARE) {
      row.baseline = `hit: ${BARE}`;
      row.ratio = ops_s / base;
      row.goal = n.includes('wrapper')
        ? 'report (the floor for any awaited get)'
        : '≥ 0.5× bare lru-cache get';
    }
    rows.push(row);
  }
  // The same batched group.get against the same batched pattern over an async lru-cache wrapper.
  const b = median(rates[BATCHED]);
  rows.push({
    bench: BENCH,
    case: `hit: ${BATCHED} vs the same batches of the async wrapper`,
    metrics: { 'ops/s': b, rounds },
    baseline: `hit: ${BATCHED_WRAP}`,
    ratio: b / median(rates[BATCHED_WRAP]),
    goal: '≥ 0.5× (like for like: both awaited)',
  });
  return rows;
}

const BARE = 'bare lru-cache get (sync)';
const SEQ = 'group.get, sequential await (copy)';
const SEQ_WRAP = 'async wrapper of lru-cache get, sequential await';
const BATCHED = `group.get, batches of 1000 + Promise.all (copy)`;
const BATCHED_WRAP = 'async wrapper of lru-cache get, batches of 1000 + Promise.all';

/**
 * Runs every case once to warm up, then `rounds` interleaved rounds (background load on the shared box
 * hits every case alike); returns each case's ops/s per round.
 */
async function interleaved(
  cases: Record<string, () => Promise<void> | void>,
  rounds: number,
  opsOf: (name: string) => number,
): Promise<Record<string, number[]>> {
  const names = Object.keys(cases);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) await cases[n](); // warm up (JIT)
  for (let round = 0; round < rounds; round++) {
    for (const n of names) {
      const t0 = performance.now();
      await cases[n]();
      rates[n].push(opsOf(n) / ((performance.now() - t0) / 1000));
    }
  }
  return rates;
}

// ── 2. miss path: peer fetches served by the core ────────────────────────────────────────────────────

/**
 * What the core costs per peer fetch on the requesting node: every get is a miss of a key another
 * process owns, fetched from an in-process peer that answers at once (no network, no owner work), the
 * way the HTTP front calls it (getEntry with one long-lived per-connection signal). No hot cache
 * (cacheBytes 0), so every get is a real fetch. Batches of `inFlight` concurrent gets.
 */
async function missPath(quick: boolean): Promise<BenchRow[]> {
  const value = Buffer.alloc(HIT_VALUE_BYTES, 'v');
  const answer = Promise.resolve({ value, minuteQps: 1 });
  const owner: Peer = { id: 'owner:1', get: () => answer };
  const picker: PeerPicker = { pickPeer: () => owner, peers: () => [owner] };
  const group = new Group({
    name: 'bench-miss',
    cacheBytes: 0,
    registry: new GroupRegistry(),
    peers: picker,
    getter: async () => value,
  });
  const connection = new AbortController().signal;
  const ops = quick ? 50_000 : 150_000;
  const inFlight = 100;
  let n = 0;
  let sink = 0;
  const batch: Promise<{ value: Buffer }>[] = new Array(inFlight);
  const run = (signal: AbortSignal | undefined) => async () => {
    for (let i = 0; i < ops; i += inFlight) {
      for (let j = 0; j < inFlight; j++) batch[j] = group.getEntry(`miss:${n++}`, { signal });
      const vs = await Promise.all(batch);
      for (let j = 0; j < inFlight; j++) sink += vs[j].value.length;
    }
  };
  const cases = {
    [MISS_SIGNAL]: run(connection),
    [MISS_PLAIN]: run(undefined),
  };
  const rates = await interleaved(cases, quick ? 3 : 5, () => ops);
  if (sink === 42) console.error(sink);
  const peerLoads = group.stats.peerLoads;
  group.close();
  return Object.keys(cases).map((c) => ({
    bench: BENCH,
    case: `miss: ${c}`,
    metrics: {
      'fetches/s': median(rates[c]),
      'µs/fetch': 1e6 / median(rates[c]),
      in_flight: inFlight,
      rounds: rates[c].length,
      peer_loads: peerLoads,
    },
    goal: 'report (core cost per peer fetch; the node goal is 17.4k fetches/s through the front)',
  }));
}

const MISS_SIGNAL = "group.getEntry of a peer's key, per-connection signal (as the HTTP front)";
const MISS_PLAIN = "group.getEntry of a peer's key, no signal";

// ── 3. hot-key policy ────────────────────────────────────────────────────────────────────────────────

const NODES = 5;
const ZIPF_S = 1.1;
const VALUE_BYTES = 100;

/** A simulated workload: key space, per-node budget, and which windows of gets are measured. */
interface Scenario {
  keys: number;
  /** Per-node cacheBytes (equal for both policies); the hot cache gets at most 1/8 of it. */
  cacheBytes: number;
  /** Gets before the first measured window (caches filling). */
  warmup: number;
  /** Measured windows of `gets` gets each, one after the other. */
  windows: Window[];
  gets: number;
}

/** A measured window. `shift`: from its start, popularity rank r means key (r + shift) mod keys. */
interface Window {
  label: string;
  shift: number;
}
/** Simulated time between two gets (cluster-wide), so rates are ~1000 gets/s. */
const TICK_MS = 1;

/** Zipf(s) sampler over ranks 0..n-1 by inverse CDF (binary search over the precomputed CDF). */
function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1) ** s;
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

interface PolicyResult {
  fetchesPer100k: number;
  hotHitRatio: number;
  hotItems: number;
  /**
   * Peer fetches per 100k gets of an oracle whose hot caches hold, on every node, the most popular keys that
   * node does not own, as many as the policy's hot cache held (hotItems): for independent requests no
   * online policy with that much hot memory does better on average.
   */
  oraclePer100k: number;
}

async function simulate(policy: (node: number) => HotKeyPolicy, sc: Scenario): Promise<PolicyResult[]> {
  const { keys, gets, warmup } = sc;
  let t = 0;
  const now = () => t;
  const labels = Array.from({ length: NODES }, (_, i) => `10.0.0.${i + 1}:9090`);
  const ring = new Ring({ labels });
  const registries = labels.map(() => new GroupRegistry());
  const value = Buffer.alloc(VALUE_BYTES, 'v');
  const groups = labels.map(
    (_, i) =>
      new Group({
        name: 'zipf',
        cacheBytes: sc.cacheBytes,
        registry: registries[i],
        now,
        hotKeyPolicy: policy(i),
        getter: async () => value,
      }),
  );
  const peerOf = (i: number): Peer => ({
    id: labels[i],
    get: (group, key, signal) => registries[i].get(group)!.server.getEntry(key, { signal, local: true }),
  });
  for (let i = 0; i < NODES; i++) {
    const byLabel = new Map(labels.map((l, j) => [l, peerOf(j)] as const).filter(([, p], j) => j !== i && p));
    const picker: PeerPicker = {
      pickPeer: (key) => {
        const o = ring.owner(key);
        return o === labels[i] ? null : (byLabel.get(o!) ?? null);
      },
      peers: () => [...byLabel.values()],
    };
    registries[i].setPeerPicker(picker);
  }
  const random = prng(1234);
  const sample = zipf(keys, ZIPF_S, random);
  const fetches = () => groups.reduce((a, g) => a + g.stats.peerLoads + g.stats.peerErrors, 0);
  const hotStats = () =>
    groups.reduce(
      (a, g) => {
        const h = g.cacheStats('hot');
        return { gets: a.gets + h.gets, hits: a.hits + h.hits };
      },
      { gets: 0, hits: 0 },
    );
  const get = async (rank: number, shift: number) => {
    const node = Math.floor(random() * NODES);
    await groups[node].get(`item:${(rank + shift) % keys}`);
    t += TICK_MS;
    return node;
  };
  for (let i = 0; i < warmup; i++) await get(sample(), 0);
  const results: PolicyResult[] = [];
  for (const w of sc.windows) {
    const f0 = fetches();
    const h0 = hotStats();
    const measured: number[] = []; // rank * NODES + node of each get, for the oracle
    for (let i = 0; i < gets; i++) {
      const rank = sample();
      measured.push(rank * NODES + (await get(rank, w.shift)));
    }
    const h1 = hotStats();
    const hotItems = groups.reduce((a, g) => a + g.cacheStats('hot').items, 0) / NODES;
    // Oracle: each node's hot cache statically holds the `hotItems` most popular keys it does not own.
    // Indexed by popularity rank in this window.
    const ownerIdx = new Int8Array(keys);
    for (let r = 0; r < keys; r++) ownerIdx[r] = labels.indexOf(ring.owner(`item:${(r + w.shift) % keys}`)!);
    const inHot = labels.map((_, n) => {
      const set = new Uint8Array(keys);
      for (let r = 0, taken = 0; r < keys && taken < hotItems; r++) {
        if (ownerIdx[r] !== n) {
          set[r] = 1;
          taken++;
        }
      }
      return set;
    });
    let oracle = 0;
    for (const m of measured) {
      const rank = Math.floor(m / NODES);
      const node = m % NODES;
      if (ownerIdx[rank] !== node && inHot[node][rank] === 0) oracle++;
    }
    results.push({
      fetchesPer100k: ((fetches() - f0) * 100_000) / gets,
      hotHitRatio: (h1.hits - h0.hits) / Math.max(1, h1.gets - h0.gets),
      hotItems,
      oraclePer100k: (oracle * 100_000) / gets,
    });
  }
  for (const g of groups) g.close();
  return results;
}

async function hotKeyPolicies(sc: Scenario): Promise<BenchRow[]> {
  const randoms = await simulate((i) => randomPromotion(10, prng(777 + i)), sc);
  const rateds = await simulate(() => rateBasedPromotion(), sc);
  const metrics = (r: PolicyResult) => ({
    'peer_fetches/100k_gets': r.fetchesPer100k,
    'oracle_floor/100k_gets': r.oraclePer100k,
    hot_hit_ratio: r.hotHitRatio,
    hot_items_per_node: r.hotItems,
  });
  const rows: BenchRow[] = [];
  sc.windows.forEach((w, i) => {
    const from = sc.warmup + i * sc.gets;
    const workload =
      `Zipf(${ZIPF_S}), ${sc.keys / 1000}k keys, ${NODES} nodes, ${sc.cacheBytes >> 10} KiB/node, ` +
      `${w.label}: gets ${from / 1000}k–${(from + sc.gets) / 1000}k`;
    const random = randoms[i];
    const rated = rateds[i];
    const randomCase = `hot keys: random 1-in-10 (${workload})`;
    rows.push(
      { bench: BENCH, case: randomCase, metrics: metrics(random) },
      {
        bench: BENCH,
        case: `hot keys: rate-based (${workload})`,
        metrics: {
          ...metrics(rated),
          // the oracle floor over random's fetches: no policy with this much hot memory can do better
          best_possible_ratio: rated.oraclePer100k / random.fetchesPer100k,
        },
        baseline: randomCase,
        ratio: rated.fetchesPer100k / random.fetchesPer100k,
        goal: '≤ 0.5× random peer fetches',
      },
    );
  });
  return rows;
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const rows = await hitThroughput(quick);
  rows.push(...(await missPath(quick)));
  if (process.env.CORE_BENCH_ONLY === 'speed') return rows;
  // The workload from empty caches: the first 100k gets (50k with --quick), per 100k gets.
  rows.push(
    ...(await hotKeyPolicies({
      keys: 100_000,
      cacheBytes: 1 << 20,
      warmup: 0,
      gets: quick ? 50_000 : 100_000,
      windows: [{ label: 'cold start', shift: 0 }],
    })),
  );
  if (!quick) {
    // Steady state (owners' main caches full), scaled down to fit the time budget; then the popular
    // keys change (trending items) and the next window shows how fast each policy follows.
    rows.push(
      ...(await hotKeyPolicies({
        keys: 20_000,
        cacheBytes: 256 << 10,
        warmup: 100_000,
        gets: 50_000,
        windows: [
          { label: 'steady', shift: 0 },
          { label: 'popularity shift', shift: 7919 },
        ],
      })),
    );
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
