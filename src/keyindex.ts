// The key index under a group's caches: key → item id, and each cache's recency order, kept in typed
// arrays by item id — a chained hash table per cache and a doubly linked list per cache. The keys
// themselves are bytes in the value store (slab.ts), so a million cached keys are a dozen arrays to the
// garbage collector, not a million strings, a Map and lru-cache's arrays of references it has to mark on
// every full collection. docs/memory.md says why this replaced lru-cache as the index, and what it costs.

import { hashString, randomSeed } from './hash.js';

/** Where the index reads keys: the store that holds them as bytes. */
export interface KeyBytes {
  /** Whether item `id`'s key is `key`. Allocates nothing. */
  keyEquals(id: number, key: string): boolean;
  /** Item `id`'s key as a string (allocates: for rebuilds, iteration and the dashboard, not hit paths). */
  keyOf(id: number): string;
}

/** No item. */
export const NONE = -1;

/**
 * A chain longer than this on insert means the keys collide under the current seed — by bad luck (about
 * never: chains average one item) or by someone choosing keys to slow lookups down. The index then picks a
 * new seed and rebuilds, at most once per `count` inserts, so even keys that collide under every seed cost
 * O(items) per rebuild, amortised O(1) per insert.
 */
const MAX_CHAIN = 32;
const INITIAL_BUCKETS = 16;
/**
 * Marked items `victim` moves back to the head per call at most (a bound on one eviction's work, ~10 µs;
 * the moves it saves the hits are the same in total). 1024: an unmarked item within the 1024 oldest is
 * always found first.
 */
const MAX_SECOND_CHANCES = 1024;
const INITIAL_IDS = 1024;

/**
 * The hit path's memo (see `findHit`): how many key strings it remembers. A loop over more distinct keys
 * than this misses it (and switches it off); 16 384 covers a hot set of that many keys.
 */
const MEMO_SLOTS = 16384;
/**
 * Longest key (UTF-16 code units) the memo keeps: the key strings it keeps alive are JS heap outside
 * cacheBytes, so they are bounded — 16 384 × 128 units, at most 4 MiB (two-byte strings; ~1 MiB for
 * typical short keys), plus ~1 MiB for the Map and the slot arrays. A longer key goes to `find`.
 */
const MEMO_MAX_KEY = 128;
/** While the memo is off, one lookup in this many (a power of 2) still goes through it, to see whether it would pay. */
const MEMO_PROBE_EVERY = 64;
/** Lookups per verdict (a window): the memo stays on while at least 7 in 8 of them hit it. */
const MEMO_WINDOW = 1024;
/**
 * While on, of every MEMO_ROUND windows the last MEMO_CONTROL go without the memo, timed against the
 * others. The first window after each switch is not timed: it runs with the other path's data cold in
 * the CPU caches (timed, it made `find` look slower than it is, and the memo stayed on for new strings).
 */
const MEMO_ROUND = 32;
const MEMO_CONTROL = 3;
/**
 * After rounds the memo won clearly (its fastest window under MEMO_CLEAR_WIN of the control's), each
 * round is twice as long, up to MEMO_LONGEST_ROUND windows: the control then costs ~0.6 % of lookups
 * instead of ~9 %, and a change of workload is still noticed within ~0.5 M lookups.
 */
const MEMO_CLEAR_WIN = 0.8;
const MEMO_LONGEST_ROUND = 512;
/** Probe windows the memo stays off after it lost to `find` on time (then it is tried again). */
const MEMO_BACKOFF = 64;
/** Probe windows the memo stays off after a try that did not reach 7 in 8 hits once it stopped filling. */
const MEMO_RETRY = 8;
// findHit's memo states.
const MEMO_OFF = 0;
const MEMO_ON = 1;
/** On, but this window's lookups skip the memo: the time to beat. */
const MEMO_CONTROL_WINDOW = 2;

/**
 * Lists (one per cache, by a small number: the cache's tag) over item ids handed out by the store. An id
 * is in at most one list at a time. A list is kept in CLOCK order, not strict LRU: a hit only marks its
 * item (`mark`), and eviction (`victim`) gives a marked item at the tail a second chance — back to the
 * head, unmarked — instead of a hit moving it there (see `victim` for why). Per id it costs 21 bytes
 * (chain, hash, two links, memo slot, mark), per list 4–8 bytes
 * an item for the buckets (one bucket per item, doubled when the items outgrow them, halved when they
 * are down to a quarter). The per-id arrays keep the size of the most ids ever in use.
 */
export class KeyIndex {
  private readonly buckets: Int32Array[] = [];
  private readonly counts: number[] = [];
  private readonly newestId: number[] = [];
  private readonly oldestId: number[] = [];
  /**
   * The item each list took in last: `victim` passes over it (as over a marked one) unless it is alone, so
   * that the eviction that makes room for it right after its insert, when every older item is marked,
   * does not pick it — their second chances put them ahead of it.
   */
  private readonly placed: number[] = [];
  /** Next id in the same bucket. */
  private chain = new Int32Array(INITIAL_IDS);
  /** The key's hash under the current seed (compared before the key; used to rebuild buckets). */
  private hashes = new Uint32Array(INITIAL_IDS);
  /** Recency links: toward the least and the most recently used item of its list. */
  private olderId = new Int32Array(INITIAL_IDS);
  private newerId = new Int32Array(INITIAL_IDS);
  /** 1 when the item was hit since it was inserted or last given a second chance (`mark`, `victim`). */
  private marked = new Uint8Array(INITIAL_IDS);
  private seed: number;
  /** Inserts left before another re-seed is allowed. */
  private reseedCredit = 0;
  /** Times the index picked a new seed because a chain grew past MAX_CHAIN (`group.memoryStats().indexReseeds`). */
  reseeds = 0;
  // ── the hit path's memo of key strings (see `findHit`) ──
  /**
   * Per list: key string → item id, for the keys remembered in a memo slot whose item is still in the
   * list. The id itself is the Map's value, so a hit reads nothing else (a slot number here cost two more
   * typed-array reads a hit); `remove` deletes the key when its item leaves. A key held by both lists (a
   * mirror in the hot cache of a key the main cache still has) is in both Maps, in a slot each.
   */
  private readonly memo: Map<string, number>[] = [];
  /**
   * List 0's Map (the main cache's, where hits are looked up first), in a field of its own: reaching it
   * through the array cost a hit ~3–5 ns more (measured, a loop over 10k keys).
   */
  private readonly memo0: Map<string, number>;
  /** The key each slot remembers (undefined: free), and which list's Map has it. */
  private readonly slotKey: (string | undefined)[] = new Array(MEMO_SLOTS).fill(undefined);
  private readonly slotList = new Uint8Array(MEMO_SLOTS);
  private readonly slotId = new Int32Array(MEMO_SLOTS);
  /** Per item id: its memo slot, or NONE (so that `remove` can forget its key). */
  private idSlot = new Int32Array(INITIAL_IDS).fill(NONE);
  /** Keys in the memo (all lists). */
  private memoSize = 0;
  /** Next slot to reuse (the memo forgets in insertion order). */
  private memoNext = 0;
  private memoState: number;
  private readonly memoAlways: boolean;
  private memoTick = 0;
  /** Lookups and memo misses in the current window (misses are counted: a hit then does one increment). */
  private memoLookups = 0;
  private memoMisses = 0;
  private windowStart = 0;
  private readonly clock: () => number;
  /** Windows into the current round (MEMO_ON), or probe windows left before the memo may go on (MEMO_OFF). */
  private memoCount = 0;
  /** Windows in the current round while on (MEMO_ROUND, longer after clear wins). */
  private memoRound = MEMO_ROUND;
  /** The fastest window of this round with the memo and without it (ms). */
  private fastestOn = Number.POSITIVE_INFINITY;
  private fastestOff = Number.POSITIVE_INFINITY;
  /** Keys the memo held at the last window's end while on (to tell a memo still filling from one that misses). */
  private lastSize = 0;

  /**
   * @param keys where the keys are (the store)
   * @param lists how many lists (caches) share the index
   * @param seed test-only: the first hash seed (default: random), to make colliding keys on purpose
   * @param memo test-only: `always` keeps `findHit`'s memo on whatever its hit rate and speed; `clock`
   *   times its windows (ms, default performance.now)
   */
  constructor(
    private readonly keys: KeyBytes,
    lists: number,
    seed = randomSeed(),
    memo: { always?: boolean; clock?: () => number } = {},
  ) {
    this.seed = seed >>> 0;
    this.memoAlways = memo.always === true;
    this.clock = memo.clock ?? performance.now.bind(performance);
    this.memoState = this.memoAlways ? MEMO_ON : MEMO_OFF;
    for (let l = 0; l < lists; l++) {
      this.buckets.push(new Int32Array(INITIAL_BUCKETS).fill(NONE));
      this.counts.push(0);
      this.newestId.push(NONE);
      this.oldestId.push(NONE);
      this.placed.push(NONE);
      this.memo.push(new Map());
    }
    this.memo0 = this.memo[0];
  }

  /** `key`'s hash under the current seed (hash.ts). */
  hash(key: string): number {
    return hashString(key, this.seed);
  }

  /** The id of `key` in `list`, or NONE. Touches nothing. `h`: the key's `hash`, when the caller has it. */
  find(list: number, key: string, h = this.hash(key)): number {
    const b = this.buckets[list];
    for (let id = b[h & (b.length - 1)]; id !== NONE; id = this.chain[id]) {
      if (this.hashes[id] === h && this.keys.keyEquals(id, key)) return id;
    }
    return NONE;
  }

  /**
   * `find` for the hit path, through a memo of the key strings recently found when that pays. V8 keeps a
   * string's hash in the string, so a `Map` looking up the same string object again (a caller looping over
   * an array of keys) neither hashes nor reads its characters, where `find` hashes it and compares it with
   * the stored bytes every time — slower still on a string built by concatenation, whose characters V8
   * reads through an indirection until a collection flattens it. A request's key is a new string each
   * time, which the Map hashes and compares too, about as fast as `find`. So the memo is used only while
   * at least 7 in 8 lookups hit it (or, just turned on, it still takes in keys) and it is
   * faster: while on, 3 windows in 32 go without it and the fastest window of each kind is compared (a
   * fastest window leaves out collections and other interruptions); if it lost, it stays off for
   * MEMO_BACKOFF probe windows. While off, one lookup in MEMO_PROBE_EVERY still goes through it, and a
   * quarter of those hitting turns it on to try (a loop over 10k keys: on after ~0.3M lookups, not the
   * ~1.3M it took probes to fill it to 7 in 8). A memo entry never outlives its
   * item's place in the list (`remove` and `clear` invalidate it), so what it returns is what `find` would.
   */
  findHit(list: number, key: string): number {
    // Small, so that it inlines into the hit path whole (the two paths are calls).
    return this.memoState === MEMO_ON ? this.findMemo(list, key) : this.findWithout(list, key);
  }

  /** findHit while the memo is off (one lookup in MEMO_PROBE_EVERY probes it) or in a control window. */
  private findWithout(list: number, key: string): number {
    if (this.memoState === MEMO_OFF) {
      if ((++this.memoTick & (MEMO_PROBE_EVERY - 1)) === 0) return this.findMemo(list, key);
      return this.find(list, key);
    }
    const id = this.find(list, key);
    if (++this.memoLookups === MEMO_WINDOW) this.memoVerdict();
    return id;
  }

  private findMemo(list: number, key: string): number {
    const hit = key.length > MEMO_MAX_KEY ? undefined : (list === 0 ? this.memo0 : this.memo[list]).get(key);
    if (hit !== undefined) {
      if (++this.memoLookups === MEMO_WINDOW) this.memoVerdict();
      return hit;
    }
    const id = this.find(list, key);
    if (id !== NONE && key.length <= MEMO_MAX_KEY) this.remember(key, list, id);
    this.memoMisses++;
    if (++this.memoLookups === MEMO_WINDOW) this.memoVerdict();
    return id;
  }

  /** Remembers that `key` (not in `list`'s Map) is item `id` of `list`, in the next slot. */
  private remember(key: string, list: number, id: number): void {
    const s = this.memoNext;
    this.memoNext = (s + 1) & (MEMO_SLOTS - 1);
    this.forgetSlot(s);
    const had = this.idSlot[id];
    if (had !== NONE) this.forgetSlot(had); // (cannot happen: its key would have been found)
    const kept = ownCopy(key);
    this.memo[list].set(kept, id);
    this.memoSize++;
    this.slotKey[s] = kept;
    this.slotList[s] = list;
    this.slotId[s] = id;
    this.idSlot[id] = s;
  }

  /** Frees memo slot `s`: its key leaves its list's Map (and its item forgets the slot). */
  private forgetSlot(s: number): void {
    const key = this.slotKey[s];
    if (key === undefined) return;
    this.memo[this.slotList[s]].delete(key);
    this.memoSize--;
    this.idSlot[this.slotId[s]] = NONE;
    this.slotKey[s] = undefined;
  }

  /** At the end of a window: whether the memo goes (or stays) on or off. */
  private memoVerdict(): void {
    const now = this.clock();
    const ms = now - this.windowStart;
    this.windowStart = now;
    const hits = MEMO_WINDOW - this.memoMisses;
    const state = this.memoState;
    this.memoLookups = 0;
    this.memoMisses = 0;
    if (this.memoAlways) return;
    if (state === MEMO_OFF) {
      if (this.memoCount > 0) this.memoCount--;
      // A quarter of the probes hit: try it on — on, it fills with every miss, where probes fill it slowly.
      else if (hits * 4 >= MEMO_WINDOW) this.startRound();
    } else if (state === MEMO_ON) {
      // Under 7 in 8 hits: off, unless it is still filling (not full, and it took in keys this window).
      const size = this.memoSize;
      const filling = size > this.lastSize && size < MEMO_SLOTS;
      this.lastSize = size;
      if (hits * 8 < MEMO_WINDOW * 7 && !filling) {
        this.memoState = MEMO_OFF;
        this.memoRound = MEMO_ROUND;
        this.memoCount = MEMO_RETRY;
        return;
      }
      if (this.memoCount > 0 && ms < this.fastestOn) this.fastestOn = ms;
      if (++this.memoCount === this.memoRound - MEMO_CONTROL) this.memoState = MEMO_CONTROL_WINDOW;
    } else {
      if (this.memoCount > this.memoRound - MEMO_CONTROL && ms < this.fastestOff) this.fastestOff = ms;
      if (++this.memoCount < this.memoRound) return;
      // Slower than without it (by more than timing noise): off for a while.
      if (this.fastestOff < this.fastestOn * 0.95) {
        this.memoState = MEMO_OFF;
        this.memoCount = MEMO_BACKOFF;
        this.memoRound = MEMO_ROUND;
        return;
      }
      // A clear win: the next round is longer, so the control windows (lookups without the memo, each
      // slower) cost less; anything short of one starts over at MEMO_ROUND.
      const won = this.fastestOn < this.fastestOff * MEMO_CLEAR_WIN;
      this.memoRound = won ? Math.min(this.memoRound * 2, MEMO_LONGEST_ROUND) : MEMO_ROUND;
      this.startRound();
    }
  }

  private startRound(): void {
    this.memoState = MEMO_ON;
    this.memoCount = 0;
    this.lastSize = 0;
    this.fastestOn = Number.POSITIVE_INFINITY;
    this.fastestOff = Number.POSITIVE_INFINITY;
  }

  /** Forgets every memo entry (their items left, or may have). */
  private clearMemo(): void {
    for (let s = 0; s < MEMO_SLOTS; s++) this.forgetSlot(s);
    for (const m of this.memo) m.clear();
    this.memoNext = 0;
  }

  /**
   * Adds item `id` (not in any list), whose key hashes to `h` (`hash`, under the current seed: nothing
   * between that call and this one may insert), as `list`'s most recently used.
   */
  insert(list: number, id: number, h: number): void {
    if (id >= this.chain.length) this.resize(Math.max(id + 1, this.chain.length * 2));
    this.hashes[id] = h;
    // Unmarked: an item earns its second chance by a hit after it is placed. (Marked on insert, as an
    // OS's CLOCK marks a page it just loaded, the hit ratio was below LRU's: 0.59 against 0.60 at Zipf
    // 0.8, 0.80 against 0.81 at 0.99; unmarked, above it: 0.61, 0.82 — scripts/bench/lib/hit-ratio.ts.)
    this.marked[id] = 0;
    this.placed[list] = id;
    const b = this.buckets[list];
    const at = h & (b.length - 1);
    let n = 0;
    for (let x = b[at]; x !== NONE && n <= MAX_CHAIN; x = this.chain[x]) n++;
    this.chain[id] = b[at];
    b[at] = id;
    this.linkNewest(list, id);
    const count = ++this.counts[list];
    this.reseedCredit--;
    if (n > MAX_CHAIN && this.reseedCredit <= 0) this.reseed();
    else if (count > b.length) this.rebuild(list, b.length * 2);
  }

  /** Takes item `id` out of `list`. */
  remove(list: number, id: number): void {
    const b = this.buckets[list];
    const at = this.hashes[id] & (b.length - 1);
    let x = b[at];
    if (x === id) b[at] = this.chain[id];
    else {
      while (this.chain[x] !== id) x = this.chain[x];
      this.chain[x] = this.chain[id];
    }
    this.unlink(list, id);
    const s = this.idSlot[id];
    if (s !== NONE) this.forgetSlot(s);
    const count = --this.counts[list];
    // Gives the buckets of a spike back: a quarter full, halve them (they double again past full).
    if (count < b.length >> 2 && b.length > INITIAL_BUCKETS) this.rebuild(list, b.length >> 1);
  }

  /**
   * Item `id` was hit: it gets a second chance before it is evicted (`victim`). The hit path's whole
   * share of recency is this one write; moving the item to the head of its list, as an exact LRU does,
   * was five to seven reads and writes of the links and cost a `getCached` hit ~8–10 ns of ~47
   * (a loop over 10k keys, measured with the move and without it).
   */
  mark(id: number): void {
    this.marked[id] = 1;
  }

  /** Makes item `id` the most recently used of `list` (unmarked: it has just been placed). */
  touch(list: number, id: number): void {
    this.marked[id] = 0;
    if (this.newestId[list] === id) return;
    this.unlink(list, id);
    this.linkNewest(list, id);
  }

  /**
   * The item of `list` to evict next (NONE when empty): the oldest unmarked one, CLOCK's "second chance"
   * — marked items at the tail go back to the head, unmarked, on the way (at most MAX_SECOND_CHANCES of
   * them per call, so one eviction never walks a whole cache whose every item was read: then the next
   * oldest goes, marked or not). So an item read since it was placed outlives every unread item older
   * than it, and one read again after its second chance survives another round; among items all read,
   * the order is insertion order, not the order of the reads. The hit ratio on a skewed (Zipf) workload
   * is about LRU's (scripts/bench/lib/hit-ratio.ts, docs/memory.md), and hits cost one write (`mark`).
   */
  victim(list: number): number {
    let id = this.oldestId[list];
    for (let n = 0; id !== NONE; n++) {
      // The placed item is passed over even past the bound: 1024 second chances before it put it at the
      // tail when the list holds 1025, and the put making room for it would evict it.
      if (
        id === this.placed[list] ? this.counts[list] === 1 : this.marked[id] === 0 || n >= MAX_SECOND_CHANCES
      )
        break;
      this.touch(list, id);
      id = this.oldestId[list];
    }
    return id;
  }

  /** Empties `list` (its ids are the caller's to free). */
  clear(list: number): void {
    this.clearMemo();
    this.buckets[list] = new Int32Array(INITIAL_BUCKETS).fill(NONE);
    this.counts[list] = 0;
    this.newestId[list] = NONE;
    this.oldestId[list] = NONE;
  }

  /** The longest chain of `list` (for tests and diagnostics: walks every bucket). */
  longestChain(list: number): number {
    let longest = 0;
    for (const head of this.buckets[list]) {
      let n = 0;
      for (let x = head; x !== NONE; x = this.chain[x]) n++;
      if (n > longest) longest = n;
    }
    return longest;
  }

  /** Whether `findHit` goes through its memo now (for tests and diagnostics). */
  get memoActive(): boolean {
    return this.memoState === MEMO_ON;
  }

  /** How many key strings the memo holds (for tests and diagnostics). */
  get memoKeys(): number {
    return this.memoSize;
  }

  /** How many buckets `list` has (for tests and diagnostics). */
  bucketCount(list: number): number {
    return this.buckets[list].length;
  }

  size(list: number): number {
    return this.counts[list];
  }

  newest(list: number): number {
    return this.newestId[list];
  }

  oldest(list: number): number {
    return this.oldestId[list];
  }

  /** The next less recently used item after `id`, or NONE. */
  older(id: number): number {
    return this.olderId[id];
  }

  private linkNewest(list: number, id: number): void {
    const head = this.newestId[list];
    this.olderId[id] = head;
    this.newerId[id] = NONE;
    if (head === NONE) this.oldestId[list] = id;
    else this.newerId[head] = id;
    this.newestId[list] = id;
  }

  private unlink(list: number, id: number): void {
    const older = this.olderId[id];
    const newer = this.newerId[id];
    if (newer === NONE) this.newestId[list] = older;
    else this.olderId[newer] = older;
    if (older === NONE) this.oldestId[list] = newer;
    else this.newerId[older] = newer;
  }

  /** Re-threads `list`'s chains over `size` buckets from the stored hashes. */
  private rebuild(list: number, size: number): void {
    const b = new Int32Array(size).fill(NONE);
    for (let id = this.oldestId[list]; id !== NONE; id = this.newerId[id]) {
      const at = this.hashes[id] & (size - 1);
      this.chain[id] = b[at];
      b[at] = id;
    }
    this.buckets[list] = b;
  }

  /** A new seed: every key hashed again (read back from the store), every list rebuilt. */
  private reseed(): void {
    this.seed = randomSeed();
    this.reseeds++;
    let total = 0;
    for (let l = 0; l < this.buckets.length; l++) {
      for (let id = this.oldestId[l]; id !== NONE; id = this.newerId[id]) {
        this.hashes[id] = this.hash(this.keys.keyOf(id));
      }
      this.rebuild(l, this.buckets[l].length);
      total += this.counts[l];
    }
    this.reseedCredit = Math.max(total, INITIAL_BUCKETS);
  }

  /**
   * The store's ids now all fit below `capacity` (SlabOptions.idsShrunk): shrink the per-id arrays to it,
   * so that a spike of items does not leave 21 bytes an id allocated for good.
   */
  shrinkIds(capacity: number): void {
    if (capacity < this.chain.length) this.resize(capacity);
  }

  /** Copies the per-id arrays into arrays of `cap` ids (fewer only when no id in use is cut off). */
  private resize(cap: number): void {
    const g = <T extends Int32Array | Uint32Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(cap >= a.length ? a : (a.subarray(0, cap) as T));
      return b;
    };
    this.chain = g(this.chain);
    this.hashes = g(this.hashes);
    this.olderId = g(this.olderId);
    this.newerId = g(this.newerId);
    const marks = new Uint8Array(cap);
    marks.set(cap >= this.marked.length ? this.marked : this.marked.subarray(0, cap));
    this.marked = marks;
    const slots = new Int32Array(cap).fill(NONE);
    slots.set(cap >= this.idSlot.length ? this.idSlot : this.idSlot.subarray(0, cap));
    this.idSlot = slots;
  }
}

/**
 * `key`'s characters in a string of their own when `key` may refer to another string: V8 makes a slice of
 * 13 or more characters (a key cut from a request body, a file) a view into the string it was cut from,
 * and a concatenation refers to its parts, so keeping the caller's string could keep a far larger one
 * alive (16 384 slices of 256 KiB bodies: 4 GiB). A join writes the characters into a new flat string
 * (~120 ns at 25 characters, only when a key is taken in): a slice of a copy would be cheaper to make, but
 * the Map compares a key with a sliced one ~2.5x slower on every hit. Shorter strings are always flat.
 */
function ownCopy(key: string): string {
  if (key.length < 13) return key;
  const half = key.length >> 1;
  return [key.slice(0, half), key.slice(half)].join('');
}
