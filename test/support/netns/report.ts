// Collects the figures of one fault-suite run, writes them as JSON under bench-results/ (git-ignored)
// and prints a summary table.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Figures = Record<string, number | string | boolean>;

export interface ScenarioResult {
  scenario: string;
  passed: boolean;
  figures: Figures;
  notes?: string[];
}

export class FaultReport {
  readonly startedAt = new Date().toISOString();
  readonly results: ScenarioResult[] = [];

  constructor(
    readonly suite: string,
    readonly node: string,
  ) {}

  /** Records figures as they are measured, so a failing assertion still leaves its numbers behind. */
  record(scenario: string, figures: Figures, notes?: string[]): ScenarioResult {
    let r = this.results.find((x) => x.scenario === scenario);
    if (!r) {
      r = { scenario, passed: false, figures: {} };
      this.results.push(r);
    }
    Object.assign(r.figures, figures);
    if (notes) r.notes = [...(r.notes ?? []), ...notes];
    return r;
  }

  pass(scenario: string): void {
    this.record(scenario, {}).passed = true;
  }

  write(dir: string): string {
    mkdirSync(dir, { recursive: true });
    const body = JSON.stringify(
      {
        suite: this.suite,
        node: this.node,
        startedAt: this.startedAt,
        finishedAt: new Date().toISOString(),
        results: this.results,
      },
      null,
      2,
    );
    const stamp = this.startedAt.replace(/[:.]/g, '-');
    const file = join(dir, `faults-${this.suite}-${stamp}.json`);
    writeFileSync(file, body);
    writeFileSync(join(dir, `faults-${this.suite}-latest.json`), body);
    return file;
  }

  table(): string {
    const lines = [`fault suite "${this.suite}" against ${this.node}`];
    for (const r of this.results) {
      const figs = Object.entries(r.figures)
        .map(([k, v]) => `${k}=${v}`)
        .join('  ');
      lines.push(`  ${r.passed ? 'PASS' : 'FAIL'}  ${r.scenario.padEnd(28)} ${figs}`);
    }
    return lines.join('\n');
  }
}
