// Waiting in tests: sleep, a hand-released promise, a promise's rejection, and polling until a condition holds.
// Polling is for real I/O (sockets, child processes); logic with timers uses a fake clock instead.

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The error `p` rejects with; fails the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection, the promise resolved');
}

/** A promise and its resolve/reject, for work that a test releases by hand. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export interface WaitOptions {
  /** Give up after this long. Default 20 s: generous, only a failing test waits it out. */
  timeoutMs?: number;
  /** Pause between checks. Default 20 ms. */
  intervalMs?: number;
  /** What was last seen, for the timeout message. */
  state?: () => string;
}

/**
 * Thrown by a `waitFor` check to stop waiting at once (the awaited thing can no longer happen, e.g.
 * the process exited). Any other error a check throws counts as "not yet" and is retried.
 */
export class WaitAborted extends Error {}

/**
 * Polls `check` until it returns a truthy value, and returns that value. On timeout throws with
 * `what`, the last error the check threw and `state()`. A number for `opts` is the timeout.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  opts: number | WaitOptions = {},
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const o = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const timeoutMs = o.timeoutMs ?? 20_000;
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
    } catch (err) {
      if (err instanceof WaitAborted) throw err;
      last = err;
    }
    if (performance.now() > deadline) {
      const lastError = last ? ` (last error: ${(last as Error).message})` : '';
      const seen = o.state ? `; last seen: ${o.state()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError}${seen}`);
    }
    await sleep(o.intervalMs ?? 20);
  }
}

/** `p`, or a rejection after `ms` naming `what` (a bound for "this must happen", not a timing goal). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms))),
  ]).finally(() => clearTimeout(t));
}
