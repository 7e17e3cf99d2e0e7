// The HTTP front and the value lifecycle, in-process on a fake clock: PUT, Age, Cache-Status,
// stale answers, remembered NotFounds, and the counters in /_stats and /metrics.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { NotFoundError } from '../../src/errors.js';
import { type GetterResult, Group, GroupRegistry } from '../../src/group.js';
import { staleWindowsMs } from '../../src/node/cache-control.js';
import {
  createHttpFront,
  STATUS_HIT,
  STATUS_NOT_FOUND_HIT,
  STATUS_NOT_FOUND_ORIGIN,
  STATUS_NOT_FOUND_OWNER,
  STATUS_ORIGIN,
  STATUS_STALE,
  STATUS_STALE_IF_ERROR,
} from '../../src/node/http.js';
import { createMetrics } from '../../src/node/metrics.js';
import { httpOrigin } from '../../src/node/origin.js';
import { keyOwnedBy, startCluster } from '../support/grpc-cluster.js';
import { listenLocal } from '../support/http.js';

let t = 1_000_000;
const registry = new GroupRegistry();
let next: (key: string) => Promise<GetterResult> = async (k) => `v:${k}`;
const loads: string[] = [];
const group = new Group({
  name: 'g',
  cacheBytes: 1 << 20,
  registry,
  now: () => t,
  getter: (key) => {
    loads.push(key);
    return next(key);
  },
});
const front = createHttpFront({
  registry,
  maxValueBytes: 1000,
  metrics: createMetrics({ registry, processMetrics: false }),
});
let base: string;

before(async () => {
  base = await listenLocal(front);
});
after(() => {
  front.closeAllConnections();
  front.close();
});

const http = (path: string, init?: RequestInit) => fetch(base + path, init);

describe('PUT /<group>/<key>', () => {
  test('stores the value (Cache-Control max-age → ttl); GET answers it as a hit with Age', async () => {
    const put = await http('/g/p1', {
      method: 'PUT',
      body: 'hello',
      headers: { 'cache-control': 'max-age=60' },
    });
    assert.equal(put.status, 204);
    const r = await http('/g/p1');
    assert.equal(await r.text(), 'hello');
    assert.equal(r.headers.get('cache-status'), STATUS_HIT);
    assert.equal(r.headers.get('cache-control'), 'max-age=60');
    assert.equal(r.headers.get('age'), '0');
    t += 10_500;
    const later = await http('/g/p1');
    assert.equal(later.headers.get('age'), '10');
    // max-age is the whole lifetime: a downstream cache subtracting Age gets what is left (49.5 s).
    assert.equal(later.headers.get('cache-control'), 'max-age=60');
    assert.deepEqual(loads, []);
    const plain = await http('/g/p2', { method: 'PUT', body: new Uint8Array([0, 255, 7]) });
    assert.equal(plain.status, 204);
    const bytes = await http('/g/p2');
    assert.deepEqual([...new Uint8Array(await bytes.arrayBuffer())], [0, 255, 7]);
    assert.equal(bytes.headers.get('cache-control'), null, 'no max-age: never expires');
  });

  test('a body over the value limit is refused with 413 and a clear error, declared or streamed', async () => {
    const big = await http('/g/big', { method: 'PUT', body: 'x'.repeat(1001) });
    assert.equal(big.status, 413);
    assert.match((await big.json()).error, /1001 bytes is over this node's limit of 1000 bytes/);
    // Chunked (no Content-Length): refused once the bytes pass the limit.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${base}/g/big2`,
        { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('y'.repeat(100));
      req.end();
    });
    assert.equal(status, 413);
    assert.equal((await http('/g/big')).status, 200, 'not stored: loaded from the getter instead');
    assert.equal(group.server.getCached('big2')?.toString(), undefined);
  });

  test('max-age=0 or no-store is refused (400); a value over the cache size is 413', async () => {
    const r = await http('/g/p3', { method: 'PUT', body: 'x', headers: { 'cache-control': 'no-store' } });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error, /max-age > 0/);
    // no-store wins over a max-age beside it, and a lifetime that is not a number is no lifetime (both used
    // to be stored: for 30 s, and for ever).
    for (const cc of ['no-store, max-age=30', 'max-age=30, no-cache', 'max-age=abc']) {
      const refused = await http('/g/p4', { method: 'PUT', body: 'x', headers: { 'cache-control': cc } });
      assert.equal(refused.status, 400, cc);
    }
    const small = new Group({ name: 'tiny', cacheBytes: 10, registry, getter: async () => 'x' });
    const tooBig = await http('/tiny/k', { method: 'PUT', body: 'x'.repeat(20) });
    assert.equal(tooBig.status, 413);
    assert.match((await tooBig.json()).cause, /over the cache size of 10 bytes/);
    small.close();
  });
});

describe('Cache-Status and stale answers', () => {
  test('origin load, hit, stale-while-revalidate, then the refreshed value', async () => {
    next = async (k) => ({ value: `${k}@1`, ttlMs: 1000, staleWhileRevalidateMs: 30_000 });
    const first = await http('/g/s1');
    assert.equal(first.headers.get('cache-status'), STATUS_ORIGIN);
    assert.equal((await http('/g/s1')).headers.get('cache-status'), STATUS_HIT);
    t += 2000;
    let release!: (v: GetterResult) => void;
    next = () => new Promise((r) => (release = r));
    const stale = await http('/g/s1');
    assert.equal(await stale.text(), 's1@1');
    assert.equal(stale.headers.get('cache-status'), STATUS_STALE);
    assert.equal(stale.headers.get('age'), '2');
    release({ value: 's1@2', ttlMs: 1000 });
    await new Promise((r) => setImmediate(r));
    const fresh = await http('/g/s1');
    assert.equal(await fresh.text(), 's1@2');
    assert.equal(fresh.headers.get('cache-status'), STATUS_HIT);
  });

  test('stale-if-error answers the last value when the load fails; past the window, 502', async () => {
    next = async (k) => ({ value: `${k}@1`, ttlMs: 1000, staleIfErrorMs: 5000 });
    await http('/g/e1');
    t += 2000;
    next = async () => {
      throw new Error('origin 503');
    };
    const r = await http('/g/e1');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'e1@1');
    assert.equal(r.headers.get('cache-status'), STATUS_STALE_IF_ERROR);
    t += 5000;
    assert.equal((await http('/g/e1')).status, 502);
  });

  test('a remembered NotFound answers 404 with its max-age, without asking the getter again', async () => {
    const before = loads.length;
    next = async () => {
      throw new NotFoundError('no such thing', { ttlMs: 30_000 });
    };
    for (let i = 0; i < 3; i++) {
      const r = await http('/g/missing');
      assert.equal(r.status, 404);
      assert.equal(r.headers.get('cache-control'), 'max-age=30');
      // RFC 9211: the first from the getter (origin), then from the remembered NotFound (a hit).
      assert.equal(r.headers.get('cache-status'), i === 0 ? STATUS_NOT_FOUND_ORIGIN : STATUS_NOT_FOUND_HIT);
    }
    assert.equal(loads.length - before, 1);
  });

  test('a NotFound that is not remembered says it came from the origin every time', async () => {
    next = async () => {
      throw new NotFoundError('gone');
    };
    for (let i = 0; i < 2; i++) {
      const r = await http('/g/gone');
      assert.equal(r.status, 404);
      assert.equal(r.headers.get('cache-control'), null);
      assert.equal(r.headers.get('cache-status'), STATUS_NOT_FOUND_ORIGIN);
    }
  });

  test('/_stats and /metrics count stale answers, refreshes, negative hits and sets', async () => {
    const s = (await (await http('/_stats')).json()).groups.g.stats;
    assert.ok(s.staleHits >= 2 && s.staleIfErrorHits >= 1 && s.backgroundRefreshes >= 1, JSON.stringify(s));
    assert.ok(s.negativeHits >= 2 && s.sets >= 2, JSON.stringify(s));
    const m = await (await http('/metrics')).text();
    for (const name of [
      'stale_hits',
      'stale_if_error_hits',
      'background_refreshes',
      'refresh_errors',
      'negative_hits',
      'sets',
    ]) {
      assert.match(m, new RegExp(`^gossipcache_group_${name}_total\\{group="g"\\} \\d+`, 'm'), name);
    }
  });
});

test('staleWindowsMs reads RFC 5861 directives; must-revalidate and no-store turn them off', () => {
  assert.deepEqual(staleWindowsMs('max-age=1, stale-while-revalidate=30, stale-if-error=60'), {
    swr: 30_000,
    sie: 60_000,
  });
  assert.deepEqual(staleWindowsMs('max-age=1, must-revalidate, stale-if-error=60'), { swr: 0, sie: 0 });
  assert.deepEqual(staleWindowsMs('no-store, stale-while-revalidate=5'), { swr: 0, sie: 0 });
  // Not named: undefined, so that the group's default windows apply (GOSSIPCACHE_STALE_*).
  assert.deepEqual(staleWindowsMs(undefined), { swr: undefined, sie: undefined });
  assert.deepEqual(staleWindowsMs('max-age=1, stale-if-error=60'), { swr: undefined, sie: 60_000 });
  assert.deepEqual(staleWindowsMs('max-age=1, stale-while-revalidate=0'), { swr: 0, sie: undefined });
  assert.equal(staleWindowsMs(`stale-if-error=${'9'.repeat(400)}`).sie, 365 * 24 * 3600 * 1000);
});

test('the HTTP origin returns RFC 5861 windows and remembers a 404/410 only with a max-age', async () => {
  const answers: Record<string, [number, string]> = {
    '/i/swr': [200, 'max-age=1, stale-while-revalidate=30, stale-if-error=60'],
    '/i/strict': [200, 'max-age=1, must-revalidate, stale-if-error=60'],
    '/i/gone': [410, 'max-age=30'],
    '/i/nf': [404, 'no-store'],
  };
  const srv = createServer((req, res) => {
    const [status, cc] = answers[req.url ?? ''] ?? [500, ''];
    res.writeHead(status, { 'cache-control': cc }).end('body');
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const o = httpOrigin(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/i/{key}`, {
    timeoutMs: 5000,
    maxBytes: 1000,
  });
  const signal = new AbortController().signal;
  try {
    assert.deepEqual(await o.load('swr', { signal }), {
      value: Buffer.from('body'),
      ttlMs: 1000,
      staleWhileRevalidateMs: 30_000,
      staleIfErrorMs: 60_000,
    });
    const strict = (await o.load('strict', { signal })) as { staleIfErrorMs: number };
    assert.equal(strict.staleIfErrorMs, 0);
    await assert.rejects(
      o.load('gone', { signal }),
      (e: NotFoundError) => e instanceof NotFoundError && e.ttlMs === 30_000,
    );
    await assert.rejects(
      o.load('nf', { signal }),
      (e: NotFoundError) => e instanceof NotFoundError && e.ttlMs === undefined,
    );
  } finally {
    o.close();
    srv.close();
  }
});

test('a 404 through a node that does not own the key says the owner answered it; a mirrored one is a hit', async () => {
  const c = await startCluster({
    nodes: 2,
    getter: () => async (key) => {
      throw new NotFoundError(`no ${key}`, key.startsWith('kept') ? { ttlMs: 60_000 } : undefined);
    },
  });
  const [a, owner] = c.nodes;
  const front = createHttpFront({ registry: a.registry, maxValueBytes: 1000 });
  try {
    const url = await listenLocal(front);
    const k = keyOwnedBy(a, owner, 'plain');
    const r = await fetch(`${url}/g/${k}`);
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('cache-status'), STATUS_NOT_FOUND_OWNER);
    assert.equal(owner.loads.get(k), 1);
    // A NotFound the owner remembers is mirrored here for what is left of it: the next is answered here.
    const kept = keyOwnedBy(a, owner, 'kept');
    assert.equal((await fetch(`${url}/g/${kept}`)).headers.get('cache-status'), STATUS_NOT_FOUND_OWNER);
    const again = await fetch(`${url}/g/${kept}`);
    assert.equal(again.status, 404);
    assert.equal(again.headers.get('cache-status'), STATUS_NOT_FOUND_HIT);
    assert.equal(owner.loads.get(kept), 1);
  } finally {
    front.closeAllConnections();
    front.close();
    await c.close();
  }
});
