// Several nodes in one test process, each with its own GroupRegistry, gRPC server on 127.0.0.1:0 and
// RingPeerPicker — the smallest real cluster the gRPC tests need. Also what tests build the other end
// from: a hand-made grpc-js server (a scripted fake peer) bound to 127.0.0.1, and raw HTTP/2 gRPC calls
// that never read their replies.

import http2 from 'node:http2';
import { type Server, ServerCredentials } from '@grpc/grpc-js';
import { type Getter, Group, GroupRegistry } from '../../src/group.js';
import { createGrpcServer, type GrpcServer, RingPeerPicker, type TlsFiles } from '../../src/grpc/index.js';

export interface TestNode {
  addr: string;
  port: number;
  registry: GroupRegistry;
  group: Group;
  server: GrpcServer;
  picker: RingPeerPicker;
  /** Getter calls per key on this node. */
  loads: Map<string, number>;
}

export interface ClusterOptions {
  nodes: number;
  /** Getter of every node (default: value = `${key}@${addr}`); counted in node.loads either way. */
  getter?: (node: { addr: string }) => Getter;
  groupName?: string;
  /** One set of files for all nodes, or a function giving each node its own. */
  tls?: TlsFiles | (() => TlsFiles);
  maxMessageBytes?: number;
  timeoutMs?: number;
  getterTimeoutMs?: number;
  peerTimeoutMs?: number;
  onPeerRpc?: (ms: number, ok: boolean, peer: string) => void;
}

export interface Cluster {
  nodes: TestNode[];
  addrs: string[];
  close(): Promise<void>;
}

export async function startNode(opts: ClusterOptions, port = 0): Promise<TestNode> {
  const registry = new GroupRegistry();
  const loads = new Map<string, number>();
  const tls = typeof opts.tls === 'function' ? opts.tls() : opts.tls;
  const server = createGrpcServer({ registry, tls, maxMessageBytes: opts.maxMessageBytes });
  const bound = await server.listen(`127.0.0.1:${port}`);
  const addr = `127.0.0.1:${bound}`;
  const inner: Getter = opts.getter?.({ addr }) ?? (async (key) => `${key}@${addr}`);
  const group = new Group({
    name: opts.groupName ?? 'g',
    cacheBytes: 1 << 24,
    registry,
    getterTimeoutMs: opts.getterTimeoutMs,
    peerTimeoutMs: opts.peerTimeoutMs,
    getter: (key, ctx) => {
      loads.set(key, (loads.get(key) ?? 0) + 1);
      return inner(key, ctx);
    },
  });
  const picker = new RingPeerPicker({
    self: addr,
    tls,
    timeoutMs: opts.timeoutMs,
    maxMessageBytes: opts.maxMessageBytes,
    onPeerRpc: opts.onPeerRpc,
  });
  registry.setPeerPicker(picker);
  return { addr, port: bound, registry, group, server, picker, loads };
}

export async function startCluster(opts: ClusterOptions): Promise<Cluster> {
  const nodes: TestNode[] = [];
  for (let i = 0; i < opts.nodes; i++) nodes.push(await startNode(opts));
  const addrs = nodes.map((n) => n.addr);
  for (const n of nodes) n.picker.set(addrs);
  return {
    nodes,
    addrs,
    async close() {
      for (const n of nodes) {
        n.picker.close();
        n.group.close();
      }
      await Promise.all(nodes.map((n) => n.server.close(0)));
    },
  };
}

/** Total getter calls for `key` across the cluster. */
export function totalLoads(c: Cluster, key: string): number {
  return c.nodes.reduce((sum, n) => sum + (n.loads.get(key) ?? 0), 0);
}

/** A key that `owner` owns as `from` sees the ring (`from` may be `owner` itself). */
export function keyOwnedBy(from: TestNode, owner: TestNode, prefix = 'key'): string {
  for (let i = 0; i < 100_000; i++) {
    const key = `${prefix}-${i}`;
    const p = from.picker.pickPeer(key);
    if ((p === null && owner === from) || p?.id === owner.addr) return key;
  }
  throw new Error('no key found');
}

/** Binds a hand-made grpc-js server (a fake peer) to 127.0.0.1 on a free port, insecure; its port. */
export function bindLocal(server: Server): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
}

/** A raw HTTP/2 connection to the gRPC server at `addr` (its errors swallowed: the caller closes it). */
export function rawSession(addr: string): http2.ClientHttp2Session {
  const session = http2.connect(`http://${addr}`);
  session.on('error', () => {});
  return session;
}

/**
 * A gRPC call to `path` (FETCH_PATH, GET_PATH) on a raw session whose replies are never read: the
 * stream is paused, so it never opens its flow-control window (grpc-js clients would read ahead into
 * their own memory). Write gRPC-framed messages to it (`grpcFrame`); its errors are swallowed.
 */
export function unreadCall(session: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  const stream = session.request({
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  stream.pause();
  return stream;
}

/** gRPC framing of one message: no compression, 4-byte length, the message. */
export function grpcFrame(body: Buffer): Buffer {
  const msg = Buffer.alloc(5 + body.length);
  msg.writeUInt32BE(body.length, 1);
  body.copy(msg, 5);
  return msg;
}
