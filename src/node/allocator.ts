// Whether glibc's mmap threshold is fixed, as the `gossipcache` command fixes it (bin/gossipcache).
// Without it, under churn of large values, freed values leave holes in glibc's heap that stay in RSS:
// in the churn bench RSS went 66–89 MiB past cacheBytes instead of 35–61 (docs/memory.md, "The
// allocator"). glibc reads the setting once, at start, so a running process can only say so.

/** What the check reads: the environment node started with, and whether the C library is glibc. */
export interface AllocatorFacts {
  env: Readonly<Record<string, string | undefined>>;
  glibc: boolean;
}

/** This process's facts (process.report's header names the glibc version on glibc systems). */
export function allocatorFacts(): AllocatorFacts {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
    ?.header;
  return { env: process.env, glibc: typeof header?.glibcVersionRuntime === 'string' };
}

/** A warning to log at start when glibc's mmap threshold is left to float; undefined when it is fixed. */
export function mmapThresholdWarning(facts: AllocatorFacts): string | undefined {
  if (!facts.glibc) return undefined;
  if (facts.env.MALLOC_MMAP_THRESHOLD_ !== undefined) return undefined;
  if (/glibc\.malloc\.mmap_threshold=/.test(facts.env.GLIBC_TUNABLES ?? '')) return undefined;
  return (
    "glibc's mmap threshold is not fixed: under churn of large values RSS can exceed cacheBytes + 64 MiB; " +
    'start the node with the gossipcache command, or set MALLOC_MMAP_THRESHOLD_=131072 (docs/memory.md)'
  );
}
