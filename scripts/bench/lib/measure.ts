// Runs a load while reading the CPU time the measured server processes spend, so throughput can be reported
// per server CPU-second: meaningful even though the load generator shares the same two cores.
import { cpuSplit, type Server } from './proc.js';

export interface CpuWindow<T> {
  result: T;
  /** CPU seconds (user + system) per server over the load, in the order given. */
  cpu: number[];
  /** The system (kernel) part of `cpu`. */
  sys: number[];
  wallS: number;
}

export async function withCpu<T>(servers: Server[], load: () => Promise<T>): Promise<CpuWindow<T>> {
  const before = servers.map((s) => cpuSplit(s.pid));
  const t0 = performance.now();
  const result = await load();
  const wallS = (performance.now() - t0) / 1000;
  const after = servers.map((s) => cpuSplit(s.pid));
  const cpu = after.map((a, i) => a.user + a.sys - before[i].user - before[i].sys);
  const sys = after.map((a, i) => a.sys - before[i].sys);
  return { result, cpu, sys, wallS };
}
