// Real gRPC between several nodes in one process (each with its own GroupRegistry, on 127.0.0.1:0):
// one load per key, routing of outside clients, owner failure, disagreeing rings, cluster-wide
// remove, reconnect after a restart, the picker's bookkeeping.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GrpcPeer, RingPeerPicker } from '../../src/grpc/index.js';
import { noPeers, type PeerPicker } from '../../src/peers.js';
import {
  type Cluster,
  keyOwnedBy,
  startCluster,
  startNode,
  type TestNode,
  totalLoads,
} from '../support/grpc-cluster.js';
import {
  GossipCacheClient,
  GroupCacheClient,
  insecure,
  peerMetadata,
  unary,
} from '../support/grpc-std-client.js';
import { sleep, within } from '../support/wait.js';

async function withCluster(c: Promise<Cluster>, fn: (c: Cluster) => Promise<void>): Promise<void> {
  const cluster = await c;
  try {
    await fn(cluster);
  } finally {
    await cluster.close();
  }
}

describe('cluster over gRPC', () => {
  test('200 concurrent gets spread over all nodes → exactly one load per key, at its owner', () =>
    withCluster(
      startCluster({
        nodes: 3,
        getter:
          ({ addr }) =>
          async (key) => {
            await sleep(20);
            return `${key}@${addr}`;
          },
      }),
      async (c) => {
        const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
        const gets = Array.from({ length: 200 }, (_, i) => {
          const key = keys[i % keys.length];
          return c.nodes[i % 3].group.getString(key).then((v) => ({ key, v }));
        });
        const results = await Promise.all(gets);
        for (const key of keys) assert.equal(totalLoads(c, key), 1, `loads of ${key}`);
        for (const { key, v } of results) {
          const owner = c.nodes.find((n) => n.loads.has(key))!;
          assert.equal(v, `${key}@${owner.addr}`);
          const picked = c.nodes[0].picker.pickPeer(key);
          assert.equal(picked?.id ?? c.nodes[0].addr, owner.addr, `${key} loaded by its ring owner`);
        }
        const peerLoads = c.nodes.reduce((s, n) => s + n.group.stats.peerLoads, 0);
        assert.ok(peerLoads > 0, 'some values travelled between nodes');
      },
    ));

  test('an outside client is routed to the owner; a peer-marked Get is served where it lands', () =>
    withCluster(startCluster({ nodes: 2 }), async (c) => {
      const [a, b] = c.nodes;
      const client = new GroupCacheClient(a.addr, insecure);
      try {
        const k1 = keyOwnedBy(a, b, 'outside');
        const r1 = await unary<{ value: Buffer }>(client, 'Get', { group: 'g', key: k1 });
        assert.equal(r1.value.toString(), `${k1}@${b.addr}`);
        assert.equal(b.loads.get(k1), 1);
        const k2 = keyOwnedBy(a, b, 'marked');
        const r2 = await unary<{ value: Buffer }>(
          client,
          'Get',
          { group: 'g', key: k2 },
          { metadata: peerMetadata() },
        );
        assert.equal(r2.value.toString(), `${k2}@${a.addr}`);
        assert.equal(b.loads.get(k2), undefined, 'a peer request is never forwarded');
      } finally {
        client.close();
      }
    }));

  test('owner shut down → requests (new and in flight) fall back to local loads, no client error', () => {
    let slowAt = ''; // only the owner's getter hangs, so only a working fallback finishes
    return withCluster(
      startCluster({
        nodes: 2,
        getter:
          ({ addr }) =>
          (key, { signal }) =>
            key.startsWith('slow') && addr === slowAt
              ? new Promise((resolve, reject) => {
                  const t = setTimeout(() => resolve(`${key}@${addr}`), 10_000);
                  signal.addEventListener('abort', () => {
                    clearTimeout(t);
                    reject(signal.reason);
                  });
                })
              : Promise.resolve(`${key}@${addr}`),
      }),
      async (c) => {
        const [a, b] = c.nodes;
        slowAt = b.addr;
        const warm = keyOwnedBy(a, b, 'warm');
        assert.equal(await a.group.getString(warm), `${warm}@${b.addr}`); // stream is up
        const slowKey = keyOwnedBy(a, b, 'slow');
        const inFlight = a.group.getString(slowKey);
        while (!b.loads.has(slowKey)) await sleep(5);
        await b.server.close(0);
        assert.equal(await within(inFlight, 8000, 'in-flight fallback'), `${slowKey}@${a.addr}`);
        const later = keyOwnedBy(a, b, 'later');
        assert.equal(await within(a.group.getString(later), 8000, 'fallback'), `${later}@${a.addr}`);
        assert.ok(a.group.stats.peerErrors >= 2, `peerErrors ${a.group.stats.peerErrors}`);
      },
    );
  });

  test('two nodes that each think the other owns every key → no loop, bounded time', async () => {
    const opts = { nodes: 2 };
    const a = await startNode(opts);
    const b = await startNode(opts);
    const toA = new GrpcPeer(a.addr);
    const toB = new GrpcPeer(b.addr);
    const always = (p: GrpcPeer): PeerPicker => ({ pickPeer: () => p, peers: () => [p] });
    a.registry.setPeerPicker(always(toB));
    b.registry.setPeerPicker(always(toA));
    const client = new GroupCacheClient(b.addr, insecure);
    try {
      assert.equal(await within(a.group.getString('x'), 5000, 'get on a'), `x@${b.addr}`);
      assert.deepEqual([a.loads.get('x'), b.loads.get('x')], [undefined, 1]);
      // An outside client at b: b forwards to a, a serves it itself.
      const r = await within(
        unary<{ value: Buffer }>(client, 'Get', { group: 'g', key: 'y' }),
        5000,
        'unary get on b',
      );
      assert.equal(r.value.toString(), `y@${a.addr}`);
      assert.deepEqual([a.loads.get('y'), b.loads.get('y')], [1, undefined]);
      assert.equal(a.group.stats.serverRequests + b.group.stats.serverRequests, 2, 'one hop each');
    } finally {
      client.close();
      toA.close();
      toB.close();
      for (const n of [a, b]) {
        n.registry.setPeerPicker(noPeers);
        n.picker.close();
        n.group.close();
      }
      await Promise.all([a.server.close(0), b.server.close(0)]);
    }
  });

  test('RingPeerPickers with different member sets (A → B, B → A under another address) → no loop', async () => {
    const a = await startNode({ nodes: 2 });
    const b = await startNode({ nodes: 2 });
    // A also listens on a second port: to B's ring that is a different member, to A it is itself.
    const aliasPort = await a.server.listen('127.0.0.1:0');
    const alias = `127.0.0.1:${aliasPort}`;
    a.picker.set([a.addr, b.addr]);
    b.picker.set([b.addr, alias]);
    const client = new GroupCacheClient(a.addr, insecure);
    try {
      let key = '';
      for (let i = 0; !key; i++) {
        const k = `loop-${i}`;
        if (a.picker.pickPeer(k)?.id === b.addr && b.picker.pickPeer(k)?.id === alias) key = k;
      }
      assert.equal(await within(a.group.getString(key), 5000, 'get on a'), `${key}@${b.addr}`);
      assert.deepEqual([a.loads.get(key), b.loads.get(key)], [undefined, 1]);
      let key2 = '';
      for (let i = 0; !key2; i++) {
        const k = `loop2-${i}`;
        if (a.picker.pickPeer(k)?.id === b.addr && b.picker.pickPeer(k)?.id === alias) key2 = k;
      }
      const r = await within(
        unary<{ value: Buffer }>(client, 'Get', { group: 'g', key: key2 }),
        5000,
        'outside get at a',
      );
      assert.equal(r.value.toString(), `${key2}@${b.addr}`);
      assert.equal(a.group.stats.serverRequests, 0, 'b never sent the key back to a');
    } finally {
      client.close();
      for (const n of [a, b]) {
        n.picker.close();
        n.group.close();
      }
      await Promise.all([a.server.close(0), b.server.close(0)]);
    }
  });

  test('group.remove drops the key on every node and tolerates a node that is down', () =>
    withCluster(startCluster({ nodes: 3 }), async (c) => {
      const [a, b, d] = c.nodes;
      const k = keyOwnedBy(a, b, 'rm');
      await a.group.getString(k);
      await d.group.getString(k);
      assert.equal(b.loads.get(k), 1);
      await a.group.remove(k);
      await d.group.getString(k);
      assert.equal(b.loads.get(k), 2, 'the owner dropped its copy and loaded again');

      await d.server.close(0);
      const k2 = keyOwnedBy(a, b, 'rm2');
      await a.group.getString(k2);
      await within(a.group.remove(k2), 8000, 'remove with a peer down');
      assert.ok(a.group.stats.removeErrors >= 1, `removeErrors ${a.group.stats.removeErrors}`);
      await a.group.getString(k2);
      assert.equal(b.loads.get(k2), 2);
    }));

  test("an outside client's Set or Remove on a node that does not own the key changes it cluster-wide; a peer's stays local", () =>
    withCluster(startCluster({ nodes: 3 }), async (c) => {
      const [a, b, owner] = c.nodes;
      const k = keyOwnedBy(a, owner, 'outside-set');
      const clients = c.nodes.map((n) => new GroupCacheClient(n.addr, insecure));
      const gossip = new GossipCacheClient(a.addr, insecure);
      /** The value of k as an outside client of each node sees it, and as each node's group sees it. */
      const everywhere = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const client of clients) {
          const r = await unary<{ value: Buffer }>(client, 'Get', { group: 'g', key: k });
          out.push(r.value.toString());
        }
        for (const n of c.nodes) out.push(await n.group.getString(k));
        return out;
      };
      const cached = (n: TestNode): string | undefined => {
        const v = n.group.server.getCached(k);
        return v === undefined ? undefined : Buffer.from(v).toString();
      };
      try {
        assert.deepEqual(new Set(await everywhere()), new Set([`${k}@${owner.addr}`]));
        assert.equal(owner.loads.get(k), 1);

        await unary(gossip, 'Set', { group: 'g', key: k, value: Buffer.from('set-via-a'), ttl_ms: 0 });
        assert.deepEqual(await everywhere(), Array(6).fill('set-via-a'), 'every node sees the new value');
        assert.equal(cached(owner), 'set-via-a', 'stored at the owner');
        assert.equal(owner.loads.get(k), 1);

        // A peer's Set (what group.set sends the owner) is stored where it lands, never forwarded.
        await unary(
          gossip,
          'Set',
          { group: 'g', key: k, value: Buffer.from('peer-set'), ttl_ms: 0 },
          { metadata: peerMetadata() },
        );
        assert.equal(cached(a), 'peer-set');
        assert.equal(cached(owner), 'set-via-a', 'a peer Set is not forwarded');

        // A peer's Remove drops the key on that node only.
        await unary(gossip, 'Remove', { group: 'g', key: k }, { metadata: peerMetadata() });
        assert.equal(a.group.server.getCached(k), undefined);
        assert.equal(cached(owner), 'set-via-a', 'a peer Remove is not forwarded');

        // An outside client's Remove on a non-owner drops it everywhere: the owner loads it again.
        await unary(gossip, 'Remove', { group: 'g', key: k });
        assert.equal(owner.group.server.getCached(k), undefined, 'the owner dropped it');
        assert.deepEqual(new Set(await everywhere()), new Set([`${k}@${owner.addr}`]));
        assert.equal(owner.loads.get(k), 2);
        assert.equal(b.loads.get(k), undefined);
      } finally {
        for (const client of clients) client.close();
        gossip.close();
      }
    }));

  test('the peer stream reconnects after the peer restarts on the same address', async () => {
    const c = await startCluster({ nodes: 2 });
    const [a, b] = c.nodes;
    let b2: TestNode | undefined;
    try {
      const k = keyOwnedBy(a, b, 'before');
      assert.equal(await a.group.getString(k), `${k}@${b.addr}`);
      await b.server.close(0);
      b2 = await startNode({ nodes: 1 }, b.port);
      b2.picker.set(c.addrs);
      let served = false;
      for (let i = 0; i < 150 && !served; i++) {
        const key = keyOwnedBy(a, b, `after${i}`);
        await a.group.getString(key);
        served = b2.loads.get(key) === 1;
        if (!served) await sleep(100);
      }
      assert.ok(served, 'a fetched from the restarted peer');
    } finally {
      if (b2) {
        b2.picker.close();
        await b2.server.close(0);
      }
      await c.close();
    }
  });

  test('onPeerRpc sees every fill with its latency and outcome', async () => {
    const seen: { ms: number; ok: boolean; peer: string }[] = [];
    await withCluster(
      startCluster({ nodes: 2, onPeerRpc: (ms, ok, peer) => seen.push({ ms, ok, peer }) }),
      async (c) => {
        const [a, b] = c.nodes;
        await a.group.getString(keyOwnedBy(a, b, 'hook'));
        assert.equal(seen.length, 1);
        assert.equal(seen[0].ok, true);
        assert.equal(seen[0].peer, b.addr);
        assert.ok(seen[0].ms >= 0 && Number.isFinite(seen[0].ms));
      },
    );
  });
});

describe('RingPeerPicker', () => {
  test('owns its own keys, agrees with peers, closes channels of peers that left', async () => {
    const a = new RingPeerPicker({ self: '127.0.0.1:1' });
    const b = new RingPeerPicker({ self: '127.0.0.1:2' });
    try {
      assert.equal(a.pickPeer('anything'), null, 'alone: owns everything');
      const members = ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3'];
      a.set(members);
      b.set([...members].reverse());
      assert.equal(a.checksum(), b.checksum());
      assert.deepEqual(
        a.peers().map((p) => p.id),
        ['127.0.0.1:2', '127.0.0.1:3'],
      );
      let own = 0;
      for (let i = 0; i < 300; i++) {
        const key = `k${i}`;
        const pa = a.pickPeer(key);
        const pb = b.pickPeer(key);
        const ownerA = pa?.id ?? a.self;
        const ownerB = pb?.id ?? b.self;
        assert.equal(ownerA, ownerB, `both agree on ${key}`);
        if (pa === null) own++;
      }
      assert.ok(own > 50 && own < 150, `a owns about a third of the keys (${own})`);
      const peer3 = a.peers()[1];
      const kept = a.peers()[0];
      a.set(['127.0.0.1:2']); // 3 left; self stays a member without being listed
      assert.deepEqual(a.members(), ['127.0.0.1:1', '127.0.0.1:2']);
      assert.equal(a.peers()[0], kept, 'the channel of a peer that stays is reused');
      await assert.rejects(peer3.get('g', 'k', new AbortController().signal), /removed/);
      assert.throws(() => a.set(['']), /non-empty/);
      assert.deepEqual(a.members(), ['127.0.0.1:1', '127.0.0.1:2'], 'a bad set() changes nothing');
    } finally {
      a.close();
      b.close();
    }
    assert.equal(a.pickPeer('k1'), null);
    assert.throws(() => new RingPeerPicker({ self: '' }), /self/);
  });
});
