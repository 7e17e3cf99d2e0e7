// Giving back what clients that do not read their replies hold. The byte budgets (limits.ts) stop a
// never-reading client from taking more, but what it already holds stays charged until its replies
// are sent, and a client that never reads never lets them be sent: 16 such connections would keep
// the node's whole budget (16 × 16 MiB = 256 MiB by default) and shut out every other client.
//
// One timer for the whole server (nothing per request; the reply path only counts messages sent)
// looks at every Fetch session a few times per stallTimeoutMs:
//   - a session whose unsent replies made no progress for stallTimeoutMs is reset;
//   - while the node's held bytes leave less than one connection's budget free, sessions that have
//     made no progress for SHED_SWEEPS sweeps are shed at once, those holding most unsent bytes
//     first, until two connection budgets are free again — like the HTTP front closing idle
//     connections first when it is full (src/node/connections.ts).
// A reset session gives its bytes back at once; its client sees RESOURCE_EXHAUSTED (RST_STREAM
// ENHANCE_YOUR_CALM), and our own client then loads locally and reopens the stream.

import type { Admission } from './limits.js';
import type { FetchSession } from './stream.js';

/** Longest time between sweeps: how soon shedding starts once the node's budget is nearly spent. */
const MAX_SWEEP_MS = 250;
/** Sweeps in a row without progress after which a session may be shed under pressure (≥ 0.5 s). */
export const SHED_SWEEPS = 2;

export interface StallCounts {
  /** Sessions reset after stallTimeoutMs without progress. */
  stalled: number;
  /** Sessions reset earlier because the node's budget was nearly spent. */
  shed: number;
}

export class StallSweeper {
  readonly sweepMs: number;
  private readonly stallSweeps: number;
  private timer: NodeJS.Timeout | undefined;
  readonly counts: StallCounts = { stalled: 0, shed: 0 };

  constructor(
    private readonly sessions: ReadonlySet<FetchSession>,
    private readonly admission: Admission,
    stallTimeoutMs: number,
    /** Called after a sweep that reset sessions (for logs). */
    private readonly onReset?: (stalled: number, shed: number) => void,
  ) {
    this.sweepMs = Math.max(1, Math.min(MAX_SWEEP_MS, Math.floor(stallTimeoutMs / 4)));
    this.stallSweeps = Math.max(1, Math.ceil(stallTimeoutMs / this.sweepMs));
  }

  /** Runs while there are sessions: call after adding one. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(this.sweep, this.sweepMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  readonly sweep = (): void => {
    if (this.sessions.size === 0) {
      this.stop();
      return;
    }
    const { maxHeldBytes, maxConnectionBytes, stallTimeoutMs } = this.admission.limits;
    let stalled = 0;
    let candidates: FetchSession[] | undefined;
    // Sessions reset here leave the set (their onClose): collect first, reset after.
    const expired: FetchSession[] = [];
    for (const s of this.sessions) {
      const n = s.observe();
      if (n >= this.stallSweeps) expired.push(s);
      else if (n >= SHED_SWEEPS) (candidates ??= []).push(s);
    }
    for (const s of expired) {
      s.reset(`no reply on this stream was read for ${stallTimeoutMs} ms`);
      stalled++;
    }
    let shed = 0;
    if (candidates && this.admission.held > maxHeldBytes - maxConnectionBytes) {
      candidates.sort((a, b) => b.unsentBytes - a.unsentBytes);
      const target = maxHeldBytes - 2 * maxConnectionBytes;
      for (const s of candidates) {
        if (this.admission.held <= target) break;
        s.reset('shed: the node is at its memory limit and this stream does not read its replies');
        shed++;
      }
    }
    if (stalled + shed > 0) {
      this.counts.stalled += stalled;
      this.counts.shed += shed;
      this.onReset?.(stalled, shed);
    }
  };
}
