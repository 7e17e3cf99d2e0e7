// Reading `Cache-Control` (RFC 9111 §5.2, RFC 5861) where a node takes lifetimes from HTTP: the
// origin's answers (origin.ts) and PUT requests (http.ts). Values are clamped to MAX_TTL_MS here,
// because a long enough number of seconds would become Infinity, which the group reads as "never".

import { MAX_TTL_MS } from '../cache.js';

/**
 * The header's directives, names lower-cased, each with its value (unquoted) or `true`. A quoted value
 * may hold commas and `=` (`ext="a, max-age=999"` is one directive, not a max-age). The first of a
 * repeated directive wins.
 */
function directives(header: string): Map<string, string | true> {
  const out = new Map<string, string | true>();
  let i = 0;
  const n = header.length;
  while (i < n) {
    while (i < n && (header[i] === ',' || header[i] === ' ' || header[i] === '\t')) i++;
    let j = i;
    while (j < n && header[j] !== '=' && header[j] !== ',') j++;
    const name = header.slice(i, j).trim().toLowerCase();
    let value: string | true = true;
    if (j < n && header[j] === '=') {
      j++;
      while (j < n && (header[j] === ' ' || header[j] === '\t')) j++;
      if (header[j] === '"') {
        let v = '';
        j++;
        while (j < n && header[j] !== '"') {
          if (header[j] === '\\' && j + 1 < n) j++;
          v += header[j++];
        }
        j++; // the closing quote
        value = v;
        while (j < n && header[j] !== ',') j++;
      } else {
        const s = j;
        while (j < n && header[j] !== ',') j++;
        value = header.slice(s, j).trim();
      }
    }
    if (name !== '' && !out.has(name)) out.set(name, value);
    i = j + 1;
  }
  return out;
}

/** delta-seconds (RFC 9111 §1.2.2) in ms, clamped; undefined when not one (an invalid lifetime). */
function deltaMs(v: string | true | undefined): number | undefined {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v) * 1000, MAX_TTL_MS);
}

/**
 * TTL from `Cache-Control`: `s-maxage` (shared caches, which we are) over `max-age`. `no-store`,
 * `no-cache` and `private` (not for a shared cache) win over either, and an invalid lifetime
 * (`max-age=abc`) counts as stale (RFC 9111 §4.2.1): all give a TTL of 0 (stale at once: the value is
 * served to the waiting callers and loaded again next time). Absent = no expiry.
 */
export function maxAgeMs(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const d = directives(header);
  if (d.has('no-store') || d.has('no-cache') || d.has('private')) return 0;
  const named = d.has('s-maxage') ? d.get('s-maxage') : d.get('max-age');
  if (named === undefined) return undefined;
  return deltaMs(named) ?? 0;
}

/**
 * What the origin's `Age` (seconds the response already spent in caches on its way) takes off its
 * lifetime, in ms: 0 when absent or not delta-seconds.
 */
export function ageMs(header: string | undefined): number {
  return header === undefined ? 0 : (deltaMs(header.trim()) ?? 0);
}

/**
 * The stale windows of RFC 5861 from `Cache-Control`: `stale-while-revalidate=N` and
 * `stale-if-error=N` (seconds, after the value's max-age), in ms; undefined when the response names
 * none, so that the group's default window (GOSSIPCACHE_STALE_WHILE_REVALIDATE / _IF_ERROR) applies.
 * Both are 0 — overriding any default — when the response forbids serving it stale: `no-store` (never
 * kept), `no-cache`, `private`, `must-revalidate` and `proxy-revalidate` (RFC 9111 §5.2.2: no reuse
 * without validation).
 */
export function staleWindowsMs(header: string | undefined): {
  swr: number | undefined;
  sie: number | undefined;
} {
  if (!header) return { swr: undefined, sie: undefined };
  const d = directives(header);
  for (const k of ['no-store', 'no-cache', 'private', 'must-revalidate', 'proxy-revalidate']) {
    if (d.has(k)) return { swr: 0, sie: 0 };
  }
  const swr = d.get('stale-while-revalidate');
  const sie = d.get('stale-if-error');
  return {
    swr: swr === undefined ? undefined : (deltaMs(swr) ?? 0),
    sie: sie === undefined ? undefined : (deltaMs(sie) ?? 0),
  };
}
