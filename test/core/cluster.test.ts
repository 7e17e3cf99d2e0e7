// The load path across several in-process "nodes" (test/support/in-process-cluster.ts): ownership, peer faults,
// NotFound, hot-key mirroring, budgets, expiry, abort, timeouts and remove, end to end.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFoundError, randomPromotion, rateBasedPromotion } from '../../src/index.js';
import { Cluster, fakeClock } from '../support/in-process-cluster.js';
import { deferred, sleep } from '../support/wait.js';

describe('cluster (in-process peers)', () => {
  it('500 concurrent gets spread over the nodes load each key exactly once cluster-wide', async () => {
    const c = new Cluster({
      nodes: 5,
      getter: async (key) => {
        await sleep(10);
        return `v:${key}`;
      },
    });
    const keys = Array.from({ length: 20 }, (_, i) => `key${i}`);
    const gets = Array.from({ length: 500 }, (_, i) => {
      const key = keys[i % keys.length];
      return c.nodes[i % 5].group.getString(key).then((v) => assert.equal(v, `v:${key}`));
    });
    await Promise.all(gets);
    assert.equal(c.totalGetterCalls(), keys.length);
    assert.deepEqual([...c.keys].sort(), [...keys].sort());
    // each key was loaded by its owner
    for (const key of keys) assert.equal(c.nodes[c.ownerOf(key)].group.cacheStats('main').items > 0, true);
    assert.equal(c.sum('peerErrors'), 0);
    assert.ok(c.sum('peerLoads') > 0);
    assert.ok(c.sum('serverRequests') > 0);
    c.close();
  });

  it('a non-owner fetches from the owner; only the owner keeps it in its main cache', async () => {
    const c = new Cluster({ nodes: 3, getter: async (key, { node }) => `from node${node}: ${key}` });
    const key = c.keyOwnedBy(2);
    assert.equal(await c.nodes[0].group.getString(key), `from node2: ${key}`);
    assert.equal(c.nodes[0].group.stats.peerLoads, 1);
    assert.equal(c.nodes[2].group.stats.serverRequests, 1);
    assert.equal(c.nodes[2].group.cacheStats('main').items, 1);
    assert.equal(c.nodes[0].group.cacheStats('main').items, 0);
    c.close();
  });

  it('falls back to a local load when the owner is down or does not answer, counting peerErrors', async () => {
    const c = new Cluster({
      nodes: 3,
      peerTimeoutMs: 30,
      getter: async (key, { node }) => `node${node}:${key}`,
    });
    const key = c.keyOwnedBy(1);
    c.nodes[1].faults.down = true;
    assert.equal(await c.nodes[0].group.getString(key), `node0:${key}`);
    assert.equal(c.nodes[0].group.stats.peerErrors, 1);
    assert.equal(c.nodes[0].group.stats.localLoads, 1);
    // a fallback load is not put in the main cache of a non-owner
    const key2 = c.keyOwnedBy(1, 'h');
    c.nodes[1].faults.down = false;
    c.nodes[1].faults.hang = true;
    assert.equal(await c.nodes[0].group.getString(key2), `node0:${key2}`);
    assert.equal(c.nodes[0].group.stats.peerErrors, 2);
    c.close();
  });

  it('by default waits for a silent owner getterTimeoutMs + 1 s (the owner may be running the getter)', async () => {
    const c = new Cluster({
      nodes: 2,
      getterTimeoutMs: 50,
      getter: async (key, { node }) => `node${node}:${key}`,
    });
    const key = c.keyOwnedBy(1);
    c.nodes[1].faults.hang = true;
    const t0 = performance.now();
    assert.equal(await c.nodes[0].group.getString(key), `node0:${key}`);
    const waited = performance.now() - t0;
    assert.ok(waited >= 1000, 'gave up on the owner before getterTimeoutMs + 1 s');
    assert.ok(waited < 5000, `waited ${waited} ms: not derived from getterTimeoutMs (50 ms) + 1 s`);
    assert.equal(c.nodes[0].group.stats.peerErrors, 1);
    c.close();
  });

  it('NotFound from the owner is returned as NotFound, never followed by a local load', async () => {
    const c = new Cluster({
      nodes: 3,
      getter: async (key) => {
        throw new NotFoundError(`no ${key}`);
      },
    });
    const key = c.keyOwnedBy(1);
    await assert.rejects(c.nodes[0].group.get(key), NotFoundError);
    assert.equal(c.getterCalls[0], 0, 'no local load on the requester');
    assert.equal(c.getterCalls[1], 1);
    assert.equal(c.nodes[0].group.stats.peerErrors, 0);
    assert.equal(c.nodes[0].group.stats.localLoads, 0);
    // not cached anywhere: asked again
    await assert.rejects(c.nodes[0].group.get(key), NotFoundError);
    assert.equal(c.getterCalls[1], 2);
    c.close();
  });

  it('the owner serves peers from its cache or getter and never forwards (local: true)', async () => {
    const c = new Cluster({ nodes: 3, getter: async (key, { node }) => `node${node}:${key}` });
    const key = c.keyOwnedBy(1);
    // node2 is asked for a key it does not own (rings disagree): it loads it itself
    const e = await c.nodes[2].group.server.getEntry(key, { local: true });
    assert.equal(e.value.toString(), `node2:${key}`);
    assert.equal(c.nodes[1].peerGetsReceived, 0);
    assert.equal(c.nodes[2].group.stats.serverRequests, 1);
    c.close();
  });

  it('mirrors a hot remote key in the hot cache (rate-based), so repeated gets stop going to the owner', async () => {
    const clock = fakeClock();
    const c = new Cluster({ nodes: 3, now: clock.now, getter: async (key) => `v:${key}` });
    const key = c.keyOwnedBy(1);
    const n0 = c.nodes[0].group;
    for (let i = 0; i < 20; i++) {
      assert.equal(await n0.getString(key), `v:${key}`);
      clock.advance(100);
    }
    assert.equal(n0.cacheStats('hot').items, 1);
    assert.equal(n0.stats.peerLoads, 1, 'the hot cache was empty, so the first fetch was mirrored');
    assert.ok(n0.cacheStats('hot').hits >= 19);
    c.close();
  });

  it('rate-based: a full hot cache keeps its hot key and does not mirror a colder one', async () => {
    const clock = fakeClock();
    // hot cache = 1/8 of 800 = 100 bytes: room for one ~60-byte value
    const c = new Cluster({
      nodes: 2,
      cacheBytes: 800,
      now: clock.now,
      getter: async (key) => `${key}:${'x'.repeat(50)}`,
    });
    const n0 = c.nodes[0].group;
    const hotKey = c.keyOwnedBy(1, 'hot');
    const coldKey = c.keyOwnedBy(1, 'cold');
    for (let i = 0; i < 30; i++) {
      await n0.get(hotKey);
      clock.advance(1000);
    }
    assert.equal(n0.cacheStats('hot').items, 1);
    const before = n0.stats.peerLoads;
    await n0.get(coldKey);
    assert.equal(n0.stats.peerLoads, before + 1);
    assert.ok(n0.server.getCached(hotKey) !== undefined, 'the hot key is still mirrored');
    assert.equal(n0.cacheStats('hot').items, 1);
    await n0.get(coldKey);
    assert.equal(n0.stats.peerLoads, before + 2, 'the cold key was not mirrored');
    c.close();
  });

  it('random 1-in-n promotion (groupcache) is available and mirrors with the given odds', async () => {
    let draws = 0;
    // a deterministic "random": mirror on every 4th draw
    const c = new Cluster({
      nodes: 2,
      hotKeyPolicy: () => randomPromotion(4, () => (++draws % 4 === 0 ? 0 : 0.99)),
      getter: async (key) => key,
    });
    const n0 = c.nodes[0].group;
    const keys = Array.from({ length: 8 }, (_, i) => c.keyOwnedBy(1, `r${i}-`));
    for (const k of keys) await n0.get(k);
    assert.equal(n0.cacheStats('hot').items, 2);
    assert.throws(() => randomPromotion(0), /n must be >= 1/);
    c.close();
  });

  it('keeps every node within its budget under a large key space, evicting LRU entries', async () => {
    const clock = fakeClock();
    const c = new Cluster({
      nodes: 3,
      cacheBytes: 4096,
      now: clock.now,
      hotKeyPolicy: () => rateBasedPromotion(),
      getter: async (key) => 'v'.repeat(20 + (key.length % 40)),
    });
    for (let i = 0; i < 3000; i++) {
      await c.nodes[i % 3].group.get(`key-${(i * 7919) % 700}`);
      clock.advance(10);
      for (const n of c.nodes) {
        const main = n.group.cacheStats('main');
        const hot = n.group.cacheStats('hot');
        assert.ok(main.bytes + hot.bytes <= 4096, `node ${n.index}: ${main.bytes} + ${hot.bytes} > 4096`);
        assert.ok(hot.bytes <= 4096 / 8);
      }
    }
    assert.ok(c.nodes.every((n) => n.group.cacheStats('main').evictions > 0));
    c.close();
  });

  it("expiry with a fake clock: a mirrored value keeps the owner's remaining ttl", async () => {
    const clock = fakeClock();
    let version = 0;
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      getter: async () => ({ value: `v${++version}`, ttlMs: 10_000 }),
    });
    const key = c.keyOwnedBy(1);
    const [n0, n1] = [c.nodes[0].group, c.nodes[1].group];
    assert.equal(await n1.getString(key), 'v1'); // the owner loads at t=0
    clock.advance(6000);
    assert.equal(await n0.getString(key), 'v1'); // fetched at t=6000 with 4000 ms left, mirrored
    assert.equal(n0.cacheStats('hot').items, 1);
    assert.equal((await n0.getEntry(key)).ttlMs, 4000);
    clock.advance(3999);
    assert.equal(n0.server.getCached(key)?.toString(), 'v1');
    clock.advance(1);
    assert.equal(
      n0.server.getCached(key),
      undefined,
      'the mirror expires with the original, not 10 s after the fetch',
    );
    assert.equal(await n0.getString(key), 'v2'); // the owner's copy expired too: reloaded
    assert.equal(version, 2);
    c.close();
  });

  it('abort across peers: one waiter aborting leaves the others; all aborting aborts the owner load', async () => {
    const gate = deferred<string>();
    const signals: AbortSignal[] = [];
    const c = new Cluster({
      nodes: 2,
      getter: (_key, { signal }) => {
        signals.push(signal);
        return gate.promise;
      },
    });
    const key = c.keyOwnedBy(1);
    const n0 = c.nodes[0].group;
    const a = new AbortController();
    const b = new AbortController();
    const pa = n0.get(key, { signal: a.signal }).catch((e: unknown) => e);
    const pb = n0.getString(key, { signal: b.signal });
    await sleep(0);
    a.abort(new Error('a left'));
    assert.match(String(await pa), /a left/);
    gate.resolve('v');
    assert.equal(await pb, 'v');
    assert.equal(signals[0].aborted, false);

    const gate2 = deferred<string>();
    const signals2: AbortSignal[] = [];
    const c2 = new Cluster({
      nodes: 2,
      name: 'abort2',
      getter: (_key, { signal }) => {
        signals2.push(signal);
        return gate2.promise;
      },
    });
    const key2 = c2.keyOwnedBy(1);
    const acs = [new AbortController(), new AbortController()];
    const ps = acs.map((ac) => c2.nodes[0].group.get(key2, { signal: ac.signal }).catch((e: unknown) => e));
    await sleep(0);
    assert.equal(signals2.length, 1);
    for (const ac of acs) ac.abort(new Error('gone'));
    for (const p of ps) assert.match(String(await p), /gone/);
    await sleep(0);
    assert.equal(signals2[0].aborted, true, "the owner's getter saw the abort through the peer call");
    assert.equal(c2.nodes[0].group.stats.peerErrors, 0, 'an abort is not a peer error');
    assert.equal(c2.getterCalls[0], 0, 'and is not followed by a local load');
    c.close();
    c2.close();
  });

  it('a getter timeout on the owner unwedges the key for the whole cluster', async () => {
    let calls = 0;
    const c = new Cluster({
      nodes: 2,
      getterTimeoutMs: 30,
      getter: () => {
        calls++;
        return calls === 1 ? new Promise<string>(() => {}) : Promise.resolve('ok');
      },
    });
    const key = c.keyOwnedBy(1);
    // the owner's timeout reaches node0 as the owner's failed load: node0 fails too, without loading
    await assert.rejects(c.nodes[0].group.getString(key), {
      name: 'OwnerLoadError',
      ownerError: 'GetterTimeoutError',
    });
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors, 1);
    assert.equal(c.getterCalls[0], 0);
    assert.equal(c.nodes[1].group.stats.localLoadErrs, 1);
    // and the key is not wedged: the next get through either node loads it at the owner
    assert.equal(await c.nodes[0].group.getString(key), 'ok');
    assert.equal(await c.nodes[1].group.getString(key), 'ok');
    c.close();
  });

  it('remove drops a key on its owner and every mirror, tolerating peers that are down', async () => {
    const clock = fakeClock();
    let version = 0;
    const c = new Cluster({ nodes: 4, now: clock.now, getter: async () => `v${++version}` });
    const key = c.keyOwnedBy(1);
    for (const n of c.nodes) assert.equal(await n.group.getString(key), 'v1');
    assert.equal(c.nodes[0].group.cacheStats('hot').items, 1);
    c.nodes[3].faults.down = true;
    await c.nodes[0].group.remove(key);
    assert.equal(c.nodes[0].group.stats.removeErrors, 1);
    assert.equal(c.nodes[1].group.server.getCached(key), undefined);
    assert.equal(c.nodes[2].group.server.getCached(key), undefined);
    assert.equal(c.nodes[0].group.server.getCached(key), undefined);
    assert.equal(c.nodes[3].group.server.getCached(key)?.toString(), 'v1', 'the down node kept its mirror');
    assert.equal(await c.nodes[2].group.getString(key), 'v2');
    c.close();
  });

  it('a remove racing a peer fetch: the fetched (stale) value is not mirrored', async () => {
    const gate = deferred<string>();
    let n = 0;
    const c = new Cluster({ nodes: 2, getter: () => (++n === 1 ? gate.promise : Promise.resolve('fresh')) });
    const key = c.keyOwnedBy(1);
    const n0 = c.nodes[0].group;
    const inflight = n0.getString(key);
    await sleep(0);
    await n0.remove(key);
    gate.resolve('stale');
    assert.equal(await inflight, 'stale');
    assert.equal(n0.server.getCached(key), undefined, 'not mirrored on the requester');
    assert.equal(c.nodes[1].group.server.getCached(key), undefined, 'not cached on the owner');
    assert.equal(await n0.getString(key), 'fresh');
    c.close();
  });
});
