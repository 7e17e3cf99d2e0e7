// Whose turn it is to take requests from received Fetch messages. Taking a request (decoding it,
// starting its load) is the CPU work a peer can ask for by the megabyte, so it is done a slice at a
// time under a node-wide budget per event-loop turn (limits.ts: INTAKE_SLICE, TURN_REQUESTS), and the
// budget goes round-robin: connections in turn, and within a connection its streams in turn.
//
// Why round-robin and not "each stream schedules itself": streams that re-queued their own
// setImmediate when the turn's budget was spent kept their order, so the same few flooding streams
// took every turn's budget and a stream that arrived later (a well-behaved peer's, with one request)
// waited until the flood ran dry: 5 s in test/grpc/flood. Here a new stream waits for at most one
// slice of each connection ahead of it, and a connection with many streams gets no more turns than
// one with a single stream.

/** Requests a Fetch stream takes from a message before the next connection's turn. */
export const INTAKE_SLICE = 256;
/**
 * Requests all Fetch streams together take per event-loop turn (a few ms of work), so health checks,
 * unary calls and replies get their turn between.
 */
export const TURN_REQUESTS = 1024;

/** A stream with requests to take (a FetchSession). */
export interface IntakeTask {
  /** Its connection's queue: the connection is the unit of fairness. */
  readonly intakeQueue: IntakeQueue;
  /** Waiting for a turn (set and cleared by the scheduler). */
  intakeWaiting: boolean;
  /**
   * Take up to `max` requests; returns how many were taken. A task that stops at `max` with requests
   * left calls offer() again (it then waits for its next turn); one that stops for another reason
   * (no room, nothing left) is offered again by whatever gives it room or requests.
   */
  take(max: number): number;
}

/** Per connection: its streams waiting for a turn. Lives on the connection's budget. */
export class IntakeQueue {
  readonly tasks: IntakeTask[] = [];
  /** In the scheduler's ring of connections. */
  queued = false;
}

export class IntakeScheduler {
  /** Connections with tasks waiting, in turn order. */
  private ring: IntakeQueue[] = [];
  private ringHead = 0;
  private turnLeft = TURN_REQUESTS;
  private resetScheduled = false;
  private runScheduled = false;
  private running = false;

  constructor(
    private readonly slice = INTAKE_SLICE,
    private readonly perTurn = TURN_REQUESTS,
  ) {
    this.turnLeft = perTurn;
  }

  /**
   * `t` has requests to take. Runs it at once when no one is waiting and this turn has budget left
   * (the common case: a peer's small message is taken in the turn it arrives); else it waits for its
   * connection's turn. Offering a task already waiting does nothing.
   */
  offer(t: IntakeTask): void {
    if (t.intakeWaiting) return;
    if (!this.running && this.ringHead >= this.ring.length && this.turnLeft > 0) {
      this.running = true;
      try {
        this.spend(t.take(Math.min(this.slice, this.turnLeft)));
      } finally {
        this.running = false;
      }
      this.scheduleRun();
      return;
    }
    this.enqueue(t);
    if (!this.running) this.scheduleRun();
  }

  /** Tasks waiting for a turn (for tests). */
  get waiting(): number {
    let n = 0;
    for (let i = this.ringHead; i < this.ring.length; i++) n += this.ring[i].tasks.length;
    return n;
  }

  private enqueue(t: IntakeTask): void {
    const q = t.intakeQueue;
    t.intakeWaiting = true;
    q.tasks.push(t);
    if (!q.queued) {
      q.queued = true;
      this.ring.push(q);
    }
  }

  /**
   * Called when not running (a run, or a task taking at once, schedules after its spending): so the
   * turn's budget reset, scheduled by the first spending, comes before the run.
   */
  private scheduleRun(): void {
    if (this.runScheduled || this.ringHead >= this.ring.length) return;
    this.runScheduled = true;
    setImmediate(this.run);
  }

  private spend(n: number): void {
    this.turnLeft -= n;
    if (!this.resetScheduled) {
      this.resetScheduled = true;
      // Runs before this.run when both are due (scheduled first): each turn starts with a full budget.
      setImmediate(this.resetTurn);
    }
  }

  private readonly resetTurn = (): void => {
    this.resetScheduled = false;
    this.turnLeft = this.perTurn;
  };

  /** One event-loop turn's worth: a slice per connection in ring order, until the budget is spent. */
  private readonly run = (): void => {
    this.runScheduled = false;
    this.running = true;
    try {
      while (this.turnLeft > 0 && this.ringHead < this.ring.length) {
        const q = this.ring[this.ringHead++];
        q.queued = false;
        const t = q.tasks.shift() as IntakeTask;
        t.intakeWaiting = false;
        // Requeue the connection before taking: a task that re-offers itself goes behind its siblings.
        if (q.tasks.length > 0) {
          q.queued = true;
          this.ring.push(q);
        }
        this.spend(t.take(Math.min(this.slice, this.turnLeft)));
      }
    } finally {
      this.running = false;
    }
    // Compact the ring now and then (it only grows at the tail).
    if (this.ringHead > 1024 || this.ringHead >= this.ring.length) {
      this.ring = this.ring.slice(this.ringHead);
      this.ringHead = 0;
    }
    this.scheduleRun();
  };
}
