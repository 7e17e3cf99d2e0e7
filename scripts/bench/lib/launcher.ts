// The environment and node flags bin/gossipcache (the `gossipcache` command) adds before it execs node: read from
// the launcher itself, so a bench that compares "as the command starts it" with a plain node measures what it sets.
import { readFileSync } from 'node:fs';

const launcher = () => readFileSync(new URL('../../../bin/gossipcache', import.meta.url), 'utf8');

export function launcherEnv(): Record<string, string> {
  const m = /MALLOC_MMAP_THRESHOLD_="\$\{MALLOC_MMAP_THRESHOLD_-(\d+)\}"/.exec(launcher());
  if (!m) throw new Error('bin/gossipcache: no MALLOC_MMAP_THRESHOLD_ default found');
  return { MALLOC_MMAP_THRESHOLD_: m[1] };
}

/** The node flags it passes when NODE_OPTIONS does not size V8's young generation. */
export function launcherNodeArgs(): string[] {
  const m = /\*\) young=(--max-semi-space-size=\d+) ;;/.exec(launcher());
  if (!m) throw new Error('bin/gossipcache: no young-generation flag found');
  return [m[1]];
}
