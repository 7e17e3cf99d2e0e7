// What glibc's malloc does with large values, and the room the store keeps for it.
//
// glibc serves a block of 128 KiB or more with an mmap of its own, given back to the system when freed —
// until it frees such a block: it then raises its threshold to that block's size (up to 32 MiB), so after
// the first 4 MB value is evicted, values of 128 KiB–4 MB come from its heap, and the holes they leave
// when freed stay in RSS. glibc reads the threshold once, at start (MALLOC_MMAP_THRESHOLD_ or the
// glibc.malloc.mmap_threshold tunable); a running process can only find out whether it was fixed. The
// `gossipcache` command fixes it (bin/gossipcache). Where it floats, the store keeps part of its budget
// free of large values instead (heapHoleReserveBytes), so RSS stays within cacheBytes + the allowance at
// the cost of that much capacity for large values. docs/memory.md, "The allocator", has the measurements.

import { readFileSync } from 'node:fs';

/** What the check reads: the environment node started with, and whether the C library is glibc. */
export interface AllocatorFacts {
  env: Readonly<Record<string, string | undefined>>;
  glibc: boolean;
}

/** Values of this size or more are what glibc mmaps while its threshold is fixed at 128 KiB. */
export const MMAP_VALUE_BYTES = 128 * 1024;

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
  // glibc's soname is libc.so.6 (older installs name the file libc-2.NN.so); musl's is ld-musl-*.so.1.
  const glibc = /\/libc(?:\.so\.6|-2\.\d+\.so)$/m.test(maps);
  let env: Record<string, string | undefined> = process.env;
  try {
    env = {};
    for (const kv of readFileSync('/proc/self/environ', 'latin1').split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  } catch {
    env = process.env;
  }
  return { env, glibc };
}

/** Whether glibc's mmap threshold floats (glibc, and neither the variable nor the tunable fixed it). */
export function mmapThresholdFloats(facts: AllocatorFacts): boolean {
  if (!facts.glibc) return false;
  if (facts.env.MALLOC_MMAP_THRESHOLD_ !== undefined) return false;
  return !/glibc\.malloc\.mmap_threshold=/.test(facts.env.GLIBC_TUNABLES ?? '');
}

let floats: boolean | undefined;
/** mmapThresholdFloats for this process, read once (it cannot change while the process runs). */
export function processMmapThresholdFloats(): boolean {
  floats ??= mmapThresholdFloats(allocatorFacts());
  return floats;
}

/**
 * Of a budget of `budgetBytes`, what values of MMAP_VALUE_BYTES or more may not use while the threshold
 * floats: 32 MiB + 1/64 of the budget, at most half of it. Measured (churn of 1 KB–4 MB values, 10× the
 * budget, as fast as the process copies; docs/memory.md, "The allocator"): RSS past cacheBytes with the
 * threshold floating and no reserve +68 MiB at a 64 MiB budget, +74..+87 at 256 MiB, +78..+88 at 1 GiB, +120 at
 * 4 GiB (fixed: +44..+54 at 256 MiB, +56 at 4 GiB); with this reserve +34, +48..+53, +44, +15. The holes
 * grow with the heap: a flat 32 MiB left +82 at 4 GiB.
 */
export function heapHoleReserveBytes(budgetBytes: number, thresholdFloats: boolean): number {
  if (!thresholdFloats || budgetBytes <= 0) return 0;
  return Math.floor(Math.min(budgetBytes / 2, 32 * 2 ** 20 + budgetBytes / 64));
}

/** A warning to log at start when glibc's mmap threshold is left to float; undefined when it is fixed. */
export function mmapThresholdWarning(facts: AllocatorFacts): string | undefined {
  if (!mmapThresholdFloats(facts)) return undefined;
  return (
    "glibc's mmap threshold is not fixed: each group keeps 32 MiB + 1/64 of its cacheBytes free of values of " +
    '128 KiB or more, room for the holes they leave in the heap; start the node with the gossipcache command, ' +
    'or set MALLOC_MMAP_THRESHOLD_=131072, to use all of it (docs/memory.md)'
  );
}
