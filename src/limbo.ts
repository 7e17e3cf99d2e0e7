// Memory the store has let go of that the garbage collector has not freed yet ("limbo").
//
// JavaScript cannot free memory: an evicted value's Buffer, or a page given back, is freed when V8
// collects it — and only if nobody holds it any more (a socket write still in progress, a caller of
// getCached). Until then it is still in RSS, so the store keeps counting it (slab.ts, `held`).
//
// Why WeakRefs and not a FinalizationRegistry: in V8 11.3 (Node 20), when a FinalizationRegistry is
// itself collected after a collection made it dirty but before its cleanup task ran, the task finds no
// dirty registry, returns early and leaves V8's "cleanup task posted" flag set: from then on no
// FinalizationRegistry in the process gets a callback again (reproduced in test/core/limbo.test.ts; it
// is how a test run once saw our callbacks stop for good). Any library's short-lived registry, or a
// dropped Group's, could so freeze the count, and a store whose limbo never drains refuses every large
// value from then on. A WeakRef is cleared by the collection itself, no task involved.
//
// Why the store asks V8 to collect (`askForCollection`): V8 collects when memory outside its heap has
// grown by ~64 MB since the last full collection. Under churn of large values the store evicts about one
// value per new one, its limbo passes the allowance after a few, and from then on new values are refused
// until a collection comes (measured: ~12 % of values cached in the churn bench without asking). No flag
// or API offers a collection without --expose-gc; a 64 MiB ArrayBuffer, created and dropped, is counted
// as external memory when created and makes V8 start the (incremental, mostly concurrent) collection it
// starts for any program that allocated that much. Its pages are never touched: a calloc of that size is
// fresh zero pages from mmap, no RSS. The store asks when limbo passes half its allowance (slab.ts), so
// the collection runs while the other half still takes new values. With an old space limited to 128 MB
// or less (--max-old-space-size), 64 MiB is past V8's hard external limit (half the old space) and the
// collection is a full, non-incremental one: on a heap that small, a few milliseconds.

import { getHeapStatistics } from 'node:v8';

/** What `askForCollection` allocates and drops: V8's external-memory step (kExternalAllocationSoftLimit). */
const NUDGE_BYTES = 64 * 1024 * 1024;
/** Least time between two scans of the entries (`bytes`), and how many entries a millisecond pays for. */
const SWEEP_INTERVAL_MS = 20;
const SWEEP_ENTRIES_PER_MS = 50;
/**
 * How often the store may ask (`askForCollection`): once per NUDGE_EVERY_BYTES of large values dropped or
 * refused since the last ask (V8 itself collects once per 64 MB of external allocation, so at most 4× as
 * often as it would by itself), and no sooner than NUDGE_INTERVAL_MS, or NUDGE_MS_PER_HEAP_MB per MiB of
 * JS heap in use, after the last: a full collection costs roughly 1 ms per MiB of heap (marked mostly
 * off the main thread), so asks take at most ~20 % of a core whatever the heap — a cache node's heap of
 * ~10 MiB may be asked every 50 ms; a service embedding Group with a 1 GiB heap, every 5 s.
 */
const NUDGE_EVERY_BYTES = 16 * 1024 * 1024;
const NUDGE_INTERVAL_MS = 10;
const NUDGE_MS_PER_HEAP_MB = 5;
/**
 * After this many asks in a row that freed nothing (everything dropped is still referenced, say by slow
 * readers), asks slow down to one per NUDGE_IDLE_INTERVAL_MS until one frees something again. Not after
 * one: a value dropped while the collector was already marking survives that collection ("floating
 * garbage") and is freed by the next.
 */
const NUDGE_FRUITLESS = 3;
const NUDGE_IDLE_INTERVAL_MS = 1000;

export interface LimboOptions {
  /**
   * Ask V8 for a collection when limbo is half full or stands in the way (`askForCollection`); default
   * true. False leaves collections to V8's own schedule (then large values may be refused for longer
   * under churn).
   */
  nudge?: boolean;
  /** Clock for the asks' pacing (ms). Default Date.now. */
  now?: () => number;
  /** The JS heap in use (bytes), for the asks' pacing. Default: V8's used_heap_size. */
  heapBytes?: () => number;
}

export class Limbo {
  /**
   * Dropped memory by entry: a weak reference to a token that lives exactly as long as the ArrayBuffer
   * (`tokens`), and the bytes. Not a WeakRef to the ArrayBuffer itself: reading a WeakRef keeps its
   * target alive until the current job ends, and marks it live for a collection under way — a scan would
   * keep what it watches. Reading the token's keeps only the token; the memory is freed on time, and at
   * worst the count learns of it one collection late.
   */
  private refs: WeakRef<object>[] = [];
  /** ArrayBuffer → its token: an ephemeron, so the token is reachable exactly while the buffer is. */
  private readonly tokens = new WeakMap<object, object>();
  private sizes: number[] = [];
  private total = 0;
  /** When the last scan ran (ms, `now`), and whether one is scheduled. */
  private sweptAt = Number.NEGATIVE_INFINITY;
  private sweepPending = false;
  /** When the last ask went out (ms, `now`). */
  private askedAt = Number.NEGATIVE_INFINITY;
  /** Something was freed since the last ask; asks in a row after which nothing was. */
  private freedSinceAsk = true;
  private fruitless = 0;
  /** Bytes dropped, or refused for want of room, since the last ask. */
  private churned = 0;
  private readonly nudge: boolean;
  private readonly now: () => number;
  private readonly heapBytes: () => number;
  /** Collections asked for (test and stats hook). */
  asked = 0;

  constructor(opts: LimboOptions = {}) {
    this.nudge = opts.nudge ?? true;
    this.now = opts.now ?? Date.now;
    this.heapBytes = opts.heapBytes ?? (() => getHeapStatistics().used_heap_size);
  }

  /** Counts `bytes` of `buffer` (about to be unreferenced by the store) until the collector frees it. */
  add(buffer: ArrayBufferLike, bytes: number): void {
    const token = {};
    this.tokens.set(buffer, token);
    this.refs.push(new WeakRef(token));
    this.churned += bytes;
    this.sizes.push(bytes);
    this.total += bytes;
  }

  /**
   * Bytes not freed yet, as of the last scan; schedules a scan (`sweep`, in a turn of its own) when the
   * last is older than SWEEP_INTERVAL_MS, or 1 ms per SWEEP_ENTRIES_PER_MS entries (a scan's cost stays
   * well under 1 % of a core). Cheap: what `held` calls for every page or large value the store takes.
   * (No cheap way tells that a collection ran: a WeakRef sentinel read here would itself be kept alive
   * by the read through the collection a new value's allocation sets off.)
   */
  bytes(): number {
    if (this.total === 0 || this.sweepPending) return this.total;
    const now = this.now();
    if (now - this.sweptAt < Math.max(SWEEP_INTERVAL_MS, this.refs.length / SWEEP_ENTRIES_PER_MS)) {
      return this.total;
    }
    this.sweepPending = true;
    setImmediate(this.scheduledSweep).unref();
    return this.total;
  }

  /**
   * Scans the entries now (O(entries): dropped own-buffer values and pages, not small items) and returns
   * the bytes not freed yet.
   */
  sweep(): number {
    let kept = 0;
    for (let i = 0; i < this.refs.length; i++) {
      if (this.refs[i].deref() === undefined) this.total -= this.sizes[i];
      else {
        this.refs[kept] = this.refs[i];
        this.sizes[kept++] = this.sizes[i];
      }
    }
    if (kept < this.refs.length) {
      this.freedSinceAsk = true;
      this.fruitless = 0;
    }
    this.refs.length = kept;
    this.sizes.length = kept;
    this.sweptAt = this.now();
    return this.total;
  }

  private readonly scheduledSweep = (): void => {
    this.sweepPending = false;
    this.sweep();
  };

  /** A value of `bytes` was refused because limbo stood in the way (it too awaits the collector). */
  refused(bytes: number): void {
    this.churned += bytes;
  }

  /** Entries still waiting (each a dropped Buffer or page). */
  get entries(): number {
    return this.refs.length;
  }

  /**
   * Limbo is half full or stands in the way of a put: ask V8 to collect, paced by bytes churned and by
   * heap size (NUDGE_EVERY_BYTES), slower after asks that freed nothing (NUDGE_FRUITLESS). The ask runs
   * in a later turn of the event loop (setImmediate), not now or as a microtask: what was just
   * dropped is still referenced now (by the caller, by the store until `free` returns), and a collection
   * V8 ran before the current job ends would keep it, and then not come again for another 64 MB.
   */
  askForCollection(): void {
    if (!this.nudge) return;
    const now = this.now();
    if (this.fruitless >= NUDGE_FRUITLESS) {
      if (now - this.askedAt < NUDGE_IDLE_INTERVAL_MS) return;
    } else {
      if (this.churned < NUDGE_EVERY_BYTES || now - this.askedAt < NUDGE_INTERVAL_MS) return;
      const floor = (this.heapBytes() / (1024 * 1024)) * NUDGE_MS_PER_HEAP_MB;
      if (now - this.askedAt < floor) return;
    }
    if (!this.freedSinceAsk && this.asked > 0) this.fruitless++;
    this.freedSinceAsk = false;
    this.churned = 0;
    this.askedAt = now;
    this.asked++;
    setImmediate(allocateAndDrop).unref();
  }
}

function allocateAndDrop(): void {
  // A limited address space (ulimit -v) may refuse it: then no ask, and the collector comes in its time.
  try {
    void new ArrayBuffer(NUDGE_BYTES);
  } catch {}
}
