// Prints the top functions by self time of V8 .cpuprofile files (from `node --cpu-prof`), so a bench that
// misses its goal can say where the time goes. `--last S` keeps only the last S seconds of each profile (the
// load window: a node's profile ends when the bench stops it, right after the load), leaving start-up out.
// Usage: node --import tsx scripts/bench/lib/cpuprofile-top.ts <file…> [--top N] [--last S]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  startTime: number;
  endTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (ms) and the total, summed over samples. */
export function selfTimes(
  p: Profile,
  lastS = Number.POSITIVE_INFINITY,
): { total: number; rows: Array<{ name: string; ms: number }> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  const from = p.endTime - lastS * 1e6;
  let at = p.startTime;
  let total = 0;
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0;
    if (at < from) return;
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const n = byId.get(id);
    if (!n) return;
    const f = n.callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    const name = `${f.functionName || '(anonymous)'} ${where}`.trim();
    ms.set(name, (ms.get(name) ?? 0) + dt);
    total += dt;
  });
  const rows = [...ms].map(([name, t]) => ({ name, ms: t })).sort((a, b) => b.ms - a.ms);
  return { total, rows };
}

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
const lastAt = args.indexOf('--last');
const last = lastAt >= 0 ? Number(args[lastAt + 1]) : Number.POSITIVE_INFINITY;
const flagArgs = [topAt, lastAt].filter((i) => i >= 0).flatMap((i) => [i, i + 1]);
const files = args.filter((_, i) => !flagArgs.includes(i));
for (const file of files) {
  const { total, rows } = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as Profile, last);
  console.log(`\n${file}: ${(total / 1000).toFixed(1)} s sampled`);
  for (const r of rows.slice(0, top)) {
    console.log(
      `${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.name}`,
    );
  }
}
