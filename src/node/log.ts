// Logging of a cache node: pino JSON lines on stdout, plus a rate limiter for errors that can come in
// floods (a peer down answers every miss with an error; one line per interval is enough).

import { type Logger, pino } from 'pino';

export type { Logger };

/** A JSON logger at `level` (pino levels, or 'silent'). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(opts, destination) : pino(opts);
}

/**
 * Logs the first event of each `key` per interval and counts the rest; the next line carries
 * `suppressed: n`. Memory is bounded: keys idle for an interval are forgotten.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const seen = this.last.get(key);
    if (seen && t - seen.at < this.intervalMs) {
      seen.suppressed++;
      return;
    }
    if (this.last.size > 1000) this.prune(t);
    this.last.set(key, { at: t, suppressed: 0 });
    this.logger.warn(seen?.suppressed ? { ...obj, suppressed: seen.suppressed } : obj, msg);
  }

  private prune(t: number): void {
    for (const [k, v] of this.last) if (t - v.at >= this.intervalMs) this.last.delete(k);
  }
}
