// The keys and values of the memory bench, shared by gossipcache's child and the memcached loader so both
// store exactly the same items: 11-byte ASCII keys, `valueBytes`-byte values derived from the key.
export function keyOf(i: number): string {
  return `key:${String(i).padStart(7, '0')}`;
}

export function itemValue(key: string, valueBytes: number): string {
  return `v-${key}`.padEnd(valueBytes, '.').slice(0, valueBytes);
}
