// Warm handoff: when ownership of a key moves (a node joins, comes back from a restart, or leaves), the
// value usually still sits in some live node's cache, and the new owner should take it from there
// instead of from the origin. docs/handoff.md explains the design; this file holds the two pieces a
// picker needs: when to ask (a window after each ring change), and whom (the key's next members in
// rendezvous order, which are exactly the nodes that owned it before this one joined or came back).

import type { Ring } from './ring.js';

/**
 * How long after a ring change (or after this process started) an owner's miss first asks the previous
 * holders. Outside the window a miss goes straight to the getter: steady state pays no extra round trip.
 * Five minutes covers a rolling restart with the usual pauses between nodes; the cost inside it is one
 * cache-only round trip per cold miss (~0.1-0.3 ms on a LAN, see docs/performance.md).
 */
export const DEFAULT_HANDOFF_WINDOW_MS = 300_000;

/** How many members after the owner a handoff question may ask, in order (2 covers two joins at once). */
export const HANDOFF_CANDIDATES = 2;

/**
 * Tracks when the member set last changed, so a picker can say whether a miss is worth a handoff
 * question. Starts "changed" at construction: a process that just started has an empty cache and its
 * keys are at the members that stood in for it.
 */
export class HandoffWindow {
  private changedAt: number;

  constructor(
    readonly windowMs: number = DEFAULT_HANDOFF_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {
    if (!(windowMs >= 0)) throw new RangeError(`handoff window must be >= 0 ms, got ${windowMs}`);
    this.changedAt = now();
  }

  /** The member set changed just now. */
  changed(): void {
    this.changedAt = this.now();
  }

  /** Within the window of the last change. */
  get open(): boolean {
    return this.windowMs > 0 && this.now() - this.changedAt < this.windowMs;
  }
}

/**
 * The members that may hold `key` from before the last membership change, most likely first: the next
 * `n` members after `self` in the key's rendezvous order. Under rendezvous hashing the member right
 * after the owner is the one that owned the key before the owner joined or while it was away; the one
 * after that covers two members joining at once. Allocates (a sort over the members): call it only on a
 * miss inside the handoff window.
 */
export function handoffCandidates(ring: Ring, self: string, key: string, n = HANDOFF_CANDIDATES): string[] {
  const order = ring.ownersOf(key, n + 1);
  const out: string[] = [];
  for (const m of order) if (m !== self && out.length < n) out.push(m);
  return out;
}

/**
 * Where a leaving member's entry for `key` goes: the key's owner once `self` is gone — the next member
 * for its own keys, the owner for copies it holds of others' keys (kept from standing in for a member
 * that was away, which may not have them back yet). Null when no one else is left.
 */
export function successorOf(ring: Ring, self: string, key: string): string | null {
  const order = ring.ownersOf(key, 2);
  return (order[0] === self ? order[1] : order[0]) ?? null;
}
