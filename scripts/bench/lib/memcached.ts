// memcached (Debian `memcached`) as the external baseline, driven by memaslap (Debian `libmemcached-tools`
// installs it as `memcaslap`) for the throughput case and by a tiny pipelining client for the memory case.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../test/support/ports.js';
import { hasTool, runMeasured, type Server, startProcess, waitForPort } from './proc.js';

export function memaslapBinary(): string | undefined {
  return ['memaslap', 'memcaslap'].find((b) => hasTool(b));
}

export function hasMemcached(): boolean {
  return hasTool('memcached');
}

/** Starts memcached on 127.0.0.1 (TCP only) with `memoryMb` of item memory and `threads` worker threads. */
export async function startMemcached(
  memoryMb: number,
  threads = 2,
): Promise<{ server: Server; port: number }> {
  const port = await freePort();
  const args = [
    '-l',
    '127.0.0.1',
    '-p',
    String(port),
    '-U',
    '0',
    '-m',
    String(memoryMb),
    '-t',
    String(threads),
  ];
  // memcached refuses to start as root unless told which user to run as.
  if (process.getuid?.() === 0) args.push('-u', userInfo().username);
  const server = startProcess('memcached', 'memcached', args);
  await waitForPort(port, 5000, server);
  return { server, port };
}

export interface MemaslapResult {
  ops: number;
  durationS: number;
  rps: number;
  getOps: number;
  getMisses: number;
  /** Upper bounds of memaslap's log2 latency buckets, in ms (memaslap prints no finer percentiles). */
  p50: number;
  p99: number;
  mean: number;
  /** CPU seconds memaslap itself used. */
  generatorCpuS?: number;
}

/**
 * Get-only load: `connections` concurrent connections over `threads` threads for `durationS`. memaslap first
 * sets its window of keys (connections × 1k: its smallest window) and then gets them in random order; those sets
 * are part of the ops and of memcached's CPU time, as they would be of any warm-up.
 */
export async function runMemaslap(opts: {
  port: number;
  connections: number;
  durationS: number;
  threads?: number;
  valueBytes?: number;
}): Promise<MemaslapResult> {
  const bin = memaslapBinary();
  if (!bin) throw new Error('memaslap not found (apt-get install libmemcached-tools)');
  const dir = mkdtempSync(join(tmpdir(), 'gc-bench-memaslap-'));
  try {
    const cfg = join(dir, 'get-only.cfg');
    const v = opts.valueBytes ?? 32;
    // key size 16, value size v, command mix: 0 = set 0 %, 1 = get 100 %.
    writeFileSync(cfg, `key\n16 16 1\nvalue\n${v} ${v} 1\ncmd\n0 0.0\n1 1.0\n`);
    const args = [
      '-s',
      `127.0.0.1:${opts.port}`,
      '-F',
      cfg,
      '-T',
      String(opts.threads ?? 2),
      '-c',
      String(opts.connections),
      '-w',
      '1k',
      '-X',
      String(v),
      '-t',
      `${opts.durationS}s`,
      '-S',
      `${opts.durationS}s`,
    ];
    const { stdout, cpuS } = await runMeasured(bin, args, { timeoutMs: (opts.durationS + 30) * 1000 });
    return { ...parseMemaslap(stdout), generatorCpuS: cpuS };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function parseMemaslap(out: string): MemaslapResult {
  const total = /Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)/.exec(out);
  if (!total) throw new Error(`memaslap printed no totals:\n${out.slice(-2000)}`);
  const durationS = Number(total[1]);
  const ops = Number(total[2]);
  const getSection = out.slice(out.indexOf('Get Statistics ('));
  const getOps = Number(/Get Statistics \((\d+) events\)/.exec(getSection)?.[1] ?? Number.NaN);
  const mean = Number(/Avg:\s+(\d+)/.exec(getSection)?.[1] ?? Number.NaN) / 1000;
  const misses = Number(/get_misses: (\d+)/.exec(out)?.[1] ?? Number.NaN);
  // "Log2 Dist:" rows: "<k>: c_k c_k+1 c_k+2 c_k+3"; bucket k counts latencies in (2^(k-1), 2^k] µs.
  const buckets: Array<[number, number]> = [];
  const dist = getSection.slice(getSection.indexOf('Log2 Dist:'), getSection.indexOf('Total Statistics'));
  for (const m of dist.matchAll(/^\s*(\d+):((?:\s+\d+)+)\s*$/gm)) {
    const k0 = Number(m[1]);
    m[2]
      .trim()
      .split(/\s+/)
      .forEach((c, i) => {
        buckets.push([k0 + i, Number(c)]);
      });
  }
  const n = buckets.reduce((s, [, c]) => s + c, 0);
  const pct = (p: number) => {
    let acc = 0;
    for (const [k, c] of buckets) {
      acc += c;
      if (acc >= (p / 100) * n) return 2 ** k / 1000;
    }
    return Number.NaN;
  };
  return {
    ops,
    durationS,
    rps: ops / durationS,
    getOps,
    getMisses: misses,
    p50: pct(50),
    p99: pct(99),
    mean,
  };
}

/** A minimal text-protocol client: pipelined `set … noreply` and `stats`. */
export class MemcachedClient {
  private constructor(private readonly sock: Socket) {}

  static async connect(port: number): Promise<MemcachedClient> {
    const sock = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.setNoDelay(true);
    return new MemcachedClient(sock);
  }

  /** Sets `count` items `keyOf(i)` → `value`, pipelined in batches, without waiting for replies (noreply). */
  async setMany(count: number, keyOf: (i: number) => string, value: Buffer): Promise<void> {
    // ≤ 2000 sets and about ≤ 4 MiB per write (large values would make huge batches).
    const batch = Math.max(1, Math.min(2000, Math.floor((4 << 20) / (value.length + 64))));
    for (let i = 0; i < count; i += batch) {
      const parts: Buffer[] = [];
      for (let j = i; j < Math.min(count, i + batch); j++) {
        parts.push(
          Buffer.from(`set ${keyOf(j)} 0 0 ${value.length} noreply\r\n`),
          value,
          Buffer.from('\r\n'),
        );
      }
      if (!this.sock.write(Buffer.concat(parts))) {
        await new Promise<void>((r) => this.sock.once('drain', () => r()));
      }
    }
  }

  /** `stats` as a name → value map; since replies are in order, this also waits for all earlier sets. */
  async stats(): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      let text = '';
      const onData = (b: Buffer) => {
        text += b.toString('latin1');
        if (text.endsWith('END\r\n')) {
          this.sock.off('data', onData);
          const out: Record<string, string> = {};
          for (const m of text.matchAll(/^STAT (\S+) (.*)\r$/gm)) out[m[1]] = m[2];
          resolve(out);
        } else if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR)/m.test(text)) {
          this.sock.off('data', onData);
          reject(new Error(`memcached: ${text.trim().slice(0, 200)}`));
        }
      };
      this.sock.on('data', onData);
      this.sock.write('stats\r\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
