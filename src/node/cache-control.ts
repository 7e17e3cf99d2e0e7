// Reading `Cache-Control` (RFC 9111 §5.2, RFC 5861) where a node takes lifetimes from HTTP: the
// origin's answers (origin.ts) and PUT requests (http.ts). Values are clamped to MAX_TTL_MS here,
// because a long enough number of seconds would become Infinity, which the group reads as "never".

import { MAX_TTL_MS } from '../cache.js';

/**
 * TTL from `Cache-Control`: `s-maxage` (shared caches, which we are) over `max-age`.
 * `no-store`/`no-cache`/`max-age=0` give a TTL of 0 (stale at once: the value is served to the
 * waiting callers and loaded again next time). Absent = no expiry.
 */
export function maxAgeMs(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const h = header.toLowerCase();
  const s = /(?:^|[,\s])s-maxage\s*=\s*"?(\d+)/.exec(h) ?? /(?:^|[,\s])max-age\s*=\s*"?(\d+)/.exec(h);
  // Clamped here, not only in the group: 310 digits would make Infinity, which means "never expires".
  if (s) return Math.min(Number(s[1]) * 1000, MAX_TTL_MS);
  if (/(?:^|[,\s])(no-store|no-cache)\b/.test(h)) return 0;
  return undefined;
}

/**
 * The stale windows of RFC 5861 from `Cache-Control`: `stale-while-revalidate=N` and
 * `stale-if-error=N` (seconds, after the value's max-age), in ms; undefined when the response names
 * none, so that the group's default window (GOSSIPCACHE_STALE_WHILE_REVALIDATE / _IF_ERROR) applies.
 * Both are 0 — overriding any default — when the response forbids serving it stale: `no-store` (never
 * kept), `no-cache`, `must-revalidate` and `proxy-revalidate` (RFC 9111 §5.2.2: no reuse without
 * validation).
 */
export function staleWindowsMs(header: string | undefined): {
  swr: number | undefined;
  sie: number | undefined;
} {
  if (!header) return { swr: undefined, sie: undefined };
  const h = header.toLowerCase();
  if (/(?:^|[,\s])(no-store|no-cache|must-revalidate|proxy-revalidate)\b/.test(h)) return { swr: 0, sie: 0 };
  const swr = /(?:^|[,\s])stale-while-revalidate\s*=\s*"?(\d+)/.exec(h);
  const sie = /(?:^|[,\s])stale-if-error\s*=\s*"?(\d+)/.exec(h);
  return {
    swr: swr ? Math.min(Number(swr[1]) * 1000, MAX_TTL_MS) : undefined,
    sie: sie ? Math.min(Number(sie[1]) * 1000, MAX_TTL_MS) : undefined,
  };
}
