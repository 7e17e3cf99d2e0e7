// Request messages a client starts and does not finish (src/grpc/receiving.ts). grpc-js keeps an
// incoming message's bytes until all of it has come; a client sending all but the last byte of 1 MiB
// messages on 100 streams made one connection hold 100 MB, uncounted and never timed out. Now those
// bytes count in the node's held bytes, are bounded per connection and per node (stalled senders reset
// first), and a message without progress for stallTimeoutMs is reset.
//
// The attacking client runs in a worker thread, as it would run elsewhere: with the raw HTTP/2 client in
// the server's own thread, Node 20's http2 client never returned from closing a stream after the server
// had reset another one on that connection.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Group, GroupRegistry } from '../../src/group.js';
import { createGrpcServer, GET_PATH, type GrpcLimits, GrpcPeer } from '../../src/grpc/index.js';
import { sleep, waitFor } from '../support/wait.js';

const KiB = 1024;
const ENHANCE_YOUR_CALM = 11;

async function node(limits: Partial<GrpcLimits>) {
  const registry = new GroupRegistry();
  new Group({ name: 'g', cacheBytes: 1 << 24, registry, getter: async (k) => `v:${k}` });
  const server = createGrpcServer({ registry, limits });
  const port = await server.listen('127.0.0.1:0');
  return { addr: `127.0.0.1:${port}`, port, server };
}

// In the worker: one raw HTTP/2 connection; `open` starts a Get whose prefix announces `length` bytes and
// sends `send` of them (the stream stays open, its replies unread); reports each stream's close.
const ATTACKER = `
const http2 = require('node:http2');
const { parentPort, workerData } = require('node:worker_threads');
const session = http2.connect('http://127.0.0.1:' + workerData.port);
session.on('error', () => {});
let n = 0;
parentPort.on('message', (m) => {
  if (m.op === 'destroy') return session.destroy();
  const s = session.request({ ':method': 'POST', ':path': workerData.path, 'content-type': 'application/grpc', te: 'trailers' });
  const id = n++;
  s.on('error', () => {});
  s.pause();
  s.on('close', () => parentPort.postMessage({ id, rst: s.rstCode }));
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(m.length, 1);
  s.write(Buffer.concat([prefix, Buffer.alloc(m.send, 0x61)]));
});`;

/** A raw HTTP/2 connection in a worker; `partial()` returns a promise of that stream's RST code. */
function attacker(port: number) {
  const w = new Worker(ATTACKER, { eval: true, workerData: { port, path: GET_PATH } });
  const closed = new Map<number, (rst: number) => void>();
  w.on('message', (m: { id: number; rst: number }) => closed.get(m.id)?.(m.rst));
  let next = 0;
  return {
    partial(length: number, send: number): Promise<number> {
      const id = next++;
      const p = new Promise<number>((resolve) => closed.set(id, resolve));
      w.postMessage({ op: 'open', length, send });
      return p;
    },
    /** Closes the connection (its streams report their close). */
    disconnect: () => w.postMessage({ op: 'destroy' }),
    stop: () => w.terminate(),
  };
}

describe('gRPC request messages still arriving', () => {
  test('are counted in the held bytes; a connection passing its bound with no stalled sender is closed', async () => {
    // Per connection 256 KiB; per node a quarter of 4 MiB = 1 MiB.
    const { addr, port, server } = await node({ maxConnectionBytes: 256 * KiB, maxHeldBytes: 4096 * KiB });
    const client = attacker(port);
    const peer = new GrpcPeer(addr);
    try {
      const a = client.partial(200 * KiB, 100 * KiB);
      await waitFor('100 KiB counted', () => server.stats().heldBytes >= 100 * KiB);
      const b = client.partial(200 * KiB, 100 * KiB);
      await waitFor('200 KiB counted', () => server.stats().heldBytes >= 200 * KiB);
      assert.ok(server.stats().heldBytes < 256 * KiB, `${server.stats().heldBytes}`);
      // A third passes the connection's 256 KiB, and a and b are not stalled (under 1 s): the connection is
      // closed, every stream of it with it, and what they held given back.
      const c = client.partial(200 * KiB, 100 * KiB);
      // (The client never closes them: all three ending is the server's doing.)
      await Promise.all([a, b, c]);
      assert.ok(server.stats().shedStreams >= 1);
      await waitFor('nothing held', () => server.stats().heldBytes === 0);
      // Other connections are served as before.
      const r = await peer.get('g', 'k1', AbortSignal.timeout(5000));
      assert.equal(Buffer.from(r.value).toString(), 'v:k1');
    } finally {
      peer.close();
      await client.stop();
      await server.close(0);
    }
  });

  test('past the node bound, a stalled sender is reset to make room for one that is sending', async () => {
    // Per node a quarter of 1 MiB = 256 KiB; per connection the same.
    const { port, server } = await node({ maxConnectionBytes: 1024 * KiB, maxHeldBytes: 1024 * KiB });
    const hogs = [attacker(port), attacker(port)];
    const other = attacker(port);
    try {
      const stalled = hogs.map((h) => h.partial(200 * KiB, 120 * KiB));
      await waitFor('240 KiB counted', () => server.stats().heldBytes >= 240 * KiB);
      await sleep(1200); // both now quiet for over a second
      const fresh = other.partial(100 * KiB, 50 * KiB);
      // The longest stalled makes room; the newcomer keeps its stream.
      assert.equal(await Promise.race(stalled), ENHANCE_YOUR_CALM);
      assert.equal(await Promise.race([fresh.then(() => 'reset'), sleep(300).then(() => 'open')]), 'open');
      assert.ok(server.stats().heldBytes <= 256 * KiB, `${server.stats().heldBytes}`);
    } finally {
      for (const h of [...hogs, other]) await h.stop();
      await server.close(0);
    }
  });

  test('a message without progress for stallTimeoutMs is reset; well-behaved calls are served meanwhile', async () => {
    const { addr, port, server } = await node({ stallTimeoutMs: 400 });
    const client = attacker(port);
    const peer = new GrpcPeer(addr);
    try {
      const stuck = client.partial(1024 * KiB, 1024 * KiB - 1); // all but the last byte
      await waitFor('1 MiB counted', () => server.stats().heldBytes >= 1024 * KiB - 1);
      const r = await peer.get('g', 'k1', AbortSignal.timeout(5000));
      assert.equal(Buffer.from(r.value).toString(), 'v:k1');
      assert.equal(await stuck, ENHANCE_YOUR_CALM);
      assert.ok(server.stats().stalledStreams >= 1);
      await waitFor('nothing held', () => server.stats().heldBytes === 0);
      const r2 = await peer.get('g', 'k2', AbortSignal.timeout(5000));
      assert.equal(Buffer.from(r2.value).toString(), 'v:k2');
    } finally {
      peer.close();
      await client.stop();
      await server.close(0);
    }
  });
});
