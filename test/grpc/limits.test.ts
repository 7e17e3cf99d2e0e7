// Each bound of src/grpc/limits.ts on its own, in-process with small limits: a Fetch stream holds at
// most maxStreamRequests (the rest wait, unread, and are served later); a connection's unary Gets
// past maxConnectionBytes get RESOURCE_EXHAUSTED while another connection is still served; a client
// that never reads its replies stops being read, so the node stops loading for it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ClientDuplexStream,
  Metadata,
  Server,
  type ServerDuplexStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import {
  decodeFetchReplyBatch,
  encodeFetchBatch,
  type FetchReply,
  type FetchRequest,
} from '../../src/grpc/codec.js';
import {
  createGrpcServer,
  FETCH_PATH,
  type GrpcLimits,
  GrpcPeer,
  MAX_BATCH_REQUESTS,
  MAX_REQUEST_MESSAGE_BYTES,
  PeerError,
} from '../../src/grpc/index.js';
import { INTAKE_SLICE } from '../../src/grpc/intake.js';
import { gossipCacheService } from '../../src/grpc/proto.js';
import { bindLocal, grpcFrame, rawSession, unreadCall } from '../support/grpc-cluster.js';
import { GroupCacheClient, insecure, unary } from '../support/grpc-std-client.js';
import { sleep, waitFor } from '../support/wait.js';

/** A node whose getter waits until `release()`; `running` counts getter calls not yet answered. */
async function node(limits: Partial<GrpcLimits>, valueBytes = 0) {
  const registry = new GroupRegistry();
  const gate = { running: 0, calls: 0, maxRunning: 0, open: false, waiters: [] as (() => void)[] };
  new Group({
    name: 'g',
    cacheBytes: 1 << 26,
    registry,
    getter: async (k) => {
      gate.calls++;
      gate.running++;
      gate.maxRunning = Math.max(gate.maxRunning, gate.running);
      if (!gate.open) await new Promise<void>((r) => gate.waiters.push(r));
      gate.running--;
      return valueBytes ? Buffer.alloc(valueBytes, k.length) : `v:${k}`;
    },
  });
  const server = createGrpcServer({ registry, limits });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  const release = () => {
    gate.open = true;
    for (const w of gate.waiters.splice(0)) w();
  };
  return { addr, gate, release, close: () => server.close(0) };
}

describe('gRPC limits', () => {
  test('a Fetch stream holds at most maxStreamRequests; the rest are served once room frees', async () => {
    const n = await node({ maxStreamRequests: 8 });
    const peer = new GrpcPeer(n.addr);
    try {
      const signal = new AbortController().signal;
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
      const all = Promise.all(keys.map((k) => peer.get('g', k, signal)));
      await waitFor('8 loads', () => n.gate.running === 8);
      await sleep(200);
      assert.equal(n.gate.calls, 8, 'no more than 8 requests taken while 8 are held');
      n.release();
      const got = await all;
      assert.deepEqual(
        got.map((r) => Buffer.from(r.value).toString()),
        keys.map((k) => `v:${k}`),
      );
      assert.equal(n.gate.maxRunning, 8);
    } finally {
      peer.close();
      await n.close();
    }
  });

  test("the client keeps to the node's limits: at most MAX_BATCH_REQUESTS per message, oversized requests fail alone", async () => {
    // A node that records every batch it receives and answers each request.
    const batches: number[] = [];
    const server = new Server();
    server.addService(gossipCacheService, {
      Fetch(call: ServerDuplexStream<FetchRequest[], FetchReply[]>) {
        call.on('data', (batch: FetchRequest[]) => {
          batches.push(batch.length);
          call.write(
            batch.map((q) => ({
              id: q.id,
              code: 0,
              value: Buffer.from(q.key),
              minuteQps: 0,
              ttlMs: 0,
              message: '',
            })),
          );
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    const port = await bindLocal(server);
    const peer = new GrpcPeer(`127.0.0.1:${port}`);
    try {
      const signal = new AbortController().signal;
      const keys = Array.from({ length: 10_000 }, (_, i) => `k${i}`);
      const got = await Promise.all(keys.map((k) => peer.get('g', k, signal)));
      assert.deepEqual(
        got.map((r) => Buffer.from(r.value).toString()),
        keys,
      );
      assert.ok(Math.max(...batches) <= MAX_BATCH_REQUESTS, `batches of ${batches.join(', ')}`);
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        10_000,
      );
      // A request whose key alone is over what a node accepts per message fails alone, at the client.
      const long = 'x'.repeat(MAX_REQUEST_MESSAGE_BYTES);
      await assert.rejects(
        peer.get('g', long, signal),
        (e: Error) => e instanceof PeerError && e.code === status.RESOURCE_EXHAUSTED,
      );
      assert.equal(Buffer.from((await peer.get('g', 'after', signal)).value).toString(), 'after');
    } finally {
      peer.close();
      server.forceShutdown();
    }
  });

  test('maxConcurrentStreams is what the node advertises per connection (HTTP/2 SETTINGS; nghttp2 enforces it)', async () => {
    const n = await node({ maxConcurrentStreams: 7 });
    const session = rawSession(n.addr);
    try {
      await new Promise((r) => session.once('remoteSettings', r));
      assert.equal(session.remoteSettings.maxConcurrentStreams, 7);
    } finally {
      session.close();
      await n.close();
    }
  });

  test('a half-close right after a large batch still answers every request in it', async () => {
    // The batch is taken in slices across event-loop turns; the client's half-close arrives meanwhile.
    const n = await node({});
    n.release();
    const client = new GroupCacheClient(n.addr, insecure, { 'grpc.use_local_subchannel_pool': 1 });
    const ident = (b: Buffer) => b;
    const call = client.makeBidiStreamRequest(FETCH_PATH, ident, ident, new Metadata()) as ClientDuplexStream<
      Buffer,
      Buffer
    >;
    try {
      const ids = new Set<number>();
      call.on('data', (b: Buffer) => {
        for (const r of decodeFetchReplyBatch(b)) {
          assert.equal(r.code, 0, r.message);
          assert.equal(Buffer.from(r.value).toString(), `v:half-${r.id}`);
          ids.add(r.id);
        }
      });
      const ended = new Promise<number>((resolve) => call.on('status', (st) => resolve(st.code)));
      call.on('error', () => {});
      call.write(
        encodeFetchBatch(
          Array.from(
            { length: 4000 },
            (_, i): FetchRequest => ({
              id: i + 1,
              group: 'g',
              key: `half-${i + 1}`,
              timeoutMs: 0,
              cancel: false,
            }),
          ),
        ),
      );
      call.end();
      assert.equal(await ended, status.OK);
      assert.equal(ids.size, 4000);
    } finally {
      client.close();
      await n.close();
    }
  });

  test("unary Gets past a connection's byte budget get RESOURCE_EXHAUSTED; other connections are served", async () => {
    // Each unary call is charged 4 KiB + its key: three fit under 10 000 bytes, the fourth does not.
    const n = await node({ maxConnectionBytes: 10_000 });
    const greedy = new GroupCacheClient(n.addr, insecure, { 'grpc.use_local_subchannel_pool': 1 });
    const other = new GroupCacheClient(n.addr, insecure, {
      'grpc.use_local_subchannel_pool': 1,
      'test.conn': 2,
    });
    try {
      const held = [1, 2, 3].map((i) =>
        unary<{ value: Buffer }>(greedy, 'Get', { group: 'g', key: `h${i}` }),
      );
      await waitFor('3 loads', () => n.gate.running === 3);
      await assert.rejects(
        unary(greedy, 'Get', { group: 'g', key: 'h4' }),
        (e: ServiceError) => e.code === status.RESOURCE_EXHAUSTED && /node is busy/.test(e.details),
      );
      const fromOther = unary<{ value: Buffer }>(other, 'Get', { group: 'g', key: 'o1' });
      await waitFor("the other connection's load", () => n.gate.running === 4);
      n.release();
      assert.equal(Buffer.from((await fromOther).value).toString(), 'v:o1');
      const got = await Promise.all(held);
      assert.deepEqual(
        got.map((r) => Buffer.from(r.value).toString()),
        ['v:h1', 'v:h2', 'v:h3'],
      );
      // Released: the greedy connection is served again.
      const again = await unary<{ value: Buffer }>(greedy, 'Get', { group: 'g', key: 'h4' });
      assert.equal(Buffer.from(again.value).toString(), 'v:h4');
    } finally {
      greedy.close();
      other.close();
      await n.close();
    }
  });

  test('a client that never reads its replies stops being read: the node stops loading for it', async () => {
    // 64 KiB values, 1 MiB per connection. A raw HTTP/2 client whose response stream stays paused
    // never opens its flow-control window (grpc-js clients read ahead into their own memory).
    const n = await node({ maxConnectionBytes: 1 << 20 }, 64 * 1024);
    n.release();
    const session = rawSession(n.addr);
    const stream = unreadCall(session, FETCH_PATH);
    try {
      for (let i = 0; i < 2000; i += 100) {
        const body = encodeFetchBatch(
          Array.from(
            { length: 100 },
            (_, j): FetchRequest => ({
              id: i + j + 1,
              group: 'g',
              key: `unread-${i + j}`,
              timeoutMs: 0,
              cancel: false,
            }),
          ),
        );
        stream.write(grpcFrame(body));
      }
      // Wait until the loads stop.
      let last = -1;
      while (n.gate.calls !== last) {
        last = n.gate.calls;
        await sleep(300);
      }
      // The first slice of requests (the first message, or INTAKE_SLICE of it) is taken at once: a
      // value's size is known only once loaded. Their replies (64 KiB each) fill the 1 MiB budget, so
      // nothing more is taken.
      const firstSlice = Math.min(INTAKE_SLICE, 100);
      assert.equal(n.gate.calls, firstSlice, `${n.gate.calls} loads for a client that reads nothing`);
      // Reading again drains it, and the rest are served.
      let bytes = 0;
      stream.on('data', (d: Buffer) => {
        bytes += d.length;
      });
      stream.resume();
      await waitFor('all 2000 loads once the client reads', () => n.gate.calls === 2000);
      await waitFor('every value delivered', () => bytes > 2000 * 64 * 1024);
    } finally {
      stream.close();
      session.close();
      await n.close();
    }
  });
});
