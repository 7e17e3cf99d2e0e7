// A byte-bounded LRU of immutable values with expiry and stats, over lru-cache. A Group keeps two of
// them — the main cache (keys this process owns) and the hot cache (mirrors of hot keys owned by peers) —
// under one shared byte budget, evicted the way groupcache does (see `enforceBudget`).

import { LRUCache } from 'lru-cache';
import type { RateState } from './hotkeys.js';
import { readRate } from './hotkeys.js';

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
 * One cached value. `value` is shared by every reader and must never be written to. Times are on the
 * group's clock (ms). `expiresAt`: end of freshness, 0 = never. Past it the entry is kept (stale) only
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

export class ByteCache {
  private readonly lru: LRUCache<string, Entry>;
  gets = 0;
  hits = 0;
  evictions = 0;

  /**
   * @param maxBytes this cache's own ceiling (the group's budget still applies on top, see enforceBudget)
   * @param now the group's clock, read only for entries that expire
   */
  constructor(
    readonly maxBytes: number,
    private readonly now: () => number,
  ) {
    this.lru = new LRUCache<string, Entry>({
      maxSize: Math.max(1, maxBytes),
      sizeCalculation: (e, k) => entryBytes(k, e.value),
      dispose: (_e, _k, reason) => {
        if (reason === 'evict') this.evictions++;
      },
    });
  }

  /**
   * The hit path: the fresh entry for `key` (marked most recently used, hit counted) or undefined. An
   * expired entry reads as a miss; it is dropped unless a stale window still keeps it (see `getKept`).
   * lru-cache's own TTL is not used because it runs on performance.now(), not on the group's (fakeable)
   * clock.
   */
  get(key: string): Entry | undefined {
    this.gets++;
    const e = this.lru.get(key);
    if (e === undefined) return undefined;
    // The expired case is out of line: this function stays small enough for V8 to inline it.
    if (e.expiresAt !== 0 && e.expiresAt <= this.now()) return this.expired(key, e);
    this.hits++;
    e.hits++;
    return e;
  }

  /** An expired entry reads as a miss; it is dropped unless a stale window still keeps it. */
  private expired(key: string, e: Entry): undefined {
    if (e.keepUntil <= this.now()) this.lru.delete(key);
    return undefined;
  }

  /**
   * The entry for `key` even if it expired, as long as a stale window keeps it (the miss path, after
   * `get` said miss); undefined if none. Not counted as a lookup: it re-reads the one `get` counted.
   */
  getKept(key: string): Entry | undefined {
    const e = this.lru.peek(key);
    if (e === undefined) return undefined;
    if (e.keepUntil !== 0 && e.keepUntil <= this.now()) {
      this.lru.delete(key);
      return undefined;
    }
    return e;
  }

  /** Like get, without counting or touching recency (for re-checks inside a flight). */
  peek(key: string): Entry | undefined {
    const e = this.lru.peek(key);
    if (e === undefined) return undefined;
    if (e.expiresAt !== 0) {
      const now = this.now();
      if (e.expiresAt <= now) {
        if (e.keepUntil <= now) this.lru.delete(key);
        return undefined;
      }
    }
    return e;
  }

  /** Whether `key` is held at all, fresh or stale (no clock read, no counting). */
  has(key: string): boolean {
    return this.lru.has(key);
  }

  /** Stores `e` unless it alone is over this cache's ceiling (then it is simply not cached). */
  set(key: string, e: Entry, bytes: number): boolean {
    if (bytes > this.maxBytes) {
      this.lru.delete(key);
      return false;
    }
    this.lru.set(key, e, { size: bytes });
    return true;
  }

  /** Every entry (expired ones included), most recently used first, without touching recency. */
  *entries(): IterableIterator<[string, Entry]> {
    for (const [k, e] of this.lru.entries()) yield [k, e];
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  /** Evicts the least recently used entry; false when empty. */
  evictOldest(): boolean {
    return this.lru.pop() !== undefined;
  }

  /** The least recently used entry's current rate (requests per minute), or undefined when empty. */
  coldestRate(now: number): number | undefined {
    for (const e of this.lru.rvalues()) if (e !== undefined) return readRate(e, now);
    return undefined;
  }

  /**
   * The `n` entries with the highest rate among the `scan` most recently used ones, hottest first. Hot
   * keys are recently used, and scanning a bounded prefix keeps the cost (~0.1 µs an entry) independent of
   * the cache's size. Reads recency without changing it. For the dashboard, not the request path.
   */
  hottest(n: number, scan: number, now: number): { key: string; minuteQps: number; bytes: number }[] {
    const top: { key: string; minuteQps: number; bytes: number }[] = [];
    let seen = 0;
    for (const [key, e] of this.lru.entries()) {
      if (seen++ >= scan) break;
      if (e.expiresAt !== 0 && e.expiresAt <= now) continue;
      const minuteQps = readRate(e, now);
      if (top.length === n && minuteQps <= top[n - 1].minuteQps) continue;
      top.push({ key, minuteQps, bytes: entryBytes(key, e.value) });
      top.sort((a, b) => b.minuteQps - a.minuteQps);
      if (top.length > n) top.pop();
    }
    return top;
  }

  clear(): void {
    this.lru.clear();
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }

  get items(): number {
    return this.lru.size;
  }

  stats(): CacheStats {
    return {
      bytes: this.bytes,
      items: this.items,
      gets: this.gets,
      hits: this.hits,
      evictions: this.evictions,
    };
  }
}

/**
 * groupcache's shared budget: while main + hot hold more than `maxBytes`, evict the least recently used
 * entry of the hot cache if it holds more than 1/8 of what the main cache holds, else of the main cache.
 */
export function enforceBudget(main: ByteCache, hot: ByteCache, maxBytes: number): void {
  while (main.bytes + hot.bytes > maxBytes) {
    const victim = hot.bytes > main.bytes / 8 ? hot : main;
    if (!victim.evictOldest() && !(victim === hot ? main : hot).evictOldest()) return;
  }
}
