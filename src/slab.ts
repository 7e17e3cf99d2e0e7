// The value store under the caches: small values live in a few large pages cut into fixed-size chunks
// (memcached's slab classes), bigger ones in a Buffer of their own, and what the caches know about each
// item (expiry, rate, where its bytes are) in typed arrays indexed by an item id. So a million cached
// values are a few hundred page Buffers and a handful of arrays to the garbage collector, not a million
// Buffers and Entry objects it has to walk on every collection. docs/memory.md has the design and costs.

import { MMAP_VALUE_BYTES } from './allocator.js';
import { Limbo } from './limbo.js';

/** Values up to this many bytes go in slab chunks; bigger values get a Buffer of their own. */
export const SLAB_MAX_VALUE = 1024;
/** Chunk sizes grow by this factor (memcached's default -f 1.25): at most ~20 % of a chunk unused. */
const GROWTH = 1.25;
/** A free chunk holds the index of the next free chunk of its page in its first 4 bytes. */
const MIN_CHUNK = 8;

/** Chunk sizes, 8-byte aligned, smallest first; the last fits SLAB_MAX_VALUE. */
export const CHUNK_SIZES: readonly number[] = (() => {
  const sizes: number[] = [];
  const last = align8(SLAB_MAX_VALUE);
  for (let s = MIN_CHUNK; s < last; s = Math.max(s + 8, align8(Math.ceil(s * GROWTH)))) sizes.push(s);
  sizes.push(last);
  return sizes;
})();

/** The class of a chunk that holds `len` value bytes, by ceil(len / 8). */
const CLASS_OF: Uint8Array = (() => {
  const t = new Uint8Array((align8(SLAB_MAX_VALUE) >> 3) + 1);
  let c = 0;
  for (let i = 0; i < t.length; i++) {
    while (CHUNK_SIZES[c] < i << 3) c++;
    t[i] = c;
  }
  return t;
})();

/**
 * What an item costs beyond its key and value bytes and their chunks: 66 B of this store's item table and
 * 21 B of the key index's (keyindex.ts), 4–8 B of hash buckets, with room for the arrays' growth (they
 * double). Nothing per item is in the JS heap. Measured at 1M items (scripts/bench/memory.ts), rounded up.
 */
export const ITEM_OVERHEAD = 96;
/** A value with a Buffer of its own also pays for that Buffer: V8's objects, the backing store, malloc. */
export const OWN_BUFFER_OVERHEAD = 320;
/** Share of the limbo allowance at which the store asks V8 to collect (limbo.ts). */
const ASK_AT = 0.5;
/** Ids the item table starts with (and never shrinks below). */
const INITIAL_IDS = 1024;
/** Own-buffer values are malloc'd to this granularity (glibc chunks): charged, so counted. */
const OWN_ALIGN = 16;
/**
 * How fast the heap-hole reserve comes into force once a value of MMAP_VALUE_BYTES or more is held: by at
 * least this much per put (by the put's size when larger). Small items fill the reserve while no large
 * value is held; had the first large put cleared it all, that one get would evict a reserve's worth of
 * them (measured: 98k items of 200 B, 40–79 ms, in a 64 MiB group with a 32 MiB reserve). At 256 KiB a put
 * displaces ~1k such items (~1 ms); a 32 MiB reserve is in force after ~128 puts, or 16 puts of 2 MB.
 */
const RESERVE_STEP_BYTES = 256 * 1024;

/**
 * Stable copies of slab values kept for getCached/getEntry callers (see `stable`): at most this many,
 * slices of Node's 8 KiB Buffer pool (a view object each, ~100 B). A kept slice keeps its pool chunk:
 * copies made one after another share chunks, so for small values this is a few MiB (~4 MiB measured
 * for 32-byte values); the bound in the worst case is STABLE_SLOTS × 8 KiB.
 */
const STABLE_SLOTS = 16384;
/**
 * stable() calls per verdict on whether new copies are kept: while at least half of them find their copy
 * in the table, every new copy is kept; below that none is (each such call allocates its copy, as a miss
 * does anyway), and a table of the ids asked for (no objects) tells when keeping would pay again. A
 * table that keeps copies nobody asks for again (reads spread over more keys than it holds) only gives
 * every young-generation collection ~16k Buffers (1.4 MB) to copy: the scavenges of a 1M-key hit run
 * took 3–5 ms (median) instead of 0.4. Keeping one new copy in 64 instead had them promoted (~330 KB a
 * scavenge) and a full collection every ~2 s.
 */
const STABLE_WINDOW = 4096;
/** Largest value `copyOut` copies by 32-bit words (larger ones through Buffer.copy: faster there). */
const WORD_COPY_MAX = 128;

/** False when `s` has a lone UTF-16 surrogate (no UTF-8 form: it would be written as U+FFFD). */
export function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export interface SlabOptions {
  /**
   * Most bytes of pages + own-buffer values held at once. Past it, a page is taken back: the items in
   * the page with the fewest live chunks are handed to `reclaim`. Owners size it as their byte budget
   * plus slack for partly used pages, so this happens only when the value sizes shift.
   */
  limitBytes: number;
  /**
   * The part of limitBytes only pages may use (room for partly used pages of each size class): a value
   * in a Buffer of its own is stored only while everything held stays within limitBytes - slackBytes.
   * Default 0.
   */
  slackBytes?: number;
  /**
   * Of limitBytes - slackBytes, what values (or keys) of MMAP_VALUE_BYTES (128 KiB) or more may not use:
   * room for the holes such values leave in glibc's heap when its mmap threshold floats (allocator.ts).
   * Costs that much capacity for large values; pages (small items) may still use it. Default 0.
   */
  heapHoleReserveBytes?: number;
  /**
   * Memory the store dropped that the garbage collector has not freed yet ("limbo", see `drop`) that
   * does not count against limitBytes: up to this much, a dropped value makes room at once; past it,
   * the excess counts as held until the collector catches up. Owners put it in their fixed allowance
   * above the budget. Default 0 (limbo always counts).
   */
  limboAllowanceBytes?: number;
  /**
   * When limbo passes half its allowance or refuses a value, make V8 collect soon (limbo.ts: a 64 MiB
   * ArrayBuffer allocated and dropped, never touched; once per 16 MiB churned at most, and no more often
   * than 5 ms per MiB of JS heap). Default true; false leaves collections to V8, and under churn of large
   * values most of them are then refused (~12 % cached in the churn bench).
   */
  askForCollection?: boolean;
  /** Page size. Default: 1 MiB, less for small limits (at least 64 KiB; chunks never span pages). */
  pageBytes?: number;
  /**
   * The store needs item `id` back: drop it from its index and call `free(id)` before returning.
   * Called only from inside `put` (the page it sits in is being given to another size class).
   */
  reclaim: (id: number) => void;
  /**
   * The per-id arrays shrank to `capacity` ids (every id in use is below it): owners that keep arrays by
   * item id (the key index) shrink theirs. Called from inside `put`, before it places anything.
   */
  idsShrunk?: (capacity: number) => void;
  /**
   * Drop the least recently used item (by the owner's rule: which cache, which item) and `free` it;
   * false when there is none. Called from inside `put` when a value over SLAB_MAX_VALUE needs room that
   * only live items hold: without it a store full of large values would refuse every new one, and the
   * owner's LRU would never get to evict. Default: none (such a put fails).
   */
  evict?: () => boolean;
}

export interface SlabStats {
  /** Items stored (slab + own buffers). */
  items: number;
  /** Ids the per-id arrays have room for (grows by doubling, shrinks when under a quarter is used). */
  idCapacity: number;
  /** Pages allocated (in use or kept empty for reuse) × page size. */
  pageBytes: number;
  pages: number;
  /** Empty pages kept for any size class. */
  freePages: number;
  /** Bytes of the chunks that hold live items (header + value + rounding). */
  chunkBytes: number;
  /** Values in Buffers of their own: count and bytes. */
  ownItems: number;
  ownBytes: number;
  /** Dropped (evicted values, released pages) but not yet freed by the garbage collector. */
  limboBytes: number;
  /** Collections the store asked V8 for: limbo half full, or in the way of a value (limbo.ts). */
  collectionsAsked: number;
  /** pageBytes + ownBytes + limboBytes; what `limitBytes` bounds is this less the limbo allowance. */
  heldBytes: number;
  limitBytes: number;
  /** Of limitBytes, what values of 128 KiB or more may not use (SlabOptions.heapHoleReserveBytes). */
  heapHoleReserveBytes: number;
  /** The part of it in force now: it comes into force over the puts after the first large value. */
  heapHoleReserveInForceBytes: number;
  /** Pages taken from one size class for another (items evicted out of LRU order to do it). */
  pagesReassigned: number;
  /** Items handed to `reclaim`. */
  itemsReclaimed: number;
}

/** A decayed rate state read out of the arrays and written back (readRate works on objects). */
export interface ItemRate {
  hits: number;
  rate: number;
  rateAt: number;
}

export class SlabStore {
  readonly limitBytes: number;
  readonly slackBytes: number;
  readonly heapHoleReserveBytes: number;
  readonly limboAllowanceBytes: number;
  readonly pageBytes: number;
  // ── item table, by id ──
  /** Page of a slab item; -1 = own buffer; -2 = id not in use. */
  private page: Int32Array;
  /** Byte offset of the chunk in its page. */
  private off: Int32Array;
  /** Value length in bytes. */
  private len: Int32Array;
  /** Where the item's key bytes (UTF-8) are: page (-1 = a Buffer of its own), offset, length. */
  private kpage: Int32Array;
  private koff: Int32Array;
  private klen: Int32Array;
  /** Owner's tag (e.g. which cache), kept for `reclaim` callers. */
  tag: Uint8Array;
  /** Group clock (ms) at which the item expires; 0 = never. */
  expiresAt: Float64Array;
  /** Decayed request rate (hotkeys.ts): estimate, as of, and hits not yet folded in. */
  rate: Float64Array;
  rateAt: Float64Array;
  hits: Uint32Array;
  /** Group clock (ms) at which the value was produced (loaded or set, at its owner), for `Age`. */
  bornAt: Float64Array;
  /** The owner's bits (e.g. negative entry, source, has stale windows). */
  flags: Uint8Array;
  /**
   * Ids given back, as a binary min-heap: a new item takes the lowest free id, so live ids stay packed
   * low and, after a spike of small items has been evicted, the per-id arrays can shrink (`shrinkIds`).
   */
  private freeIds: Int32Array;
  private freeIdCount = 0;
  /** One past the highest id in use (ids at or above it are free; the heap may still list some). */
  private nextId = 0;
  /** Told the new capacity when the per-id arrays shrink (the key index shrinks its own). */
  private readonly idsShrunk: (capacity: number) => void;
  // ── pages ──
  private readonly pages: (Buffer | undefined)[] = [];
  /** Each page as 32-bit words, for `copyOut` (one view per page, dropped with it). */
  private readonly pageWords: (Int32Array | undefined)[] = [];
  /** The Buffer pool the last `copyOut` wrote into, and the same memory as 32-bit words. */
  private poolBuffer: ArrayBufferLike | undefined;
  private poolWords = new Int32Array(0);
  /** Size class of a page; -1 = empty (in the free pool or released). */
  private pageClass: Int16Array;
  private pageLive: Int32Array;
  /** Head of the page's list of freed chunks (chunk index; -1 = none). */
  private pageFreeHead: Int32Array;
  /** Chunks handed out so far from the front of the page (the rest was never touched). */
  private pageCarved: Int32Array;
  /** Position in its class's `partial` list; -1 = full (or empty). */
  private pagePartialAt: Int32Array;
  /** Per class: pages with a free or uncarved chunk. */
  private readonly partial: number[][] = CHUNK_SIZES.map(() => []);
  /** Empty pages kept allocated for any class. */
  private readonly freePool: number[] = [];
  /** Page ids whose Buffer was released (reused before new ids). */
  private readonly deadPages: number[] = [];
  private pagesHeld = 0;
  /** Page being emptied by `reassign`: not returned to the pool by `free`. */
  private draining = -1;
  /** Page holding the key chunk of a `put` in progress: `reassign` must not take it. */
  private pinned = -1;
  /** False during a `put` that may not evict or reclaim items to make room. */
  private mayEvict = true;
  // ── own buffers ──
  private readonly own = new Map<number, Buffer>();
  /** Keys over SLAB_MAX_VALUE bytes (rare: keys are usually short), by item id. */
  private readonly ownKeys = new Map<number, Buffer>();
  private ownBytes = 0;
  /** Values of MMAP_VALUE_BYTES or more held (see `largeItems`). */
  private large = 0;
  /** The part of the heap-hole reserve in force now (see `reserveInForce`). */
  private inForce = 0;
  /** Page bytes `trimForReserve` may still give back: what the reserve rose by and pages have not made room for. */
  private trimOwed = 0;
  /** For comparing a non-ASCII key with stored bytes without allocating (grown to the longest such key). */
  private scratch = Buffer.allocUnsafeSlow(256);
  /**
   * Bytes dropped by the store (evicted own-buffer values, released pages) that the garbage collector
   * has not freed yet: still in RSS, so still counted against the limit until it has (limbo.ts).
   */
  readonly limbo: Limbo;
  // ── stable copies for callers that keep the value (see `stable`) ──
  private readonly stableIds = new Int32Array(STABLE_SLOTS).fill(-1);
  private readonly stableBufs: (Buffer | undefined)[] = new Array(STABLE_SLOTS).fill(undefined);
  /**
   * This window's stable() calls of slab values, and how many did not find their copy (see
   * STABLE_WINDOW; misses are counted, so that a call that finds its copy does one increment).
   */
  private stableCalls = 0;
  private stableMisses = 0;
  private stableKeep = true;
  /** While copies are not kept: the id last asked for, by slot, to count the calls that would have hit. */
  private readonly stableAsked = new Int32Array(STABLE_SLOTS).fill(-1);
  // ── counters ──
  private items = 0;
  private chunkBytes = 0;
  private pagesReassigned = 0;
  private itemsReclaimed = 0;
  private readonly reclaim: (id: number) => void;
  private readonly evict: () => boolean;
  /** What readRate works on for one item at a time (loadRate / storeRate), so a read allocates nothing. */
  readonly rateCursor: ItemRate = { hits: 0, rate: 0, rateAt: 0 };

  constructor(opts: SlabOptions) {
    const { limitBytes } = opts;
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) {
      throw new RangeError(`SlabStore: limitBytes must be an integer >= 0, got ${limitBytes}`);
    }
    this.limitBytes = limitBytes;
    this.slackBytes = Math.min(limitBytes, Math.max(0, opts.slackBytes ?? 0));
    this.heapHoleReserveBytes = Math.max(0, opts.heapHoleReserveBytes ?? 0);
    this.limboAllowanceBytes = Math.max(0, opts.limboAllowanceBytes ?? 0);
    this.limbo = new Limbo({
      nudge: opts.askForCollection,
      followUpAboveBytes: this.limboAllowanceBytes * ASK_AT,
    });
    this.pageBytes = opts.pageBytes ?? defaultPageBytes(limitBytes);
    const lastChunk = CHUNK_SIZES[CHUNK_SIZES.length - 1];
    if (!Number.isSafeInteger(this.pageBytes) || this.pageBytes < lastChunk || this.pageBytes > 2 ** 30) {
      throw new RangeError(`SlabStore: pageBytes must be an integer in [${lastChunk}, 2^30]`);
    }
    this.reclaim = opts.reclaim;
    this.idsShrunk = opts.idsShrunk ?? (() => {});
    this.evict = opts.evict ?? (() => false);
    const cap = INITIAL_IDS;
    this.page = new Int32Array(cap).fill(-2);
    this.off = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.kpage = new Int32Array(cap);
    this.koff = new Int32Array(cap);
    this.klen = new Int32Array(cap);
    this.tag = new Uint8Array(cap);
    this.expiresAt = new Float64Array(cap);
    this.rate = new Float64Array(cap);
    this.rateAt = new Float64Array(cap);
    this.hits = new Uint32Array(cap);
    this.bornAt = new Float64Array(cap);
    this.flags = new Uint8Array(cap);
    this.freeIds = new Int32Array(cap);
    const maxPages = Math.floor(limitBytes / this.pageBytes) + 1;
    this.pageClass = new Int16Array(maxPages).fill(-1);
    this.pageLive = new Int32Array(maxPages);
    this.pageFreeHead = new Int32Array(maxPages).fill(-1);
    this.pageCarved = new Int32Array(maxPages);
    this.pagePartialAt = new Int32Array(maxPages).fill(-1);
  }

  /** Bytes a value of `len` bytes takes here beyond `len` itself (chunk rounding or own-buffer cost). */
  static storeOverhead(len: number): number {
    if (len <= SLAB_MAX_VALUE) return CHUNK_SIZES[CLASS_OF[(len + 7) >> 3]] - len;
    return OWN_BUFFER_OVERHEAD + alignUp(len + 8, OWN_ALIGN) - len;
  }

  /** What of the limit a value (or key) of `bytes` may not use: the heap-hole reserve from MMAP_VALUE_BYTES on. */
  reserveFor(bytes: number): number {
    return bytes >= MMAP_VALUE_BYTES ? this.heapHoleReserveBytes : 0;
  }

  /**
   * The part of the heap-hole reserve enforced now: 0 while no value of MMAP_VALUE_BYTES or more is held;
   * from the first one on it rises by RESERVE_STEP_BYTES (or the put's size) per put, up to the whole
   * reserve, so that the small items it displaces go a few hundred at a time. Owners keep their budget
   * this far below the limit (Group), and large values are placed only this far under it. `reserveFor`
   * (the whole reserve) still decides whether a value could ever be held.
   */
  get reserveInForce(): number {
    return this.inForce;
  }

  /**
   * Values of MMAP_VALUE_BYTES or more held: while there are any, owners keep their budget below the
   * heap-hole reserve too (Group), so that small items do not fill the room a large put must then clear.
   */
  get largeItems(): number {
    return this.large;
  }

  /**
   * Copies `key` (as UTF-8) and `value` in and returns their item id (metadata zeroed, `tag` recorded),
   * or -1 when they cannot be held under `limitBytes` even after taking pages back. May call `reclaim`
   * first. `adopt`: a value over SLAB_MAX_VALUE that is a whole Buffer nobody will write to again is kept
   * as it is instead of copied (a slice is always copied: keeping it would keep its whole parent buffer).
   * `mayEvict` false: only free room is used — no item is evicted or reclaimed to make room (a pushed
   * handoff entry must never push out this process's own), and the put fails instead.
   */
  put(key: string, value: Uint8Array, tag: number, adopt = false, mayEvict = true): number {
    // A safe point to shrink: no scan of the ids is under way (reassign runs inside a put).
    if (this.items * 4 < this.page.length && this.page.length > INITIAL_IDS) this.shrinkIds();
    if (mayEvict) return this.putItem(key, value, tag, adopt);
    this.mayEvict = false;
    try {
      return this.putItem(key, value, tag, adopt);
    } finally {
      this.mayEvict = true;
    }
  }

  private putItem(key: string, value: Uint8Array, tag: number, adopt: boolean): number {
    this.trimForReserve();
    // The key first, in a chunk (or a Buffer) of its own: a separate chunk wastes less than one chunk for
    // key + value would (11 + 32 bytes: chunks of 16 + 32, not 56), and a 1 KiB value keeps its exact
    // 1 KiB chunk. Its page is pinned so that making room for the value cannot take it back.
    const kn = Buffer.byteLength(key, 'utf8');
    let kpage = -1;
    let koff = 0;
    let kbuf: Buffer | undefined;
    if (kn <= SLAB_MAX_VALUE) {
      const c = CLASS_OF[(kn + 7) >> 3];
      kpage = this.pageWithRoom(c);
      if (kpage < 0) return -1;
      koff = this.takeChunk(kpage, c);
      this.chunkBytes += CHUNK_SIZES[c];
      this.pinned = kpage;
    } else {
      if (!this.makeRoom(kn)) return -1;
      // A Buffer of its own, not a slice of Node's pool (keys under 4 KiB would be): what limbo tracks when
      // it is dropped is its ArrayBuffer, which must be this key's alone.
      kbuf = Buffer.allocUnsafeSlow(kn);
      kbuf.write(key, 0, kn, 'utf8');
      this.ownBytes += kn;
    }
    const n = value.byteLength;
    let page = -1;
    let off = 0;
    let buf: Buffer | undefined;
    try {
      if (n <= SLAB_MAX_VALUE) {
        const c = CLASS_OF[(n + 7) >> 3];
        page = this.pageWithRoom(c);
        if (page >= 0) off = this.takeChunk(page, c);
      } else if (this.makeRoom(n, kbuf === undefined ? this.pageBytes : kn)) {
        if (adopt && Buffer.isBuffer(value) && value.byteOffset === 0 && value.buffer.byteLength === n)
          buf = value;
        else {
          buf = Buffer.allocUnsafeSlow(n);
          buf.set(value);
        }
      }
    } finally {
      this.pinned = -1;
    }
    if (page < 0 && buf === undefined) {
      if (kbuf === undefined) this.freeChunk(kpage, koff);
      else this.ownBytes -= kn;
      return -1;
    }
    const id = this.newId();
    if (kbuf === undefined) {
      this.pages[kpage]!.write(key, koff, kn, 'utf8');
    } else this.ownKeys.set(id, kbuf);
    this.kpage[id] = kpage;
    this.koff[id] = koff;
    this.klen[id] = kn;
    if (buf === undefined) {
      this.pages[page]!.set(value, off);
      this.chunkBytes += CHUNK_SIZES[this.pageClass[page]];
      this.page[id] = page;
      this.off[id] = off;
    } else {
      this.own.set(id, buf);
      this.ownBytes += n;
      if (n >= MMAP_VALUE_BYTES) this.large++;
      this.page[id] = -1;
      this.off[id] = 0;
    }
    this.len[id] = n;
    this.tag[id] = tag;
    this.expiresAt[id] = 0;
    this.rate[id] = 0;
    this.rateAt[id] = 0;
    this.hits[id] = 0;
    this.bornAt[id] = 0;
    this.flags[id] = 0;
    this.items++;
    if (this.large > 0 && this.inForce < this.heapHoleReserveBytes) {
      const rise = Math.min(this.heapHoleReserveBytes - this.inForce, Math.max(RESERVE_STEP_BYTES, n));
      this.inForce += rise;
      this.trimOwed += rise;
    }
    return id;
  }

  /** Releases item `id` (its chunk is reused by later puts; a stable copy already handed out stays valid). */
  free(id: number): void {
    const page = this.page[id];
    if (page === -2) throw new Error(`SlabStore.free: item ${id} is not in use`);
    if (page === -1) {
      const n = this.len[id];
      this.ownBytes -= n;
      if (n >= MMAP_VALUE_BYTES && --this.large === 0) this.inForce = this.trimOwed = 0;
      this.drop(this.own.get(id)!.buffer, n);
      this.own.delete(id);
    } else {
      this.freeChunk(page, this.off[id]);
      const s = id & (STABLE_SLOTS - 1);
      if (this.stableIds[s] === id) {
        this.stableIds[s] = -1;
        this.stableBufs[s] = undefined;
      }
    }
    const kpage = this.kpage[id];
    if (kpage >= 0) this.freeChunk(kpage, this.koff[id]);
    else {
      const kn = this.klen[id];
      this.ownBytes -= kn;
      this.drop(this.ownKeys.get(id)!.buffer, kn);
      this.ownKeys.delete(id);
    }
    this.page[id] = -2;
    this.items--;
    if (this.freeIdCount === this.freeIds.length) {
      const f = new Int32Array(this.freeIds.length * 2);
      f.set(this.freeIds);
      this.freeIds = f;
    }
    // sift up
    const h = this.freeIds;
    let i = this.freeIdCount++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent] <= id) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = id;
  }

  has(id: number): boolean {
    return id >= 0 && id < this.nextId && this.page[id] !== -2;
  }

  /** The value's length in bytes. */
  length(id: number): number {
    return this.len[id];
  }

  /** The key's length in bytes (UTF-8). */
  keyLength(id: number): number {
    return this.klen[id];
  }

  /**
   * Whether item `id`'s key is `key`, allocating nothing: an ASCII key is compared code unit by byte;
   * any other is encoded into a scratch buffer first. A key with a lone surrogate (no UTF-8 form) equals
   * no stored key.
   */
  keyEquals(id: number, key: string): boolean {
    const n = this.klen[id];
    const kp = this.kpage[id];
    const buf = kp >= 0 ? this.pages[kp]! : this.ownKeys.get(id)!;
    const off = kp >= 0 ? this.koff[id] : 0;
    // UTF-8 is never shorter than UTF-16 code units, and as long only when every unit is ASCII.
    if (n < key.length) return false;
    if (n === key.length) {
      for (let i = 0; i < n; i++) {
        const c = key.charCodeAt(i);
        if (c !== buf[off + i] || c >= 0x80) return false;
      }
      return true;
    }
    if (Buffer.byteLength(key, 'utf8') !== n) return false;
    // A lone surrogate is written as U+FFFD's bytes: without this, "\uD800" would equal a stored "\uFFFD"
    // (reached only after a full 32-bit hash match, so the scan costs nothing on the hit path).
    if (!isWellFormed(key)) return false;
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafeSlow(n);
    this.scratch.write(key, 0, n, 'utf8');
    return buf.compare(this.scratch, 0, n, off, off + n) === 0;
  }

  /** Item `id`'s key (a new string). */
  keyOf(id: number): string {
    const kp = this.kpage[id];
    if (kp < 0) return this.ownKeys.get(id)!.toString('utf8');
    const off = this.koff[id];
    return this.pages[kp]!.toString('utf8', off, off + this.klen[id]);
  }

  /** True if the value lives in a slab chunk (≤ SLAB_MAX_VALUE), false if in a Buffer of its own. */
  inSlab(id: number): boolean {
    return this.page[id] >= 0;
  }

  /** A new Buffer with a copy of the value (the caller owns it). */
  copy(id: number): Buffer {
    const page = this.page[id];
    if (page >= 0) return this.copyOut(page, this.off[id], this.len[id]);
    const out = Buffer.allocUnsafe(this.len[id]);
    out.set(this.own.get(id)!);
    return out;
  }

  /**
   * A new Buffer (a slice of Node's pool) with the `n` bytes at `start` of `page`. Up to WORD_COPY_MAX
   * bytes they are copied 32 bits at a time through views made once per page and once per pool chunk:
   * `Buffer.copy` makes a view of the source range for every call (Node's _copyActual), so a copy cost
   * the slice and that view, ~195 B of JS heap, where this costs the slice only, ~100 B, in about the
   * same time (measured at 32–100 B; at 256 B the loop took ~1.5× as long).
   */
  private copyOut(page: number, start: number, n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    const at = out.byteOffset;
    // Node aligns its pool's slices to 8 bytes, and chunks are 8-byte aligned: the check is for a pool
    // someone else set up differently (Buffer.poolSize) or a value too large for the pool.
    if (n > WORD_COPY_MAX || n === 0 || ((at | start) & 3) !== 0) {
      this.pages[page]!.copy(out, 0, start, start + n);
      return out;
    }
    const pool = out.buffer;
    if (pool !== this.poolBuffer) {
      this.poolBuffer = pool;
      this.poolWords = new Int32Array(pool, 0, pool.byteLength >> 2);
    }
    const src = this.pageWords[page]!;
    const dst = this.poolWords;
    const words = n >> 2;
    const s = start >> 2;
    const d = at >> 2;
    for (let i = 0; i < words; i++) dst[d + i] = src[s + i];
    const bytes = this.pages[page]!;
    for (let i = words << 2; i < n; i++) out[i] = bytes[start + i];
    return out;
  }

  /** Copies the value into `target` at `at`; returns the number of bytes written (the value's length). */
  readInto(id: number, target: Uint8Array, at = 0): number {
    const n = this.len[id];
    const page = this.page[id];
    if (page === -1) target.set(this.own.get(id)!, at);
    else {
      const start = this.off[id];
      target.set(this.pages[page]!.subarray(start, start + n), at);
    }
    return n;
  }

  /** The value decoded with `encoding` (one string allocated, no Buffer). */
  toString(id: number, encoding: 'utf8' | 'latin1'): string {
    const page = this.page[id];
    if (page === -1) return this.own.get(id)!.toString(encoding);
    const start = this.off[id];
    return this.pages[page]!.toString(encoding, start, start + this.len[id]);
  }

  /**
   * A Buffer with the value that never changes, for callers that keep it (a socket write, a gRPC reply):
   * the value's own Buffer, or for a slab value a copy, kept in a small direct-mapped table so repeated
   * reads of a hot item return the same Buffer without allocating (while the table is useful: see
   * STABLE_WINDOW). The copy outlives the item.
   */
  stable(id: number): Buffer {
    const s = id & (STABLE_SLOTS - 1);
    // The hit of a hot item, kept to one read of the table and one count: the rest is out of line. The
    // table holds slab values only (and `free` clears an id's slot), so it is read before the page.
    if (this.stableIds[s] === id && this.stableKeep) {
      if (++this.stableCalls === STABLE_WINDOW) this.stableVerdict();
      return this.stableBufs[s]!;
    }
    const page = this.page[id];
    if (page === -1) return this.own.get(id)!;
    return this.stableCopy(id, page, s);
  }

  /** stable() when the table has no copy of `id` to hand out, or copies are not kept now. */
  private stableCopy(id: number, page: number, s: number): Buffer {
    // Whether this call finds (or, while copies are not kept, would find) its copy: in a direct-mapped
    // table that keeps every copy, a slot holds the copy of the last id asked for in it.
    if (this.stableKeep) this.stableMisses++;
    else if (this.stableAsked[s] !== id) {
      this.stableAsked[s] = id;
      this.stableMisses++;
    }
    if (++this.stableCalls === STABLE_WINDOW) this.stableVerdict();
    if (this.stableIds[s] === id) return this.stableBufs[s]!;
    // A pool slice, not a Buffer of its own: an ArrayBuffer per copy made every young collection sweep
    // (and free) thousands of them, 26 ms scavenges in a cold-key getCached loop.
    const out = this.copyOut(page, this.off[id], this.len[id]);
    if (this.stableKeep) {
      this.stableIds[s] = id;
      this.stableBufs[s] = out;
    }
    return out;
  }

  /** Keep new stable copies while at least half of this window's calls found theirs (or would have). */
  private stableVerdict(): void {
    const keep = this.stableMisses * 2 <= STABLE_WINDOW;
    if (!keep && this.stableKeep) this.stableAsked.set(this.stableIds);
    this.stableKeep = keep;
    this.stableCalls = 0;
    this.stableMisses = 0;
  }

  /** Loads item `id`'s rate into `rateCursor` (for readRate), see `storeRate`. */
  loadRate(id: number): ItemRate {
    const c = this.rateCursor;
    c.hits = this.hits[id];
    c.rate = this.rate[id];
    c.rateAt = this.rateAt[id];
    return c;
  }

  /** Writes `rateCursor` back to item `id`. */
  storeRate(id: number): void {
    const c = this.rateCursor;
    this.hits[id] = c.hits;
    this.rate[id] = c.rate;
    this.rateAt[id] = c.rateAt;
  }

  stats(): SlabStats {
    const pageBytes = this.pagesHeld * this.pageBytes;
    // A scan now: stats are read outside the allocation path (limbo.ts says why that matters).
    const limboBytes = this.limbo.sweep();
    return {
      items: this.items,
      idCapacity: this.page.length,
      pageBytes,
      pages: this.pagesHeld,
      freePages: this.freePool.length,
      chunkBytes: this.chunkBytes,
      ownItems: this.own.size,
      ownBytes: this.ownBytes,
      limboBytes,
      collectionsAsked: this.limbo.asked,
      heldBytes: pageBytes + this.ownBytes + limboBytes,
      limitBytes: this.limitBytes,
      heapHoleReserveBytes: this.heapHoleReserveBytes,
      heapHoleReserveInForceBytes: this.inForce,
      pagesReassigned: this.pagesReassigned,
      itemsReclaimed: this.itemsReclaimed,
    };
  }

  /**
   * Drops every item and page (no reclaim calls): the store is empty, and holds no memory once the
   * collector has freed what it dropped.
   */
  clear(): void {
    for (const [id, b] of this.own) this.drop(b.buffer, this.len[id]);
    for (const [id, b] of this.ownKeys) this.drop(b.buffer, this.klen[id]);
    for (const p of this.pages) if (p !== undefined) this.drop(p.buffer, this.pageBytes);
    this.page.fill(-2);
    this.nextId = 0;
    this.freeIdCount = 0;
    this.pages.length = 0;
    this.pageWords.length = 0;
    this.pageClass.fill(-1);
    this.pageLive.fill(0);
    this.pageFreeHead.fill(-1);
    this.pageCarved.fill(0);
    this.pagePartialAt.fill(-1);
    for (const list of this.partial) list.length = 0;
    this.freePool.length = 0;
    this.deadPages.length = 0;
    this.pagesHeld = 0;
    this.own.clear();
    this.ownKeys.clear();
    this.ownBytes = 0;
    this.large = 0;
    this.inForce = this.trimOwed = 0;
    this.stableIds.fill(-1);
    this.stableBufs.fill(undefined);
    this.items = 0;
    this.chunkBytes = 0;
  }

  // ── ids ──

  private newId(): number {
    if (this.freeIdCount === 0) {
      const id = this.nextId++;
      if (id >= this.page.length) this.resize(this.page.length * 2);
      return id;
    }
    // pop the lowest free id; sift the last one down from the root
    const h = this.freeIds;
    const id = h[0];
    const n = --this.freeIdCount;
    const last = h[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1] < h[c]) c++;
      if (h[c] >= last) break;
      h[i] = h[c];
      i = c;
    }
    h[i] = last;
    if (id >= this.nextId) this.nextId = id + 1; // a free id above the top (after shrinkIds lowered it)
    return id;
  }

  /**
   * After most items have gone (fewer than a quarter of the ids' capacity in use): lowers `nextId` past
   * the free ids at the top, and halves (or more) the per-id arrays while every id in use still fits.
   * Without it a spike of small items would leave ~86 bytes per id of the spike (this table's 66, the
   * key index's 20) allocated for good, outside the budget, while large values fill it again. Ids are
   * handed out lowest first, so once the spike's items are evicted the top of the table is free.
   * Amortized O(1) per id freed: the scan down covers only ids freed since it last ran.
   */
  private shrinkIds(): void {
    let top = this.nextId;
    while (top > 0 && this.page[top - 1] === -2) top--;
    this.nextId = top;
    let cap = this.page.length;
    while (cap > INITIAL_IDS && top * 2 <= cap / 2) cap /= 2;
    if (cap === this.page.length) return;
    // Free ids at or above the new top leave the heap (a sorted array is a min-heap).
    const below = this.freeIds.subarray(0, this.freeIdCount).filter((id) => id < top);
    below.sort();
    this.freeIds = new Int32Array(Math.max(INITIAL_IDS, below.length));
    this.freeIds.set(below);
    this.freeIdCount = below.length;
    this.resize(cap);
    this.idsShrunk(cap);
  }

  /** Copies the per-id arrays into arrays of `cap` ids (larger, or smaller when every id in use fits). */
  private resize(cap: number): void {
    const g = <T extends Int32Array | Uint32Array | Uint8Array | Float64Array>(a: T, fill?: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      if (fill !== undefined && cap > a.length) b.fill(fill, a.length);
      b.set(cap >= a.length ? a : (a.subarray(0, cap) as T));
      return b;
    };
    this.page = g(this.page, -2);
    this.off = g(this.off);
    this.len = g(this.len);
    this.kpage = g(this.kpage);
    this.koff = g(this.koff);
    this.klen = g(this.klen);
    this.tag = g(this.tag);
    this.expiresAt = g(this.expiresAt);
    this.rate = g(this.rate);
    this.rateAt = g(this.rateAt);
    this.hits = g(this.hits);
    this.bornAt = g(this.bornAt);
    this.flags = g(this.flags);
  }

  // ── chunks and pages ──

  /** A page of class `c` with a chunk to give, taking an empty page (new, pooled or reclaimed) if needed. */
  private pageWithRoom(c: number): number {
    const list = this.partial[c];
    if (list.length > 0) return list[list.length - 1];
    let p = this.freePool.pop();
    if (p === undefined) {
      if (this.held() + this.pageBytes <= this.limitBytes) p = this.newPage();
      else {
        if (!this.mayEvict) return -1;
        p = this.reassign();
        if (p < 0) return -1;
      }
    }
    this.pageClass[p] = c;
    this.pageLive[p] = 0;
    this.pageFreeHead[p] = -1;
    this.pageCarved[p] = 0;
    this.addPartial(p, c);
    return p;
  }

  private takeChunk(p: number, c: number): number {
    const size = CHUNK_SIZES[c];
    let idx = this.pageFreeHead[p];
    if (idx >= 0) this.pageFreeHead[p] = this.pages[p]!.readInt32LE(idx * size);
    else idx = this.pageCarved[p]++;
    this.pageLive[p]++;
    if (this.pageFreeHead[p] < 0 && this.pageCarved[p] === Math.floor(this.pageBytes / size)) {
      this.removePartial(p, c);
    }
    return idx * size;
  }

  private freeChunk(p: number, off: number): void {
    const c = this.pageClass[p];
    const size = CHUNK_SIZES[c];
    this.pages[p]!.writeInt32LE(this.pageFreeHead[p], off);
    this.pageFreeHead[p] = off / size;
    this.chunkBytes -= size;
    if (--this.pageLive[p] === 0 && p !== this.draining) {
      this.removePartial(p, c);
      this.pageClass[p] = -1;
      this.freePool.push(p);
    } else if (this.pagePartialAt[p] < 0 && p !== this.draining) this.addPartial(p, c);
  }

  private addPartial(p: number, c: number): void {
    const list = this.partial[c];
    this.pagePartialAt[p] = list.length;
    list.push(p);
  }

  private removePartial(p: number, c: number): void {
    const at = this.pagePartialAt[p];
    if (at < 0) return;
    const list = this.partial[c];
    const last = list.pop()!;
    if (last !== p) {
      list[at] = last;
      this.pagePartialAt[last] = at;
    }
    this.pagePartialAt[p] = -1;
  }

  private newPage(): number {
    const p = this.deadPages.pop() ?? this.pages.length;
    const buf = Buffer.allocUnsafeSlow(this.pageBytes);
    this.pages[p] = buf;
    this.pageWords[p] = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
    this.pagesHeld++;
    return p;
  }

  /** What limitBytes bounds: pages, own buffers, and limbo beyond its allowance. */
  private held(): number {
    const overAllowance = Math.max(0, this.limbo.bytes() - this.limboAllowanceBytes);
    return this.pagesHeld * this.pageBytes + this.ownBytes + overAllowance;
  }

  /** Lets go of memory the collector will free later; counted in limbo until it has. */
  private drop(ab: ArrayBufferLike, bytes: number): void {
    this.limbo.add(ab, bytes);
    // Ask before limbo stands in the way: the collection then runs while the rest of the allowance
    // still takes new values.
    if (this.limbo.bytes() > this.limboAllowanceBytes * ASK_AT) this.limbo.askForCollection();
  }

  /**
   * Gets `bytes` of room under the limit for an own-buffer value: releases pooled pages, then has the
   * owner evict its least recently used items, then takes pages back. Evicting small items frees memory
   * only once every chunk of a page is free, which in LRU order can take nearly the whole cache (items of
   * all ages share pages): after a page's worth of evicted chunks with nothing given back, a page is
   * taken back instead — its items go out of LRU order, but the cost is bounded by two pages' worth of
   * items per page of room. Fails, evicting nothing more, when what stands in the way is limbo past its
   * allowance: the value is then not cached, and the next one fits once the collector has run.
   * `kept`: bytes held that no eviction frees (the put's own key: its pinned page, or its Buffer).
   */
  private makeRoom(bytes: number, kept = 0): boolean {
    const room = this.limitBytes - this.slackBytes;
    // Would not fit even with everything else evicted and the whole reserve in force: fail before
    // evicting anything.
    if (bytes + kept > room - this.reserveFor(bytes)) return false;
    const limit = room - (bytes >= MMAP_VALUE_BYTES ? this.inForce : 0);
    /** Chunk bytes evicted since memory was last given back. */
    let evictedChunks = 0;
    while (this.held() + bytes > limit) {
      let p = this.freePool.pop();
      if (p === undefined) {
        // Only limbo past its allowance in the way: evicting would move bytes into limbo, not out.
        if (this.pagesHeld * this.pageBytes + this.ownBytes + bytes <= limit) {
          this.limbo.refused(bytes);
          this.limbo.askForCollection();
          return false;
        }
        if (!this.mayEvict) return false;
        if (evictedChunks < this.pageBytes) {
          const held = this.held();
          const chunks = this.chunkBytes;
          if (this.evict()) {
            const gaveBack = this.freePool.length > 0 || this.held() < held;
            evictedChunks = gaveBack ? 0 : evictedChunks + chunks - this.chunkBytes;
            continue;
          }
        }
        p = this.reassign();
        evictedChunks = 0;
        // No page with live chunks: what is left to evict is in Buffers of its own.
        if (p < 0) {
          if (this.evict()) continue;
          return false;
        }
      }
      this.givePageBack(p);
    }
    return true;
  }

  /** Lets go of page `p`, empty and in no size class's list (pooled, or just reassigned). */
  private givePageBack(p: number): void {
    this.drop(this.pages[p]!.buffer, this.pageBytes);
    this.pages[p] = undefined;
    // The view would keep the page's memory alive (and limbo waiting for it).
    this.pageWords[p] = undefined;
    this.pagesHeld--;
    this.deadPages.push(p);
  }

  /**
   * While pages stand in the part of the heap-hole reserve that came into force since they were filled,
   * gives back one page: a pooled one, else the one with the fewest live chunks (its items reclaimed, as
   * makeRoom does). At most one a put, so clearing the reserve is spread over the puts as its coming into
   * force is; a large put that comes first clears the rest itself. Never more pages than the reserve rose
   * by (`trimOwed`): small items of many sizes may need more pages than that limit leaves them (a partly
   * used page per size class), and trimming those back for good would have every put give a page back
   * and the next take a new one (measured, 25 size classes: 70k page reassignments in 200k puts). Past
   * that, as before, a large put makes its own room.
   */
  private trimForReserve(): void {
    if (this.trimOwed <= 0 || !this.mayEvict) return;
    // Limbo past its allowance is the collector's to free, not ours: pages and own buffers only.
    if (this.pagesHeld * this.pageBytes + this.ownBytes <= this.limitBytes - this.slackBytes - this.inForce) {
      this.trimOwed = 0; // the room is there: nothing owed
      return;
    }
    const p = this.freePool.pop() ?? this.reassign();
    if (p < 0) {
      this.trimOwed = 0;
      return;
    }
    this.givePageBack(p);
    this.trimOwed -= this.pageBytes;
  }

  /**
   * Empties the page with the fewest live chunks (memcached's slab reassignment): its items go to
   * `reclaim`, out of LRU order. Returns the empty page (class -1), or -1 when no page holds anything.
   * Finds the page's items by a scan of the item table: a size-class shift, or room for a large value that
   * evicting a page's worth of small items did not make. O(items) each time.
   */
  private reassign(): number {
    let victim = -1;
    let fewest = Number.POSITIVE_INFINITY;
    for (let p = 0; p < this.pages.length; p++) {
      if (this.pages[p] === undefined || this.pageClass[p] < 0 || p === this.pinned) continue;
      if (this.pageLive[p] < fewest) {
        fewest = this.pageLive[p];
        victim = p;
      }
    }
    if (victim < 0) return -1;
    this.removePartial(victim, this.pageClass[victim]);
    this.draining = victim;
    try {
      for (let id = 0; id < this.nextId && this.pageLive[victim] > 0; id++) {
        if (this.page[id] !== victim && (this.kpage[id] !== victim || this.page[id] === -2)) continue;
        this.itemsReclaimed++;
        this.reclaim(id);
        if (this.page[id] !== -2) this.free(id); // the owner did not
      }
    } finally {
      this.draining = -1;
    }
    if (this.pageLive[victim] !== 0) throw new Error('SlabStore: a reclaimed page still has live chunks');
    this.pagesReassigned++;
    this.pageClass[victim] = -1;
    return victim;
  }
}

/** 1 MiB pages, smaller for small limits so partly used pages (one per size class) stay a small share. */
export function defaultPageBytes(limitBytes: number): number {
  let p = 1 << 20;
  while (p > 64 * 1024 && p * 64 > limitBytes) p >>= 1;
  return p;
}
