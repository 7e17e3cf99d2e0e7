// The server end of the peer Fetch stream: one session per connected peer, many requests in flight,
// each with its own deadline and cancel. Semantics and status codes are those of a peer's unary Get
// (served from this node's caches or its getter, never forwarded again); only the framing differs.

import type { ServerDuplexStream } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { ChurnMap } from '../churn.js';
import { type FetchReply, type FetchRequest, fetchReplyBatchBytes } from './codec.js';
import type { GroupSource, ServedEntry } from './serve.js';
import { entryOf, MAX_VALUE_METADATA, wireTtl } from './serve.js';
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
/** Stop reading from the peer while this many reply bytes wait for the transport to drain. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

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
  registry: GroupSource;
  maxMessageBytes: number;
  /** Called once the session has ended, for whatever reason. */
  onClose: (s: FetchSession) => void;
  /** Called for a reply that could not be served (for logs). */
  onError?: (f: Failure, group: string, key: string) => void;
  /** Called for every answered request, with its status code and time in this node. */
  onServed?: (code: status, ms: number) => void;
}

export class FetchSession {
  private readonly inflight = new ChurnMap<number, InFlight>();
  private out: FetchReply[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private waitingDrain = false;
  private sweeper: NodeJS.Timeout | undefined;
  private shuttingDown = false;
  private clientDone = false;
  private ended = false;
  private readonly maxValueBytes: number;

  constructor(
    private readonly call: ServerDuplexStream<FetchRequest[], FetchReply[]>,
    private readonly opts: FetchSessionOptions,
  ) {
    // The client's own receive limit, if lower, decides: a too-large value then fails alone with
    // RESOURCE_EXHAUSTED instead of breaking the whole stream at the client's transport.
    const advertised = Number(call.metadata.get(MAX_VALUE_METADATA)[0]);
    this.maxValueBytes =
      Number.isInteger(advertised) && advertised > 0
        ? Math.min(advertised, opts.maxMessageBytes)
        : opts.maxMessageBytes;
    call.on('data', (batch: FetchRequest[]) => {
      for (let i = 0; i < batch.length; i++) this.onRequest(batch[i]);
    });
    call.on('end', () => {
      this.clientDone = true;
      this.maybeEnd();
    });
    call.on('cancelled', () => this.abortAll());
    call.on('error', () => this.abortAll());
    call.on('close', () => this.abortAll());
  }

  /** Server shutdown: finish the requests in flight, refuse new ones, then end the stream. */
  shutdown(): void {
    this.shuttingDown = true;
    this.maybeEnd();
  }

  private onRequest(q: FetchRequest): void {
    if (q.cancel) {
      const f = this.inflight.get(q.id);
      if (f) {
        this.inflight.delete(q.id);
        f.abort(new CancelledError('the peer cancelled the request'));
        this.maybeEnd();
      }
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
    const now = q.timeoutMs || this.opts.onServed ? performance.now() : 0;
    const f = new InFlight(
      q.id,
      q.timeoutMs ? now + q.timeoutMs : Number.POSITIVE_INFINITY,
      this.opts.onServed ? now : 0,
    );
    this.inflight.set(q.id, f);
    if (q.timeoutMs && !this.sweeper) this.startSweeper();
    entryOf(group, q.key, f).then(
      (entry) => this.settled(q, f, entry, undefined),
      (err) => this.settled(q, f, undefined, err),
    );
  }

  private settled(q: FetchRequest, f: InFlight, entry: ServedEntry | undefined, err: unknown): void {
    // Gone from the map = cancelled or already answered by the deadline sweep.
    if (this.inflight.get(q.id) !== f) return;
    this.inflight.delete(q.id);
    if (entry) {
      if (entry.value.byteLength > this.maxValueBytes) {
        this.fail(q, tooLarge(q.group, q.key, entry.value.byteLength, this.maxValueBytes), f.start);
      } else {
        this.opts.onServed?.(status.OK, performance.now() - f.start);
        this.push({
          id: q.id,
          code: 0,
          value: entry.value,
          minuteQps: entry.minuteQps,
          ttlMs: wireTtl(entry.ttlMs),
          message: '',
        });
      }
    } else {
      this.fail(q, failureOf(err), f.start);
    }
    this.maybeEnd();
  }

  private fail(q: FetchRequest, f: Failure, start = 0): void {
    this.opts.onError?.(f, q.group, q.key);
    this.opts.onServed?.(f.code, start ? performance.now() - start : 0);
    this.push({ id: q.id, code: f.code, value: EMPTY, minuteQps: 0, ttlMs: 0, message: f.message });
  }

  private push(reply: FetchReply): void {
    if (this.ended) return;
    this.out.push(reply);
    this.outBytes += reply.value.byteLength + 32;
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
      if (!this.call.write(batch)) {
        this.waitingDrain = true;
        if (this.outBytes > HIGH_WATER_BYTES) this.call.pause();
        this.call.once('drain', () => {
          this.waitingDrain = false;
          this.call.resume();
          this.flush();
        });
        return;
      }
    }
    this.maybeEnd();
  };

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
    this.outBytes = Math.max(0, this.outBytes - bytes);
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
    this.ended = true;
    this.stopSweeper();
    this.call.end();
    this.opts.onClose(this);
  }

  private abortAll(): void {
    if (this.ended) return;
    this.ended = true;
    this.stopSweeper();
    const err = new CancelledError('the peer closed the stream');
    for (const f of this.inflight.values()) f.abort(err);
    this.inflight.clear();
    this.out = [];
    this.opts.onClose(this);
  }

  private stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

const EMPTY = Buffer.alloc(0);
