// Test helpers: free ports, the CLI as a child process, a counting HTTP origin, polling.

import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../dist/cli.js');

/** A port free for TCP and UDP on 127.0.0.1 right now (gossip needs both on one port). */
export async function freePort(): Promise<number> {
  for (;;) {
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    udp.close();
    srv.close();
    await once(srv, 'close');
    if (ok) return port;
  }
}

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

/** Spawns `node dist/cli.js` on 127.0.0.1 with `ports` and extra environment. */
export function startCli(ports: NodePorts, env: Record<string, string> = {}): NodeProcess {
  let out = '';
  const child = spawn(process.execPath, [CLI], {
    env: {
      PATH: process.env.PATH,
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

/** Polls `check` until it returns a truthy value or `ms` pass (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/** GET returning status and text; never throws on HTTP errors. */
export async function httpGet(url: string, init?: RequestInit): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  return { status: res.status, text: await res.text() };
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
