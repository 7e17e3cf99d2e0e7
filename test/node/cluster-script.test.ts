// `npm run cluster` (scripts/cluster.mjs): each of its three nodes gets its own ports, memcached's
// included — with one GOSSIPCACHE_MEMCACHED_ADDR for all three, the second node could not bind and the
// demo stopped.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clusterNode, NODES } from '../../scripts/cluster-nodes.mjs';
import { freePort } from '../support/ports.js';

const all = (env: Record<string, string | undefined>) =>
  Array.from({ length: NODES }, (_, i) => clusterNode(i, env));

describe('npm run cluster: the nodes', () => {
  test('three nodes, each on its own HTTP, gRPC and gossip port, seeding the other two; memcached off', () => {
    const nodes = all({});
    assert.deepEqual(
      nodes.map((n) => n.name),
      ['node-1', 'node-2', 'node-3'],
    );
    for (const key of ['GOSSIPCACHE_HTTP_ADDR', 'GOSSIPCACHE_GRPC_ADDR', 'GOSSIPCACHE_GOSSIP_ADDR']) {
      assert.equal(new Set(nodes.map((n) => n.env[key])).size, 3, key);
    }
    assert.deepEqual(
      nodes.map((n) => n.env.GOSSIPCACHE_HTTP_ADDR),
      ['127.0.0.1:8080', '127.0.0.1:8081', '127.0.0.1:8082'],
    );
    assert.equal(nodes[1].env.GOSSIPCACHE_SEEDS, '127.0.0.1:7946,127.0.0.1:7948');
    for (const n of nodes) assert.equal(n.env.GOSSIPCACHE_MEMCACHED_ADDR, undefined);
  });

  test('GOSSIPCACHE_MEMCACHED_ADDR gives node i that port + i', () => {
    assert.deepEqual(
      all({ GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1:11211' }).map((n) => n.env.GOSSIPCACHE_MEMCACHED_ADDR),
      ['127.0.0.1:11211', '127.0.0.1:11212', '127.0.0.1:11213'],
    );
    assert.deepEqual(
      all({ GOSSIPCACHE_MEMCACHED_ADDR: '[::1]:20000' }).map((n) => n.env.GOSSIPCACHE_MEMCACHED_ADDR),
      ['[::1]:20000', '[::1]:20001', '[::1]:20002'],
    );
    assert.deepEqual(
      all({ GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1:0' }).map((n) => n.env.GOSSIPCACHE_MEMCACHED_ADDR),
      ['127.0.0.1:0', '127.0.0.1:0', '127.0.0.1:0'],
      'port 0: any free port for each',
    );
    assert.throws(() => all({ GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1:65534' }), /port 65536 is out of range/);
    assert.throws(() => all({ GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1' }), /expected host:port/);
  });

  test("the HTTP, gRPC and gossip variables name node 1's address and move all three; seeds follow", () => {
    const nodes = all({
      GOSSIPCACHE_HTTP_ADDR: '127.0.0.1:28080',
      GOSSIPCACHE_GRPC_ADDR: '127.0.0.1:29090',
      GOSSIPCACHE_GOSSIP_ADDR: '127.0.0.1:27946',
    });
    assert.deepEqual(
      nodes.map((n) => [
        n.env.GOSSIPCACHE_HTTP_ADDR,
        n.env.GOSSIPCACHE_GRPC_ADDR,
        n.env.GOSSIPCACHE_GOSSIP_ADDR,
      ]),
      [
        ['127.0.0.1:28080', '127.0.0.1:29090', '127.0.0.1:27946'],
        ['127.0.0.1:28081', '127.0.0.1:29091', '127.0.0.1:27947'],
        ['127.0.0.1:28082', '127.0.0.1:29092', '127.0.0.1:27948'],
      ],
    );
    assert.equal(nodes[0].env.GOSSIPCACHE_SEEDS, '127.0.0.1:27947,127.0.0.1:27948');
    assert.deepEqual(
      all({ GOSSIPCACHE_HTTP_ADDR: '127.0.0.1:0' }).map((n) => n.env.GOSSIPCACHE_HTTP_ADDR),
      ['127.0.0.1:0', '127.0.0.1:0', '127.0.0.1:0'],
    );
    assert.throws(() => all({ GOSSIPCACHE_GOSSIP_ADDR: '127.0.0.1:0' }), /seed each other by port/);
  });

  test('a node that stops on its own (its port taken) stops the others, and the script exits 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const [grpc, gossip] = [await freePort(), await freePort()];
    try {
      const script = fileURLToPath(new URL('../../scripts/cluster.mjs', import.meta.url));
      const r = spawnSync(process.execPath, [script], {
        env: {
          ...process.env,
          // node 1's HTTP port is the one taken.
          GOSSIPCACHE_HTTP_ADDR: `127.0.0.1:${port}`,
          GOSSIPCACHE_GRPC_ADDR: `127.0.0.1:${grpc}`,
          GOSSIPCACHE_GOSSIP_ADDR: `127.0.0.1:${gossip}`,
          LOG_FORMAT: 'json',
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /\[node-1\] .*EADDRINUSE/);
      assert.match(r.stdout, /\[node-1\] exited \(1\)/);
    } finally {
      taken.close();
    }
  });

  test('a bad GOSSIPCACHE_MEMCACHED_ADDR stops the script before any node starts', () => {
    const script = fileURLToPath(new URL('../../scripts/cluster.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [script], {
      env: { ...process.env, GOSSIPCACHE_MEMCACHED_ADDR: 'localhost' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /GOSSIPCACHE_MEMCACHED_ADDR=localhost: expected host:port/);
    assert.doesNotMatch(r.stdout, /node-1/);
  });
});
