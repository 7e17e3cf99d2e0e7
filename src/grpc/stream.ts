// The server end of the peer Fetch stream: one session per connected peer, many requests in flight,
// each with its own deadline and cancel. Semantics and status codes are those of a peer's unary Get
// (served from this node's caches or its getter, never forwarded again); only the framing differs.
//
// What a peer can make the session hold is bounded (limits.ts): requests are taken from a message in
// slices (the event loop keeps turning during a large batch), only while the stream, the connection
// and the node have room; otherwise the stream stops reading, and HTTP/2 flow control stops the peer.
// A reply holds its room until it is handed to the transport, so a peer that does not read its
// replies stops being read too; and a stream whose replies make no progress for a while is reset
// (stall.ts sweeps every session; the hot path only counts messages sent).

import type { ServerDuplexStream } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { ChurnMap } from '../churn.js';
import type { ServedGroup, ServedRegistry } from '../group.js';
import type { EntryResult } from '../peers.js';
import { incomingTraceContext, keyAttributes, SPAN, SpanKind, traced, tracedSync } from '../tracing.js';
import {
  BatchRefused,
  FetchBatchReader,
  type FetchReply,
  type FetchRequest,
  fetchReplyBatchBytes,
} from './codec.js';
import type { IntakeQueue, IntakeTask } from './intake.js';
import { type Admission, type ConnectionBudget, FETCH_REQUEST_COST, MAX_BATCH_REQUESTS } from './limits.js';
import { resetCall } from './reset.js';
import { entryOf, MAX_VALUE_METADATA, wireTtl, wireWindow } from './serve.js';
import {
  CancelledError,
  DeadlineError,
  emptyKey,
  type Failure,
  failureOf,
  tooLarge,
  unknownGroup,
} from './status.js';

/** How often in-flight deadlines are checked. One timer per session instead of one per request. */
const SWEEP_MS = 10;
/**
 * Replies are coalesced into messages of up to this size; a larger value travels alone, so it does
 * not delay the small ones behind it.
 */
const BATCH_BYTES = 256 * 1024;
/** What a queued reply is charged besides its value and message. */
const REPLY_COST = 64;

/**
 * One request being served. It doubles as the options of getEntry: the core reads `signal` only on a
 * cache miss, so the AbortController (a measurable cost per request) is made only for loads.
 */
class InFlight {
  readonly local = true;
  ac: AbortController | undefined;
  constructor(
    readonly id: number,
    readonly deadline: number,
    /** performance.now() at arrival, when someone measures (onServed); else 0. */
    readonly start: number,
    /** Bytes charged to the connection while it loads. */
    readonly cost: number,
  ) {}
  get signal(): AbortSignal {
    this.ac ??= new AbortController();
    return this.ac.signal;
  }
  abort(reason: Error): void {
    this.ac?.abort(reason);
  }
}

export interface FetchSessionOptions {
  registry: ServedRegistry;
  maxMessageBytes: number;
  /** The node's account of held bytes (limits.ts). */
  admission: Admission;
  /** Requests this stream may hold, in flight or with the reply unwritten. */
  maxStreamRequests: number;
  /** Fetch streams its connection may have open; this one is refused past it. */
  maxFetchStreams: number;
  /** Called once the session has ended, for whatever reason. */
  onClose: (s: FetchSession) => void;
  /** Called for a reply that could not be served (for logs). */
  onError?: (f: Failure, group: string, key: string) => void;
  /** Called for every answered request, with its status code and time in this node. */
  onServed?: (code: status, ms: number) => void;
}

export class FetchSession implements IntakeTask {
  private readonly inflight = new ChurnMap<number, InFlight>();
  private out: FetchReply[] = [];
  /**
   * Bytes charged for replies not yet sent: those in `out`, and those written to the call whose write
   * has not completed (grpc-js and HTTP/2 buffer them while the peer's window is shut).
   */
  private outCost = 0;
  /** Replies written to the call whose write has not completed. */
  private unsent = 0;
  private flushScheduled = false;
  private waitingDrain = false;
  private sweeper: NodeJS.Timeout | undefined;
  private shuttingDown = false;
  private clientDone = false;
  private ended = false;
  private readonly maxValueBytes: number;
  private readonly conn: ConnectionBudget;
  /** Messages received and not yet taken, decoded one request at a time (at most two). */
  private intake: FetchBatchReader[] = [];
  /** A request decoded and not yet taken: it waits for room. */
  private waitingReq: FetchRequest | undefined;
  /** Waiting for its turn to take requests (set by the node's IntakeScheduler). */
  intakeWaiting = false;
  readonly intakeQueue: IntakeQueue;
  private waitingRoom = false;
  private paused = false;
  /** Reply messages the transport has sent (progress, for the stall sweep). */
  private sentMessages = 0;
  /** sentMessages at the last sweep, and how many sweeps in a row found replies waiting and none sent. */
  private sweptSent = 0;
  private stalledSweeps = 0;

  constructor(
    private readonly call: ServerDuplexStream<Buffer, FetchReply[]>,
    private readonly opts: FetchSessionOptions,
  ) {
    // The client's own receive limit, if lower, decides: a too-large value then fails alone with
    // RESOURCE_EXHAUSTED instead of breaking the whole stream at the client's transport.
    const advertised = Number(call.metadata.get(MAX_VALUE_METADATA)[0]);
    this.maxValueBytes =
      Number.isInteger(advertised) && advertised > 0
        ? Math.min(advertised, opts.maxMessageBytes)
        : opts.maxMessageBytes;
    this.conn = opts.admission.open(call.getPeer());
    this.intakeQueue = this.conn.intake;
    // A paused stream still reads ahead up to its high-water mark (16 messages in object mode): keep
    // it at one message, so what a peer can make us buffer beyond the budget is at most three messages
    // per stream (two in the intake, one here). readableHighWaterMark has no public setter; the state
    // field is read on every push.
    const state = (call as unknown as { _readableState?: { highWaterMark?: number } })._readableState;
    if (state && typeof state.highWaterMark === 'number') state.highWaterMark = 1;
    // Messages arrive undecoded (the service's deserializer passes the bytes through): they are decoded
    // one request at a time in their connection's turns (intake.ts).
    call.on('data', (message: Buffer) => this.onBatch(message));
    call.on('end', () => {
      this.clientDone = true;
      this.maybeEnd();
    });
    call.on('cancelled', () => this.abortAll());
    call.on('error', () => this.abortAll());
    call.on('close', () => this.abortAll());
    if (++this.conn.fetchStreams > opts.maxFetchStreams) {
      this.refuse(
        status.RESOURCE_EXHAUSTED,
        `this connection already has ${opts.maxFetchStreams} Fetch streams open, this node's limit`,
      );
    }
  }

  /** The session has ended (the server forgets it). */
  get closed(): boolean {
    return this.ended;
  }

  /** Bytes charged for replies not yet sent. */
  get unsentBytes(): number {
    return this.outCost;
  }

  /**
   * Called once per stall sweep: how many sweeps in a row have found replies waiting to be sent and
   * none sent since the previous sweep (0 = progressing, or nothing to send).
   */
  observe(): number {
    if (this.outCost <= 0 || this.sentMessages !== this.sweptSent) {
      this.sweptSent = this.sentMessages;
      this.stalledSweeps = 0;
    } else {
      this.stalledSweeps++;
    }
    return this.stalledSweeps;
  }

  /**
   * The client stopped reading: drop everything this stream holds and reset it (its replies still
   * queued in grpc-js and HTTP/2 are discarded with it).
   */
  reset(message: string): void {
    if (this.ended) return;
    this.abortAll();
    resetCall(this.call, message);
  }

  /** Server shutdown: finish the requests in flight, refuse new ones, then end the stream. */
  shutdown(): void {
    this.shuttingDown = true;
    this.maybeEnd();
  }

  private onBatch(message: Buffer): void {
    if (this.ended) return;
    const reader = new FetchBatchReader(message);
    let n: number;
    try {
      n = reader.count();
    } catch (err) {
      this.refuse(status.INVALID_ARGUMENT, `malformed FetchBatch message: ${(err as Error).message}`);
      return;
    }
    if (n > MAX_BATCH_REQUESTS) {
      this.refuse(status.RESOURCE_EXHAUSTED, new BatchRefused(n, MAX_BATCH_REQUESTS).message);
      return;
    }
    this.intake.push(reader);
    // A message arriving while an earlier one is still being taken: stop reading until the intake is
    // empty. Pausing only then (not whenever a turn ends) keeps pause/resume off the common path.
    if (this.intake.length > 1 || this.waitingReq !== undefined) this.pause();
    if (!this.waitingRoom) this.opts.admission.intake.offer(this);
  }

  private hasIntake(): boolean {
    return this.waitingReq !== undefined || this.intake.length > 0;
  }

  /** The next request received and not yet taken, decoding it from the oldest message. */
  private nextRequest(): FetchRequest | undefined {
    const waiting = this.waitingReq;
    if (waiting !== undefined) {
      this.waitingReq = undefined;
      return waiting;
    }
    while (this.intake.length > 0) {
      // Framing was checked by count(): next() cannot throw here.
      const q = this.intake[0].next();
      if (q !== undefined) return q;
      this.intake.shift();
    }
    return undefined;
  }

  /**
   * Takes (decodes and starts) up to `max` received requests while the stream, its connection and the
   * node have room; called by the node's IntakeScheduler in this connection's turn (intake.ts). While
   * requests are left, a further message stops the stream's reading (onBatch) until they are taken.
   */
  take(max: number): number {
    if (this.ended) return 0;
    const { admission, maxStreamRequests } = this.opts;
    let taken = 0;
    while (this.hasIntake()) {
      if (taken >= max) {
        admission.intake.offer(this);
        return taken;
      }
      const q = this.nextRequest();
      if (q === undefined) break;
      if (!q.cancel) {
        if (this.inflight.size + this.out.length + this.unsent >= maxStreamRequests) {
          // Room comes back as this stream's replies are sent (sent() offers it again).
          this.waitingReq = q;
          return taken;
        }
        if (!admission.hasRoom(this.conn)) {
          this.waitingReq = q;
          this.waitingRoom = true;
          admission.wait(this.onRoom);
          return taken;
        }
      }
      taken++;
      this.onRequest(q);
    }
    this.resume();
    this.maybeEnd();
    return taken;
  }

  /** Bytes were released in the node: try again in this connection's turn. */
  private readonly onRoom = (): void => {
    this.waitingRoom = false;
    if (!this.ended) this.opts.admission.intake.offer(this);
  };

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.call.pause();
  }

  private resume(): void {
    if (!this.paused || this.ended) return;
    this.paused = false;
    this.call.resume();
  }

  /** Ends the stream with `code` (a peer broke the protocol's limits); what it had in flight is dropped. */
  private refuse(code: status, message: string): void {
    this.opts.onError?.({ code, message }, '', '');
    this.abortAll();
    // grpc-js ends the call with this status (ServerDuplexStream turns an 'error' into its status).
    this.call.emit('error', { code, details: message });
  }

  private onRequest(q: FetchRequest): void {
    if (q.cancel) {
      const f = this.inflight.get(q.id);
      if (f) {
        this.inflight.delete(q.id);
        this.opts.admission.release(this.conn, f.cost);
        f.abort(new CancelledError('the peer cancelled the request'));
        this.maybeEnd();
      }
      return;
    }
    if (q.invalid !== undefined) {
      this.fail(q, { code: status.INVALID_ARGUMENT, message: q.invalid });
      return;
    }
    if (this.shuttingDown) {
      this.fail(q, { code: status.UNAVAILABLE, message: 'node is shutting down; load the key elsewhere' });
      return;
    }
    const group = this.opts.registry.get(q.group);
    if (!group) {
      this.fail(q, unknownGroup(q.group));
      return;
    }
    if (!q.key) {
      this.fail(q, emptyKey());
      return;
    }
    if (this.inflight.get(q.id) !== undefined) {
      this.fail(q, {
        code: status.INVALID_ARGUMENT,
        message: `request id ${q.id} is already in flight on this stream; ids must be unique among those in flight`,
      });
      return;
    }
    if (q.handoff) {
      this.answerHandoff(q, group);
      return;
    }
    const now = q.timeoutMs || this.opts.onServed ? performance.now() : 0;
    const f = new InFlight(
      q.id,
      q.timeoutMs ? now + q.timeoutMs : Number.POSITIVE_INFINITY,
      this.opts.onServed ? now : 0,
      FETCH_REQUEST_COST + q.key.length + q.group.length,
    );
    this.opts.admission.charge(this.conn, f.cost);
    this.inflight.set(q.id, f);
    if (q.timeoutMs && !this.sweeper) this.startSweeper();
    traced(
      SPAN.peerServe,
      SpanKind.SERVER,
      () => ({ ...keyAttributes(q.group, q.key), 'rpc.method': 'Fetch' }),
      () => entryOf(group, q.key, f),
      incomingTraceContext(q.trace),
    ).then(
      (entry) => this.settled(q, f, entry, undefined),
      (err) => this.settled(q, f, undefined, err),
    );
  }

  private settled(q: FetchRequest, f: InFlight, entry: EntryResult | undefined, err: unknown): void {
    // Gone from the map = cancelled or already answered by the deadline sweep.
    if (this.inflight.get(q.id) !== f) return;
    this.inflight.delete(q.id);
    this.opts.admission.release(this.conn, f.cost);
    if (entry) {
      if (entry.value.byteLength > this.maxValueBytes) {
        this.fail(q, tooLarge(q.group, q.key, entry.value.byteLength, this.maxValueBytes), f.start);
      } else {
        this.opts.onServed?.(status.OK, performance.now() - f.start);
        this.push(valueReply(q.id, entry));
      }
    } else {
      // A remembered NotFound travels with the time it has left (the peer may remember it that long).
      this.fail(q, failureOf(err), f.start, wireWindow((err as { ttlMs?: number } | undefined)?.ttlMs));
    }
    this.maybeEnd();
  }

  /** The handoff question: answered at once from the caches, never loaded, never forwarded. */
  private answerHandoff(q: FetchRequest, group: ServedGroup): void {
    let entry: EntryResult | undefined;
    try {
      entry = tracedSync(
        SPAN.handoffServe,
        () => ({ ...keyAttributes(q.group, q.key), 'rpc.method': 'Fetch' }),
        () => group.server.handoffEntry?.(q.key),
        SpanKind.SERVER,
        incomingTraceContext(q.trace),
      );
    } catch (err) {
      // Never a failed load: the handoff question does not load.
      this.fail(q, { ...failureOf(err), loadError: undefined });
      return;
    }
    if (entry === undefined) {
      this.opts.onServed?.(status.NOT_FOUND, 0);
      this.push({
        id: q.id,
        code: status.NOT_FOUND,
        value: EMPTY,
        minuteQps: 0,
        ttlMs: 0,
        message: NOT_HELD,
      });
    } else if (entry.value.byteLength > this.maxValueBytes) {
      this.fail(q, tooLarge(q.group, q.key, entry.value.byteLength, this.maxValueBytes));
    } else {
      this.opts.onServed?.(status.OK, 0);
      this.push(valueReply(q.id, entry));
    }
    this.maybeEnd();
  }

  private fail(q: FetchRequest, f: Failure, start = 0, ttlMs = 0): void {
    this.opts.onError?.(f, q.group, q.key);
    this.opts.onServed?.(f.code, start ? performance.now() - start : 0);
    this.push({
      id: q.id,
      code: f.code,
      value: EMPTY,
      minuteQps: 0,
      ttlMs: f.code === status.NOT_FOUND ? ttlMs : 0,
      message: f.message,
      loadError: f.loadError,
    });
  }

  private push(reply: FetchReply): void {
    if (this.ended) return;
    this.out.push(reply);
    const cost = replyCost(reply);
    this.outCost += cost;
    this.opts.admission.charge(this.conn, cost);
    if (!this.flushScheduled && !this.waitingDrain) {
      this.flushScheduled = true;
      // Replies settled in the same event-loop turn leave in one message.
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.ended || this.waitingDrain) return;
    while (this.out.length > 0) {
      const batch = this.takeBatch();
      this.unsent += batch.length;
      if (!this.call.write(batch, () => this.sent(batch))) {
        // The transport is full: the rest waits (still charged) until it drains.
        this.waitingDrain = true;
        this.call.once('drain', () => {
          this.waitingDrain = false;
          this.flush();
        });
        return;
      }
    }
    this.maybeEnd();
  };

  /** Replies the transport has sent no longer count against this stream and its connection. */
  private sent(batch: FetchReply[]): void {
    // After the session ended, abortAll or maybeEnd released everything already.
    if (this.ended) return;
    this.sentMessages++;
    this.unsent -= batch.length;
    let cost = 0;
    for (let i = 0; i < batch.length; i++) cost += replyCost(batch[i]);
    this.outCost -= cost;
    this.opts.admission.release(this.conn, cost);
    if (this.hasIntake() && !this.waitingRoom) this.opts.admission.intake.offer(this);
  }

  /** The longest prefix of `out` that fits one message (always at least one reply). */
  private takeBatch(): FetchReply[] {
    let bytes = 0;
    let n = 0;
    while (n < this.out.length) {
      const size = fetchReplyBatchBytes(this.out[n]);
      if (n > 0 && bytes + size > BATCH_BYTES) break;
      bytes += size;
      n++;
    }
    const batch = n === this.out.length ? this.out : this.out.slice(0, n);
    this.out = n === this.out.length ? [] : this.out.slice(n);
    return batch;
  }

  private startSweeper(): void {
    this.sweeper = setInterval(() => {
      if (this.inflight.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
        return;
      }
      const now = performance.now();
      this.inflight.forEach((f) => {
        if (f.deadline > now) return;
        const id = f.id;
        // Answer now, whatever the getter does with its signal: the peer must not wait longer.
        this.inflight.delete(id);
        this.opts.admission.release(this.conn, f.cost);
        const err = new DeadlineError('the peer deadline passed before the value was loaded');
        f.abort(err);
        this.opts.onServed?.(status.DEADLINE_EXCEEDED, f.start ? now - f.start : 0);
        this.push({ id, ...failureOf(err), value: EMPTY, minuteQps: 0, ttlMs: 0 });
      });
      this.maybeEnd();
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  private maybeEnd(): void {
    if (this.ended || !(this.clientDone || this.shuttingDown)) return;
    if (this.inflight.size > 0 || this.out.length > 0 || this.flushScheduled || this.waitingDrain) return;
    // Requests received before the client's half-close are still answered (unless shutting down).
    if (!this.shuttingDown && (this.hasIntake() || this.intakeWaiting || this.waitingRoom)) return;
    this.ended = true;
    this.stopSweeper();
    this.dropIntake();
    // Replies still in the transport are sent or dropped with the call.
    this.opts.admission.release(this.conn, this.outCost);
    this.outCost = 0;
    this.conn.fetchStreams--;
    this.opts.admission.close(this.conn);
    this.call.end();
    this.opts.onClose(this);
  }

  private abortAll(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopSweeper();
    const err = new CancelledError('the peer closed the stream');
    let cost = this.outCost;
    for (const f of this.inflight.values()) {
      cost += f.cost;
      f.abort(err);
    }
    this.inflight.clear();
    this.out = [];
    this.outCost = 0;
    this.dropIntake();
    this.opts.admission.release(this.conn, cost);
    this.conn.fetchStreams--;
    this.opts.admission.close(this.conn);
    this.opts.onClose(this);
  }

  private dropIntake(): void {
    this.intake = [];
    this.waitingReq = undefined;
    if (this.waitingRoom) {
      this.waitingRoom = false;
      this.opts.admission.unwait(this.onRoom);
    }
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

const EMPTY = Buffer.alloc(0);

/** The reply carrying an entry: its value, rate, and what is left of its ttl and windows. */
function valueReply(id: number, entry: EntryResult): FetchReply {
  return {
    id,
    code: 0,
    value: entry.value,
    minuteQps: entry.minuteQps,
    ttlMs: wireTtl(entry.ttlMs),
    message: '',
    stale: entry.stale === true,
    staleWhileRevalidateMs: wireWindow(entry.staleWhileRevalidateMs),
    staleIfErrorMs: wireWindow(entry.staleIfErrorMs),
    ageMs: wireWindow(entry.ageMs),
  };
}

function replyCost(r: FetchReply): number {
  return REPLY_COST + r.value.byteLength + r.message.length + (r.loadError?.length ?? 0);
}
/** NOT_FOUND message of a handoff question for a key this node does not hold. */
const NOT_HELD = 'handoff: this node does not hold the key';
