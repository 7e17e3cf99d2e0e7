// One mapping between errors and gRPC status codes, used by the unary Get, the peer stream and the
// peer client, so every path answers the same failure with the same code and message.

import { status } from '@grpc/grpc-js';
import { errorName, isNotFound, isOwnerLoadError, NotFoundError, OwnerLoadError } from '../errors.js';

/** A code plus a message that says what was wrong: what a reply carries when it is not a value. */
export interface Failure {
  code: status;
  message: string;
  /**
   * Set when this node's own load of the key failed (its getter threw or timed out, or the owner it
   * routed the get to reported that): the error's name. A peer that receives it fails its get too
   * instead of loading the key itself (OwnerLoadError). Sent as FetchReply.load_error on the stream and
   * as the LOAD_ERROR_METADATA trailer of a unary Get; absent for every other failure.
   */
  loadError?: string;
}

/**
 * Trailer of a failed unary Get whose failure is the node's own load (Failure.loadError): the error's
 * name. groupcache clients do not read it and see the status code as before.
 */
export const LOAD_ERROR_METADATA = 'gossipcache-load-error';

/** Message prefix of a failed load (UNAVAILABLE): the getter's message follows. */
const GETTER_FAILED = 'getter failed: ';

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

/**
 * How the server reports an error from group.getEntry. A failed load (the getter threw or timed out,
 * or the owner the get was routed to reported so) carries `loadError`: the peer that asked must not
 * load the key itself (errors.ts loadFailureName names the same errors; test/grpc/status.test.ts checks).
 */
export function failureOf(err: unknown): Failure {
  const e = err instanceof Error ? err : new Error(String(err));
  if (isNotFound(e)) return { code: status.NOT_FOUND, message: e.message || 'key not found' };
  if (isOwnerLoadError(e)) {
    // Routed to the owner, whose load failed: reported as that failure, with the owner's error's name.
    const timeout = isTimeoutName(e.ownerError);
    return {
      code: timeout ? status.DEADLINE_EXCEEDED : status.UNAVAILABLE,
      message: timeout ? e.message : GETTER_FAILED + e.message,
      loadError: e.ownerError,
    };
  }
  switch (e.name) {
    case 'InvalidKeyError':
      return { code: status.INVALID_ARGUMENT, message: e.message };
    case 'DeadlineError':
    case 'PeerTimeoutError':
      // The caller's deadline, or a peer that did not answer: nothing was learnt about the origin.
      return { code: status.DEADLINE_EXCEEDED, message: e.message || 'deadline exceeded' };
    case 'GetterTimeoutError':
    case 'TimeoutError':
      // The getter did not settle in time (getterTimeoutMs, or its own AbortSignal.timeout).
      return {
        code: status.DEADLINE_EXCEEDED,
        message: e.message || 'deadline exceeded',
        loadError: e.name,
      };
    case 'CancelledError':
    case 'AbortError':
      return { code: status.CANCELLED, message: e.message || 'cancelled' };
    default:
      // The getter failed. Its error's name travels (loadError), so the peer that asked fails too
      // instead of asking the failing origin again; an outside client sees UNAVAILABLE as before.
      return {
        code: status.UNAVAILABLE,
        message: GETTER_FAILED + (e.message || e.name),
        loadError: errorName(e.name),
      };
  }
}

function isTimeoutName(name: string): boolean {
  return name === 'GetterTimeoutError' || name === 'TimeoutError';
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
 * NotFoundError (the key has no value anywhere; with the ttl the owner remembers it for, if any); a
 * failure that names a load error (`loadError`: FetchReply.load_error, or the unary Get's trailer)
 * becomes OwnerLoadError, after which the core fails the get too; everything else is a PeerError, after
 * which the core loads locally — so does a peer that predates `loadError` and never sends it. NOT_FOUND
 * of an unknown group is a PeerError too: that peer is misconfigured, which says nothing about the key.
 */
export function errorOf(
  peer: string,
  code: status,
  message: string,
  notFoundTtlMs = 0,
  loadError?: string,
): Error {
  if (code === status.NOT_FOUND) {
    if (!message.startsWith(UNKNOWN_GROUP)) {
      // ttl: how long the owner still remembers this NotFound (negative caching); 0 = not at all.
      return new NotFoundError(message, notFoundTtlMs > 0 ? { ttlMs: notFoundTtlMs } : undefined);
    }
  } else if (loadError && code !== status.OK) {
    const detail = message.startsWith(GETTER_FAILED) ? message.slice(GETTER_FAILED.length) : message;
    return new OwnerLoadError(peer, loadError, detail);
  }
  return new PeerError(peer, code, message);
}
