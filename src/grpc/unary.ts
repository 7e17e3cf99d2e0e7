// The getEntry options of one unary Get. The core reads `signal` only on a cache miss, so the
// AbortController, the deadline timer and the cancel listener — most of a hit's cost — are set up
// only for calls that actually load.

import type { ServerUnaryCall } from '@grpc/grpc-js';
import { CancelledError, DeadlineError } from './status.js';

export class UnaryLoad {
  private ac: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onCancel: (() => void) | undefined;

  constructor(
    private readonly call: ServerUnaryCall<unknown, unknown>,
    /** A peer's fill: served here, never forwarded. */
    readonly local: boolean,
  ) {}

  /** Aborts when the caller's deadline passes or the caller cancels. */
  get signal(): AbortSignal {
    if (this.ac) return this.ac.signal;
    const ac = new AbortController();
    this.ac = ac;
    const deadline = this.call.getDeadline();
    const ms = (deadline instanceof Date ? deadline.getTime() : deadline) - Date.now();
    if (Number.isFinite(ms)) {
      this.timer = setTimeout(
        () => ac.abort(new DeadlineError('the caller deadline passed')),
        Math.max(0, ms),
      );
    }
    this.onCancel = () => ac.abort(new CancelledError('the caller cancelled the request'));
    this.call.once('cancelled', this.onCancel);
    return ac.signal;
  }

  /** The call is answered: drop the timer and the listener. */
  done(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.onCancel) this.call.off('cancelled', this.onCancel);
  }
}
