import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createOrigin, demoOrigin, httpOrigin, maxAgeMs, OriginError } from '../../src/node/origin.js';
import { listenLocal } from '../support/http.js';

// A local origin: the path after /items/ picks the behaviour.
let server: Server;
let base: string;
const seenPaths: string[] = [];
const sockets = new Set<unknown>();

before(async () => {
  server = createServer((req, res) => {
    const path = req.url ?? '';
    seenPaths.push(path);
    sockets.add(req.socket);
    const key = decodeURIComponent(path.slice('/items/'.length));
    if (key === 'missing') {
      res.writeHead(404).end('no');
    } else if (key === 'boom') {
      res.writeHead(500).end('broken');
    } else if (key === 'slow') {
      setTimeout(() => res.end('late'), 2000).unref();
    } else if (key === 'huge') {
      res.writeHead(200, { 'content-length': 5000 }).end(Buffer.alloc(5000));
    } else if (key === 'huge-chunked') {
      res.write(Buffer.alloc(600));
      res.end(Buffer.alloc(600));
    } else if (key === 'ttl') {
      res.writeHead(200, { 'cache-control': 'public, max-age=60' }).end('fresh');
    } else {
      res.end(`origin:${key}`);
    }
  });
  base = await listenLocal(server);
});

after(() => {
  server.closeAllConnections();
  server.close();
});

const ctx = () => ({ signal: new AbortController().signal });

describe('http origin', () => {
  test('returns the body; the key is percent-encoded into the URL; sockets are kept alive', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      seenPaths.length = 0;
      sockets.clear();
      const v = await o.load('a b/ü?x', ctx());
      assert.equal(Buffer.from(v as Uint8Array).toString(), 'origin:a b/ü?x');
      assert.equal(seenPaths[0], '/items/a%20b%2F%C3%BC%3Fx');
      await new Promise((r) => setImmediate(r)); // undici frees the connection just after the body ends
      await o.load('second', ctx());
      assert.equal(sockets.size, 1, 'both loads used one keep-alive socket');
    } finally {
      o.close();
    }
  });

  test('404 → NotFoundError; 500 → OriginError naming the status', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      await assert.rejects(o.load('missing', ctx()), { name: 'NotFoundError' });
      await assert.rejects(o.load('boom', ctx()), (err: Error) => {
        assert.ok(err instanceof OriginError);
        assert.match(err.message, /HTTP 500/);
        return true;
      });
    } finally {
      o.close();
    }
  });

  test('a slow origin times out', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 100, maxBytes: 1000 });
    try {
      await assert.rejects(o.load('slow', ctx()), /did not answer within 100ms/);
    } finally {
      o.close();
    }
  });

  test('values over the size limit fail, whether declared or streamed', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      await assert.rejects(o.load('huge', ctx()), /5000 bytes, over the 1000-byte limit/);
      await assert.rejects(o.load('huge-chunked', ctx()), /over the 1000-byte limit/);
      // The origin still works afterwards.
      assert.equal(Buffer.from((await o.load('ok', ctx())) as Uint8Array).toString(), 'origin:ok');
    } finally {
      o.close();
    }
  });

  test('Cache-Control max-age becomes the TTL', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      const r = (await o.load('ttl', ctx())) as { value: Uint8Array; ttlMs: number };
      assert.equal(r.ttlMs, 60_000);
      assert.equal(Buffer.from(r.value).toString(), 'fresh');
    } finally {
      o.close();
    }
  });

  test('an aborted signal stops the request with its reason', async () => {
    const o = httpOrigin(`${base}/items/{key}`, { timeoutMs: 5000, maxBytes: 1000 });
    try {
      const ac = new AbortController();
      const p = o.load('slow', { signal: ac.signal });
      setTimeout(() => ac.abort(new Error('caller left')), 50);
      await assert.rejects(p, /caller left/);
    } finally {
      o.close();
    }
  });

  test('a closed port is an OriginError, not a crash', async () => {
    const o = httpOrigin('http://127.0.0.1:1/{key}', { timeoutMs: 2000, maxBytes: 1000 });
    try {
      await assert.rejects(o.load('k', ctx()), /origin request failed \(connect ECONNREFUSED/);
    } finally {
      o.close();
    }
  });
});

test('maxAgeMs reads s-maxage over max-age; no-store/no-cache give 0', () => {
  assert.equal(maxAgeMs(undefined), undefined);
  assert.equal(maxAgeMs('public'), undefined);
  assert.equal(maxAgeMs('max-age=10'), 10_000);
  assert.equal(maxAgeMs('max-age=10, s-maxage=20'), 20_000);
  assert.equal(maxAgeMs('no-store'), 0);
  assert.equal(maxAgeMs('private, no-cache'), 0);
  // no-store / no-cache / private win over a lifetime named beside them, in either order (the lifetime
  // used to be read first, and such answers were cached for their max-age).
  assert.equal(maxAgeMs('no-store, max-age=60'), 0);
  assert.equal(maxAgeMs('max-age=60, no-cache'), 0);
  assert.equal(maxAgeMs('private, max-age=60'), 0, 'private: not for a shared cache');
  // A quoted value is one directive's, not a max-age of its own.
  assert.equal(maxAgeMs('ext="a, max-age=999", max-age=5'), 5_000);
  assert.equal(maxAgeMs('ext="a, max-age=999"'), undefined);
  assert.equal(maxAgeMs('MAX-AGE=7'), 7_000);
  // An invalid lifetime is stale, not "never expires".
  assert.equal(maxAgeMs('max-age=abc'), 0);
  assert.equal(maxAgeMs('max-age=-1'), 0);
  assert.equal(
    maxAgeMs('max-age="30"'),
    30_000,
    'quoted delta-seconds are read (RFC 9111 allows reading them)',
  );
});

test('a 206, or an encoded body, is not a whole value: the load fails and nothing is cached', async () => {
  const srv = createServer((req, res) => {
    if (req.url?.includes('partial')) {
      res.writeHead(206, { 'content-range': 'bytes 0-1/100' });
      res.end('ab');
    } else {
      res.writeHead(200, { 'content-encoding': 'gzip' });
      res.end(Buffer.from([0x1f, 0x8b, 0x08, 0]));
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as AddressInfo).port;
    const o = createOrigin(`http://127.0.0.1:${port}/{key}`, { timeoutMs: 5000, maxBytes: 1 << 20 });
    await assert.rejects(
      o.load('partial', ctx()),
      (e: Error) => e instanceof OriginError && /HTTP 206/.test(e.message),
    );
    await assert.rejects(
      o.load('gz', ctx()),
      (e: Error) => e instanceof OriginError && /Content-Encoding: gzip/.test(e.message),
    );
    await o.close?.();
  } finally {
    srv.close();
  }
});

test('a failed load says why without the request: an origin URL may carry a token (it is in `request`, for logs)', async () => {
  const srv = createServer((_req, res) => {
    res.writeHead(503);
    res.end('busy');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as AddressInfo).port;
    const o = createOrigin(`http://127.0.0.1:${port}/items/{key}?token=s3cret`, {
      timeoutMs: 5000,
      maxBytes: 1 << 20,
    });
    const err = await o.load('k', ctx()).then(
      () => assert.fail('loaded'),
      (e: OriginError) => e,
    );
    assert.ok(err instanceof OriginError);
    assert.equal(err.message, 'origin answered HTTP 503');
    assert.equal(err.request, `GET http://127.0.0.1:${port}/items/k?token=s3cret`);
    await o.close?.();
  } finally {
    srv.close();
  }
});

test("an origin's Age is taken off its max-age", async () => {
  const srv = createServer((req, res) => {
    const age = req.url?.includes('old') ? '58' : req.url?.includes('ancient') ? '600' : undefined;
    res.writeHead(200, { 'cache-control': 'max-age=60', ...(age ? { age } : {}) });
    res.end('v');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const port = (srv.address() as AddressInfo).port;
    const o = createOrigin(`http://127.0.0.1:${port}/{key}`, { timeoutMs: 5000, maxBytes: 1 << 20 });
    assert.equal(((await o.load('fresh', ctx())) as { ttlMs: number }).ttlMs, 60_000);
    assert.equal(((await o.load('old', ctx())) as { ttlMs: number }).ttlMs, 2_000);
    assert.equal(((await o.load('ancient', ctx())) as { ttlMs: number }).ttlMs, 0);
    await o.close?.();
  } finally {
    srv.close();
  }
});

test('demo origin: a slow stand-in data source', async () => {
  const o = demoOrigin(20);
  const t0 = Date.now();
  assert.equal(await o.load('Tom', ctx()), 'Value of Tom');
  assert.ok(Date.now() - t0 >= 15);
  assert.equal(await createOrigin('demo', { timeoutMs: 1, maxBytes: 1 }).load('k', ctx()), 'Value of k');
  assert.match(createOrigin('demo:2s', { timeoutMs: 1, maxBytes: 1 }).description, /2000ms/);
  const ac = new AbortController();
  const p = demoOrigin(10_000).load('k', { signal: ac.signal });
  ac.abort(new Error('stop'));
  await assert.rejects(p, /stop/);
});
