// Where a key goes in an HTTP origin request: the `{key}` slot of a URL template such as
// `http://backend:8000/items/{key}`. The template is parsed once; each load then writes the request
// target (`/items/<key percent-encoded>`) by hand and it is sent as is. It never goes through a URL
// parser again, because a parser resolves dot segments: the key `..` in `/items/{key}` would become
// `GET /` — and so would `%2E%2E`, which WHATWG URL also treats as `..` — and the origin's answer for
// another path would be cached under the key. A key that fills a whole path segment and is a dot
// segment (`.` or `..`, in any spelling) is refused instead: most origins (and proxies such as nginx)
// resolve `/items/%2E%2E` to `/` themselves, so no encoding can carry it safely.

import { InvalidKeyError } from '../errors.js';

/** A parsed `http(s)://…{key}…` template. */
export interface OriginTemplate {
  /** `http://host:port` (no userinfo): what connections are opened to. */
  origin: string;
  /** Request target before and after the key: `/items/` and `` for `…/items/{key}`. */
  before: string;
  after: string;
  /** `Basic …` from the template's userinfo, if it has one. */
  authorization?: string;
  /** The template without userinfo, for logs. */
  description: string;
  /** The key's slot is in the path (not the query): dot segments matter there. */
  inPath: boolean;
}

// Stands for the key while the template is normalised by the URL parser (only the fixed parts are).
const SLOT = 'gossipcache-key-slot-3f9a1c';

/** Parses and validates a template; throws Error saying what is wrong. */
export function parseOriginTemplate(template: string): OriginTemplate {
  if (!/^https?:\/\//.test(template)) throw new Error('expected an http:// or https:// URL');
  const at = template.indexOf('{key}');
  if (at === -1) throw new Error('has no {key} slot');
  let url: URL;
  try {
    url = new URL(template.slice(0, at) + SLOT + template.slice(at + 5));
  } catch {
    throw new Error('is not a valid URL');
  }
  const target = url.pathname + url.search;
  const i = target.indexOf(SLOT);
  if (i === -1 || target.indexOf(SLOT, i + 1) !== -1) {
    throw new Error('must have {key} once, in the path or the query (not the host, userinfo or fragment)');
  }
  const origin = `${url.protocol}//${url.host}`;
  let authorization: string | undefined;
  if (url.username !== '' || url.password !== '') {
    const user = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    authorization = `Basic ${Buffer.from(user).toString('base64')}`;
  }
  const before = target.slice(0, i);
  const after = target.slice(i + SLOT.length);
  return {
    origin,
    before,
    after,
    authorization,
    description: origin + before + '{key}' + after,
    inPath: i < url.pathname.length,
  };
}

/**
 * The request target for `key`: the template's fixed parts around the percent-encoded key
 * (encodeURIComponent: `/`, `?`, `#`, `%` and every non-ASCII byte are escaped, so the key stays in
 * its slot). Throws InvalidKeyError for a key that cannot be sent (unpaired surrogate, dot segment).
 */
export function originTarget(t: OriginTemplate, key: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(key);
  } catch {
    throw new InvalidKeyError('key cannot be sent to the origin: it has an unpaired UTF-16 surrogate');
  }
  if (t.inPath && encoded.length <= 6 && isDotSegment(segmentAround(t.before, encoded, t.after))) {
    throw new InvalidKeyError(
      `key "${key}" cannot be sent to the origin: it would be the path segment "${key}", which URL ` +
        'resolution removes, so the origin would answer for another path',
    );
  }
  return t.before + encoded + t.after;
}

/** The whole path segment the key lands in: the template's text up to the slashes on either side. */
function segmentAround(before: string, encoded: string, after: string): string {
  let end = after.length;
  for (let i = 0; i < after.length; i++) {
    const c = after.charCodeAt(i);
    if (c === 47 /* / */ || c === 63 /* ? */) {
      end = i;
      break;
    }
  }
  return before.slice(before.lastIndexOf('/') + 1) + encoded + after.slice(0, end);
}

/** `.` or `..`, with any dot written as `%2e`/`%2E` (what WHATWG URL and most servers resolve). */
export function isDotSegment(segment: string): boolean {
  const s = segment.toLowerCase().replaceAll('%2e', '.');
  return s === '.' || s === '..';
}
