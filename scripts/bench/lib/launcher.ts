// The environment bin/gossipcache (the `gossipcache` command) adds before it execs node: read from the launcher
// itself, so a bench that compares "as the command starts it" with glibc's default measures what it sets.
import { readFileSync } from 'node:fs';

export function launcherEnv(): Record<string, string> {
  const m = /MALLOC_MMAP_THRESHOLD_="\$\{MALLOC_MMAP_THRESHOLD_-(\d+)\}"/.exec(
    readFileSync(new URL('../../../bin/gossipcache', import.meta.url), 'utf8'),
  );
  if (!m) throw new Error('bin/gossipcache: no MALLOC_MMAP_THRESHOLD_ default found');
  return { MALLOC_MMAP_THRESHOLD_: m[1] };
}
