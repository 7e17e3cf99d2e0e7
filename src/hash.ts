// A seeded hash of a string for the hash tables of our own keyed by strings a client chooses: the key
// index (keyindex.ts) and the flights by key (flight.ts). One multiply per UTF-16 code unit (a bijection
// of the state, so keys of one length collide only by the final mix), then murmur3's finaliser so the low
// bits — the bucket — depend on every unit. Read straight from the string: cheaper than V8's own hashing
// of a request's new key string, and than writing it to bytes first (measured). Each table draws its
// seed with `randomSeed`, so which keys share a bucket cannot be worked out from outside; a table whose
// chain still grows long draws a new one.

import { randomBytes } from 'node:crypto';

/** `key`'s hash under `seed` (an unsigned 32-bit integer). */
export function hashString(key: string, seed: number): number {
  let h = seed ^ key.length;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seed from the system's random source. */
export function randomSeed(): number {
  return randomBytes(4).readUInt32LE(0);
}
