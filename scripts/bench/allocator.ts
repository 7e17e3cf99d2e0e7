// glibc's mmap threshold, both ways in one run: the default (glibc raises it to the largest mmapped block
// freed, up to 32 MiB) and fixed at what bin/gossipcache (the `gossipcache` command) sets. Churn: the memory
// bench's churn case (values of 1 KB–4 MB through a Group until 10× cacheBytes went through), several fresh
// processes each way, alternating; max RSS over cacheBytes against the issue's +64 MiB. Cost: loading and
// reading back values of 256 KiB and 2 MiB (scripts/bench/lib/large-values-child.ts), each way, alternating.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { LargeConfig, LargeReport } from './lib/large-values-child.js';
import { launcherEnv } from './lib/launcher.js';
import { isMain, runAlone } from './lib/main.js';
import type { ChildConfig, ChurnReport } from './lib/memory-child.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'allocator';
const MiB = 1024 * 1024;
const CHURN_ALLOWANCE = 64 * MiB;

/** The caller's environment without any malloc threshold: glibc's default behaviour. */
function defaultEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.MALLOC_MMAP_THRESHOLD_;
  delete env.GLIBC_TUNABLES;
  return env;
}

function child<T>(script: string, cfg: unknown, env: NodeJS.ProcessEnv, timeoutS: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--max-old-space-size=4096', '--import', 'tsx', script, JSON.stringify(cfg)],
      { timeout: timeoutS * 1000, maxBuffer: 1 << 20, env },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${script}: ${err.message}\n${stderr}`))
          : resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as T),
    );
  });
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!existsSync('dist/index.js'))
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/index.js missing: npm run build' } }];
  const fixed = launcherEnv();
  const ways: Array<[string, NodeJS.ProcessEnv]> = [
    ['glibc default', defaultEnv()],
    [
      `as bin/gossipcache starts it (MALLOC_MMAP_THRESHOLD_=${fixed.MALLOC_MMAP_THRESHOLD_})`,
      { ...defaultEnv(), ...fixed },
    ],
  ];
  const rows: BenchRow[] = [];

  const cacheBytes = (quick ? 128 : 256) * MiB;
  const churnCfg: ChildConfig = {
    dist: 'dist',
    mode: 'churn',
    cacheBytes,
    minBytes: 1000,
    maxBytes: 4_000_000,
    factor: 10,
  };
  const runs = Number(process.env.ALLOCATOR_CHURN_RUNS ?? (quick ? 2 : 4));
  const over: number[][] = ways.map(() => []);
  const loadS: number[][] = ways.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (const [i, [, env]] of ways.entries()) {
      const c = await child<ChurnReport>('scripts/bench/lib/memory-child.ts', churnCfg, env, 120);
      over[i].push(round((c.maxRss - c.before.rss - cacheBytes) / MiB));
      loadS[i].push(c.loadS);
    }
  }
  for (const [i, [who]] of ways.entries()) {
    rows.push({
      bench: BENCH,
      case: `churn 1 KB–4 MB, 10× cacheBytes ${cacheBytes / MiB} MiB, ${runs} runs: ${who}`,
      metrics: {
        'max_rss_over_cacheBytes_MiB (each run)': over[i].join(' '),
        max_MiB: Math.max(...over[i]),
        median_MiB: median(over[i]),
        runs_over_64_MiB: over[i].filter((o) => o * MiB > CHURN_ALLOWANCE).length,
        median_load_s: round(median(loadS[i]), 2),
      },
      goal: `RSS ≤ cacheBytes + ${CHURN_ALLOWANCE / MiB} MiB`,
    });
  }

  for (const [valueBytes, keys] of [
    [256 * 1024, quick ? 200 : 400],
    [2 * MiB, quick ? 50 : 100],
  ] as const) {
    const cfg: LargeConfig = { dist: 'dist', valueBytes, keys, rounds: quick ? 5 : 10 };
    const got: LargeReport[][] = ways.map(() => []);
    for (let r = 0; r < (quick ? 2 : 3); r++)
      for (const [i, [, env]] of ways.entries())
        got[i].push(await child<LargeReport>('scripts/bench/lib/large-values-child.ts', cfg, env, 120));
    for (const [i, [who]] of ways.entries()) {
      const m = (f: (x: LargeReport) => number) => round(median(got[i].map(f)), 1);
      rows.push({
        bench: BENCH,
        case: `${valueBytes / 1024} KiB values, median of ${got[i].length}: ${who}`,
        metrics: {
          'load_us (miss: getter + cache)': m((x) => x.loadUs),
          'get_us (hit, a copy)': m((x) => x.getUs),
          'getEntry_us (hit, shared)': m((x) => x.getEntryUs),
        },
        ...(i > 0
          ? {
              baseline: ways[0][0],
              ratio: median(got[i].map((x) => x.getUs)) / median(got[0].map((x) => x.getUs)),
            }
          : {}),
      });
    }
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
