// Real memcached clients, unchanged, against three `gossipcache` CLI nodes with the memcached front on:
// pymemcache (Debian python3-pymemcache), libmemcached's memccat (Debian libmemcached-tools) and the npm
// memcache-client. Plus: 300 concurrent gets of one fresh key over every node's memcached port make one
// origin load; a multi-get spanning every owner; an origin answering 503 (SERVER_ERROR through every
// node, one origin call per get); protocol errors on a live node.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { MemcacheClient } from 'memcache-client';
import { type NodeProcess, startCliCluster, stopCli, waitForOneRing } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { RawConn } from '../support/memcached-client.js';
import { freePort } from '../support/ports.js';

const PYTHON = '/usr/bin/python3';
const hasPymemcache = spawnSync(PYTHON, ['-c', 'import pymemcache'], { stdio: 'ignore' }).status === 0;
const MEMCCAT = ['/usr/bin/memccat', '/usr/bin/memcat'].find(
  (b) => spawnSync(b, ['--help'], { stdio: 'ignore' }).error === undefined,
);

/**
 * An HTTP origin: `/items/<key>` → `value:<key>` after `delayMs`, 404 for keys starting with `missing`,
 * 503 for keys starting with `fail`.
 */
const loads = new Map<string, number>();
let delayMs = 0;
const origin = createServer((req, res) => {
  const key = decodeURIComponent((req.url ?? '').slice('/items/'.length));
  loads.set(key, (loads.get(key) ?? 0) + 1);
  setTimeout(() => {
    if (key.startsWith('missing')) {
      res.writeHead(404);
      res.end();
    } else if (key.startsWith('fail')) {
      res.writeHead(503);
      res.end('overloaded');
    } else res.end(`value:${key}`);
  }, delayMs);
});

const nodes: NodeProcess[] = [];
const mcPorts: number[] = [];

before(async () => {
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}/items/{key}`;
  for (let i = 0; i < 3; i++) mcPorts.push(await freePort());
  const cluster = await startCliCluster(3, (i) => ({
    GOSSIPCACHE_ORIGIN: url,
    GOSSIPCACHE_MEMCACHED_ADDR: `127.0.0.1:${mcPorts[i]}`,
    LOG_LEVEL: 'warn',
  }));
  nodes.push(...cluster.nodes);
  await waitForOneRing(nodes, 60_000).catch((err) => {
    for (const n of nodes) console.error(n.output().slice(-2000));
    throw err;
  });
});

after(async () => {
  // A client still connected at SIGTERM is closed by the node once its replies are written.
  const lingering = await RawConn.open(mcPorts[0]);
  assert.equal(await lingering.ask('get linger\r\n'), 'VALUE linger 0 12\r\nvalue:linger\r\nEND\r\n');
  const codes = await Promise.all(nodes.map((n) => stopCli(n)));
  await lingering.closedByServer();
  origin.closeAllConnections();
  origin.close();
  assert.deepEqual(codes, [0, 0, 0], 'every node exits 0 on SIGTERM, memcached clients connected or not');
});

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const casOf = (v: string) => createHash('sha256').update(v).digest().readBigUInt64BE(0).toString();

test('pymemcache: get, get_many (one over 64 KiB), set, gets, delete — across nodes', {
  skip: !hasPymemcache && 'python3-pymemcache not installed',
}, async () => {
  const script = `
import json, sys
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
ports = [int(p) for p in sys.argv[1].split(',')]
a = Client(('127.0.0.1', ports[0]), connect_timeout=10, timeout=20)
b = Client(('127.0.0.1', ports[1]), connect_timeout=10, timeout=20)
out = {}
out['get'] = a.get('py/a').decode()
out['get_missing'] = a.get('missing-py')
out['get_many'] = {k: v.decode() for k, v in a.get_many(['py/b', 'missing-py2', 'py/c d'.replace(' ', '_')]).items()}
out['set'] = a.set('py/set', b'written', expire=100, noreply=False)
out['get_other_node'] = b.get('py/set').decode()
v, cas = b.gets('py/set')
out['gets'] = [v.decode(), cas.decode()]
out['delete'] = a.delete('py/set', noreply=False)
out['after_delete'] = b.get('py/set').decode()
h = HashClient([('127.0.0.1', p) for p in ports], connect_timeout=10, timeout=20)
keys = ['py/many-%d' % i for i in range(20)]
out['hash_get_many'] = sorted(v.decode() for v in h.get_many(keys).values())
# One line of ~80 KB (pymemcache sends a get_many as one line): over the node's 64 KiB line, taken in batches.
big = ['py/long-%05d' % i for i in range(6000)]
got = a.get_many(big)
out['long_get_many'] = [len(got), got['py/long-00000'].decode(), got['py/long-05999'].decode()]
out['after_long'] = a.get('py/a').decode()
print(json.dumps(out))
`;
  const r = await run(PYTHON, ['-c', script, mcPorts.join(',')]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.get, 'value:py/a');
  assert.equal(out.get_missing, null);
  assert.deepEqual(out.get_many, { 'py/b': 'value:py/b', 'py/c_d': 'value:py/c_d' });
  assert.equal(out.set, true);
  assert.equal(out.get_other_node, 'written', 'a set through one node is read through another');
  assert.deepEqual(out.gets, ['written', casOf('written')]);
  assert.equal(out.delete, true);
  assert.equal(out.after_delete, 'value:py/set', 'after delete the key reads through to the origin again');
  assert.deepEqual(out.hash_get_many, Array.from({ length: 20 }, (_, i) => `value:py/many-${i}`).sort());
  for (let i = 0; i < 20; i++) assert.equal(loads.get(`py/many-${i}`), 1);
  assert.deepEqual(
    out.long_get_many,
    [6000, 'value:py/long-00000', 'value:py/long-05999'],
    'a get_many longer than a line is answered whole',
  );
  assert.equal(out.after_long, 'value:py/a', 'the connection goes on');
});

test('libmemcached memccat reads through every node', {
  skip: !MEMCCAT && 'libmemcached-tools not installed',
}, async () => {
  for (const p of mcPorts) {
    const r = await run(MEMCCAT!, [`--servers=127.0.0.1:${p}`, 'cat/one', 'cat/two']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'value:cat/one\nvalue:cat/two\n');
  }
  assert.equal(loads.get('cat/one'), 1);
  const miss = await run(MEMCCAT!, [`--servers=127.0.0.1:${mcPorts[0]}`, 'missing-cat']);
  assert.notEqual(miss.code, 0, 'a NotFound is a miss to memccat (it exits non-zero and prints nothing)');
  assert.equal(miss.stdout, '');
});

test('memcache-client (npm): set, get (strings and JSON with flags), multi-get, delete', async () => {
  const client = new MemcacheClient({ server: `127.0.0.1:${mcPorts[2]}` });
  const other = new MemcacheClient({ server: `127.0.0.1:${mcPorts[0]}` });
  try {
    assert.deepEqual(await client.set('js/str', 'hello'), ['STORED']);
    assert.equal((await other.get<string>('js/str'))?.value, 'hello');
    // Objects are JSON with flags 2: the flags round-trip through the cluster.
    assert.deepEqual(await client.set('js/obj', { a: [1, 2] }), ['STORED']);
    assert.deepEqual((await other.get<{ a: number[] }>('js/obj'))?.value, { a: [1, 2] });
    const many = (await other.get<string>(['js/str', 'js/read', 'missing-js'])) as unknown as Record<
      string,
      { value: string }
    >;
    assert.equal(many['js/str'].value, 'hello');
    assert.equal(many['js/read'].value, 'value:js/read');
    assert.equal(many['missing-js'], undefined);
    assert.deepEqual(await client.delete('js/str'), ['DELETED']);
    assert.equal((await other.get<string>('js/str'))?.value, 'value:js/str');
  } finally {
    client.shutdown();
    other.shutdown();
  }
});

test('300 concurrent gets of one fresh key over every node make one origin load', async () => {
  delayMs = 300;
  try {
    const key = `herd-${Date.now()}`;
    const conns = await Promise.all(Array.from({ length: 300 }, (_, i) => RawConn.open(mcPorts[i % 3])));
    const replies = await Promise.all(conns.map((c) => c.ask(`get ${key}\r\n`)));
    for (const r of replies) assert.equal(r, `VALUE ${key} 0 ${6 + key.length}\r\nvalue:${key}\r\nEND\r\n`);
    assert.equal(loads.get(key), 1);
    for (const c of conns) c.close();
  } finally {
    delayMs = 0;
  }
});

test('one multi-get spanning every owner: every value, one load per key', async () => {
  const keys = Array.from({ length: 60 }, (_, i) => `batch/${i}`);
  const c = await RawConn.open(mcPorts[1]);
  const reply = await c.ask(`get ${keys.join(' ')}\r\n`, /END\r\n$/);
  const expected = keys.map((k) => `VALUE ${k} 0 ${6 + k.length}\r\nvalue:${k}\r\n`).join('') + 'END\r\n';
  assert.equal(reply, expected);
  for (const k of keys) assert.equal(loads.get(k), 1, k);
  const stats = await c.ask('stats\r\n');
  assert.match(stats, /^STAT gossipcache_peer_loads [1-9]\d*\r$/m, 'some keys came from their owners');
  c.close();
});

test('an origin answering 503: SERVER_ERROR through every node, one origin call per get (at the owner)', async () => {
  const replies: string[] = [];
  for (const port of mcPorts) {
    const c = await RawConn.open(port);
    try {
      replies.push(await c.ask('get fail-mc\r\n'));
    } finally {
      c.close();
    }
  }
  // What failed, not the origin's URL (it may carry a token): that is in the owner's log.
  for (const r of replies) assert.match(r, /^SERVER_ERROR [^\r]*origin answered HTTP 503\r\n$/);
  // The owner answers with its getter's error, the two others with the owner's (no load of their own).
  assert.equal(replies.filter((r) => r.startsWith('SERVER_ERROR OriginError: ')).length, 1, replies.join(''));
  assert.equal(
    replies.filter((r) => r.startsWith('SERVER_ERROR OwnerLoadError: ')).length,
    2,
    replies.join(''),
  );
  assert.equal(loads.get('fail-mc'), 3);
});

test('protocol errors on a live node, and the node keeps serving', async () => {
  const c = await RawConn.open(mcPorts[0]);
  assert.equal(await c.ask('bogus\r\n'), 'ERROR\r\n');
  assert.equal(await c.ask(`get ${'x'.repeat(300)}\r\n`), 'CLIENT_ERROR bad command line format\r\n');
  assert.equal(await c.ask('get missing-live\r\n'), 'END\r\n');
  c.send(Buffer.alloc(70_000, 0x41));
  await c.closedByServer();
  const d = await RawConn.open(mcPorts[0]);
  assert.equal(await d.ask('get live\r\n'), 'VALUE live 0 10\r\nvalue:live\r\nEND\r\n');
  d.close();
});

test('the memcached front in /metrics', async () => {
  const text = (await httpGet(`${nodes[1].http}/metrics`)).text;
  assert.match(text, /^gossipcache_memcached_connections\{group="default"\} \d+$/m);
  assert.match(text, /^gossipcache_memcached_commands_total\{group="default",command="get_key"\} [1-9]\d*$/m);
  assert.match(
    text,
    /^gossipcache_memcached_connections_total\{group="default",outcome="accepted"\} [1-9]\d*$/m,
  );
});
