// The seam between the load path and the network, both ways. Outgoing, the core (group.ts) only knows
// Peer and PeerPicker: gRPC (src/grpc/), static lists and SWIM membership (src/membership/) plug in
// behind them without touching the load path — the same split as groupcache's peers.go. Incoming,
// servers (the gRPC server, the node's HTTP and memcached fronts) call a group through GroupServer
// (`group.server`), and every answer is one shape: a value with its lifecycle (PeerGetResult, and
// EntryResult = that + how it was made).

/** What an owner answers for one key. */
export interface PeerGetResult {
  /** The value. Callers must treat it as read-only. */
  value: Uint8Array;
  /** Remaining time to live at the owner, in ms; absent = no expiry. */
  ttlMs?: number;
  /** The value is past its ttl: the owner answered it from a stale window (ttlMs is then ignored). */
  stale?: boolean;
  /** Time left in the value's stale-while-revalidate window at the owner, in ms; absent/0 = none. */
  staleWhileRevalidateMs?: number;
  /** Time left in the value's stale-if-error window at the owner, in ms; absent/0 = none. */
  staleIfErrorMs?: number;
  /** Time since the value was loaded or set, in ms (HTTP's Age); absent = 0. */
  ageMs?: number;
  /** The owner's estimate of requests per minute for this key, cluster-wide (feeds hot-key promotion). */
  minuteQps?: number;
}

/**
 * How an answer was made: from this process's caches (`hit`), fetched from the key's owner just now
 * (`peer`), loaded by this process's getter just now (`getter`), stored by `set` (`set`).
 */
export type EntrySource = 'hit' | 'peer' | 'getter' | 'set';

/** What `group.getEntry` returns and a server sends: the owner's answer plus how it was made here. */
export interface EntryResult extends PeerGetResult {
  /** SHARED with the cache: read-only. */
  value: Buffer;
  /** Remaining time to live in ms (0 = expired); absent = no expiry. */
  ttlMs?: number;
  /** Time since the value was produced (loaded by a getter or set), wherever that was, in ms. */
  ageMs: number;
  /** How this answer was made. */
  source: EntrySource;
  /** This process's estimate of requests per minute for the key (see hotkeys.ts). */
  minuteQps: number;
}

/**
 * What servers call on a group (`group.server`): the gRPC server for its peers, the HTTP and memcached
 * fronts for their clients. Not for application code: values are SHARED with the cache (never write to
 * them), and these calls skip what the user API does (copies, forwarding to the owner, cluster-wide
 * fan-out). Every method is independent: none depends on an earlier call.
 */
export interface GroupServer {
  /**
   * The synchronous hit path: `key`'s value from the main cache, then the hot cache, or undefined on a
   * miss (a remembered NotFound is a miss: the load path answers it). Never loads. Counts a get (and a
   * cache hit). Throws InvalidKeyError for an invalid key — checked on a miss only: an invalid key is
   * never cached, so a hit proves the key is valid. The Buffer is SHARED: never write to it; it stays
   * valid after the key is evicted.
   */
  getCached(key: string): Buffer | undefined;
  /**
   * The hit path for a server that also wants the value's times or a string body: a handle on `key`'s
   * cached item (>= 0), or -1 on a miss; counts and throws like getCached. Allocates nothing. The handle
   * is valid until the group's caches next change: pass it to `body`/`ttlMs`/`ageMs` at once, in the
   * same synchronous code. Nothing is kept between calls.
   */
  lookup(key: string): number;
  /**
   * The value of a handle `lookup` returned, for an HTTP body: up to 1 KiB as a latin1 string (one char
   * per byte, straight from its slab page: what node:http writes with its headers), a bigger one as the
   * SHARED Buffer.
   */
  body(hit: number): string | Buffer;
  /** Remaining time to live of a handle's value, ms (0 = expired); undefined = never expires. */
  ttlMs(hit: number): number | undefined;
  /** Time since a handle's value was loaded or set (at its owner, for a mirror), ms: HTTP's Age. */
  ageMs(hit: number): number;
  /**
   * The miss path, after getCached/lookup missed: loads `key` (from its owner, or the getter)
   * without counting a second get or re-validating the key. Resolves and rejects like `getEntry`.
   */
  loadAfterMiss(key: string, opts?: { signal?: AbortSignal }): Promise<EntryResult>;
  /**
   * Like `group.getEntry`. `local: true` = a peer's request (this process is asked because it owns the
   * key): counts `serverRequests`, is served from this process's caches or its getter, never forwarded.
   */
  getEntry(key: string, opts?: { signal?: AbortSignal; local?: boolean }): Promise<EntryResult>;
  /** Drops `key` from this process's caches only (a peer's Remove), remembering the remove (tombstone). */
  removeLocal(key: string): void;
  /**
   * Stores `value` in this process's main cache as the key's owner (a peer's Set; `group.set` does the
   * rest): replaces any value or remembered NotFound, drops a mirror, keeps a load in progress from
   * caching. The value is copied. Throws TypeError/RangeError for a bad value or ttl, InvalidKeyError
   * for a bad key. Optional for servers: without it a Set answers UNIMPLEMENTED.
   */
  setLocal?(key: string, value: Uint8Array | string, opts?: { ttlMs?: number }): void;
  /**
   * The handoff question: the entry if this process holds it in its main or hot cache right now, else
   * undefined. Never loads, never asks a peer. Optional for servers: without it, NOT_FOUND.
   */
  handoffEntry?(key: string): EntryResult | undefined;
  /** Entries a leaving peer pushed here; returns how many are held now. Optional: without it, none kept. */
  acceptHandoff?(entries: readonly HandoffEntry[]): number;
}

/** One cache entry handed to a peer by a leaving node (see `Peer.push`). */
export interface HandoffEntry {
  key: string;
  /** Read-only. */
  value: Uint8Array;
  /** Remaining time to live in ms; absent = no expiry. An expired entry is never handed off. */
  ttlMs?: number;
  /** The sender's estimate of requests per minute for the key. */
  minuteQps?: number;
}

/** A remote process that owns some keys. */
export interface Peer {
  /** Stable identity of the peer (its advertised address, e.g. `10.0.0.5:9090`). */
  readonly id: string;
  /**
   * Fetch `key` of `group` from this peer. The peer serves it from its cache or loads it itself and
   * never forwards it again. Rejects with `NotFoundError` when the key has no value; with
   * `OwnerLoadError` when the peer answered that its own load of the key failed — what
   * `loadFailureName` (errors.ts) names for the rejection of its `getEntry(key, { local: true })` — and
   * the caller then fails too, without running its getter; with any other error when the peer could
   * not answer (down, leaving, a transport error, its deadline; the caller then loads locally). A
   * NotFoundError may carry `ttlMs`: how long the owner still remembers that NotFound (the caller may
   * remember it that long). Windows and ttls are remaining times, so a copy never outlives the owner's.
   */
  get(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult>;
  /** Drop `key` of `group` from the peer's caches (main and hot). Optional: static test peers may omit it. */
  remove?(group: string, key: string, signal: AbortSignal): Promise<void>;
  /**
   * Store `value` as the value of `key` of `group` in this peer's main cache, as the key's owner
   * (`group.setLocal`: replaces what it holds, drops its mirror, keeps a load in progress from caching).
   * Never forwarded. Resolves once stored; rejects if the peer refused (unknown group, invalid key,
   * value over its cache size) or could not be reached. `group.set` then drops the other peers' mirrors.
   * Optional: peers without it cannot own keys that are set.
   */
  set?(
    group: string,
    key: string,
    value: Uint8Array,
    opts: { ttlMs?: number },
    signal: AbortSignal,
  ): Promise<void>;
  /**
   * The handoff question: `key` of `group` if this peer holds it in its main or hot cache right now.
   * CACHE-ONLY: the peer never runs its getter for it, never forwards it, never asks anyone else (so
   * two nodes that disagree about the ring cannot ask each other in a circle). Rejects with
   * `NotFoundError` when the peer does not hold it; with any other error when it could not answer.
   * Optional: a peer without it is simply not asked.
   */
  handoff?(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult>;
  /**
   * A leaving node hands `entries` of `group` to this peer, their owner once the sender is gone. The
   * peer keeps those it has room for and has not seen removed recently; resolves with how many it
   * kept. Never forwarded. Optional.
   */
  push?(group: string, entries: HandoffEntry[], signal: AbortSignal): Promise<number>;
}

/** Chooses the owner of a key. Implementations must be cheap: it is called on every cache miss. */
export interface PeerPicker {
  /** The peer that owns `key`, or `null` when this process owns it (or there are no peers). */
  pickPeer(key: string): Peer | null;
  /** Every remote peer currently known (for cluster-wide remove). Optional. */
  peers?(): Peer[];
  /**
   * Peers that may hold `key` from before the last membership change, most likely first: the members
   * after this process in the key's rendezvous order (for a key this process owns: those after it) —
   * asked with `Peer.handoff` before the getter runs. Return `[]` when the member set has not changed
   * recently, so steady state pays no extra round trip — unless `anyTime` (the owner just failed: its
   * next member may hold what a leaving owner pushed). Called only on misses. Optional: without it
   * there is no handoff.
   */
  handoffPeers?(key: string, anyTime?: boolean): Peer[];
  /**
   * The peer that will own `key` once this process has left (its owner, if that is not this process),
   * or `null` when no one else is left. A leaving node pushes its entries there. Optional.
   */
  successor?(key: string): Peer | null;
}

/** A picker for a process that owns every key: groupcache's NoPeers. */
export const noPeers: PeerPicker = { pickPeer: () => null, peers: () => [] };
