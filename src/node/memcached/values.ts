// How a memcached item maps onto a gossipcache value: where its flags live, what its cas unique is, and
// what its exptime means.
//
// Flags. A gossipcache value is just bytes, read the same way over HTTP, gRPC and the library. So a value
// stored with flags 0 (what most clients send for plain bytes and strings) is stored as is, and every
// reader sees exactly the bytes the memcached client sent. Only a value stored with non-zero flags (a
// client's serializer marker: pickled, compressed, an integer…) carries a 12-byte header:
//
//     0xFF 'g' 'c' 'f' 'l' 'a' 'g' 's'   flags (uint32, big-endian)   value…
//
// The trade-off: HTTP and gRPC readers of such a value see the header (the bytes after it are the value;
// without the flags, a client could not decode it anyway). The magic starts with 0xFF, which never occurs
// in UTF-8 text, so text and JSON values from an origin are never mistaken for a header. A value stored
// via memcached with flags 0 that happens to begin with the magic gets the header too (flags 0), so it
// reads back exactly. What remains: a binary value loaded from an origin that begins with these exact 8
// bytes would read over memcached as flagged (and shortened by 12 bytes) — over HTTP it is unaffected.

import { createHash } from 'node:crypto';
import { RELATIVE_EXPTIME_MAX_S } from './parser.js';

export const FLAGS_MAGIC = Buffer.from([0xff, 0x67, 0x63, 0x66, 0x6c, 0x61, 0x67, 0x73]);
export const FLAGS_HEADER_BYTES = FLAGS_MAGIC.length + 4;

/** True when `v` starts with the flags header. One byte compare for almost every value. */
export function hasFlagsHeader(v: Uint8Array): boolean {
  if (v.length < FLAGS_HEADER_BYTES || v[0] !== 0xff) return false;
  for (let i = 1; i < FLAGS_MAGIC.length; i++) if (v[i] !== FLAGS_MAGIC[i]) return false;
  return true;
}

/** The flags of a stored value (0 without a header). */
export function flagsOf(v: Uint8Array): number {
  if (!hasFlagsHeader(v)) return 0;
  return ((v[8] << 24) | (v[9] << 16) | (v[10] << 8) | v[11]) >>> 0;
}

/** The bytes to store for a memcached item: a copy of `data`, with the header when it needs one. */
export function encodeItem(data: Uint8Array, flags: number): Buffer {
  if (flags === 0 && !hasFlagsHeader(data)) return Buffer.from(data);
  const out = Buffer.allocUnsafe(FLAGS_HEADER_BYTES + data.length);
  FLAGS_MAGIC.copy(out, 0);
  out.writeUInt32BE(flags >>> 0, FLAGS_MAGIC.length);
  out.set(data, FLAGS_HEADER_BYTES);
  return out;
}

/**
 * `gets`' cas unique: the first 64 bits of SHA-256 over the stored bytes (header included), as an
 * unsigned decimal. Derived from the value, not a counter, so every node reports the same unique for
 * the same value without coordination, and it changes whenever the value or its flags change. (Setting
 * the same bytes again gives the same unique — for a compare-and-swap that is harmless: the value the
 * client compared against is the value that is there.)
 */
export function casUnique(v: Uint8Array): string {
  if (v.length <= MEMO_MIN_BYTES) return sha256Unique(v);
  let u = uniqueOfLarge.get(v);
  if (u === undefined) {
    u = sha256Unique(v);
    uniqueOfLarge.set(v, u);
  }
  return u;
}

/**
 * Uniques of values over this size are remembered per Buffer. Such a value is the cache's own Buffer, handed
 * out as is on every hit and never written to, so its unique is computed once in its life. Without this a
 * `gets` hashed every value on every hit, synchronously: one 4 KB line of `gets` naming an 8 MiB value
 * 1,000 times stopped the node (every client, gossip included) for 5 s. A value up to 1 KiB hashes in about
 * a microsecond, and the copy a hit hands out is new each time, so it is not remembered.
 */
const MEMO_MIN_BYTES = 1024;
const uniqueOfLarge = new WeakMap<Uint8Array, string>();

function sha256Unique(v: Uint8Array): string {
  return createHash('sha256').update(v).digest().readBigUInt64BE(0).toString();
}

/**
 * memcached's exptime in ms from now: 0 = never expires (undefined), up to 30 days = relative seconds,
 * above = an absolute unix time; negative, or an absolute time not in the future = already expired (0).
 */
export function exptimeToTtlMs(exptime: number, nowMs: number): number | undefined {
  if (exptime === 0) return undefined;
  if (exptime < 0) return 0;
  if (exptime <= RELATIVE_EXPTIME_MAX_S) return exptime * 1000;
  return Math.max(0, exptime * 1000 - nowMs);
}
