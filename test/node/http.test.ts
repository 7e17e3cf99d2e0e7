import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { NotFoundError } from '../../src/errors.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { type BadKey, createHttpFront, decodeKey } from '../../src/node/http.js';
import { createMetrics } from '../../src/node/metrics.js';
import { listenLocal } from '../support/http.js';
import { sleep } from '../support/wait.js';

// A real Group behind a real server; the getter's behaviour is chosen by the key.
const registry = new GroupRegistry();
const loads: string[] = [];
let hangAborted: ((reason: unknown) => void) | undefined;
let ready = true;
new Group({
  name: 'g',
  cacheBytes: 1 << 20,
  registry,
  async getter(key, { signal }) {
    loads.push(key);
    if (key === 'hang') {
      // Waits until every waiter gave up: then the group aborts this signal.
      await new Promise((_, reject) =>
        signal.addEventListener(
          'abort',
          () => {
            hangAborted?.(signal.reason);
            reject(signal.reason);
          },
          { once: true },
        ),
      );
    }
    if (key === 'missing') throw new NotFoundError(`no ${key}`);
    if (key === 'broken') throw new Error('database on fire');
    if (key === 'slow') await sleep(300);
    if (key.startsWith('bin-')) return binaryValue(Number(key.slice(4)));
    if (key.startsWith('ttl')) return { value: `v:${key}`, ttlMs: 30_500 };
    return `v:${key}`;
  },
});
new Group({
  name: 'ttlgroup',
  cacheBytes: 1 << 20,
  registry,
  getter: async (k) => ({ value: k, ttlMs: 90_000 }),
});
/** Every byte value, small (sent as a latin1 string by the front) and large (sent as a Buffer). */
function binaryValue(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

const front = createHttpFront({
  registry,
  ready: () => ready,
  cluster: () => ({ members: [{ id: 'a', state: 'alive' }], ringChecksum: 'abc' }),
  metrics: createMetrics({
    registry,
    front: undefined,
    cluster: () => ({
      members: [{ state: 'alive' }],
      ringSize: 1,
      stats: { probes: 3, transport: { packetsSent: 7 } },
    }),
    processMetrics: false,
  }),
});
let base: string;

before(async () => {
  base = await listenLocal(front);
});
after(() => {
  front.closeAllConnections();
  front.close();
});

async function get(path: string, init?: RequestInit) {
  const res = await fetch(base + path, init);
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString() };
}

describe('GET /<group>/<key>', () => {
  test('loads once, then serves from cache as octet-stream', async () => {
    loads.length = 0;
    const a = await get('/g/hello');
    assert.equal(a.status, 200);
    assert.equal(a.text, 'v:hello');
    assert.equal(a.headers.get('content-type'), 'application/octet-stream');
    assert.equal(a.headers.get('content-length'), '7');
    assert.equal(a.headers.get('cache-control'), null);
    const b = await get('/g/hello');
    assert.equal(b.text, 'v:hello');
    assert.deepEqual(loads, ['hello']);
    assert.ok(front.counters.fastHits >= 1);
  });

  test('a miss counts one get and one load; a hit counts one get and one cache hit', async () => {
    const g = registry.get('g') as Group;
    const before = { ...g.stats };
    assert.equal((await get('/g/counted')).status, 200);
    assert.equal(g.stats.gets - before.gets, 1, 'a miss through the front is one get, not two');
    assert.equal(g.stats.loads - before.loads, 1);
    assert.equal(g.stats.cacheHits - before.cacheHits, 0);
    assert.equal((await get('/g/counted')).status, 200);
    assert.equal(g.stats.gets - before.gets, 2);
    assert.equal(g.stats.cacheHits - before.cacheHits, 1);
    assert.equal(g.stats.loads - before.loads, 1);
  });

  test('binary values of every size arrive byte for byte, on the miss and on the hit', async () => {
    for (const n of [0, 1, 256, 1023, 1024, 1025, 70_000]) {
      for (const round of ['miss', 'hit']) {
        const r = await get(`/g/bin-${n}`);
        assert.equal(r.status, 200, `${n} ${round}`);
        assert.equal(r.headers.get('content-length'), String(n));
        assert.ok(r.body.equals(binaryValue(n)), `${n} bytes, ${round}`);
      }
      const h = await get(`/g/bin-${n}`, { method: 'HEAD' });
      assert.equal(h.headers.get('content-length'), String(n));
      assert.equal(h.body.length, 0);
    }
  });

  test('keys may contain / and percent-encoded bytes; a query string is not part of the key', async () => {
    loads.length = 0;
    assert.equal((await get('/g/a/b/c')).text, 'v:a/b/c');
    assert.equal((await get('/g/%C3%BC%20x%2Fy%3F')).text, 'v:ü x/y?');
    assert.equal((await get('/g/plain?ignored=1')).text, 'v:plain');
    assert.deepEqual(loads, ['a/b/c', 'ü x/y?', 'plain']);
  });

  test('TTL entries answer with Cache-Control max-age', async () => {
    // Remaining whole seconds: a slow (loaded) machine may already be a second into the TTL.
    assert.match((await get('/g/ttl1')).headers.get('cache-control') ?? '', /^max-age=(29|30)$/);
    assert.match((await get('/ttlgroup/k')).headers.get('cache-control') ?? '', /^max-age=(89|90)$/);
    // Hits are answered on the synchronous path and still carry the remaining TTL.
    const fastBefore = front.counters.fastHits;
    const hit = await get('/ttlgroup/k');
    assert.equal(hit.text, 'k');
    assert.match(hit.headers.get('cache-control') ?? '', /^max-age=(89|90)$/);
    assert.equal(front.counters.fastHits, fastBefore + 1);
    // A value without a TTL gets no Cache-Control on a hit either.
    await get('/g/plain2');
    assert.equal((await get('/g/plain2')).headers.get('cache-control'), null);
  });

  test('errors: not found 404, invalid key 400, loader failure 502, unknown group 404', async () => {
    const nf = await get('/g/missing');
    assert.equal(nf.status, 404);
    assert.equal(nf.headers.get('content-type'), 'application/json');
    assert.equal(JSON.parse(nf.text).error, 'not found');

    const empty = await get('/g/');
    assert.equal(empty.status, 400);
    assert.equal(JSON.parse(empty.text).error, 'invalid key');

    const long = await get(`/g/${'x'.repeat(70_000)}`);
    assert.equal(long.status, 400, long.text);

    const bad = await get('/g/%zz');
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.text).error, /malformed percent-encoding/);

    const broken = await get('/g/broken');
    assert.equal(broken.status, 502);
    assert.match(JSON.parse(broken.text).cause, /database on fire/);

    const nog = await get('/nope/k');
    assert.equal(nog.status, 404);
    assert.deepEqual(JSON.parse(nog.text), {
      error: 'no group named "nope" on this node',
      groups: ['g', 'ttlgroup'],
    });
  });

  test('HEAD answers headers only', async () => {
    const r = await get('/g/hello', { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-length'), '7');
    assert.equal(r.body.length, 0);
  });

  test('DELETE removes the key (the next GET loads again)', async () => {
    await get('/g/del');
    loads.length = 0;
    const d = await get('/g/del', { method: 'DELETE' });
    assert.equal(d.status, 204);
    await get('/g/del');
    assert.deepEqual(loads, ['del']);
  });

  test('a GET pipelined behind a PUT on one connection reads what the PUT stored; the absolute form is served', async () => {
    // Node hands pipelined requests over at once; the GET used to run before the PUT's body was stored.
    const { port } = new URL(base);
    const sock = connect(Number(port), '127.0.0.1');
    let text = '';
    sock.on('data', (d) => (text += d.toString('latin1')));
    await once(sock, 'connect');
    await get('/g/pp'); // cached: v:pp
    sock.write(
      'PUT /g/pp HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nnew' +
        'GET /g/pp HTTP/1.1\r\nHost: x\r\n\r\n' +
        `GET http://127.0.0.1:${port}/g/pp HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    const deadline = Date.now() + 5000;
    while ((text.match(/HTTP\/1\.1 /g) ?? []).length < 3 && Date.now() < deadline) await sleep(10);
    sock.destroy();
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['204', '200', '200']);
    const bodies = text.split('\r\n\r\n').slice(2);
    assert.ok(bodies[0].startsWith('new'), `the GET after the PUT read ${JSON.stringify(bodies[0])}`);
    assert.ok(bodies[1].startsWith('new'), 'the absolute-form GET is the same key');
  });

  test('other methods → 405 with Allow', async () => {
    const r = await get('/g/k', { method: 'PATCH', body: 'x' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD, PUT, DELETE');
    const s = await get('/_stats', { method: 'POST' });
    assert.equal(s.status, 405);
    assert.equal(s.headers.get('allow'), 'GET, HEAD');
  });
});

describe('operational routes', () => {
  test('/_stats has every group with its stats and both caches', async () => {
    const r = await get('/_stats');
    assert.equal(r.status, 200);
    const body = JSON.parse(r.text);
    assert.deepEqual(Object.keys(body.groups), ['g', 'ttlgroup']);
    assert.ok(body.groups.g.stats.gets > 0);
    assert.equal(typeof body.groups.g.mainCache.bytes, 'number');
    assert.equal(typeof body.groups.g.hotCache.items, 'number');
  });

  test('/_cluster, /healthz, /readyz', async () => {
    assert.deepEqual(JSON.parse((await get('/_cluster')).text), {
      members: [{ id: 'a', state: 'alive' }],
      ringChecksum: 'abc',
    });
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    ready = false;
    try {
      const r = await get('/readyz');
      assert.equal(r.status, 503);
      assert.equal(JSON.parse(r.text).status, 'not ready');
    } finally {
      ready = true;
    }
  });

  test('/metrics is Prometheus text with the group counters read at scrape time', async () => {
    await get('/g/metric-key');
    const r = await get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
    const gets = /^gossipcache_group_gets_total\{group="g"\} (\d+)$/m.exec(r.text);
    assert.ok(gets, r.text);
    const before = Number(gets[1]);
    await get('/g/metric-key');
    const again = await get('/metrics');
    assert.match(again.text, new RegExp(`^gossipcache_group_gets_total\\{group="g"\\} ${before + 1}$`, 'm'));
    assert.match(again.text, /^gossipcache_cache_bytes\{group="g",cache="main"\} [1-9]\d*$/m);
    // the value store: a page holds the key and the value; nothing dropped yet
    assert.match(again.text, /^gossipcache_store_bytes\{group="g",kind="pages"\} [1-9]\d*$/m);
    assert.match(again.text, /^gossipcache_store_bytes\{group="g",kind="limbo"\} 0$/m);
    assert.match(again.text, /^gossipcache_store_limit_bytes\{group="g"\} [1-9]\d*$/m);
    assert.match(again.text, /^gossipcache_store_heap_hole_reserve_bytes\{group="g"\} \d+$/m);
    assert.match(again.text, /^gossipcache_store_index_reseeds_total\{group="g"\} 0$/m);
    assert.match(again.text, /^gossipcache_members\{state="alive"\} 1$/m);
    assert.match(again.text, /^gossipcache_membership\{name="probes"\} 3$/m);
    assert.match(again.text, /^gossipcache_membership\{name="transport.packetsSent"\} 7$/m);
  });

  test('unknown paths → 404 JSON', async () => {
    for (const p of ['/', '/_nope', '/g', '/favicon.ico']) {
      const r = await get(p);
      assert.equal(r.status, 404, p);
      assert.match(JSON.parse(r.text).error, /expected \/<group>\/<key>/);
    }
  });

  test('a client that hangs up stops waiting: its load is aborted when nobody else waits', async () => {
    const aborted = new Promise<unknown>((resolve) => {
      hangAborted = resolve;
    });
    const ac = new AbortController();
    const p = fetch(`${base}/g/hang`, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(p);
    const reason = await Promise.race([
      aborted,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the load was never aborted')), 10_000).unref(),
      ),
    ]);
    assert.match(String(reason), /client closed the connection/);
    assert.equal((await get('/healthz')).status, 200);
  });
});

test('decodeKey: percent-escapes to UTF-8; malformed escapes and invalid UTF-8 are refused', () => {
  assert.equal(decodeKey('a%2Fb'), 'a/b');
  assert.equal(decodeKey('%e2%82%ac'), '€');
  assert.equal(decodeKey('x?y=1'), 'x');
  assert.equal(decodeKey('%EF%BF%BD'), '\ufffd', 'U+FFFD itself is a key like any other');
  assert.match((decodeKey('%2') as BadKey).error, /malformed percent-encoding/);
  assert.match((decodeKey('%g0') as BadKey).error, /malformed percent-encoding/);
  // Each of these would decode to U+FFFD (and so alias one another and the key above) if repaired.
  for (const bad of ['%ff', '%fe', 'a%80', '%c3', '%c3%28', '%ed%a0%80', '%c0%af', '%f8%88%80%80%80']) {
    assert.match((decodeKey(bad) as BadKey).error, /not valid UTF-8/, bad);
  }
});

test('keys that are not UTF-8 get a 400 and never alias a value', async () => {
  loads.length = 0;
  const ok = await get('/g/%EF%BF%BD');
  assert.equal(ok.status, 200);
  assert.equal(ok.text, 'v:\ufffd');
  for (const bad of ['%ff', '%fe', 'x%80y', '%c3', '%ed%a0%80']) {
    const r = await get(`/g/${bad}`);
    assert.equal(r.status, 400, bad);
    assert.match(JSON.parse(r.text).error, /not valid UTF-8/, bad);
  }
  assert.deepEqual(loads, ['\ufffd'], 'only the valid key reached the loader');
});
