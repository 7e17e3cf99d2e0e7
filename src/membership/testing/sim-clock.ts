// TEST-ONLY (testing toolkit, see testing/index.ts). Fake time for the simulator. SimClock is a discrete-event clock: timers sit in a binary heap and
// `advance(ms)` runs them in time order, jumping the clock to each timer's due time, so an hour of a
// 1000-node cluster runs in seconds and every run replays exactly. PausableClock is one node's view
// of it that can be frozen (SIGSTOP, a long GC pause): its timers pile up and fire late on resume.

import type { Clock } from '../transport.js';

interface Timer {
  at: number;
  seq: number;
  fn: (() => void) | null;
}

export class SimClock implements Clock {
  private t: number;
  private seq = 0;
  private heap: Timer[] = [];
  /** Timers run so far. */
  fired = 0;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer: Timer = { at: this.t + Math.max(0, Number.isFinite(ms) ? ms : 0), seq: this.seq++, fn };
    this.push(timer);
    return timer;
  }

  clearTimeout(h: unknown): void {
    if (h && typeof h === 'object' && 'fn' in h) (h as Timer).fn = null;
  }

  /** Pending (not cancelled) timers — to check that everything cleaned up. */
  get pending(): number {
    let n = 0;
    for (const t of this.heap) if (t.fn) n++;
    return n;
  }

  /**
   * Run every timer due within `ms` from now, in order, then set the clock to now + ms. Microtasks
   * (promise continuations) run between timers, as they would in Node.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    while (this.heap.length > 0 && this.heap[0].at <= end) {
      const timer = this.pop();
      if (!timer.fn) continue;
      this.t = timer.at;
      const fn = timer.fn;
      timer.fn = null;
      this.fired++;
      fn();
      // Let promise chains started by this timer settle before the next one (a few hops suffice for
      // ours; deeper chains simply continue after the next timer).
      for (let i = 0; i < 3; i++) await null;
    }
    this.t = end;
    await new Promise<void>((r) => setImmediate(r));
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(x: Timer): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Timer {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** One node's clock over a shared SimClock; `pause()` freezes the node (timers fire late on resume). */
export class PausableClock implements Clock {
  private paused = false;
  private held: { fn: (() => void) | null }[] = [];

  constructor(private readonly base: Clock) {}

  now(): number {
    return this.base.now();
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const entry: { fn: (() => void) | null; h: unknown } = { fn, h: null };
    entry.h = this.base.setTimeout(() => {
      if (!entry.fn) return;
      if (this.paused) this.held.push(entry);
      else {
        const f = entry.fn;
        entry.fn = null;
        f();
      }
    }, ms);
    return entry;
  }

  clearTimeout(h: unknown): void {
    const entry = h as { fn: (() => void) | null; h: unknown } | null;
    if (!entry || typeof entry !== 'object') return;
    entry.fn = null;
    this.base.clearTimeout(entry.h);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    this.paused = true;
  }

  /** Unfreeze: timers that came due during the pause run now, in order (and see a late clock). */
  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const e of held) {
      const f = e.fn;
      e.fn = null;
      f?.();
    }
  }
}

/** Small, fast, seeded PRNG (mulberry32) for reproducible simulations. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
