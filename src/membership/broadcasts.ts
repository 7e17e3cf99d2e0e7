// The piggyback queue (memberlist's TransmitLimitedQueue): membership news waiting to ride on probe
// and gossip datagrams. Each item is keyed by the member it is about, so newer news about a member
// replaces older news at once. Items go out least-transmitted first and retire after
// retransmitMult × ceil(log10(n + 1)) sends: the epidemic reaches everyone w.h.p. in O(log n) rounds.
// Bounded: beyond `max` items the most-transmitted ones are dropped.

interface Item {
  key: string;
  frame: Uint8Array;
  transmits: number;
  /** Called once when the item retires or is replaced (e.g. a leave waiting for its first send). */
  onDone?: () => void;
}

export class BroadcastQueue {
  /** buckets[t] = items sent t times, in insertion order. */
  private buckets: Map<string, Item>[] = [];
  private readonly byKey = new Map<string, Item>();
  dropped = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.byKey.size;
  }

  /** Queue `frame` (an encoded message) about member `key`, replacing older news about it. */
  push(key: string, frame: Uint8Array, onDone?: () => void): void {
    const old = this.byKey.get(key);
    if (old) this.remove(old);
    const item: Item = { key, frame, transmits: 0, onDone };
    this.bucket(0).set(key, item);
    this.byKey.set(key, item);
    while (this.byKey.size > this.max) this.dropMostTransmitted();
  }

  /** Whether news about `key` is still queued. */
  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /**
   * Frames that fit in `budget` bytes, least-transmitted first; each taken frame counts as sent once
   * and retires after `limit` sends.
   */
  take(budget: number, limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const moved: Item[] = [];
    for (let t = 0; t < this.buckets.length && budget > 0; t++) {
      const b = this.buckets[t];
      if (!b) continue;
      let misses = 0;
      for (const item of b.values()) {
        if (item.frame.length > budget) {
          // Do not scan a long queue for a frame small enough: a few misses mean the packet is full.
          if (++misses >= 8) break;
          continue;
        }
        out.push(item.frame);
        budget -= item.frame.length;
        moved.push(item);
        if (budget < 16) break;
      }
    }
    for (const item of moved) {
      this.bucket(item.transmits).delete(item.key);
      item.transmits++;
      if (item.transmits >= limit) {
        this.byKey.delete(item.key);
        item.onDone?.();
      } else this.bucket(item.transmits).set(item.key, item);
    }
    return out;
  }

  /** Drop everything (on stop). */
  clear(): void {
    for (const item of this.byKey.values()) item.onDone?.();
    this.byKey.clear();
    this.buckets = [];
  }

  private bucket(t: number): Map<string, Item> {
    let b = this.buckets[t];
    if (!b) this.buckets[t] = b = new Map();
    return b;
  }

  private remove(item: Item): void {
    this.bucket(item.transmits).delete(item.key);
    this.byKey.delete(item.key);
    item.onDone?.();
  }

  private dropMostTransmitted(): void {
    for (let t = this.buckets.length - 1; t >= 0; t--) {
      const b = this.buckets[t];
      if (!b || b.size === 0) continue;
      const first = b.values().next().value as Item;
      this.remove(first);
      this.dropped++;
      return;
    }
  }
}

/** Sends per broadcast for a cluster of n: retransmitMult × ceil(log10(n + 1)). */
export function retransmitLimit(mult: number, n: number): number {
  return mult * Math.max(1, Math.ceil(Math.log10(n + 1)));
}
