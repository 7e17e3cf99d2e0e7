// Per-key flights (groupcache's singleflight): concurrent loads of one key share one call. Unlike Go's,
// a waiter can leave (its AbortSignal), and the shared call is aborted only when every waiter has left;
// a flight can also be invalidated by a remove so its (stale) result is not cached.
//
// Cheap on purpose: a miss runs through here once per peer fetch. On Node 20 making an AbortSignal
// costs ~12 µs (more than a whole fetch's other work), so a flight makes its own AbortController only
// when something reads `flight.signal` (a getter that uses its signal, a retry); a peer call gets a
// shared signal instead (see `callSignal`).

import { setMaxListeners } from 'node:events';

const noop = () => {};

/** A signal shared by many calls: no listener limit (each call adds one while it runs). */
function sharedSignal(ac: AbortController): AbortSignal {
  setMaxListeners(0, ac.signal);
  return ac.signal;
}

/** Never aborts: the call signal of a flight one of whose waiters can never leave. */
const NEVER = sharedSignal(new AbortController());

// One 'abort' listener per signal, fanned out to every waiter registered on it: a caller that passes one
// request-scoped signal to many gets would otherwise pile listeners onto it (and Node warns past 10).
const aborters = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `cb` when `signal` aborts; returns the function that unregisters it. */
export function onAbort(signal: AbortSignal, cb: () => void): () => void {
  let set = aborters.get(signal);
  if (set === undefined) {
    const fresh = new Set<() => void>();
    set = fresh;
    aborters.set(signal, fresh);
    signal.addEventListener(
      'abort',
      () => {
        aborters.delete(signal);
        for (const f of fresh) f();
      },
      { once: true },
    );
  }
  const registered = set;
  registered.add(cb);
  return () => {
    registered.delete(cb);
  };
}

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
    onAbort(parent, () => {
      this.parentAborted = true;
      this.reason = parent.reason;
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
  readonly promise: Promise<T>;
  private resolve!: (v: T) => void;
  private reject!: (e: unknown) => void;
  private ac: AbortController | undefined;
  /** Set once the flight's own signal must read as aborted (every waiter left, or `cancel`). */
  private cancelled = false;
  private reason: unknown;
  private lender: Lender | undefined;

  /** @param first the first waiter's signal (undefined = that waiter can never leave) */
  constructor(private readonly first: AbortSignal | undefined) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

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
  settle(v: T): void {
    if (this.done) return;
    this.done = true;
    this.lender?.release();
    this.resolve(v);
  }

  /** @internal */
  fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.lender?.release();
    // Nobody may be waiting (all left): never an unhandled rejection.
    this.promise.catch(noop);
    this.reject(err);
  }

  /** @internal every waiter has left: settle at once, even if the running call ignores its signal. */
  abandon(reason: unknown): void {
    if (this.done) return;
    this.aborted = true;
    this.cancel(reason);
    this.fail(reason);
  }
}

export class Flights<T> {
  private readonly inFlight = new Map<string, Flight<T>>();

  /** Number of keys with a load in progress. */
  get size(): number {
    return this.inFlight.size;
  }

  /**
   * Waits for the flight of `key`, starting it with `fn` if there is none. Rejects at once with
   * `signal.reason` when `signal` aborts; the flight itself is abandoned (its signal fires, and it is
   * forgotten, so the next call starts afresh) only when all its waiters have.
   */
  do(key: string, signal: AbortSignal | undefined, fn: (flight: Flight<T>) => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const f = this.inFlight.get(key);
    if (f !== undefined) return this.wait(key, f, signal);
    const nf = new Flight<T>(signal);
    this.inFlight.set(key, nf);
    // The first waiter is counted before `fn` runs, so `fn` sees whether it can ever be abandoned.
    const p = this.wait(key, nf, signal);
    let run: Promise<T>;
    try {
      run = fn(nf);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (v) => {
        this.forget(key, nf);
        nf.settle(v);
      },
      (err) => {
        this.forget(key, nf);
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
    this.inFlight.delete(key);
  }

  private forget(key: string, f: Flight<T>): void {
    if (this.inFlight.get(key) === f) this.inFlight.delete(key);
  }

  private wait(key: string, f: Flight<T>, signal: AbortSignal | undefined): Promise<T> {
    if (signal === undefined) {
      f.waiters = Number.POSITIVE_INFINITY;
      return f.promise;
    }
    f.waiters++;
    return new Promise<T>((resolve, reject) => {
      const off = onAbort(signal, () => {
        reject(signal.reason);
        if (--f.waiters === 0 && !f.done) {
          this.forget(key, f);
          f.abandon(signal.reason);
        }
      });
      f.promise.then(
        (v) => {
          off();
          resolve(v);
        },
        (err) => {
          off();
          reject(err);
        },
      );
    });
  }
}

/**
 * Settles like `p`, or rejects with `onTimeout()` once `timeoutMs` has passed (0 or Infinity = never),
 * calling `onFire(err)` first (to cancel the work). One timer, cleared when `p` settles; until then it
 * keeps the process alive, since someone awaits the outcome.
 */
export function deadline<T>(
  p: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
  onFire?: (err: Error) => void,
): Promise<T> {
  if (!(timeoutMs > 0) || timeoutMs === Number.POSITIVE_INFINITY) return p;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = onTimeout();
      onFire?.(err);
      reject(err);
    }, timeoutMs);
    Promise.resolve(p).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * Calls `start(signal)` with a signal that aborts when `parent` aborts or after `timeoutMs` (with
 * `onTimeout()`), and settles as soon as either happens even if `start` ignores its signal. For calls
 * off the load path (remove): it makes an AbortController per call.
 */
export function withTimeout<T>(
  parent: AbortSignal | undefined,
  timeoutMs: number,
  onTimeout: () => Error,
  start: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (parent?.aborted) return Promise.reject(parent.reason);
  const ac = new AbortController();
  const off = parent === undefined ? noop : onAbort(parent, () => ac.abort(parent.reason));
  let p: Promise<T>;
  try {
    p = start(ac.signal);
  } catch (err) {
    off();
    return Promise.reject(err);
  }
  const raced = new Promise<T>((resolve, reject) => {
    const offAbort = onAbort(ac.signal, () => reject(ac.signal.reason));
    Promise.resolve(p).then(
      (v) => {
        offAbort();
        resolve(v);
      },
      (err) => {
        offAbort();
        reject(err);
      },
    );
  });
  const timed = deadline(raced, timeoutMs, onTimeout, (err) => ac.abort(err));
  timed.then(off, off);
  return timed;
}
