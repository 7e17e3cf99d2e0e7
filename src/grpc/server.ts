// The node's gRPC server: groupcache's unary Get (outside clients and groupcache compatibility), the
// peer Fetch stream, Remove and Set, plus grpc.health.v1 and server reflection so standard tooling and
// load balancers work.

import {
  Metadata,
  Server,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { ServedGroup, ServedRegistry } from '../group.js';
import type { Logger } from '../logger.js';
import type { EntryResult } from '../peers.js';
import { incomingTraceContext, keyAttributes, SPAN, SpanKind, traced, traceMetadata } from '../tracing.js';
import type { FetchReply, GetResponse, KeyRequest, PushRequest, PushResponse, SetRequest } from './codec.js';
import { ConnectionCap } from './connections.js';
import {
  Admission,
  checkLimits,
  type GrpcLimits,
  MAX_REQUEST_MESSAGE_BYTES,
  UNARY_CALL_COST,
} from './limits.js';
import {
  GOSSIPCACHE_SERVICE,
  GROUPCACHE_SERVICE,
  gossipCacheService,
  groupCacheService,
  loadPackageDefinition,
} from './proto.js';
import { Receiving } from './receiving.js';
import { checkMaxMessageBytes, entryOf, messageLimitOptions, PEER_METADATA, wireTtl } from './serve.js';
import { StallSweeper } from './stall.js';
import { emptyKey, type Failure, failureOf, LOAD_ERROR_METADATA, tooLarge, unknownGroup } from './status.js';
import { FetchSession } from './stream.js';
import { serverCredentials, type TlsFiles } from './tls.js';
import { UnaryLoad } from './unary.js';
import { UnaryReplies } from './unary-replies.js';

export interface GrpcServerOptions {
  /** Every group registered here is served; looked up per request. */
  registry: ServedRegistry;
  /** Unset = plaintext. With `caFile`: mutual TLS (clients must present a certificate from that CA). */
  tls?: TlsFiles;
  /** Largest value served; default 64 MiB. Bigger → RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
  /**
   * What clients can make this node hold: requests per Fetch stream, bytes per connection and in
   * total, streams per connection. Defaults in limits.ts (DEFAULT_GRPC_LIMITS), documented in
   * docs/security.md.
   */
  limits?: Partial<GrpcLimits>;
  logger?: Logger;
  /**
   * Called once per answered request (each stream request counts alone) with its method, status
   * code and time spent in this node in ms — for request counters and latency histograms.
   */
  onServed?: (method: 'Get' | 'Fetch' | 'Remove' | 'Set' | 'Push', code: status, ms: number) => void;
}

export interface GrpcServer {
  /** Bind `host:port` (port 0 = any free port) and start serving. Resolves with the bound port. */
  listen(addr: string): Promise<number>;
  /**
   * Stop: report NOT_SERVING, refuse new peer requests, let calls in flight finish for up to
   * `graceMs` (default 5000), then cut the rest. Resolves when the port is released.
   */
  close(graceMs?: number): Promise<void>;
  /** What grpc.health.v1 reports for this node and its services (SERVING after listen). */
  setServing(serving: boolean): void;
  /** What clients make this node hold now, and the Fetch streams reset because clients did not read. */
  stats(): GrpcServerStats;
}

export interface GrpcServerStats {
  /**
   * Bytes held for clients (limits.ts): requests in flight, replies not yet sent, and request messages
   * still arriving (receiving.ts).
   */
  heldBytes: number;
  /** Fetch streams open. */
  fetchStreams: number;
  /**
   * Streams reset after stallTimeoutMs without progress (since start): Fetch streams and unary replies
   * the client does not read, and request messages the client does not finish sending.
   */
  stalledStreams: number;
  /** The same, reset sooner because a byte budget was nearly spent or passed (since start). */
  shedStreams: number;
  /** Client connections open on the gRPC port. */
  connections: number;
  /** Connections closed at the connection cap (limits.maxConnections): silent ones shed, new ones refused. */
  connectionsShed: number;
  connectionsRefused: number;
}

const HEALTH_SERVICES = ['', GROUPCACHE_SERVICE, GOSSIPCACHE_SERVICE];

/** A Set's failure: a value over the cache size or a bad ttl is the caller's to fix, not this node's. */
function setFailure(err: unknown): Failure {
  const e = err as Error;
  if (e?.name === 'RangeError' || e?.name === 'TypeError') {
    return { code: status.INVALID_ARGUMENT, message: e.message };
  }
  return failureOf(err);
}

function busy(a: Admission): Failure {
  return {
    code: status.RESOURCE_EXHAUSTED,
    message:
      `node is busy: requests held for this connection or all clients are at their limit ` +
      `(${a.limits.maxConnectionBytes} / ${a.limits.maxHeldBytes} bytes); retry later`,
  };
}

export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const { registry, logger, onServed } = opts;
  const fetchServed = onServed && ((code: status, ms: number) => onServed('Fetch', code, ms));
  const maxMessageBytes = checkMaxMessageBytes(opts.maxMessageBytes);
  const limits = checkLimits(opts.limits);
  const admission = new Admission(limits);
  const connectionCap = new ConnectionCap(limits.maxConnections);
  const receiving = new Receiving(limits);
  const server = new Server({
    ...messageLimitOptions(maxMessageBytes),
    // Clients send only requests (keys): a message bigger than this is refused by grpc-js before it is
    // buffered (RESOURCE_EXHAUSTED), so one message cannot make us hold more.
    'grpc.max_receive_message_length': MAX_REQUEST_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    // Peers keep one stream open for hours; let their keepalive pings through.
    'grpc.keepalive_permit_without_calls': 1,
  });
  const health = new HealthImplementation();
  const sessions = new Set<FetchSession>();
  // Streams whose client does not read their replies are reset (stall.ts): one timer, all sessions.
  const unaryReplies = new UnaryReplies(admission);
  const stalls = new StallSweeper(sessions, unaryReplies, admission, limits.stallTimeoutMs, (stalled, shed) =>
    logger?.warn(
      { stalled, shed, heldBytes: admission.held },
      'grpc: reset streams whose client does not read its replies',
    ),
  );
  let closed = false;

  const setServing = (serving: boolean): void => {
    const s: ServingStatus = serving && !closed ? 'SERVING' : 'NOT_SERVING';
    for (const name of HEALTH_SERVICES) health.setStatus(name, s);
  };
  setServing(false);

  const report = (f: Failure, group: string, key: string): void => {
    logger?.debug(
      { code: status[f.code], group, key: key.slice(0, 200), err: f.message },
      'grpc: request failed',
    );
  };

  /**
   * Remove and Set: checks the request (UTF-8, group, key), then changes the group; what that throws
   * or rejects with fails as `failure` says. The reply is empty. A peer's request (metadata
   * `gossipcache-peer: 1`, what GrpcPeer sends) changes this node only (`local`): the peer runs
   * group.remove / group.set itself and asks each node once, so it is never forwarded again. An outside
   * client's request gets the cluster-wide semantics (`cluster`: group.remove / group.set, which store
   * at the key's owner and drop every other node's copy), charged to its connection while it waits
   * for the other nodes like a unary Get.
   */
  const change = (
    method: 'Remove' | 'Set',
    call: ServerUnaryCall<KeyRequest | SetRequest, Record<string, never>>,
    callback: sendUnaryData<object>,
    failure: (err: unknown) => Failure,
    local: (group: ServedGroup, key: string) => Failure | undefined,
    cluster: (group: ServedGroup, key: string) => Promise<void>,
  ) => {
    const { group: name, key, invalid } = call.request;
    const start = onServed ? performance.now() : 0;
    const reply = (f: Failure | undefined): void => {
      onServed?.(method, f?.code ?? status.OK, performance.now() - start);
      if (f) report(f, name, key);
      callback(f ? { code: f.code, details: f.message } : null, {});
    };
    const group = registry.get(name);
    if (invalid !== undefined) return reply({ code: status.INVALID_ARGUMENT, message: invalid });
    if (!group) return reply(unknownGroup(name));
    if (!key) return reply(emptyKey());
    if (call.metadata.get(PEER_METADATA).length > 0) {
      let f: Failure | undefined;
      try {
        f = local(group, key);
      } catch (err) {
        f = failure(err);
      }
      return reply(f);
    }
    const conn = admission.open(call.getPeer());
    if (!admission.hasRoom(conn)) {
      admission.close(conn);
      return reply(busy(admission));
    }
    const value = (call.request as Partial<SetRequest>).value;
    const cost = UNARY_CALL_COST + key.length + name.length + (value?.byteLength ?? 0);
    admission.charge(conn, cost);
    const settle = (f: Failure | undefined): void => {
      admission.release(conn, cost);
      admission.close(conn);
      reply(f);
    };
    let done: Promise<void>;
    try {
      done = cluster(group, key);
    } catch (err) {
      done = Promise.reject(err);
    }
    done.then(
      () => settle(undefined),
      (err: unknown) => settle(failure(err)),
    );
  };

  server.addService(groupCacheService, {
    Get(call: ServerUnaryCall<KeyRequest, GetResponse>, callback: sendUnaryData<GetResponse>) {
      const { group: name, key, invalid } = call.request;
      const start = onServed ? performance.now() : 0;
      const reply = (f: Failure) => {
        report(f, name, key);
        onServed?.('Get', f.code, performance.now() - start);
        // This node's load failed: a trailer says so, so a peer does not load the key itself.
        let metadata: Metadata | undefined;
        if (f.loadError) {
          metadata = new Metadata();
          metadata.set(LOAD_ERROR_METADATA, f.loadError);
        }
        callback({ code: f.code, details: f.message, metadata });
      };
      if (invalid !== undefined) return reply({ code: status.INVALID_ARGUMENT, message: invalid });
      const group = registry.get(name);
      if (!group) return reply(unknownGroup(name));
      if (!key) return reply(emptyKey());
      const conn = admission.open(call.getPeer());
      if (!admission.hasRoom(conn)) {
        admission.close(conn);
        return reply(busy(admission));
      }
      const cost = UNARY_CALL_COST + key.length + name.length;
      admission.charge(conn, cost);
      const load = new UnaryLoad(call, call.metadata.get(PEER_METADATA).length > 0);
      traced(
        SPAN.peerServe,
        SpanKind.SERVER,
        () => ({ ...keyAttributes(name, key), 'rpc.method': 'Get' }),
        () => entryOf(group, key, load),
        incomingTraceContext(traceMetadata(call.metadata)),
      ).then(
        (entry: EntryResult) => {
          load.done();
          if (entry.value.byteLength > maxMessageBytes) {
            admission.release(conn, cost);
            admission.close(conn);
            return reply(tooLarge(name, key, entry.value.byteLength, maxMessageBytes));
          }
          // The reply stays charged until HTTP/2 has sent it (its stream closes): a client that does
          // not read would otherwise keep values in memory uncounted (unary-replies.ts).
          const value = entry.value.byteLength;
          admission.charge(conn, value);
          if (unaryReplies.hold(call, conn, cost + value)) stalls.start();
          else {
            admission.release(conn, cost + value);
            admission.close(conn);
          }
          const ttl = wireTtl(entry.ttlMs) || undefined;
          onServed?.('Get', status.OK, performance.now() - start);
          callback(null, { value: entry.value, minuteQps: entry.minuteQps, ttlMs: ttl });
        },
        (err: unknown) => {
          load.done();
          admission.release(conn, cost);
          admission.close(conn);
          reply(failureOf(err));
        },
      );
    },
  });

  // Fetch messages reach the session undecoded: it checks their size (MAX_BATCH_REQUESTS) and decodes
  // them a slice at a time, so a large batch cannot hold the event loop in grpc-js's deserializer.
  const fetchService = {
    ...gossipCacheService,
    Fetch: { ...gossipCacheService.Fetch, requestDeserialize: (buf: Buffer) => buf },
  };
  server.addService(fetchService, {
    Fetch(call: ServerDuplexStream<Buffer, FetchReply[]>) {
      const session = new FetchSession(call, {
        registry,
        maxMessageBytes,
        admission,
        maxStreamRequests: limits.maxStreamRequests,
        maxFetchStreams: limits.maxFetchStreams,
        onClose: (s) => sessions.delete(s),
        onError: report,
        onServed: fetchServed,
      });
      // Refused at once (too many Fetch streams on its connection): nothing to keep.
      if (session.closed) return;
      sessions.add(session);
      stalls.start();
      if (closed) session.shutdown();
    },
    Remove(call: ServerUnaryCall<KeyRequest, Record<string, never>>, callback: sendUnaryData<object>) {
      change(
        'Remove',
        call,
        callback,
        failureOf,
        (group, key) => {
          group.server.removeLocal(key);
          return undefined;
        },
        (group, key) => group.remove(key),
      );
    },
    Set(call: ServerUnaryCall<SetRequest, Record<string, never>>, callback: sendUnaryData<object>) {
      const { value, ttlMs } = call.request;
      const opts = { ttlMs: ttlMs > 0 ? ttlMs : undefined };
      change(
        'Set',
        call,
        callback,
        setFailure,
        (group, key) => {
          const served = group.server;
          if (typeof served.setLocal !== 'function') {
            return {
              code: status.UNIMPLEMENTED,
              message: `group ${JSON.stringify(call.request.group)} cannot store values`,
            };
          }
          served.setLocal(key, value, opts);
          return undefined;
        },
        (group, key) => group.set(key, value, opts),
      );
    },
    Push(call: ServerUnaryCall<PushRequest, PushResponse>, callback: sendUnaryData<PushResponse>) {
      const { group: name, entries } = call.request;
      const group = registry.get(name);
      if (!group) {
        const f = unknownGroup(name);
        onServed?.('Push', f.code, 0);
        report(f, name, '');
        return callback({ code: f.code, details: f.message });
      }
      let kept = 0;
      try {
        // A refusing node (closing, or not built on Group) keeps nothing; the sender just moves on.
        if (!closed) kept = group.server.acceptHandoff?.(entries) ?? 0;
      } catch (err) {
        const f = failureOf(err);
        onServed?.('Push', f.code, 0);
        return callback({ code: f.code, details: f.message });
      }
      onServed?.('Push', status.OK, 0);
      callback(null, { kept });
    },
  });

  health.addToServer(server);
  new ReflectionService(loadPackageDefinition()).addToServer(server);

  return {
    listen(addr: string): Promise<number> {
      return new Promise((resolve, reject) => {
        server.bindAsync(addr, serverCredentials(opts.tls), (err, port) => {
          if (err) return reject(new Error(`gRPC server cannot listen on ${addr}: ${err.message}`));
          if (!receiving.attach(server)) {
            logger?.warn(
              { maxHeldBytes: limits.maxHeldBytes },
              'grpc: cannot watch incoming messages (grpc-js internals changed); their bytes are not bounded',
            );
          }
          if (!connectionCap.attach(server)) {
            logger?.warn(
              { maxConnections: limits.maxConnections },
              'grpc: cannot watch connections (grpc-js internals changed); the connection cap is not enforced',
            );
          }
          setServing(true);
          resolve(port);
        });
      });
    },
    close(graceMs = 5000): Promise<void> {
      closed = true;
      setServing(false);
      for (const s of sessions) s.shutdown();
      return new Promise((resolve) => {
        const done = () => {
          stalls.stop();
          receiving.stop();
          resolve();
        };
        if (graceMs <= 0) {
          server.forceShutdown();
          return done();
        }
        // The stall sweep keeps running meanwhile: a client that does not read cannot hold the close up.
        const timer = setTimeout(() => {
          logger?.warn({ graceMs }, 'grpc: calls still running after the grace period; cutting them');
          server.forceShutdown();
          done();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          done();
        });
      });
    },
    setServing,
    stats: () => ({
      heldBytes: admission.held + receiving.held,
      fetchStreams: sessions.size,
      stalledStreams: stalls.counts.stalled + receiving.counts.stalled,
      shedStreams: stalls.counts.shed + receiving.counts.shed,
      connections: connectionCap.counts.open,
      connectionsShed: connectionCap.counts.shed,
      connectionsRefused: connectionCap.counts.refused,
    }),
  };
}
