// Per-key flights (groupcache's singleflight): concurrent loads of one key share one call. Unlike Go's,
// a waiter can leave (its AbortSignal), and the shared call is aborted only when every waiter has left;
// a flight can also be invalidated by a remove so its (stale) result is not cached.

/** One in-progress load. The function running it gets the flight to read `signal` and `invalidated`. */
export class Flight<T> {
  /** Fires when every waiter has aborted (reason = the last waiter's reason) or on timeout. */
  readonly controller = new AbortController();
  /** Waiters that may still abort; a waiter without a signal adds Infinity (it can never leave). */
  waiters = 0;
  /** Settled (value or error). */
  done = false;
  /** A remove raced this flight: its result must be returned but not cached. */
  invalidated = false;
  promise!: Promise<T>;

  get signal(): AbortSignal {
    return this.controller.signal;
  }
}

const noop = () => {};

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

export class Flights<T> {
  private readonly inFlight = new Map<string, Flight<T>>();

  /** Number of keys with a load in progress. */
  get size(): number {
    return this.inFlight.size;
  }

  /**
   * Waits for the flight of `key`, starting it with `fn` if there is none. `isNew` tells the caller
   * whether it started the flight. Rejects at once with `signal.reason` when `signal` aborts; the flight
   * itself is aborted (and forgotten, so the next call starts afresh) only when all its waiters have.
   */
  do(key: string, signal: AbortSignal | undefined, fn: (flight: Flight<T>) => Promise<T>): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let f = this.inFlight.get(key);
    if (f === undefined) {
      const nf = new Flight<T>();
      f = nf;
      this.inFlight.set(key, nf);
      nf.promise = run(nf, fn).finally(() => {
        nf.done = true;
        this.forget(key, nf);
      });
      // Nobody may be waiting when it settles (all aborted): never an unhandled rejection.
      nf.promise.catch(noop);
    }
    return this.wait(key, f, signal);
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
          f.controller.abort(signal.reason);
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

/** Runs `fn`, but settles as soon as the flight is aborted even if `fn` ignores its signal. */
function run<T>(f: Flight<T>, fn: (flight: Flight<T>) => Promise<T>): Promise<T> {
  return raceSignal(f.signal, () => fn(f));
}

/**
 * Calls `start()` and returns its result, rejecting early with `signal.reason` if `signal` aborts first.
 * `start` throwing synchronously rejects too.
 */
export function raceSignal<T>(signal: AbortSignal, start: () => Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const off = onAbort(signal, () => reject(signal.reason));
    let p: Promise<T>;
    try {
      p = start();
    } catch (err) {
      off();
      reject(err);
      return;
    }
    Promise.resolve(p).then(
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

/**
 * Calls `start(signal)` with a signal that aborts when `parent` aborts or after `timeoutMs` (with
 * `onTimeout()`), and settles as soon as either happens even if `start` ignores its signal. The timer
 * is cleared when the call settles; until then it keeps the process alive, since someone awaits the
 * outcome. `timeoutMs` of 0 or Infinity = none.
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
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
    timer = setTimeout(() => ac.abort(onTimeout()), timeoutMs);
  }
  const p = raceSignal(ac.signal, () => start(ac.signal));
  const cleanup = () => {
    if (timer !== undefined) clearTimeout(timer);
    off();
  };
  p.then(cleanup, cleanup);
  return p;
}
