// The errors callers of a Group can see. Each one says what was wrong and what to do, because they end
// up in logs and HTTP responses far from the code that threw them.

/**
 * A key has no value. A getter throws it (`throw new NotFoundError(key)`), an owner returns it to its
 * peers, and `group.get` rejects with it. Not cached unless it carries `ttlMs` (negative caching): then
 * the group remembers "no value" for that long (counted in its byte budget, dropped by `remove`/`set`)
 * and answers it without asking the getter again. An owner's NotFound reaches its peers with the time
 * it has left.
 */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
  /** How long "no value" may be remembered, in ms (> 0); undefined = not at all. */
  readonly ttlMs?: number;
  /**
   * Where the group that rejects with it learnt there is no value (set by that group): a NotFound it
   * remembered (`hit`), the key's owner (`peer`), or its getter just now (`getter`). For the HTTP front's
   * `Cache-Status`; undefined when unknown.
   */
  source?: 'hit' | 'peer' | 'getter';
  constructor(message?: string, opts?: { ttlMs?: number }) {
    super(message);
    const ttl = opts?.ttlMs;
    if (ttl !== undefined) {
      if (typeof ttl !== 'number' || Number.isNaN(ttl) || ttl < 0) {
        throw new TypeError(`NotFoundError: ttlMs must be a number of ms >= 0, got ${String(ttl)}`);
      }
      if (ttl > 0) this.ttlMs = ttl;
    }
  }
}

/** A key is not a string, is empty, or is longer than the group's `maxKeyBytes` (UTF-8 bytes). */
export class InvalidKeyError extends TypeError {
  override name = 'InvalidKeyError';
}

/**
 * The getter did not settle within the group's `getterTimeoutMs`. The getter's signal is aborted with
 * this error; the flight is dropped so the next get of the key loads again.
 */
export class GetterTimeoutError extends Error {
  override name = 'GetterTimeoutError';
}

/** A peer did not answer within the group's `peerTimeoutMs`. Internal: the group then loads locally. */
export class PeerTimeoutError extends Error {
  override name = 'PeerTimeoutError';
}

/**
 * The key's owner was reached and answered that its own load of the key failed: its getter threw or did
 * not settle within its `getterTimeoutMs` (the origin is failing or slow). A non-owner rejects with it
 * instead of running its own getter, which would only ask the failing origin once more per node that
 * wants the key, while it is weakest (docs/lifecycle.md). A stale value in its stale-if-error window
 * still answers instead, as after any failed load. Counted in `stats.ownerLoadErrors`; never cached.
 * (An owner that could not be reached — down, leaving, a transport error or timeout — is different: the
 * non-owner then loads the key itself, as groupcache does.)
 */
export class OwnerLoadError extends Error {
  override name = 'OwnerLoadError';
  /** The owner's id (its advertised address). */
  readonly peer: string;
  /**
   * The name of the owner's error: its getter's (e.g. `OriginError`), or `GetterTimeoutError` when the
   * getter did not settle in time. `Error` when the owner sent no usable name.
   */
  readonly ownerError: string;
  constructor(peer: string, ownerError: string, ownerMessage: string) {
    const name = errorName(ownerError);
    super(`the key's owner ${peer} failed to load it: ${name}: ${ownerMessage}`);
    this.peer = peer;
    this.ownerError = name;
  }
}

/** True when `err` is an OwnerLoadError (by name too, like isNotFound). */
export function isOwnerLoadError(err: unknown): err is OwnerLoadError {
  return (
    err instanceof OwnerLoadError ||
    (err instanceof Error &&
      err.name === 'OwnerLoadError' &&
      typeof (err as { ownerError?: unknown }).ownerError === 'string')
  );
}

/**
 * Errors a group's load rejects with that are not a failed load: no value (an answer), a bad key (the
 * request's fault), a caller giving up (AbortError; the gRPC server's CancelledError and DeadlineError),
 * a peer that did not answer. grpc/status.ts failureOf answers the same (a test holds them together).
 */
const NOT_LOAD_FAILURES = new Set([
  'NotFoundError',
  'InvalidKeyError',
  'AbortError',
  'CancelledError',
  'DeadlineError',
  'PeerTimeoutError',
]);

/**
 * What a peer reports to the node that asked it for a key when its own load of the key failed: the name
 * of the error (`OriginError`, `GetterTimeoutError`, ...) when `err`, what `group.server.getEntry(key, {
 * local: true })` rejected with, is a failed load — the getter threw or timed out here, or (for a get
 * that was routed) the key's owner reported the same. Undefined for anything else (NotFound, an invalid
 * key, an AbortError). The caller rules out its own abort first: a rejection after the request's signal
 * aborted is the signal's reason, not a failed load.
 */
export function loadFailureName(err: unknown): string | undefined {
  if (isOwnerLoadError(err)) return err.ownerError;
  if (isNotFound(err)) return undefined;
  const name = err instanceof Error ? err.name : 'Error';
  return NOT_LOAD_FAILURES.has(name) ? undefined : errorName(name);
}

/**
 * An error's name as it may travel between nodes (a gRPC trailer, a FetchReply field) and be shown in
 * logs and HTTP answers: an identifier of at most 64 ASCII letters, digits, `_` or `$`; anything else
 * (a getter's odd name, a hostile peer's bytes) is `Error`.
 */
export function errorName(name: unknown): string {
  return typeof name === 'string' && /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(name) ? name : 'Error';
}

/** A second group with the same name was created in one registry. */
export class DuplicateGroupError extends Error {
  override name = 'DuplicateGroupError';
}

/**
 * True when `err` means "no value". Checks the name too, so errors rebuilt by a transport (or by a second
 * copy of this module) are recognised.
 */
export function isNotFound(err: unknown): boolean {
  return err instanceof NotFoundError || (err instanceof Error && err.name === 'NotFoundError');
}
