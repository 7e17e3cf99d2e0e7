// Loaders (groupcache "getters") a cache node can be configured with: where a value comes from when
// no cache in the cluster has it. Two kinds, chosen by GOSSIPCACHE_ORIGIN:
//   demo[:<delay>]           the seed article's "heavy task": wait, then answer `Value of <key>`
//   http(s)://…{key}…        GET from an HTTP origin (404 → NotFound, max-age → TTL)
// A loader never caches by itself: the group decides; errors are not cached by the group either.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError } from '../errors.js';
import { parseDuration } from './config.js';

/** What a loader returns: the group's GetterResult. */
export type OriginResult = Uint8Array | string | { value: Uint8Array | string; ttlMs?: number };

/** A group getter plus the resources it holds. */
export interface Origin {
  load(key: string, ctx: { signal: AbortSignal }): Promise<OriginResult>;
  /** Human summary for the start log (no secrets: the URL's userinfo is hidden). */
  readonly description: string;
  /** Close pooled keep-alive sockets. */
  close(): void;
}

export interface HttpOriginOptions {
  /** Whole-request timeout (connect → last byte), ms. */
  timeoutMs: number;
  /** Largest body accepted; longer bodies fail the load. */
  maxBytes: number;
}

/** The origin failed (5xx, timeout, too large, connection error). The message says which. */
export class OriginError extends Error {
  override name = 'OriginError';
}

/** Build a loader from a validated spec (see config.parseOrigin). */
export function createOrigin(spec: string, opts: HttpOriginOptions): Origin {
  if (spec.startsWith('demo')) {
    const delayMs = spec === 'demo' ? 0 : parseDuration(spec.slice(5), 'GOSSIPCACHE_ORIGIN');
    return demoOrigin(delayMs);
  }
  return httpOrigin(spec, opts);
}

/** The article's slow database: `Value of <key>` after `delayMs`. */
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

/** GET `template` with `{key}` replaced by the percent-encoded key, over keep-alive sockets. */
export function httpOrigin(template: string, { timeoutMs, maxBytes }: HttpOriginOptions): Origin {
  const secure = template.startsWith('https:');
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const request = secure ? httpsRequest : httpRequest;
  const shown = new URL(template.replace('{key}', '_'));
  const description = `http origin ${shown.protocol}//${shown.host}${decodeURI(shown.pathname).replace('_', '{key}')}`;
  const [before, after] = splitOnce(template, '{key}');

  function load(key: string, { signal }: { signal: AbortSignal }): Promise<OriginResult> {
    return new Promise((resolve, reject) => {
      let url: string;
      try {
        url = before + encodeURIComponent(key) + after;
      } catch {
        reject(new OriginError(`key cannot be put into a URL (unpaired surrogate)`));
        return;
      }
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      let done = false;
      const finish = (err: unknown, result?: OriginResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(result!);
      };
      const onAbort = () => finish(signal.reason);
      const timer = setTimeout(
        () => finish(new OriginError(`origin did not answer within ${timeoutMs}ms: GET ${url}`)),
        timeoutMs,
      );
      signal.addEventListener('abort', onAbort, { once: true });
      const req = request(url, { agent, headers: { accept: '*/*' } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 404 || status === 410) {
          res.resume();
          finish(new NotFoundError(`origin has no value for this key (HTTP ${status})`));
          return;
        }
        if (status < 200 || status > 299) {
          res.resume();
          finish(new OriginError(`origin answered HTTP ${status}: GET ${url}`));
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (declared > maxBytes) {
          finish(
            new OriginError(`origin value is ${declared} bytes, over the ${maxBytes}-byte limit: GET ${url}`),
          );
          return;
        }
        readBody(res, maxBytes, url, (err, body) => {
          if (err) finish(err);
          else {
            const ttlMs = maxAgeMs(res.headers['cache-control']);
            finish(null, ttlMs === undefined ? body! : { value: body!, ttlMs });
          }
        });
      });
      req.on('error', (err) => finish(new OriginError(`origin request failed (${err.message}): GET ${url}`)));
      req.end();
    });
  }
  return { description, load, close: () => agent.destroy() };
}

function readBody(
  res: IncomingMessage,
  maxBytes: number,
  url: string,
  cb: (err: Error | null, body?: Buffer) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (err: Error | null, body?: Buffer) => {
    if (settled) return;
    settled = true;
    cb(err, body);
  };
  res.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) {
      settle(new OriginError(`origin value is over the ${maxBytes}-byte limit: GET ${url}`));
      res.destroy();
      return;
    }
    chunks.push(chunk);
  });
  res.on('end', () => settle(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
  res.on('error', (err) => settle(new OriginError(`origin response broke off (${err.message}): GET ${url}`)));
  res.on('aborted', () => settle(new OriginError(`origin response broke off: GET ${url}`)));
}

/**
 * TTL from `Cache-Control`: `s-maxage` (shared caches, which we are) over `max-age`.
 * `no-store`/`no-cache`/`max-age=0` give a TTL of 0 (stale at once: the value is served to the
 * waiting callers and loaded again next time). Absent = no expiry.
 */
export function maxAgeMs(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const h = header.toLowerCase();
  const s = /(?:^|[,\s])s-maxage\s*=\s*"?(\d+)/.exec(h) ?? /(?:^|[,\s])max-age\s*=\s*"?(\d+)/.exec(h);
  if (s) return Number(s[1]) * 1000;
  if (/(?:^|[,\s])(no-store|no-cache)\b/.test(h)) return 0;
  return undefined;
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return [s.slice(0, i), s.slice(i + sep.length)];
}
