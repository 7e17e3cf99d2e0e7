// Prints the latest fault-suite figures (bench-results/faults-*-latest.json, written by
// test/cluster/*.test.ts) as a Markdown table, for docs/faults.md.
// Usage: node --import tsx scripts/fault-report.ts

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

interface Result {
  scenario: string;
  passed: boolean;
  figures: Record<string, number | string | boolean>;
  notes?: string[];
}

interface Report {
  suite: string;
  node: string;
  startedAt: string;
  results: Result[];
}

const dir = resolve(import.meta.dirname, '../bench-results');
const lines: string[] = [];
for (const suite of ['main', 'security']) {
  const file = join(dir, `faults-${suite}-latest.json`);
  if (!existsSync(file)) {
    lines.push(`(no ${file}: run \`node scripts/test.mjs test/cluster\` as root first)`);
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8')) as Report;
  lines.push(`Run ${r.startedAt} (suite "${r.suite}", node: ${r.node})`, '');
  lines.push('| scenario | result | figures |', '|---|---|---|');
  for (const x of r.results) {
    const figs = Object.entries(x.figures)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    const cell = (t: string) => t.replaceAll('|', '\\|');
    lines.push(`| ${cell(x.scenario)} | ${x.passed ? 'pass' : '**FAIL**'} | ${cell(figs)} |`);
  }
  lines.push('');
}
console.log(lines.join('\n'));
