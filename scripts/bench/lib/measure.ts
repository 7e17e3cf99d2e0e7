// Runs a load while reading the CPU time the measured server processes spend, so throughput can be reported
// per server CPU-second: meaningful even though the load generator shares the same two cores.
import { cpuSeconds, type Server } from './proc.js';

export interface CpuWindow<T> {
  result: T;
  /** CPU seconds per server over the load, in the order given. */
  cpu: number[];
  wallS: number;
}

export async function withCpu<T>(servers: Server[], load: () => Promise<T>): Promise<CpuWindow<T>> {
  const before = servers.map((s) => cpuSeconds(s.pid));
  const t0 = performance.now();
  const result = await load();
  const wallS = (performance.now() - t0) / 1000;
  const cpu = servers.map((s, i) => cpuSeconds(s.pid) - before[i]);
  return { result, cpu, wallS };
}
