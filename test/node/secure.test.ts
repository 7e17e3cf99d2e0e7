// Two CLI nodes with gRPC mutual TLS and encrypted gossip, configured only by environment: they form
// one ring and serve each other's keys. (PKI made by openssl at test time, see test/support/pki.ts.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CountingOrigin,
  countingOrigin,
  type NodeProcess,
  startCliCluster,
  stopCli,
  waitForOneRing,
} from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { hasOpenssl, makePki } from '../support/pki.js';

/**
 * Waits for one ring of the nodes, then checks that ten keys (`prefix`-0..9) read right through every
 * node with one origin load each, and that the nodes fetched from each other with no peer errors.
 */
async function assertServedAcross(
  nodes: NodeProcess[],
  origin: CountingOrigin,
  prefix: string,
): Promise<void> {
  await waitForOneRing(nodes);
  const keys = Array.from({ length: 10 }, (_, i) => `${prefix}-${i}`);
  for (const k of keys) {
    for (const n of nodes) assert.equal((await httpGet(`${n.http}/default/${k}`)).text, `value:${k}`);
  }
  for (const k of keys) assert.equal(origin.loads.get(k), 1, k);
  const stats = await Promise.all(
    nodes.map(async (n) => JSON.parse((await httpGet(`${n.http}/_stats`)).text)),
  );
  assert.ok(
    stats.every((s) => s.groups.default.stats.peerLoads > 0 && s.groups.default.stats.peerErrors === 0),
    JSON.stringify(stats.map((s) => s.groups.default.stats)),
  );
}

test('mTLS between peers and an encrypted gossip ring, configured by env', {
  skip: !hasOpenssl() && 'no openssl',
}, async () => {
  const pki = makePki();
  const origin = await countingOrigin();
  const key = Buffer.alloc(32, 3).toString('base64');
  const { nodes } = await startCliCluster(2, (i) => {
    const tls = pki.node(`n${i}`);
    return {
      GOSSIPCACHE_SECRET_KEY: key,
      GOSSIPCACHE_TLS_CERT: tls.certFile,
      GOSSIPCACHE_TLS_KEY: tls.keyFile,
      GOSSIPCACHE_TLS_CA: tls.caFile,
      GOSSIPCACHE_ORIGIN: origin.url,
    };
  });
  try {
    await assertServedAcross(nodes, origin, 'secure');
    const start =
      nodes[0]
        .output()
        .split('\n')
        .find((l) => l.includes('gossipcache started')) ?? '';
    assert.match(start, /"tls":"on"/);
    assert.ok(!nodes[0].output().includes(key), 'the gossip key is never logged');
  } finally {
    const codes = await Promise.all(nodes.map((n) => stopCli(n)));
    await origin.close();
    pki.cleanup();
    assert.deepEqual(codes, [0, 0]);
  }
});

// Kubernetes: peers are dialled at pod IPs, which no certificate can list in advance. Certificates name
// one DNS name (the headless service) and GOSSIPCACHE_TLS_SERVER_NAME tells clients to expect it.
test('mTLS with certificates that name only a DNS name: GOSSIPCACHE_TLS_SERVER_NAME', {
  skip: !hasOpenssl() && 'no openssl',
}, async () => {
  const pki = makePki();
  const origin = await countingOrigin();
  const { nodes } = await startCliCluster(2, (i) => {
    const tls = pki.node(`peer${i}`, 'DNS:gossipcache-peers');
    return {
      GOSSIPCACHE_TLS_CERT: tls.certFile,
      GOSSIPCACHE_TLS_KEY: tls.keyFile,
      GOSSIPCACHE_TLS_CA: tls.caFile,
      GOSSIPCACHE_TLS_SERVER_NAME: 'gossipcache-peers',
      GOSSIPCACHE_ORIGIN: origin.url,
    };
  });
  try {
    await assertServedAcross(nodes, origin, 'named');
  } finally {
    const codes = await Promise.all(nodes.map((n) => stopCli(n)));
    await origin.close();
    pki.cleanup();
    assert.deepEqual(codes, [0, 0]);
  }
});
