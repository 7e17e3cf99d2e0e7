// Clients that never read their replies (src/grpc/stall.ts): with a small node budget, raw HTTP/2
// connections that send Fetch requests and never read the replies fill it; a well-behaved peer must
// keep getting correct values meanwhile, the never-reading streams must be reset (RST_STREAM
// ENHANCE_YOUR_CALM) and what they held given back. And a connection cannot open more Fetch streams
// than maxFetchStreams, which bounds what its streams read ahead of the budgets.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { describe, test } from 'node:test';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import { encodeFetchBatch, encodeKeyRequest, type FetchRequest } from '../../src/grpc/codec.js';
import { createGrpcServer, FETCH_PATH, GET_PATH, type GrpcLimits, GrpcPeer } from '../../src/grpc/index.js';
import { createMetrics } from '../../src/node/metrics.js';
import { grpcFrame, rawSession, unreadCall } from '../support/grpc-cluster.js';
import { sleep, waitFor } from '../support/wait.js';

const VALUE_BYTES = 64 * 1024;
const value = (k: string) => Buffer.alloc(VALUE_BYTES, k);

async function node(limits: Partial<GrpcLimits>) {
  const registry = new GroupRegistry();
  new Group({ name: 'g', cacheBytes: 1 << 28, registry, getter: async (k) => value(k) });
  const server = createGrpcServer({ registry, limits });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  // The node program's metrics read the same stats (src/node/main.ts).
  const metrics = createMetrics({ registry, grpc: () => server.stats(), processMetrics: false });
  return { addr, server, metrics };
}

/** gRPC framing of one FetchBatch: no compression, 4-byte length, message. */
function frame(reqs: FetchRequest[]): Buffer {
  return grpcFrame(encodeFetchBatch(reqs));
}

/**
 * A raw HTTP/2 connection with one Fetch stream that sends `messages` × `perMessage` requests for
 * distinct keys and never reads a reply (the paused stream never opens its flow-control window).
 */
function neverReader(addr: string, tag: string, messages: number, perMessage: number) {
  const session = rawSession(addr);
  const stream = unreadCall(session, FETCH_PATH);
  const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? -1)));
  for (let m = 0; m < messages; m++) {
    const reqs = Array.from(
      { length: perMessage },
      (_, i): FetchRequest => ({
        id: m * perMessage + i + 1,
        group: 'g',
        key: `${tag}-${m * perMessage + i}`,
        timeoutMs: 0,
        cancel: false,
      }),
    );
    stream.write(frame(reqs));
  }
  return { session, stream, closed };
}

/** A well-behaved peer's fetches, one after another until `until()`; each checked and timed. */
async function goodPeer(addr: string, until: () => boolean) {
  const peer = new GrpcPeer(addr);
  const ms: number[] = [];
  try {
    for (let i = 0; !until(); i++) {
      const key = `good-${i}`;
      const t = performance.now();
      const r = await peer.get('g', key, AbortSignal.timeout(15_000));
      ms.push(performance.now() - t);
      assert.ok(Buffer.from(r.value).equals(value(key)), `the value of ${key}`);
      await sleep(20);
    }
  } finally {
    peer.close();
  }
  return ms;
}

describe('gRPC clients that never read their replies', () => {
  test('never-reading connections filling the node budget are shed; a good peer keeps being served', async () => {
    // 1 MiB per connection, 4 MiB per node: 8 never-reading connections want twice the node budget.
    // The stall timeout is out of reach (10 min): shedding alone must make room.
    const n = await node({
      maxConnectionBytes: 1 << 20,
      maxHeldBytes: 4 << 20,
      maxStreamRequests: 32,
      stallTimeoutMs: 600_000,
    });
    const attackers = Array.from({ length: 8 }, (_, i) => neverReader(n.addr, `bad${i}`, 10, 32));
    let maxHeld = 0;
    const probe = setInterval(() => {
      maxHeld = Math.max(maxHeld, n.server.stats().heldBytes);
    }, 5);
    try {
      // The budget fills: less than one connection's budget is left.
      await waitFor('the never-readers to fill the node budget', () => n.server.stats().heldBytes > 3 << 20, {
        timeoutMs: 10_000,
        state: () => JSON.stringify(n.server.stats()),
      });
      const start = performance.now();
      const rst: number[] = [];
      let allClosed = false;
      void Promise.all(attackers.map((a) => a.closed)).then((codes) => {
        rst.push(...codes);
        allClosed = true;
      });
      const goodMs = await goodPeer(n.addr, () => allClosed && performance.now() - start > 2000);
      const elapsed = performance.now() - start;
      const st = n.server.stats();
      console.log(
        `shed: ${goodMs.length} good fetches, slowest ${Math.max(...goodMs).toFixed(0)} ms; ` +
          `${st.shedStreams} never-reading streams shed, all within ${elapsed.toFixed(0)} ms; ` +
          `max held ${(maxHeld / 2 ** 20).toFixed(2)} MiB`,
      );
      // Every never-reading stream was reset (ENHANCE_YOUR_CALM), not left holding its replies.
      assert.deepEqual(
        rst,
        attackers.map(() => http2.constants.NGHTTP2_ENHANCE_YOUR_CALM),
      );
      assert.equal(st.shedStreams, attackers.length);
      assert.equal(st.stalledStreams, 0, 'none reached the 10-minute stall timeout');
      // Generous bounds (a loaded 2-core box): the good peer waited seconds at most, never its 15 s.
      assert.ok(goodMs.length >= 10, `${goodMs.length} good fetches`);
      assert.ok(Math.max(...goodMs) < 10_000, `slowest good fetch ${Math.max(...goodMs)} ms`);
      // What they held is given back.
      await waitFor(
        'held bytes given back',
        () => n.server.stats().heldBytes === 0 && n.server.stats().fetchStreams === 0,
        { state: () => JSON.stringify(n.server.stats()) },
      );
      // Held bytes stay near the node budget: requests already taken (≤ 32 per stream, 64 KiB
      // values) may overshoot it, as a value's size is known only once loaded.
      assert.ok(maxHeld < (4 << 20) + 8 * 32 * (VALUE_BYTES + 1024), `max held ${maxHeld}`);
      const text = await n.metrics.text();
      assert.match(text, /gossipcache_grpc_streams_reset_total\{reason="shed"\} 8\n/);
      assert.match(text, /gossipcache_grpc_streams_reset_total\{reason="stalled"\} 0\n/);
      assert.match(text, /gossipcache_grpc_held_bytes 0\n/);
    } finally {
      clearInterval(probe);
      for (const a of attackers) a.session.destroy();
      await n.server.close(0);
    }
  });

  test('a never-reading stream is reset after the stall timeout, not before, with the budget far from full', async () => {
    const stallTimeoutMs = 1500;
    const n = await node({ maxConnectionBytes: 1 << 20, maxStreamRequests: 32, stallTimeoutMs });
    const attackers = Array.from({ length: 3 }, (_, i) => neverReader(n.addr, `slow${i}`, 4, 32));
    let closedAt = 0;
    void Promise.all(attackers.map((a) => a.closed)).then(() => (closedAt = performance.now()));
    try {
      // Each holds its connection's budget (its replies queued, unread).
      await waitFor(
        'replies held for the never-readers',
        () => n.server.stats().heldBytes > 3 * (900 << 10),
        {
          timeoutMs: 10_000,
          state: () => JSON.stringify(n.server.stats()),
        },
      );
      const held = performance.now();
      await sleep(stallTimeoutMs / 2);
      assert.equal(closedAt, 0, 'not reset before the stall timeout');
      assert.equal(n.server.stats().fetchStreams, 3);
      const codes = await Promise.all(attackers.map((a) => a.closed));
      assert.deepEqual(
        codes,
        attackers.map(() => http2.constants.NGHTTP2_ENHANCE_YOUR_CALM),
      );
      console.log(
        `stall: 3 never-reading streams reset ${(closedAt - held).toFixed(0)} ms after their replies were held`,
      );
      const st = n.server.stats();
      assert.equal(st.stalledStreams, 3);
      assert.equal(st.shedStreams, 0, 'the node budget (256 MiB) was far from full');
      assert.equal(st.heldBytes, 0);
      // The node still serves (a good peer on another connection).
      const peer = new GrpcPeer(n.addr);
      const r = await peer.get('g', 'after', AbortSignal.timeout(10_000));
      assert.ok(Buffer.from(r.value).equals(value('after')));
      peer.close();
    } finally {
      for (const a of attackers) a.session.destroy();
      await n.server.close(0);
    }
  });

  test('unary Get replies a client does not read stay charged, and are reset after the stall timeout', async () => {
    const n = await node({ maxConnectionBytes: 1 << 20, stallTimeoutMs: 1500 });
    const session = rawSession(n.addr);
    const calls = Array.from({ length: 24 }, (_, i) => {
      const stream = unreadCall(session, GET_PATH);
      let grpcStatus = '';
      stream.on('trailers', (t) => (grpcStatus = String(t['grpc-status'] ?? '')));
      stream.on('response', (h) => (grpcStatus ||= String(h['grpc-status'] ?? '')));
      stream.end(grpcFrame(encodeKeyRequest({ group: 'g', key: `unread-${i}` })));
      const closed = new Promise<{ rst: number; grpcStatus: string }>((resolve) =>
        stream.on('close', () => resolve({ rst: stream.rstCode ?? -1, grpcStatus })),
      );
      return closed;
    });
    try {
      // 64 KiB values: the connection's 1 MiB fills with replies it does not read.
      await waitFor('unread unary replies held', () => n.server.stats().heldBytes > 12 * VALUE_BYTES, {
        timeoutMs: 10_000,
        state: () => JSON.stringify(n.server.stats()),
      });
      // Meanwhile another connection is served.
      const peer = new GrpcPeer(n.addr);
      const r = await peer.getUnary('g', 'good', AbortSignal.timeout(10_000));
      assert.ok(Buffer.from(r.value).equals(value('good')));
      peer.close();
      const ends = await Promise.all(calls);
      const reset = ends.filter((e) => e.rst === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
      const busy = ends.filter((e) => e.grpcStatus === String(status.RESOURCE_EXHAUSTED)).length;
      console.log(
        `unary: of 24 unread Gets, ${reset} reset after the stall timeout, ${busy} refused as busy`,
      );
      assert.ok(reset >= 12, `${reset} reset`);
      // The rest were refused at the connection's budget (or sent whole within the HTTP/2 window).
      assert.ok(reset + busy >= 23, JSON.stringify(ends));
      assert.equal(n.server.stats().stalledStreams, reset);
      await waitFor('held bytes given back', () => n.server.stats().heldBytes === 0, {
        state: () => JSON.stringify(n.server.stats()),
      });
    } finally {
      session.destroy();
      await n.server.close(0);
    }
  });

  test('a connection gets at most maxFetchStreams Fetch streams; the next is refused, others are served', async () => {
    const n = await node({ maxFetchStreams: 3 });
    // One grpc-js client = one connection (its own subchannel pool).
    const c = new Client(n.addr, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const ident = (b: Buffer) => b;
    const open = () => {
      const call = c.makeBidiStreamRequest(FETCH_PATH, ident, ident, new Metadata());
      const done = new Promise<ServiceError | { code: number; details: string }>((resolve) => {
        call.on('status', (s) => resolve(s));
        call.on('error', () => {});
      });
      return { call, done };
    };
    const streams = [open(), open(), open()];
    try {
      // The three are served (and stay open).
      for (const [i, s] of streams.entries()) {
        const reply = new Promise<Buffer>((resolve) => s.call.once('data', resolve));
        s.call.write(encodeFetchBatch([{ id: 1, group: 'g', key: `k${i}`, timeoutMs: 0, cancel: false }]));
        assert.ok((await reply).length > VALUE_BYTES, `stream ${i} answered`);
      }
      const fourth = open();
      fourth.call.write(encodeFetchBatch([{ id: 1, group: 'g', key: 'k4', timeoutMs: 0, cancel: false }]));
      const s4 = await fourth.done;
      assert.equal(s4.code, status.RESOURCE_EXHAUSTED);
      assert.match(s4.details, /already has 3 Fetch streams open/);
      // Another connection is unaffected.
      const peer = new GrpcPeer(n.addr);
      const r = await peer.get('g', 'other', AbortSignal.timeout(10_000));
      assert.ok(Buffer.from(r.value).equals(value('other')));
      peer.close();
      // Once one of the three ends, the connection may open another.
      streams[0].call.end();
      await streams[0].done;
      const fifth = open();
      const reply = new Promise<Buffer>((resolve) => fifth.call.once('data', resolve));
      fifth.call.write(encodeFetchBatch([{ id: 1, group: 'g', key: 'k5', timeoutMs: 0, cancel: false }]));
      assert.ok((await reply).length > VALUE_BYTES);
      fifth.call.end();
      for (const s of streams.slice(1)) s.call.end();
    } finally {
      c.close();
      await n.server.close(0);
    }
  });
});
