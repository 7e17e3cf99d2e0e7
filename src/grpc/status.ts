// One mapping between errors and gRPC status codes, used by the unary Get, the peer stream and the
// peer client, so every path answers the same failure with the same code and message.

import { status } from '@grpc/grpc-js';
import { isNotFound, NotFoundError } from '../errors.js';

/** A code plus a message that says what was wrong: what a reply carries when it is not a value. */
export interface Failure {
  code: status;
  message: string;
}

/** Message prefix of NOT_FOUND for a group this node does not serve (not "the key has no value"). */
export const UNKNOWN_GROUP = 'unknown group';

export function unknownGroup(group: string): Failure {
  return {
    code: status.NOT_FOUND,
    message: `${UNKNOWN_GROUP} ${JSON.stringify(group)}: this node has no such group; create it with new Group({ name }) on every node`,
  };
}

export function emptyKey(): Failure {
  return { code: status.INVALID_ARGUMENT, message: 'key is empty: send a non-empty key' };
}

export function tooLarge(group: string, key: string, bytes: number, limit: number): Failure {
  return {
    code: status.RESOURCE_EXHAUSTED,
    message:
      `value of key ${JSON.stringify(key.length > 200 ? key.slice(0, 200) + '…' : key)} in group ` +
      `${JSON.stringify(group)} is ${bytes} bytes, over the ${limit}-byte message limit; ` +
      'raise maxMessageBytes on every node and client, or store smaller values',
  };
}

/** Raised on the server when a request's own deadline passes (so it is told apart from a cancel). */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

/** Raised on the server when the client went away. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}

/** How the server reports an error from group.getEntry. */
export function failureOf(err: unknown): Failure {
  const e = err instanceof Error ? err : new Error(String(err));
  if (isNotFound(e)) return { code: status.NOT_FOUND, message: e.message || 'key not found' };
  switch (e.name) {
    case 'InvalidKeyError':
      return { code: status.INVALID_ARGUMENT, message: e.message };
    case 'DeadlineError':
    case 'GetterTimeoutError':
    case 'PeerTimeoutError':
    case 'TimeoutError':
      return { code: status.DEADLINE_EXCEEDED, message: e.message || 'deadline exceeded' };
    case 'CancelledError':
    case 'AbortError':
      return { code: status.CANCELLED, message: e.message || 'cancelled' };
    default:
      // The getter (or the owner it was routed to) failed: the caller may retry or load itself.
      return { code: status.UNAVAILABLE, message: `getter failed: ${e.message || e.name}` };
  }
}

/** A peer answered with a failure, or could not be reached. `code` is the gRPC status code. */
export class PeerError extends Error {
  override name = 'PeerError';
  constructor(
    readonly peer: string,
    readonly code: status,
    detail: string,
  ) {
    super(`peer ${peer}: ${status[code] ?? code}: ${detail}`);
  }
}

/**
 * How the peer client turns a failure back into an error for the core: NOT_FOUND of a key becomes
 * NotFoundError (the key has no value anywhere; with the ttl the owner remembers it for, if any);
 * everything else is a PeerError, after which the core loads locally. NOT_FOUND of an unknown group is a PeerError too: that peer is misconfigured,
 * which says nothing about the key.
 */
export function errorOf(peer: string, code: status, message: string, notFoundTtlMs = 0): Error {
  if (code === status.NOT_FOUND && !message.startsWith(UNKNOWN_GROUP)) {
    // ttl: how long the owner still remembers this NotFound (negative caching); 0 = not at all.
    return new NotFoundError(message, notFoundTtlMs > 0 ? { ttlMs: notFoundTtlMs } : undefined);
  }
  return new PeerError(peer, code, message);
}
