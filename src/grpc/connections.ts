// The gRPC port's connection cap. Each client connection costs a file descriptor (and nghttp2 session
// state); unbounded, a client opening connections and sending nothing runs the process out of fds, and
// then the HTTP front, gossip and origin sockets fail too. So the port holds at most maxConnections.
// At the cap a new connection is not simply refused: a connection that has sent nothing at all since it
// connected (not even HTTP/2's preface: how an fd-exhaustion attack looks; a real client's first bytes
// leave with its connect) is closed instead, the oldest first, so holding idle sockets cannot lock
// peers out; failing that, the connection that has sent nothing for longest, if that is at least
// IDLE_SHED_MS (our peers' keepalive pings every 10 s, so a live peer is never that quiet; an outside
// client that is simply reconnects when it next calls). Only when every connection has spoken within
// IDLE_SHED_MS is the new one closed. Quietness is sampled by one timer per port (every IDLE_SHED_MS / 4
// while connections are open), reading each socket's byte count: nothing per request.
//
// Speaking means calling, once the HTTP/2 session is paired with its socket: http2 emits 'session' just
// before our 'connection' listener runs (plain text), or, over TLS, before our 'secureConnection' listener
// (whose TLS socket's `_parent` is the TCP socket we track). A connection with no call open and none
// started within IDLE_SHED_MS is quiet, whatever else it sends. Bytes alone let 1,023 connections that
// sent an HTTP/2 PING every 10 s (which costs nothing) hold the port: every new client, a joining peer's
// included, was refused. Our peers keep a Fetch stream open, so they are never quiet. Until a TLS
// handshake is done (or if `_parent` is gone in some Node), the byte count decides, as before.
//
// grpc-js has no public per-connection hook on a bound port; its http2 servers are reached through
// its internals (Server.http2Servers, grpc-js 1.10–1.14), each step checked. Without them the cap is
// not enforced and createGrpcServer logs a warning (test/grpc/connections.test.ts fails then).

import type { Server as NetServer, Socket } from 'node:net';

export interface ConnectionCapCounts {
  /** Connections open on the gRPC port now. */
  open: number;
  /** Silent connections closed to make room for a new one at the cap. */
  shed: number;
  /** New connections closed at the cap because every open one had spoken. */
  refused: number;
}

/** A connection that has sent nothing for this long may be shed at the cap (see above). */
export const IDLE_SHED_MS = 30_000;

/** A socket's byte count at the last sample, and when it last grew; its HTTP/2 session's calls if known. */
interface Activity {
  bytes: number;
  since: number;
  calls?: Calls;
}

/** An HTTP/2 session's calls: open now, and when one last started or ended. */
interface Calls {
  open: number;
  lastAt: number;
}

/**
 * The listening (http2) servers of a grpc-js Server after bindAsync, reached through its internals
 * (Server.http2Servers, see above); none when they are not where expected. receiving.ts watches them too.
 */
export function listeningServersOf(grpcServer: object): NetServer[] {
  const servers = (grpcServer as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return [];
  return [...servers.keys()].filter((s): s is NetServer => {
    const net = s as Partial<NetServer>;
    return typeof net.on === 'function' && typeof net.listening === 'boolean';
  });
}

export class ConnectionCap {
  /** Open connections, oldest first (a Map keeps insertion order). */
  private readonly sockets = new Map<Socket, Activity>();
  private sampler: NodeJS.Timeout | undefined;
  private readonly attached = new WeakSet<object>();
  private readonly callsOf = new WeakMap<object, Calls>();
  /** The session http2 made for the connection being accepted (see the file comment). */
  private justMade: Calls | undefined;
  readonly counts: ConnectionCapCounts = { open: 0, shed: 0, refused: 0 };

  constructor(
    readonly maxConnections: number,
    readonly idleShedMs = IDLE_SHED_MS,
  ) {}

  /**
   * Watches the listening servers of a grpc-js Server (after bindAsync). Returns false when grpc-js's
   * internals are not where expected (the cap is then not enforced).
   */
  attach(grpcServer: object): boolean {
    const servers = listeningServersOf(grpcServer);
    if (servers.length === 0) return false;
    for (const net of servers) {
      if (this.attached.has(net)) continue;
      this.attached.add(net);
      // After http2's own listener (it has made the session): closing the socket ends that too.
      net.on('connection', this.onConnection);
      net.on('session', this.onSession);
      net.on('stream', this.onStream);
      net.on('secureConnection', this.onSecureConnection);
    }
    return true;
  }

  private readonly onSession = (session: object): void => {
    const calls: Calls = { open: 0, lastAt: performance.now() };
    this.callsOf.set(session, calls);
    // Paired only within this 'connection' event: over TLS the session comes later, after its handshake,
    // and must not be taken for the next connection's.
    this.justMade = calls;
    queueMicrotask(() => {
      if (this.justMade === calls) this.justMade = undefined;
    });
  };

  private readonly onStream = (stream: {
    session?: object;
    once(e: 'close', f: () => void): unknown;
  }): void => {
    const calls = stream.session && this.callsOf.get(stream.session);
    if (!calls) return;
    calls.open++;
    calls.lastAt = performance.now();
    stream.once('close', () => {
      calls.open--;
      calls.lastAt = performance.now();
    });
  };

  /** Over TLS: pairs the session http2 just made with the TCP socket under the TLS one. */
  private readonly onSecureConnection = (tlsSocket: { _parent?: unknown }): void => {
    const calls = this.justMade;
    this.justMade = undefined;
    const a = calls && this.sockets.get(tlsSocket._parent as Socket);
    if (a) a.calls = calls;
  };

  private readonly onConnection = (socket: Socket): void => {
    this.sockets.set(socket, { bytes: 0, since: performance.now(), calls: this.justMade });
    this.justMade = undefined;
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.counts.open = this.sockets.size;
      if (this.sockets.size === 0) this.stopSampling();
    });
    if (!this.sampler) {
      this.sampler = setInterval(this.sample, Math.max(1, Math.floor(this.idleShedMs / 4)));
      this.sampler.unref();
    }
    if (this.sockets.size > this.maxConnections) {
      const victim = this.victim(socket);
      if (victim) {
        this.counts.shed++;
        this.sockets.delete(victim);
        victim.destroy();
      } else {
        this.counts.refused++;
        this.sockets.delete(socket);
        socket.destroy();
      }
    }
    this.counts.open = this.sockets.size;
  };

  /** The oldest silent connection, else the one quiet longest if that is idleShedMs or more. */
  private victim(newcomer: Socket): Socket | undefined {
    let quietest: Socket | undefined;
    let quietSince = performance.now() - this.idleShedMs;
    for (const [s, a] of this.sockets) {
      if (s === newcomer) continue;
      if (s.bytesRead === 0) return s;
      // Quiet since: its last call, where the session is known; else its last byte.
      const since = a.calls ? (a.calls.open > 0 ? Number.POSITIVE_INFINITY : a.calls.lastAt) : a.since;
      if ((a.calls !== undefined || s.bytesRead === a.bytes) && since <= quietSince) {
        quietest = s;
        quietSince = since;
      }
    }
    return quietest;
  }

  private readonly sample = (): void => {
    const now = performance.now();
    for (const [s, a] of this.sockets) {
      if (s.bytesRead !== a.bytes) {
        a.bytes = s.bytesRead;
        a.since = now;
      }
    }
  };

  private stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
  }
}
