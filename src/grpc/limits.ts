// What a gRPC client can make a node hold, and the bounds on it. Every request a node accepts costs
// memory until its reply is written: the request itself (its key, its bookkeeping, its place in a
// flight) while it loads, then the reply (its value) while the client has not read it. A client that
// floods one Fetch stream, opens many streams, or stops reading must not be able to grow that without
// limit, stall the event loop, or starve the other clients.
//
// The bounds, per request held (in flight or reply not yet written):
//   - per Fetch message: MAX_BATCH_REQUESTS requests (a protocol constant; bigger messages end the
//     stream with RESOURCE_EXHAUSTED), and at most MAX_REQUEST_MESSAGE_BYTES per incoming message;
//   - per Fetch stream: maxStreamRequests held; past it the stream stops reading (HTTP/2 flow control
//     then stops the client), and resumes as replies are written;
//   - per connection: maxConnectionBytes held (all its streams and unary calls), and
//     maxConcurrentStreams streams (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
//   - per node: maxHeldBytes held by all clients together.
// Past a byte bound, Fetch streams stop reading and unary calls are answered RESOURCE_EXHAUSTED.
//
// A unary reply stays charged until HTTP/2 has sent it (unary-replies.ts). Bytes held for a client
// that does not read its replies are given back by time (stall.ts): a Fetch stream whose unsent
// replies made no progress (or a unary reply still unsent) for stallTimeoutMs is reset, and sooner when the node's
// budget is nearly spent (the stalled streams holding most are shed first), so never-reading
// connections cannot keep the node's budget from well-behaved clients. What a stream reads ahead of
// its budget (up to three messages) is bounded per connection by maxFetchStreams.

import { IntakeQueue, IntakeScheduler } from './intake.js';

/** Requests one FetchBatch message may carry. Our client never sends more (mux.ts). */
export const MAX_BATCH_REQUESTS = 4096;
/**
 * Largest incoming message (a FetchBatch, a Get or Remove request). Our client's batches stay under
 * a quarter of it; a key so long that its request alone is bigger (only with maxKeyBytes raised past
 * ~1 MiB) is not sent to peers: it loads where it is asked.
 */
export const MAX_REQUEST_MESSAGE_BYTES = 1024 * 1024;
/**
 * What a Fetch request is charged besides its key: its bookkeeping objects, promise and flight
 * waiter. Measured: a flood holding ~250k requests grew the node's RSS by ~125 MiB (test/grpc/flood).
 */
export const FETCH_REQUEST_COST = 512;
/** What a unary call is charged besides its key: grpc-js's call and HTTP/2 stream state. */
export const UNARY_CALL_COST = 4096;
// How the CPU work of taking requests is shared between streams and connections: intake.ts.

export interface GrpcLimits {
  /** Requests one Fetch stream may hold (in flight or reply unwritten). Default 4096. */
  maxStreamRequests: number;
  /** Bytes one client connection may make the node hold (see FETCH_REQUEST_COST). Default 16 MiB. */
  maxConnectionBytes: number;
  /** Bytes all clients together may make the node hold. Default 256 MiB. */
  maxHeldBytes: number;
  /** Concurrent calls (HTTP/2 streams) per client connection. Default 100. */
  maxConcurrentStreams: number;
  /**
   * Fetch streams per client connection; more are refused (RESOURCE_EXHAUSTED). Each may read up to
   * three messages (≤ 3 MiB) ahead of the byte budgets, so this bounds that per connection. Our
   * client opens one per peer, but grpc-js shares one connection between all clients of a process
   * with equal options (several nodes in one process). Default 16.
   */
  maxFetchStreams: number;
  /**
   * A Fetch stream whose unsent replies made no progress (the client did not read) for this long is
   * reset (RST_STREAM ENHANCE_YOUR_CALM; the client sees RESOURCE_EXHAUSTED) and what it held is given
   * back. While the node's budget is nearly spent, stalled streams are shed sooner (stall.ts).
   * Default 10 s: a peer whose event loop stalls longer is presumed failing anyway.
   */
  stallTimeoutMs: number;
  /**
   * Client connections the gRPC port holds (each costs a file descriptor). At the cap a connection
   * that has sent nothing since it connected is closed to make room, else the new one (connections.ts).
   * Default 512; the node program derives its default from the fd limit (src/node/connections.ts).
   */
  maxConnections: number;
}

export const DEFAULT_GRPC_LIMITS: Readonly<GrpcLimits> = {
  maxStreamRequests: 4096,
  maxConnectionBytes: 16 * 1024 * 1024,
  maxHeldBytes: 256 * 1024 * 1024,
  maxConcurrentStreams: 100,
  maxFetchStreams: 16,
  stallTimeoutMs: 10_000,
  maxConnections: 512,
};

/** Fills in defaults and checks a user's limits (each a positive integer). */
export function checkLimits(l: Partial<GrpcLimits> | undefined): GrpcLimits {
  const out = { ...DEFAULT_GRPC_LIMITS, ...l };
  for (const [name, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`grpc limits: ${name} must be a positive integer, got ${v}`);
    }
  }
  return out;
}

/** The bytes held on behalf of one client connection. */
export class ConnectionBudget {
  held = 0;
  /** Its Fetch streams waiting for a turn to take requests (intake.ts). */
  readonly intake = new IntakeQueue();
  /** Sessions and unary calls using this budget; it is forgotten when none are left. */
  users = 0;
  /** Open Fetch streams on this connection (GrpcLimits.maxFetchStreams). */
  fetchStreams = 0;
  constructor(readonly peer: string) {}
}

/**
 * The node-wide account of held bytes, per connection and in total. Streams that must wait for room
 * register a waker; released bytes wake them (once per event-loop turn, however many releases).
 */
export class Admission {
  held = 0;
  private readonly conns = new Map<string, ConnectionBudget>();
  private readonly waiters = new Set<() => void>();
  private wakeScheduled = false;
  /** Whose turn it is to take requests from received Fetch messages (round-robin, per turn). */
  readonly intake = new IntakeScheduler();

  constructor(readonly limits: GrpcLimits) {}

  /** The budget of the connection `peer` (grpc-js getPeer(): address:port). Pair with close(). */
  open(peer: string): ConnectionBudget {
    let c = this.conns.get(peer);
    if (!c) {
      c = new ConnectionBudget(peer);
      this.conns.set(peer, c);
    }
    c.users++;
    return c;
  }

  close(c: ConnectionBudget): void {
    if (--c.users <= 0 && c.held <= 0 && this.conns.get(c.peer) === c) this.conns.delete(c.peer);
  }

  /** Room for one more request on this connection and in the node. */
  hasRoom(c: ConnectionBudget): boolean {
    return c.held < this.limits.maxConnectionBytes && this.held < this.limits.maxHeldBytes;
  }

  charge(c: ConnectionBudget, bytes: number): void {
    c.held += bytes;
    this.held += bytes;
  }

  release(c: ConnectionBudget, bytes: number): void {
    c.held -= bytes;
    this.held -= bytes;
    if (c.users <= 0 && c.held <= 0 && this.conns.get(c.peer) === c) this.conns.delete(c.peer);
    if (this.waiters.size > 0 && !this.wakeScheduled) {
      this.wakeScheduled = true;
      setImmediate(this.wake);
    }
  }

  /** Calls `waker` after bytes are released (again and again until unwait). */
  wait(waker: () => void): void {
    this.waiters.add(waker);
  }

  unwait(waker: () => void): void {
    this.waiters.delete(waker);
  }

  private readonly wake = (): void => {
    this.wakeScheduled = false;
    // A waker that still finds no room waits again: iterate a copy, or it would be visited forever.
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  };
}
