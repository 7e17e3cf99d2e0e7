// The handoff question and the leave push over gRPC (proto/gossipcache.proto: FetchRequest.handoff,
// Push): the question is answered from the caches only, never loads; a push is kept in the main cache.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isNotFound } from '../../src/errors.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { createGrpcServer, GrpcPeer, PeerError } from '../../src/grpc/index.js';

async function node() {
  const registry = new GroupRegistry();
  let loads = 0;
  const group = new Group({
    name: 'g',
    cacheBytes: 1 << 20,
    registry,
    getter: async (k) => {
      loads++;
      return { value: `v:${k}`, ttlMs: 60_000 };
    },
  });
  const server = createGrpcServer({ registry });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  return { group, server, addr, loads: () => loads };
}

describe('handoff over gRPC', () => {
  test('the handoff question answers cached values with their TTL, NOT_FOUND otherwise, never loads', async () => {
    const n = await node();
    const peer = new GrpcPeer(n.addr);
    const signal = new AbortController().signal;
    try {
      await assert.rejects(peer.handoff('g', 'a', signal), (e) => isNotFound(e));
      assert.equal(n.loads(), 0, 'a handoff question ran the getter');
      await n.group.getString('a');
      const r = await peer.handoff('g', 'a', signal);
      assert.equal(Buffer.from(r.value).toString(), 'v:a');
      assert.ok(r.ttlMs !== undefined && r.ttlMs > 50_000 && r.ttlMs <= 60_000);
      assert.equal(n.loads(), 1);
      // The ordinary fetch on the same stream still loads.
      assert.equal(Buffer.from((await peer.get('g', 'b', signal)).value).toString(), 'v:b');
      assert.equal(n.loads(), 2);
      await assert.rejects(peer.handoff('nope', 'a', signal), (e) => e instanceof PeerError && e.code === 5);
    } finally {
      peer.close();
      await n.server.close(0);
    }
  });

  test('a push is kept in the receiver main cache, with its TTL; removed keys are refused', async () => {
    const n = await node();
    const peer = new GrpcPeer(n.addr);
    const signal = new AbortController().signal;
    try {
      n.group.server.removeLocal('gone');
      const kept = await peer.push(
        'g',
        [
          { key: 'p1', value: Buffer.from('one'), ttlMs: 30_000, minuteQps: 5 },
          { key: 'p2', value: Buffer.from('two') },
          { key: 'gone', value: Buffer.from('old') },
          { key: 'dead', value: Buffer.from('x'), ttlMs: 0 },
        ],
        signal,
      );
      // ttlMs 0 travels as "no expiry" on the wire: the sender never pushes expired entries.
      assert.equal(kept, 3);
      assert.equal(await n.group.getString('p1'), 'one');
      assert.equal(await n.group.getString('p2'), 'two');
      const e = await n.group.getEntry('p1');
      assert.ok(e.ttlMs !== undefined && e.ttlMs <= 30_000 && e.ttlMs > 20_000);
      assert.equal(await n.group.getString('gone'), 'v:gone', 'a removed key came back through a push');
      assert.equal(n.loads(), 1);
      assert.equal(n.group.stats.handoffAccepted, 3);
      assert.equal(
        await peer.push('nope', [{ key: 'k', value: Buffer.from('v') }], signal).catch(() => -1),
        -1,
      );
    } finally {
      peer.close();
      await n.server.close(0);
    }
  });
});
