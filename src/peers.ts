// The seam between the load path and the network. The core (group.ts) only knows these two
// interfaces; gRPC (src/grpc/), static lists and SWIM membership (src/membership/) plug in behind
// them without touching the load path — the same split as groupcache's peers.go.

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
   * never forwards it again. Rejects with `NotFoundError` when the key has no value; with any other
   * error when the peer could not answer (the caller then loads locally). A NotFoundError may carry
   * `ttlMs`: how long the owner still remembers that NotFound (the caller may remember it that long).
   * Windows and ttls are remaining times, so a copy never outlives the owner's.
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
