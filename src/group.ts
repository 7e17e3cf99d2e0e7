// Group: the load path. A get looks in the main cache, then the hot cache; on a miss it joins (or starts)
// the key's flight, which asks the key's owner — or, when this process owns it or the owner cannot be
// reached, the getter — and caches the result. An owner whose own load failed is not worked around: its
// error is the answer (OwnerLoadError), so a failing origin is asked once per key, not once per node.
// Same shape as groupcache's Group, plus expiry, remove and abort.

import { heapHoleReserveBytes, largeValuesInHeap, processAllocatorFacts } from './allocator.js';
import type { CacheStats } from './cache.js';
import {
  ByteCache,
  Entry,
  enforceBudget,
  entryBytes,
  evictOne,
  fitsBudget,
  itemOverhead,
  MAX_TTL_MS,
  newSpace,
  type StaleWindows,
} from './cache.js';
import {
  DuplicateGroupError,
  GetterTimeoutError,
  InvalidKeyError,
  isNotFound,
  isOwnerLoadError,
  NotFoundError,
  PeerTimeoutError,
} from './errors.js';
import type { Flight } from './flight.js';
import { deadline, Flights, withTimeout } from './flight.js';
import { DEFAULT_HANDOFF_WINDOW_MS } from './handoff.js';
import type { HotCacheView, HotKeyPolicy } from './hotkeys.js';
import { rateBasedPromotion, readRate } from './hotkeys.js';
import type { KeyIndex } from './keyindex.js';
import type { EntryResult, GroupServer, HandoffEntry, Peer, PeerGetResult, PeerPicker } from './peers.js';
import { noPeers } from './peers.js';
import type { SlabStats, SlabStore } from './slab.js';
import { keyAttributes, SPAN, SpanKind, traced, tracedSync } from './tracing.js';

/**
 * What a getter may return: bytes, a UTF-8 string, or either with a time to live and stale windows.
 * The windows start when the ttl ends (RFC 5861) and matter only for a value with a ttl; absent, the
 * group's defaults apply (see GroupOptions).
 */

/** What `group.memoryStats()` returns: the store's figures and the key index's re-seeds. */
export interface MemoryStats extends SlabStats {
  indexReseeds: number;
}

export type GetterResult = Uint8Array | string | GetterValue;

export interface GetterValue {
  value: Uint8Array | string;
  /** Time to live in ms; absent or Infinity = never expires; <= 0 = stale at once. */
  ttlMs?: number;
  /** After the ttl, for this long a get answers the stale value at once and refreshes it in the background. */
  staleWhileRevalidateMs?: number;
  /** After the ttl, for this long a load that fails (or times out) answers the stale value instead. */
  staleIfErrorMs?: number;
}

/**
 * Loads the value of a key this process owns (or must load because its owner could not be reached). Throw
 * `NotFoundError` when the key has no value. Stop work when `signal` aborts: every waiter gave up, or the
 * group's `getterTimeoutMs` passed. The value is copied, so the getter may reuse its buffer.
 */
export type Getter = (key: string, ctx: { signal: AbortSignal }) => Promise<GetterResult>;

export interface GroupOptions {
  /** Unique within its registry; peers address the group by this name. */
  name: string;
  /** Byte budget of the main + hot caches together (key bytes + value bytes). 0 = cache nothing. */
  cacheBytes: number;
  getter: Getter;
  /**
   * Of cacheBytes, what values of 128 KiB or more may not use: room for the holes they leave in glibc's heap
   * when its mmap threshold floats, which would otherwise take RSS past cacheBytes + the fixed allowance under
   * churn of large values (allocator.ts; docs/memory.md, "The allocator"). Costs that much capacity while such
   * values are cached (the budget rule then keeps main + hot under it too); it comes into force over the puts
   * after the first such value, 256 KiB or more a put, so the small items it displaces go a few at a time
   * (`memoryStats().heapHoleReserveInForceBytes`). Default: on glibc, unless the
   * environment the process started with fixes the threshold at 128 KiB or less (MALLOC_MMAP_THRESHOLD_ or the
   * tunable), 32 MiB + 1/64 of cacheBytes, at most half of it; otherwise 0.
   */
  heapHoleReserveBytes?: number;
  /** Who owns which key. Default: the registry's picker (see GroupRegistry.setPeerPicker). */
  peers?: PeerPicker;
  /** Default `defaultRegistry`. A node uses its own so several nodes can live in one process. */
  registry?: GroupRegistry;
  /** A getter call that has not settled after this is abandoned with GetterTimeoutError. Default 30 000; 0 = never. */
  getterTimeoutMs?: number;
  /**
   * A fetch from a peer that has not answered after this counts as a peer error (then the key loads
   * locally). Default getterTimeoutMs + 1 000: the owner may be running the getter itself, and giving up
   * on a slow-but-working owner makes every process load the key. 0 = never.
   */
  peerTimeoutMs?: number;
  /** Which values fetched from owners are mirrored in the hot cache. Default `rateBasedPromotion()`. */
  hotKeyPolicy?: HotKeyPolicy;
  /** Longest key, in UTF-8 bytes. Default 65 536. */
  maxKeyBytes?: number;
  /** Clock (ms) for expiry and rates. Default Date.now; tests pass a fake. */
  now?: () => number;
  /**
   * Default stale-while-revalidate window (ms) of values that expire and name none themselves (getter
   * results, `set`). Default 0 = off. Costs memory: an expired value stays cached (and counted in
   * cacheBytes) until its last window ends.
   */
  staleWhileRevalidateMs?: number;
  /** Default stale-if-error window (ms), likewise. Default 0 = off. */
  staleIfErrorMs?: number;
  /**
   * Longest time a value mirrored in the hot cache is served before it is fetched from its owner again,
   * whatever its TTL: the bound on how long this process can keep serving a value after a cluster-wide
   * remove it did not receive (it was stopped, partitioned, or the remove timed out). Default 60 000:
   * one extra peer fetch per hot key per minute per process. 0 = no bound (groupcache's behaviour).
   */
  hotMaxAgeMs?: number;
  /**
   * How long a handoff question (see docs/handoff.md) waits for a peer before moving on to the next
   * one or the getter. Default 1 000: a handoff answer comes from the peer's memory, so anything slower
   * is a slow or dead peer and costs one bounded wait, never a stuck load; 500 ms was measured too
   * short on a box whose event loops stalled for up to 2 s (5.5 % of warm keys reloaded in a rolling
   * restart instead of 1.9 %). 0 = no handoff.
   */
  handoffTimeoutMs?: number;
  /**
   * How long a key removed here (by `remove`, or a peer's remove request) is remembered, so that no
   * handoff answer or push brings its old value back. Default 300 000 (the handoff window). Up to
   * `maxTombstones` keys are remembered (the oldest are forgotten first).
   */
  tombstoneMs?: number;
  /** Most removed keys remembered at once (each ~key bytes + 60). Default 10 000. */
  maxTombstones?: number;
}

export interface SetOptions {
  /** Time to live in ms (> 0); absent or Infinity = never expires. The group's stale windows apply. */
  ttlMs?: number;
}

export interface GetOptions {
  /** Stop waiting when it aborts (rejects with its reason). The shared load stops when every waiter has. */
  signal?: AbortSignal;
}

/** groupcache's counters, same meaning. Plain fields: read them, do not write them. */
export interface GroupStats {
  /** Every get (get, getString, getEntry, server.getCached/lookup), whatever its outcome. */
  gets: number;
  /** Gets answered from the main or hot cache (including a re-check inside a flight). */
  cacheHits: number;
  /** Values fetched from an owner. */
  peerLoads: number;
  /**
   * Fetches from an owner that failed other than by NotFound or an OwnerLoadError: it could not be
   * reached, did not answer in time, or refused (the key was then loaded locally).
   */
  peerErrors: number;
  /**
   * Fetches the owner answered with OwnerLoadError: it was reached and its own load of the key failed
   * (its getter threw or timed out). The get failed too (or answered a stale-if-error value) without
   * running the getter here.
   */
  ownerLoadErrors: number;
  /** Gets that missed the caches (= gets - cacheHits, before flight de-duplication). */
  loads: number;
  /** Loads after de-duplication: flights actually started. */
  loadsDeduped: number;
  /** Getter calls. */
  localLoads: number;
  /** Getter calls that failed (NotFound, timeout, abort, any error). */
  localLoadErrs: number;
  /** Gets asked by peers (`getEntry(key, { local: true })`). */
  serverRequests: number;
  /** Peers that failed to drop a key in `remove` or `set` (down, timed out). */
  removeErrors: number;
  /** Answers of a stale value (stale-while-revalidate, or stale-if-error after a failed load). */
  staleHits: number;
  /** Of staleHits: answered after a failed load (stale-if-error). */
  staleIfErrorHits: number;
  /** Background refreshes started for stale values (one per key at a time; at the owner for its peers). */
  backgroundRefreshes: number;
  /** Background refreshes that failed (the stale value stays; the next retry waits REFRESH_RETRY_MS). */
  refreshErrors: number;
  /** Gets answered NotFound from a remembered NotFound (negative caching). */
  negativeHits: number;
  /** Values stored here by `set` (this process's own, as the owner, and its peers' Set requests). */
  sets: number;
  /** Owner misses answered by a handoff question (from a peer's cache, not the getter). */
  handoffHits: number;
  /** Handoff questions no peer could answer (the getter then ran). */
  handoffMisses: number;
  /** Value bytes received by handoff: answers plus entries kept from leaving peers' pushes. */
  handoffBytes: number;
  /** Entries a leaving peer pushed here that were kept. */
  handoffAccepted: number;
  /** Entries this process pushed to their next owners when leaving (`handOff`) that were kept. */
  handoffPushed: number;
}

/** What `group.handOff` did. */
export interface HandOffResult {
  /** Entries the successors kept. */
  entries: number;
  /** Entries sent (kept or not). */
  sent: number;
  /** Bytes sent (keys + values). */
  bytes: number;
  /** Entries left unsent because the byte or time budget ran out, or a peer failed. */
  skipped: number;
}

export interface HandOffOptions {
  /** Most bytes (keys + values) to send, hottest entries first. Default: everything in the main cache. */
  maxBytes?: number;
  /** Stop sending after this long (batches in flight are cancelled). Default 5 000. */
  timeoutMs?: number;
}

export const DEFAULT_MAX_KEY_BYTES = 65_536;
export { MAX_TTL_MS };

/**
 * After a background refresh fails (or brings back a value that is still stale), gets keep answering
 * the stale value and the next refresh starts no sooner than this: a down origin is not asked once per get.
 */
export const REFRESH_RETRY_MS = 1_000;
const DEFAULT_GETTER_TIMEOUT_MS = 30_000;
const PEER_TIMEOUT_MARGIN_MS = 1_000;
const DEFAULT_HOT_MAX_AGE_MS = 60_000;
const DEFAULT_HANDOFF_TIMEOUT_MS = 1_000;
const DEFAULT_MAX_TOMBSTONES = 10_000;
const DEFAULT_HANDOFF_PUSH_MS = 5_000;
/** A push batch stays under this many key + value bytes (one entry bigger than that travels alone). */
const PUSH_BATCH_BYTES = 256 * 1024;
/**
 * Larger entries are not pushed: a node accepts request messages of at most 1 MiB (src/grpc/limits.ts),
 * and a push is one message. Such values load again from the getter after a leave.
 */
const PUSH_MAX_ENTRY_BYTES = 1024 * 1024 - 64 * 1024;
/** The default peerTimeoutMs: the owner may be running the getter itself, so give it that long and a second. */
export const DEFAULT_PEER_TIMEOUT_MS = DEFAULT_GETTER_TIMEOUT_MS + PEER_TIMEOUT_MARGIN_MS;

type Which = 'main' | 'hot';

/** One of `group.hotKeys()`: a key held here, its rate and size, and which cache holds it. */
export interface HotKey {
  key: string;
  minuteQps: number;
  /** Key + value bytes. */
  bytes: number;
  cache: Which;
}
/** Store tags of the two caches' items. */
const MAIN = 0;
const HOT = 1;

/** Entries of each cache that Group.hotKeys looks at (newest first), besides its sample of recent hits. */
const HOT_KEYS_SCAN = 10_000;

export class Group {
  readonly name: string;
  readonly cacheBytes: number;
  readonly maxKeyBytes: number;
  readonly registry: GroupRegistry;
  readonly stats: GroupStats = {
    gets: 0,
    cacheHits: 0,
    peerLoads: 0,
    peerErrors: 0,
    ownerLoadErrors: 0,
    loads: 0,
    loadsDeduped: 0,
    localLoads: 0,
    localLoadErrs: 0,
    serverRequests: 0,
    removeErrors: 0,
    staleHits: 0,
    staleIfErrorHits: 0,
    backgroundRefreshes: 0,
    refreshErrors: 0,
    negativeHits: 0,
    sets: 0,
    handoffHits: 0,
    handoffMisses: 0,
    handoffBytes: 0,
    handoffAccepted: 0,
    handoffPushed: 0,
  };

  private readonly getter: Getter;
  private picker: PeerPicker | undefined;
  private readonly getterTimeoutMs: number;
  private readonly peerTimeoutMs: number;
  private readonly hotMaxAgeMs: number;
  private readonly handoffTimeoutMs: number;
  private readonly tombstoneMs: number;
  private readonly maxTombstones: number;
  /** Keys removed here recently → when (group clock); insertion order = oldest first. */
  private readonly tombstones = new Map<string, number>();
  private readonly policy: HotKeyPolicy;
  private readonly now: () => number;
  private readonly defaultSwrMs: number;
  private readonly defaultSieMs: number;
  /** Values and metadata of both caches (slab.ts). */
  private readonly slab: SlabStore;
  private readonly index: KeyIndex;
  private readonly main: ByteCache;
  private readonly hot: ByteCache;
  private readonly hotView: HotCacheView;
  /** Loads that run the getter here (own keys, peers' requests, fallbacks). */
  private readonly localFlights = new Flights<Entry>();
  /** Fetches from owners. */
  private readonly peerFlights = new Flights<Entry>();
  private closed = false;
  /**
   * The entry points servers use (the gRPC server, the node's HTTP and memcached fronts): the
   * synchronous hit path, the miss path after it, and this-process-only get/set/remove/handoff. Kept
   * apart from the user API: values are shared with the cache and nothing is forwarded.
   */
  readonly server: Required<GroupServer> = {
    getCached: (key) => {
      const id = this.hitId(key);
      return id < 0 ? undefined : this.slab.stable(id);
    },
    // The HTTP front's key is a new string every request (sliced from the URL): not through the memo.
    lookup: (key) => this.hitId(key, false),
    body: (id) => (this.slab.inSlab(id) ? this.slab.toString(id, 'latin1') : this.slab.stable(id)),
    ttlMs: (id) => {
      const exp = this.slab.expiresAt[id];
      return exp === 0 ? undefined : Math.max(0, exp - this.now());
    },
    ageMs: (id) => Math.max(0, this.now() - this.slab.bornAt[id]),
    loadAfterMiss: (key, opts) => this.loadEntry(key, opts?.signal, false),
    getEntry: (key, opts) => this.entry(key, opts?.signal, opts?.local === true),
    removeLocal: (key) => this.removeLocal(key),
    setLocal: (key, value, opts) => this.setLocal(key, value, opts),
    handoffEntry: (key) => this.handoffEntry(key),
    acceptHandoff: (entries) => this.acceptHandoff(entries),
  };

  constructor(opts: GroupOptions) {
    if (opts === null || typeof opts !== 'object')
      throw new TypeError('new Group(options): options must be an object');
    const { name, cacheBytes, getter } = opts;
    if (typeof name !== 'string' || name.length === 0) {
      throw new TypeError(`new Group: name must be a non-empty string, got ${JSON.stringify(name)}`);
    }
    if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) {
      throw new RangeError(`new Group(${name}): cacheBytes must be an integer >= 0, got ${cacheBytes}`);
    }
    if (typeof getter !== 'function') throw new TypeError(`new Group(${name}): getter must be a function`);
    this.name = name;
    this.cacheBytes = cacheBytes;
    this.getter = getter;
    this.picker = opts.peers;
    this.getterTimeoutMs = checkMs(name, 'getterTimeoutMs', opts.getterTimeoutMs, DEFAULT_GETTER_TIMEOUT_MS);
    this.peerTimeoutMs = checkMs(
      name,
      'peerTimeoutMs',
      opts.peerTimeoutMs,
      this.getterTimeoutMs === 0 ? 0 : this.getterTimeoutMs + PEER_TIMEOUT_MARGIN_MS,
    );
    this.hotMaxAgeMs = checkMs(name, 'hotMaxAgeMs', opts.hotMaxAgeMs, DEFAULT_HOT_MAX_AGE_MS);
    this.handoffTimeoutMs = checkMs(
      name,
      'handoffTimeoutMs',
      opts.handoffTimeoutMs,
      DEFAULT_HANDOFF_TIMEOUT_MS,
    );
    this.tombstoneMs = checkMs(name, 'tombstoneMs', opts.tombstoneMs, DEFAULT_HANDOFF_WINDOW_MS);
    this.maxTombstones = opts.maxTombstones ?? DEFAULT_MAX_TOMBSTONES;
    if (!Number.isSafeInteger(this.maxTombstones) || this.maxTombstones < 0) {
      throw new RangeError(
        `new Group(${name}): maxTombstones must be an integer >= 0, got ${opts.maxTombstones}`,
      );
    }
    this.maxKeyBytes = opts.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES;
    if (!Number.isSafeInteger(this.maxKeyBytes) || this.maxKeyBytes < 1) {
      throw new RangeError(
        `new Group(${name}): maxKeyBytes must be an integer >= 1, got ${opts.maxKeyBytes}`,
      );
    }
    this.policy = opts.hotKeyPolicy ?? rateBasedPromotion();
    this.now = opts.now ?? Date.now;
    this.defaultSwrMs = Math.min(
      checkMs(name, 'staleWhileRevalidateMs', opts.staleWhileRevalidateMs, 0),
      MAX_TTL_MS,
    );
    this.defaultSieMs = Math.min(checkMs(name, 'staleIfErrorMs', opts.staleIfErrorMs, 0), MAX_TTL_MS);
    // One store for both caches: the budget is shared, and a page freed by one serves the other.
    const space = newSpace(
      cacheBytes,
      (id) => (space.store.tag[id] === HOT ? this.hot : this.main).reclaimed(id),
      () => evictOne(this.main, this.hot),
      2,
      opts.heapHoleReserveBytes === undefined
        ? heapHoleReserveBytes(cacheBytes, largeValuesInHeap(processAllocatorFacts()))
        : checkBytes(name, 'heapHoleReserveBytes', opts.heapHoleReserveBytes),
    );
    this.slab = space.store;
    this.index = space.index;
    this.main = new ByteCache(cacheBytes, this.now, space, MAIN);
    // The hot cache never takes more than 1/8 of the budget; enforceBudget keeps it ≤ 1/8 of main when full.
    this.hot = new ByteCache(Math.floor(cacheBytes / 8), this.now, space, HOT);
    const { main, hot } = this;
    this.hotView = {
      hasRoom: (bytes) =>
        hot.bytes + bytes <= hot.maxBytes &&
        (main.bytes + hot.bytes + bytes <= this.budgetBytes() || hot.bytes + bytes <= main.bytes / 8),
      coldestMinuteQps: () => hot.coldestRate(this.now()),
    };
    this.registry = opts.registry ?? defaultRegistry;
    this.registry.add(this);
  }

  /** The picker in use: the group's own, else its registry's. */
  get peerPicker(): PeerPicker {
    return this.picker ?? this.registry.peerPicker;
  }

  /** Uses `picker` for this group from now on (instead of the registry's). */
  setPeerPicker(picker: PeerPicker): void {
    if (picker === null || typeof picker !== 'object' || typeof picker.pickPeer !== 'function') {
      throw new TypeError(`group ${this.name}: setPeerPicker: picker must have a pickPeer(key) method`);
    }
    this.picker = picker;
  }

  /**
   * The value of `key`, as a copy the caller owns. Rejects with NotFoundError, InvalidKeyError,
   * GetterTimeoutError, the signal's reason, the getter's own error, or OwnerLoadError (the key's owner
   * is another process, whose load of it failed). Errors are never cached.
   */
  get(key: string, opts?: GetOptions): Promise<Buffer> {
    // Not an async function: a hit returns an already-resolved promise without an async frame.
    let id: number;
    try {
      id = this.hitId(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (id >= 0) return Promise.resolve(this.slab.copy(id));
    return this.loadValue(key, opts?.signal);
  }

  /** Like get, decoded as UTF-8. */
  getString(key: string, opts?: GetOptions): Promise<string> {
    let id: number;
    try {
      id = this.hitId(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (id >= 0) return Promise.resolve(this.slab.toString(id, 'utf8'));
    return this.loadString(key, opts?.signal);
  }

  private async loadString(key: string, signal: AbortSignal | undefined): Promise<string> {
    const e = await this.getMiss(key, signal, false, undefined);
    return e.value.toString('utf8');
  }

  private async loadValue(key: string, signal: AbortSignal | undefined): Promise<Buffer> {
    const e = await this.getMiss(key, signal, false, undefined);
    return copy(e.value);
  }

  /**
   * The miss path of every get, in a span (tracing.ts): the lookup of a kept (stale or negative) entry,
   * then load. `lookup.kept` receives what the lookup found.
   */
  private getMiss(
    key: string,
    signal: AbortSignal | undefined,
    local: boolean,
    lookup: { kept?: Entry } | undefined,
  ): Promise<Entry> {
    return traced(
      SPAN.get,
      SpanKind.INTERNAL,
      () => keyAttributes(this.name, key),
      () => {
        const kept = tracedSync(SPAN.cacheLookup, undefined, () => this.keptEntry(key));
        if (lookup !== undefined) lookup.kept = kept;
        return this.load(key, signal, local, kept);
      },
    );
  }

  /**
   * The store id of `key`'s live value (main cache, then hot; -1 on a miss), counted as a get. `viaMemo`:
   * see ByteCache.getId.
   */
  private hitId(key: string, viaMemo = true): number {
    this.stats.gets++;
    let id = this.main.getId(key, viaMemo);
    if (id < 0) id = this.hot.getId(key, viaMemo);
    // A remembered NotFound reads as a miss here: the load path answers it (an error is not a value).
    if (id < 0 || this.main.isNegative(id)) {
      // Validated only on a miss: an invalid key is never cached, so a hit proves the key is valid.
      this.checkKey(key);
      return -1;
    }
    this.stats.cacheHits++;
    return id;
  }

  /**
   * Like get, with the remaining ttl, stale windows, age and rate. `value` is SHARED with the cache:
   * read-only (no copy).
   */
  getEntry(key: string, opts?: GetOptions): Promise<EntryResult> {
    return this.entry(key, opts?.signal, false);
  }

  /** getEntry, and a peer's request when `local` (see GroupServer.getEntry). */
  private entry(key: string, signal: AbortSignal | undefined, local: boolean): Promise<EntryResult> {
    if (local) this.stats.serverRequests++;
    this.stats.gets++;
    let c = this.main;
    let id = c.getId(key);
    if (id < 0) id = (c = this.hot).getId(key);
    if (id >= 0 && !c.isNegative(id)) {
      this.stats.cacheHits++;
      return Promise.resolve(this.cachedResult(c, id));
    }
    try {
      this.checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.loadEntry(key, signal, local);
  }

  private async loadEntry(
    key: string,
    signal: AbortSignal | undefined,
    local: boolean,
  ): Promise<EntryResult> {
    const lookup: { kept?: Entry } = {};
    const e = await this.getMiss(key, signal, local, lookup);
    // The kept entry itself = answered from the cache (stale, or found fresh); else a new load's entry.
    return this.entryResult(e, e === lookup.kept);
  }

  /** entryResult(entry, true) of a fresh cached item, read from the store without an Entry. */
  private cachedResult(c: ByteCache, id: number): EntryResult {
    const st = this.slab;
    const now = this.now();
    const r: EntryResult = {
      value: st.stable(id),
      ageMs: Math.max(0, now - st.bornAt[id]),
      source: 'hit',
      minuteQps: c.readRate(id, now),
    };
    const exp = st.expiresAt[id];
    if (exp !== 0) {
      r.ttlMs = Math.max(exp - now, 0);
      const w = c.windowsOfId(id);
      if (w !== undefined) {
        if (w.swrUntil > now) r.staleWhileRevalidateMs = w.swrUntil - now;
        if (w.sieUntil > now) r.staleIfErrorMs = w.sieUntil - now;
      }
    }
    return r;
  }

  /** @param fromCache answered from this process's caches (else: loaded or fetched for this call) */
  private entryResult(e: Entry, fromCache: boolean): EntryResult {
    const now = this.now();
    const r: EntryResult = {
      value: e.value,
      ageMs: Math.max(0, now - e.bornAt),
      source: fromCache ? 'hit' : e.source,
      minuteQps: readRate(e, now),
    };
    if (e.expiresAt !== 0) {
      const ttl = e.expiresAt - now;
      r.ttlMs = Math.max(ttl, 0);
      // Expired: answered from a stale window here (from the cache) or at the owner (it came so).
      if (ttl <= 0 && (fromCache || e.source === 'peer')) r.stale = true;
      const w = e.windows;
      if (w !== undefined) {
        if (w.swrUntil > now) r.staleWhileRevalidateMs = w.swrUntil - now;
        if (w.sieUntil > now) r.staleIfErrorMs = w.sieUntil - now;
      }
    }
    return r;
  }

  /**
   * Drops `key` here, then asks its owner and every other peer (picker.peers()) to drop it from their
   * main and hot caches. Peers that fail are counted in `stats.removeErrors`, never thrown. A load of
   * the key in progress anywhere it reaches still answers its waiters but is not cached.
   */
  async remove(key: string): Promise<void> {
    this.removeLocal(key);
    const picker = this.peerPicker;
    const peers = picker.peers?.() ?? [];
    if (peers.length > 0) {
      // The owner first: a peer that re-fetches the key between its own remove and the owner's would
      // mirror the stale value again.
      const owner = picker.pickPeer(key);
      if (owner !== null) await this.removeAt(owner, key);
      await Promise.all(
        peers.map((p) => (p === owner || p.id === owner?.id ? undefined : this.removeAt(p, key))),
      );
      // A get that ran here while the peers were dropping it may have mirrored the old value.
      this.removeLocal(key);
    }
  }

  private async removeAt(peer: Peer, key: string): Promise<void> {
    if (typeof peer.remove !== 'function') return;
    try {
      await withTimeout(
        this.peerTimeoutMs,
        () => this.peerTimeout(peer),
        (signal) => peer.remove!(this.name, key, signal),
      );
    } catch {
      this.stats.removeErrors++;
    }
  }

  /**
   * Stores `value` (bytes, or a string as UTF-8) as the value of `key` at the key's owner — here, or
   * through the owner's `Peer.set` — then drops every mirror of it: this process's and every other
   * peer's (as `remove` does, the owner first). Resolves once the owner holds the value and the peers
   * were asked to drop theirs, so a get through any node after that sees it (a peer that failed to drop
   * its mirror is counted in `stats.removeErrors`, not thrown). Rejects (storing nothing) with
   * InvalidKeyError, TypeError for a bad value or ttl, RangeError for a value over the group's cache
   * size (for one of 128 KiB or more, less its heap-hole reserve), or the owner's error (down, timed out:
   * PeerTimeoutError after peerTimeoutMs).
   *
   * A load of the key in progress when the value is stored (at the owner or on a peer that mirrors it)
   * still answers its own waiters with what it loaded — possibly the older value — but is not cached:
   * set wins, and every get that starts after set resolved sees the set value (until it expires, is
   * removed or set again). Two concurrent sets: the one the owner stores last wins.
   */
  async set(key: string, value: Uint8Array | string, opts?: SetOptions): Promise<void> {
    this.checkKey(key);
    const bytes = valueBytes(value, () => `group ${this.name}: set(${preview(key)})`);
    const ttlMs = checkSetTtl(opts?.ttlMs, () => `group ${this.name}: set(${preview(key)})`);
    this.checkFits(key, bytes);
    const picker = this.peerPicker;
    const owner = picker.pickPeer(key);
    if (owner === null) {
      this.setLocal(key, bytes, { ttlMs });
    } else {
      if (typeof owner.set !== 'function') {
        throw new TypeError(
          `group ${this.name}: the owner of key ${preview(key)}, peer ${owner.id}, cannot store values ` +
            '(its Peer has no set method)',
        );
      }
      await withTimeout(
        this.peerTimeoutMs,
        () => this.peerTimeout(owner),
        (signal) => owner.set!(this.name, key, bytes, { ttlMs }, signal),
      );
      // Not the owner: any copy here (a mirror, or a main-cache entry from before the key moved) is old.
      this.removeLocal(key);
    }
    const peers = picker.peers?.() ?? [];
    if (peers.length > 0) {
      await Promise.all(
        peers.map((p) => (p === owner || p.id === owner?.id ? undefined : this.removeAt(p, key))),
      );
      // A get that ran here while the peers were dropping it may have mirrored the old value.
      if (owner !== null) this.removeLocal(key);
    }
  }

  /**
   * Stores `value` in this process's main cache as the owner (what a peer's Set request calls; `set`
   * does the rest): replaces any value or remembered NotFound, drops a mirror of the key here, and
   * keeps a load of the key in progress from caching its result. The value is copied.
   */
  private setLocal(key: string, value: Uint8Array | string, opts?: SetOptions): void {
    this.checkKey(key);
    const v = valueBytes(value, () => `group ${this.name}: set(${preview(key)})`);
    const ttlMs = checkSetTtl(opts?.ttlMs, () => `group ${this.name}: set(${preview(key)})`);
    const bytes = this.checkFits(key, v);
    const now = this.now();
    const e = new Entry(copy(v), expiry(ttlMs, now), now, 0);
    const swr = this.defaultSwrMs;
    const sie = this.defaultSieMs;
    e.setWindows(swr > 0 ? e.expiresAt + swr : 0, sie > 0 ? e.expiresAt + sie : 0);
    e.source = 'set';
    this.localFlights.invalidate(key);
    this.peerFlights.invalidate(key);
    this.hot.delete(key);
    this.stats.sets++;
    if (this.closed) return;
    if (this.main.set(key, e, bytes)) enforceBudget(this.main, this.hot, this.budgetBytes());
  }

  /**
   * What the budget rule holds main + hot to: cacheBytes, less the part of the heap-hole reserve in force
   * (SlabStore.reserveInForce: none while no value of 128 KiB or more is held, then rising over the
   * following puts). Otherwise small items fill the reserve (they may) and each large put clears
   * it again, evicting a reserve's worth of them every time (measured: ~70k items of 200 B a put into a 64 MiB
   * group, 16–50 ms).
   */
  private budgetBytes(): number {
    return Math.max(0, this.cacheBytes - this.slab.reserveInForce);
  }

  /**
   * Bytes `key` + `value` are charged; a RangeError when the main cache could never hold them: over
   * cacheBytes, or — a value (or key) of 128 KiB or more — over cacheBytes less the heap-hole reserve.
   */
  private checkFits(key: string, value: Uint8Array): number {
    const bytes = entryBytes(key, value);
    const reserve = this.slab.reserveFor(Math.max(value.byteLength, bytes - value.byteLength));
    if (bytes > this.main.maxBytes - reserve) {
      throw new RangeError(
        `group ${this.name}: key ${preview(key)} and its value are ${bytes} bytes, over the cache size ` +
          `of ${this.main.maxBytes} bytes (cacheBytes)` +
          (reserve > 0 ? ` less the heap-hole reserve of ${reserve} bytes (heapHoleReserveBytes)` : '') +
          '; store a smaller value or raise cacheBytes',
      );
    }
    return bytes;
  }

  /**
   * Drops `key` from this process's caches only (what a peer's remove request calls), and remembers the
   * remove for `tombstoneMs` so no handoff brings the old value back.
   */
  private removeLocal(key: string): void {
    this.checkKey(key);
    this.main.delete(key);
    this.hot.delete(key);
    this.localFlights.invalidate(key);
    this.peerFlights.invalidate(key);
    this.bury(key);
  }

  private bury(key: string): void {
    if (this.tombstoneMs === 0 || this.maxTombstones === 0) return;
    const t = this.tombstones;
    t.delete(key); // re-inserted at the end: insertion order stays oldest first
    t.set(key, this.now());
    if (t.size > this.maxTombstones) t.delete(t.keys().next().value as string);
  }

  /** Whether `key` was removed here less than `tombstoneMs` ago. */
  private buried(key: string): boolean {
    if (this.tombstones.size === 0) return false;
    const at = this.tombstones.get(key);
    if (at === undefined) return false;
    if (this.now() - at < this.tombstoneMs) return true;
    this.tombstones.delete(key);
    return false;
  }

  /**
   * The handoff question, for servers: the value of `key` if this process holds it in its main or hot
   * cache right now, else undefined. Never loads, never asks a peer, counts nothing but the cache
   * lookups. `value` is SHARED and read-only.
   */
  private handoffEntry(key: string): EntryResult | undefined {
    this.checkKey(key);
    // peek: fresh entries only. A remembered NotFound is not a value to hand over.
    const e = this.main.peek(key) ?? this.hot.peek(key);
    return e === undefined || e.negative ? undefined : this.entryResult(e, true);
  }

  /**
   * Keeps entries a leaving peer pushed here (this process owns them once it is gone) in the main
   * cache (replacing a hot-cache mirror of the same key): those not expired, not removed here within
   * `tombstoneMs`, and only while they fit in free room — a push never evicts this process's own
   * entries. Returns how many are now held in the main cache (already held ones included).
   * Invalid entries are skipped, never thrown.
   */
  private acceptHandoff(entries: readonly HandoffEntry[]): number {
    if (this.closed || !Array.isArray(entries)) return 0;
    const now = this.now();
    let kept = 0;
    for (const h of entries) {
      const key = h?.key;
      const v = h?.value;
      if (typeof key !== 'string' || !(v instanceof Uint8Array)) continue;
      try {
        this.checkKey(key);
      } catch {
        continue;
      }
      const ttl = h.ttlMs;
      if (ttl !== undefined && !(typeof ttl === 'number' && ttl > 0)) continue;
      if (this.buried(key)) continue;
      if (this.main.peek(key) !== undefined) {
        kept++; // already held as an owner: nothing to add
        continue;
      }
      const bytes = entryBytes(key, v);
      const keyBytes = bytes - v.byteLength;
      // A hot-cache mirror of it makes way (its bytes count as free room): the main copy replaces it.
      const mirror = this.hot.peek(key);
      const freed = mirror === undefined ? 0 : entryBytes(key, mirror.value);
      const freedOverhead = mirror === undefined ? 0 : itemOverhead(keyBytes, mirror.value.byteLength);
      // Free room by the budget rule, overhead included (what enforceBudget would evict for)...
      const overhead = itemOverhead(keyBytes, v.byteLength);
      if (!fitsBudget(this.main, this.hot, this.budgetBytes(), bytes, overhead, freed, freedOverhead))
        continue;
      // ...and in the store: the put may not evict or take pages back either (mayEvict false).
      // A copy: the value may be a view into a large received message.
      const value = Buffer.from(v);
      const qps = typeof h.minuteQps === 'number' && h.minuteQps >= 0 ? h.minuteQps : 0;
      const e = new Entry(value, expiry(ttl, now), now, qps);
      e.source = 'peer';
      // The mirror goes only once the main copy is in: a put the store refuses must not cost it.
      if (!this.main.set(key, e, bytes, false)) continue;
      if (mirror !== undefined) this.hot.delete(key);
      kept++;
      this.stats.handoffAccepted++;
      this.stats.handoffBytes += value.length;
    }
    return kept;
  }

  /**
   * Graceful leave: pushes this process's main-cache entries to their owners once it is gone
   * (`picker.successor`), hottest first, within `maxBytes` and `timeoutMs`. Call it while the other
   * members still route to this process (before announcing the leave), so no read falls between the
   * two. Never throws: a peer that fails just does not get its entries.
   */
  async handOff(opts: HandOffOptions = {}): Promise<HandOffResult> {
    const result: HandOffResult = { entries: 0, sent: 0, bytes: 0, skipped: 0 };
    const picker = this.peerPicker;
    if (typeof picker.successor !== 'function' || this.closed) return result;
    const maxBytes = opts.maxBytes ?? Number.POSITIVE_INFINITY;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDOFF_PUSH_MS;
    const now = this.now();
    // Store ids, read in this same tick (no await before the batches are built): no copies of entries
    // that will not fit the budget.
    const st = this.slab;
    const candidates: { peer: Peer; key: string; id: number; rate: number }[] = [];
    const consider = (key: string, id: number): void => {
      // Only fresh values: a remembered NotFound or a stale value is not worth a new owner's room.
      const exp = st.expiresAt[id];
      if (this.main.isNegative(id) || (exp !== 0 && exp <= now)) return;
      const peer = picker.successor!(key);
      if (peer === null || typeof peer.push !== 'function') return;
      candidates.push({ peer, key, id, rate: this.main.readRate(id, now) });
    };
    // Choosing successors is a ring lookup per entry (~1 µs): a huge cache spends at most half the time
    // budget on it. The walk is newest first (inserted, or given a second chance by eviction), and a hit
    // leaves its item where it is (CLOCK, KeyIndex.victim): a key read all along since it was loaded long
    // ago sits at the far end, which a cut-short walk does not reach. So the sampled hits go first (at
    // most 1,024 ids: hot keys, wherever they sit) and the walk passes over them.
    const started = Date.now();
    const sampled = new Set<number>();
    for (const id of this.main.sampledIds()) {
      if (sampled.has(id)) continue;
      sampled.add(id);
      consider(st.keyOf(id), id);
    }
    let walked = 0;
    for (const [key, id] of this.main.ids()) {
      if ((++walked & 1023) === 0 && timeoutMs > 0 && Date.now() - started > timeoutMs / 2) break;
      if (!sampled.has(id)) consider(key, id);
    }
    candidates.sort((a, b) => b.rate - a.rate);
    // Per peer: batches of entries, hottest first.
    const byPeer = new Map<Peer, { entries: HandoffEntry[]; bytes: number }[]>();
    let budget = maxBytes;
    for (const c of candidates) {
      const n = Buffer.byteLength(c.key, 'utf8') + st.length(c.id);
      if (n > budget || n > PUSH_MAX_ENTRY_BYTES) {
        result.skipped++;
        continue;
      }
      budget -= n;
      let batches = byPeer.get(c.peer);
      if (batches === undefined) byPeer.set(c.peer, (batches = [{ entries: [], bytes: 0 }]));
      let last = batches[batches.length - 1];
      if (last.entries.length > 0 && last.bytes + n > PUSH_BATCH_BYTES) {
        batches.push((last = { entries: [], bytes: 0 }));
      }
      const value = st.inSlab(c.id) ? st.copy(c.id) : st.stable(c.id);
      const h: HandoffEntry = { key: c.key, value, minuteQps: c.rate };
      const exp = st.expiresAt[c.id];
      if (exp !== 0) h.ttlMs = Math.max(1, exp - now);
      last.entries.push(h);
      last.bytes += n;
    }
    const ac = new AbortController();
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    const timer =
      timeoutMs > 0 ? setTimeout(() => ac.abort(new Error('handoff push time is up')), left) : undefined;
    await Promise.all(
      [...byPeer].map(async ([peer, batches]) => {
        for (const { entries: batch, bytes } of batches) {
          if (ac.signal.aborted) {
            result.skipped += batch.length;
            continue;
          }
          try {
            const kept = await traced(
              SPAN.handoffPush,
              SpanKind.CLIENT,
              () => ({ 'gossipcache.group': this.name, 'gossipcache.peer': peer.id, entries: batch.length }),
              () => peer.push!(this.name, batch, ac.signal),
            );
            result.entries += Math.min(batch.length, Math.max(0, Number(kept) || 0));
            result.sent += batch.length;
            result.bytes += bytes;
          } catch {
            result.skipped += batch.length;
          }
        }
      }),
    );
    clearTimeout(timer);
    this.stats.handoffPushed += result.entries;
    return result;
  }

  /**
   * Where the bytes of both caches are: slab pages, values in Buffers of their own, memory dropped but
   * not yet collected, and pages taken from one size class for another (docs/memory.md); and how often
   * the key index had to pick a new hash seed (keys colliding: by a rare chance, or chosen to).
   */
  memoryStats(): MemoryStats {
    return { ...this.slab.stats(), indexReseeds: this.index.reseeds };
  }

  cacheStats(which: Which): CacheStats {
    if (which === 'main') return this.main.stats();
    if (which === 'hot') return this.hot.stats();
    throw new TypeError(
      `group ${this.name}: cacheStats(which): which must be 'main' or 'hot', got ${String(which)}`,
    );
  }

  /**
   * The `n` hottest keys this process holds (main and hot cache), by their request rate here, among the
   * 10 000 newest entries of each cache and those of a sample of its recent hits (one in 64 of the last
   * 65,536: a hot key is there wherever it sits in the eviction order) — bounded cost whatever the size.
   */
  hotKeys(n = 10): HotKey[] {
    const now = this.now();
    const all = [
      ...this.main.hottest(n, HOT_KEYS_SCAN, now).map((e) => ({ ...e, cache: 'main' as const })),
      ...this.hot.hottest(n, HOT_KEYS_SCAN, now).map((e) => ({ ...e, cache: 'hot' as const })),
    ];
    return all.sort((a, b) => b.minuteQps - a.minuteQps).slice(0, n);
  }

  /**
   * Unregisters the group (its name can be reused) and empties its caches. Loads still in progress
   * answer their callers but cache nothing; later gets still work, uncached.
   */
  close(): void {
    this.closed = true;
    this.registry.delete(this);
    this.main.clear();
    this.hot.clear();
    this.slab.clear();
  }

  private checkKey(key: string): void {
    if (typeof key !== 'string') {
      throw new InvalidKeyError(`group ${this.name}: key must be a string, got ${typeof key}`);
    }
    // A UTF-16 code unit is at most 3 UTF-8 bytes, so short keys need no byte count.
    if (key.length === 0 || key.length * 3 > this.maxKeyBytes) this.checkKeySlow(key);
    // A lone surrogate has no UTF-8 form: peers and origins would receive U+FFFD in its place, and the
    // key would share the value of the key that really is U+FFFD there.
    if (!(key as unknown as { isWellFormed(): boolean }).isWellFormed()) {
      throw new InvalidKeyError(
        `group ${this.name}: key ${preview(key)} has a lone UTF-16 surrogate (not valid Unicode); ` +
          'send keys as well-formed text (hash or encode binary keys)',
      );
    }
  }

  private checkKeySlow(key: string): void {
    if (key.length === 0)
      throw new InvalidKeyError(`group ${this.name}: key is empty; use a non-empty string`);
    const n = Buffer.byteLength(key, 'utf8');
    if (n > this.maxKeyBytes) {
      throw new InvalidKeyError(
        `group ${this.name}: key is ${n} bytes of UTF-8, over the limit of ${this.maxKeyBytes} ` +
          `(maxKeyBytes); hash long keys or raise maxKeyBytes`,
      );
    }
  }

  /** A remembered NotFound, or a value past its ttl that a stale window still keeps (the miss path). */
  private keptEntry(key: string): Entry | undefined {
    return this.main.getKept(key) ?? this.hot.getKept(key);
  }

  /**
   * The miss path. `kept` (from keptEntry, looked up by the caller in the same tick) decides first: a
   * remembered NotFound is answered as such; a stale value within its stale-while-revalidate window is
   * answered at once while one background refresh runs; within its stale-if-error window the load runs
   * and the stale value answers if it fails. Otherwise: load, as groupcache does.
   */
  private load(
    key: string,
    signal: AbortSignal | undefined,
    local: boolean,
    kept: Entry | undefined,
  ): Promise<Entry> {
    if (kept !== undefined) {
      const now = this.now();
      if (kept.expiresAt === 0 || kept.expiresAt > now) {
        this.stats.cacheHits++;
        if (!kept.negative) return Promise.resolve(kept); // filled since the caller looked
        this.stats.negativeHits++;
        return Promise.reject(notFoundOf(kept, now));
      }
      const w = kept.windows;
      if (w !== undefined) {
        if (now < w.swrUntil) {
          this.stats.cacheHits++;
          this.stats.staleHits++;
          this.revalidate(key, w, now, local);
          return Promise.resolve(kept);
        }
        if (now < w.sieUntil) {
          this.stats.loads++;
          return this.loadOrStale(key, signal, local, kept, w);
        }
      }
    }
    this.stats.loads++;
    return this.startLoad(key, signal, local);
  }

  private startLoad(key: string, signal: AbortSignal | undefined, local: boolean): Promise<Entry> {
    if (!local) {
      const peer = this.peerPicker.pickPeer(key);
      if (peer !== null)
        return this.flight(this.peerFlights, key, signal, (f) => this.fetchFromPeer(peer, key, f));
    }
    return this.flight(this.localFlights, key, signal, (f) => this.loadLocally(key, f, true));
  }

  /** `flights.do`; waiting for another get's flight is a span of its own (the load is in that get's trace). */
  private flight(
    flights: Flights<Entry>,
    key: string,
    signal: AbortSignal | undefined,
    fn: (f: Flight<Entry>) => Promise<Entry>,
  ): Promise<Entry> {
    if (!flights.has(key)) return flights.do(key, signal, fn);
    return traced(SPAN.flightJoin, SpanKind.INTERNAL, undefined, () => flights.do(key, signal, fn));
  }

  /** Drops the stale entry with windows `w` from whichever cache still holds it for `key` (not a newer one). */
  private dropIfKept(key: string, w: StaleWindows): void {
    // Cached entries are snapshots of the store: the stored item is told by its windows object.
    if (this.main.windowsOf(key) === w) this.main.delete(key);
    if (this.hot.windowsOf(key) === w) this.hot.delete(key);
  }

  /** stale-if-error: the load, or `kept` if the load fails (not NotFound, not the caller leaving) in time. */
  private async loadOrStale(
    key: string,
    signal: AbortSignal | undefined,
    local: boolean,
    kept: Entry,
    w: StaleWindows,
  ): Promise<Entry> {
    try {
      return await this.startLoad(key, signal, local);
    } catch (err) {
      if (isNotFound(err) || signal?.aborted === true || !(this.now() < w.sieUntil)) throw err;
      this.stats.staleHits++;
      this.stats.staleIfErrorHits++;
      return kept;
    }
  }

  /**
   * Starts the background refresh of the stale entry whose windows are `w` through the usual flight —
   * at the owner for a key a peer owns (whose own stale answers start at most one refresh there, so one
   * per key cluster-wide) — unless one runs already or one failed less than REFRESH_RETRY_MS ago. Its
   * result replaces the stale value; a failure keeps it.
   */
  private revalidate(key: string, w: StaleWindows, now: number, local: boolean): void {
    if (w.refreshing || now < w.retryAt) return;
    w.refreshing = true;
    this.stats.backgroundRefreshes++;
    const peer = local ? null : this.peerPicker.pickPeer(key);
    const p =
      peer === null
        ? this.localFlights.do(key, undefined, (f) => this.loadLocally(key, f, true))
        : this.peerFlights.do(key, undefined, (f) => this.fetchFromPeer(peer, key, f));
    p.then(
      (e) => {
        w.refreshing = false;
        const t = this.now();
        if (e.expiresAt !== 0 && e.expiresAt <= t) {
          // Still stale (the owner is refreshing it): ask again later, not on the next get.
          w.retryAt = t + REFRESH_RETRY_MS;
          if (e.windows !== undefined) e.windows.retryAt = t + REFRESH_RETRY_MS;
        } else {
          // Fresh but not kept here (a peer's value the hot-key policy did not mirror, e.g. after the
          // key moved to another owner): the stale copy must not keep answering in its place.
          this.dropIfKept(key, w);
        }
      },
      (err: unknown) => {
        w.refreshing = false;
        this.stats.refreshErrors++;
        w.retryAt = this.now() + REFRESH_RETRY_MS;
        // The key has no value any more: the stale one must not be served again.
        if (isNotFound(err)) this.dropIfKept(key, w);
      },
    );
  }

  private async fetchFromPeer(peer: Peer, key: string, f: Flight<Entry>): Promise<Entry> {
    // Inside the flight: another flight may have filled the cache since the caller looked.
    const hit = this.main.get(key) ?? this.hot.get(key);
    if (hit !== undefined) return this.flightHit(hit);
    this.stats.loadsDeduped++;
    let r: PeerGetResult;
    let value: Buffer;
    try {
      // Usually a signal shared with other fetches: no AbortSignal is made per miss (Flight.callSignal).
      // The fetch is a client span; the gRPC layer sends its context to the owner (tracing.ts).
      const p = traced(
        SPAN.peerFetch,
        SpanKind.CLIENT,
        () => ({ ...keyAttributes(this.name, key), 'gossipcache.peer': peer.id }),
        () => peer.get(this.name, key, f.callSignal()),
      );
      r = await deadline(p, this.peerTimeoutMs, () => this.peerTimeout(peer));
      if (f.aborted) throw f.abortReason; // every waiter left: nothing to mirror
      value = peerValue(r);
    } catch (err) {
      if (isNotFound(err)) {
        notFoundFrom(err, 'peer');
        // The owner remembers this NotFound for a while: so may a mirror, for what is left of it.
        const ttl = (err as NotFoundError).ttlMs;
        if (!f.aborted && typeof ttl === 'number' && ttl > 0) {
          const now = this.now();
          this.mirror(key, negativeEntry(err as Error, ttl, now), undefined, f, now);
        }
        throw err;
      }
      if (f.aborted) throw err;
      if (isOwnerLoadError(err)) {
        // The owner answered: its own load failed, so the origin is failing for this key. Loading it
        // here too would ask the origin once more per node that wants the key, right when it is weakest,
        // and make this caller wait for a second failure. The owner's failure is the answer (a stale
        // value in its stale-if-error window still answers instead: loadOrStale).
        this.stats.ownerLoadErrors++;
        throw err;
      }
      this.stats.peerErrors++;
      // The owner is down, leaving or broken. The key's next member may hold it (a leaving owner pushed
      // it there): ask it, cache-only, before the getter — whether or not the ring changed lately.
      const next =
        this.handoffTimeoutMs === 0
          ? undefined
          : this.peerPicker.handoffPeers?.(key, true)?.filter((p) => p !== peer && p.id !== peer.id);
      if (next !== undefined && next.length > 0 && !this.buried(key)) {
        const e = await this.askHandoff(next, key, f, false);
        if (e !== undefined) return e;
      }
      // Load it here, sharing any local load of the key already running.
      return this.localFlights.do(key, f.waiterSignal(), (lf) => this.loadLocally(key, lf, false));
    }
    this.stats.peerLoads++;
    const now = this.now();
    const e = peerEntry(value, r, now);
    this.mirror(key, e, r.minuteQps, f, now);
    return e;
  }

  /** A value found in the cache inside a flight (a remembered NotFound answers as NotFound). */
  private flightHit(hit: Entry): Entry {
    this.stats.cacheHits++;
    if (!hit.negative) return hit;
    this.stats.negativeHits++;
    throw notFoundOf(hit, this.now());
  }

  /**
   * Keeps an owner's answer here: replaces a mirror the hot cache holds (a refresh of a stale or
   * negative mirror), else — if fresh — as the hot-key policy decides. Nothing for an answer that is already past
   * its last window, a flight a remove or set invalidated, or a closed group.
   */
  private mirror(
    key: string,
    e: Entry,
    ownerMinuteQps: number | undefined,
    f: Flight<Entry>,
    now: number,
  ): void {
    if (f.invalidated || this.closed || (e.keepUntil !== 0 && e.keepUntil <= now)) return;
    if (this.hot.has(key)) {
      const m = this.capMirror(e, now);
      if (this.hot.set(key, m, entryBytes(key, m.value)))
        enforceBudget(this.main, this.hot, this.budgetBytes());
      return;
    }
    // A stale answer is not newly mirrored: while the owner refreshes, asking it again gets the new
    // value as soon as it has one.
    if (e.expiresAt !== 0 && e.expiresAt <= now) return;
    this.maybePromote(key, e, ownerMinuteQps, now);
  }

  private peerTimeout(peer: Peer): Error {
    return new PeerTimeoutError(
      `group ${this.name}: peer ${peer.id} did not answer within ${this.peerTimeoutMs} ms`,
    );
  }

  /**
   * `e` as the hot cache may keep it: gone (fresh or stale) at most hotMaxAgeMs from now — its own
   * entry when that is shorter than its life, so the fetched one's TTL is still reported as is.
   */
  private capMirror(e: Entry, now: number): Entry {
    if (this.hotMaxAgeMs === 0) return e;
    const cap = now + this.hotMaxAgeMs;
    if (e.keepUntil !== 0 && e.keepUntil <= cap) return e;
    const c = new Entry(e.value, e.expiresAt === 0 ? cap : Math.min(e.expiresAt, cap), now, e.rate);
    const w = e.windows;
    if (w !== undefined) c.setWindows(Math.min(w.swrUntil, cap), Math.min(w.sieUntil, cap));
    c.bornAt = e.bornAt;
    c.source = e.source;
    c.negative = e.negative;
    return c;
  }

  private maybePromote(key: string, fetched: Entry, ownerMinuteQps: number | undefined, now: number): void {
    const bytes = entryBytes(key, fetched.value);
    if (bytes > this.hot.maxBytes) return;
    const e = this.capMirror(fetched, now);
    const peers = this.peerPicker.peers?.();
    const clusterSize = peers === undefined ? 1 : peers.length + 1;
    const d = this.policy.shouldPromote({
      key,
      bytes,
      now,
      ownerMinuteQps,
      clusterSize,
      hot: this.hotView,
    });
    if (d === false) return;
    e.rate = d === true ? (ownerMinuteQps ?? 0) / clusterSize : d;
    e.hits = 0;
    e.rateAt = now;
    if (this.hot.set(key, e, bytes)) enforceBudget(this.main, this.hot, this.budgetBytes());
  }

  /** @param owned this process owns the key (not a fallback for a failed owner): counts, and may hand off */
  private async loadLocally(key: string, f: Flight<Entry>, owned: boolean): Promise<Entry> {
    const hit = this.main.get(key) ?? this.hot.get(key);
    if (hit !== undefined) return this.flightHit(hit);
    if (owned) {
      this.stats.loadsDeduped++;
      // Only inside the handoff window after a membership change is this non-empty (peers.ts).
      const from = this.handoffTimeoutMs === 0 ? undefined : this.peerPicker.handoffPeers?.(key);
      if (from !== undefined && from.length > 0 && !this.buried(key)) {
        const e = await this.askHandoff(from, key, f);
        if (e !== undefined) return e;
      }
    }
    this.stats.localLoads++;
    let e: Entry;
    let bytes: number;
    try {
      const res = await deadline(
        traced(
          SPAN.getter,
          SpanKind.INTERNAL,
          () => keyAttributes(this.name, key),
          () => this.getter(key, new LoadContext(f)),
        ),
        this.getterTimeoutMs,
        () =>
          new GetterTimeoutError(
            `group ${this.name}: getter did not settle within ${this.getterTimeoutMs} ms (getterTimeoutMs) ` +
              `for key ${preview(key)}`,
          ),
        (err) => f.cancel(err),
      );
      if (f.aborted) throw f.abortReason; // every waiter left: a late value is not cached
      const now = this.now();
      e = this.toEntry(key, res, now);
      bytes = entryBytes(key, e.value);
    } catch (err) {
      this.stats.localLoadErrs++;
      if (isNotFound(err)) notFoundFrom(err, 'getter');
      // Negative caching: a NotFound with a ttl is remembered (in the byte budget) for that long.
      const ttl = (err as NotFoundError | undefined)?.ttlMs;
      if (typeof ttl === 'number' && ttl > 0 && isNotFound(err) && !f.aborted) {
        this.store(key, negativeEntry(err as Error, ttl, this.now()), f);
      }
      throw err;
    }
    this.store(key, e, f, bytes);
    return e;
  }

  /** Caches a load's entry in the main cache, unless a remove/set invalidated the load or it is past keeping. */
  private store(key: string, e: Entry, f: Flight<Entry>, bytes = entryBytes(key, e.value)): void {
    if (f.invalidated || this.closed || (e.keepUntil !== 0 && e.keepUntil <= e.rateAt)) return;
    if (this.main.set(key, e, bytes)) enforceBudget(this.main, this.hot, this.budgetBytes());
  }

  /**
   * Asks `peers` in order for `key` from their caches (cache-only, never forwarded, one bounded wait
   * each); the first value wins and (`keep`: this process owns the key) is cached here as if loaded.
   * Undefined when nobody has it.
   */
  private async askHandoff(
    peers: Peer[],
    key: string,
    f: Flight<Entry>,
    keep = true,
  ): Promise<Entry | undefined> {
    for (const peer of peers) {
      if (typeof peer.handoff !== 'function') continue;
      let r: PeerGetResult;
      let value: Buffer;
      try {
        r = await withTimeout(
          this.handoffTimeoutMs,
          () =>
            new PeerTimeoutError(
              `group ${this.name}: handoff from ${peer.id} took over ${this.handoffTimeoutMs} ms`,
            ),
          (signal) =>
            traced(
              SPAN.handoffAsk,
              SpanKind.CLIENT,
              () => ({ ...keyAttributes(this.name, key), 'gossipcache.peer': peer.id }),
              () => peer.handoff!(this.name, key, signal),
            ),
        );
        if (f.aborted) throw f.abortReason;
        value = peerValue(r);
      } catch (err) {
        if (f.aborted) throw err;
        continue; // not there (NotFound), slow or down: the next one, then the getter
      }
      const ttl = r.ttlMs === Number.POSITIVE_INFINITY ? undefined : r.ttlMs;
      // Expired (or stale) there: expired here too.
      if (r.stale === true || (ttl !== undefined && !(ttl > 0))) continue;
      // A remove reached this process while asking: the answer may predate it, so the getter decides.
      if (f.invalidated || this.buried(key)) break;
      const now = this.now();
      this.stats.handoffHits++;
      this.stats.handoffBytes += value.length;
      // Remaining ttl, windows and age travel, clamped like a fill's (fetchFromPeer).
      const e = peerEntry(value, r, now);
      e.hits = 1;
      if (keep) this.store(key, e, f);
      return e;
    }
    this.stats.handoffMisses++;
    return undefined;
  }

  private toEntry(key: string, res: GetterResult, now: number): Entry {
    let v: unknown = res;
    let ttl: unknown;
    let swr: unknown;
    let sie: unknown;
    if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
      const o = v as GetterValue;
      ttl = o.ttlMs;
      swr = o.staleWhileRevalidateMs;
      sie = o.staleIfErrorMs;
      v = o.value;
    }
    let value: Buffer;
    if (typeof v === 'string') value = Buffer.from(v, 'utf8');
    else if (v instanceof Uint8Array)
      value = Buffer.from(v); // a copy: the getter may reuse its buffer
    else {
      throw new TypeError(
        `group ${this.name}: getter returned ${describe(v)} for key ${preview(key)}; ` +
          'return a Uint8Array, a string, or { value, ttlMs?, staleWhileRevalidateMs?, staleIfErrorMs? }',
      );
    }
    let expiresAt = 0;
    if (ttl !== undefined) {
      if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
        throw new TypeError(
          `group ${this.name}: getter returned ttlMs ${describe(ttl)} for key ${preview(key)}; use a number of ms`,
        );
      }
      // ttlMs <= 0: already expired — returned to this load's waiters, cached only for a stale window.
      // Infinity: never expires; any other TTL is clamped to MAX_TTL_MS.
      if (ttl !== Number.POSITIVE_INFINITY) expiresAt = ttl > 0 ? now + Math.min(ttl, MAX_TTL_MS) : now;
    }
    const e = new Entry(value, expiresAt, now, 0);
    if (expiresAt !== 0) {
      // Windows are clamped to MAX_TTL_MS like ttls (Infinity included).
      const swrMs = Math.min(
        this.windowMs(key, 'staleWhileRevalidateMs', swr, this.defaultSwrMs),
        MAX_TTL_MS,
      );
      const sieMs = Math.min(this.windowMs(key, 'staleIfErrorMs', sie, this.defaultSieMs), MAX_TTL_MS);
      e.setWindows(swrMs > 0 ? expiresAt + swrMs : 0, sieMs > 0 ? expiresAt + sieMs : 0);
    }
    e.hits = 1; // the load itself is a request
    return e;
  }

  private windowMs(key: string, what: string, v: unknown, dflt: number): number {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) {
      throw new TypeError(
        `group ${this.name}: getter returned ${what} ${describe(v)} for key ${preview(key)}; use a number of ms >= 0`,
      );
    }
    return v;
  }
}

/**
 * The groups of one node, and the peer picker they share (groupcache's RegisterPeerPicker). A process
 * hosting several nodes (tests, the in-process harness) gives each its own registry.
 */
/**
 * A group as a server sees it: what the gRPC server, the HTTP front and the memcached front call.
 * A Group is one; tests may pass stubs. The server-only calls are behind `server` (GroupServer).
 */
export interface ServedGroup {
  readonly name: string;
  /** Byte budget of the main + hot caches (memcached's `limit_maxbytes`). */
  readonly cacheBytes: number;
  /** Longest key accepted, UTF-8 bytes (sizes the HTTP front's request-head limit). */
  readonly maxKeyBytes: number;
  readonly server: GroupServer;
  /** Cluster-wide remove (HTTP DELETE, memcached delete). */
  remove(key: string): Promise<void>;
  /** Store at the key's owner (HTTP PUT, memcached set/add/replace/touch). */
  set(key: string, value: Uint8Array, opts?: SetOptions): Promise<void>;
  readonly stats: Readonly<GroupStats>;
  cacheStats(which: 'main' | 'hot'): CacheStats;
  /** The hottest keys held here (HTTP `/_hotkeys`). */
  hotKeys(n?: number): readonly HotKey[];
  /** What the value store holds (metrics); optional for stubs. */
  memoryStats?(): MemoryStats;
}

/** The groups a server serves (a GroupRegistry). Looked up per request, so groups may come and go. */
export interface ServedRegistry {
  get(name: string): ServedGroup | undefined;
  list(): readonly ServedGroup[];
}

export class GroupRegistry {
  private readonly groups = new Map<string, Group>();
  private picker: PeerPicker = noPeers;

  /** The group named `name`, if registered. */
  get(name: string): Group | undefined {
    return this.groups.get(name);
  }

  list(): Group[] {
    return [...this.groups.values()];
  }

  /** The picker used by this registry's groups that have none of their own. Default `noPeers`. */
  get peerPicker(): PeerPicker {
    return this.picker;
  }

  setPeerPicker(picker: PeerPicker): void {
    if (picker === null || typeof picker !== 'object' || typeof picker.pickPeer !== 'function') {
      throw new TypeError('GroupRegistry.setPeerPicker: picker must have a pickPeer(key) method');
    }
    this.picker = picker;
  }

  /** @internal called by the Group constructor. */
  add(group: Group): void {
    if (this.groups.has(group.name)) {
      throw new DuplicateGroupError(
        `a group named ${JSON.stringify(group.name)} already exists in this registry; ` +
          'use another name, close() the old group, or give each node its own GroupRegistry',
      );
    }
    this.groups.set(group.name, group);
  }

  /** @internal called by Group.close(). */
  delete(group: Group): void {
    if (this.groups.get(group.name) === group) this.groups.delete(group.name);
  }
}

/** The process-wide registry used by groups created without `registry`. */
export const defaultRegistry = new GroupRegistry();

/**
 * A copy the caller owns. allocUnsafe (pool-backed below 4 KiB) + set measured a little faster than
 * Buffer.from(buffer) and well ahead of Uint8Array.prototype.slice or slices of a pool of our own.
 */
function copy(v: Uint8Array): Buffer {
  const c = Buffer.allocUnsafe(v.length);
  c.set(v);
  return c;
}

/**
 * What a getter gets: the flight's signal, made only when the getter reads it (an AbortSignal costs
 * ~12 µs on Node 20; a getter that ignores it should not pay for it).
 */
class LoadContext {
  constructor(private readonly flight: Flight<Entry>) {}
  get signal(): AbortSignal {
    return this.flight.signal;
  }
}

/** A remembered NotFound: the error's message as the value (so the budget counts it), for `ttlMs`. */
function negativeEntry(err: Error, ttlMs: number, now: number): Entry {
  const e = new Entry(Buffer.from(err.message, 'utf8'), expiry(ttlMs, now), now, 0);
  e.negative = true;
  e.hits = 1;
  return e;
}

/** The NotFoundError a remembered NotFound answers with, carrying the time it has left. */
function notFoundOf(e: Entry, now: number): NotFoundError {
  const ttlMs = e.expiresAt === 0 ? undefined : Math.max(1, e.expiresAt - now);
  const err = new NotFoundError(e.value.toString('utf8') || 'key not found', { ttlMs });
  err.source = 'hit';
  return err;
}

/** Notes on a NotFound (a getter's or a peer's) where it came from (NotFoundError.source). */
function notFoundFrom(err: unknown, source: 'peer' | 'getter'): void {
  try {
    (err as NotFoundError).source = source;
  } catch {
    // A frozen error from a getter: its answer carries no source.
  }
}

/** expiresAt for a ttl: Infinity = never (0); clamped to MAX_TTL_MS. */
function expiry(ttlMs: number | undefined, now: number): number {
  return ttlMs === undefined || ttlMs === Number.POSITIVE_INFINITY ? 0 : now + Math.min(ttlMs, MAX_TTL_MS);
}

function valueBytes(v: unknown, what: () => string): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`${what()}: value must be a Uint8Array or a string, got ${describe(v)}`);
}

function checkSetTtl(ttl: unknown, what: () => string): number | undefined {
  if (ttl === undefined) return undefined;
  if (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl <= 0) {
    throw new TypeError(`${what()}: ttlMs must be a number of ms > 0 (or Infinity), got ${describe(ttl)}`);
  }
  return ttl;
}

/**
 * A peer's answer (the owner's, or a handoff holder's) as an entry here. Absent or Infinity ttl = never
 * expires; ttl, windows and age longer than MAX_TTL_MS are clamped to it. A stale answer arrives expired;
 * its windows run from now for the time the peer had left in them.
 */
function peerEntry(value: Buffer, r: PeerGetResult, now: number): Entry {
  const e = new Entry(value, r.stale === true ? now : expiry(r.ttlMs, now), now, r.minuteQps ?? 0);
  e.setWindows(
    r.staleWhileRevalidateMs ? now + Math.min(r.staleWhileRevalidateMs, MAX_TTL_MS) : 0,
    r.staleIfErrorMs ? now + Math.min(r.staleIfErrorMs, MAX_TTL_MS) : 0,
  );
  if (r.ageMs) e.bornAt = now - Math.min(r.ageMs, MAX_TTL_MS);
  e.source = 'peer';
  return e;
}

function peerValue(r: PeerGetResult): Buffer {
  const v = r?.value;
  if (!(v instanceof Uint8Array)) throw new TypeError(`peer answered ${describe(v)} instead of bytes`);
  if (r.ttlMs !== undefined && (typeof r.ttlMs !== 'number' || Number.isNaN(r.ttlMs))) {
    throw new TypeError(`peer answered ttlMs ${describe(r.ttlMs)}`);
  }
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function checkBytes(group: string, what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`new Group(${group}): ${what} must be an integer >= 0, got ${v}`);
  }
  return v;
}

function checkMs(group: string, what: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || Number.isNaN(v) || v < 0) {
    throw new RangeError(`new Group(${group}): ${what} must be a number of ms >= 0 (0 = no limit), got ${v}`);
  }
  return v;
}

function preview(key: string): string {
  return JSON.stringify(key.length > 80 ? key.slice(0, 80) + '…' : key);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object'
    ? `an object (${Object.prototype.toString.call(v)})`
    : `${typeof v} ${String(v)}`;
}
