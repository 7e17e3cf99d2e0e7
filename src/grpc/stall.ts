// Giving back what clients that do not read their replies hold. The byte budgets (limits.ts) stop a
// never-reading client from taking more, but what it already holds stays charged until its replies
// are sent, and a client that never reads never lets them be sent: 16 such connections would keep
// the node's whole budget (16 × 16 MiB = 256 MiB by default) and shut out every other client.
//
// One timer for the whole server (nothing per request; the reply path only counts messages sent)
// looks at every Fetch session and every unary reply not yet sent (unary-replies.ts) a few times per
// stallTimeoutMs (a unary reply is one message: no progress until its stream closes):
//   - a session whose unsent replies made no progress for stallTimeoutMs is reset;
//   - while the node's held bytes leave less than one connection's budget free, sessions that have
//     made no progress for SHED_SWEEPS sweeps are shed at once, those holding most unsent bytes
//     first, until two connection budgets are free again — like the HTTP front closing idle
//     connections first when it is full (src/node/connections.ts).
// A reset session gives its bytes back at once; its client sees RESOURCE_EXHAUSTED (RST_STREAM
// ENHANCE_YOUR_CALM), and our own client then loads locally and reopens the stream.

import type { Admission } from './limits.js';
import { resetStream } from './reset.js';
import type { FetchSession } from './stream.js';
import type { UnaryReplies, UnaryReply } from './unary-replies.js';

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
    private readonly unary: UnaryReplies,
    private readonly admission: Admission,
    stallTimeoutMs: number,
    /** Called after a sweep that reset sessions (for logs). */
    private readonly onReset?: (stalled: number, shed: number) => void,
  ) {
    this.sweepMs = Math.max(1, Math.min(MAX_SWEEP_MS, Math.floor(stallTimeoutMs / 4)));
    this.stallSweeps = Math.max(1, Math.ceil(stallTimeoutMs / this.sweepMs));
  }

  /** Runs while there are sessions or unary replies unsent: call after adding one. */
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
    if (this.sessions.size === 0 && this.unary.size === 0) {
      this.stop();
      return;
    }
    const { maxHeldBytes, maxConnectionBytes, stallTimeoutMs } = this.admission.limits;
    let candidates: (FetchSession | UnaryReply)[] | undefined;
    // Sessions and replies reset here leave their set or list: collect first, reset after.
    const expired: (FetchSession | UnaryReply)[] = [];
    for (const s of this.sessions) {
      const n = s.observe();
      if (n >= this.stallSweeps) expired.push(s);
      else if (n >= SHED_SWEEPS) (candidates ??= []).push(s);
    }
    for (let r = this.unary.head; r; r = r.next) {
      const n = ++r.sweeps;
      if (n >= this.stallSweeps) expired.push(r);
      else if (n >= SHED_SWEEPS) (candidates ??= []).push(r);
    }
    for (const x of expired) reset(x, `no reply on this stream was read for ${stallTimeoutMs} ms`);
    const stalled = expired.length;
    let shed = 0;
    if (candidates && this.admission.held > maxHeldBytes - maxConnectionBytes) {
      candidates.sort((a, b) => b.unsentBytes - a.unsentBytes);
      // What a reset gives back: a Fetch session at once, a unary reply when its stream closes.
      let held = this.admission.held;
      const target = maxHeldBytes - 2 * maxConnectionBytes;
      for (const x of candidates) {
        if (held <= target) break;
        held -= x.unsentBytes;
        reset(x, 'shed: the node is at its memory limit and this stream does not read its replies');
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

function reset(x: FetchSession | UnaryReply, message: string): void {
  if ('observe' in x) x.reset(message);
  else resetStream(x.stream);
}
