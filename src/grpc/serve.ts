// What the gRPC server shares between its handlers: the group port it serves (ServedGroup, a Group's
// `server` facet), how lifecycle times travel on the wire, and message limits.

import { MAX_TTL_MS } from '../cache.js';
import type { ServedGroup } from '../group.js';
import type { EntryResult } from '../peers.js';

/** group.server.getEntry, with a synchronous throw (a group not built on Group) turned into a rejection. */
export function entryOf(
  group: ServedGroup,
  key: string,
  opts: { signal?: AbortSignal; local?: boolean },
): Promise<EntryResult> {
  try {
    return group.server.getEntry(key, opts);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * A TTL as the wire carries it: 0 = no expiry, so a value that expires right now travels as 1 ms
 * (it must not turn into "never expires" at the receiver); at most MAX_TTL_MS (a group not
 * built on Group may hand out anything), so every client can decode it.
 */
export function wireTtl(ttlMs: number | undefined): number {
  if (ttlMs === undefined || ttlMs === Number.POSITIVE_INFINITY) return 0;
  return ttlMs < MAX_TTL_MS ? Math.max(1, Math.ceil(ttlMs)) : MAX_TTL_MS;
}

/** A stale window's remaining time as the wire carries it: 0 = none, at most MAX_TTL_MS. */
export function wireWindow(ms: number | undefined): number {
  if (ms === undefined || !(ms > 0)) return 0;
  return ms < MAX_TTL_MS ? Math.ceil(ms) : MAX_TTL_MS;
}

/**
 * Metadata key that marks a unary Get, Remove or Set as a peer's: served or changed on that node only,
 * never forwarded. Without it the call is an outside client's (routed / cluster-wide).
 */
export const PEER_METADATA = 'gossipcache-peer';
/** Metadata key on the Fetch stream: the largest value the client accepts, in bytes. */
export const MAX_VALUE_METADATA = 'gossipcache-max-value-bytes';
/** Default largest value, both directions: 64 MiB. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/**
 * Room on top of the largest value for everything else in a message (ids, status text, keys up to
 * the default 64 KiB key limit), so a value of exactly maxMessageBytes still fits.
 */
export const MESSAGE_SLACK_BYTES = 128 * 1024;

/** gRPC channel/server options that let messages up to `maxMessageBytes` (plus slack) through. */
export function messageLimitOptions(maxMessageBytes: number): Record<string, number> {
  const limit = Math.min(maxMessageBytes + MESSAGE_SLACK_BYTES, 0x7fffffff);
  return { 'grpc.max_receive_message_length': limit, 'grpc.max_send_message_length': limit };
}

/** Validates a user-supplied maxMessageBytes (a positive integer below 2 GiB minus slack). */
export function checkMaxMessageBytes(n: number | undefined): number {
  if (n === undefined) return DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(n) || n <= 0 || n > 0x7fffffff - MESSAGE_SLACK_BYTES) {
    throw new RangeError(
      `maxMessageBytes must be a positive integer below ${0x7fffffff - MESSAGE_SLACK_BYTES}, got ${n}`,
    );
  }
  return n;
}
