#!/usr/bin/env node
// Runs every test/**/*.test.ts under node:test (through tsx), one file per process.
// Usage: node scripts/test.mjs [substring ...]  — only files whose path contains one of the substrings.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = find('test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(', ') || 'test/**/*.test.ts'}`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-timeout=600000', '--test-concurrency=1', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
