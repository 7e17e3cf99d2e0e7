// createNode as a library: two nodes in one process (own registries, port 0), gossip into one ring,
// serve each other's keys over gRPC, and leave cleanly.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createNode, type GossipNode } from '../../src/cluster/index.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { waitFor } from '../support/wait.js';

test('two nodes join, agree on the ring, and share loads', async () => {
  const loads: string[][] = [[], []];
  const registries = [new GroupRegistry(), new GroupRegistry()];
  const groups = registries.map(
    (registry, i) =>
      new Group({
        name: 'g',
        cacheBytes: 1 << 20,
        registry,
        getter: async (key) => {
          loads[i].push(key);
          return `v:${key}`;
        },
      }),
  );
  const nodes: GossipNode[] = [];
  try {
    const common = { grpcAddr: '127.0.0.1:0', gossipAddr: '127.0.0.1:0', advertiseHost: '127.0.0.1' };
    nodes.push(await createNode({ ...common, registry: registries[0] }));
    await nodes[0].ready;
    nodes.push(await createNode({ ...common, registry: registries[1], seeds: [nodes[0].gossipAddr] }));
    await nodes[1].ready;
    await waitFor('both rings to hold both nodes', () => nodes.every((n) => n.ringMembers().length === 2));
    assert.equal(nodes[0].ringChecksum(), nodes[1].ringChecksum());
    assert.deepEqual(nodes[0].ringMembers(), [nodes[0].grpcAddr, nodes[1].grpcAddr].sort());
    assert.ok(nodes.every((n) => n.isReady()));
    assert.deepEqual(
      nodes[0]
        .members()
        .map((m) => m.meta.grpcAddr)
        .sort(),
      nodes[0].ringMembers(),
    );

    // Every key is loaded exactly once, by its owner, whichever node is asked.
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const k of keys) {
      assert.equal(await groups[0].getString(k), `v:${k}`);
      assert.equal(await groups[1].getString(k), `v:${k}`);
    }
    assert.deepEqual([...loads[0], ...loads[1]].sort(), [...keys].sort());
    assert.ok(loads[0].length > 0 && loads[1].length > 0, 'both nodes own some keys');

    // Leaving: the other node's ring shrinks back to itself.
    await nodes[1].close();
    await waitFor('node 0 to drop the leaver', () => nodes[0].ringMembers().length === 1);
    assert.deepEqual(nodes[0].ringMembers(), [nodes[0].grpcAddr]);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
    for (const g of groups) g.close();
  }
});
