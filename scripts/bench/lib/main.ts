// Lets a bench module run alone: `node --import tsx scripts/bench/<area>.ts [--quick]` prints its table.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTable } from './format.js';
import type { BenchOptions, BenchRow } from './types.js';

/** True when the module at `metaUrl` is the process's entry point (not imported by the runner). */
export function isMain(metaUrl: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(metaUrl);
}

export async function runAlone(run: (o: BenchOptions) => Promise<BenchRow[]>): Promise<void> {
  const rows = await run({ quick: process.argv.includes('--quick') });
  console.log(renderTable(rows));
  process.exit(0);
}
