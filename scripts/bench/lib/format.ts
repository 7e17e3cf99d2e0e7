// Percentiles, number formatting, the results table and the JSON file under bench-results/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { BenchRow } from './types.js';

/** p-th percentile (0..100) of unsorted numbers, nearest-rank. NaN for an empty list. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}

/** Rounds to a readable number of significant digits (keeps integers ≥ 1000 whole). */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  if (Math.abs(x) >= 10 ** digits) return Math.round(x);
  return Number(x.toPrecision(digits));
}

function fmt(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  const r = round(v);
  return Math.abs(r) >= 10000 ? r.toLocaleString('en-US') : String(r);
}

/** The whole run as one fixed-width text table (metrics as `name=value` pairs). */
export function renderTable(rows: BenchRow[]): string {
  const head = ['bench', 'case', 'metrics', 'vs', 'ratio', 'goal'];
  const body = rows.map((r) => [
    r.bench,
    r.case,
    Object.entries(r.metrics)
      .map(([k, v]) => `${k}=${fmt(v)}`)
      .join(' '),
    r.baseline ?? '',
    r.ratio === undefined ? '' : `${round(r.ratio, 3)}×`,
    r.goal ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join(' | ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}

/** A Markdown version of the table, for docs/performance.md. */
export function renderMarkdown(rows: BenchRow[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const out = ['| bench | case | metrics | vs | ratio | goal |', '|---|---|---|---|---|---|'];
  for (const r of rows) {
    const m = Object.entries(r.metrics)
      .map(([k, v]) => `${k}=${fmt(v)}`)
      .join(', ');
    out.push(
      `| ${esc(r.bench)} | ${esc(r.case)} | ${esc(m)} | ${esc(r.baseline ?? '')} | ${
        r.ratio === undefined ? '' : `${round(r.ratio, 3)}×`
      } | ${esc(r.goal ?? '')} |`,
    );
  }
  return out.join('\n');
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  node: string;
  loadavg: string;
  commit: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux: keep os.cpus()
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  let loadavg = '';
  try {
    loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    // not Linux
  }
  return { nproc: cpus().length, cpuModel, node: process.version, loadavg, commit };
}

/** Writes bench-results/<timestamp>.json and returns its path. */
export function writeResults(rows: BenchRow[], extra: Record<string, unknown>): string {
  const dir = 'bench-results';
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `${stamp}.json`);
  writeFileSync(file, `${JSON.stringify({ ...extra, rows }, null, 2)}\n`);
  return file;
}
