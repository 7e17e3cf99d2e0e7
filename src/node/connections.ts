// The HTTP front's connection budget. Each client connection costs a file descriptor and, while its
// request head is arriving, up to maxHeaderSize bytes of parser memory. Unbounded, a few thousand slow
// or idle clients exhaust the process's fds (then gRPC, gossip and origin sockets fail too) or its
// memory. So the front holds at most `maxConnections`; at the cap a new connection does not get refused
// while some connection is merely waiting: one is closed instead — first those that never completed a
// request (idle since connecting, or still trickling a head: how slow-client attacks look), oldest
// first; then connections whose transfer has stalled — a response the client does not read, or a request
// body it stopped sending — those stalled longest first (STALLED_SHED_MS); then idle keep-alive clients,
// the longest idle first. Only when every connection has a response in progress that is moving
// (or waits for its value) does a new one land in a small reserve that answers the operational routes
// (/healthz, /readyz, /metrics...) and nothing else, so health checks get through a front full of slow
// misses. Node's own timers (headersTimeout, requestTimeout, keepAliveTimeout) close the waiting ones in
// time; a transfer stalled for stallTimeoutMs is closed by the guard (Node has no write timeout but the
// socket's idle timeout, which re-arms on every read and write).
//
// Why: a response in progress used to make a connection untouchable. 1,060 clients each asking for a
// 4 MB value and never reading it (or trickling a PUT body a byte every 5 s) held every slot, and every
// group request got 503 for as long as they stayed.

import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * File descriptors set aside for everything but HTTP clients: stdio, logs, the gossip listener and its
 * TCP streams, gRPC to and from peers (one or two per member), origin pools (64 per group by default).
 */
const NON_HTTP_FDS = 256;
/** Default cap however many fds there are: 1 024 × the default 208 KiB head = ~200 MiB worst case. */
const MAX_DEFAULT_CONNECTIONS = 1024;
const MIN_DEFAULT_CONNECTIONS = 64;
/** What `defaultMaxConnections` assumes when the fd limit cannot be read (not Linux). */
const ASSUMED_FD_LIMIT = 1024;

/** Connections beyond the cap kept for operational routes when every other connection is busy. */
export const DEFAULT_RESERVE_CONNECTIONS = 16;

/**
 * The default connection cap: half of the fds left after NON_HTTP_FDS, between 64 and 1 024. Node
 * raises its soft RLIMIT_NOFILE to the hard limit at start; the limit in force is read from
 * /proc/self/limits (Linux; elsewhere ASSUMED_FD_LIMIT). Half, so HTTP clients can never take the fds
 * peers, gossip and origins need; at most 1 024, so heads in flight stay within ~200 MiB.
 */
export function defaultMaxConnections(fdLimit = readFdLimit()): number {
  const half = Math.floor((fdLimit - NON_HTTP_FDS) / 2);
  return Math.max(MIN_DEFAULT_CONNECTIONS, Math.min(MAX_DEFAULT_CONNECTIONS, half));
}

/**
 * The gRPC port's default connection cap (GrpcLimits.maxConnections): a quarter of the fds left after
 * NON_HTTP_FDS, between 64 and 1 024. With the HTTP front's half and the memcached front's quarter
 * (`defaultMemcachedMaxConnections`), clients of the three fronts together cannot take the NON_HTTP_FDS
 * that peers, gossip and origins need (above the 64-connection floors, i.e. fd limits ≥ 768).
 */
export function defaultGrpcMaxConnections(fdLimit = readFdLimit()): number {
  return quarterOfClientFds(fdLimit);
}

/** The memcached front's default connection cap: a quarter, as for gRPC (see defaultGrpcMaxConnections). */
export function defaultMemcachedMaxConnections(fdLimit = readFdLimit()): number {
  return quarterOfClientFds(fdLimit);
}

function quarterOfClientFds(fdLimit: number): number {
  const quarter = Math.floor((fdLimit - NON_HTTP_FDS) / 4);
  return Math.max(MIN_DEFAULT_CONNECTIONS, Math.min(MAX_DEFAULT_CONNECTIONS, quarter));
}

/** The soft `Max open files` of this process, or ASSUMED_FD_LIMIT. */
export function readFdLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1]);
  } catch {
    // not Linux, or /proc not mounted
  }
  return ASSUMED_FD_LIMIT;
}

/**
 * Header bytes a request needs for a key of `maxKeyBytes` UTF-8 bytes: percent-encoded it is up to 3×
 * as long, plus 16 KiB (Node's default maxHeaderSize) for the group, the request line and the usual
 * headers. 208 KiB for the default 64 KiB keys.
 */
export function headerBytesFor(maxKeyBytes: number): number {
  return 3 * maxKeyBytes + 16 * 1024;
}

/** When a connection last started a request (or connected); a coarse clock, see ConnectionGuard.now. */
export const kSince = Symbol('gossipcache.connectionSince');
/** Set once a connection has had a request head parsed (it is an established client). */
export const kServed = Symbol('gossipcache.connectionServed');
/** Set on connections admitted into the reserve. */
export const kReserve = Symbol('gossipcache.reserveConnection');
/** Bytes read and written at the last sample, and since when they have not changed. */
export const kProgress = Symbol('gossipcache.connectionProgress');

/** At the cap, a transfer stalled this long may make room for a new connection. */
export const STALLED_SHED_MS = 1000;
/** How often the guard samples its connections' progress (and refreshes `now`). */
const SAMPLE_MS = 250;

interface Progress {
  read: number;
  written: number;
  since: number;
}

export type GuardedSocket = Socket & {
  [kSince]: number;
  [kServed]: boolean;
  [kReserve]: boolean;
  [kProgress]: Progress;
  /** Node's: the response the socket is writing, null between responses (not in its public types). */
  _httpMessage?: { req?: { complete?: boolean } } | null;
};

export interface ConnectionCounters {
  /** Waiting connections closed to make room for new ones at the cap. */
  connectionsShed: number;
  /** New connections admitted into the operational reserve. */
  connectionsReserved: number;
  /** New connections closed at once: cap and reserve full of responses in progress. */
  connectionsRefused: number;
  /** Connections closed because their transfer made no progress for the stall timeout. */
  connectionsStalled: number;
}

/**
 * Counts `server`'s connections and applies the cap (see the file comment). Per request the front only
 * stamps `socket[kSince] = guard.now` and `socket[kServed] = true` (no clock read: `now` is refreshed
 * by a timer every 250 ms).
 */
export class ConnectionGuard {
  readonly sockets = new Set<GuardedSocket>();
  now = Date.now();
  private reserved = 0;
  private readonly clock: NodeJS.Timeout;

  constructor(
    server: Server,
    readonly maxConnections: number,
    readonly reserveConnections: number,
    private readonly counters: ConnectionCounters,
    /** A response the client does not read, or a request body it stopped sending, closed after this. */
    readonly stallTimeoutMs = 30_000,
  ) {
    this.clock = setInterval(this.sample, SAMPLE_MS);
    this.clock.unref();
    server.on('connection', (socket: Socket) => this.admit(socket as GuardedSocket));
    server.on('close', () => clearInterval(this.clock));
  }

  /** Refreshes `now`; notes which connections moved bytes; closes transfers stalled for stallTimeoutMs. */
  private readonly sample = (): void => {
    const now = Date.now();
    this.now = now;
    for (const s of this.sockets) {
      const p = s[kProgress];
      const read = s.bytesRead;
      // Handed to the kernel: bytesWritten counts what is still queued too, which does not move while a
      // client does not read.
      const written = s.bytesWritten - s.writableLength;
      if (read !== p.read || written !== p.written) {
        p.read = read;
        p.written = written;
        p.since = now;
      } else if (now - p.since >= this.stallTimeoutMs && stalled(s)) {
        this.counters.connectionsStalled++;
        this.forget(s);
        s.destroy();
      }
    }
  };

  private admit(socket: GuardedSocket): void {
    socket[kSince] = this.now;
    socket[kServed] = false;
    socket[kReserve] = false;
    socket[kProgress] = { read: 0, written: 0, since: this.now };
    if (this.sockets.size >= this.maxConnections) {
      // Oldest waiting connection first; a newcomer is the last to go, so a client that connects and
      // sends its request at once is served even while others keep connecting.
      let victim = this.waiting(false);
      if (victim === undefined) {
        if (this.reserved >= this.reserveConnections) victim = this.waiting(true);
        if (victim === undefined && this.reserved >= this.reserveConnections) {
          this.counters.connectionsRefused++;
          socket.destroy();
          return;
        }
        this.counters.connectionsReserved++;
        socket[kReserve] = true;
        this.reserved++;
      }
      if (victim !== undefined) {
        this.counters.connectionsShed++;
        this.forget(victim); // before destroy: its 'close' comes later, the slot is free now
        victim.destroy();
      }
    }
    this.sockets.add(socket);
    socket.once('close', () => this.forget(socket));
  }

  private forget(socket: GuardedSocket): void {
    if (!this.sockets.delete(socket)) return;
    if (socket[kReserve]) this.reserved--;
  }

  /**
   * Of the reserve (or the rest), the connection to close first: one that never completed a request head,
   * else one whose transfer the client holds up, else an idle keep-alive client (see the file comment).
   */
  private waiting(reserve: boolean): GuardedSocket | undefined {
    return this.idlest(reserve, false) ?? this.mostStalled(reserve) ?? this.idlest(reserve, true);
  }

  /**
   * Of the reserve (or the rest), the connection without a response in progress that has waited longest:
   * among those that never completed a request head (`served` false) or the established ones.
   */
  private idlest(reserve: boolean, served: boolean): GuardedSocket | undefined {
    let best: GuardedSocket | undefined;
    for (const s of this.sockets) {
      if (s[kReserve] !== reserve || s._httpMessage != null || s[kServed] !== served) continue;
      if (best === undefined || s[kSince] < best[kSince]) best = s;
    }
    return best;
  }

  /** Of the reserve (or the rest), the connection whose transfer has stalled longest, if STALLED_SHED_MS. */
  private mostStalled(reserve: boolean): GuardedSocket | undefined {
    let best: GuardedSocket | undefined;
    let since = this.now - STALLED_SHED_MS;
    for (const s of this.sockets) {
      if (s[kReserve] !== reserve || s[kProgress].since > since || !stalled(s)) continue;
      best = s;
      since = s[kProgress].since;
    }
    return best;
  }
}

/**
 * A response in progress that waits on the client: bytes queued it does not read, or a request body it
 * has not finished sending. (A response waiting for its value — a slow load — is not stalled.)
 */
function stalled(s: GuardedSocket): boolean {
  const res = s._httpMessage;
  if (res == null) return false;
  return s.writableLength > 0 || res.req?.complete === false;
}
