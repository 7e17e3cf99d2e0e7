// Loaders (groupcache "getters") a cache node can be configured with: where a value comes from when
// no cache in the cluster has it. Two kinds, chosen by GOSSIPCACHE_ORIGIN:
//   demo[:<delay>]           a stand-in for a slow data source: wait, then answer `Value of <key>`
//   http(s)://…{key}…        GET from an HTTP origin (404 → NotFound, max-age → TTL,
//                            stale-while-revalidate / stale-if-error → stale windows, RFC 5861)
// A loader never caches by itself: the group decides. Errors are not cached, except a 404/410 that
// carries a max-age: the group remembers that NotFound for that long (negative caching).

import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { NotFoundError } from '../errors.js';
import type { GetterResult, GetterValue } from '../group.js';
import { ageMs, maxAgeMs, staleWindowsMs } from './cache-control.js';
import { DEFAULT_ORIGIN_CONNECTIONS, parseDuration } from './config.js';
import { originTarget, parseOriginTemplate } from './origin-url.js';

export { maxAgeMs, staleWindowsMs };

/** What a loader returns: the group's GetterResult. */
export type OriginResult = GetterResult;

/** A group getter plus the resources it holds. */
export interface Origin {
  load(key: string, ctx: { signal: AbortSignal }): Promise<OriginResult>;
  /** Human summary for the start log (no secrets: the URL's userinfo is hidden). */
  readonly description: string;
  /** Close pooled keep-alive sockets. */
  close(): void;
}

export interface HttpOriginOptions {
  /** Whole-request timeout (queued for a connection → last byte), ms. */
  timeoutMs: number;
  /** Largest body accepted; longer bodies fail the load. */
  maxBytes: number;
  /**
   * Most connections open to the origin at once (default DEFAULT_ORIGIN_CONNECTIONS). Loads beyond
   * it wait in the pool's queue, inside `timeoutMs`: a burst of distinct misses costs the origin (and
   * this process) this many sockets, not one per miss.
   */
  connections?: number;
}

/**
 * A load from the HTTP origin failed. The message says why, without the request: it reaches clients (the
 * HTTP front's 502, memcached's SERVER_ERROR, a peer's status), and an origin URL can carry what they must
 * not see (a token in its query, internal hosts). The request is in `request`, which logs show.
 */
export class OriginError extends Error {
  override name = 'OriginError';
  constructor(
    message: string,
    /** `GET <origin URL>`: for the node's log only. */
    readonly request?: string,
  ) {
    super(message);
  }
}

/** Build a loader from a validated spec (see config.parseOrigin). */
export function createOrigin(spec: string, opts: HttpOriginOptions): Origin {
  if (spec.startsWith('demo')) {
    const delayMs = spec === 'demo' ? 0 : parseDuration(spec.slice(5), 'GOSSIPCACHE_ORIGIN');
    return demoOrigin(delayMs);
  }
  return httpOrigin(spec, opts);
}

/** A stand-in for a slow database: `Value of <key>` after `delayMs`. */
export function demoOrigin(delayMs: number): Origin {
  return {
    description: `demo (${delayMs}ms per load)`,
    async load(key, { signal }) {
      // Reject with the caller's reason (timers/promises would say only "AbortError").
      if (delayMs > 0) await sleep(delayMs, undefined, { signal }).catch(() => Promise.reject(signal.reason));
      return `Value of ${key}`;
    },
    close() {},
  };
}

/**
 * GET `template` with `{key}` replaced by the percent-encoded key (see origin-url.ts), over a pool of
 * at most `connections` keep-alive connections (undici's Pool).
 *
 * A load whose caller gives up (its signal, or `timeoutMs`) never aborts an undici request: over
 * HTTP/1.1 the only way to cancel a request is to close its connection, and undici does that even for
 * a request it still had queued (when it reaches a connection). Under a burst of distinct misses with
 * callers timing out, that turned into one new TCP connection per abandoned load (thousands of sockets
 * in TIME_WAIT). So loads wait for a connection here (OriginSlots), at most `connections` requests are
 * handed to undici, and undici never queues: a load given up while it waits is dropped without a
 * trace; one already sent finishes in the background — its body read and discarded, at most `maxBytes`
 * of it — and keeps its connection. A request the origin does not finish within `timeoutMs` of being
 * sent (undici's headersTimeout / bodyTimeout, or our whole-request deadline) is aborted after all: that
 * connection is closed, which bounds what a stuck origin holds.
 *
 * undici's Pool does not retry a request (checked: 7.x, a body cut short by FIN or RST, or a connection
 * closed before the answer, is one request and one failure). One attempt per load is what the group
 * expects; a load that fails here fails its flight (a non-owner whose owner failed loads it itself).
 *
 * Only bodies whose end the origin marked are cached: a Content-Length that arrived in full or a
 * complete chunked body (undici fails the request when either is cut short). A body delimited by the
 * origin closing the connection (no Content-Length, not chunked: HTTP/1.0-style) looks the same
 * whether it is complete or was cut off by a reset, a crash or a timeout on the way; it is returned
 * with a TTL of 0 — served to the callers of this load, never cached — because caching it could pin a
 * truncated value for its whole TTL, while refusing it would make such origins unusable.
 */
export function httpOrigin(template: string, opts: HttpOriginOptions): Origin {
  const { timeoutMs, maxBytes } = opts;
  const connections = opts.connections ?? DEFAULT_ORIGIN_CONNECTIONS;
  const t = parseOriginTemplate(template);
  const pool = new Pool(t.origin, {
    connections,
    connect: { timeout: timeoutMs },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const slots = new OriginSlots(connections);
  const headers: Record<string, string> = { accept: '*/*' };
  if (t.authorization !== undefined) headers.authorization = t.authorization;

  async function load(key: string, { signal }: { signal: AbortSignal }): Promise<OriginResult> {
    const path = originTarget(t, key);
    if (signal.aborted) throw signal.reason;
    const what = `GET ${t.origin}${path}`;
    // One controller for the caller's abort and our timeout; `failure` says which fired first. The
    // load settles at once when either fires; what it started goes on alone (see above).
    const ac = new AbortController();
    let failure: unknown;
    let fail!: (err: unknown) => void;
    const failed = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const stop = (err: unknown) => {
      if (failure !== undefined) return;
      failure = err;
      ac.abort(err);
      fail(err);
    };
    const onAbort = () => stop(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      const queued = slots.queued;
      stop(
        new OriginError(
          `origin did not answer within ${timeoutMs}ms` +
            (queued > 0 ? ` (${queued} loads waiting for one of its ${connections} connections)` : ''),
          what,
        ),
      );
    }, timeoutMs);
    // Waiting for a connection is abandoned with the load; a request once sent is not.
    const work = slots.take(ac.signal).then(() => {
      if (failure !== undefined) {
        slots.give();
        throw failure;
      }
      const sent = fetchValue(path, what, () => failure === undefined);
      sent.then(slots.give, slots.give);
      return sent;
    });
    work.catch(() => {}); // settles after `failed` when stopped
    try {
      return await Promise.race([work, failed]);
    } catch (err) {
      if (failure !== undefined) throw failure;
      if (err instanceof NotFoundError || err instanceof OriginError) throw err;
      throw new OriginError(`origin request failed (${(err as Error).message})`, what);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * One request, from sending it to its last byte, however long its caller waits: `wanted()` false =
   * the caller left, so the body is read (keeping the connection) but not kept. Aborted — closing its
   * connection — only if it is not done `timeoutMs` after it was sent.
   */
  async function fetchValue(path: string, what: string, wanted: () => boolean): Promise<OriginResult> {
    const ac = new AbortController();
    const deadline = setTimeout(
      () => ac.abort(new OriginError(`origin did not finish the request within ${timeoutMs}ms`, what)),
      timeoutMs,
    );
    try {
      return await readValue(path, what, ac.signal, wanted);
    } finally {
      clearTimeout(deadline);
    }
  }

  async function readValue(
    path: string,
    what: string,
    signal: AbortSignal,
    wanted: () => boolean,
  ): Promise<OriginResult> {
    const res = await pool.request({ path, method: 'GET', headers, signal });
    // Errors after we stop reading (our destroy, a late reset) have nobody else to go to.
    res.body.on('error', () => {});
    const status = res.statusCode;
    if (status === 404 || status === 410) {
      res.body.dump().catch(() => {});
      // With a max-age the NotFound is remembered that long (negative caching), like a value.
      const ttlMs = maxAgeMs(headerString(res.headers['cache-control']));
      throw new NotFoundError(
        `origin has no value for this key (HTTP ${status})`,
        ttlMs ? { ttlMs } : undefined,
      );
    }
    // 206 is part of a value (no Range was asked); an encoded body (gzip…) is not the value's bytes, and
    // undici does not decode it: caching either would serve something else under the key.
    const encoding = headerString(res.headers['content-encoding'])?.trim().toLowerCase();
    const success = status >= 200 && status <= 299;
    const partOrEncoded = status === 206 || (encoding && encoding !== 'identity');
    if (!success || partOrEncoded) {
      res.body.dump().catch(() => {});
      throw new OriginError(
        success
          ? `origin answered HTTP ${status}${encoding ? ` with Content-Encoding: ${encoding}` : ''}, not a whole value`
          : `origin answered HTTP ${status}`,
        what,
      );
    }
    const declared = Number(res.headers['content-length']);
    if (declared > maxBytes) {
      res.body.destroy();
      throw new OriginError(`origin value is ${declared} bytes, over the ${maxBytes}-byte limit`, what);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        res.body.destroy();
        throw new OriginError(`origin value is over the ${maxBytes}-byte limit`, what);
      }
      // A caller that left gets nothing: read to the end only to keep the connection.
      if (wanted()) chunks.push(chunk);
      else chunks.length = 0;
    }
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    // Windows 0, not the group's defaults: a body that may be truncated is never kept, even stale.
    if (!endIsKnown(status, res.headers)) {
      return { value: body, ttlMs: 0, staleWhileRevalidateMs: 0, staleIfErrorMs: 0 };
    }
    const cc = headerString(res.headers['cache-control']);
    const lifetime = maxAgeMs(cc);
    if (lifetime === undefined) return body;
    // What the response already spent in caches on its way here is gone from its lifetime (RFC 9111 §4.2.3).
    const ttlMs = Math.max(0, lifetime - ageMs(headerString(res.headers.age)));
    // A window the response does not name is left out: the group's default applies to it.
    const w = staleWindowsMs(cc);
    const r: GetterValue = { value: body, ttlMs };
    if (w.swr !== undefined) r.staleWhileRevalidateMs = w.swr;
    if (w.sie !== undefined) r.staleIfErrorMs = w.sie;
    return r;
  }
  return {
    description: `http origin ${t.description} (at most ${connections} connections)`,
    load,
    close: () => {
      slots.close();
      pool.destroy().catch(() => {});
    },
  };
}

/**
 * The origin's connections as slots: at most `size` requests handed to undici at once, so its Pool
 * never queues one (aborting a request undici queued closes a connection, see httpOrigin). Loads
 * beyond wait here, first come first served; one whose caller gives up leaves the line at once.
 */
class OriginSlots {
  private used = 0;
  private closed = false;
  /** Waiting loads in arrival order (a Set keeps insertion order and drops any of them in O(1)). */
  private readonly waiting = new Set<() => void>();

  constructor(private readonly size: number) {}

  /** Loads waiting for a slot. */
  get queued(): number {
    return this.waiting.size;
  }

  /** Resolves with a slot (give it back with give()), or rejects with the signal's reason. */
  take(signal: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new OriginError('the origin was closed'));
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.used < this.size && this.waiting.size === 0) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const granted = () => {
        signal.removeEventListener('abort', left);
        resolve();
      };
      const left = () => {
        this.waiting.delete(granted);
        reject(signal.reason);
      };
      this.waiting.add(granted);
      signal.addEventListener('abort', left, { once: true });
    });
  }

  /** A request is done: its slot goes to the longest-waiting load, if any. */
  readonly give = (): void => {
    const next = this.waiting.values().next();
    if (next.done) {
      this.used--;
      return;
    }
    this.waiting.delete(next.value);
    next.value();
  };

  /** New loads fail at once; those still waiting get a slot as the requests in flight fail, then fail too. */
  close(): void {
    this.closed = true;
  }
}

/**
 * The response said where its body ends: a Content-Length (undici fails the request if fewer bytes
 * arrive), chunked transfer coding (fails if the last chunk is missing), or a status without a body.
 */
function endIsKnown(status: number, headers: Record<string, string | string[] | undefined>): boolean {
  if (headers['content-length'] !== undefined) return true;
  const te = headerString(headers['transfer-encoding']);
  if (te !== undefined && /(?:^|,)\s*chunked\s*$/i.test(te)) return true;
  return status === 204;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}
