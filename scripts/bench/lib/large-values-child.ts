// What a value of 128 KiB or more costs to load and to read back, in one fresh process: run by
// scripts/bench/allocator.ts with glibc's default (dynamic) mmap threshold and with the fixed one
// bin/gossipcache sets, where every such allocation is an mmap of fresh pages (page faults) and a munmap
// when freed. Loads: distinct keys, the getter returning a new Buffer as an HTTP origin's body would be.
// Hits: `get` (a copy the caller owns: one allocation of the value's size) and `getEntry` (the shared
// value: none; the control). cacheBytes holds every value (no eviction).
// Usage: node --expose-gc scripts/bench/lib/large-values-child.ts '<json LargeConfig>' (through tsx)

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface LargeConfig {
  dist: string;
  valueBytes: number;
  /** Distinct keys loaded; each then read `rounds` times by get and by getEntry. */
  keys: number;
  rounds: number;
}

export interface LargeReport {
  /** Microseconds per operation. */
  loadUs: number;
  getUs: number;
  getEntryUs: number;
  cached: number;
}

const cfg = JSON.parse(process.argv[2]) as LargeConfig;
const { Group, GroupRegistry } = (await import(
  pathToFileURL(resolve(cfg.dist, 'index.js')).href
)) as typeof import('../../../src/index.js');

const n = cfg.valueBytes;
const group = new Group({
  name: 'large',
  cacheBytes: Math.max(64 << 20, 2 * cfg.keys * (n + 1024)),
  registry: new GroupRegistry(),
  getter: async () => Buffer.allocUnsafeSlow(n).fill(7),
});
const gc = (globalThis as { gc?: () => void }).gc;
// Warm the code paths (and, by default, let glibc raise its threshold once: a value freed).
for (let i = 0; i < 3; i++) await group.get(`warm-${i}`);
for (let i = 0; i < 3; i++) group.server.removeLocal(`warm-${i}`);
gc?.();

let t = performance.now();
for (let i = 0; i < cfg.keys; i++) await group.get(`k${i}`);
const loadUs = ((performance.now() - t) * 1000) / cfg.keys;
const cached = group.cacheStats('main').items;

let sink = 0;
t = performance.now();
for (let r = 0; r < cfg.rounds; r++) for (let i = 0; i < cfg.keys; i++) sink += (await group.get(`k${i}`))[0];
const getUs = ((performance.now() - t) * 1000) / (cfg.rounds * cfg.keys);

t = performance.now();
for (let r = 0; r < cfg.rounds; r++)
  for (let i = 0; i < cfg.keys; i++) sink += (await group.server.getEntry(`k${i}`)).value[0];
const getEntryUs = ((performance.now() - t) * 1000) / (cfg.rounds * cfg.keys);
if (sink === 0) throw new Error('no value read');

group.close();
process.stdout.write(`${JSON.stringify({ loadUs, getUs, getEntryUs, cached } satisfies LargeReport)}\n`);
process.exit(0);
