// Issue 3 — the gRPC peer protocol. Every case runs the server in one child process and the load in
// another (64 requests in flight), so client and server costs are both real and share the two cores
// like a cluster's nodes would.
//   bare-unary   a plain grpc-js unary server answering a constant (identity serializers): our ceiling
//   unary-get    groupcachepb.GroupCache/Get on a node, cache hits           → ratio vs bare-unary
//   peer-unary   the same node, peer-marked unary Get through GrpcPeer        (what a unary peer path costs)
//   peer-stream  GrpcPeer.get: fills multiplexed over one Fetch stream        → ratio vs peer-unary
// The same file is the child: `grpc.ts --role <server-node|server-bare|client> ...`.
import { setMaxListeners } from 'node:events';
import { Client, credentials, Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import { encodeKeyRequest } from '../../src/grpc/codec.js';
import { createGrpcServer, GET_PATH, GrpcPeer } from '../../src/grpc/index.js';
import { percentile, round } from './lib/format.js';
import { isMain, runAlone } from './lib/main.js';
import { withCpu } from './lib/measure.js';
import { type Server as Proc, startProcess, stopAll } from './lib/proc.js';
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

type Mode = 'raw-unary' | 'peer-unary' | 'peer-stream';

/** Runs `IN_FLIGHT` loops of one request kind for `seconds` after a warm-up; prints JSON stats. */
async function load(addr: string, mode: Mode, seconds: number, inFlight: number): Promise<void> {
  const signal = new AbortController().signal;
  setMaxListeners(0, signal); // shared by every request here; the core gives each fetch its own
  let one: (i: number) => Promise<unknown>;
  let close: () => void;
  if (mode === 'raw-unary') {
    // Pre-encoded requests and an identity deserializer: the client costs the same against both servers.
    const client = new Client(addr, credentials.createInsecure());
    const reqs = Array.from({ length: KEYS }, (_, i) => encodeKeyRequest({ group: GROUP, key: key(i) }));
    const id = (b: Buffer) => b;
    one = (i) =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(GET_PATH, id, id, reqs[i % KEYS], new Metadata(), {}, (e, r) =>
          e ? reject(e) : resolve(r),
        ),
      );
    close = () => client.close();
  } else {
    const peer = new GrpcPeer(addr, { timeoutMs: 10_000 });
    one =
      mode === 'peer-stream'
        ? (i) => peer.get(GROUP, key(i), signal)
        : (i) => peer.getUnary(GROUP, key(i), signal);
    close = () => peer.close();
  }
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
  const workers = Array.from({ length: inFlight }, worker);
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: JIT, connection, stream
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const wallS = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(workers);
  close();
  lat.sort((a, b) => a - b);
  const out = {
    ok: lat.length,
    errors,
    firstError,
    rps: lat.length / wallS,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
  };
  console.log(`RESULT ${JSON.stringify(out)}`);
}

// ---------------- orchestration ----------------

const self = new URL(import.meta.url).pathname;

function child(name: string, args: string[]): Proc {
  return startProcess(name, process.execPath, ['--import', 'tsx', self, '--role', ...args]);
}

/** The first line `<TAG> <rest>` a child prints. */
function line(p: Proc, tag: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(
      () => reject(new Error(`${p.name}: no ${tag} line in ${timeoutMs} ms:\n${p.output()}`)),
      timeoutMs,
    );
    p.child.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      const m = new RegExp(`^${tag} (.*)$`, 'm').exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
    p.child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${p.name} exited (${code}) before printing ${tag}:\n${p.output()}`));
    });
  });
}

interface LoadResult {
  ok: number;
  errors: number;
  firstError: string;
  rps: number;
  p50: number;
  p99: number;
}

async function measure(
  server: Proc,
  addr: string,
  mode: Mode,
  seconds: number,
  inFlight = IN_FLIGHT,
): Promise<{ r: LoadResult; cpuServer: number; cpuClient: number }> {
  const client = child(`client-${mode}`, ['client', addr, mode, String(seconds), String(inFlight)]);
  try {
    const result = line(client, 'RESULT', (seconds + 30) * 1000);
    // CPU over the whole client life (incl. warm-up), so per-request CPU is an upper bound.
    const w = await withCpu([server, client], () => result);
    return { r: JSON.parse(w.result) as LoadResult, cpuServer: w.cpu[0], cpuClient: w.cpu[1] };
  } finally {
    await client.stop();
  }
}

function metrics(m: { r: LoadResult; cpuServer: number }, seconds: number): Record<string, number | string> {
  const out: Record<string, number | string> = {
    'req/s': round(m.r.rps, 0),
    p50_ms: round(m.r.p50),
    p99_ms: round(m.r.p99),
    server_cpu_us_per_req: round((m.cpuServer / (m.r.rps * (seconds + 1))) * 1e6, 1),
    errors: m.r.errors,
  };
  if (m.r.firstError) out.first_error = m.r.firstError.slice(0, 120);
  return out;
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const seconds = quick ? 2 : 5;
  const procs: Proc[] = [];
  try {
    const bare = child('server-bare', ['server-bare']);
    procs.push(bare);
    const bareAddr = `127.0.0.1:${await line(bare, 'PORT', 30_000)}`;
    const mBare = await measure(bare, bareAddr, 'raw-unary', seconds);
    await bare.stop();

    const node = child('server-node', ['server-node']);
    procs.push(node);
    const nodeAddr = `127.0.0.1:${await line(node, 'PORT', 30_000)}`;
    const mUnary = await measure(node, nodeAddr, 'raw-unary', seconds);
    const mPeerUnary = await measure(node, nodeAddr, 'peer-unary', seconds);
    const mStream = await measure(node, nodeAddr, 'peer-stream', seconds);
    const mStream256 = await measure(node, nodeAddr, 'peer-stream', seconds, 256);

    return [
      {
        bench: BENCH,
        case: 'bare grpc-js unary (constant), 64 in flight',
        metrics: metrics(mBare, seconds),
      },
      {
        bench: BENCH,
        case: 'node unary Get (cache hits), 64 in flight',
        metrics: metrics(mUnary, seconds),
        baseline: 'bare grpc-js unary',
        ratio: round(mUnary.r.rps / mBare.r.rps),
        goal: 'close to the bare ceiling',
      },
      {
        bench: BENCH,
        case: 'peer unary Get (GrpcPeer.getUnary), 64 in flight',
        metrics: metrics(mPeerUnary, seconds),
        baseline: 'bare grpc-js unary',
        ratio: round(mPeerUnary.r.rps / mBare.r.rps),
      },
      {
        bench: BENCH,
        case: 'peer stream fetch (GrpcPeer.get), 64 in flight',
        metrics: metrics(mStream, seconds),
        baseline: 'peer unary Get',
        ratio: round(mStream.r.rps / mPeerUnary.r.rps),
        goal: 'well above 17.4k/s so the HTTP front path can reach 17.4k',
      },
      {
        bench: BENCH,
        case: 'peer stream fetch (GrpcPeer.get), 256 in flight',
        metrics: metrics(mStream256, seconds),
        baseline: 'peer unary Get',
        ratio: round(mStream256.r.rps / mPeerUnary.r.rps),
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
  else if (role === 'client') await load(rest[0], rest[1] as Mode, Number(rest[2]), Number(rest[3]));
  else {
    console.error(`unknown role ${role}`);
    process.exit(status.INVALID_ARGUMENT);
  }
  if (role === 'client') process.exit(0);
} else if (isMain(import.meta.url)) {
  await runAlone(run);
}
