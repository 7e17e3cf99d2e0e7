// The gRPC port's connection cap. Each client connection costs a file descriptor (and nghttp2 session
// state); unbounded, a client opening connections and sending nothing runs the process out of fds, and
// then the HTTP front, gossip and origin sockets fail too. So the port holds at most maxConnections.
// At the cap a new connection is not simply refused: a connection that has sent nothing at all since it
// connected (not even HTTP/2's preface: how an fd-exhaustion attack looks; a real client's first bytes
// leave with its connect) is closed instead, the oldest first, so holding idle sockets cannot lock
// peers out. Only when every connection has spoken is the new one closed.
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

export class ConnectionCap {
  /** Open connections, oldest first (a Set keeps insertion order). */
  private readonly sockets = new Set<Socket>();
  private readonly attached = new WeakSet<object>();
  readonly counts: ConnectionCapCounts = { open: 0, shed: 0, refused: 0 };

  constructor(readonly maxConnections: number) {}

  /**
   * Watches the listening servers of a grpc-js Server (after bindAsync). Returns false when grpc-js's
   * internals are not where expected (the cap is then not enforced).
   */
  attach(grpcServer: object): boolean {
    const servers = (grpcServer as { http2Servers?: unknown }).http2Servers;
    if (!(servers instanceof Map)) return false;
    let found = false;
    for (const s of servers.keys()) {
      const net = s as Partial<NetServer>;
      if (typeof net.on !== 'function' || typeof net.listening !== 'boolean') continue;
      found = true;
      if (this.attached.has(net)) continue;
      this.attached.add(net);
      // After http2's own listener (it has made the session): closing the socket ends that too.
      net.on('connection', this.onConnection);
    }
    return found;
  }

  private readonly onConnection = (socket: Socket): void => {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.counts.open = this.sockets.size;
    });
    if (this.sockets.size > this.maxConnections) {
      let victim: Socket | undefined;
      for (const s of this.sockets) {
        if (s !== socket && s.bytesRead === 0) {
          victim = s;
          break;
        }
      }
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
}
