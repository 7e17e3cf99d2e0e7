// Waiting on a caller's AbortSignal without a listener per wait. Every miss waits on a signal (a front
// connection's, a flight's shared call signal), and on Node 20 addEventListener/removeEventListener cost
// 1-3 µs each, the first listener on a fresh signal far more. So each signal gets ONE 'abort' listener,
// added the first time anything waits on it and kept for the signal's life, which fans out to the
// waiters linked in a list here.
//
// Why a linked list and not a Set: a Set (or Map) with an add and a delete per request never reuses the
// deleted slots, so it rehashes into a new table every few dozen requests. Measured on the peer-fetch
// path, that churn (one Set per signal, plus maps of requests in flight) went with 3 KB per request
// promoted to the old generation and scavenges of 5-10 ms every 40 ms. Unlinking a node allocates and
// leaves behind nothing.

/** Something to tell when a signal aborts. Extend it (or make one with `onAbort`). */
export abstract class AbortWaiter {
  /** @internal */ prevWaiter: AbortWaiter | null = null;
  /** @internal */ nextWaiter: AbortWaiter | null = null;
  /** @internal the list this waiter is linked into; null when not watching */
  waiterList: WaiterList | null = null;
  /** Called once, when the watched signal aborts (the waiter is unlinked first). */
  abstract onAbort(reason: unknown): void;

  /** Stops watching. Safe to call more than once, or when never watched. */
  unwatch(): void {
    const list = this.waiterList;
    if (list === null) return;
    this.waiterList = null;
    const { prevWaiter: prev, nextWaiter: next } = this;
    if (prev === null) list.head = next;
    else prev.nextWaiter = next;
    if (next !== null) next.prevWaiter = prev;
    this.prevWaiter = this.nextWaiter = null;
  }
}

/** @internal The waiters of one signal. */
class WaiterList {
  head: AbortWaiter | null = null;
}

const lists = new WeakMap<AbortSignal, WaiterList>();

/**
 * Calls `w.onAbort(signal.reason)` when `signal` aborts, until `w.unwatch()`. A waiter watches one signal
 * at a time. Does nothing for a signal that has already aborted: check `signal.aborted` first.
 */
export function watch(signal: AbortSignal, w: AbortWaiter): void {
  if (w.waiterList !== null) w.unwatch();
  let list = lists.get(signal);
  if (list === undefined) {
    const fresh = new WaiterList();
    list = fresh;
    lists.set(signal, fresh);
    signal.addEventListener('abort', () => fire(signal, fresh), { once: true });
  }
  const head = list.head;
  w.nextWaiter = head;
  if (head !== null) head.prevWaiter = w;
  list.head = w;
  w.waiterList = list;
}

function fire(signal: AbortSignal, list: WaiterList): void {
  lists.delete(signal);
  // Waiters may unwatch others (or watch anew) from their callbacks: take them one at a time.
  for (let w = list.head; w !== null; w = list.head) {
    w.unwatch();
    w.onAbort(signal.reason);
  }
}

class CallbackWaiter extends AbortWaiter {
  constructor(private readonly cb: (reason: unknown) => void) {
    super();
  }
  onAbort(reason: unknown): void {
    this.cb(reason);
  }
}

/** Calls `cb(reason)` when `signal` aborts; returns the waiter (call `.unwatch()` to stop). */
export function onAbort(signal: AbortSignal, cb: (reason: unknown) => void): AbortWaiter {
  const w = new CallbackWaiter(cb);
  watch(signal, w);
  return w;
}
