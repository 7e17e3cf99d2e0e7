// The cache node process (what `gossipcache` / `npm start` runs): groups with their loaders, the
// HTTP front, metrics, createNode, logging and graceful shutdown on SIGTERM/SIGINT.

import type { AddressInfo } from 'node:net';
import { format } from 'node:util';
import { setLogger as setGrpcLogger } from '@grpc/grpc-js';
import { formatHostPort } from '../address.js';
import { mmapThresholdWarning, processAllocatorFacts } from '../allocator.js';
import { createNode, type GossipNode, RING_META } from '../cluster/node.js';
import { GroupRegistry } from '../group.js';
import { VERSION } from '../version.js';
import type { NodeConfig } from './config.js';
import { ringShares } from './dashboard.js';
import { createGroups } from './groups.js';
import { createHttpFront, newFrontCounters } from './http.js';
import { createLogger, type PinoLogger, RateLimitedLog } from './log.js';
import { type RunningMemcachedFront, startMemcachedFronts } from './memcached/start.js';
import { createMetrics } from './metrics.js';
import { startTracing } from './otel.js';

/** Starts a node from a validated configuration; returns when it is serving. Exits on fatal errors. */
export async function runNode(config: NodeConfig): Promise<void> {
  const log = createLogger(config.logLevel, undefined, config.logFormat);
  // grpc-js writes its own lines to stderr ("E No address added out of total 1 resolved" before our fatal
  // line when a port is taken): the process's log takes them instead, one JSON line each, as warnings.
  // Process-wide, so here in the program, never in the library.
  setGrpcLogger({
    error: (...args: unknown[]) => log.warn({ component: 'grpc-js' }, format(...args)),
    info: (...args: unknown[]) => log.info({ component: 'grpc-js' }, format(...args)),
    debug: (...args: unknown[]) => log.debug({ component: 'grpc-js' }, format(...args)),
  });
  try {
    await start(config, log);
  } catch (err) {
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    log.flush?.();
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100).unref();
  }
}

async function start(config: NodeConfig, log: PinoLogger): Promise<void> {
  // First: before anything listens, so it is in the log by the time the node answers.
  const allocatorWarning = mmapThresholdWarning(processAllocatorFacts());
  if (allocatorWarning !== undefined) log.warn(allocatorWarning);
  if (config.unknownEnv.length > 0)
    log.warn(
      { variables: config.unknownEnv },
      `ignored: ${config.unknownEnv.join(', ')} (no such option; gossipcache --help lists them)`,
    );
  // Trace export, if the OTEL_* environment asks for it (otel.ts); registered before any request.
  const tracing = await startTracing(process.env, log, VERSION);
  const registry = new GroupRegistry();
  const origins = createGroups(config, registry);

  let node: GossipNode | undefined;
  let shuttingDown = false;
  const loadErrors = new RateLimitedLog(log);
  const peerErrors = new RateLimitedLog(log);
  const cluster = () =>
    node && {
      self: node.grpcAddr,
      gossipAddr: node.gossipAddr,
      members: node.members().map((m) => ({
        id: m.id,
        addr: m.addr,
        grpcAddr: m.meta.grpcAddr,
        state: m.state,
        incarnation: m.incarnation,
        // The checksum of the ring this member last published (null: not yet, or an older version).
        ringChecksum: m.meta[RING_META] ?? null,
      })),
      ring: node.ringMembers(),
      // Each ring member's share of keys (a fixed sample), for the dashboard.
      shares: ringShares(node.ringMembers()),
      ringSize: node.ringMembers().length,
      ringChecksum: node.ringChecksum(),
      stats: node.membershipStats(),
    };
  // The metrics read the front's counters; the front serves the metrics.
  const counters = newFrontCounters();
  let memcachedFronts: RunningMemcachedFront[] = [];
  const metrics = createMetrics({
    registry,
    front: counters,
    cluster,
    memcached: () => memcachedFronts.map((m) => ({ group: m.group, counters: m.server.counters })),
    grpc: () => node?.grpcStats(),
  });
  const front = createHttpFront({
    registry,
    metrics,
    counters,
    cluster: () => cluster() ?? { members: [], ring: [], ringChecksum: null },
    ready: () => !shuttingDown && node !== undefined && node.isReady(),
    maxConnections: config.httpMaxConnections,
    headersTimeoutMs: config.httpHeadersTimeoutMs,
    requestTimeoutMs: config.httpRequestTimeoutMs,
    keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
    // A value PUT here is held to the same limit as one the origin returns.
    maxValueBytes: config.originMaxBytes,
    onLoadError: (group, key, err) =>
      loadErrors.warn(`${group}:${(err as Error)?.message}`, { group, key, err }, 'load failed'),
  });

  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen(config.httpAddr.port, config.httpAddr.host, () => {
      front.off('error', reject);
      resolve();
    });
  });
  const httpPort = (front.address() as AddressInfo).port;
  memcachedFronts = await startMemcachedFronts(config, registry, VERSION, (group, key, err) =>
    loadErrors.warn(`${group}:${(err as Error)?.message}`, { group, key, err }, 'load failed (memcached)'),
  );

  node = await createNode({
    grpcAddr: formatHostPort(config.grpcAddr),
    gossipAddr: formatHostPort(config.gossipAddr),
    advertiseHost: config.advertiseHost,
    seeds: config.seeds,
    secretKeys: config.secretKeys,
    gossipReceiverBinding: config.gossipReceiverBinding,
    tls: config.tls,
    grpcLimits: config.grpcLimits,
    registry,
    logger: log,
    joinTimeoutMs: config.joinTimeoutMs,
    handoffWindowMs: config.handoffWindowMs,
    handoffPushMs: config.handoffPushMs,
    onPeerRpc: (ms, ok, peer) => {
      metrics.observePeerRpc(peer, ms / 1000, ok);
      if (!ok) peerErrors.warn(peer, { peer, ms }, `request to peer ${peer} failed; loading locally`);
    },
  });

  const tryHost =
    config.httpAddr.host === '0.0.0.0' || config.httpAddr.host === '::' ? '127.0.0.1' : config.httpAddr.host;
  log.info(
    {
      http: `${config.httpAddr.host}:${httpPort}`,
      grpc: node.grpcAddr,
      gossip: node.gossipAddr,
      seeds: config.seeds,
      groups: config.groups.map((g, i) => ({
        name: g.name,
        cacheBytes: g.cacheBytes,
        origin: origins[i].description,
      })),
      gossipEncryption: config.secretKeys.length > 0 ? `${config.secretKeys.length} key(s)` : 'off',
      tls: config.tls ? 'on' : 'off',
      tracing: tracing?.description ?? 'off',
      memcached: memcachedFronts.map((m) => `${m.group} on ${m.addr}`),
    },
    `gossipcache started; try: curl http://${formatHostPort({ host: tryHost, port: httpPort })}/${config.groups[0].name}/Tom`,
  );
  node.ready.then(
    () => log.info({ members: node.members().length, ringChecksum: node.ringChecksum() }, 'ready'),
    (err) => log.error({ err }, 'membership failed to become ready'),
  );

  const shutdown = async (signal: string) => {
    if (shuttingDown) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    shuttingDown = true;
    log.info(
      { signal, inFlight: await connectionsOf(front) },
      'shutting down: leaving the cluster, finishing requests',
    );
    // Stop accepting; idle keep-alive sockets close now, busy ones after their response.
    const drained = new Promise<void>((resolve) => front.close(() => resolve()));
    front.closeIdleConnections();
    // memcached clients keep their connections open: stop accepting, answer what is in flight, then close.
    for (const m of memcachedFronts) {
      m.server.close();
      m.server.drainConnections();
    }
    const deadline = new Promise<'timeout'>((resolve) =>
      setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs).unref(),
    );
    const leaving = node.close({ graceMs: config.shutdownTimeoutMs }).catch((err) => {
      log.warn({ err }, 'leaving the cluster failed');
    });
    const outcome = await Promise.race([drained.then(() => 'drained' as const), deadline]);
    if (outcome === 'timeout') {
      log.warn(
        { timeoutMs: config.shutdownTimeoutMs },
        'in-flight requests did not finish in time; closing them',
      );
      front.closeAllConnections();
    }
    for (const m of memcachedFronts) m.server.closeAllConnections();
    await Promise.race([leaving, deadline]);
    for (const o of origins) o.close();
    for (const g of registry.list()) g.close();
    // The last spans, within a bound: a collector that does not answer must not hold the exit.
    if (tracing) await Promise.race([tracing.shutdown(), new Promise((r) => setTimeout(r, 2000).unref())]);
    log.info({ outcome }, 'stopped');
    log.flush?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

function connectionsOf(server: import('node:http').Server): Promise<number> {
  return new Promise((resolve) => server.getConnections((err, n) => resolve(err ? -1 : n)));
}
