/** Thrown by a getter (and returned to callers) when a key has no value. Never cached. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
}
