// The node program as child processes: `node dist/cli.js` (or the `gossipcache` command, bin/gossipcache,
// which execs it) on 127.0.0.1 ports (build first), stopped by PID; and a counting HTTP origin for it to load
// from.

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { httpGet } from './http.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export const CLI = join(import.meta.dirname, '../../dist/cli.js');
/** The `gossipcache` command: a /bin/sh launcher that execs `node dist/cli.js` (package.json "bin"). */
export const LAUNCHER = join(import.meta.dirname, '../../bin/gossipcache');

export interface NodeProcess {
  child: ChildProcess;
  http: string;
  grpcPort: number;
  gossipPort: number;
  /** Everything the node wrote (pino JSON lines and any stderr). */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export interface NodePorts {
  http: number;
  grpc: number;
  gossip: number;
}

export async function nodePorts(): Promise<NodePorts> {
  return { http: await freePort(), grpc: await freePort(), gossip: await freePort() };
}

export interface CliOptions {
  /**
   * Run under `ulimit -n fdLimit` (through /bin/sh, which sets the hard limit too, so Node cannot raise
   * it); the child is still the node itself (`exec`), stopped by its PID.
   */
  fdLimit?: number;
  /**
   * Start it as users do, through the `gossipcache` command (bin/gossipcache, run by /bin/sh; it execs this
   * test's node, first on its PATH): the child's PID is still the node's.
   */
  launcher?: boolean;
}

/** Spawns `node dist/cli.js` on 127.0.0.1 with `ports` and extra environment. */
export function startCli(
  ports: NodePorts,
  env: Record<string, string> = {},
  opts: CliOptions = {},
): NodeProcess {
  let out = '';
  if (opts.launcher && opts.fdLimit !== undefined) throw new Error('startCli: launcher or fdLimit, not both');
  const [command, args] = opts.launcher
    ? ['/bin/sh', [LAUNCHER]]
    : opts.fdLimit === undefined
      ? [process.execPath, [CLI]]
      : ['/bin/sh', ['-c', `ulimit -n ${opts.fdLimit} && exec "${process.execPath}" "${CLI}"`]];
  const child = spawn(command, args, {
    env: {
      PATH: opts.launcher ? `${dirname(process.execPath)}${delimiter}${process.env.PATH}` : process.env.PATH,
      GOSSIPCACHE_HTTP_ADDR: `127.0.0.1:${ports.http}`,
      GOSSIPCACHE_GRPC_ADDR: `127.0.0.1:${ports.grpc}`,
      GOSSIPCACHE_GOSSIP_ADDR: `127.0.0.1:${ports.gossip}`,
      GOSSIPCACHE_ADVERTISE_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    http: `http://127.0.0.1:${ports.http}`,
    grpcPort: ports.grpc,
    gossipPort: ports.gossip,
    output: () => out,
    exited,
  };
}

/** Waits until the node's /healthz answers 200 (it is up and serving HTTP). */
export async function waitHealthy(node: Pick<NodeProcess, 'http'>, ms = 20_000): Promise<void> {
  await waitFor(
    `${node.http} to be healthy`,
    async () => (await httpGet(`${node.http}/healthz`)).status === 200,
    ms,
  );
}

/** Stops a node (SIGTERM, then SIGKILL after `ms`) and returns its exit code. */
export async function stopCli(p: NodeProcess, ms = 15_000): Promise<number | string> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), ms);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

/**
 * `n` CLI nodes on 127.0.0.1 (the one-call test cluster), each seeded with the others' gossip ports;
 * `env(i)` adds node i's variables. Their ports are in `ports` (same order as the nodes).
 */
export async function startCliCluster(
  n: number,
  env: (i: number) => Record<string, string> = () => ({}),
): Promise<{ nodes: NodeProcess[]; ports: NodePorts[] }> {
  const ports: NodePorts[] = [];
  for (let i = 0; i < n; i++) ports.push(await nodePorts());
  const nodes = ports.map((p, i) =>
    startCli(p, {
      GOSSIPCACHE_SEEDS: ports
        .filter((_, j) => j !== i)
        .map((q) => `127.0.0.1:${q.gossip}`)
        .join(','),
      ...env(i),
    }),
  );
  return { nodes, ports };
}

/** Waits until every node's `/_cluster` shows a ring of all of them with one checksum; returns the views. */
export async function waitForOneRing(
  nodes: NodeProcess[],
  ms = 30_000,
): Promise<{ ring: string[]; ringChecksum: string }[]> {
  return waitFor(
    `one ring of ${nodes.length} on every node`,
    async () => {
      const views: { ring: string[]; ringChecksum: string }[] = [];
      for (const n of nodes) views.push(JSON.parse((await httpGet(`${n.http}/_cluster`)).text));
      const one = views.every(
        (v) => v.ring.length === nodes.length && v.ringChecksum === views[0].ringChecksum,
      );
      return one && views;
    },
    ms,
  );
}

export interface CountingOrigin {
  url: string;
  /** Loads per key. */
  loads: Map<string, number>;
  /** Delay before answering, ms (changeable). */
  delayMs: number;
  /** Requests received and not answered yet. */
  pending: number;
  close(): Promise<void>;
  server: Server;
}

/** An HTTP origin on 127.0.0.1: `/items/<key>` → `value:<key>`, counted per key. */
export async function countingOrigin(delayMs = 0): Promise<CountingOrigin> {
  const o: CountingOrigin = {
    url: '',
    loads: new Map(),
    delayMs,
    pending: 0,
    server: createHttpServer((req, res) => {
      const key = decodeURIComponent((req.url ?? '').slice('/items/'.length));
      o.loads.set(key, (o.loads.get(key) ?? 0) + 1);
      o.pending++;
      setTimeout(() => {
        o.pending--;
        res.end(`value:${key}`);
      }, o.delayMs);
    }),
    close: async () => {
      o.server.closeAllConnections();
      o.server.close();
    },
  };
  o.server.listen(0, '127.0.0.1');
  await once(o.server, 'listening');
  o.url = `http://127.0.0.1:${(o.server.address() as AddressInfo).port}/items/{key}`;
  return o;
}
