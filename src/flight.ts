// Per-key flights (groupcache's singleflight): concurrent loads of one key share one call. Unlike Go's,
// a waiter can leave (its AbortSignal), and the shared call is aborted only when every waiter has left;
// a flight can also be invalidated by a remove so its (stale) result is not cached.
//
// Cheap on purpose: a miss runs through here once per peer fetch. On Node 20 making an AbortSignal
// costs ~12 µs (more than a whole fetch's other work), so a flight makes its own AbortController only
// when something reads `flight.signal` (a getter that uses its signal, a retry); a peer call gets a
// shared signal instead (see `callSignal`).

import { setMaxListeners } from 'node:events';
import { AbortWaiter, onAbort, watch } from './abort.js';
import { hashString, randomSeed } from './hash.js';

/** A signal shared by many calls: no listener limit (each call adds one while it runs). */
function sharedSignal(ac: AbortController): AbortSignal {
  setMaxListeners(0, ac.signal);
  return ac.signal;
}

/** Never aborts: the call signal of a flight one of whose waiters can never leave. */
const NEVER = sharedSignal(new AbortController());

/**
 * A caller's signal lent to the calls of every flight it was the first waiter of, through one shared
 * signal of ours (no listener limit: a caller passing one signal to 50 gets would otherwise trip Node's
 * MaxListeners warning on a signal that is not ours to configure). It fires once the caller's signal
 * has aborted AND every flight that borrowed it is over: a flight another caller still waits for keeps
 * its call going, and the abandoned ones are told to stop when it ends.
 */
class Lender {
  readonly ac = new AbortController();
  readonly signal = sharedSignal(this.ac);
  /** Borrowing flights not yet over. */
  live = 0;
  private parentAborted = false;
  private reason: unknown;
  constructor(parent: AbortSignal) {
    onAbort(parent, (reason) => {
      this.parentAborted = true;
      this.reason = reason;
      if (this.live === 0) this.ac.abort(this.reason);
    });
  }
  release(): void {
    if (--this.live === 0 && this.parentAborted) this.ac.abort(this.reason);
  }
}

const lenders = new WeakMap<AbortSignal, Lender>();

function lenderOf(parent: AbortSignal): Lender {
  let l = lenders.get(parent);
  if (l === undefined) {
    l = new Lender(parent);
    lenders.set(parent, l);
  }
  return l;
}

/** One caller waiting for a flight: its promise's settle functions, and its signal's watch. */
class Waiter<T> extends AbortWaiter {
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  /** Left (its signal aborted) or answered. */
  over = false;
  constructor(
    private readonly flights: Flights<T>,
    private readonly flight: Flight<T>,
  ) {
    super();
  }
  onAbort(reason: unknown): void {
    if (this.over) return;
    this.over = true;
    this.reject(reason);
    const f = this.flight;
    if (--f.waiters === 0 && !f.done) {
      this.flights.forget(f);
      f.abandon(reason);
    }
  }
}

function answerWaiter<T>(w: Waiter<T>, ok: boolean, v: T | undefined, err: unknown): void {
  if (w.over) return;
  w.over = true;
  w.unwatch();
  if (ok) w.resolve(v as T);
  else w.reject(err);
}

/** One in-progress load. The function running it gets the flight to read its signals and `invalidated`. */
export class Flight<T> {
  /** Waiters that may still abort; a waiter without a signal adds Infinity (it can never leave). */
  waiters = 0;
  /** Settled (value or error), or abandoned by every waiter. */
  done = false;
  /** Every waiter has left: nobody wants the result. */
  aborted = false;
  /** A remove raced this flight: its result must be returned but not cached. */
  invalidated = false;
  // Waiters are answered directly (no shared promise + a `then` per waiter): usually there is one.
  private firstWaiter: Waiter<T> | undefined;
  private moreWaiters: Waiter<T>[] | undefined;
  private ac: AbortController | undefined;
  /** Set once the flight's own signal must read as aborted (every waiter left, or `cancel`). */
  private cancelled = false;
  private reason: unknown;
  private lender: Lender | undefined;
  /** @internal the key's hash in its FlightTable */
  hash = 0;
  /** @internal the next flight in the same FlightTable bucket */
  nextInBucket: Flight<T> | undefined = undefined;

  /**
   * @param first the first waiter's signal (undefined = that waiter can never leave)
   * @param key the key it loads
   */
  constructor(
    private readonly first: AbortSignal | undefined,
    readonly key: string,
  ) {}

  /**
   * The flight's own signal, made on first read: fires when every waiter has left, or on `cancel` (a
   * timeout). For a getter, and for anything that must be told exactly when this flight is abandoned.
   */
  get signal(): AbortSignal {
    if (this.ac === undefined) {
      this.ac = new AbortController();
      if (this.cancelled) this.ac.abort(this.reason);
    }
    return this.ac.signal;
  }

  /**
   * The signal to hand a call (a peer fetch) without making one per flight. It never fires while a
   * waiter remains, and fires once every waiter has left — at once, or (when other flights borrowed the
   * same caller's signal and are still wanted) when those are over too. It may be SHARED with other
   * calls: remove your listener when your call settles. Timeouts do not fire it (`cancel` does not).
   * - the flight's own signal, if someone made it;
   * - a signal that never aborts, when the first waiter can never leave (so never all of them);
   * - else the first waiter's signal, lent (all waiters leaving means the first one left too).
   */
  callSignal(): AbortSignal {
    if (this.ac !== undefined) return this.ac.signal;
    if (this.first === undefined) return NEVER;
    if (this.lender === undefined) {
      this.lender = lenderOf(this.first);
      this.lender.live++;
    }
    return this.lender.signal;
  }

  /** Why every waiter left (the last one's signal's reason); undefined unless `aborted`. */
  get abortReason(): unknown {
    return this.aborted ? this.reason : undefined;
  }

  /** The signal to join another flight with as a waiter: undefined when this flight cannot be abandoned. */
  waiterSignal(): AbortSignal | undefined {
    return this.waiters === Number.POSITIVE_INFINITY ? undefined : this.signal;
  }

  /** Fires the flight's own signal with `reason` (if it exists, or when it is made), e.g. on a timeout. */
  cancel(reason: unknown): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.reason = reason;
    this.ac?.abort(reason);
  }

  /** @internal */
  addWaiter(w: Waiter<T>): void {
    if (this.firstWaiter === undefined) this.firstWaiter = w;
    else if (this.moreWaiters === undefined) this.moreWaiters = [w];
    else this.moreWaiters.push(w);
  }

  /** @internal */
  settle(v: T): void {
    this.finish(true, v, undefined);
  }

  /** @internal */
  fail(err: unknown): void {
    this.finish(false, undefined, err);
  }

  /** Answers every waiter still waiting (those that left were answered with their own signal's reason). */
  private finish(ok: boolean, v: T | undefined, err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.lender?.release();
    const first = this.firstWaiter;
    if (first !== undefined) answerWaiter(first, ok, v, err);
    const more = this.moreWaiters;
    if (more !== undefined) for (const w of more) answerWaiter(w, ok, v, err);
  }

  /** @internal every waiter has left: settle at once, even if the running call ignores its signal. */
  abandon(reason: unknown): void {
    if (this.done) return;
    this.aborted = true;
    this.cancel(reason);
    this.fail(reason);
  }
}

/** A FlightTable whose insert finds a chain longer than this picks a new seed (keys chosen to collide). */
const MAX_CHAIN = 32;
const MIN_BUCKETS = 16;

/**
 * Flights by key: a chained hash table of our own, linked through the flights themselves.
 *
 * Why not an object or a Map keyed by the key: an object's property names are internalized, so an object
 * (ChurnMap, used here before) made an old-generation copy of every missed key, garbage once its flight
 * ended. Allocation in the old generation is what lets V8 start a full collection, and while a fast load
 * grows external memory (slab pages) those start every few MiB of pages; each one marks the misses in
 * flight while it runs and promotes them (0.5–2 MB), which grows the young generation (docs/memory.md,
 * "V8's young generation"). Measured over 100k loads of 1 KiB values: 6–8 such collections with the
 * object, 1–4 with this table. A Map does not internalize, but rehashes into fresh tables under one set
 * and one delete per request (churn.ts). The key is hashed once more per miss (never on a hit).
 * @internal exported for tests
 */
export class FlightTable<T> {
  private buckets: (Flight<T> | undefined)[] = new Array(MIN_BUCKETS).fill(undefined);
  private seed = randomSeed();
  /** Inserts since the last re-seed: at most one per `count` inserts, so even keys colliding under every seed cost O(1) amortised. */
  private sinceSeed = 0;
  /** Flights held. */
  count = 0;

  /** `key`'s hash under this table's seed (hash.ts). */
  hashOf(key: string): number {
    return hashString(key, this.seed);
  }

  get(key: string): Flight<T> | undefined {
    const h = this.hashOf(key);
    for (let f = this.buckets[h & (this.buckets.length - 1)]; f !== undefined; f = f.nextInBucket) {
      if (f.hash === h && f.key === key) return f;
    }
    return undefined;
  }

  /** Adds `f` under `f.key` (the caller knows the key has no flight here). */
  add(f: Flight<T>): void {
    if (this.count >= this.buckets.length) this.rehash(this.buckets.length * 2, this.seed);
    f.hash = this.hashOf(f.key);
    const b = f.hash & (this.buckets.length - 1);
    f.nextInBucket = this.buckets[b];
    this.buckets[b] = f;
    this.count++;
    this.sinceSeed++;
    if (f.nextInBucket !== undefined && this.sinceSeed >= this.count && chainLength(f) > MAX_CHAIN) {
      this.sinceSeed = 0;
      this.rehash(this.buckets.length, randomSeed());
    }
  }

  /** Removes `f`; false if it is not here (already removed). */
  delete(f: Flight<T>): boolean {
    const b = f.hash & (this.buckets.length - 1);
    let prev: Flight<T> | undefined;
    for (let g = this.buckets[b]; g !== undefined; prev = g, g = g.nextInBucket) {
      if (g !== f) continue;
      if (prev === undefined) this.buckets[b] = f.nextInBucket;
      else prev.nextInBucket = f.nextInBucket;
      f.nextInBucket = undefined;
      this.count--;
      // Halved after a spike of concurrent misses, so the array does not stay at the spike's size.
      if (this.buckets.length > MIN_BUCKETS && this.count * 8 < this.buckets.length) {
        this.rehash(this.buckets.length / 2, this.seed);
      }
      return true;
    }
    return false;
  }

  private rehash(size: number, seed: number): void {
    const old = this.buckets;
    const reseed = seed !== this.seed;
    this.buckets = new Array(size).fill(undefined);
    this.seed = seed;
    for (let f of old) {
      while (f !== undefined) {
        const next: Flight<T> | undefined = f.nextInBucket;
        if (reseed) f.hash = this.hashOf(f.key);
        const b = f.hash & (size - 1);
        f.nextInBucket = this.buckets[b];
        this.buckets[b] = f;
        f = next;
      }
    }
  }
}

function chainLength<T>(f: Flight<T> | undefined): number {
  let n = 0;
  for (; f !== undefined; f = f.nextInBucket) n++;
  return n;
}

export class Flights<T> {
  private readonly inFlight = new FlightTable<T>();

  /** Whether `key` has a load in progress (a `do` now would join it). */
  has(key: string): boolean {
    return this.inFlight.get(key) !== undefined;
  }

  /** Number of keys with a load in progress. */
  get size(): number {
    return this.inFlight.count;
  }

  /**
   * Waits for the flight of `key`, starting it with `fn` if there is none. Rejects at once with
   * `signal.reason` when `signal` aborts; the flight itself is abandoned (its signal fires, and it is
   * forgotten, so the next call starts afresh) only when all its waiters have.
   */
  do(key: string, signal: AbortSignal | undefined, fn: (flight: Flight<T>) => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const f = this.inFlight.get(key);
    if (f !== undefined) return this.wait(f, signal);
    const nf = new Flight<T>(signal, key);
    this.inFlight.add(nf);
    // The first waiter is counted before `fn` runs, so `fn` sees whether it can ever be abandoned.
    const p = this.wait(nf, signal);
    let run: Promise<T>;
    try {
      run = fn(nf);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (v) => {
        this.forget(nf);
        nf.settle(v);
      },
      (err) => {
        this.forget(nf);
        nf.fail(err);
      },
    );
    return p;
  }

  /** Marks the flight of `key` (if any) invalidated and forgets it: later calls start a fresh flight. */
  invalidate(key: string): void {
    const f = this.inFlight.get(key);
    if (f === undefined) return;
    f.invalidated = true;
    this.inFlight.delete(f);
  }

  /** @internal forgets `f` if it is still the flight of its key (not after an invalidate) */
  forget(f: Flight<T>): void {
    this.inFlight.delete(f);
  }

  private wait(f: Flight<T>, signal: AbortSignal | undefined): Promise<T> {
    const w = new Waiter<T>(this, f);
    const p = new Promise<T>((resolve, reject) => {
      w.resolve = resolve;
      w.reject = reject;
    });
    f.addWaiter(w);
    if (signal === undefined) {
      f.waiters = Number.POSITIVE_INFINITY;
    } else {
      f.waiters++;
      watch(signal, w);
    }
    return p;
  }
}

/** The longest delay setTimeout honours (2^31 - 1 ms, ~24.8 days); it fires a longer one after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One pending `deadline`: what to do when it passes, linked in its length's queue. */
class Deadline {
  /** performance.now() when it passes. */
  at = 0;
  prev: Deadline | undefined = undefined;
  next: Deadline | undefined = undefined;
  queue: DeadlineQueue | undefined = undefined;
  constructor(
    private readonly reject: (err: Error) => void,
    private readonly onTimeout: () => Error,
    private readonly onFire: ((err: Error) => void) | undefined,
  ) {}
  expire(): void {
    const err = this.onTimeout();
    this.onFire?.(err);
    this.reject(err);
  }
}

/**
 * The pending deadlines of one length, on one Node timer. Deadlines of one length pass in the order they
 * were set, so they wait in a list in that order and the timer is armed for the list's head.
 *
 * Why not a timer each: a load's Node timer (its Timeout, and a TimersList whenever the list of its length
 * empties and fills again, as it does for loads one at a time) made V8 start full collections during a
 * fast load more often, and each promotes what it marks of the misses in flight, growing the young
 * generation (docs/memory.md, "V8's young generation"). 100k loads of 1 KiB values, 12 runs each way:
 * 3.75 incremental mark-compacts per load with a timer each, 2.08 with this queue; the young generation
 * stayed at 8 MiB in 4 runs and in 6. Local misses are ~10 % faster (scripts/bench/lib/miss-ab.ts).
 * Times are performance.now()'s; under a test's fake timers a deadline set while another was pending may
 * fire up to one length late (the one the timer was armed for fires on time).
 */
class DeadlineQueue {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The deadline the timer was armed for: due when the timer fires, whatever performance.now() reads. */
  private armedFor: Deadline | undefined;
  private firing = false;

  constructor(private readonly ms: number) {}

  add(d: Deadline): void {
    d.at = performance.now() + this.ms;
    d.queue = this;
    d.prev = this.tail;
    if (this.tail === undefined) this.head = d;
    else this.tail.next = d;
    this.tail = d;
    if (this.timer === undefined) {
      if (!this.firing) this.arm(d, this.ms);
    } else if (this.head === d) {
      this.timer.ref(); // the queue was empty and its timer let go of (below): someone waits again
    }
  }

  remove(d: Deadline): void {
    if (d.queue !== this) return;
    d.queue = undefined;
    const { prev, next } = d;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    d.prev = d.next = undefined;
    // Not kept until the timer fires: it holds what its expiry would reject and cancel (a flight).
    if (this.armedFor === d) this.armedFor = undefined;
    // Nobody waits: the timer stays armed (re-arming per deadline is what this saves) but must not keep
    // the process alive. It fires for nothing, or for deadlines set later (which ref it again).
    if (this.head === undefined) this.timer?.unref();
  }

  private arm(d: Deadline, delayMs: number): void {
    // Node takes a delay over MAX_TIMER_MS as 1 ms: a longer one is waited for in steps, and only a timer
    // armed for the whole delay makes its deadline due whatever performance.now() reads.
    const whole = delayMs <= MAX_TIMER_MS;
    this.armedFor = whole ? d : undefined;
    this.timer = setTimeout(fireQueue, whole ? delayMs : MAX_TIMER_MS, this);
  }

  /** @internal the timer's callback */
  fire(): void {
    this.timer = undefined;
    const armed = this.armedFor;
    this.armedFor = undefined;
    const now = performance.now();
    this.firing = true;
    try {
      for (let d = this.head; d !== undefined && (d.at <= now || d === armed); d = this.head) {
        this.remove(d);
        d.expire();
      }
    } finally {
      this.firing = false;
      const h = this.head;
      if (h !== undefined && this.timer === undefined) this.arm(h, Math.max(1, Math.ceil(h.at - now)));
    }
  }
}

function fireQueue(q: DeadlineQueue): void {
  q.fire();
}

/** A queue per deadline length (a process uses a few: its groups' getter, peer and handoff timeouts). */
const deadlineQueues = new Map<number, DeadlineQueue>();

/**
 * Settles like `p`, or rejects with `onTimeout()` once `timeoutMs` has passed (0 or Infinity = never),
 * calling `onFire(err)` first (to cancel the work). Until `p` settles the deadline keeps the process
 * alive, since someone awaits the outcome. Deadlines of one length share a timer (DeadlineQueue).
 */
export function deadline<T>(
  p: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
  onFire?: (err: Error) => void,
): Promise<T> {
  if (!(timeoutMs > 0) || timeoutMs === Number.POSITIVE_INFINITY) return p;
  let q = deadlineQueues.get(timeoutMs);
  if (q === undefined) deadlineQueues.set(timeoutMs, (q = new DeadlineQueue(timeoutMs)));
  const queue = q;
  return new Promise<T>((resolve, reject) => {
    const d = new Deadline(reject, onTimeout, onFire);
    queue.add(d);
    Promise.resolve(p).then(
      (v) => {
        queue.remove(d);
        resolve(v);
      },
      (err) => {
        queue.remove(d);
        reject(err);
      },
    );
  });
}

/**
 * Calls `start(signal)` with a signal that aborts after `timeoutMs` (with `onTimeout()`), and settles
 * as soon as the time is up even if `start` ignores its signal. For calls off the load path (remove):
 * it makes an AbortController per call.
 */
export function withTimeout<T>(
  timeoutMs: number,
  onTimeout: () => Error,
  start: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  let p: Promise<T>;
  try {
    p = start(ac.signal);
  } catch (err) {
    return Promise.reject(err);
  }
  return deadline(p, timeoutMs, onTimeout, (err) => ac.abort(err));
}
