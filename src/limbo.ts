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

/**
 * What `askForCollection` allocates and drops: V8's external-memory step (kExternalAllocationSoftLimit),
 * plus what limbo still counts, plus a margin. Why more than the step: V8 sets its next limit at the end
 * of a full collection to the external memory counted then plus the step, and buffers that collection
 * found dead are still counted then (they are freed by a sweeper afterwards). Those are mostly limbo's;
 * without them in the nudge, an ask right after a collection falls short (measured: three 64 MiB asks
 * in a row set nothing off). The pages are never touched, so a bigger nudge costs address space only —
 * up to NUDGE_MAX_EXTRA_BYTES of it: limbo can count gigabytes that slow readers still hold, and past half
 * the old space's limit V8 answers a nudge with a full collection in one pause.
 */
const NUDGE_BYTES = 64 * 1024 * 1024;
const NUDGE_MARGIN_BYTES = 1024 * 1024;
const NUDGE_MAX_EXTRA_BYTES = 512 * 1024 * 1024;
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
/**
 * How long after an ask the store looks whether it freed anything, and asks again if not (up to
 * NUDGE_FRUITLESS times in a row): no sooner than the asks' pacing allows, and not before V8 can have
 * finished the collection. Why follow up at all: an ask made while V8 is already marking (started by the
 * very allocations that filled limbo) only hurries that collection on, and the values dropped during it
 * survive it as floating garbage; V8 then starts no other collection until 64 MB more are allocated or
 * its memory reducer runs (~8 s) — a store that then sees no put would sit on a full limbo, and the
 * next large values would be refused. Measured in test/core/limbo.test.ts: without follow-ups limbo
 * drained in ~0.1 s in 1 run of 6 and in ~8 s otherwise.
 */
const NUDGE_FOLLOW_UP_MS = 100;
/**
 * How long after an ask limbo does not scan (`settledAt`): at least this, or a tenth of the asks' pacing
 * (NUDGE_MS_PER_HEAP_MB: 0.5 ms per MiB of heap, about what V8 takes to mark it, mostly off the main
 * thread). Always less than NUDGE_FOLLOW_UP_MS. Why not longer: while limbo does not scan, its count
 * stands still and large values are refused on it. Measured in the churn bench (1 KB–4 MB values, 10×
 * a 256 MiB budget; asks every ~50 ms there): values cached 37–38 % with no pause, 53–60 % at 8, 15 or
 * 25 ms, 11 % at 50 ms.
 */
export const NUDGE_SETTLE_MS = 15;

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
  /**
   * Limbo above this many bytes is worth a follow-up ask (NUDGE_FOLLOW_UP_MS); the store passes the
   * share of its allowance at which it asks. Default 0.
   */
  followUpAboveBytes?: number;
  /**
   * Test hook: runs `fn` after `ms` (a follow-up). Default: an unref'd setTimeout (a follow-up never
   * holds the process open).
   */
  schedule?: (fn: () => void, ms: number) => void;
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
  /** Bytes of the entries not seen freed yet. */
  private total = 0;
  /** When the last scan ran (ms, `now`), and whether one is scheduled. */
  private sweptAt = Number.NEGATIVE_INFINITY;
  private sweepPending = false;
  /** When the last ask went out (ms, `now`). */
  private askedAt = Number.NEGATIVE_INFINITY;
  /**
   * No scan before this time (ms, `now`): the collection last asked for may still be marking, and a
   * token a scan reads while V8 marks is marked live for that collection (the read keeps it for the job,
   * and marking keeps what it has seen) — the count would miss the very collection it asked for, and none
   * may follow. Measured before this rule: a test polling `stats()` every 20 ms saw limbo keep 64 MiB of
   * freed buffers through three asked-for collections in a row, in about 1 run of 8.
   */
  private settledAt = Number.NEGATIVE_INFINITY;
  /** Something was freed since the last ask; a scan ran since; asks in a row after which nothing was. */
  private freedSinceAsk = true;
  private sweptSinceAsk = false;
  private fruitless = 0;
  /** Bytes dropped, or refused for want of room, since the last ask. */
  private churned = 0;
  private readonly nudge: boolean;
  private readonly now: () => number;
  private readonly heapBytes: () => number;
  private readonly followUpAboveBytes: number;
  private readonly schedule: (fn: () => void, ms: number) => void;
  /** A follow-up is scheduled (at most one at a time); an ask is waiting for its turn (`nudgeNow`). */
  private followUpPending = false;
  private nudgePending = false;
  /** Collections asked for (test and stats hook). */
  asked = 0;

  constructor(opts: LimboOptions = {}) {
    this.nudge = opts.nudge ?? true;
    this.now = opts.now ?? Date.now;
    this.heapBytes = opts.heapBytes ?? (() => getHeapStatistics().used_heap_size);
    this.followUpAboveBytes = opts.followUpAboveBytes ?? 0;
    this.schedule = opts.schedule ?? ((fn, ms) => setTimeout(fn, ms).unref());
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
    if (now < this.settledAt) return this.total;
    if (now - this.sweptAt < Math.max(SWEEP_INTERVAL_MS, this.refs.length / SWEEP_ENTRIES_PER_MS)) {
      return this.total;
    }
    this.sweepPending = true;
    setImmediate(this.scheduledSweep).unref();
    return this.total;
  }

  /**
   * Scans the entries now (O(entries): dropped own-buffer values and pages, not small items) and returns
   * the bytes not freed yet — unless a collection asked for may still be marking (`settledAt`): then
   * returns the count as it stands.
   */
  sweep(): number {
    if (this.now() < this.settledAt) return this.total;
    const before = this.total;
    let kept = 0;
    for (let i = 0; i < this.refs.length; i++) {
      if (this.refs[i].deref() === undefined) this.total -= this.sizes[i];
      else {
        this.refs[kept] = this.refs[i];
        this.sizes[kept++] = this.sizes[i];
      }
    }
    this.refs.length = kept;
    this.sizes.length = kept;
    if (this.total < before) {
      this.freedSinceAsk = true;
      this.fruitless = 0;
    }
    this.sweptAt = this.now();
    this.sweptSinceAsk = true;
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
      if (this.churned < NUDGE_EVERY_BYTES || now - this.askedAt < this.elapsedFloor()) return;
    }
    this.ask(now);
  }

  /** Least time between two asks while they still free something (ms): NUDGE_MS_PER_HEAP_MB. */
  private elapsedFloor(): number {
    return Math.max(NUDGE_INTERVAL_MS, (this.heapBytes() / (1024 * 1024)) * NUDGE_MS_PER_HEAP_MB);
  }

  private ask(now: number): void {
    // Fruitless only if a scan since the last ask saw nothing freed: asks made in one job (a burst of
    // drops) cannot have been seen to free anything yet.
    if (!this.freedSinceAsk && this.sweptSinceAsk) this.fruitless++;
    this.freedSinceAsk = false;
    this.sweptSinceAsk = false;
    this.churned = 0;
    this.askedAt = now;
    this.asked++;
    if (!this.nudgePending) {
      this.nudgePending = true;
      setImmediate(this.nudgeNow).unref();
    }
    if (!this.followUpPending && this.fruitless < NUDGE_FRUITLESS) {
      this.followUpPending = true;
      this.schedule(this.followUp, Math.max(NUDGE_FOLLOW_UP_MS, this.elapsedFloor()));
    }
  }

  /** The ask itself, in a turn of its own; asks made before it runs share it. */
  private readonly nudgeNow = (): void => {
    this.nudgePending = false;
    this.settledAt = this.now() + Math.max(NUDGE_SETTLE_MS, this.elapsedFloor() / 10);
    // A limited address space (ulimit -v) may refuse it: then no ask, and the collector comes in its time.
    try {
      void new ArrayBuffer(NUDGE_BYTES + Math.min(this.total, NUDGE_MAX_EXTRA_BYTES) + NUDGE_MARGIN_BYTES);
    } catch {}
  };

  /**
   * NUDGE_FOLLOW_UP_MS after an ask: if it freed nothing and limbo is still worth it, ask again. Waits
   * first for the ask to have run and settled (under load a turn of the event loop can take longer).
   */
  private readonly followUp = (): void => {
    this.followUpPending = false;
    const now = this.now();
    if (this.nudgePending || now < this.settledAt) {
      this.followUpPending = true;
      this.schedule(this.followUp, this.nudgePending ? NUDGE_SETTLE_MS : this.settledAt - now);
      return;
    }
    this.sweep();
    if (this.freedSinceAsk || this.total <= this.followUpAboveBytes) return;
    this.ask(now);
  };
}
