// Logging of a cache node: pino JSON lines on stdout (human-readable lines when a person watches a
// terminal), plus a rate limiter for errors that can come in floods (a peer down answers every miss
// with an error; one line per interval is enough).

import { createRequire } from 'node:module';
import { type Logger as PinoLogger, pino } from 'pino';
import type { Logger } from '../logger.js';

/** The node program's logger: pino itself (the library's components take the Logger subset). */
export type { PinoLogger };

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * Pretty or JSON? `auto` is pretty exactly when stdout is a terminal: a person runs `npm start`; log
 * collectors, pipes and containers get JSON lines.
 */
export function usePrettyLogs(format: LogFormat, stdoutIsTTY: boolean | undefined): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTTY === true);
}

/**
 * A logger at `level` (pino levels, or 'silent'). JSON lines unless `format` says pretty (see
 * usePrettyLogs); `destination` defaults to stdout.
 */
export function createLogger(
  level: string,
  destination?: NodeJS.WritableStream,
  format: LogFormat = 'json',
): PinoLogger {
  const opts = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  const out = destination ?? process.stdout;
  if (usePrettyLogs(format, (out as { isTTY?: boolean }).isTTY)) {
    const pretty = prettyStream(destination);
    if (pretty) return pino(opts, pretty);
  }
  return destination ? pino(opts, destination) : pino(opts);
}

/**
 * pino-pretty in the same thread (not a worker transport: a line must be out before `process.exit`),
 * loaded only when wanted. Time of day instead of the date, no pid (one process per terminal).
 * Undefined if the package is missing: JSON then.
 */
function prettyStream(destination?: NodeJS.WritableStream): NodeJS.WritableStream | undefined {
  let build: (opts: Record<string, unknown>) => NodeJS.WritableStream;
  try {
    const mod = createRequire(import.meta.url)('pino-pretty');
    build = mod.default ?? mod;
  } catch {
    return undefined;
  }
  return build({
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
    sync: true,
    ...(destination ? { destination } : {}),
  });
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
