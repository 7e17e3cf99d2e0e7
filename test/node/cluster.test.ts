// Three `gossipcache` processes on 127.0.0.1 started through the CLI: they gossip into one ring and
// answer every key through any node, with one origin load per key cluster-wide.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type CountingOrigin,
  countingOrigin,
  type NodeProcess,
  startCliCluster,
  stopCli,
} from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { waitFor } from '../support/wait.js';

let origin: CountingOrigin;
const nodes: NodeProcess[] = [];

before(async () => {
  origin = await countingOrigin(50);
  const cluster = await startCliCluster(3, () => ({ GOSSIPCACHE_ORIGIN: origin.url, LOG_LEVEL: 'info' }));
  nodes.push(...cluster.nodes);
});

after(async () => {
  const codes = await Promise.all(nodes.map((n) => stopCli(n)));
  await origin.close();
  assert.deepEqual(codes, [0, 0, 0], 'every node exits 0 on SIGTERM');
});

interface ClusterView {
  members: { state: string; grpcAddr: string; incarnation: number }[];
  ringChecksum: string;
  ring: string[];
}

test('the three nodes form one ring', async () => {
  const views = await waitFor(
    'one ring of 3 on every node',
    async () => {
      const vs: ClusterView[] = [];
      for (const n of nodes) vs.push(JSON.parse((await httpGet(`${n.http}/_cluster`)).text));
      const alive = vs.every((v) => v.members.filter((m) => m.state === 'alive').length === 3);
      const same = vs.every((v) => v.ringChecksum === vs[0].ringChecksum && v.ring.length === 3);
      return alive && same && vs;
    },
    30_000,
  ).catch((err) => {
    for (const n of nodes) console.error(n.output().slice(-2000));
    throw err;
  });
  assert.deepEqual(
    views[0].ring,
    nodes.map((n) => `127.0.0.1:${n.grpcPort}`).sort(),
    'the ring is the advertised gRPC addresses',
  );
  for (const n of nodes) assert.equal((await httpGet(`${n.http}/readyz`)).status, 200);
  // Membership changes and the resulting rings are logged.
  for (const n of nodes) {
    const msgs = n
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).msg as string);
    assert.ok(
      msgs.some((m) => /^member \S+ new → alive$/.test(m)),
      n.output(),
    );
    assert.ok(msgs.includes('ring changed'), n.output());
  }
});

test('every key answers through any node, loaded once cluster-wide', async () => {
  origin.loads.clear();
  const keys = Array.from({ length: 30 }, (_, i) => `key-${i}/x y`);
  // Every node asks for every key at about the same time: the owner's flight and the peers'
  // forwarding must still make one origin load per key.
  const answers = await Promise.all(
    keys.flatMap((k) =>
      nodes.map(async (n) => ({ k, r: await httpGet(`${n.http}/default/${encodeURIComponent(k)}`) })),
    ),
  );
  for (const { k, r } of answers) {
    assert.equal(r.status, 200, `${k}: ${r.text}`);
    assert.equal(r.text, `value:${k}`);
  }
  assert.equal(origin.loads.size, keys.length);
  for (const k of keys) assert.equal(origin.loads.get(k), 1, `loads of ${k}`);

  // Each node loaded only its own share; the others were peer loads.
  const stats = await Promise.all(
    nodes.map(async (n) => JSON.parse((await httpGet(`${n.http}/_stats`)).text)),
  );
  const localLoads = stats.map((s) => s.groups.default.stats.localLoads as number);
  assert.equal(
    localLoads.reduce((a, b) => a + b, 0),
    keys.length,
  );
  assert.ok(
    stats.some((s) => s.groups.default.stats.peerLoads > 0),
    'some keys came from peers',
  );
});

test('DELETE through one node removes the key cluster-wide', async () => {
  const key = 'to-remove';
  for (const n of nodes) assert.equal((await httpGet(`${n.http}/default/${key}`)).status, 200);
  assert.equal(origin.loads.get(key), 1);
  assert.equal((await httpGet(`${nodes[1].http}/default/${key}`, { method: 'DELETE' })).status, 204);
  for (const n of nodes) assert.equal((await httpGet(`${n.http}/default/${key}`)).text, `value:${key}`);
  assert.equal(origin.loads.get(key), 2, 'loaded again once after the remove');
});

test('metrics show the group counters and membership', async () => {
  const text = (await httpGet(`${nodes[0].http}/metrics`)).text;
  assert.match(text, /^gossipcache_group_gets_total\{group="default"\} [1-9]\d*$/m);
  assert.match(text, /^gossipcache_members\{state="alive"\} 3$/m);
  assert.match(text, /^gossipcache_ring_nodes 3$/m);
  assert.match(
    text,
    /^gossipcache_peer_rpc_seconds_count\{peer="127\.0\.0\.1:\d+",outcome="answered"\} [1-9]/m,
  );
});
