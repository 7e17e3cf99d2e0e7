// wrk (C, multithreaded, keep-alive) as the HTTP load generator. A Lua script picks a uniformly random path
// per request from a file of paths and prints wrk's own latency percentiles as one JSON line when done.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasTool, runMeasured } from './proc.js';

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** Latencies in milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** CPU seconds wrk itself used (all threads), when measured. */
  generatorCpuS?: number;
}

const LUA = `
local paths = {}
local file = os.getenv("BENCH_PATHS")
for line in io.lines(file) do paths[#paths + 1] = line end
local n = #paths
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end
function request()
  return wrk.format("GET", paths[math.random(n)])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50":%d,"p90":%d,"p99":%d,"mean":%f,"max":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
`;

export function hasWrk(): boolean {
  return hasTool('wrk');
}

/**
 * Runs wrk against http://127.0.0.1:<port> with uniformly random paths drawn from `paths`.
 * Keep-alive connections; `threads` defaults to 2 (this box's core count) so the generator is not starved.
 */
export async function runWrk(opts: {
  port: number;
  paths: string[];
  connections: number;
  durationS: number;
  threads?: number;
  timeoutS?: number;
}): Promise<WrkResult> {
  if (opts.paths.length === 0) throw new Error('runWrk: no paths to request');
  const dir = mkdtempSync(join(tmpdir(), 'gc-bench-wrk-'));
  try {
    const pathsFile = join(dir, 'paths.txt');
    const script = join(dir, 'uniform.lua');
    writeFileSync(pathsFile, `${opts.paths.join('\n')}\n`);
    writeFileSync(script, LUA);
    const threads = Math.min(opts.threads ?? 2, opts.connections);
    const args = [
      `-t${threads}`,
      `-c${opts.connections}`,
      `-d${opts.durationS}s`,
      `--timeout`,
      `${opts.timeoutS ?? 5}s`,
      '-s',
      script,
      `http://127.0.0.1:${opts.port}`,
    ];
    const { stdout, cpuS } = await runMeasured('wrk', args, {
      env: { ...process.env, BENCH_PATHS: pathsFile },
      timeoutMs: (opts.durationS + 30) * 1000,
    });
    return { ...parseWrk(stdout), generatorCpuS: cpuS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parses the JSON line our Lua `done()` prints (wrk's own text summary is ignored). */
export function parseWrk(stdout: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary line:\n${stdout}`);
  const j = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
  const durationS = j.duration_us / 1e6;
  return {
    requests: j.requests,
    durationS,
    rps: j.requests / durationS,
    p50: j.p50 / 1000,
    p90: j.p90 / 1000,
    p99: j.p99 / 1000,
    mean: j.mean / 1000,
    max: j.max / 1000,
    errors: { connect: j.connect, read: j.read, write: j.write, status: j.status, timeout: j.timeout },
  };
}

export function wrkErrors(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}
