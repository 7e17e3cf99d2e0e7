// The cheap paths: a hit that is not an async function, server.lookup and its ttl, and the signals a peer fetch
// gets without an AbortController per miss (shared, lent from the first waiter) — with every abort
// semantic of the load path kept.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Peer, PeerGetResult } from '../../src/index.js';
import { InvalidKeyError, randomPromotion } from '../../src/index.js';
import { fakeClock } from '../support/in-process-cluster.js';
import { testGroup } from '../support/registry.js';
import { deferred, sleep } from '../support/wait.js';

describe('hit path', () => {
  it('get/getString/getEntry return promises on a hit and reject (never throw) on a bad key', async () => {
    const g = testGroup({
      name: 'h',
      cacheBytes: 1 << 20,
      getter: async (k) => k,
    });
    await g.get('a');
    const p = g.get('a');
    assert.ok(p instanceof Promise);
    assert.equal((await p).toString(), 'a');
    assert.equal(await g.getString('a'), 'a');
    assert.equal((await g.getEntry('a')).value.toString(), 'a');
    for (const bad of [() => g.get(''), () => g.getString(''), () => g.getEntry('')]) {
      const r = bad();
      assert.ok(r instanceof Promise);
      await assert.rejects(r, InvalidKeyError);
    }
  });

  it('every get() hit is a fresh copy: writing to one changes neither the cache nor another copy', async () => {
    const g = testGroup({
      name: 'c',
      cacheBytes: 1 << 20,
      getter: async () => 'abc',
    });
    const a = await g.get('k');
    const b = await g.get('k');
    assert.notEqual(a, b);
    a.fill(0x7a);
    assert.equal(b.toString(), 'abc');
    assert.equal(g.server.getCached('k')?.toString(), 'abc');
    assert.equal((await g.get('k')).toString(), 'abc');
  });
});

describe('server.lookup and server.ttlMs', () => {
  it("report the remaining ttl of the value lookup found, on the group's clock", async () => {
    const clock = fakeClock();
    const g = testGroup({
      name: 't',
      cacheBytes: 1 << 20,
      now: clock.now,
      getter: async (k) => (k === 'forever' ? 'v' : { value: 'v', ttlMs: 10_000 }),
    });
    await g.get('k');
    await g.get('forever');
    const s = g.server;
    assert.equal(s.getCached('k')?.toString(), 'v');
    const k = s.lookup('k');
    assert.ok(k >= 0);
    assert.equal(s.body(k).toString(), 'v');
    assert.equal(s.ttlMs(k), 10_000);
    clock.advance(4_000);
    const k2 = s.lookup('k');
    assert.ok(k2 >= 0);
    assert.equal(s.ttlMs(k2), 6_000);
    assert.equal((await g.getEntry('k')).ttlMs, 6_000, 'the same figure getEntry reports');
    const forever = s.lookup('forever');
    assert.ok(forever >= 0);
    assert.equal(s.ttlMs(forever), undefined, 'no expiry');
    assert.equal(s.ageMs(forever), 4_000, 'age on the same clock');
    assert.equal(s.lookup('missing'), -1, 'a miss: no handle, no ttl');
    // No state between calls: a handle found before other lookups still answers for its own value.
    assert.equal(s.ttlMs(k2), 6_000);
    assert.equal(s.ttlMs(forever), undefined);
  });
});

/** A peer that records each fetch's signal and answers when the test says so. */
function gatedPeer() {
  const calls: { key: string; signal: AbortSignal; answer: (v: string) => void }[] = [];
  const peer: Peer = {
    id: 'owner:1',
    get(_group, key, signal): Promise<PeerGetResult> {
      const d = deferred<PeerGetResult>();
      calls.push({ key, signal, answer: (v) => d.resolve({ value: Buffer.from(v), minuteQps: 1 }) });
      return d.promise;
    },
  };
  return { peer, calls };
}

function fetching(opts: { peerTimeoutMs?: number; promote?: boolean } = {}) {
  const { peer, calls } = gatedPeer();
  let localLoads = 0;
  const group = testGroup({
    name: 'f',
    cacheBytes: 1 << 20,
    peers: { pickPeer: () => peer, peers: () => [peer] },
    peerTimeoutMs: opts.peerTimeoutMs,
    hotKeyPolicy: opts.promote ? randomPromotion(1) : undefined,
    getter: async (k) => {
      localLoads++;
      return `local:${k}`;
    },
  });
  return { group, calls, localLoads: () => localLoads };
}

describe('peer fetch signals', () => {
  it('one caller signal over many misses: no MaxListeners warning; aborting it stops every fetch', async () => {
    const { group, calls } = fetching();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ac = new AbortController();
      const gets = Array.from({ length: 40 }, (_, i) =>
        group.get(`k${i}`, { signal: ac.signal }).catch((e: unknown) => e),
      );
      await sleep(0);
      assert.equal(calls.length, 40);
      assert.ok(calls.every((c) => !c.signal.aborted));
      ac.abort(new Error('request over'));
      for (const g of gets) assert.match(String(await g), /request over/);
      assert.ok(
        calls.every((c) => c.signal.aborted),
        'every fetch was told to stop',
      );
      assert.equal(group.stats.peerErrors, 0);
      await sleep(5);
      assert.deepEqual(
        warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('the first waiter leaving does not stop the fetch others wait for; the last one leaving does', async () => {
    const { group, calls } = fetching();
    const a = new AbortController();
    const b = new AbortController();
    const pa = group.get('k', { signal: a.signal }).catch((e: unknown) => e);
    const pb = group.getString('k', { signal: b.signal }).catch((e: unknown) => e);
    await sleep(0);
    assert.equal(calls.length, 1);
    a.abort(new Error('a left'));
    assert.match(String(await pa), /a left/);
    await sleep(0);
    assert.equal(calls[0].signal.aborted, false, 'b still waits');
    b.abort(new Error('b left'));
    assert.match(String(await pb), /b left/);
    assert.equal(calls[0].signal.aborted, true);
    // not wedged
    const again = group.getString('k');
    await sleep(0);
    assert.equal(calls.length, 2);
    calls[1].answer('v2');
    assert.equal(await again, 'v2');
  });

  it('a caller signal lent to two fetches: one abandoned, one still wanted — stopped when that one ends', async () => {
    const { group, calls } = fetching();
    const a = new AbortController();
    const b = new AbortController();
    const p1 = group.get('k1', { signal: a.signal }).catch((e: unknown) => e);
    const p2a = group.get('k2', { signal: a.signal }).catch((e: unknown) => e);
    const p2b = group.getString('k2', { signal: b.signal });
    await sleep(0);
    assert.equal(calls.length, 2);
    a.abort(new Error('a left'));
    assert.match(String(await p1), /a left/);
    assert.match(String(await p2a), /a left/);
    await sleep(0);
    assert.equal(calls[1].signal.aborted, false, 'k2 is still wanted by b');
    calls[1].answer('v');
    assert.equal(await p2b, 'v');
    assert.equal(calls[0].signal.aborted, true, "k1's fetch is told to stop once k2's is over");
  });

  it('a waiter without a signal keeps the fetch going whoever else leaves', async () => {
    const { group, calls } = fetching();
    const plain = group.getString('k');
    const a = new AbortController();
    const pa = group.get('k', { signal: a.signal }).catch((e: unknown) => e);
    await sleep(0);
    a.abort(new Error('gone'));
    assert.match(String(await pa), /gone/);
    await sleep(0);
    assert.equal(calls[0].signal.aborted, false);
    calls[0].answer('v');
    assert.equal(await plain, 'v');
  });

  it('a silent owner times out (peerTimeoutMs) with a lent signal: the key loads locally', async () => {
    const { group, calls, localLoads } = fetching({ peerTimeoutMs: 20 });
    const ac = new AbortController();
    assert.equal(await group.getString('k', { signal: ac.signal }), 'local:k');
    assert.equal(calls.length, 1);
    assert.equal(group.stats.peerErrors, 1);
    assert.equal(localLoads(), 1);
  });

  it('an answer that arrives after every waiter left is not mirrored in the hot cache', async () => {
    const { group, calls } = fetching({ promote: true });
    const ac = new AbortController();
    const p = group.get('k', { signal: ac.signal }).catch((e: unknown) => e);
    await sleep(0);
    ac.abort(new Error('gone'));
    assert.match(String(await p), /gone/);
    calls[0].answer('late');
    await sleep(0);
    assert.equal(group.cacheStats('hot').items, 0);
    assert.equal(group.stats.peerLoads, 0);
    // and with a waiter that stays, the same policy does mirror it
    const q = group.getString('k2');
    await sleep(0);
    calls[1].answer('v');
    assert.equal(await q, 'v');
    assert.equal(group.cacheStats('hot').items, 1);
  });
});

describe('getter signal', () => {
  it('a getter that reads its signal late still sees the abort that came first (made on demand)', async () => {
    const read = deferred<AbortSignal>();
    const gate = deferred<string>();
    let ctxRef: { signal: AbortSignal } | undefined;
    const g = testGroup({
      name: 's',
      cacheBytes: 1 << 20,
      getter: (_k, ctx) => {
        ctxRef = ctx;
        return gate.promise;
      },
    });
    const ac = new AbortController();
    const p = g.get('k', { signal: ac.signal }).catch((e: unknown) => e);
    await sleep(0);
    ac.abort(new Error('left'));
    assert.match(String(await p), /left/);
    read.resolve(ctxRef!.signal);
    const s = await read.promise;
    assert.equal(s.aborted, true);
    assert.match(String(s.reason), /left/);
    gate.resolve('late');
    await sleep(0);
    assert.equal(g.server.getCached('k'), undefined, 'the late value of an abandoned load is not cached');
  });
});
