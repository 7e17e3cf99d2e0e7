// Child side of the runner: imports one bench module, runs it, and writes its rows as JSON to the file the
// runner named. Running each module in its own process lets the runner enforce a hard time budget (it kills
// the whole process group) and keeps one module's servers and memory from skewing the next one's figures.
// Usage: node --import tsx scripts/bench/lib/run-module.ts <module.ts path> <out.json> [--quick]
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BenchModule, BenchRow } from './types.js';

const [file, out] = process.argv.slice(2);
const quick = process.argv.includes('--quick');
if (!file || !out) {
  console.error('usage: run-module.ts <module.ts> <out.json> [--quick]');
  process.exit(2);
}
const mod = (await import(pathToFileURL(resolve(file)).href)) as Partial<BenchModule>;
if (typeof mod.run !== 'function') {
  console.error(`${file} exports no run({ quick }) function`);
  process.exit(2);
}
const rows: BenchRow[] = await mod.run({ quick });
writeFileSync(out, JSON.stringify(rows));
// Modules must clean up after themselves; exit anyway so a stray timer cannot hold the runner.
process.exit(0);
