// The client end of the peer Fetch stream: many fills multiplexed over one long-lived bidirectional
// stream, because a unary call per fill costs several times more in grpc-js than a message on an
// open stream. Requests issued in the same event-loop turn leave in one message; each has an id, a
// deadline and can be cancelled. When the stream dies, every request in flight fails (the core then
// loads locally) and the next request opens a new stream on the same channel.

import { type Client, type ClientDuplexStream, Metadata, status } from '@grpc/grpc-js';
import { AbortWaiter, watch } from '../abort.js';
import { ChurnMap } from '../churn.js';
import type { PeerGetResult } from '../peers.js';
import { outgoingTraceContext } from '../tracing.js';
import { type FetchReply, type FetchRequest, fetchRequestBatchBytes } from './codec.js';
import { MAX_BATCH_REQUESTS, MAX_REQUEST_MESSAGE_BYTES } from './limits.js';
import { FETCH_PATH, gossipCacheService } from './proto.js';
import { MAX_VALUE_METADATA } from './serve.js';
import { errorOf, PeerError } from './status.js';

const fetchMethod = gossipCacheService.Fetch;
/**
 * Requests are coalesced into messages of up to this size and MAX_BATCH_REQUESTS requests, a quarter
 * of the MAX_REQUEST_MESSAGE_BYTES a node accepts (the rest is room for one request with a long key).
 */
const REQUEST_BATCH_BYTES = MAX_REQUEST_MESSAGE_BYTES / 4;
/** Longest group + key a request may carry: its message must fit what the node accepts. */
const MAX_REQUEST_STRING_BYTES = MAX_REQUEST_MESSAGE_BYTES - 64;

/** One request in flight; watches the caller's signal while it waits. */
class Pending extends AbortWaiter {
  done = false;
  resolve!: (r: PeerGetResult) => void;
  reject!: (e: Error) => void;
  constructor(
    readonly mux: FetchMux,
    readonly id: number,
    readonly start: number,
    readonly deadline: number,
    readonly signal: AbortSignal,
    /** A handoff question: not a fill, so not reported to onPeerRpc. */
    readonly handoff: boolean,
  ) {
    super();
  }
  onAbort(): void {
    this.mux.aborted(this);
  }
}

export interface FetchMuxOptions {
  peer: string;
  timeoutMs: number;
  maxMessageBytes: number;
  onPeerRpc?: (ms: number, ok: boolean) => void;
}

export class FetchMux {
  /** False once the stream ended or failed; the owner then opens a new one. */
  alive = true;
  private readonly call: ClientDuplexStream<FetchRequest[], FetchReply[]>;
  private readonly pending = new ChurnMap<number, Pending>();
  private nextId = 1;
  private queue: FetchRequest[] = [];
  private flushScheduled = false;
  private waitingDrain = false;
  // Deadlines in the order requests were sent; with one timeout per peer they are already sorted,
  // so one timer at the head replaces a timer per request.
  private deadlines: Pending[] = [];
  private deadlineHead = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    client: Client,
    private readonly opts: FetchMuxOptions,
  ) {
    const md = new Metadata();
    md.set(MAX_VALUE_METADATA, String(opts.maxMessageBytes));
    this.call = client.makeBidiStreamRequest(
      FETCH_PATH,
      fetchMethod.requestSerialize,
      fetchMethod.responseDeserialize,
      md,
      {},
    ) as ClientDuplexStream<FetchRequest[], FetchReply[]>;
    this.call.on('data', (replies: FetchReply[]) => {
      for (let i = 0; i < replies.length; i++) this.onReply(replies[i]);
    });
    this.call.on('error', (err: Error & { code?: number; details?: string }) => {
      this.die(err.code ?? status.UNAVAILABLE, err.details || err.message);
    });
    this.call.on('status', (s: { code: number; details: string }) => {
      this.die(s.code === status.OK ? status.UNAVAILABLE : s.code, s.details || 'the peer ended the stream');
    });
    this.call.on('end', () => this.die(status.UNAVAILABLE, 'the peer ended the stream'));
  }

  /** `handoff`: the cache-only handoff question (proto/gossipcache.proto FetchRequest.handoff). */
  fetch(group: string, key: string, signal: AbortSignal, handoff = false): Promise<PeerGetResult> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (typeof group !== 'string' || typeof key !== 'string') {
      return Promise.reject(
        new TypeError(`peer fetch: group and key must be strings, got ${typeof group}/${typeof key}`),
      );
    }
    if (!this.alive) {
      return Promise.reject(new PeerError(this.opts.peer, status.UNAVAILABLE, 'the stream has ended'));
    }
    // ≤ 3 UTF-8 bytes per UTF-16 unit: only very long keys are measured.
    if (3 * (group.length + key.length) > MAX_REQUEST_STRING_BYTES) {
      const bytes = Buffer.byteLength(group) + Buffer.byteLength(key);
      if (bytes > MAX_REQUEST_STRING_BYTES) {
        // Sent, it would break the whole stream at the node (message too large); fail it alone.
        return Promise.reject(
          new PeerError(
            this.opts.peer,
            status.RESOURCE_EXHAUSTED,
            `group and key are ${bytes} bytes, over the ${MAX_REQUEST_STRING_BYTES} a peer request can carry`,
          ),
        );
      }
    }
    const id = this.nextId;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const start = performance.now();
    const p = new Pending(this, id, start, start + this.opts.timeoutMs, signal, handoff);
    const promise = new Promise<PeerGetResult>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
    });
    watch(signal, p);
    this.pending.set(id, p);
    this.deadlines.push(p);
    if (!this.timer) this.armTimer(p.deadline);
    // The caller's trace context rides in the request (tracing.ts); undefined when nothing traces.
    const q: FetchRequest = {
      id,
      group,
      key,
      timeoutMs: this.opts.timeoutMs,
      cancel: false,
      trace: outgoingTraceContext(),
    };
    if (handoff) q.handoff = true;
    this.send(q);
    return promise;
  }

  /** @internal The caller's signal aborted: fail the request and tell the peer. */
  aborted(p: Pending): void {
    if (p.done) return;
    this.settle(p, false);
    p.reject(p.signal.reason);
    // So the peer stops the load if nobody else waits for the key.
    this.send({ id: p.id, group: '', key: '', timeoutMs: 0, cancel: true });
  }

  /** Cancel the stream; requests in flight fail with UNAVAILABLE. */
  close(): void {
    this.die(status.UNAVAILABLE, 'the peer was removed');
    this.call.cancel();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private send(q: FetchRequest): void {
    if (!this.alive) return;
    this.queue.push(q);
    if (!this.flushScheduled && !this.waitingDrain) {
      this.flushScheduled = true;
      // Everything requested in this event-loop turn leaves in one message.
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (!this.alive || this.waitingDrain) return;
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
      if (!this.call.write(batch)) {
        // HTTP/2 flow control: the peer reads slower than we ask. Hold the rest until it drains.
        this.waitingDrain = true;
        this.call.once('drain', () => {
          this.waitingDrain = false;
          this.flush();
        });
        return;
      }
    }
  };

  private takeBatch(): FetchRequest[] {
    // Upper bound of the encoded size from string lengths (≤ 3 UTF-8 bytes per UTF-16 unit): exact
    // sizes are computed only when the queue might not fit one message.
    const q = this.queue;
    let bound = 0;
    for (let i = 0; i < q.length; i++) bound += 3 * (q[i].group.length + q[i].key.length) + 32;
    const limit = Math.min(this.opts.maxMessageBytes, REQUEST_BATCH_BYTES);
    if (bound <= limit && q.length <= MAX_BATCH_REQUESTS) {
      this.queue = [];
      return q;
    }
    let bytes = 0;
    let n = 0;
    while (n < q.length && n < MAX_BATCH_REQUESTS) {
      const size = fetchRequestBatchBytes(q[n]);
      if (n > 0 && bytes + size > limit) break;
      bytes += size;
      n++;
    }
    this.queue = q.slice(n);
    return q.slice(0, n);
  }

  private onReply(r: FetchReply): void {
    const p = this.pending.get(r.id);
    if (!p) return; // cancelled or timed out here already
    if (r.code === 0) {
      this.settle(p, true);
      p.resolve({
        value: r.value,
        minuteQps: r.minuteQps,
        ttlMs: r.ttlMs || undefined,
        stale: r.stale,
        staleWhileRevalidateMs: r.staleWhileRevalidateMs,
        staleIfErrorMs: r.staleIfErrorMs,
        ageMs: r.ageMs,
      });
    } else {
      // A NotFound, or the peer's own load failing (load_error), is an answer: the peer worked.
      this.settle(p, r.code === status.NOT_FOUND || !!r.loadError);
      p.reject(errorOf(this.opts.peer, r.code, r.message, r.ttlMs, r.loadError));
    }
  }

  private settle(p: Pending, ok: boolean): void {
    p.done = true;
    this.pending.delete(p.id);
    p.unwatch();
    if (!p.handoff) this.opts.onPeerRpc?.(performance.now() - p.start, ok);
    // Replies mostly come back in order: drop settled requests from the deadline list's head now,
    // so the list holds about what is in flight rather than everything sent in the last timeout.
    const list = this.deadlines;
    let i = this.deadlineHead;
    while (i < list.length && list[i].done) i++;
    if (i === list.length) {
      this.deadlines = [];
      i = 0;
    } else if (i > 1024 && i * 2 > list.length) {
      this.deadlines = list.slice(i);
      i = 0;
    }
    this.deadlineHead = i;
  }

  private armTimer(at: number): void {
    this.timer = setTimeout(this.expire, Math.max(1, at - performance.now()));
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    for (;;) {
      const p = this.deadlines[this.deadlineHead];
      if (!p) break;
      if (p.done) {
        this.deadlineHead++;
        continue;
      }
      if (p.deadline > now) {
        this.armTimer(p.deadline);
        break;
      }
      this.settle(p, false); // p is the head: settle() moves the head past it
      p.reject(
        new PeerError(this.opts.peer, status.DEADLINE_EXCEEDED, `no reply within ${this.opts.timeoutMs} ms`),
      );
      this.send({ id: p.id, group: '', key: '', timeoutMs: 0, cancel: true });
    }
  };

  private die(code: number, message: string): void {
    if (!this.alive) return;
    this.alive = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue = [];
    const pending = this.pending.values();
    this.pending.clear();
    for (const p of pending) {
      this.settle(p, false);
      p.reject(new PeerError(this.opts.peer, code, message));
    }
    this.deadlines = [];
    this.deadlineHead = 0;
  }
}
