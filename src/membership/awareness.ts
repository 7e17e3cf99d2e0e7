// Lifeguard's local health multiplier. When this node itself is slow (CPU starved, GC, stalled event
// loop) its probes fail for reasons that are not the peers' fault. Signs of that raise the score;
// successful probes lower it. Probe interval and timeout are scaled by (score + 1), so a sick node
// probes less often and waits longer instead of accusing healthy peers.
//
// Raised by: a probe that failed with relays that did not even nack (we could not reach anyone),
// being accused ourselves (we refuted a suspicion), and a detected stall of our own timers.
// Lowered by: a successful probe.

export class Awareness {
  private score = 0;

  constructor(private readonly max: number) {}

  /** Add `delta` (may be negative), clamped to [0, max − 1]. */
  apply(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  get health(): number {
    return this.score;
  }

  /** `ms` stretched by the current score. */
  scale(ms: number): number {
    return ms * (this.score + 1);
  }
}
