// A byte-bounded LRU of immutable values with expiry and stats, over lru-cache. A Group keeps two of
// them — the main cache (keys this process owns) and the hot cache (mirrors of hot keys owned by peers) —
// under one shared byte budget, evicted the way groupcache does (see `enforceBudget`).

import { LRUCache } from 'lru-cache';
import type { RateState } from './hotkeys.js';
import { readRate } from './hotkeys.js';

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
 * One cached value. `value` is shared by every reader and must never be written to. `expiresAt` is on
 * the group's clock (ms); 0 = never. The rate fields are the key's decayed request counter (hotkeys.ts).
 */
export class Entry implements RateState {
  hits: number;
  rate: number;
  rateAt: number;
  constructor(
    readonly value: Buffer,
    readonly expiresAt: number,
    now: number,
    minuteQps: number,
  ) {
    this.hits = 0;
    this.rate = minuteQps;
    this.rateAt = now;
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
   * The hit path: the live entry for `key` (marked most recently used, hit counted) or undefined. An
   * expired entry is dropped and reads as a miss. lru-cache's own TTL is not used because it runs on
   * performance.now(), not on the group's (fakeable) clock.
   */
  get(key: string): Entry | undefined {
    this.gets++;
    const e = this.lru.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt !== 0 && e.expiresAt <= this.now()) {
      this.lru.delete(key);
      return undefined;
    }
    this.hits++;
    e.hits++;
    return e;
  }

  /** Like get, without counting or touching recency (for re-checks inside a flight). */
  peek(key: string): Entry | undefined {
    const e = this.lru.peek(key);
    if (e === undefined) return undefined;
    if (e.expiresAt !== 0 && e.expiresAt <= this.now()) {
      this.lru.delete(key);
      return undefined;
    }
    return e;
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
