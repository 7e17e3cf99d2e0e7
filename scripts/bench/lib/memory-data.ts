// The keys and values of the memory bench, shared by gossipcache's child and the memcached loader so both
// store exactly the same items: 11-byte ASCII keys, `valueBytes`-byte values derived from the key.

/** "0000" … "9999", made once (before the child's baseline is measured). */
const DIGITS4 = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));

/**
 * `key:` and `i` in 7 digits. Not `String(i)` per key: V8 keeps the strings that number-to-string
 * conversion makes in a cache of the last 16 384, so in the child every key's digits outlived a few
 * young-generation collections and were promoted — ~25 B per item surviving, which is what grows V8's
 * young generation from 4 to 16–32 MiB during the load (RSS the cache itself does not use; measured:
 * docs/memory.md, "V8's young generation"). A server's keys come from requests and never pass that cache.
 */
export function keyOf(i: number): string {
  if (!(i >= 0 && i < 10_000_000 && Number.isInteger(i))) return `key:${String(i).padStart(7, '0')}`;
  const hi = Math.floor(i / 10_000);
  return `key:${DIGITS4[hi].slice(1)}${DIGITS4[i % 10_000]}`;
}

export function itemValue(key: string, valueBytes: number): string {
  return `v-${key}`.padEnd(valueBytes, '.').slice(0, valueBytes);
}
