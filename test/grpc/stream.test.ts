// The Fetch stream's framing, seen from the other end: a scripted fake node checks what GrpcPeer sends
// (coalesced batches, cancels, deadlines), and a real node is driven past its flow-control windows.

import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import { Server, type ServerDuplexStream, status } from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import type { FetchReply, FetchRequest } from '../../src/grpc/codec.js';
import { createGrpcServer, GrpcPeer, PeerError } from '../../src/grpc/index.js';
import { gossipCacheService } from '../../src/grpc/proto.js';
import { bindLocal } from '../support/grpc-cluster.js';
import { waitFor } from '../support/wait.js';

/** A node that records every batch it receives and answers only what `answer` says. */
async function fakeNode(answer: (q: FetchRequest) => FetchReply | undefined) {
  const batches: FetchRequest[][] = [];
  const server = new Server();
  server.addService(gossipCacheService, {
    Fetch(call: ServerDuplexStream<FetchRequest[], FetchReply[]>) {
      call.on('data', (batch: FetchRequest[]) => {
        batches.push(batch);
        const replies = batch.map(answer).filter((r): r is FetchReply => r !== undefined);
        if (replies.length > 0) call.write(replies);
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
    Remove: (_call: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
  });
  const port = await bindLocal(server);
  return { addr: `127.0.0.1:${port}`, batches, close: () => server.forceShutdown() };
}

const ok = (q: FetchRequest): FetchReply => ({
  id: q.id,
  code: 0,
  value: Buffer.from(`v:${q.key}`),
  minuteQps: 3,
  ttlMs: 0,
  message: '',
});

describe('peer stream', () => {
  test('requests issued in one event-loop turn travel in one message', async () => {
    const node = await fakeNode(ok);
    const peer = new GrpcPeer(node.addr);
    try {
      const signal = new AbortController().signal;
      const got = await Promise.all(Array.from({ length: 50 }, (_, i) => peer.get('g', `k${i}`, signal)));
      assert.deepEqual(
        got.map((r) => Buffer.from(r.value).toString()),
        Array.from({ length: 50 }, (_, i) => `v:k${i}`),
      );
      assert.equal(got[0].minuteQps, 3);
      assert.equal(node.batches.length, 1, `batches: ${node.batches.map((b) => b.length)}`);
      assert.equal(node.batches[0].length, 50);
      assert.equal(new Set(node.batches[0].map((q) => q.id)).size, 50, 'ids are unique');
      assert.ok(node.batches[0].every((q) => q.timeoutMs > 0 && !q.cancel && q.group === 'g'));
    } finally {
      peer.close();
      node.close();
    }
  });

  test('an unanswered request fails with DEADLINE_EXCEEDED and is cancelled at the node', async () => {
    const node = await fakeNode((q) => (q.key === 'answered' ? ok(q) : undefined));
    const peer = new GrpcPeer(node.addr, { timeoutMs: 200 });
    try {
      const signal = new AbortController().signal;
      const err = await peer.get('g', 'silent', signal).then(
        () => assert.fail('expected a deadline'),
        (e: Error) => e,
      );
      assert.ok(err instanceof PeerError);
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
      const sent = node.batches.flat();
      const id = sent.find((q) => q.key === 'silent')!.id;
      await waitFor('the cancel message', () => node.batches.flat().some((q) => q.cancel && q.id === id));
      assert.equal(sent.find((q) => q.key === 'silent')!.timeoutMs, 200, 'the deadline travels with it');
      // The stream survives: later requests are answered.
      assert.equal(Buffer.from((await peer.get('g', 'answered', signal)).value).toString(), 'v:answered');
    } finally {
      peer.close();
      node.close();
    }
  });

  test("a caller's abort rejects with its reason at once and cancels at the node", async () => {
    const node = await fakeNode(() => undefined);
    const peer = new GrpcPeer(node.addr);
    try {
      const ac = new AbortController();
      const p = peer.get('g', 'k', ac.signal);
      await waitFor('the request', () => node.batches.length === 1);
      ac.abort(new Error('caller left'));
      await assert.rejects(p, /caller left/);
      const id = node.batches[0][0].id;
      await waitFor('the cancel message', () => node.batches.flat().some((q) => q.cancel && q.id === id));
      await assert.rejects(peer.get('g', 'k', ac.signal), /caller left/, 'an aborted signal never sends');
    } finally {
      peer.close();
      node.close();
    }
  });

  test('a signal shared by many requests and peers gets one listener; its abort fails only those in flight', async () => {
    const node = await fakeNode((q) => (q.key.startsWith('quick') ? ok(q) : undefined));
    const peers = [new GrpcPeer(node.addr), new GrpcPeer(node.addr)];
    try {
      const ac = new AbortController();
      for (let round = 0; round < 3; round++) {
        await Promise.all(peers.map((peer, i) => peer.get('g', `quick${round}-${i}`, ac.signal)));
      }
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1, 'one listener, not one per request');
      const held = peers.flatMap((peer) => [
        peer.get('g', 'held1', ac.signal),
        peer.get('g', 'held2', ac.signal),
      ]);
      await waitFor(
        'requests',
        () => node.batches.flat().filter((q) => q.key.startsWith('held')).length === 4,
      );
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
      ac.abort(new Error('connection closed'));
      for (const p of held) await assert.rejects(p, /connection closed/);
      const heldIds = node.batches
        .flat()
        .filter((q) => q.key.startsWith('held'))
        .map((q) => q.id);
      await waitFor(
        'a cancel for each held request',
        () => node.batches.flat().filter((q) => q.cancel).length === 4,
      );
      const cancelled = node.batches
        .flat()
        .filter((q) => q.cancel)
        .map((q) => q.id);
      assert.deepEqual(cancelled.sort(), heldIds.sort(), 'settled requests are not cancelled');
      // Another signal still works on the same streams.
      const other = new AbortController().signal;
      assert.equal(
        Buffer.from((await peers[0].get('g', 'quick-after', other)).value).toString(),
        'v:quick-after',
      );
    } finally {
      for (const peer of peers) peer.close();
      node.close();
    }
  });

  test('replies with unknown ids are ignored; failures carry code and message', async () => {
    const node = await fakeNode((q) => ({
      id: q.id + 1000,
      code: status.UNAVAILABLE,
      value: Buffer.alloc(0),
      minuteQps: 0,
      ttlMs: 0,
      message: 'stray',
    }));
    const peer = new GrpcPeer(node.addr, { timeoutMs: 300 });
    try {
      const err = await peer.get('g', 'k', new AbortController().signal).then(
        () => assert.fail('a stray reply answered the request'),
        (e: PeerError) => e,
      );
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
    } finally {
      peer.close();
      node.close();
    }
  });

  test('32 MiB of values in flight on one stream pass the flow-control windows intact', async () => {
    const registry = new GroupRegistry();
    const MiB = 1 << 20;
    new Group({
      name: 'g',
      cacheBytes: 0,
      registry,
      getter: async (key) => Buffer.alloc(MiB, Number(key.slice(1)) & 0xff),
    });
    const server = createGrpcServer({ registry });
    const peer = new GrpcPeer(`127.0.0.1:${await server.listen('127.0.0.1:0')}`, { timeoutMs: 60_000 });
    try {
      const signal = new AbortController().signal;
      const got = await Promise.all(Array.from({ length: 32 }, (_, i) => peer.get('g', `k${i}`, signal)));
      got.forEach((r, i) => {
        assert.equal(r.value.byteLength, MiB);
        assert.ok(Buffer.from(r.value).equals(Buffer.alloc(MiB, i & 0xff)), `value ${i} intact`);
      });
    } finally {
      peer.close();
      await server.close(0);
    }
  });
});
