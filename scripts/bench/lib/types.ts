/** One line of the bench table; the contract every scripts/bench/<area>.ts module returns (docs/architecture.md). */
export interface BenchRow {
  bench: string;
  case: string;
  metrics: Record<string, number | string>;
  /** The case this row is compared against (measured in the same run). */
  baseline?: string;
  /** This row's headline figure divided by the baseline's. */
  ratio?: number;
  /** The goal, in words (e.g. "≥ 0.95× bare per CPU-s"). */
  goal?: string;
}

export interface BenchOptions {
  quick: boolean;
}

export type BenchModule = { run(opts: BenchOptions): Promise<BenchRow[]> };
