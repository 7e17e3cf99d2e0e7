// The HTTP front of a cache node: `GET`/`PUT`/`DELETE /<group>/<key>` and a few operational routes.
// Every value answer says what the cache did: `Age` (RFC 9111) and `Cache-Status` (RFC 9211).
//
// A cache hit must cost about what a bare node:http "hello" costs, so the hit path is written by hand:
// plain http.createServer, no router, no URL objects, no regex and no per-request closures; the path
// is decoded by hand only when it contains '%' or '?'; the hit is answered synchronously from
// group.server.lookup() and .body(). Only misses (which wait for a peer or a loader anyway) take the async path.

import { isUtf8 } from 'node:buffer';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { NotFoundError } from '../errors.js';
import { DEFAULT_MAX_KEY_BYTES, type ServedGroup, type ServedRegistry } from '../group.js';
import type { EntryResult } from '../peers.js';
import { maxAgeMs } from './cache-control.js';
import {
  type ConnectionCounters,
  ConnectionGuard,
  DEFAULT_RESERVE_CONNECTIONS,
  defaultMaxConnections,
  type GuardedSocket,
  headerBytesFor,
  kReserve,
  kServed,
  kSince,
} from './connections.js';
import { DASHBOARD_HEADERS, DASHBOARD_HTML } from './dashboard.js';

export interface FrontOptions {
  registry: ServedRegistry;
  /** This node's view of the cluster for `/_cluster` (JSON-serialisable). */
  cluster?: () => unknown;
  /** `/readyz`: joined the cluster and serving. Default: always ready. */
  ready?: () => boolean;
  /** `/metrics`: Prometheus text. */
  metrics?: { contentType: string; text(): Promise<string> };
  /** Counters to increment (default: a fresh object); also exposed as `server.counters`. */
  counters?: FrontCounters & ConnectionCounters;
  /** Called with load failures (5xx answers) so they can be logged, rate-limited. */
  onLoadError?: (group: string, key: string, err: unknown) => void;
  /**
   * Most client connections held at once (see connections.ts: at the cap the longest-waiting idle
   * connection is closed for a new one). Default defaultMaxConnections(): half the fds the process may
   * open beyond 256, between 64 and 1 024.
   */
  maxConnections?: number;
  /** Connections beyond the cap for operational routes when all others are busy. Default 16. */
  reserveConnections?: number;
  /**
   * Largest request head (request line + headers), bytes. Default headerBytesFor(the largest
   * maxKeyBytes of the registry's groups): 3 × 64 KiB + 16 KiB = 208 KiB for default groups. Each
   * connection still sending its head may hold this much, so the worst case is maxConnections × this.
   */
  maxHeaderBytes?: number;
  /** A request head must arrive within this (else 408 and close). Default 10 000 ms. */
  headersTimeoutMs?: number;
  /** A whole request (head and body) must arrive within this. Default 30 000 ms; >= headersTimeoutMs. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this. Default 5 000 ms (Node's default). */
  keepAliveTimeoutMs?: number;
  /** Largest PUT body (a value), bytes; bigger ones are answered 413. Default 8 MiB (the node passes its origin limit). */
  maxValueBytes?: number;
  /**
   * PUT bodies held at once by the whole front, bytes (each is held while it arrives and is stored);
   * a PUT that would go past it is answered 503 with Retry-After. Default 64 MiB.
   */
  maxPutBytes?: number;
}

export const DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_PUT_BYTES = 64 * 1024 * 1024;

export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Counts kept by the front; plain integers, read by /metrics at scrape time. */
export interface FrontCounters {
  /** Answered from cache without awaiting anything. */
  fastHits: number;
  /** Went through loadAfterMiss (misses). */
  slowGets: number;
  /** Answers by status class. */
  ok: number;
  clientErrors: number;
  serverErrors: number;
}

export function newFrontCounters(): FrontCounters & ConnectionCounters {
  return {
    fastHits: 0,
    slowGets: 0,
    ok: 0,
    clientErrors: 0,
    serverErrors: 0,
    connectionsShed: 0,
    connectionsReserved: 0,
    connectionsRefused: 0,
    connectionsStalled: 0,
  };
}

const kAbort = Symbol('gossipcache.connectionAbort');

/**
 * One AbortSignal per client connection, aborted when the client hangs up: its pending gets stop
 * waiting (the group's shared flight goes on while others wait). Per connection, not per request,
 * because making an AbortSignal (a controller's `.signal` and its first listener) costs 12-20 µs on
 * Node 20 — as much as a whole keep-alive hit.
 */
function connectionSignal(req: IncomingMessage): AbortSignal {
  const socket = req.socket as IncomingMessage['socket'] & { [kAbort]?: AbortController };
  let ac = socket[kAbort];
  if (ac === undefined) {
    const fresh = new AbortController();
    ac = socket[kAbort] = fresh;
    socket.once('close', () => fresh.abort(new Error('client closed the connection')));
  }
  return ac.signal;
}

/**
 * Values up to this size are sent as a latin1 string (one byte per char, lossless): Node's http then
 * prepends the header block to the body, and the corked response leaves as one string chunk instead
 * of header string + Buffer (two iovecs, the mixed-chunk writev path). Bare node:http server, 20-byte
 * bodies, wrk -c64, interleaved rounds: median 29 -> 26.5 µs of server CPU per request at load average
 * 7.5 (54 -> 42 at load 12; noisy). Above this size the copy into a string would cost more than it saves.
 */
const STRING_BODY_MAX = 1024;

/** `res.end(value)`, sending small values with the headers in one write (see STRING_BODY_MAX). */
function endWithValue(res: ServerResponse, value: Uint8Array | string): void {
  if (typeof value === 'string') res.end(value, 'latin1');
  else if (value.byteLength <= STRING_BODY_MAX) {
    const buf = Buffer.isBuffer(value)
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    res.end(buf.toString('latin1'), 'latin1');
  } else {
    res.end(value);
  }
}

/**
 * A 200 with the value (bytes, or a latin1 string of them), its `Age` (whole seconds since it was
 * loaded or set, at its owner) and what the cache did (`Cache-Status`, RFC 9211). `Cache-Control: max-age` is the value's whole lifetime (time to
 * live + age), so a downstream cache that subtracts `Age` (RFC 9111 §4.2.3) gets the time it has left.
 */
function sendValue(
  res: ServerResponse,
  value: Uint8Array | string,
  ttlMs: number | undefined,
  ageMs: number,
  cacheStatus: string,
): void {
  if (ttlMs === undefined) {
    res.writeHead(200, {
      'Content-Type': OCTET_TYPE,
      'Content-Length': value.length,
      Age: Math.floor(ageMs / 1000),
      'Cache-Status': cacheStatus,
    });
  } else {
    res.writeHead(200, {
      'Content-Type': OCTET_TYPE,
      'Content-Length': value.length,
      'Cache-Control': `max-age=${Math.floor((ttlMs + ageMs) / 1000)}`,
      Age: Math.floor(ageMs / 1000),
      'Cache-Status': cacheStatus,
    });
  }
  endWithValue(res, value);
}

// RFC 9211 Cache-Status values (one cache: this node).
/** Fresh, from this node's cache (main or hot). */
export const STATUS_HIT = 'gossipcache; hit';
/** Stale, from this node's cache, while a background refresh runs (stale-while-revalidate). */
export const STATUS_STALE = 'gossipcache; hit; detail=stale-while-revalidate';
/** The load failed; a stale value from this node's cache answered (stale-if-error). */
export const STATUS_STALE_IF_ERROR = 'gossipcache; fwd=stale; detail=stale-if-error';
/** Fetched from the key's owner (another node), which answered from its cache or loaded it. */
export const STATUS_OWNER = 'gossipcache; fwd=uri-miss; detail=owner';
/** Fetched from the key's owner, which answered a stale value (one of its stale windows). */
export const STATUS_OWNER_STALE = 'gossipcache; fwd=uri-miss; detail=owner-stale';
/** Loaded from the origin by this node. */
export const STATUS_ORIGIN = 'gossipcache; fwd=uri-miss; detail=origin';

/** No value (404), remembered here (negative caching). */
export const STATUS_NOT_FOUND_HIT = 'gossipcache; hit; detail=not-found';
/** No value (404): the key's owner (another node) said so. */
export const STATUS_NOT_FOUND_OWNER = 'gossipcache; fwd=uri-miss; detail=owner-not-found';
/** No value (404): the origin said so to this node's load. */
export const STATUS_NOT_FOUND_ORIGIN = 'gossipcache; fwd=uri-miss; detail=origin-not-found';
/** No value (404), from a group that does not say where it learnt it. */
export const STATUS_NOT_FOUND = 'gossipcache; fwd=uri-miss; detail=not-found';

/** The Cache-Status of a NotFound answer (NotFoundError.source). */
function notFoundStatus(err: unknown): string {
  switch ((err as NotFoundError).source) {
    case 'hit':
      return STATUS_NOT_FOUND_HIT;
    case 'peer':
      return STATUS_NOT_FOUND_OWNER;
    case 'getter':
      return STATUS_NOT_FOUND_ORIGIN;
    default:
      return STATUS_NOT_FOUND;
  }
}

/** The Cache-Status of a miss-path answer. */
function cacheStatusOf(e: EntryResult): string {
  switch (e.source) {
    case 'peer':
      return e.stale ? STATUS_OWNER_STALE : STATUS_OWNER;
    case 'getter':
      return STATUS_ORIGIN;
    default:
      if (!e.stale) return STATUS_HIT;
      // Within its stale-while-revalidate window a stale value answers at once; past it, only after
      // a failed load (stale-if-error).
      return e.staleWhileRevalidateMs ? STATUS_STALE : STATUS_STALE_IF_ERROR;
  }
}

/** On a connection: the answer of the PUT or DELETE in progress, which requests behind it wait for. */
const kWriting = Symbol('gossipcache.writeInProgress');

/** `http://host[:port]/path` → `/path` (`/` when it has none); anything else unchanged. */
export function originForm(target: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(target);
  if (m === null) return target;
  const rest = target.slice(m[0].length);
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
}

const JSON_TYPE = 'application/json';
const OCTET_TYPE = 'application/octet-stream';

/** Creates (does not start) the HTTP front. `server.counters` holds request counts. */
export function createHttpFront(opts: FrontOptions): HttpFront {
  const { registry } = opts;
  const counters = opts.counters ?? newFrontCounters();
  let guard: ConnectionGuard;

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as GuardedSocket & { [kWriting]?: Promise<void> };
    // A request pipelined behind a PUT or DELETE on this connection runs once that write is answered (it is
    // answered when applied): Node hands us pipelined requests at once, and a GET after a PUT read the
    // value from before it. RFC 9112 §9.3.2: only safe methods may be processed in parallel.
    const writing = socket[kWriting];
    if (writing !== undefined) {
      writing.then(() => onRequest(req, res));
      return;
    }
    let url = req.url as string;
    // The absolute form (`GET http://host/g/k`), which RFC 9112 §3.2.2 has servers accept.
    if (url.charCodeAt(0) !== 47) url = originForm(url);
    const method = req.method;
    const slash = url.indexOf('/', 1);
    socket[kSince] = guard.now;
    socket[kServed] = true;
    if (method === 'PUT' || method === 'DELETE') {
      const answered = new Promise<void>((resolve) => {
        res.once('finish', resolve);
        res.once('close', resolve);
      });
      socket[kWriting] = answered;
      answered.then(() => {
        if (socket[kWriting] === answered) socket[kWriting] = undefined;
      });
    }
    if (socket[kReserve]) {
      // A reserve connection (the front is full of responses in progress): operational routes only,
      // and it closes after one answer to free its slot.
      res.shouldKeepAlive = false;
      if (slash > 1 && url.charCodeAt(1) !== 95) {
        res.setHeader('Retry-After', '1');
        sendJson(res, 503, {
          error: `connection limit reached (${guard.maxConnections} busy connections); retry shortly`,
        });
        return;
      }
      operational(res, url, method);
      return;
    }
    // `/<group>/<key>`: group names never start with '_' (reserved for operational routes).
    if (slash > 1 && url.charCodeAt(1) !== 95) {
      const group = registry.get(url.slice(1, slash));
      if (group === undefined) {
        const name = url.slice(1, slash);
        sendJson(res, 404, { error: `no group named "${name}" on this node`, groups: groupNames() });
        return;
      }
      let key = url.slice(slash + 1);
      if (key.indexOf('%') !== -1 || key.indexOf('?') !== -1) {
        const decoded = decodeKey(key);
        if (typeof decoded !== 'string') {
          sendJson(res, 400, { error: decoded.error });
          return;
        }
        key = decoded;
      }
      if (method === 'GET' || method === 'HEAD') {
        const served = group.server;
        let hit: number;
        try {
          hit = served.lookup(key);
        } catch (err) {
          sendGetError(res, group, key, err);
          return;
        }
        if (hit >= 0) {
          counters.fastHits++;
          counters.ok++;
          sendValue(res, served.body(hit), served.ttlMs(hit), served.ageMs(hit), STATUS_HIT);
          return;
        }
        slowGet(req, res, group, key);
        return;
      }
      if (method === 'PUT') {
        putValue(req, res, group, key);
        return;
      }
      if (method === 'DELETE') {
        group.remove(key).then(
          () => {
            counters.ok++;
            res.writeHead(204);
            res.end();
          },
          (err) => sendGetError(res, group, key, err),
        );
        return;
      }
      sendMethodNotAllowed(res, 'GET, HEAD, PUT, DELETE');
      return;
    }
    operational(res, url, method);
  }

  const maxValueBytes = opts.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  const maxPutBytes = opts.maxPutBytes ?? DEFAULT_MAX_PUT_BYTES;
  /** Bytes of PUT bodies held now (arriving, or being stored). */
  let putBytesHeld = 0;

  /**
   * `PUT /<group>/<key>`: the body is the value, `Cache-Control: max-age` (or s-maxage) its time to
   * live (absent = no expiry). 204 once stored at the owner and every mirror dropped (group.set).
   */
  function putValue(req: IncomingMessage, res: ServerResponse, group: ServedGroup, key: string): void {
    if (typeof group.set !== 'function') {
      sendMethodNotAllowed(res, 'GET, HEAD, DELETE');
      return;
    }
    let ttlMs: number | undefined;
    const cc = req.headers['cache-control'];
    if (cc !== undefined) {
      ttlMs = maxAgeMs(cc);
      if (ttlMs === 0) {
        refuseBody(req, res, 400, {
          error: 'Cache-Control of a PUT must give max-age > 0 (or be left out: the value never expires)',
        });
        return;
      }
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxValueBytes) {
      refuseBody(req, res, 413, tooLargeBody(declared));
      return;
    }
    if (putBytesHeld + declared > maxPutBytes) {
      busyPut(req, res);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let held = 0;
    let over = false;
    const release = () => {
      putBytesHeld -= held;
      held = 0;
    };
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > maxValueBytes || putBytesHeld + chunk.length > maxPutBytes) {
        over = true;
        release();
        if (size > maxValueBytes) refuseBody(req, res, 413, tooLargeBody(size));
        else busyPut(req, res);
        return;
      }
      held += chunk.length;
      putBytesHeld += chunk.length;
      chunks.push(chunk);
    });
    req.on('error', release);
    req.on('end', () => {
      if (over) return;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      group.set!(key, body, { ttlMs }).then(
        () => {
          release();
          counters.ok++;
          res.writeHead(204);
          res.end();
        },
        (err: unknown) => {
          release();
          sendSetError(res, group, key, err);
        },
      );
    });
  }

  function tooLargeBody(bytes: number): object {
    return {
      error: `value of ${bytes} bytes is over this node's limit of ${maxValueBytes} bytes (GOSSIPCACHE_ORIGIN_MAX_BYTES)`,
    };
  }

  function busyPut(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Retry-After', '1');
    refuseBody(req, res, 503, {
      error: `too many PUT bytes in progress on this node (limit ${maxPutBytes}); retry shortly`,
    });
  }

  /** Answers before the body has arrived: the rest is not read, and the connection closes after. */
  function refuseBody(req: IncomingMessage, res: ServerResponse, status: number, body: object): void {
    res.shouldKeepAlive = false;
    res.setHeader('Connection', 'close');
    sendJson(res, status, body);
    req.resume();
  }

  function sendSetError(res: ServerResponse, group: ServedGroup, key: string, err: unknown): void {
    const name = (err as Error)?.name;
    const message = (err as Error)?.message ?? String(err);
    if (name === 'RangeError') {
      sendJson(res, 413, { error: 'value too large', group: group.name, key, cause: message });
    } else if (name === 'InvalidKeyError' || name === 'TypeError') {
      sendJson(res, 400, { error: 'invalid set', group: group.name, cause: message });
    } else {
      opts.onLoadError?.(group.name, key, err);
      sendJson(res, 502, { error: 'set failed', group: group.name, key, cause: `${name}: ${message}` });
    }
  }

  function slowGet(req: IncomingMessage, res: ServerResponse, group: ServedGroup, key: string): void {
    counters.slowGets++;
    group.server.loadAfterMiss(key, { signal: connectionSignal(req) }).then(
      (entry) => {
        counters.ok++;
        sendValue(res, entry.value, entry.ttlMs, entry.ageMs ?? 0, cacheStatusOf(entry));
      },
      (err) => {
        if (req.destroyed) return;
        sendGetError(res, group, key, err);
      },
    );
  }

  function sendGetError(res: ServerResponse, group: ServedGroup, key: string, err: unknown): void {
    const name = (err as Error)?.name;
    const message = (err as Error)?.message ?? String(err);
    if (name === 'NotFoundError') {
      // A remembered NotFound (negative caching) says for how long, like a value.
      const ttl = (err as { ttlMs?: number }).ttlMs;
      if (typeof ttl === 'number' && ttl > 0)
        res.setHeader('Cache-Control', `max-age=${Math.floor(ttl / 1000)}`);
      res.setHeader('Cache-Status', notFoundStatus(err));
      sendJson(res, 404, { error: 'not found', group: group.name, key, cause: message });
    } else if (name === 'InvalidKeyError') {
      sendJson(res, 400, { error: 'invalid key', group: group.name, cause: message });
    } else {
      opts.onLoadError?.(group.name, key, err);
      sendJson(res, 502, { error: 'load failed', group: group.name, key, cause: `${name}: ${message}` });
    }
  }

  function operational(res: ServerResponse, url: string, method: string | undefined): void {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = ROUTES.get(path);
    if (route === undefined) {
      sendJson(res, 404, {
        error: `no route ${path}; expected /<group>/<key>, /_stats, /_cluster, /_hotkeys, /_dashboard, /metrics, /healthz or /readyz`,
      });
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      sendMethodNotAllowed(res, 'GET, HEAD');
      return;
    }
    switch (route) {
      case 'stats':
        sendJson(res, 200, statsBody());
        return;
      case 'cluster':
        sendJson(res, 200, opts.cluster ? opts.cluster() : { members: [], ringChecksum: null });
        return;
      case 'hotkeys': {
        const groups: Record<string, unknown> = {};
        for (const g of registry.list()) groups[g.name] = g.hotKeys ? g.hotKeys(HOT_KEYS) : [];
        sendJson(res, 200, { groups });
        return;
      }
      case 'dashboard':
        counters.ok++;
        res.writeHead(200, DASHBOARD_HEADERS);
        res.end(DASHBOARD_HTML);
        return;
      case 'healthz':
        sendJson(res, 200, { status: 'ok' });
        return;
      case 'readyz': {
        const ready = opts.ready ? opts.ready() : true;
        sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
        return;
      }
      case 'metrics': {
        const m = opts.metrics;
        if (!m) {
          sendJson(res, 404, { error: 'metrics are not enabled on this server' });
          return;
        }
        m.text().then(
          (text) => {
            counters.ok++;
            res.writeHead(200, { 'Content-Type': m.contentType, 'Content-Length': Buffer.byteLength(text) });
            res.end(text);
          },
          (err) => sendJson(res, 500, { error: `metrics failed: ${(err as Error).message}` }),
        );
        return;
      }
    }
  }

  function statsBody(): unknown {
    const groups: Record<string, unknown> = {};
    for (const g of registry.list()) {
      groups[g.name] = { stats: g.stats, mainCache: g.cacheStats('main'), hotCache: g.cacheStats('hot') };
    }
    return { groups };
  }

  function groupNames(): string[] {
    return registry.list().map((g) => g.name);
  }

  function sendJson(res: ServerResponse, status: number, body: unknown): void {
    if (status < 400) counters.ok++;
    else if (status < 500) counters.clientErrors++;
    else counters.serverErrors++;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  function sendMethodNotAllowed(res: ServerResponse, allow: string): void {
    res.setHeader('Allow', allow);
    sendJson(res, 405, { error: `method not allowed; use ${allow}` });
  }

  const headersTimeout = opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestTimeout = opts.requestTimeoutMs ?? Math.max(DEFAULT_REQUEST_TIMEOUT_MS, headersTimeout);
  let maxKeyBytes = 0;
  for (const g of registry.list())
    maxKeyBytes = Math.max(maxKeyBytes, g.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);
  const server = createServer(
    {
      keepAlive: true,
      // The head must hold the longest key the groups accept (percent-encoded): Node's default 16 KiB
      // would refuse long keys before the group could judge them; more only feeds slow senders.
      maxHeaderSize: opts.maxHeaderBytes ?? headerBytesFor(maxKeyBytes || DEFAULT_MAX_KEY_BYTES),
      headersTimeout,
      requestTimeout,
      // How often Node checks the two timeouts above (its default, 30 s, would let a slow sender
      // keep its connection up to 30 s past headersTimeout).
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeout / 4))),
    },
    onRequest,
  ) as HttpFront;
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  guard = new ConnectionGuard(
    server,
    opts.maxConnections ?? defaultMaxConnections(),
    opts.reserveConnections ?? DEFAULT_RESERVE_CONNECTIONS,
    counters,
    // A transfer the client holds up (a response it does not read, a body it stopped sending) gets as long
    // as a whole request may take to arrive.
    requestTimeout,
  );
  server.counters = counters;
  server.guard = guard;
  return server;
}

/** The front: a node:http Server with its counters and connection guard. */
export type HttpFront = Server & {
  counters: FrontCounters & ConnectionCounters;
  /** Open client connections and the cap (see connections.ts). */
  guard: ConnectionGuard;
};

/** Keys per group that `/_hotkeys` lists. */
const HOT_KEYS = 10;

const ROUTES = new Map<
  string,
  'stats' | 'cluster' | 'hotkeys' | 'dashboard' | 'metrics' | 'healthz' | 'readyz'
>([
  ['/_stats', 'stats'],
  ['/_cluster', 'cluster'],
  ['/_hotkeys', 'hotkeys'],
  ['/_dashboard', 'dashboard'],
  ['/metrics', 'metrics'],
  ['/healthz', 'healthz'],
  ['/readyz', 'readyz'],
]);

/** Why a request path is not a key (decodeKey's refusal); `error` is the 400's message. */
export interface BadKey {
  readonly error: string;
}
const MALFORMED_ESCAPE: BadKey = { error: 'malformed percent-encoding in key; encode bytes as %XX' };
const NOT_UTF8: BadKey = {
  error: 'key is not valid UTF-8 once percent-decoded; keys are UTF-8 strings, encode them as UTF-8 bytes',
};

/**
 * Percent-decodes a key (UTF-8) and drops a query string. Refuses a malformed escape, and bytes that
 * are not valid UTF-8: decoding them would replace each bad sequence by U+FFFD, so `%ff` and `%fe`
 * (and the literal key `\ufffd`) would name one key and share one value.
 */
export function decodeKey(raw: string): string | BadKey {
  const q = raw.indexOf('?');
  const s = q === -1 ? raw : raw.slice(0, q);
  if (s.indexOf('%') === -1) return s;
  const bytes = Buffer.allocUnsafe(Buffer.byteLength(s));
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hexValue(s.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return MALFORMED_ESCAPE;
      bytes[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c < 128) {
      bytes[n++] = c;
    } else {
      // Raw non-ASCII in a request target: Node's parser refuses it (400) before we see it; should a
      // lenient parser pass it (as latin1), it is taken as the bytes it was and checked like escapes.
      n += bytes.write(s[i], n, 'latin1');
    }
  }
  const decoded = bytes.subarray(0, n);
  if (!isUtf8(decoded)) return NOT_UTF8;
  return decoded.toString('utf8');
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
