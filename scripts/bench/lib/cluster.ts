// Starts real gossipcache nodes (`node dist/cli.js`, configured by environment) on 127.0.0.1 ephemeral
// ports, waits until they agree on the ring, and reads their /_stats and /_cluster.
import { existsSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { httpGet } from '../../../test/support/http.js';
import { freePort } from '../../../test/support/ports.js';
import { sleep } from '../../../test/support/wait.js';
import { type Server, startProcess, stopAll, waitForPort } from './proc.js';

export const CLI = 'dist/cli.js';

export function hasNode(): boolean {
  return existsSync(CLI);
}

export interface NodeHandle {
  server: Server;
  httpPort: number;
  grpcPort: number;
  gossipPort: number;
  /** Ring label: the advertised gRPC address. */
  label: string;
}

export interface NodeOptions {
  group?: string;
  cacheBytes?: string;
  origin?: string;
  /** gossip `host:port` of nodes to join; empty = first node. */
  seeds?: string[];
  env?: Record<string, string>;
  nodeArgs?: string[];
  /** The node program to run. Default CLI (dist/cli.js); a baseline build's cli.js for before/after runs. */
  cli?: string;
}

export async function startNode(name: string, opts: NodeOptions = {}): Promise<NodeHandle> {
  const [httpPort, grpcPort, gossipPort] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GOSSIPCACHE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    GOSSIPCACHE_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
    GOSSIPCACHE_GOSSIP_ADDR: `127.0.0.1:${gossipPort}`,
    GOSSIPCACHE_ADVERTISE_HOST: '127.0.0.1',
    GOSSIPCACHE_SEEDS: (opts.seeds ?? []).join(','),
    GOSSIPCACHE_GROUP: opts.group ?? 'bench',
    GOSSIPCACHE_ORIGIN: opts.origin ?? 'demo:0ms',
    GOSSIPCACHE_CACHE_BYTES: opts.cacheBytes ?? '64MiB',
    LOG_LEVEL: 'warn',
    GOSSIPCACHE_SHUTDOWN_TIMEOUT: '1s',
    ...opts.env,
  };
  // BENCH_CPU_PROF=<dir>: every node writes a V8 CPU profile there when it exits (see lib/cpuprofile-top.ts).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
  const server = startProcess(name, process.execPath, [...prof, ...(opts.nodeArgs ?? []), opts.cli ?? CLI], {
    env,
  });
  await waitForPort(httpPort, 15000, server);
  return { server, httpPort, grpcPort, gossipPort, label: `127.0.0.1:${grpcPort}` };
}

/** Starts `n` nodes (the first alone, the rest seeded with it) and waits until all see the same ring of n. */
export async function startCluster(n: number, opts: NodeOptions & { perNode?: NodeOptions[] } = {}) {
  const nodes: NodeHandle[] = [];
  try {
    nodes.push(await startNode('node0', { ...opts, ...opts.perNode?.[0], seeds: [] }));
    // The others start together (start-up is seconds on a busy box), all seeded with the first; the array
    // keeps their order so nodes[i] is always node i.
    const seeds = [`127.0.0.1:${nodes[0].gossipPort}`];
    const rest = await Promise.allSettled(
      Array.from({ length: n - 1 }, (_, j) =>
        startNode(`node${j + 1}`, { ...opts, ...opts.perNode?.[j + 1], seeds }),
      ),
    );
    for (const r of rest) if (r.status === 'fulfilled') nodes.push(r.value);
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await waitForRing(nodes, 20000);
    return nodes;
  } catch (e) {
    await stopAll(nodes.map((x) => x.server));
    throw e;
  }
}

export async function getJson(port: number, path: string): Promise<unknown> {
  const r = await httpGet(`http://127.0.0.1:${port}${path}`);
  if (r.status !== 200) throw new Error(`GET ${path} on :${port} → ${r.status} ${r.text.slice(0, 200)}`);
  return JSON.parse(r.text);
}

/** Finds the first property named `name` anywhere in a JSON value (depth-first). */
export function findField(v: unknown, name: string): unknown {
  if (v === null || typeof v !== 'object') return undefined;
  if (!Array.isArray(v) && name in v) return (v as Record<string, unknown>)[name];
  for (const child of Object.values(v)) {
    const f = findField(child, name);
    if (f !== undefined) return f;
  }
  return undefined;
}

/** The ring labels a node's /_cluster lists (its `ring` array, else alive members' grpcAddr). */
export function ringOf(cluster: unknown): string[] {
  const ring = findField(cluster, 'ring');
  if (Array.isArray(ring)) return ring.map(String);
  if (ring && typeof ring === 'object') {
    const labels = findField(ring, 'labels') ?? findField(ring, 'members');
    if (Array.isArray(labels)) return labels.map(String);
  }
  return [];
}

/** Resolves when every node's /_cluster reports the same ring checksum and `nodes.length` ring members. */
export async function waitForRing(nodes: NodeHandle[], timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown[] = [];
  for (;;) {
    try {
      last = await Promise.all(nodes.map((x) => getJson(x.httpPort, '/_cluster')));
      const sums = last.map((c) => String(findField(c, 'ringChecksum') ?? findField(c, 'checksum')));
      const sizes = last.map((c) => ringOf(c).length);
      if (new Set(sums).size === 1 && sums[0] !== 'undefined' && sizes.every((s) => s === nodes.length)) {
        return sums[0];
      }
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `nodes did not agree on a ring of ${nodes.length} within ${timeoutMs} ms; last /_cluster: ${JSON.stringify(last).slice(0, 1500)}`,
      );
    }
    await sleep(100);
  }
}

/** One group's counters from a node's /_stats (`{ groups: { <name>: { stats… } } }` or similar). */
export async function groupStats(port: number, group: string): Promise<Record<string, number>> {
  const s = (await getJson(port, '/_stats')) as Record<string, unknown>;
  const g = findField(s, group) ?? s;
  const stats = (findField(g, 'stats') ?? g) as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) if (typeof v === 'number') out[k] = v;
  return out;
}

export function diffStats(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(after)) d[k] = after[k] - (before[k] ?? 0);
  return d;
}

/**
 * GETs every path once, `concurrency` at a time over keep-alive connections, and throws on any non-200:
 * used to load keys on their owners (and into mirrors) before a measured run.
 */
export async function warmPaths(port: number, paths: string[], concurrency = 16): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const path = paths[next++];
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.setTimeout(10000, () => req.destroy(new Error(`GET ${path} on :${port} timed out`)));
        req.on('error', reject);
        req.end();
      });
      if (status !== 200) throw new Error(`warming GET ${path} on :${port}: HTTP ${status}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
}
