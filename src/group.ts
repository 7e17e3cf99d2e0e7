// Group: the load path. A get looks in the main cache, then the hot cache; on a miss it joins (or starts)
// the key's flight, which asks the key's owner — or, when this process owns it or the owner fails, the
// getter — and caches the result. Same shape as groupcache's Group, plus expiry, remove and abort.

import type { CacheStats } from './cache.js';
import { ByteCache, Entry, enforceBudget, entryBytes, MAX_TTL_MS } from './cache.js';
import {
  DuplicateGroupError,
  GetterTimeoutError,
  InvalidKeyError,
  isNotFound,
  PeerTimeoutError,
} from './errors.js';
import type { Flight } from './flight.js';
import { deadline, Flights, withTimeout } from './flight.js';
import type { HotCacheView, HotKeyPolicy } from './hotkeys.js';
import { rateBasedPromotion, readRate } from './hotkeys.js';
import type { Peer, PeerGetResult, PeerPicker } from './peers.js';
import { noPeers } from './peers.js';

/** What a getter may return: bytes, a UTF-8 string, or either with a time to live. */
export type GetterResult = Uint8Array | string | { value: Uint8Array | string; ttlMs?: number };

/**
 * Loads the value of a key this process owns (or must load because its owner failed). Throw
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
}

export interface GetOptions {
  /** Stop waiting when it aborts (rejects with its reason). The shared load stops when every waiter has. */
  signal?: AbortSignal;
}

export interface GetEntryOptions extends GetOptions {
  /**
   * A peer's request (this process is asked because it owns the key): counts `serverRequests`, is served
   * from this process's caches or its getter, and is never forwarded to another peer.
   */
  local?: boolean;
}

/** What `getEntry` returns; what an owner sends its peers. */
export interface EntryResult {
  /** SHARED with the cache: read-only. */
  value: Buffer;
  /** Remaining time to live in ms; absent = no expiry. */
  ttlMs?: number;
  /** This process's estimate of requests per minute for the key (see hotkeys.ts). */
  minuteQps: number;
}

/** groupcache's counters, same meaning. Plain fields: read them, do not write them. */
export interface GroupStats {
  /** Every get (get, getString, getEntry, getCached), whatever its outcome. */
  gets: number;
  /** Gets answered from the main or hot cache (including a re-check inside a flight). */
  cacheHits: number;
  /** Values fetched from an owner. */
  peerLoads: number;
  /** Fetches from an owner that failed other than by NotFound (the key was then loaded locally). */
  peerErrors: number;
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
  /** Peers that failed to drop a key in `remove` (down, timed out). */
  removeErrors: number;
}

export const DEFAULT_MAX_KEY_BYTES = 65_536;
export { MAX_TTL_MS };

const DEFAULT_GETTER_TIMEOUT_MS = 30_000;
const PEER_TIMEOUT_MARGIN_MS = 1_000;
/** The default peerTimeoutMs: the owner may be running the getter itself, so give it that long and a second. */
export const DEFAULT_PEER_TIMEOUT_MS = DEFAULT_GETTER_TIMEOUT_MS + PEER_TIMEOUT_MARGIN_MS;

type Which = 'main' | 'hot';

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
    loads: 0,
    loadsDeduped: 0,
    localLoads: 0,
    localLoadErrs: 0,
    serverRequests: 0,
    removeErrors: 0,
  };

  private readonly getter: Getter;
  private picker: PeerPicker | undefined;
  private readonly getterTimeoutMs: number;
  private readonly peerTimeoutMs: number;
  private readonly policy: HotKeyPolicy;
  private readonly now: () => number;
  private readonly main: ByteCache;
  private readonly hot: ByteCache;
  private readonly hotView: HotCacheView;
  /** Loads that run the getter here (own keys, peers' requests, fallbacks). */
  private readonly localFlights = new Flights<Entry>();
  /** Fetches from owners. */
  private readonly peerFlights = new Flights<Entry>();
  private closed = false;
  /** The entry the last getCached call returned (getCachedTtlMs). */
  private lastHit: Entry | undefined;

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
    this.maxKeyBytes = opts.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES;
    if (!Number.isSafeInteger(this.maxKeyBytes) || this.maxKeyBytes < 1) {
      throw new RangeError(
        `new Group(${name}): maxKeyBytes must be an integer >= 1, got ${opts.maxKeyBytes}`,
      );
    }
    this.policy = opts.hotKeyPolicy ?? rateBasedPromotion();
    this.now = opts.now ?? Date.now;
    this.main = new ByteCache(cacheBytes, this.now);
    // The hot cache never takes more than 1/8 of the budget; enforceBudget keeps it ≤ 1/8 of main when full.
    this.hot = new ByteCache(Math.floor(cacheBytes / 8), this.now);
    const { main, hot } = this;
    this.hotView = {
      hasRoom: (bytes) =>
        hot.bytes + bytes <= hot.maxBytes &&
        (main.bytes + hot.bytes + bytes <= cacheBytes || hot.bytes + bytes <= main.bytes / 8),
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
   * GetterTimeoutError, the signal's reason, or the getter's own error. Errors are never cached.
   */
  get(key: string, opts?: GetOptions): Promise<Buffer> {
    // Not an async function: a hit returns an already-resolved promise without an async frame.
    let v: Buffer | undefined;
    try {
      v = this.getCached(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (v !== undefined) return Promise.resolve(copy(v));
    return this.loadValue(key, opts?.signal);
  }

  /** Like get, decoded as UTF-8. */
  getString(key: string, opts?: GetOptions): Promise<string> {
    let v: Buffer | undefined;
    try {
      v = this.getCached(key);
    } catch (err) {
      return Promise.reject(err);
    }
    if (v !== undefined) return Promise.resolve(v.toString('utf8'));
    return this.loadString(key, opts?.signal);
  }

  private async loadString(key: string, signal: AbortSignal | undefined): Promise<string> {
    const e = await this.load(key, signal, false);
    return e.value.toString('utf8');
  }

  private async loadValue(key: string, signal: AbortSignal | undefined): Promise<Buffer> {
    const e = await this.load(key, signal, false);
    return copy(e.value);
  }

  /**
   * The synchronous hit path, for servers: the cached value (main cache, then hot) or undefined on a
   * miss, without loading. The buffer is SHARED with the cache: never write to it. Counts gets/cacheHits.
   */
  getCached(key: string): Buffer | undefined {
    this.stats.gets++;
    const e = this.main.get(key) ?? this.hot.get(key);
    if (e === undefined) {
      this.lastHit = undefined;
      // Validated only on a miss: an invalid key is never cached, so a hit proves the key is valid.
      this.checkKey(key);
      return undefined;
    }
    this.stats.cacheHits++;
    this.lastHit = e;
    return e.value;
  }

  /**
   * The remaining time to live, in ms, of the value the last `getCached` call returned (undefined = it
   * never expires) — what `getEntry` reports as `ttlMs`, without a promise or a result object. Call it
   * right after a `getCached` hit, in the same tick (before anything else uses the group), e.g.
   * `const v = g.getCached(k); if (v) { const ttl = g.getCachedTtlMs(); ... }`. Allocates nothing; reads
   * the clock only for a value that expires. After a miss it returns undefined.
   */
  getCachedTtlMs(): number | undefined {
    const e = this.lastHit;
    if (e === undefined || e.expiresAt === 0) return undefined;
    return Math.max(0, e.expiresAt - this.now());
  }

  /** Like get, with the remaining ttl and rate, for servers. `value` is SHARED and read-only (no copy). */
  getEntry(key: string, opts?: GetEntryOptions): Promise<EntryResult> {
    const local = opts?.local === true;
    if (local) this.stats.serverRequests++;
    this.stats.gets++;
    const e = this.main.get(key) ?? this.hot.get(key);
    if (e !== undefined) {
      this.stats.cacheHits++;
      return Promise.resolve(this.entryResult(e));
    }
    try {
      this.checkKey(key);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.loadEntry(key, opts, local);
  }

  /**
   * For servers, right after `getCached(key)` returned undefined in the same tick: loads `key` (from its
   * owner, or the getter) without counting a second get or re-validating the key. Resolves and rejects
   * like `getEntry`; `value` is SHARED and read-only.
   */
  loadAfterMiss(key: string, opts?: GetOptions): Promise<EntryResult> {
    return this.loadEntry(key, opts, false);
  }

  private async loadEntry(
    key: string,
    opts: GetEntryOptions | undefined,
    local: boolean,
  ): Promise<EntryResult> {
    return this.entryResult(await this.load(key, opts?.signal, local));
  }

  private entryResult(e: Entry): EntryResult {
    const now = this.now();
    const r: EntryResult = { value: e.value, minuteQps: readRate(e, now) };
    if (e.expiresAt !== 0) r.ttlMs = Math.max(0, e.expiresAt - now);
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

  /** Drops `key` from this process's caches only (what a peer's remove request calls). */
  removeLocal(key: string): void {
    this.checkKey(key);
    this.main.delete(key);
    this.hot.delete(key);
    this.localFlights.invalidate(key);
    this.peerFlights.invalidate(key);
  }

  cacheStats(which: Which): CacheStats {
    if (which === 'main') return this.main.stats();
    if (which === 'hot') return this.hot.stats();
    throw new TypeError(
      `group ${this.name}: cacheStats(which): which must be 'main' or 'hot', got ${String(which)}`,
    );
  }

  /**
   * Unregisters the group (its name can be reused) and empties its caches. Loads still in progress
   * answer their callers but cache nothing; later gets still work, uncached.
   */
  close(): void {
    this.closed = true;
    this.lastHit = undefined;
    this.registry.delete(this);
    this.main.clear();
    this.hot.clear();
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

  private load(key: string, signal: AbortSignal | undefined, local: boolean): Promise<Entry> {
    this.stats.loads++;
    if (!local) {
      const peer = this.peerPicker.pickPeer(key);
      if (peer !== null) return this.peerFlights.do(key, signal, (f) => this.fetchFromPeer(peer, key, f));
    }
    return this.localFlights.do(key, signal, (f) => this.loadLocally(key, f, true));
  }

  private async fetchFromPeer(peer: Peer, key: string, f: Flight<Entry>): Promise<Entry> {
    // Inside the flight: another flight may have filled the cache since the caller looked.
    const hit = this.main.get(key) ?? this.hot.get(key);
    if (hit !== undefined) {
      this.stats.cacheHits++;
      return hit;
    }
    this.stats.loadsDeduped++;
    let r: PeerGetResult;
    let value: Buffer;
    try {
      // Usually a signal shared with other fetches: no AbortSignal is made per miss (Flight.callSignal).
      const p = peer.get(this.name, key, f.callSignal());
      r = await deadline(p, this.peerTimeoutMs, () => this.peerTimeout(peer));
      if (f.aborted) throw f.abortReason; // every waiter left: nothing to mirror
      value = peerValue(r);
    } catch (err) {
      if (f.aborted || isNotFound(err)) throw err;
      this.stats.peerErrors++;
      // The owner is down or broken: load it here, sharing any local load of the key already running.
      return this.localFlights.do(key, f.waiterSignal(), (lf) => this.loadLocally(key, lf, false));
    }
    this.stats.peerLoads++;
    const now = this.now();
    // Absent or Infinity = never expires; anything longer than MAX_TTL_MS is clamped to it.
    const ttl = r.ttlMs === Number.POSITIVE_INFINITY ? undefined : r.ttlMs;
    const e = new Entry(
      value,
      ttl === undefined ? 0 : now + Math.min(ttl, MAX_TTL_MS),
      now,
      r.minuteQps ?? 0,
    );
    if (!f.invalidated && !this.closed && (ttl === undefined || ttl > 0)) {
      this.maybePromote(key, e, r.minuteQps, now);
    }
    return e;
  }

  private peerTimeout(peer: Peer): Error {
    return new PeerTimeoutError(
      `group ${this.name}: peer ${peer.id} did not answer within ${this.peerTimeoutMs} ms`,
    );
  }

  private maybePromote(key: string, e: Entry, ownerMinuteQps: number | undefined, now: number): void {
    const bytes = entryBytes(key, e.value);
    if (bytes > this.hot.maxBytes) return;
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
    if (this.hot.set(key, e, bytes)) enforceBudget(this.main, this.hot, this.cacheBytes);
  }

  private async loadLocally(key: string, f: Flight<Entry>, countDeduped: boolean): Promise<Entry> {
    const hit = this.main.get(key) ?? this.hot.get(key);
    if (hit !== undefined) {
      this.stats.cacheHits++;
      return hit;
    }
    if (countDeduped) this.stats.loadsDeduped++;
    this.stats.localLoads++;
    let e: Entry;
    let bytes: number;
    try {
      const res = await deadline(
        this.getter(key, new LoadContext(f)),
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
      throw err;
    }
    if (!f.invalidated && !this.closed && (e.expiresAt === 0 || e.expiresAt > e.rateAt)) {
      if (this.main.set(key, e, bytes)) enforceBudget(this.main, this.hot, this.cacheBytes);
    }
    return e;
  }

  private toEntry(key: string, res: GetterResult, now: number): Entry {
    let v: unknown = res;
    let ttl: unknown;
    if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
      ttl = (v as { ttlMs?: unknown }).ttlMs;
      v = (v as { value?: unknown }).value;
    }
    let value: Buffer;
    if (typeof v === 'string') value = Buffer.from(v, 'utf8');
    else if (v instanceof Uint8Array)
      value = Buffer.from(v); // a copy: the getter may reuse its buffer
    else {
      throw new TypeError(
        `group ${this.name}: getter returned ${describe(v)} for key ${preview(key)}; ` +
          'return a Uint8Array, a string, or { value, ttlMs? }',
      );
    }
    let expiresAt = 0;
    if (ttl !== undefined) {
      if (typeof ttl !== 'number' || Number.isNaN(ttl)) {
        throw new TypeError(
          `group ${this.name}: getter returned ttlMs ${describe(ttl)} for key ${preview(key)}; use a number of ms`,
        );
      }
      // ttlMs <= 0: already expired — returned to this load's waiters, not cached. Infinity: never
      // expires; any other TTL is clamped to MAX_TTL_MS.
      if (ttl !== Number.POSITIVE_INFINITY) expiresAt = ttl > 0 ? now + Math.min(ttl, MAX_TTL_MS) : now;
    }
    const e = new Entry(value, expiresAt, now, 0);
    e.hits = 1; // the load itself is a request
    return e;
  }
}

/**
 * The groups of one node, and the peer picker they share (groupcache's RegisterPeerPicker). A process
 * hosting several nodes (tests, the in-process harness) gives each its own registry.
 */
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
function copy(v: Buffer): Buffer {
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

function peerValue(r: PeerGetResult): Buffer {
  const v = r?.value;
  if (!(v instanceof Uint8Array)) throw new TypeError(`peer answered ${describe(v)} instead of bytes`);
  if (r.ttlMs !== undefined && (typeof r.ttlMs !== 'number' || Number.isNaN(r.ttlMs))) {
    throw new TypeError(`peer answered ttlMs ${describe(r.ttlMs)}`);
  }
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
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
