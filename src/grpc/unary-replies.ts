// Unary replies not yet sent. grpc-js takes a unary Get's reply at once, but HTTP/2 holds it until
// the client's flow-control window lets it out: a client that does not read keeps up to
// maxConcurrentStreams values per connection in memory. So a reply stays charged to its connection
// (and the node) until its HTTP/2 stream closes, and the stall sweep (stall.ts) resets the ones that
// stay unsent. Kept in an intrusive list: no hash table insert/delete per call, no timer per call.

import type http2 from 'node:http2';
import type { Admission, ConnectionBudget } from './limits.js';
import { http2StreamOf } from './reset.js';

/** The reply an http2 stream carries, for the one shared 'close' listener (no closure per call). */
const kReply = Symbol('gossipcache.unaryReply');
type ReplyStream = http2.ServerHttp2Stream & { [kReply]?: UnaryReply };

function onStreamClose(this: ReplyStream): void {
  const r = this[kReply];
  if (r) r.list.done(r);
}

export class UnaryReply {
  prev: UnaryReply | undefined;
  next: UnaryReply | undefined;
  linked = true;
  /** Sweeps that found it still unsent. */
  sweeps = 0;
  constructor(
    readonly conn: ConnectionBudget,
    readonly unsentBytes: number,
    readonly stream: http2.ServerHttp2Stream,
    readonly list: UnaryReplies,
  ) {}
}

export class UnaryReplies {
  head: UnaryReply | undefined;
  size = 0;

  constructor(private readonly admission: Admission) {}

  /**
   * Keeps `cost` (already charged, with the connection open) held until the call's stream closes.
   * False when the stream cannot be reached or has closed: the caller releases at once.
   */
  hold(call: object, conn: ConnectionBudget, cost: number): boolean {
    const stream = http2StreamOf(call);
    if (!stream || stream.closed || stream.destroyed) return false;
    const r = new UnaryReply(conn, cost, stream, this);
    r.next = this.head;
    if (this.head) this.head.prev = r;
    this.head = r;
    this.size++;
    (stream as ReplyStream)[kReply] = r;
    stream.on('close', onStreamClose);
    return true;
  }

  done(r: UnaryReply): void {
    if (!r.linked) return;
    r.linked = false;
    if (r.prev) r.prev.next = r.next;
    else this.head = r.next;
    if (r.next) r.next.prev = r.prev;
    r.prev = r.next = undefined;
    this.size--;
    this.admission.release(r.conn, r.unsentBytes);
    this.admission.close(r.conn);
  }
}
