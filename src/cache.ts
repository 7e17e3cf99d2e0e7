// A byte-bounded cache of immutable values with expiry and stats, evicting in CLOCK order (LRU's
// approximation with a mark per hit, KeyIndex.victim): a KeyIndex finds a key's item id and keeps
// recency (keyindex.ts), and a SlabStore holds the keys, the values and their metadata in typed arrays and
// large pages (slab.ts), so the number of cached items does not add to the garbage collector's work. A Group keeps two of them — the
// main cache (keys this process owns) and the hot cache (mirrors of hot keys owned by peers) — over one
// store and under one shared byte budget, evicted the way groupcache does (see `enforceBudget`).

import type { RateState } from './hotkeys.js';
import { readRate } from './hotkeys.js';
import { KeyIndex, NONE } from './keyindex.js';
import { defaultPageBytes, ITEM_OVERHEAD, isWellFormed, SlabStore } from './slab.js';

/** How an entry came to this process (for `Cache-Status`): loaded by the getter, fetched from its owner, or set. */
export type Source = 'getter' | 'peer' | 'set';

/**
 * The longest time to live a value can have: one year. Every TTL that enters a node is clamped to it: a
 * getter's `ttlMs` (the HTTP origin's `max-age` arrives that way), a peer's `ttl_ms`, a value handed
 * over. Why a year: it is HTTP's customary "never expires" (`max-age=31536000`; RFC 9111 §1.2.2 has
 * caches cap `max-age` at what they can represent), far beyond any useful cache lifetime (a value is
 * at worst reloaded once a year), and small enough that `now + ttl`, the int64 `ttl_ms` on the wire and
 * every client's decoder stay exact. An unbounded `max-age=99999999999999999999` made replies that
 * clients could not decode. A TTL of Infinity still means "never expires".
 */
export const MAX_TTL_MS = 365 * 24 * 60 * 60 * 1000;

/**
 * The stale windows of an entry that has any (RFC 5861), as absolute times on the group's clock; 0 =
 * none. A separate object so that entries without windows — most — stay small (timestamps are heap
 * numbers in V8).
 */
export class StaleWindows {
  /** max(expiresAt, swrUntil, sieUntil): the entry is dropped after it. */
  readonly keepUntil: number;
  /** A background refresh runs (true) — or, after one failed, none starts before `retryAt`. */
  refreshing = false;
  retryAt = 0;
  constructor(
    readonly swrUntil: number,
    readonly sieUntil: number,
    expiresAt: number,
  ) {
    this.keepUntil = Math.max(expiresAt, swrUntil, sieUntil);
  }
}

/**
 * One value as a load produces it, and as `ByteCache.get`/`getKept` hand a cached one back (a snapshot:
 * the cache keeps no Entry objects, it copies them into its store; `windows` is the stored item's own).
 * `value` is shared by every reader and must never be written to. Times are on the group's clock (ms). `expiresAt`: end of freshness, 0 = never. Past it the entry is kept (stale) only
 * while a stale window (`windows`) lasts. A negative entry remembers "no value" (NotFound): `value` then
 * holds the NotFound message. The rate fields are the key's decayed request counter (hotkeys.ts).
 */
export class Entry implements RateState {
  // Declared in the order the hit path reads them (value, expiresAt, hits, negative), so they share
  // the object's first cache line; the rest is read on misses, loads and rate reads.
  readonly value: Buffer;
  readonly expiresAt: number;
  hits: number;
  negative: boolean;
  rate: number;
  rateAt: number;
  /** When the value was produced (loaded, or set) on this clock, for `Age`: a peer's value arrives aged. */
  bornAt: number;
  source: Source;
  windows: StaleWindows | undefined;
  constructor(value: Buffer, expiresAt: number, now: number, minuteQps: number) {
    this.value = value;
    this.expiresAt = expiresAt;
    this.hits = 0;
    this.negative = false;
    this.rate = minuteQps;
    this.rateAt = now;
    this.bornAt = now;
    this.source = 'getter';
    this.windows = undefined;
  }

  /** Sets the stale windows' ends (absolute; 0 = none). Only for an entry that expires. */
  setWindows(swrUntil: number, sieUntil: number): void {
    if (this.expiresAt === 0 || (swrUntil <= this.expiresAt && sieUntil <= this.expiresAt)) return;
    this.windows = new StaleWindows(swrUntil, sieUntil, this.expiresAt);
  }

  /** When the entry must be dropped: the end of its last window, else its expiry (0 = never). */
  get keepUntil(): number {
    return this.windows === undefined ? this.expiresAt : this.windows.keepUntil;
  }
}

/** What `group.cacheStats(which)` returns. */
export interface CacheStats {
  /** Bytes held: key bytes (UTF-8) + value bytes, summed over entries. */
  bytes: number;
  items: number;
  /** Lookups. */
  gets: number;
  /** Lookups that found a live (unexpired) value. */
  hits: number;
  /** Entries dropped to make room. Expired and removed entries are not counted. */
  evictions: number;
}

/** Bytes an entry is charged: its key's UTF-8 length + its value's length. */
export function entryBytes(key: string, value: Uint8Array): number {
  return Buffer.byteLength(key, 'utf8') + value.byteLength;
}

/**
 * What an item costs beyond its key and value bytes: its index entry and metadata (ITEM_OVERHEAD), the
 * rounding of its key's and value's chunks, or a Buffer of its own for a value (or key) over 1 KiB (slab.ts).
 */
export function itemOverhead(keyBytes: number, valueBytes: number): number {
  return ITEM_OVERHEAD + SlabStore.storeOverhead(keyBytes) + SlabStore.storeOverhead(valueBytes);
}

/**
 * Per-item overhead not charged to a group's budget: the first 1 MiB of it, so a tiny cache (a few items,
 * as in tests and examples) holds what its key + value bytes allow, while a large one is bounded by what
 * it really spends. Part of the fixed allowance on top of cacheBytes (README, docs/memory.md).
 */
export const FREE_OVERHEAD_BYTES = 1 << 20;
/** Partly used pages the store may hold beyond the budget before it takes pages back (one per size class). */
const SLACK_PAGES = 24;
/**
 * Evicted values the collector has not freed yet that do not count against the budget (SlabOptions'
 * limboAllowanceBytes): V8 collects when external memory has grown by ~64 MB, so under churn of large
 * values tens of MiB are always waiting. Without an allowance every eviction would only move bytes from
 * "cached" to "waiting", and new values would be refused until the next collection. Past it they are.
 */
export const LIMBO_ALLOWANCE_BYTES = 16 << 20;

/** What a group's main and hot cache share: the store of keys and values, and the key index over it. */
export interface CacheSpace {
  store: SlabStore;
  index: KeyIndex;
}

/**
 * A store for a byte budget (room for the budget, the free overhead, and slack for partly used pages)
 * and an index over it with `lists` lists (one per cache). `reclaim`, `evict` and `heapHoleReserveBytes`
 * are the store's (SlabOptions).
 */
export function newSpace(
  budgetBytes: number,
  reclaim: (id: number) => void,
  evict: () => boolean,
  lists = 1,
  heapHoleReserveBytes = 0,
): CacheSpace {
  const pageBytes = defaultPageBytes(budgetBytes + FREE_OVERHEAD_BYTES);
  let index: KeyIndex | undefined;
  const store = new SlabStore({
    limitBytes: budgetBytes + FREE_OVERHEAD_BYTES + SLACK_PAGES * pageBytes,
    // Values in Buffers of their own need no slack: they are held to the budget itself.
    slackBytes: SLACK_PAGES * pageBytes,
    pageBytes,
    limboAllowanceBytes: LIMBO_ALLOWANCE_BYTES,
    heapHoleReserveBytes,
    reclaim,
    evict,
    idsShrunk: (capacity) => index?.shrinkIds(capacity),
  });
  index = new KeyIndex(store, lists);
  return { store, index };
}

/** One hit in this many (a power of 2) leaves its item id in a ring for `hottest`. */
const HOT_SAMPLE_EVERY = 64;
/** Sampled hit ids kept (the last 64 × 1024 = 65,536 hits), a 4 KiB Int32Array per cache. */
const HOT_SAMPLES = 1024;

// Item flags in the store.
const NEGATIVE = 1;
const HAS_WINDOWS = 2;
const SOURCE_SHIFT = 2;
const SOURCES: readonly Source[] = ['getter', 'peer', 'set'];

export class ByteCache {
  readonly store: SlabStore;
  /** Key → item id and recency, shared with the other caches of the space (this cache's list: `tag`). */
  private readonly index: KeyIndex;
  /** Stale windows of the items that have them (most have none). */
  private readonly windows = new Map<number, StaleWindows>();
  /** Lookups that found nothing fresh (`gets` is hits + misses: a hit counts once). */
  misses = 0;
  hits = 0;
  evictions = 0;
  /** Ids of every HOT_SAMPLE_EVERY-th hit, the last HOT_SAMPLES of them (-1: none yet), for `hottest`. */
  private readonly hitSample = new Int32Array(HOT_SAMPLES).fill(-1);
  private hitSampleAt = 0;
  /** Σ key + value bytes over the items held (what `maxBytes` bounds and `stats().bytes` reports). */
  bytes = 0;
  /** Σ itemOverhead over the items held (charged by enforceBudget beyond FREE_OVERHEAD_BYTES). */
  overheadBytes = 0;

  /**
   * @param maxBytes this cache's own ceiling (the group's budget still applies on top, see enforceBudget)
   * @param now the group's clock, read only for entries that expire
   * @param space where keys and values live, shared by a group's main and hot cache. Default: its own.
   * @param tag this cache's mark on its items in a shared store (the store's `reclaim` routes by it), and
   *   its list in the shared index
   */
  constructor(
    readonly maxBytes: number,
    private readonly now: () => number,
    space?: CacheSpace,
    readonly tag = 0,
  ) {
    const s =
      space ??
      newSpace(
        maxBytes,
        (id) => this.reclaimed(id),
        () => this.evictOldest(),
        tag + 1,
      );
    this.store = s.store;
    this.index = s.index;
  }

  /**
   * The hit path: the store id of the fresh item for `key` (marked as read for eviction, hit counted) or
   * -1. An expired item reads as a miss; it is dropped unless a stale window still keeps it (see
   * `getKept`). Allocates nothing. `viaMemo`: through the index's memo of key strings (KeyIndex.findHit)
   * — false for a caller whose every key is a new string (the HTTP front), which the memo cannot help.
   */
  getId(key: string, viaMemo = true): number {
    const id = viaMemo ? this.index.findHit(this.tag, key) : this.index.find(this.tag, key);
    if (id === NONE) {
      this.misses++;
      return -1;
    }
    const st = this.store;
    const exp = st.expiresAt[id];
    // The expired case is out of line: this function stays small enough for V8 to inline it.
    if (exp !== 0 && exp <= this.now()) return this.expired(id);
    this.index.mark(id);
    // One hit in HOT_SAMPLE_EVERY leaves its id for `hottest` (a hot key is most of the hits, so it is
    // there): the recency order no longer keeps hot keys at the head (KeyIndex.victim).
    if ((++this.hits & (HOT_SAMPLE_EVERY - 1)) === 0) this.sampleHit(id);
    st.hits[id]++;
    return id;
  }

  private sampleHit(id: number): void {
    this.hitSample[this.hitSampleAt] = id;
    this.hitSampleAt = (this.hitSampleAt + 1) & (HOT_SAMPLES - 1);
  }

  /** An expired item reads as a miss (-1); it is dropped unless a stale window still keeps it. */
  private expired(id: number): -1 {
    this.misses++;
    if (this.keepUntil(id) <= this.now()) this.drop(id, false);
    else this.index.mark(id);
    return -1;
  }

  /** getId as an Entry snapshot (for the load path; hit paths use getId). */
  get(key: string): Entry | undefined {
    const id = this.getId(key);
    return id < 0 ? undefined : this.entryOf(id);
  }

  /**
   * The entry for `key` even if it expired, as long as a stale window keeps it (the miss path, after
   * `get` said miss); undefined if none. Not counted as a lookup: it re-reads the one `get` counted.
   */
  getKept(key: string): Entry | undefined {
    const id = this.index.find(this.tag, key);
    if (id === NONE) return undefined;
    const keep = this.keepUntil(id);
    if (keep !== 0 && keep <= this.now()) {
      this.drop(id, false);
      return undefined;
    }
    return this.entryOf(id);
  }

  /** Like get, without counting or touching recency (for re-checks inside a flight). */
  peek(key: string): Entry | undefined {
    const id = this.index.find(this.tag, key);
    if (id === NONE) return undefined;
    const exp = this.store.expiresAt[id];
    if (exp !== 0) {
      const now = this.now();
      if (exp <= now) {
        if (this.keepUntil(id) <= now) this.drop(id, false);
        return undefined;
      }
    }
    return this.entryOf(id);
  }

  /** Whether `key` is held at all, fresh or stale (no clock read, no counting). */
  has(key: string): boolean {
    return this.index.find(this.tag, key) !== NONE;
  }

  /** The stale windows of what `key` holds now (to tell whether it is still the item a refresh was for). */
  windowsOf(key: string): StaleWindows | undefined {
    const id = this.index.find(this.tag, key);
    return id === NONE ? undefined : this.windows.get(id);
  }

  /** The stale windows of item `id`, if it has any (no key lookup: the hit path already has the id). */
  windowsOfId(id: number): StaleWindows | undefined {
    return this.store.flags[id] & HAS_WINDOWS ? this.windows.get(id) : undefined;
  }

  /** Item `id` as an Entry: value (the store's stable Buffer, shared, read-only) and metadata as stored. */
  entryOf(id: number): Entry {
    const st = this.store;
    const e = new Entry(st.stable(id), st.expiresAt[id], st.rateAt[id], st.rate[id]);
    e.hits = st.hits[id];
    e.bornAt = st.bornAt[id];
    const f = st.flags[id];
    e.negative = (f & NEGATIVE) !== 0;
    e.source = SOURCES[f >> SOURCE_SHIFT];
    if (f & HAS_WINDOWS) e.windows = this.windows.get(id);
    return e;
  }

  /** A remembered NotFound (reads as a miss on the hit paths). */
  isNegative(id: number): boolean {
    return (this.store.flags[id] & NEGATIVE) !== 0;
  }

  /** When item `id` must be dropped: the end of its last stale window, else its expiry (0 = never). */
  private keepUntil(id: number): number {
    const st = this.store;
    return st.flags[id] & HAS_WINDOWS ? this.windows.get(id)!.keepUntil : st.expiresAt[id];
  }

  /**
   * Stores a copy of `e` under `key` (its value goes to the store, its metadata to the store's arrays),
   * replacing what `key` held, as the newest item (unmarked); evicts by CLOCK's order (KeyIndex.victim) while
   * this cache holds more than `maxBytes`. Not cached (and what `key` held dropped) when it alone is over
   * `maxBytes` or the store cannot hold it; not cached when `key` has a lone surrogate. `bytes` is what
   * it is charged: key + value bytes; the per-item overhead is counted in `overheadBytes`. Returns false
   * when not cached. `mayEvict` false: only free room is used — nothing held is evicted or reclaimed for
   * it, and what `key` held stays when it does not fit.
   */
  set(key: string, e: Entry, bytes: number, mayEvict = true): boolean {
    if (bytes > this.maxBytes || (!mayEvict && this.bytes + bytes > this.maxBytes)) {
      if (mayEvict) this.delete(key);
      return false;
    }
    // A key with a lone surrogate would be stored as U+FFFD's bytes: found by neither key, and read back
    // as the other one when the index re-seeds (it re-hashes keys from their stored bytes). Groups refuse
    // such keys before they get here.
    if (!isWellFormed(key)) return false;
    const st = this.store;
    // Hashed once for the lookup of the old item and the insert (making room only removes: same seed).
    const index = this.index;
    const h = index.hash(key);
    // Adopted, not copied, when it is a whole Buffer: an Entry's value is never written to.
    const id = st.put(key, e.value, this.tag, true, mayEvict);
    if (id < 0 && !mayEvict) return false; // nothing was taken back: an old entry stays
    // After the put: making room may have taken `key`'s old item back already.
    const old = index.find(this.tag, key, h);
    if (old !== NONE) this.drop(old, false);
    if (id < 0) return false;
    st.expiresAt[id] = e.expiresAt;
    st.hits[id] = e.hits;
    st.rate[id] = e.rate;
    st.rateAt[id] = e.rateAt;
    st.bornAt[id] = e.bornAt;
    let f = (e.negative ? NEGATIVE : 0) | (SOURCES.indexOf(e.source) << SOURCE_SHIFT);
    if (e.windows !== undefined) {
      f |= HAS_WINDOWS;
      this.windows.set(id, e.windows);
    }
    st.flags[id] = f;
    this.overheadBytes += itemOverhead(st.keyLength(id), e.value.byteLength);
    this.bytes += bytes;
    index.insert(this.tag, id, h);
    while (this.bytes > this.maxBytes && this.evictOldest());
    return true;
  }

  /**
   * Every entry (expired ones included) as [key, store id], newest first (inserted, or last given a second
   * chance by eviction: KeyIndex.victim), without changing the order: valid until the cache next changes
   * (read them in the same tick). Each key is a new string.
   */
  *ids(): IterableIterator<[string, number]> {
    for (let id = this.index.newest(this.tag); id !== NONE; id = this.index.older(id)) {
      yield [this.store.keyOf(id), id];
    }
  }

  delete(key: string): boolean {
    const id = this.index.find(this.tag, key);
    if (id === NONE) return false;
    this.drop(id, false);
    return true;
  }

  /** The store took item `id` back (its page went to another size class): drop it, as an eviction. */
  reclaimed(id: number): void {
    if (this.store.has(id) && this.store.tag[id] === this.tag) this.drop(id, true);
  }

  /**
   * Evicts the entry CLOCK picks (KeyIndex.victim: the oldest not read since it was placed, read ones get
   * a second chance); false when empty.
   */
  evictOldest(): boolean {
    const id = this.index.victim(this.tag);
    if (id === NONE) return false;
    this.drop(id, true);
    return true;
  }

  /** Takes item `id` out of this cache and frees it in the store. */
  private drop(id: number, evicted: boolean): void {
    const st = this.store;
    this.index.remove(this.tag, id);
    if (evicted) this.evictions++;
    const kn = st.keyLength(id);
    const n = st.length(id);
    this.bytes -= kn + n;
    this.overheadBytes -= itemOverhead(kn, n);
    if (st.flags[id] & HAS_WINDOWS) this.windows.delete(id);
    st.free(id);
  }

  /** The current rate (requests per minute) of the entry evicted next, or undefined when empty. */
  coldestRate(now: number): number | undefined {
    const id = this.index.victim(this.tag);
    return id === NONE ? undefined : this.readRate(id, now);
  }

  /** Item `id`'s rate (requests per minute) as of `now`, pending hits folded in (hotkeys.readRate). */
  readRate(id: number, now: number): number {
    const st = this.store;
    const r = readRate(st.loadRate(id), now);
    st.storeRate(id);
    return r;
  }

  /**
   * The `n` entries with the highest rate among the `scan` newest ones and those of the last
   * HOT_SAMPLES sampled hits, hottest first. A hot key is most of the hits, so it is in the sample
   * wherever it sits in the list (its place there is where it was inserted or last given a second
   * chance, KeyIndex.victim); a key read since it was added is among the newest. Scanning a bounded
   * number keeps the cost (~0.1 µs an entry) independent of the cache's size. Changes no order. For the
   * dashboard, not the request path.
   */
  hottest(n: number, scan: number, now: number): { key: string; minuteQps: number; bytes: number }[] {
    const top: { id: number; minuteQps: number }[] = [];
    const st = this.store;
    const seen = new Set<number>();
    const consider = (id: number): void => {
      if (seen.has(id)) return;
      seen.add(id);
      const exp = st.expiresAt[id];
      if (exp !== 0 && exp <= now) return;
      const minuteQps = this.readRate(id, now);
      if (top.length === n && minuteQps <= top[n - 1].minuteQps) return;
      top.push({ id, minuteQps });
      top.sort((a, b) => b.minuteQps - a.minuteQps);
      if (top.length > n) top.pop();
    };
    for (let id = this.index.newest(this.tag); id !== NONE && seen.size < scan; id = this.index.older(id)) {
      consider(id);
    }
    for (const id of this.sampledIds()) consider(id);
    return top.map(({ id, minuteQps }) => ({
      key: st.keyOf(id),
      minuteQps,
      bytes: st.keyLength(id) + st.length(id),
    }));
  }

  /**
   * Ids of this cache's items among its last HOT_SAMPLES sampled hits (a hot key's several times), without
   * changing the order: valid until the cache next changes. Where hot keys are wherever they sit in the
   * list. A sampled id may have left the cache since (skipped), or been reused by another of its items
   * (still one of this cache's: its rate is a true one).
   */
  *sampledIds(): IterableIterator<number> {
    const st = this.store;
    for (const id of this.hitSample) if (id >= 0 && st.has(id) && st.tag[id] === this.tag) yield id;
  }

  clear(): void {
    for (let id = this.index.oldest(this.tag); id !== NONE; id = this.index.oldest(this.tag)) {
      this.drop(id, false);
    }
    this.index.clear(this.tag);
  }

  get items(): number {
    return this.index.size(this.tag);
  }

  stats(): CacheStats {
    return {
      bytes: this.bytes,
      items: this.items,
      gets: this.hits + this.misses,
      hits: this.hits,
      evictions: this.evictions,
    };
  }
}

/**
 * groupcache's shared budget: while main + hot hold more than `maxBytes`, evict the next
 * entry (CLOCK's pick, evictOldest) of the hot cache if it holds more than 1/8 of what the main cache holds, else of the main cache.
 * What they hold is key + value bytes plus per-item overhead beyond the first FREE_OVERHEAD_BYTES of it.
 */
/**
 * Whether main + hot stay within `maxBytes` by enforceBudget's rule with an item of `bytes` (key + value)
 * and `overhead` (itemOverhead) added and `freedBytes` / `freedOverhead` taken out: room without evicting.
 */
export function fitsBudget(
  main: ByteCache,
  hot: ByteCache,
  maxBytes: number,
  bytes: number,
  overhead: number,
  freedBytes = 0,
  freedOverhead = 0,
): boolean {
  const charged = Math.max(
    0,
    main.overheadBytes + hot.overheadBytes - freedOverhead + overhead - FREE_OVERHEAD_BYTES,
  );
  return main.bytes + hot.bytes - freedBytes + bytes + charged <= maxBytes;
}

export function enforceBudget(main: ByteCache, hot: ByteCache, maxBytes: number): void {
  while (
    main.bytes + hot.bytes + Math.max(0, main.overheadBytes + hot.overheadBytes - FREE_OVERHEAD_BYTES) >
    maxBytes
  ) {
    if (!evictOne(main, hot)) return;
  }
}

/** Evicts one entry by groupcache's rule (see enforceBudget); false when both caches are empty. */
export function evictOne(main: ByteCache, hot: ByteCache): boolean {
  const victim = hot.bytes > main.bytes / 8 ? hot : main;
  return victim.evictOldest() || (victim === hot ? main : hot).evictOldest();
}
