// The gRPC peer protocol. The servers run in child processes and the load in another (64
// requests in flight), so client and server costs are both real and share the two cores like a
// cluster's nodes would. Cases are interleaved over several rounds and each reports its median round,
// because other processes on this shared box come and go.
//   bare-unary   a plain grpc-js unary server answering a constant (identity serializers): our ceiling
//   unary-get    groupcachepb.GroupCache/Get on a node, cache hits           → ratio vs bare-unary
//   peer-unary   the same node, peer-marked unary Get through GrpcPeer        (what a unary peer path costs)
//   peer-stream  GrpcPeer.get: fills multiplexed over one Fetch stream        → ratio vs peer-unary
// The same file is the child: `grpc.ts --role <server-node|server-bare|client> ...`.
import { setMaxListeners } from 'node:events';
import { Client, credentials, Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import { encodeKeyRequest } from '../../src/grpc/codec.js';
import { createGrpcServer, GET_PATH, GrpcPeer } from '../../src/grpc/index.js';
import { percentile, round } from './lib/format.js';
import { isMain, runAlone } from './lib/main.js';
import { cpuSeconds, type Server as Proc, startProcess, stopAll } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'grpc';
const GROUP = 'bench';
const KEYS = 1000;
const VALUE_BYTES = 100;
const IN_FLIGHT = 64;

const key = (i: number) => `key-${i % KEYS}`;

// ---------------- child roles ----------------

async function serveNode(): Promise<void> {
  const registry = new GroupRegistry();
  const value = Buffer.alloc(VALUE_BYTES, 'v');
  const group = new Group({ name: GROUP, cacheBytes: 64 << 20, registry, getter: async () => value });
  for (let i = 0; i < KEYS; i++) await group.get(key(i)); // every request below is a cache hit
  const server = createGrpcServer({ registry });
  const port = await server.listen('127.0.0.1:0');
  console.log(`PORT ${port}`);
}

async function serveBare(): Promise<void> {
  const reply = Buffer.concat([Buffer.from([0x0a, VALUE_BYTES]), Buffer.alloc(VALUE_BYTES, 'v')]);
  const server = new Server();
  const id = (b: Buffer) => b;
  server.addService(
    {
      Get: {
        path: GET_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: id,
        requestDeserialize: id,
        responseSerialize: id,
        responseDeserialize: id,
      },
    },
    { Get: (_call: unknown, cb: (e: null, r: Buffer) => void) => cb(null, reply) },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  console.log(`PORT ${port}`);
}

/** One measured case: which server, which request path, how many in flight. */
interface Job {
  name: string;
  server: 'bare' | 'node';
  mode: 'raw-unary' | 'peer-unary' | 'peer-stream';
  inFlight: number;
}

const JOBS: Job[] = [
  { name: 'bare', server: 'bare', mode: 'raw-unary', inFlight: IN_FLIGHT },
  { name: 'unary-get', server: 'node', mode: 'raw-unary', inFlight: IN_FLIGHT },
  { name: 'peer-unary', server: 'node', mode: 'peer-unary', inFlight: IN_FLIGHT },
  { name: 'peer-stream', server: 'node', mode: 'peer-stream', inFlight: IN_FLIGHT },
  { name: 'peer-stream-256', server: 'node', mode: 'peer-stream', inFlight: 256 },
];

interface LoadResult {
  name: string;
  ok: number;
  errors: number;
  firstError: string;
  rps: number;
  p50: number;
  p99: number;
  clientCpuUsPerReq: number;
}

/**
 * The load process: every job in turn, `rounds` times (interleaved, so a burst of load from other
 * processes on this shared box hits all cases alike). Prints `BEGIN <job>` when a measured window
 * starts (the parent reads the server's CPU then) and `RESULT <json>` when it ends.
 */
async function load(addrs: Record<Job['server'], string>, seconds: number, rounds: number): Promise<void> {
  const signal = new AbortController().signal;
  setMaxListeners(0, signal); // shared by every request here; the core gives each fetch its own
  const id = (b: Buffer) => b;
  const reqs = Array.from({ length: KEYS }, (_, i) => encodeKeyRequest({ group: GROUP, key: key(i) }));
  const raw = {
    bare: new Client(addrs.bare, credentials.createInsecure()),
    node: new Client(addrs.node, credentials.createInsecure()),
  };
  const peer = new GrpcPeer(addrs.node, { timeoutMs: 10_000 });
  const request = (job: Job): ((i: number) => Promise<unknown>) => {
    if (job.mode === 'peer-stream') return (i) => peer.get(GROUP, key(i), signal);
    if (job.mode === 'peer-unary') return (i) => peer.getUnary(GROUP, key(i), signal);
    // Pre-encoded requests and an identity deserializer: the client costs the same against both servers.
    const client = raw[job.server];
    return (i) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(GET_PATH, id, id, reqs[i % KEYS], new Metadata(), {}, (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      );
  };
  for (let round = 0; round < rounds; round++) {
    // Each round starts with a different case, so no case always runs right after the same other one.
    const order = JOBS.map((_, i) => JOBS[(i + round) % JOBS.length]);
    for (const job of order) {
      const one = request(job);
      const lat: number[] = [];
      let errors = 0;
      let firstError = '';
      let measuring = false;
      let stop = false;
      let n = 0;
      const worker = async () => {
        while (!stop) {
          const t0 = performance.now();
          try {
            await one(n++);
            if (measuring) lat.push(performance.now() - t0);
          } catch (e) {
            if (measuring) errors++;
            firstError ||= (e as Error).message;
          }
        }
      };
      const workers = Array.from({ length: job.inFlight }, worker);
      await new Promise((r) => setTimeout(r, round === 0 ? 1000 : 300)); // warm-up: JIT, connections
      console.log(`BEGIN ${job.name}`);
      measuring = true;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      measuring = false;
      const cpu = process.cpuUsage(cpu0);
      const wallS = (performance.now() - t0) / 1000;
      stop = true;
      await Promise.all(workers);
      lat.sort((a, b) => a - b);
      const out: LoadResult = {
        name: job.name,
        ok: lat.length,
        errors,
        firstError,
        rps: lat.length / wallS,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        clientCpuUsPerReq: (cpu.user + cpu.system) / Math.max(1, lat.length + errors),
      };
      console.log(`RESULT ${JSON.stringify(out)}`);
    }
  }
  raw.bare.close();
  raw.node.close();
  peer.close();
}

// ---------------- orchestration ----------------

const self = new URL(import.meta.url).pathname;

function child(name: string, args: string[]): Proc {
  return startProcess(name, process.execPath, ['--import', 'tsx', self, '--role', ...args]);
}

/** Calls `onLine` for every line the child prints on stdout. */
function lines(p: Proc, onLine: (line: string) => void): void {
  let buf = '';
  p.child.stdout?.on('data', (b: Buffer) => {
    buf += b.toString();
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
  });
}

/** The port a server child prints once it listens. */
function portOf(p: Proc): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${p.name}: no PORT line in 30 s:\n${p.output()}`)), 30_000);
    lines(p, (l) => {
      if (l.startsWith('PORT ')) {
        clearTimeout(t);
        resolve(l.slice(5));
      }
    });
    p.child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${p.name} exited (${code}) before listening:\n${p.output()}`));
    });
  });
}

interface Measured extends LoadResult {
  serverCpuUsPerReq: number;
}

/** The round with the median throughput of each job. */
function medians(all: Measured[]): Map<string, Measured> {
  const out = new Map<string, Measured>();
  for (const job of JOBS) {
    const rs = all.filter((r) => r.name === job.name).sort((a, b) => a.rps - b.rps);
    if (rs.length > 0) out.set(job.name, rs[Math.floor(rs.length / 2)]);
  }
  return out;
}

function metrics(m: Measured, rounds: number): Record<string, number | string> {
  const out: Record<string, number | string> = {
    'req/s': round(m.rps, 0),
    p50_ms: round(m.p50),
    p99_ms: round(m.p99),
    server_cpu_us_per_req: round(m.serverCpuUsPerReq, 1),
    client_cpu_us_per_req: round(m.clientCpuUsPerReq, 1),
    errors: m.errors,
    rounds,
  };
  if (m.firstError) out.first_error = m.firstError.slice(0, 120);
  return out;
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const seconds = quick ? 2 : 3;
  const rounds = quick ? 1 : 3;
  const procs: Proc[] = [];
  try {
    const bare = child('server-bare', ['server-bare']);
    const node = child('server-node', ['server-node']);
    procs.push(bare, node);
    const [barePort, nodePort] = await Promise.all([portOf(bare), portOf(node)]);
    const servers = { bare, node };
    const client = child('client', [
      'client',
      `127.0.0.1:${barePort}`,
      `127.0.0.1:${nodePort}`,
      String(seconds),
      String(rounds),
    ]);
    procs.push(client);
    const results: Measured[] = [];
    let cpuAtBegin = 0;
    let current: Job | undefined;
    lines(client, (l) => {
      if (l.startsWith('BEGIN ')) {
        current = JOBS.find((j) => j.name === l.slice(6));
        if (current) cpuAtBegin = cpuSeconds(servers[current.server].pid);
      } else if (l.startsWith('RESULT ') && current) {
        const r = JSON.parse(l.slice(7)) as LoadResult;
        const cpu = cpuSeconds(servers[current.server].pid) - cpuAtBegin;
        results.push({ ...r, serverCpuUsPerReq: (cpu * 1e6) / Math.max(1, r.ok + r.errors) });
      }
    });
    const code = await new Promise<number | null>((resolve) => client.child.on('exit', resolve));
    if (code !== 0 || results.length < JOBS.length * rounds) {
      throw new Error(
        `load process exited with ${code} after ${results.length} results:\n${client.output()}`,
      );
    }
    const m = medians(results);
    const get = (name: string) => m.get(name)!;
    return [
      {
        bench: BENCH,
        case: 'bare grpc-js unary (constant), 64 in flight',
        metrics: metrics(get('bare'), rounds),
      },
      {
        bench: BENCH,
        case: 'node unary Get (cache hits), 64 in flight',
        metrics: metrics(get('unary-get'), rounds),
        baseline: 'bare grpc-js unary',
        ratio: round(get('unary-get').rps / get('bare').rps),
        goal: 'close to the bare ceiling',
      },
      {
        bench: BENCH,
        case: 'peer unary Get (GrpcPeer.getUnary), 64 in flight',
        metrics: metrics(get('peer-unary'), rounds),
        baseline: 'bare grpc-js unary',
        ratio: round(get('peer-unary').rps / get('bare').rps),
      },
      {
        bench: BENCH,
        case: 'peer stream fetch (GrpcPeer.get), 64 in flight',
        metrics: metrics(get('peer-stream'), rounds),
        baseline: 'peer unary Get',
        ratio: round(get('peer-stream').rps / get('peer-unary').rps),
        goal: 'well above 17.4k/s so the HTTP front path can reach 17.4k',
      },
      {
        bench: BENCH,
        case: 'peer stream fetch (GrpcPeer.get), 256 in flight',
        metrics: metrics(get('peer-stream-256'), rounds),
        baseline: 'peer unary Get',
        ratio: round(get('peer-stream-256').rps / get('peer-unary').rps),
      },
    ];
  } finally {
    await stopAll(procs);
  }
}

const roleAt = process.argv.indexOf('--role');
if (roleAt >= 0) {
  const [role, ...rest] = process.argv.slice(roleAt + 1);
  if (role === 'server-node') await serveNode();
  else if (role === 'server-bare') await serveBare();
  else if (role === 'client') {
    await load({ bare: rest[0], node: rest[1] }, Number(rest[2]), Number(rest[3]));
    process.exit(0);
  } else {
    console.error(`unknown role ${role}`);
    process.exit(2);
  }
} else if (isMain(import.meta.url)) {
  await runAlone(run);
}
