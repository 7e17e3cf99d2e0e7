// Configuration of a cache node: environment variables, each also a CLI flag (the flag wins).
// One table (OPTIONS) drives parsing, `--help` and the table in docs/node.md, so they cannot drift apart.
// Every error names the variable (or flag) and the expected form: the CLI prints it as one line
// and exits with code 2.

import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { AddressError, formatHostPort, type HostPort, isHost, parseHostPort } from '../address.js';
import { MAX_TTL_MS } from '../cache.js';
import { DEFAULT_GRPC_LIMITS, type GrpcLimits } from '../grpc/limits.js';
import { parseSecretKeys, RECEIVER_BINDINGS, type ReceiverBinding } from '../membership/keyring.js';
import { defaultGrpcMaxConnections, defaultMemcachedMaxConnections, readFdLimit } from './connections.js';
import { parseOriginTemplate } from './origin-url.js';

/** PEM files for gRPC TLS between peers. */
export interface TlsPaths {
  certFile: string;
  keyFile: string;
  /** CA bundle to verify peers with; absent = the system roots. */
  caFile?: string;
  /** The name peers' certificates carry when it is not the host they are dialled at (pod IPs). */
  serverName?: string;
}

/** One cache group served by the node. */
export interface GroupConfig {
  name: string;
  cacheBytes: number;
  /** Loader spec: `demo[:<delay>]` or an `http(s)://…{key}…` URL template. */
  origin: string;
  /** A memcached front of its own for this group (groups file only; see docs/memcached.md). */
  memcachedAddr?: HostPort;
  /**
   * Default stale-while-revalidate window (ms, 0 = off) of values whose origin names none: the group's
   * `staleWhileRevalidateMs`. An origin's own `stale-while-revalidate=N` (or `must-revalidate` & co,
   * which turn it off) wins. Costs memory: an expired value stays cached until its window ends.
   */
  staleWhileRevalidateMs: number;
  /** Default stale-if-error window (ms, 0 = off), likewise: the group's `staleIfErrorMs`. */
  staleIfErrorMs: number;
}

/** The memcached text-protocol front (docs/memcached.md); absent = off. */
export interface MemcachedConfig {
  /** Serves the node's default group (the first group). */
  addr?: HostPort;
  maxConnections: number;
  idleTimeoutMs: number;
}

/** The whole node configuration, validated. */
export interface NodeConfig {
  httpAddr: HostPort;
  /** Cap on HTTP client connections; undefined = derived from the fd limit (connections.ts). */
  httpMaxConnections?: number;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpKeepAliveTimeoutMs: number;
  grpcAddr: HostPort;
  gossipAddr: HostPort;
  /** The host peers use to reach this node (gRPC and gossip). */
  advertiseHost: string;
  /** Seed nodes as `host:port` (a missing port took the local gossip port); DNS names allowed. */
  seeds: string[];
  groups: GroupConfig[];
  /**
   * GOSSIPCACHE_* variables in the environment that name no option: most likely typos, which would
   * otherwise pass silently. Logged as a warning at start. Kubernetes' service links
   * (GOSSIPCACHE_SERVICE_HOST, GOSSIPCACHE_PORT_8080_TCP, … for a Service named gossipcache) are not listed.
   */
  unknownEnv: string[];
  /** Gossip encryption keys (the first encrypts); empty = plaintext. Never logged. */
  secretKeys: Buffer[];
  /** Receiver binding of encrypted gossip: 'require' (default), or 'off'/'send' during a rolling upgrade. */
  gossipReceiverBinding: ReceiverBinding;
  tls?: TlsPaths;
  memcached: MemcachedConfig;
  /** What gRPC clients can make this node hold (src/grpc/limits.ts). */
  grpcLimits: GrpcLimits;
  originTimeoutMs: number;
  originMaxBytes: number;
  /** Most connections to each HTTP origin; loads beyond it queue (inside originTimeoutMs). */
  originConnections: number;
  joinTimeoutMs: number;
  shutdownTimeoutMs: number;
  /** Longest a hot-cache mirror is served before it is fetched again (0 = no bound). */
  hotMaxAgeMs: number;
  /** How long after a membership change owners ask previous holders before the origin (0 = never). */
  handoffWindowMs: number;
  /** On SIGTERM, how long the node spends pushing its entries to their next owners (0 = not at all). */
  handoffPushMs: number;
  logLevel: string;
  /** `auto` = pretty when stdout is a terminal, JSON lines otherwise. */
  logFormat: 'auto' | 'json' | 'pretty';
}

/** A configuration value is wrong. `source` is the variable or flag that carried it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly source: string,
    message: string,
  ) {
    super(`${source}: ${message}`);
  }
}

/**
 * 64 connections per origin: enough to keep a 10 ms origin busy at ~6 000 loads/s (misses only; hits
 * never reach it), few enough that every group's pool together stays far below the fd limit the HTTP
 * front budgets for (see http.ts defaultMaxConnections).
 */
export const DEFAULT_ORIGIN_CONNECTIONS = 64;

interface OptionSpec {
  key: keyof RawConfig;
  env: string;
  flag: string;
  default: string;
  /** What the value means and which forms are accepted (help text and the docs/node.md table). */
  doc: string;
}

type RawConfig = {
  httpAddr: string;
  httpMaxConnections: string;
  httpHeadersTimeout: string;
  httpRequestTimeout: string;
  httpKeepAliveTimeout: string;
  grpcAddr: string;
  gossipAddr: string;
  advertiseHost: string;
  seeds: string;
  group: string;
  cacheBytes: string;
  origin: string;
  staleWhileRevalidate: string;
  staleIfError: string;
  originTimeout: string;
  originMaxBytes: string;
  originConnections: string;
  secretKey: string;
  gossipReceiverBinding: string;
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  tlsServerName: string;
  grpcMaxStreams: string;
  grpcMaxStreamRequests: string;
  grpcMaxConnectionBytes: string;
  grpcMaxHeldBytes: string;
  grpcMaxFetchStreams: string;
  grpcMaxConnections: string;
  grpcStallTimeout: string;
  config: string;
  memcachedAddr: string;
  memcachedMaxConnections: string;
  memcachedIdleTimeout: string;
  joinTimeout: string;
  shutdownTimeout: string;
  hotMaxAge: string;
  handoffWindow: string;
  handoffPush: string;
  logLevel: string;
  logFormat: string;
};

/** Every setting, in the order of the docs/node.md table. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    key: 'httpAddr',
    env: 'GOSSIPCACHE_HTTP_ADDR',
    flag: '--http-addr',
    default: '0.0.0.0:8080',
    doc: 'HTTP front listen address `host:port`',
  },
  {
    key: 'httpMaxConnections',
    env: 'GOSSIPCACHE_HTTP_MAX_CONNECTIONS',
    flag: '--http-max-connections',
    default: '',
    doc: 'most HTTP client connections held at once; at the cap the longest-idle connection is closed for a new one, and 16 more are kept for /healthz & co when all are busy; empty = half the open-file limit beyond 256, between 64 and 1024',
  },
  {
    key: 'httpHeadersTimeout',
    env: 'GOSSIPCACHE_HTTP_HEADERS_TIMEOUT',
    flag: '--http-headers-timeout',
    default: '10s',
    doc: 'a request head (request line and headers) must arrive within this, else 408 and the connection closes',
  },
  {
    key: 'httpRequestTimeout',
    env: 'GOSSIPCACHE_HTTP_REQUEST_TIMEOUT',
    flag: '--http-request-timeout',
    default: '30s',
    doc: 'a whole request must arrive within this (at least the headers timeout); answering it may take longer, but a response the client does not read for this long is closed',
  },
  {
    key: 'httpKeepAliveTimeout',
    env: 'GOSSIPCACHE_HTTP_KEEPALIVE_TIMEOUT',
    flag: '--http-keepalive-timeout',
    default: '5s',
    doc: 'an idle keep-alive HTTP connection is closed after this',
  },
  {
    key: 'grpcAddr',
    env: 'GOSSIPCACHE_GRPC_ADDR',
    flag: '--grpc-addr',
    default: '0.0.0.0:9090',
    doc: 'gRPC (peer) listen address `host:port`',
  },
  {
    key: 'gossipAddr',
    env: 'GOSSIPCACHE_GOSSIP_ADDR',
    flag: '--gossip-addr',
    default: '0.0.0.0:7946',
    doc: 'SWIM gossip listen address `host:port` (UDP and TCP)',
  },
  {
    key: 'advertiseHost',
    env: 'GOSSIPCACHE_ADVERTISE_HOST',
    flag: '--advertise-host',
    default: '',
    doc: 'host peers use to reach this node; default: the gRPC bind host if it is specific, else the first non-internal IPv4, else 127.0.0.1',
  },
  {
    key: 'seeds',
    env: 'GOSSIPCACHE_SEEDS',
    flag: '--seeds',
    default: '',
    doc: 'comma-separated `host[:port]` of nodes to join (port defaults to the local gossip port; DNS names resolving to several nodes are fine); empty = start a new cluster',
  },
  {
    key: 'group',
    env: 'GOSSIPCACHE_GROUP',
    flag: '--group',
    default: 'default',
    doc: 'name of the cache group served at `/<group>/<key>`',
  },
  {
    key: 'cacheBytes',
    env: 'GOSSIPCACHE_CACHE_BYTES',
    flag: '--cache-bytes',
    default: '64MiB',
    doc: 'cache size (main + hot) of the group: bytes, or `512KiB`, `64MiB`, `1GiB`',
  },
  {
    key: 'origin',
    env: 'GOSSIPCACHE_ORIGIN',
    flag: '--origin',
    default: 'demo:400ms',
    doc: 'the loader: `demo[:<delay>]` (returns `Value of <key>` after the delay) or an `http(s)://…{key}…` URL template',
  },
  {
    key: 'staleWhileRevalidate',
    env: 'GOSSIPCACHE_STALE_WHILE_REVALIDATE',
    flag: '--stale-while-revalidate',
    default: '0',
    doc: "default stale-while-revalidate window (RFC 5861) of origin values that expire and name none (and of PUT values): for this long after expiry a get answers the stale value at once and refreshes it in the background; the origin's `stale-while-revalidate=N`, `must-revalidate`, `no-cache` win; an expired value stays cached (in the cache size) until its window ends; at most a year; `0` = off; in a groups file, per group as `staleWhileRevalidate`",
  },
  {
    key: 'staleIfError',
    env: 'GOSSIPCACHE_STALE_IF_ERROR',
    flag: '--stale-if-error',
    default: '0',
    doc: "default stale-if-error window (RFC 5861), likewise: for this long after expiry a load that fails answers the stale value instead; the origin's `stale-if-error=N` wins; `0` = off; in a groups file, per group as `staleIfError`",
  },
  {
    key: 'originTimeout',
    env: 'GOSSIPCACHE_ORIGIN_TIMEOUT',
    flag: '--origin-timeout',
    default: '5s',
    doc: 'HTTP origin timeout per load (`250ms`, `5s`)',
  },
  {
    key: 'originMaxBytes',
    env: 'GOSSIPCACHE_ORIGIN_MAX_BYTES',
    flag: '--origin-max-bytes',
    default: '8MiB',
    doc: 'largest value the HTTP origin may return',
  },
  {
    key: 'originConnections',
    env: 'GOSSIPCACHE_ORIGIN_CONNECTIONS',
    flag: '--origin-connections',
    default: String(DEFAULT_ORIGIN_CONNECTIONS),
    doc: 'most connections open to each HTTP origin; loads beyond them wait for one (within the origin timeout), so a burst of misses cannot open a socket per key',
  },
  {
    key: 'secretKey',
    env: 'GOSSIPCACHE_SECRET_KEY',
    flag: '--secret-key',
    default: '',
    doc: 'gossip encryption key(s): 32 bytes as base64 or hex (`openssl rand -base64 32`); comma-separated for rotation (the first encrypts)',
  },
  {
    key: 'gossipReceiverBinding',
    env: 'GOSSIPCACHE_GOSSIP_RECEIVER_BINDING',
    flag: '--gossip-receiver-binding',
    default: 'require',
    doc: 'encrypted gossip bound to its receiver: `require`; for a rolling upgrade from a build without it, first `off` (send unbound, accept both), then `send`, then `require` (docs/membership-ops.md)',
  },
  {
    key: 'tlsCert',
    env: 'GOSSIPCACHE_TLS_CERT',
    flag: '--tls-cert',
    default: '',
    doc: 'PEM certificate for gRPC TLS (with `GOSSIPCACHE_TLS_KEY`)',
  },
  {
    key: 'tlsKey',
    env: 'GOSSIPCACHE_TLS_KEY',
    flag: '--tls-key',
    default: '',
    doc: 'PEM private key for gRPC TLS',
  },
  {
    key: 'tlsCa',
    env: 'GOSSIPCACHE_TLS_CA',
    flag: '--tls-ca',
    default: '',
    doc: 'PEM CA bundle: peers are verified against it and must present a certificate it signed (mutual TLS); empty = system roots, no client certificates',
  },
  {
    key: 'tlsServerName',
    env: 'GOSSIPCACHE_TLS_SERVER_NAME',
    flag: '--tls-server-name',
    default: '',
    doc: 'the name every peer certificate carries (DNS SAN) when peers are dialled at addresses no certificate can list, e.g. pod IPs; empty = the advertised host',
  },
  {
    key: 'grpcMaxStreams',
    env: 'GOSSIPCACHE_GRPC_MAX_STREAMS',
    flag: '--grpc-max-streams',
    default: String(DEFAULT_GRPC_LIMITS.maxConcurrentStreams),
    doc: 'concurrent gRPC calls (HTTP/2 streams) per client connection; more wait at the client',
  },
  {
    key: 'grpcMaxStreamRequests',
    env: 'GOSSIPCACHE_GRPC_MAX_STREAM_REQUESTS',
    flag: '--grpc-max-stream-requests',
    default: String(DEFAULT_GRPC_LIMITS.maxStreamRequests),
    doc: 'requests one peer Fetch stream may have in flight (or answered but unread); past it the node stops reading the stream',
  },
  {
    key: 'grpcMaxConnectionBytes',
    env: 'GOSSIPCACHE_GRPC_MAX_CONNECTION_BYTES',
    flag: '--grpc-max-connection-bytes',
    default: '16MiB',
    doc: 'memory one gRPC client connection may make the node hold (requests in flight, replies not yet sent); past it its streams stop being read and its unary Gets get RESOURCE_EXHAUSTED',
  },
  {
    key: 'grpcMaxHeldBytes',
    env: 'GOSSIPCACHE_GRPC_MAX_HELD_BYTES',
    flag: '--grpc-max-held-bytes',
    default: '256MiB',
    doc: 'the same, for all gRPC clients together',
  },
  {
    key: 'grpcMaxFetchStreams',
    env: 'GOSSIPCACHE_GRPC_MAX_FETCH_STREAMS',
    flag: '--grpc-max-fetch-streams',
    default: String(DEFAULT_GRPC_LIMITS.maxFetchStreams),
    doc: 'peer Fetch streams per gRPC client connection (each may read up to 3 MiB ahead of the byte budgets); more are refused with RESOURCE_EXHAUSTED',
  },
  {
    key: 'grpcMaxConnections',
    env: 'GOSSIPCACHE_GRPC_MAX_CONNECTIONS',
    flag: '--grpc-max-connections',
    default: '',
    doc: 'most gRPC client connections held at once; at the cap the oldest connection that has sent nothing (else nothing for 30 s) is closed for a new one, else the new one is; empty = a quarter of the open-file limit beyond 256, between 64 and 1024',
  },
  {
    key: 'grpcStallTimeout',
    env: 'GOSSIPCACHE_GRPC_STALL_TIMEOUT',
    flag: '--grpc-stall-timeout',
    default: `${DEFAULT_GRPC_LIMITS.stallTimeoutMs / 1000}s`,
    doc: 'a peer Fetch stream whose replies wait unread this long is reset and what it held given back (sooner when the held-bytes budget is nearly spent)',
  },
  {
    key: 'config',
    env: 'GOSSIPCACHE_CONFIG',
    flag: '--config',
    default: '',
    doc: 'JSON file `{ "groups": [{ "name", "cacheBytes", "origin", "memcachedAddr"?, "staleWhileRevalidate"?, "staleIfError"? }] }` for several groups (replaces GROUP/CACHE_BYTES/ORIGIN; the stale windows default to STALE_WHILE_REVALIDATE/STALE_IF_ERROR)',
  },
  {
    key: 'memcachedAddr',
    env: 'GOSSIPCACHE_MEMCACHED_ADDR',
    flag: '--memcached-addr',
    default: '',
    doc: 'memcached text-protocol listen address `host:port` (e.g. 0.0.0.0:11211) serving the default group; empty = off (see docs/memcached.md)',
  },
  {
    key: 'memcachedMaxConnections',
    env: 'GOSSIPCACHE_MEMCACHED_MAX_CONNECTIONS',
    flag: '--memcached-max-connections',
    default: '',
    doc: 'memcached clients connected at once (empty = a quarter of the open-file limit beyond 256, between 64 and 1024); at the cap the connection quiet the longest that owes no reply is closed for a new one; when all owe replies, the new one is told `SERVER_ERROR too many open connections` and closed',
  },
  {
    key: 'memcachedIdleTimeout',
    env: 'GOSSIPCACHE_MEMCACHED_IDLE_TIMEOUT',
    flag: '--memcached-idle-timeout',
    default: '5m',
    doc: 'close a memcached connection that sends and reads nothing for this long (`0` = never)',
  },
  {
    key: 'joinTimeout',
    env: 'GOSSIPCACHE_JOIN_TIMEOUT',
    flag: '--join-timeout',
    default: '10s',
    doc: 'if no seed has answered by then, report ready anyway (serving alone) and keep trying to join',
  },
  {
    key: 'shutdownTimeout',
    env: 'GOSSIPCACHE_SHUTDOWN_TIMEOUT',
    flag: '--shutdown-timeout',
    default: '10s',
    doc: 'how long SIGTERM waits for in-flight requests',
  },
  {
    key: 'hotMaxAge',
    env: 'GOSSIPCACHE_HOT_MAX_AGE',
    flag: '--hot-max-age',
    default: '60s',
    doc: 'longest a value mirrored from its owner (hot cache) is served before it is fetched again: the bound on serving a value removed while this node missed the remove; `0` = no bound',
  },
  {
    key: 'handoffWindow',
    env: 'GOSSIPCACHE_HANDOFF_WINDOW',
    flag: '--handoff-window',
    default: '5m',
    doc: "after a membership change (or start), how long a miss at the owner first asks the key's previous holder before the origin (docs/handoff.md); `0` = never",
  },
  {
    key: 'handoffPush',
    env: 'GOSSIPCACHE_HANDOFF_PUSH',
    flag: '--handoff-push',
    default: '5s',
    doc: "on SIGTERM, the time spent handing this node's cached values (hottest first) to their next owners before leaving; `0` = none",
  },
  {
    key: 'logLevel',
    env: 'LOG_LEVEL',
    flag: '--log-level',
    default: 'info',
    doc: 'pino level: trace, debug, info, warn, error, fatal, silent',
  },
  {
    key: 'logFormat',
    env: 'LOG_FORMAT',
    flag: '--log-format',
    default: 'auto',
    doc: '`json` (pino JSON lines), `pretty` (one readable line per event, pino-pretty) or `auto`: pretty when stdout is a terminal, else JSON',
  },
];

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Result of reading argv: either a config or a request for help. */
export type ParsedArgs = { help: true } | { help: false; config: NodeConfig };

/**
 * Build the configuration from `env` and `argv` (flags only: `--name value` or `--name=value`).
 * Throws ConfigError on the first bad value.
 */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const raw = {} as RawConfig;
  const source = {} as Record<keyof RawConfig, string>;
  for (const o of OPTIONS) {
    const v = env[o.env];
    raw[o.key] = v === undefined ? o.default : v.trim();
    source[o.key] = o.env;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { help: true };
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const o = OPTIONS.find((x) => x.flag === name);
    if (!o) throw new ConfigError(arg, 'unknown argument; expected one of the flags listed by --help');
    let value: string;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i];
    else throw new ConfigError(name, 'needs a value, e.g. ' + name + '=' + (o.default || '<value>'));
    raw[o.key] = value.trim();
    source[o.key] = name;
  }
  return { help: false, config: { ...validate(raw, source), unknownEnv: unknownEnv(env) } };
}

function validate(raw: RawConfig, source: Record<keyof RawConfig, string>): Omit<NodeConfig, 'unknownEnv'> {
  const httpAddr = parseBindAddr(raw.httpAddr, source.httpAddr);
  const httpMaxConnections =
    raw.httpMaxConnections === '' ? undefined : parseCount(raw.httpMaxConnections, source.httpMaxConnections);
  const httpHeadersTimeoutMs = parseDuration(raw.httpHeadersTimeout, source.httpHeadersTimeout);
  if (httpHeadersTimeoutMs <= 0)
    throw new ConfigError(source.httpHeadersTimeout, 'must be more than 0, e.g. 10s');
  const httpRequestTimeoutMs = parseDuration(raw.httpRequestTimeout, source.httpRequestTimeout);
  if (httpRequestTimeoutMs < httpHeadersTimeoutMs) {
    throw new ConfigError(
      source.httpRequestTimeout,
      `must be at least the headers timeout (${httpHeadersTimeoutMs}ms), e.g. 30s`,
    );
  }
  const httpKeepAliveTimeoutMs = parseDuration(raw.httpKeepAliveTimeout, source.httpKeepAliveTimeout);
  const grpcAddr = parseBindAddr(raw.grpcAddr, source.grpcAddr);
  const gossipAddr = parseBindAddr(raw.gossipAddr, source.gossipAddr);
  const advertiseHost = raw.advertiseHost === '' ? defaultAdvertiseHost(grpcAddr.host) : raw.advertiseHost;
  if (!isHost(advertiseHost)) {
    throw new ConfigError(
      source.advertiseHost,
      `"${raw.advertiseHost}" is not a host; expected a DNS name or IP`,
    );
  }
  const seeds = parseSeeds(raw.seeds, gossipAddr.port, source.seeds);
  const originTimeoutMs = parseDuration(raw.originTimeout, source.originTimeout);
  if (originTimeoutMs <= 0) throw new ConfigError(source.originTimeout, 'must be more than 0, e.g. 5s');
  const originMaxBytes = parseBytes(raw.originMaxBytes, source.originMaxBytes);
  const originConnections = parseCount(raw.originConnections, source.originConnections);
  // Read once: the gRPC and memcached caps share the fds beyond what peers, gossip and origins need.
  const fdLimit = readFdLimit();
  const grpcLimits: GrpcLimits = {
    maxConcurrentStreams: parseCount(raw.grpcMaxStreams, source.grpcMaxStreams),
    maxStreamRequests: parseCount(raw.grpcMaxStreamRequests, source.grpcMaxStreamRequests),
    maxConnectionBytes: parseBytes(raw.grpcMaxConnectionBytes, source.grpcMaxConnectionBytes),
    maxHeldBytes: parseBytes(raw.grpcMaxHeldBytes, source.grpcMaxHeldBytes),
    maxFetchStreams: parseCount(raw.grpcMaxFetchStreams, source.grpcMaxFetchStreams),
    stallTimeoutMs: parseDuration(raw.grpcStallTimeout, source.grpcStallTimeout),
    maxConnections:
      raw.grpcMaxConnections === ''
        ? defaultGrpcMaxConnections(fdLimit)
        : parseCount(raw.grpcMaxConnections, source.grpcMaxConnections),
  };
  if (grpcLimits.stallTimeoutMs <= 0)
    throw new ConfigError(source.grpcStallTimeout, 'must be more than 0, e.g. 10s');
  const joinTimeoutMs = parseDuration(raw.joinTimeout, source.joinTimeout);
  const memcached: MemcachedConfig = {
    addr: raw.memcachedAddr === '' ? undefined : parseBindAddr(raw.memcachedAddr, source.memcachedAddr),
    maxConnections:
      raw.memcachedMaxConnections === ''
        ? defaultMemcachedMaxConnections(fdLimit)
        : parseCount(raw.memcachedMaxConnections, source.memcachedMaxConnections),
    idleTimeoutMs: parseDuration(raw.memcachedIdleTimeout, source.memcachedIdleTimeout),
  };
  const shutdownTimeoutMs = parseDuration(raw.shutdownTimeout, source.shutdownTimeout);
  const hotMaxAgeMs = parseDuration(raw.hotMaxAge, source.hotMaxAge);
  const handoffWindowMs = parseDuration(raw.handoffWindow, source.handoffWindow);
  const handoffPushMs = parseDuration(raw.handoffPush, source.handoffPush);
  const logLevel = raw.logLevel.toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      source.logLevel,
      `"${raw.logLevel}" is not a level; expected one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const logFormat = raw.logFormat.toLowerCase();
  if (logFormat !== 'auto' && logFormat !== 'json' && logFormat !== 'pretty') {
    throw new ConfigError(
      source.logFormat,
      `"${raw.logFormat}" is not a log format; expected auto, json or pretty`,
    );
  }
  const staleWhileRevalidateMs = parseWindow(raw.staleWhileRevalidate, source.staleWhileRevalidate);
  const staleIfErrorMs = parseWindow(raw.staleIfError, source.staleIfError);
  const groups =
    raw.config === ''
      ? [
          {
            name: parseGroupName(raw.group, source.group),
            cacheBytes: parseBytes(raw.cacheBytes, source.cacheBytes),
            origin: parseOrigin(raw.origin, source.origin),
            staleWhileRevalidateMs,
            staleIfErrorMs,
          },
        ]
      : readGroupsFile(raw.config, source.config, { staleWhileRevalidateMs, staleIfErrorMs });
  let secretKeys: Buffer[];
  try {
    secretKeys = parseSecretKeys(raw.secretKey);
  } catch (err) {
    throw new ConfigError(source.secretKey, (err as Error).message);
  }
  const gossipReceiverBinding = raw.gossipReceiverBinding.toLowerCase() as ReceiverBinding;
  if (!RECEIVER_BINDINGS.includes(gossipReceiverBinding)) {
    throw new ConfigError(
      source.gossipReceiverBinding,
      `"${raw.gossipReceiverBinding}" is not a mode; expected one of ${RECEIVER_BINDINGS.join(', ')}`,
    );
  }
  let tls: TlsPaths | undefined;
  if (raw.tlsCert !== '' || raw.tlsKey !== '') {
    if (raw.tlsCert === '' || raw.tlsKey === '') {
      const missing = raw.tlsCert === '' ? source.tlsCert : source.tlsKey;
      throw new ConfigError(missing, 'is required when TLS is configured; expected the path of a PEM file');
    }
    tls = {
      certFile: readablePath(raw.tlsCert, source.tlsCert),
      keyFile: readablePath(raw.tlsKey, source.tlsKey),
    };
    if (raw.tlsCa !== '') tls.caFile = readablePath(raw.tlsCa, source.tlsCa);
    if (raw.tlsServerName !== '') {
      if (!isHost(raw.tlsServerName)) {
        throw new ConfigError(source.tlsServerName, `"${raw.tlsServerName}" is not a DNS name`);
      }
      tls.serverName = raw.tlsServerName;
    }
  } else if (raw.tlsCa !== '' || raw.tlsServerName !== '') {
    const which = raw.tlsCa !== '' ? source.tlsCa : source.tlsServerName;
    throw new ConfigError(which, 'needs GOSSIPCACHE_TLS_CERT and GOSSIPCACHE_TLS_KEY as well');
  }
  return {
    httpAddr,
    httpMaxConnections,
    httpHeadersTimeoutMs,
    httpRequestTimeoutMs,
    httpKeepAliveTimeoutMs,
    grpcAddr,
    gossipAddr,
    advertiseHost,
    seeds,
    groups,
    secretKeys,
    gossipReceiverBinding,
    tls,
    memcached,
    grpcLimits,
    originTimeoutMs,
    originMaxBytes,
    originConnections,
    joinTimeoutMs,
    shutdownTimeoutMs,
    hotMaxAgeMs,
    handoffWindowMs,
    handoffPushMs,
    logLevel,
    logFormat,
  };
}

/** What Kubernetes sets for a Service named gossipcache or gossipcache-*: `<NAME>_SERVICE_HOST`, `<NAME>_PORT…`. */
const SERVICE_LINK =
  /_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$/;

function unknownEnv(env: NodeJS.ProcessEnv): string[] {
  // GOSSIPCACHE_IMAGE is docker-compose.yml's (which image to run), not the node's.
  const known = new Set([...OPTIONS.map((o) => o.env), 'GOSSIPCACHE_IMAGE']);
  return Object.keys(env)
    .filter((k) => k.startsWith('GOSSIPCACHE_') && !known.has(k) && !SERVICE_LINK.test(k))
    .sort();
}

/** A bind address: `host:port`, `[v6]:port` or `:port` (all interfaces, 0.0.0.0). */
export function parseBindAddr(value: string, source: string): HostPort {
  try {
    return parseHostPort(value, { anyHost: '0.0.0.0' });
  } catch (err) {
    const why = err instanceof AddressError ? ` (${err.reason})` : '';
    throw new ConfigError(
      source,
      `"${value}" is not an address; expected host:port, e.g. 0.0.0.0:8080${why}`,
    );
  }
}

/** Seeds: comma-separated `host[:port]` (the port defaults to this node's gossip port), formatted to dial. */
function parseSeeds(value: string, defaultPort: number, source: string): string[] {
  if (value === '') return [];
  const out: string[] = [];
  for (const part of value.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    try {
      out.push(formatHostPort(parseHostPort(s, { defaultPort })));
    } catch {
      throw new ConfigError(
        source,
        `"${s}" is not a seed; expected comma-separated host[:port], e.g. node-1,10.0.0.7:7946`,
      );
    }
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Bytes: a plain integer or `<n>KiB|MiB|GiB` (decimals allowed: `1.5GiB`). */
export function parseBytes(value: string, source: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/.exec(value);
  const n = m ? Math.floor(Number(m[1]) * SIZE_UNITS[m[2] ?? '']) : Number.NaN;
  if (m && n <= 0) throw new ConfigError(source, `must be more than 0 bytes, e.g. 64MiB (got "${value}")`);
  if (!m || !Number.isSafeInteger(n)) {
    throw new ConfigError(
      source,
      `"${value}" is not a size; expected bytes like 64MiB, 512KiB, 1GiB or 1048576`,
    );
  }
  return n;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** Duration: `<n>ms`, `<n>s`, `<n>m`, or plain milliseconds. */
export function parseDuration(value: string, source: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (!m) throw new ConfigError(source, `"${value}" is not a duration; expected e.g. 400ms, 5s or 1m`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']);
}

/**
 * A stale window: a duration, clamped to MAX_TTL_MS (one year) as the group clamps it, so a huge value
 * means "as long as a value can live" rather than an error or Infinity.
 */
export function parseWindow(value: string, source: string): number {
  return Math.min(parseDuration(value, source), MAX_TTL_MS);
}

function parseGroupName(value: string, source: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
    throw new ConfigError(
      source,
      `"${value}" is not a group name; expected letters, digits, '.', '_' or '-'`,
    );
  }
  return value;
}

/** Validates a loader spec (see origin.ts for what it means, origin-url.ts for the template). */
export function parseOrigin(value: string, source: string): string {
  if (value === 'demo') return value;
  if (value.startsWith('demo:')) {
    parseDuration(value.slice(5), source); // the delay: throws a ConfigError naming `source`
    return value;
  }
  if (/^https?:\/\//.test(value)) {
    try {
      parseOriginTemplate(value);
      return value;
    } catch (err) {
      throw new ConfigError(
        source,
        `"${value}" ${(err as Error).message}; expected an http(s) URL with {key} in its path or query, e.g. http://backend:8000/items/{key}`,
      );
    }
  }
  throw new ConfigError(
    source,
    `"${value}" is not an origin; expected demo[:<delay>] or an http(s) URL containing {key}, e.g. http://backend:8000/items/{key}`,
  );
}

/** A whole number >= 1. */
export function parseCount(value: string, source: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(source, `"${value}" is not a count; expected a whole number >= 1, e.g. 64`);
  }
  return n;
}

/** The keys a group of the groups file may have (the GOSSIPCACHE_CONFIG option's doc lists them). */
const GROUP_KEYS = ['name', 'cacheBytes', 'origin', 'memcachedAddr', 'staleWhileRevalidate', 'staleIfError'];

/** A misspelt key (`cachebytes`) would otherwise be ignored and its default used without a word. */
function noUnknownKeys(obj: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k))
      throw new ConfigError(`${where}.${k}`, `unknown key; expected one of: ${known.join(', ')}`);
  }
}

function readGroupsFile(
  path: string,
  source: string,
  windows: Pick<GroupConfig, 'staleWhileRevalidateMs' | 'staleIfErrorMs'>,
): GroupConfig[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(source, `cannot read "${path}" (${(err as Error).message}); expected a JSON file`);
  }
  const groups = (doc as { groups?: unknown })?.groups;
  if (doc !== null && typeof doc === 'object' && !Array.isArray(doc)) {
    noUnknownKeys(doc as Record<string, unknown>, ['groups'], `${source} ${path}`);
  }
  if (!Array.isArray(groups) || groups.length === 0) {
    throw new ConfigError(
      source,
      `"${path}" has no groups; expected { "groups": [{ "name", "cacheBytes", "origin" }] }`,
    );
  }
  const seen = new Set<string>();
  return groups.map((g: Record<string, unknown>, i) => {
    const where = `${source} ${path} groups[${i}]`;
    if (g === null || typeof g !== 'object' || Array.isArray(g))
      throw new ConfigError(where, 'expected an object { "name", "cacheBytes", "origin", … }');
    noUnknownKeys(g, GROUP_KEYS, where);
    const name = parseGroupName(String(g.name ?? ''), `${where}.name`);
    if (seen.has(name))
      throw new ConfigError(`${where}.name`, `"${name}" appears twice; group names must be unique`);
    seen.add(name);
    const group: GroupConfig = {
      name,
      cacheBytes: parseBytes(String(g.cacheBytes ?? '64MiB'), `${where}.cacheBytes`),
      origin: parseOrigin(String(g.origin ?? 'demo:400ms'), `${where}.origin`),
      staleWhileRevalidateMs:
        g.staleWhileRevalidate === undefined
          ? windows.staleWhileRevalidateMs
          : parseWindow(String(g.staleWhileRevalidate), `${where}.staleWhileRevalidate`),
      staleIfErrorMs:
        g.staleIfError === undefined
          ? windows.staleIfErrorMs
          : parseWindow(String(g.staleIfError), `${where}.staleIfError`),
    };
    if (g.memcachedAddr !== undefined) {
      group.memcachedAddr = parseBindAddr(String(g.memcachedAddr), `${where}.memcachedAddr`);
    }
    return group;
  });
}

function readablePath(path: string, source: string): string {
  try {
    readFileSync(path);
  } catch (err) {
    throw new ConfigError(
      source,
      `cannot read "${path}" (${(err as NodeJS.ErrnoException).code}); expected a PEM file`,
    );
  }
  return path;
}

/** A specific bind host is what peers must dial; a wildcard bind advertises the first LAN IPv4. */
function defaultAdvertiseHost(bindHost: string): string {
  if (bindHost !== '0.0.0.0' && bindHost !== '::' && bindHost !== '') return bindHost;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal) return a.address;
    }
  }
  return '127.0.0.1';
}

/** `--help` text, built from OPTIONS. */
export function usage(): string {
  const lines = [
    'Usage: gossipcache [--flag value ...]   (each flag is also an environment variable)',
    '       gossipcache --version (-v) | --help (-h)',
    '',
  ];
  for (const o of OPTIONS) {
    lines.push(`  ${o.flag.padEnd(20)} ${o.env.padEnd(30)} default: ${o.default || '(none)'}`);
    lines.push(`      ${o.doc.replaceAll('`', '')}`);
  }
  return lines.join('\n');
}
