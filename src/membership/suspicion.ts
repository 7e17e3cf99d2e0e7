// Lifeguard's suspicion timer: a suspicion starts with a long timeout that shrinks, logarithmically,
// as other members independently report the same suspect. An isolated accuser (maybe the slow one)
// thus waits long, while a suspect that many members cannot reach is declared dead quickly.

import type { Clock } from './transport.js';

/**
 * Timeout after `confirmations` independent confirmations, with `k` expected:
 * max − (max − min) · log(c + 1) / log(k + 1), never below min. With k < 1 it is min at once.
 */
export function suspicionTimeout(confirmations: number, k: number, minMs: number, maxMs: number): number {
  if (k < 1) return minMs;
  const frac = Math.log(confirmations + 1) / Math.log(k + 1);
  return Math.max(minMs, Math.floor(maxMs - (maxMs - minMs) * frac));
}

/** Min timeout: mult × max(1, log10 n) × probe interval (larger clusters need longer to refute). */
export function suspicionMinMs(mult: number, n: number, probeIntervalMs: number): number {
  return Math.round(mult * Math.max(1, Math.log10(Math.max(1, n))) * probeIntervalMs);
}

/** One running suspicion. Calls `onTimeout` once, unless cancelled. */
export class Suspicion {
  private readonly confirmers = new Set<string>();
  private readonly start: number;
  /** Set by the owner once it sent the suspect its last-chance ping (see Swim.suspicionExpired). */
  finalCheck = false;
  /** Started because a death was announced for a member we held alive (see Swim.onDead). */
  fromDeadNews = false;
  private timer: unknown = null;
  private done = false;

  constructor(
    private readonly clock: Clock,
    /** The first accuser (not counted as a confirmation). */
    from: string,
    readonly k: number,
    readonly minMs: number,
    readonly maxMs: number,
    private readonly onTimeout: (lateMs: number) => void,
  ) {
    this.start = clock.now();
    this.confirmers.add(from);
    this.arm(maxMs);
  }

  /** Clock time the suspicion started. */
  get startedAt(): number {
    return this.start;
  }

  /** Confirmations counted so far (excluding the first accuser). */
  get confirmations(): number {
    return this.confirmers.size - 1;
  }

  /** Whether `id` accused or confirmed this suspicion. */
  accusedBy(id: string): boolean {
    return this.confirmers.has(id);
  }

  /** Current total timeout, from the start of the suspicion. */
  get timeoutMs(): number {
    return suspicionTimeout(this.confirmations, this.k, this.minMs, this.maxMs);
  }

  /** Deadline (clock time) at which the suspect is declared dead. */
  get deadline(): number {
    return this.start + this.timeoutMs;
  }

  /**
   * A new independent accuser. Returns true when it counted (new and still useful): the caller then
   * re-gossips the suspicion so others count it too.
   */
  confirm(from: string): boolean {
    if (this.done || this.confirmations >= this.k || this.confirmers.has(from)) return false;
    this.confirmers.add(from);
    this.arm(this.deadline - this.clock.now());
    return true;
  }

  /** Push the deadline back (this process was stalled and may hold an unread refutation). */
  extend(ms: number): void {
    if (this.done) return;
    this.arm(ms);
  }

  cancel(): void {
    this.done = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    const delay = Math.max(0, ms);
    const due = this.clock.now() + delay;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (this.done) return;
      const late = this.clock.now() - due;
      this.done = true;
      this.onTimeout(late);
    }, delay);
  }

  /** Reopen after onTimeout chose not to act (stall): fires again in `ms`. */
  rearm(ms: number): void {
    this.done = false;
    this.arm(ms);
  }
}
