// `npm run bench`: runs every scripts/bench/<area>.ts module (each exports run({ quick }) → BenchRow[]), each in
// its own process with a time budget, then prints one table and writes bench-results/<timestamp>.json (+ .md).
// Flags: --quick (shorter loads), --only <name>[,<name>…] (module names without .ts), --list.
// Each module's process gets its budget in BENCH_BUDGET_S (seconds).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineInfo, renderMarkdown, renderTable, writeResults } from './lib/format.js';
import type { BenchRow } from './lib/types.js';

const dir = 'scripts/bench';
/** Whole-run budget: `npm run build` before it takes ~5 s and the bound is 10 min. */
const TOTAL_BUDGET_S = 580;
/** Per-module budgets in seconds (full run); --quick takes 3/4 of them. Unknown modules get DEFAULT_BUDGET_S. */
const BUDGET_S: Record<string, number> = {
  core: 55,
  ring: 25,
  front: 85,
  grpc: 60,
  peer: 90,
  herd: 50,
  'swim-sim': 45,
  'swim-real': 50,
  memory: 120,
  handoff: 75,
  // Last: the per-module budgets already add up to the whole-run budget; a full run that used it all skips it.
  memcached: 85,
};
const DEFAULT_BUDGET_S = 45;
const ORDER = Object.keys(BUDGET_S);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const quick = process.argv.includes('--quick');
const only = argValue('--only')
  ?.split(',')
  .map((s) => s.trim().replace(/\.ts$/, ''))
  .filter(Boolean);

const found = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'index.ts' && !f.startsWith('_')) // _name.ts: scratch, not a module
  .map((f) => f.slice(0, -3))
  .sort((a, b) => {
    const ia = ORDER.indexOf(a);
    const ib = ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });

if (process.argv.includes('--list')) {
  for (const m of found) console.log(`${m}\t${BUDGET_S[m] ?? DEFAULT_BUDGET_S} s`);
  process.exit(0);
}
const unknown = (only ?? []).filter((m) => !found.includes(m));
if (unknown.length > 0) {
  console.error(`no bench module named ${unknown.join(', ')}; there are: ${found.join(', ')}`);
  process.exit(2);
}
const modules = only ? found.filter((m) => only.includes(m)) : found;

let current: ReturnType<typeof spawn> | undefined;
/** Signals a module's whole process group: the module and every server it started. */
function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}
function killCurrent(): void {
  killGroup(current?.pid, 'SIGKILL');
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killCurrent();
    process.exit(130);
  });
}

async function runModule(name: string, budgetS: number): Promise<BenchRow[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'gc-bench-run-'));
  const out = join(tmp, 'rows.json');
  try {
    const args = ['--import', 'tsx', join(dir, 'lib/run-module.ts'), join(dir, `${name}.ts`), out];
    if (quick) args.push('--quick');
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', process.stderr, process.stderr],
      detached: true,
      // A module may read its budget to cut long work short and still return rows (memory.ts does).
      env: { ...process.env, BENCH_BUDGET_S: String(budgetS) },
    });
    current = child;
    let timedOut = false;
    let hardKill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGTERM'); // lets the module's exit hooks stop its servers
      hardKill = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 3000);
    }, budgetS * 1000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(timer);
    if (hardKill) await new Promise((r) => setTimeout(r, 500)); // grace for servers it is stopping
    clearTimeout(hardKill);
    killGroup(child.pid, 'SIGKILL'); // servers a module forgot would otherwise survive it
    current = undefined;
    if (timedOut)
      return [{ bench: name, case: 'ERROR', metrics: { error: `over its ${budgetS} s budget: killed` } }];
    if (code !== 0 || !existsSync(out)) {
      const how = code === null ? `was killed by ${child.signalCode}` : `exited with code ${code}`;
      return [{ bench: name, case: 'ERROR', metrics: { error: `${how}; see its output above` } }];
    }
    return JSON.parse(readFileSync(out, 'utf8')) as BenchRow[];
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const machine = machineInfo();
const started = Date.now();
const rows: BenchRow[] = [];
const timings: Record<string, number> = {};
console.error(
  `bench: ${modules.join(', ') || '(no modules)'}${quick ? ' (quick)' : ''} on ${machine.nproc}× ${machine.cpuModel}, ` +
    `Node ${machine.node}, load average ${machine.loadavg}`,
);
for (const name of modules) {
  const left = TOTAL_BUDGET_S - (Date.now() - started) / 1000;
  const budget = Math.floor(Math.min((BUDGET_S[name] ?? DEFAULT_BUDGET_S) * (quick ? 0.75 : 1), left));
  if (budget < 5) {
    rows.push({
      bench: name,
      case: 'SKIPPED',
      metrics: { reason: `whole-run budget of ${TOTAL_BUDGET_S} s used up` },
    });
    continue;
  }
  console.error(`\n── ${name} (budget ${budget} s) ──`);
  const t0 = Date.now();
  rows.push(...(await runModule(name, budget)));
  timings[name] = Math.round((Date.now() - t0) / 100) / 10;
}
const totalS = Math.round((Date.now() - started) / 1000);

const table = renderTable(rows);
console.log(`\n${table}\n`);
console.log(
  `machine: ${machine.nproc} cores, ${machine.cpuModel}, Node ${machine.node}, commit ${machine.commit}; ` +
    `load average before: ${machine.loadavg}; total ${totalS} s${quick ? ' (--quick)' : ''}`,
);
const file = writeResults(rows, { machine, quick, timings, totalS, date: new Date().toISOString() });
writeFileSync(file.replace(/\.json$/, '.md'), `${renderMarkdown(rows)}\n`);
console.log(`results: ${file}`);
