// Request messages still arriving. grpc-js keeps the bytes of an incoming message until all of it has
// come (its 5-byte prefix says how long: up to MAX_REQUEST_MESSAGE_BYTES) and only then hands it on, so
// none of the accounting in limits.ts sees them until then. Measured before this: a client sending all
// but the last byte of 1 MiB messages on 100 streams made one connection hold 100 MB (eight: 900 MB),
// uncounted, with nothing to time them out, and RSS stayed high after it left.
//
// So every stream's incoming bytes are read alongside grpc-js (a second 'data' listener: grpc-js has
// paused the stream before ours is added, so ours never changes its flow), only to follow the gRPC
// framing and count what the message not yet complete holds. What it holds is more than its bytes:
// grpc-js keeps slices of the chunks http2 hands over, and a chunk is a slice of a socket read's 64 KiB
// buffer, which stays in memory while any slice of it does (1 MiB sent in one piece arrived as 81 chunks
// of 33 such buffers; tiny DATA frames arriving one per read would each pin one, not measured). So a message is
// charged each distinct buffer its bytes came from, whole. That counts a buffer shared by several
// streams once per stream: on the safe side. The counts are bounded:
//   - per connection: maxConnectionBytes (the bound on what its requests hold once taken);
//   - per node: a quarter of maxHeldBytes (64 MiB by default).
// Over a bound, streams whose sender has sent nothing for STALLED_SENDER_MS are reset to make room, the
// longest stalled first (on this connection when the connection's bound is passed); when none is, the
// stream whose bytes went over is reset. A message that makes no progress for stallTimeoutMs is reset
// too (one timer per server while any message is incomplete). A reset is RST_STREAM ENHANCE_YOUR_CALM:
// the client sees RESOURCE_EXHAUSTED; our own client then loads the key itself. grpc-js frees what it
// held for the stream when the stream closes.
//
// The http2 servers are reached through grpc-js internals, as connections.ts does (listeningServersOf).

import type http2 from 'node:http2';
import { constants } from 'node:http2';
import { listeningServersOf } from './connections.js';
import type { GrpcLimits } from './limits.js';
import { resetStream } from './reset.js';

/** A sender quiet this long in the middle of a message may be reset when its bytes are needed. */
export const STALLED_SENDER_MS = 1000;

/** gRPC's message prefix: a compressed flag and a 4-byte big-endian length. */
const PREFIX_BYTES = 5;

interface Connection {
  held: number;
  readonly session: http2.Http2Session;
}

/** One stream's incoming message. */
interface Incoming {
  readonly stream: http2.ServerHttp2Stream;
  readonly conn: Connection;
  /** What the incomplete message holds, as counted: the buffers its bytes came from (prefix included). */
  held: number;
  /** Those buffers. */
  readonly buffers: Set<ArrayBufferLike>;
  prefixGot: number;
  length: number;
  bodyLeft: number;
  lastDataAt: number;
  /** Being reset: its bytes are given back, and what still arrives is not counted. */
  dropped: boolean;
}

export interface ReceivingCounts {
  /** Streams reset because their incomplete message made no progress for stallTimeoutMs. */
  stalled: number;
  /** Streams reset to keep incomplete messages within their bounds. */
  shed: number;
}

export class Receiving {
  /** Bytes of incomplete messages, all connections. */
  held = 0;
  readonly counts: ReceivingCounts = { stalled: 0, shed: 0 };
  private readonly incomplete = new Set<Incoming>();
  private readonly connections = new WeakMap<object, Connection>();
  private readonly attached = new WeakSet<object>();
  private readonly maxConnectionBytes: number;
  private readonly maxNodeBytes: number;
  private readonly stallTimeoutMs: number;
  private readonly sweepMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(limits: Pick<GrpcLimits, 'maxConnectionBytes' | 'maxHeldBytes' | 'stallTimeoutMs'>) {
    this.maxNodeBytes = Math.max(1, Math.floor(limits.maxHeldBytes / 4));
    this.maxConnectionBytes = Math.min(limits.maxConnectionBytes, this.maxNodeBytes);
    this.stallTimeoutMs = limits.stallTimeoutMs;
    this.sweepMs = Math.max(1, Math.floor(limits.stallTimeoutMs / 4));
  }

  /** Watches the streams of a grpc-js Server's http2 servers (after bindAsync). False if not found. */
  attach(grpcServer: object): boolean {
    const servers = listeningServersOf(grpcServer);
    for (const h of servers) {
      if (this.attached.has(h)) continue;
      this.attached.add(h);
      h.on('stream', this.onStream);
    }
    return servers.length > 0;
  }

  /** Starts counting `stream`'s incoming messages (what attach() does for every stream). */
  readonly onStream = (stream: http2.ServerHttp2Stream): void => {
    const session = stream.session;
    if (!session) return;
    let conn = this.connections.get(session);
    if (!conn) {
      conn = { held: 0, session };
      this.connections.set(session, conn);
    }
    const s: Incoming = {
      stream,
      conn,
      held: 0,
      prefixGot: 0,
      length: 0,
      bodyLeft: 0,
      lastDataAt: 0,
      dropped: false,
      buffers: new Set(),
    };
    stream.on('data', (chunk: Buffer) => this.onData(s, chunk));
    stream.once('close', () => this.release(s));
  };

  private onData(s: Incoming, chunk: Buffer): void {
    if (s.dropped) return;
    let held = s.held;
    // Does the message incomplete at the end of this chunk have bytes from it?
    let fromThisChunk = false;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      fromThisChunk = true;
      if (s.bodyLeft === 0) {
        // In a prefix: its first byte is the flag, the next four the length.
        const b = chunk[i++];
        if (s.prefixGot > 0) s.length = s.length * 256 + b;
        s.prefixGot++;
        if (s.prefixGot < PREFIX_BYTES) continue;
        if (s.length > 0) {
          s.bodyLeft = s.length;
          continue;
        }
      } else {
        const take = Math.min(s.bodyLeft, n - i);
        i += take;
        s.bodyLeft -= take;
        if (s.bodyLeft > 0) continue;
      }
      // A whole message: grpc-js has handed it on (its listener runs before this one).
      s.prefixGot = 0;
      s.length = 0;
      s.buffers.clear();
      held = 0;
      fromThisChunk = false;
    }
    if (fromThisChunk && !s.buffers.has(chunk.buffer)) {
      s.buffers.add(chunk.buffer);
      held += chunk.buffer.byteLength;
    }
    // Read only while a message is incomplete: no clock read for a chunk that ends on a whole message.
    if (held > 0) s.lastDataAt = Date.now();
    this.charge(s, held);
    if (held > 0) this.keepWithinBounds(s);
  }

  private charge(s: Incoming, held: number): void {
    const delta = held - s.held;
    s.held = held;
    s.conn.held += delta;
    this.held += delta;
    if (held > 0) {
      this.incomplete.add(s);
      this.startSweeping();
    } else {
      this.incomplete.delete(s);
    }
  }

  private release(s: Incoming): void {
    s.buffers.clear();
    if (s.held > 0) this.charge(s, 0);
  }

  /**
   * Gives `s`'s bytes back now and resets its stream on the next turn, outside the 'data' event: in a
   * plain Node 20 http2 reproduction, a server stream closed inside its own 'data' event left a client
   * in the same thread unable to close its other streams (in-process clusters are such clients);
   * setImmediate avoided it, process.nextTick did not.
   */
  private reset(s: Incoming): void {
    this.release(s);
    s.dropped = true;
    setImmediate(resetStream, s.stream);
  }

  /**
   * Over a bound after `s` received: stalled senders make room. When none can, a connection over its own
   * bound is closed (GOAWAY ENHANCE_YOUR_CALM): no well-behaved client keeps that much unfinished at once,
   * and resetting one stream at a time let it go on sending on the others; under the node's bound alone,
   * `s` is reset.
   */
  private keepWithinBounds(s: Incoming): void {
    const conn = s.conn;
    while (conn.held > this.maxConnectionBytes || this.held > this.maxNodeBytes) {
      const sameConnection = conn.held > this.maxConnectionBytes;
      const victim = this.longestStalled(s, sameConnection ? conn : undefined);
      this.counts.shed++;
      if (victim) {
        this.reset(victim);
      } else if (sameConnection) {
        this.closeConnection(conn);
        return;
      } else {
        this.reset(s);
        return;
      }
    }
  }

  private closeConnection(conn: Connection): void {
    for (const x of this.incomplete) {
      if (x.conn !== conn) continue;
      this.release(x);
      x.dropped = true;
    }
    setImmediate(() => {
      if (!conn.session.destroyed) conn.session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    });
  }

  private longestStalled(except: Incoming, conn: Connection | undefined): Incoming | undefined {
    const quietSince = Date.now() - STALLED_SENDER_MS;
    let found: Incoming | undefined;
    for (const x of this.incomplete) {
      if (x === except || (conn !== undefined && x.conn !== conn) || x.lastDataAt > quietSince) continue;
      if (found === undefined || x.lastDataAt < found.lastDataAt) found = x;
    }
    return found;
  }

  private startSweeping(): void {
    if (this.timer) return;
    this.timer = setInterval(this.sweep, this.sweepMs);
    this.timer.unref();
  }

  /** Resets messages without progress for stallTimeoutMs; stops when none is incomplete. */
  readonly sweep = (): void => {
    const before = Date.now() - this.stallTimeoutMs;
    for (const s of this.incomplete) {
      if (s.lastDataAt <= before) {
        this.counts.stalled++;
        this.reset(s);
      }
    }
    if (this.incomplete.size === 0) this.stop();
  };

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
