// A map for entries that come and go once per request: fetches in flight by id. (Flights by key have a
// table of their own, flight.ts: string keys here would be internalized, an old-generation copy per miss.)
//
// Why not Map: V8's Map never reuses the slot of a deleted entry, so a Map that sees one set and one
// delete per request rehashes into a fresh table every few dozen requests, and the tables it leaves
// behind still point at the entries they held. Once such a table has reached the old generation, each
// young-generation GC keeps those entries (and all they reference) alive and promotes them. On the
// peer-fetch path that cost about 3 KB promoted per request, 5-10 ms scavenges every 40 ms and a full
// mark-compact every 0.6 s. A null-prototype object in dictionary mode reuses deleted slots and rarely
// rehashes: same workload, nothing promoted (flights alone: 3.4 -> 1.2 µs per miss).

/** Keys that are strings or non-negative integers. Values must not be `undefined`. */
export class ChurnMap<K extends string | number, V> {
  private entries: Record<string | number, V> = Object.create(null);
  private count = 0;

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    return this.entries[key];
  }

  set(key: K, value: V): void {
    if (this.entries[key] === undefined) this.count++;
    this.entries[key] = value;
  }

  /** True if `key` was present. */
  delete(key: K): boolean {
    if (this.entries[key] === undefined) return false;
    delete this.entries[key];
    this.count--;
    return true;
  }

  /** Calls `fn` for each value without copying them out; `fn` may delete the current entry. */
  forEach(fn: (value: V) => void): void {
    const entries = this.entries;
    for (const k in entries) fn(entries[k]);
  }

  /** A snapshot of the values (for teardown paths, not per request). */
  values(): V[] {
    return Object.values(this.entries);
  }

  /** A snapshot of the keys; integer keys come back as strings. */
  keys(): string[] {
    return Object.keys(this.entries);
  }

  clear(): void {
    this.entries = Object.create(null);
    this.count = 0;
  }
}
