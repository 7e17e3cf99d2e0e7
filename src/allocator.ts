// What glibc's malloc does with large values, and the room the store keeps for it.
//
// glibc serves a block of 128 KiB or more with an mmap of its own, given back to the system when freed —
// until it frees such a block: it then raises its threshold to that block's size (up to 32 MiB), so after
// the first 4 MB value is evicted, values of 128 KiB–4 MB come from its heap, and the holes they leave
// when freed stay in RSS. glibc reads the threshold once, at start (MALLOC_MMAP_THRESHOLD_ or the
// glibc.malloc.mmap_threshold tunable); a running process can only find out whether it was fixed. The
// `gossipcache` command fixes it (bin/gossipcache). Where it floats, the store keeps part of its budget
// free of large values instead (heapHoleReserveBytes), so RSS stays within cacheBytes + the allowance at
// the cost of that much capacity while large values are cached. docs/memory.md, "The allocator", has the
// measurements.

import { readFileSync } from 'node:fs';

/** What the check reads: the environment node started with, and whether the C library is glibc. */
export interface AllocatorFacts {
  env: Readonly<Record<string, string | undefined>>;
  glibc: boolean;
}

/** Values of this size or more are what glibc mmaps while its threshold is fixed at 128 KiB. */
export const MMAP_VALUE_BYTES = 128 * 1024;

/**
 * Whether a /proc/<pid>/maps text maps glibc. Its soname is libc.so.6 (older installs name the file
 * libc-2.NN.so); musl's is ld-musl-*.so.1. A library replaced on disk while the process runs (a package
 * upgrade) is listed with " (deleted)" after its path.
 */
export function glibcMapped(maps: string): boolean {
  return /\/libc(?:\.so\.6|-2\.\d+\.so)(?: \(deleted\))?$/m.test(maps);
}

/**
 * This process's facts, read from /proc (Linux): the environment it started with (what glibc read —
 * assigning process.env later changes nothing), and whether glibc is mapped. Elsewhere (no /proc): not
 * glibc. Cheap (two small reads) and without side effects, unlike process.report (which may resolve the
 * names of open sockets' peers).
 */
export function allocatorFacts(): AllocatorFacts {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'latin1');
  } catch {
    return { env: process.env, glibc: false };
  }
  const glibc = glibcMapped(maps);
  let environ: string;
  try {
    environ = readFileSync('/proc/self/environ', 'latin1');
  } catch {
    return { env: process.env, glibc };
  }
  const env: Record<string, string> = {};
  for (const kv of environ.split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { env, glibc };
}

/** glibc ignores a threshold above this (HEAP_MAX / 2 on 64-bit): it then keeps floating. */
const MAX_FIXED_THRESHOLD = 32 * 2 ** 20;

/**
 * The mmap threshold the environment fixes, or undefined when it floats: the glibc.malloc.mmap_threshold
 * tunable (GLIBC_TUNABLES), else MALLOC_MMAP_THRESHOLD_; a value glibc would not take (not a number of bytes,
 * or over 32 MiB) leaves it floating.
 */
export function fixedMmapThreshold(env: AllocatorFacts['env']): number | undefined {
  const tunable = /(?:^|:)glibc\.malloc\.mmap_threshold=([^:]*)/.exec(env.GLIBC_TUNABLES ?? '')?.[1];
  const raw = (tunable ?? env.MALLOC_MMAP_THRESHOLD_)?.trim();
  if (raw === undefined || raw === '') return undefined;
  const v = Number(raw);
  return Number.isInteger(v) && v >= 0 && v <= MAX_FIXED_THRESHOLD ? v : undefined;
}

/**
 * Whether values of MMAP_VALUE_BYTES or more may come from glibc's heap (and leave holes there): on glibc,
 * when the threshold floats or is fixed above that size.
 */
export function largeValuesInHeap(facts: AllocatorFacts): boolean {
  if (!facts.glibc) return false;
  const t = fixedMmapThreshold(facts.env);
  return t === undefined || t > MMAP_VALUE_BYTES;
}

let processFacts: AllocatorFacts | undefined;
/** allocatorFacts of this process, read once (they cannot change while it runs): the node's start and every group. */
export function processAllocatorFacts(): AllocatorFacts {
  processFacts ??= allocatorFacts();
  return processFacts;
}

/**
 * Of a budget of `budgetBytes`, what values of MMAP_VALUE_BYTES or more may not use while they may come from
 * glibc's heap: 32 MiB + 1/64 of the budget, at most half of it. Measured (churn of 1 KB–4 MB values, 10× the
 * budget, as fast as the process copies; docs/memory.md, "The allocator"): RSS past cacheBytes with the
 * threshold floating and no reserve +68 MiB at a 64 MiB budget, +74..+87 at 256 MiB, +78..+88 at 1 GiB, +120 at
 * 4 GiB (fixed: +44..+54 at 256 MiB, +56 at 4 GiB); with this reserve +34, +48..+53, +44, +15. The holes
 * grow with the heap: a flat 32 MiB left +82 at 4 GiB.
 */
export function heapHoleReserveBytes(budgetBytes: number, largeValuesInHeap: boolean): number {
  if (!largeValuesInHeap || budgetBytes <= 0) return 0;
  return Math.floor(Math.min(budgetBytes / 2, 32 * 2 ** 20 + budgetBytes / 64));
}

/** A warning to log at start when large values may come from glibc's heap; undefined when they cannot. */
export function mmapThresholdWarning(facts: AllocatorFacts): string | undefined {
  if (!largeValuesInHeap(facts)) return undefined;
  const t = fixedMmapThreshold(facts.env);
  return (
    (t === undefined
      ? "glibc's mmap threshold is not fixed"
      : `glibc's mmap threshold is fixed at ${t} bytes, above 131072`) +
    ': each group keeps 32 MiB + 1/64 of its cacheBytes free of values of 128 KiB or more, room for the holes ' +
    'they leave in the heap; start the node with the gossipcache command, or set MALLOC_MMAP_THRESHOLD_=131072, ' +
    'to use all of it (docs/memory.md)'
  );
}
