// Value lifecycle in-process, on a fake clock: stale-while-revalidate, stale-if-error, negative
// caching and set (docs/lifecycle.md), on one group and across an in-process cluster.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type GetterResult,
  NotFoundError,
  type Peer,
  REFRESH_RETRY_MS,
  randomPromotion,
} from '../../src/index.js';
import { Cluster, fakeClock } from '../support/in-process-cluster.js';
import { testGroup } from '../support/registry.js';
import { deferred } from '../support/wait.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A getter answering from a script: each call takes the next step (a value, an error, or a deferred). */
function scripted() {
  const calls: string[] = [];
  let next: (key: string) => Promise<GetterResult> = async () => {
    throw new Error('no step');
  };
  return {
    calls,
    set(fn: (key: string) => Promise<GetterResult> | GetterResult) {
      next = async (k) => fn(k);
    },
    getter: (key: string) => {
      calls.push(key);
      return next(key);
    },
  };
}

function group(getter: (key: string) => Promise<GetterResult>, extra: object = {}) {
  const clock = fakeClock();
  const g = testGroup({
    name: 'g',
    cacheBytes: 1 << 20,
    getter,
    now: clock.now,
    ...extra,
  });
  return { g, clock };
}

describe('stale-while-revalidate', () => {
  it('answers the stale value at once within the window and starts exactly one refresh', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter);
    s.set(() => ({ value: 'v1', ttlMs: 1000, staleWhileRevalidateMs: 5000 }));
    assert.equal(await g.getString('k'), 'v1');
    clock.advance(1500);
    const refresh = deferred<GetterResult>();
    s.set(() => refresh.promise);
    // Several gets while the refresh is pending: all answer v1 at once, one getter call.
    for (let i = 0; i < 5; i++) assert.equal(await g.getString('k'), 'v1');
    const entry = await g.getEntry('k');
    assert.equal(entry.stale, true);
    assert.equal(entry.ttlMs, 0);
    assert.equal(entry.source, 'hit');
    assert.equal(entry.staleWhileRevalidateMs, 4500);
    assert.equal(entry.ageMs, 1500);
    assert.equal(s.calls.length, 2);
    assert.equal(g.stats.backgroundRefreshes, 1);
    assert.equal(g.stats.staleHits, 6);
    refresh.resolve({ value: 'v2', ttlMs: 1000, staleWhileRevalidateMs: 5000 });
    await tick();
    assert.equal(g.server.getCached('k')?.toString(), 'v2');
    const fresh = await g.getEntry('k');
    assert.equal(fresh.stale, undefined);
    assert.equal(fresh.ttlMs, 1000);
    assert.equal(fresh.ageMs, 0);
    assert.equal(s.calls.length, 2);
    // gets = cacheHits + loads still holds with stale answers
    assert.equal(g.stats.gets, g.stats.cacheHits + g.stats.loads);
  });

  it('a failed background refresh keeps the stale value and retries only after REFRESH_RETRY_MS', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter, { staleWhileRevalidateMs: 60_000 });
    s.set(() => ({ value: 'v1', ttlMs: 1000 })); // the window is the group's default
    await g.get('k');
    clock.advance(2000);
    s.set(() => {
      throw new Error('origin down');
    });
    assert.equal(await g.getString('k'), 'v1');
    await tick();
    assert.equal(g.stats.refreshErrors, 1);
    assert.equal(s.calls.length, 2);
    // Within the retry delay: still stale, no new refresh.
    clock.advance(REFRESH_RETRY_MS - 1);
    assert.equal(await g.getString('k'), 'v1');
    await tick();
    assert.equal(s.calls.length, 2);
    // After it: one more try, which succeeds.
    clock.advance(1);
    s.set(() => ({ value: 'v2', ttlMs: 1000 }));
    assert.equal(await g.getString('k'), 'v1');
    await tick();
    assert.equal(s.calls.length, 3);
    assert.equal(await g.getString('k'), 'v2');
    assert.equal(g.stats.backgroundRefreshes, 2);
  });

  it('past the window a get waits for the load; a refresh answering NotFound drops the stale value', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter);
    s.set(() => ({ value: 'v1', ttlMs: 1000, staleWhileRevalidateMs: 1000 }));
    await g.get('k');
    clock.advance(2000); // ttl + window over
    const load = deferred<GetterResult>();
    s.set(() => load.promise);
    let answered = false;
    const p = g.getString('k').then((v) => {
      answered = true;
      return v;
    });
    await tick();
    assert.equal(answered, false);
    load.resolve({ value: 'v2', ttlMs: 1000, staleWhileRevalidateMs: 1000 });
    assert.equal(await p, 'v2');

    clock.advance(1500); // stale again, within the window
    s.set(() => {
      throw new NotFoundError('gone');
    });
    assert.equal(await g.getString('k'), 'v2');
    await tick();
    await assert.rejects(g.get('k'), NotFoundError);
    assert.equal(g.cacheStats('main').items, 0);
  });

  it('a stale copy where the key is no longer owned is dropped once the new owner answers fresh', async () => {
    const clock = fakeClock();
    let owner: Peer | null = null;
    let peerCalls = 0;
    const peer: Peer = {
      id: 'new-owner',
      get: async () => {
        peerCalls++;
        return { value: Buffer.from('from-owner'), ttlMs: 60_000 };
      },
    };
    const g = testGroup({
      name: 'moved',
      cacheBytes: 1 << 20,
      now: clock.now,
      peers: { pickPeer: () => owner },
      hotKeyPolicy: { shouldPromote: () => false },
      getter: async () => ({ value: 'local', ttlMs: 1000, staleWhileRevalidateMs: 60_000 }),
    });
    await g.get('k');
    clock.advance(2000);
    owner = peer; // the ring changed: another node owns the key now
    assert.equal(await g.getString('k'), 'local', 'stale, while the refresh asks the new owner');
    await tick();
    assert.equal(peerCalls, 1);
    assert.equal(await g.getString('k'), 'from-owner');
    assert.equal(peerCalls, 2, 'not mirrored: asked again, but never the stale copy');
    assert.equal(g.cacheStats('main').items, 0);
  });

  it('a value without a ttl never goes stale; windows are validated', async () => {
    const s = scripted();
    const { g } = group(s.getter);
    s.set(() => ({ value: 'v', staleWhileRevalidateMs: 10 }));
    assert.equal((await g.getEntry('k')).staleWhileRevalidateMs, undefined);
    s.set(() => ({ value: 'v', ttlMs: 5, staleIfErrorMs: -1 }));
    await assert.rejects(g.get('bad'), /staleIfErrorMs number -1/);
    assert.throws(
      () =>
        testGroup({
          name: 'x',
          cacheBytes: 1,
          getter: s.getter,
          staleIfErrorMs: -5,
        }),
      /staleIfErrorMs must be a number of ms >= 0/,
    );
  });
});

describe('stale-if-error', () => {
  it('within the window a failed or timed-out load answers the last value; outside, the error', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter, { getterTimeoutMs: 30 });
    s.set(() => ({ value: 'v1', ttlMs: 1000, staleIfErrorMs: 10_000 }));
    await g.get('k');
    clock.advance(1500);
    s.set(() => {
      throw new Error('origin 503');
    });
    const e = await g.getEntry('k');
    assert.equal(e.value.toString(), 'v1');
    assert.equal(e.stale, true);
    assert.equal(e.staleIfErrorMs, 9500);
    assert.equal(g.stats.staleIfErrorHits, 1);
    // A getter that hangs past getterTimeoutMs: stale too.
    s.set(() => new Promise<GetterResult>(() => {}));
    assert.equal(await g.getString('k'), 'v1');
    assert.equal(g.stats.staleIfErrorHits, 2);
    // A NotFound is an answer, not an error: no stale value.
    s.set(() => {
      throw new NotFoundError('deleted');
    });
    await assert.rejects(g.get('k'), NotFoundError);
    // A success replaces the stale value.
    s.set(() => ({ value: 'v2', ttlMs: 1000, staleIfErrorMs: 10_000 }));
    assert.equal(await g.getString('k'), 'v2');
    clock.advance(1000 + 10_000); // past ttl and window
    s.set(() => {
      throw new Error('origin 503');
    });
    await assert.rejects(g.get('k'), /origin 503/);
    assert.equal(g.stats.staleIfErrorHits, 2);
    assert.equal(g.stats.staleHits, 2);
  });

  it('a caller that leaves gets its own reason, not the stale value', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter);
    s.set(() => ({ value: 'v1', ttlMs: 1000, staleIfErrorMs: 10_000 }));
    await g.get('k');
    clock.advance(1500);
    s.set(() => new Promise<GetterResult>(() => {}));
    const ac = new AbortController();
    const p = g.get('k', { signal: ac.signal });
    ac.abort(new Error('client left'));
    await assert.rejects(p, /client left/);
  });
});

describe('negative caching', () => {
  it('remembers a NotFound with a ttl, in the byte budget, until it expires or is removed', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter);
    s.set(() => {
      throw new NotFoundError('no such user', { ttlMs: 30_000 });
    });
    for (let i = 0; i < 5; i++) {
      await assert.rejects(
        g.get('u'),
        (e: Error) => e instanceof NotFoundError && e.message === 'no such user',
      );
    }
    assert.equal(s.calls.length, 1);
    assert.equal(g.stats.negativeHits, 4);
    assert.deepEqual(
      { bytes: g.cacheStats('main').bytes, items: g.cacheStats('main').items },
      { bytes: 1 + 'no such user'.length, items: 1 },
    );
    assert.equal(g.server.getCached('u'), undefined, 'a remembered NotFound is not a value');
    await assert.rejects(g.getEntry('u'), (e: NotFoundError) => e.ttlMs === 30_000);
    clock.advance(10_000);
    await assert.rejects(g.getEntry('u'), (e: NotFoundError) => e.ttlMs === 20_000);
    await g.remove('u');
    s.set(() => 'now it exists');
    assert.equal(await g.getString('u'), 'now it exists');
    assert.equal(s.calls.length, 2);

    s.set(() => {
      throw new NotFoundError('x', { ttlMs: 1000 });
    });
    await assert.rejects(g.get('v'), NotFoundError);
    clock.advance(1000);
    s.set(() => 'v');
    assert.equal(await g.getString('v'), 'v');
  });

  it('a NotFound without a ttl is not remembered (the default)', async () => {
    const s = scripted();
    const { g } = group(s.getter);
    s.set(() => {
      throw new NotFoundError('no');
    });
    await assert.rejects(g.get('a'), NotFoundError);
    await assert.rejects(g.get('a'), NotFoundError);
    assert.equal(s.calls.length, 2);
    assert.equal(g.cacheStats('main').items, 0);
    assert.throws(() => new NotFoundError('x', { ttlMs: -1 }), /ttlMs must be a number/);
  });

  it('an owner’s remembered NotFound reaches peers with its remaining ttl; a mirror never outlives it', async () => {
    const clock = fakeClock();
    let calls = 0;
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async () => {
        calls++;
        throw new NotFoundError('missing', { ttlMs: 10_000 });
      },
    });
    const key = c.keyOwnedBy(0);
    await assert.rejects(c.nodes[0].group.get(key), NotFoundError);
    clock.advance(4000);
    await assert.rejects(c.nodes[1].group.getEntry(key), (e: NotFoundError) => e.ttlMs === 6000);
    // Mirrored at node 1: answered there without asking the owner.
    const asked = c.nodes[0].peerGetsReceived;
    await assert.rejects(c.nodes[1].group.get(key), NotFoundError);
    assert.equal(c.nodes[0].peerGetsReceived, asked);
    assert.equal(c.nodes[1].group.stats.negativeHits, 1);
    clock.advance(6000);
    await assert.rejects(c.nodes[1].group.get(key), NotFoundError);
    assert.equal(calls, 2, 'both copies expired together: the owner loaded again');
    c.close();
  });
});

describe('lifecycle across peers', () => {
  it('one refresh per key across 3 nodes; every node answers stale at once meanwhile', async () => {
    const clock = fakeClock();
    let version = 1;
    const pending: ((v: GetterResult) => void)[] = [];
    const c = new Cluster({
      nodes: 3,
      now: clock.now,
      getter: (key) => {
        if (version === 1)
          return Promise.resolve({ value: `${key}@1`, ttlMs: 1000, staleWhileRevalidateMs: 60_000 });
        return new Promise((resolve) => pending.push(resolve));
      },
    });
    const key = c.keyOwnedBy(1);
    for (const n of c.nodes) assert.equal(await n.group.getString(key), `${key}@1`);
    assert.equal(c.totalGetterCalls(), 1);
    clock.advance(2000);
    version = 2;
    const answers = await Promise.all([0, 1, 2, 0, 1, 2, 2, 0].map((i) => c.nodes[i].group.getEntry(key)));
    for (const a of answers) {
      assert.equal(a.value.toString(), `${key}@1`);
      assert.equal(a.stale, true);
    }
    assert.equal(c.totalGetterCalls(), 2, 'one refresh, at the owner');
    assert.equal(c.getterCalls[1], 2);
    pending[0]({ value: `${key}@2`, ttlMs: 60_000 });
    await tick();
    assert.equal(await c.nodes[1].group.getString(key), `${key}@2`);
    // A node that mirrored the value may answer its stale mirror once more (its own refresh from the
    // owner came back stale and waits REFRESH_RETRY_MS); its next refresh brings the new value.
    clock.advance(REFRESH_RETRY_MS);
    for (const n of c.nodes) await n.group.getString(key);
    await tick();
    for (const n of c.nodes) assert.equal(await n.group.getString(key), `${key}@2`);
    assert.equal(c.totalGetterCalls(), 2);
    assert.equal(c.nodes[1].group.stats.backgroundRefreshes, 1, 'the owner refreshed once');
    c.close();
  });

  it('a mirror keeps the owner’s remaining windows and age: it never extends them', async () => {
    const clock = fakeClock();
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async () => ({ value: 'v', ttlMs: 1000, staleWhileRevalidateMs: 5000, staleIfErrorMs: 8000 }),
    });
    const key = c.keyOwnedBy(0);
    await c.nodes[0].group.get(key);
    clock.advance(500);
    const e = await c.nodes[1].group.getEntry(key);
    assert.equal(e.source, 'peer');
    assert.equal(e.ttlMs, 500);
    assert.equal(e.staleWhileRevalidateMs, 5500);
    assert.equal(e.staleIfErrorMs, 8500);
    assert.equal(e.ageMs, 500);
    clock.advance(2500); // at the owner: stale, 3000 left of swr, 6000 of sie
    // The mirror at node 1 answers itself, with the owner's windows and age, not fresh ones.
    const m = await c.nodes[1].group.getEntry(key);
    assert.equal(m.source, 'hit');
    assert.equal(m.stale, true);
    assert.equal(m.staleWhileRevalidateMs, 3000);
    assert.equal(m.staleIfErrorMs, 6000);
    assert.equal(m.ageMs, 3000);
    assert.equal(c.nodes[1].group.cacheStats('hot').items, 1);
    c.close();
  });
});

describe('lifecycle when peers fail', () => {
  it('a mirror in its stale-if-error window answers when the owner is down and the local load fails', async () => {
    const clock = fakeClock();
    let failing = false;
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async () => {
        if (failing) throw new Error('origin down');
        return { value: 'v1', ttlMs: 1000, staleIfErrorMs: 60_000 };
      },
    });
    const key = c.keyOwnedBy(0);
    assert.equal(await c.nodes[1].group.getString(key), 'v1');
    assert.equal(c.nodes[1].group.cacheStats('hot').items, 1);
    clock.advance(2000);
    failing = true;
    c.nodes[0].faults.down = true;
    const e = await c.nodes[1].group.getEntry(key);
    assert.equal(e.value.toString(), 'v1');
    assert.equal(e.stale, true);
    assert.equal(c.nodes[1].group.stats.staleIfErrorHits, 1);
    assert.equal(
      c.nodes[1].group.stats.peerErrors,
      1,
      'asked the owner, then loaded locally, then fell back',
    );
    c.close();
  });

  it('remove drops stale values and remembered NotFounds everywhere', async () => {
    const clock = fakeClock();
    let mode: 'value' | 'none' = 'value';
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async (k) => {
        if (mode === 'none') throw new NotFoundError('none', { ttlMs: 60_000 });
        return { value: `${k}!`, ttlMs: 1000, staleWhileRevalidateMs: 60_000 };
      },
    });
    const a = c.keyOwnedBy(0, 'a');
    const b = c.keyOwnedBy(0, 'b');
    await c.nodes[1].group.get(a);
    mode = 'none';
    await assert.rejects(c.nodes[1].group.get(b), NotFoundError);
    clock.advance(2000); // a is stale now, at the owner and in node 1's mirror
    await c.nodes[1].group.remove(a);
    await c.nodes[1].group.remove(b);
    for (const n of c.nodes) {
      assert.equal(n.group.cacheStats('main').items + n.group.cacheStats('hot').items, 0);
    }
    c.close();
  });
});

describe('set', () => {
  it('stores locally for an owned key, replaces values and remembered NotFounds, with a ttl', async () => {
    const s = scripted();
    const { g, clock } = group(s.getter, { staleWhileRevalidateMs: 500 });
    s.set(() => {
      throw new NotFoundError('none', { ttlMs: 60_000 });
    });
    await assert.rejects(g.get('k'), NotFoundError);
    await g.set('k', 'written', { ttlMs: 1000 });
    const e = await g.getEntry('k');
    assert.equal(e.value.toString(), 'written');
    assert.equal(e.ttlMs, 1000);
    assert.equal(s.calls.length, 1);
    assert.equal(g.stats.sets, 1);
    clock.advance(1200); // expired, in the group's default swr window
    s.set(() => 'loaded');
    assert.equal(await g.getString('k'), 'written');
    await tick();
    assert.equal(await g.getString('k'), 'loaded');
    await g.set('k', new Uint8Array([1, 2]));
    assert.equal(g.server.ttlMs(g.server.lookup('k')), undefined);
    assert.deepEqual([...(await g.get('k'))], [1, 2]);
  });

  it('refuses bad input with a clear error and stores nothing', async () => {
    const { g } = group(async () => 'x', { cacheBytes: 100 });
    await assert.rejects(
      g.set('k', 'x'.repeat(100)),
      (e: Error) => e instanceof RangeError && /101 bytes, over the cache size of 100/.test(e.message),
    );
    await assert.rejects(g.set('k', 42 as unknown as string), /value must be a Uint8Array or a string/);
    await assert.rejects(g.set('k', 'v', { ttlMs: 0 }), /ttlMs must be a number of ms > 0/);
    await assert.rejects(g.set('', 'v'), /key is empty/);
    assert.equal(g.cacheStats('main').items, 0);
    assert.equal(g.stats.sets, 0);
  });

  it('stores at the owner, drops every mirror; visible through every node right after it resolves', async () => {
    const clock = fakeClock();
    const c = new Cluster({
      nodes: 3,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async (key) => `${key}@origin`,
    });
    const key = c.keyOwnedBy(0);
    for (const n of c.nodes) assert.equal(await n.group.getString(key), `${key}@origin`);
    assert.equal(c.nodes[2].group.cacheStats('hot').items, 1, 'node 2 mirrors it');
    await c.nodes[1].group.set(key, 'new', { ttlMs: 5000 });
    assert.equal(c.nodes[0].peerSetsReceived, 1);
    assert.equal(c.nodes[2].group.cacheStats('hot').items, 0, 'mirror dropped');
    for (const n of c.nodes) assert.equal(await n.group.getString(key), 'new');
    assert.equal(c.totalGetterCalls(), 1);
    const ownerEntry = await c.nodes[0].group.getEntry(key);
    assert.equal(ownerEntry.ttlMs, 5000);
    assert.equal(ownerEntry.source, 'hit');
    c.close();
  });

  it('set racing a load of the same key: the load’s waiters get what it loaded, set wins the cache', async () => {
    const clock = fakeClock();
    const loads: ((v: GetterResult) => void)[] = [];
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      getter: () => new Promise((resolve) => loads.push(resolve)),
    });
    const key = c.keyOwnedBy(0);
    // A get through the non-owner: its fetch waits on the owner's getter.
    const racing = c.nodes[1].group.getString(key);
    const atOwner = c.nodes[0].group.getString(key);
    await tick();
    assert.equal(loads.length, 1);
    await c.nodes[1].group.set(key, 'set-value');
    loads[0]('loaded-before-set');
    assert.equal(await racing, 'loaded-before-set');
    assert.equal(await atOwner, 'loaded-before-set');
    for (const n of c.nodes) assert.equal(await n.group.getString(key), 'set-value');
    assert.equal(c.totalGetterCalls(), 1);
    c.close();
  });

  it('fails when the owner cannot be reached, and says so', async () => {
    const c = new Cluster({ nodes: 2, getter: async () => 'x', peerTimeoutMs: 50 });
    const key = c.keyOwnedBy(0);
    c.nodes[0].faults.down = true;
    await assert.rejects(c.nodes[1].group.set(key, 'v'), /is down/);
    c.nodes[0].faults.down = false;
    c.nodes[0].faults.hang = true;
    await assert.rejects(c.nodes[1].group.set(key, 'v'), (e: Error) => e.name === 'PeerTimeoutError');
    c.close();
  });
});
