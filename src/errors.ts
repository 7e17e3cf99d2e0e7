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
