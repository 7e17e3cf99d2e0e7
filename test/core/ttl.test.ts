// Out-of-range TTLs are clamped to MAX_TTL_MS at every place a TTL enters the core: a getter's
// ttlMs (the HTTP origin's max-age arrives that way) and a peer's reply. Keys that have no UTF-8
// form (lone surrogates) are refused instead of aliasing the key U+FFFD.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Group, GroupRegistry, InvalidKeyError, MAX_TTL_MS, type Peer } from '../../src/index.js';
import { createOrigin } from '../../src/node/origin.js';
import { fakeClock } from '../support/in-process-cluster.js';
import { testGroup } from '../support/registry.js';

const YEAR_MS = 365 * 24 * 3600 * 1000;

describe('MAX_TTL_MS', () => {
  it('is one year', () => {
    assert.equal(MAX_TTL_MS, YEAR_MS);
  });

  it("clamps a getter's ttlMs; Infinity still never expires", async () => {
    const clock = fakeClock();
    const registry = new GroupRegistry();
    const g = new Group({
      name: 'g',
      cacheBytes: 1 << 20,
      registry,
      now: clock.now,
      getter: async (k) => ({
        value: k,
        ttlMs: k === 'inf' ? Number.POSITIVE_INFINITY : k === 'max' ? Number.MAX_VALUE : 1e23,
      }),
    });
    assert.equal((await g.getEntry('huge')).ttlMs, MAX_TTL_MS);
    assert.equal((await g.getEntry('max')).ttlMs, MAX_TTL_MS);
    assert.equal((await g.getEntry('inf')).ttlMs, undefined);
    clock.advance(MAX_TTL_MS);
    assert.equal(g.server.getCached('huge'), undefined, 'expired after a year');
    assert.equal(g.server.getCached('inf')?.toString(), 'inf');
  });

  it("clamps an HTTP origin's max-age=99999999999999999999", async () => {
    const srv = createServer((_req, res) => {
      res.writeHead(200, { 'Cache-Control': 'max-age=99999999999999999999', 'Content-Length': '2' });
      res.end('ok');
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const origin = createOrigin(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/{key}`, {
      timeoutMs: 5000,
      maxBytes: 1 << 20,
    });
    try {
      const clock = fakeClock();
      const g = testGroup({
        name: 'o',
        cacheBytes: 1 << 20,
        now: clock.now,
        getter: (k, ctx) => origin.load(k, ctx),
      });
      const e = await g.getEntry('k');
      assert.equal(e.value.toString(), 'ok');
      assert.equal(e.ttlMs, MAX_TTL_MS);
    } finally {
      origin.close();
      srv.close();
    }
  });

  it("clamps a peer's ttlMs (and a peer's Infinity means no expiry)", async () => {
    const clock = fakeClock();
    let ttl = 1e30;
    const peer: Peer = {
      id: 'p',
      get: async () => ({ value: Buffer.from('remote'), minuteQps: 0, ttlMs: ttl }),
    };
    const g = testGroup({
      name: 'p',
      cacheBytes: 1 << 20,
      now: clock.now,
      peers: { pickPeer: () => peer },
      getter: async () => 'local',
    });
    // The value is fetched from the peer, not cached locally (not hot): its entry carries the TTL.
    const e = await g.getEntry('a');
    assert.equal(e.value.toString(), 'remote');
    assert.equal(e.ttlMs, MAX_TTL_MS);
    ttl = Number.POSITIVE_INFINITY;
    assert.equal((await g.getEntry('b')).ttlMs, undefined);
  });
});

describe('keys without a UTF-8 form', () => {
  it('a lone surrogate is refused on every entry point; a real U+FFFD key is fine', async () => {
    const loaded: string[] = [];
    const g = testGroup({
      name: 'u',
      cacheBytes: 1 << 20,
      getter: async (k) => {
        loaded.push(k);
        return `v:${k}`;
      },
    });
    for (const bad of ['\ud800', 'a\udfffb', 'x\ud83d']) {
      await assert.rejects(
        g.get(bad),
        (e: Error) => e instanceof InvalidKeyError && /surrogate/.test(e.message),
      );
      await assert.rejects(g.getEntry(bad), InvalidKeyError);
      assert.throws(() => g.server.getCached(bad), InvalidKeyError);
      assert.throws(() => g.server.removeLocal(bad), InvalidKeyError);
    }
    assert.equal(await g.getString('\ufffd'), 'v:\ufffd');
    assert.equal(await g.getString('😀'), 'v:😀');
    assert.deepEqual(loaded, ['\ufffd', '😀']);
  });
});
