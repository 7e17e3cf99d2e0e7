// What a non-owner does when the key's owner fails, in-process (test/support/in-process-cluster.ts):
// an owner that was reached and whose own load failed answers OwnerLoadError, and the non-owner fails
// too without running its getter (the origin is asked once per request, at the owner); an owner that
// cannot be reached, or an old one that does not say its load failed, still makes the non-owner load
// the key itself. NotFound and stale-if-error keep their meaning. The wire side: test/grpc/owner-load-error.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  isOwnerLoadError,
  loadFailureName,
  NotFoundError,
  OwnerLoadError,
  randomPromotion,
} from '../../src/index.js';
import { Cluster, fakeClock } from '../support/in-process-cluster.js';
import { deferred, rejection, sleep } from '../support/wait.js';

/** A getter's own error class, like the node's OriginError. */
class OriginError extends Error {
  override name = 'OriginError';
}

describe('owner reached, its load failed: the non-owner fails too, without its getter', () => {
  it('the owner’s getter error answers; the origin is asked once per request, at the owner', async () => {
    const c = new Cluster({
      nodes: 3,
      getter: async (key) => {
        throw new OriginError(`GET /${key}: origin answered 503`);
      },
    });
    const key = c.keyOwnedBy(1);
    const err = await rejection(c.nodes[0].group.get(key));
    assert.ok(err instanceof OwnerLoadError, `got ${err.name}: ${err.message}`);
    assert.equal(err.name, 'OwnerLoadError');
    assert.equal(err.ownerError, 'OriginError');
    assert.equal(err.peer, c.nodes[1].id);
    assert.match(err.message, /origin answered 503/);
    assert.deepEqual(c.getterCalls, [0, 1, 0]);
    const s0 = c.nodes[0].group.stats;
    assert.equal(s0.ownerLoadErrors, 1);
    assert.equal(s0.peerErrors, 0, 'the owner answered: not a peer error');
    assert.equal(s0.localLoads, 0);
    assert.equal(c.nodes[1].group.stats.localLoadErrs, 1);

    // Sequential requests through both non-owners: one origin call each, all at the owner.
    for (let i = 0; i < 4; i++) {
      await assert.rejects(c.nodes[i % 2 === 0 ? 0 : 2].group.getString(key), OwnerLoadError);
    }
    assert.deepEqual(c.getterCalls, [0, 5, 0]);
    // The owner's own callers see the getter's error itself.
    await assert.rejects(c.nodes[1].group.get(key), OriginError);
    assert.deepEqual(c.getterCalls, [0, 6, 0]);
    c.close();
  });

  it('concurrent gets from every non-owner share the owner’s one failing load', async () => {
    const gate = deferred<never>();
    const c = new Cluster({ nodes: 3, getter: () => gate.promise });
    const key = c.keyOwnedBy(2);
    const gets = Array.from({ length: 20 }, (_, i) => rejection(c.nodes[i % 2].group.get(key)));
    await sleep(5);
    gate.reject(new OriginError('origin timed out after 5000 ms'));
    for (const err of await Promise.all(gets)) {
      assert.ok(isOwnerLoadError(err), `got ${err.name}: ${err.message}`);
      assert.equal((err as OwnerLoadError).ownerError, 'OriginError');
    }
    assert.deepEqual(c.getterCalls, [0, 0, 1]);
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors + c.nodes[1].group.stats.ownerLoadErrors, 2);
    c.close();
  });

  it('a getter timeout at the owner answers as OwnerLoadError(GetterTimeoutError); the next get works', async () => {
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
    const err = await rejection(c.nodes[0].group.get(key));
    assert.ok(err instanceof OwnerLoadError);
    assert.equal(err.ownerError, 'GetterTimeoutError');
    assert.deepEqual(c.getterCalls, [0, 1], 'no second wait for a getter here');
    assert.equal(await c.nodes[0].group.getString(key), 'ok');
    assert.deepEqual(c.getterCalls, [0, 2]);
    c.close();
  });

  it('a getter returning a bad value at the owner is a failed load too', async () => {
    const c = new Cluster({ nodes: 2, getter: async () => 42 as unknown as string });
    const key = c.keyOwnedBy(1);
    const err = await rejection(c.nodes[0].group.get(key));
    assert.ok(err instanceof OwnerLoadError);
    assert.equal(err.ownerError, 'TypeError');
    assert.deepEqual(c.getterCalls, [0, 1]);
    c.close();
  });
});

describe('owner not reached: the non-owner loads the key itself, as before', () => {
  it('owner down while the origin fails: the non-owner’s getter runs and its error answers', async () => {
    const c = new Cluster({
      nodes: 3,
      getter: async (_key, { node }) => {
        throw new OriginError(`origin down (asked by node${node})`);
      },
    });
    const key = c.keyOwnedBy(1);
    c.nodes[1].faults.down = true;
    const err = await rejection(c.nodes[0].group.get(key));
    assert.ok(err instanceof OriginError, `got ${err.name}: ${err.message}`);
    assert.match(err.message, /asked by node0/);
    assert.deepEqual(c.getterCalls, [1, 0, 0]);
    assert.equal(c.nodes[0].group.stats.peerErrors, 1);
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors, 0);
    c.close();
  });

  it('owner silent past peerTimeoutMs: the non-owner’s getter runs', async () => {
    const c = new Cluster({ nodes: 2, peerTimeoutMs: 20, getter: async (key, { node }) => `${key}@${node}` });
    const key = c.keyOwnedBy(1);
    c.nodes[1].faults.hang = true;
    assert.equal(await c.nodes[0].group.getString(key), `${key}@0`);
    assert.deepEqual(c.getterCalls, [1, 0]);
    assert.equal(c.nodes[0].group.stats.peerErrors, 1);
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors, 0);
    c.close();
  });

  it('an old owner that passes its getter’s raw error on (no OwnerLoadError): the non-owner loads', async () => {
    let failing = true;
    const c = new Cluster({
      nodes: 2,
      getter: async (key, { node }) => {
        if (failing && node === 1) throw new OriginError('origin answered 502');
        return `${key}@${node}`;
      },
    });
    const key = c.keyOwnedBy(1);
    c.nodes[1].faults.legacyErrors = true;
    assert.equal(await c.nodes[0].group.getString(key), `${key}@0`);
    assert.deepEqual(c.getterCalls, [1, 1]);
    assert.equal(c.nodes[0].group.stats.peerErrors, 1);
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors, 0);
    failing = false;
    c.close();
  });
});

describe('answers that are not failed loads keep their meaning', () => {
  it('NotFound from the owner stays NotFound (remembered for its ttl), never an OwnerLoadError', async () => {
    const c = new Cluster({
      nodes: 2,
      getter: async (key) => {
        throw new NotFoundError(`no ${key}`, { ttlMs: 60_000 });
      },
    });
    const key = c.keyOwnedBy(1);
    const err = await rejection(c.nodes[0].group.get(key));
    assert.ok(err instanceof NotFoundError, `got ${err.name}`);
    assert.equal(isOwnerLoadError(err), false);
    assert.equal((err as NotFoundError).source, 'peer');
    assert.deepEqual(c.getterCalls, [0, 1]);
    const s0 = c.nodes[0].group.stats;
    assert.equal(s0.ownerLoadErrors, 0);
    assert.equal(s0.peerErrors, 0);
    // Remembered (at the owner, and mirrored here): the next get asks nobody's getter.
    await assert.rejects(c.nodes[0].group.get(key), NotFoundError);
    assert.deepEqual(c.getterCalls, [0, 1]);
    c.close();
  });

  it('a caller giving up is not an owner load error', async () => {
    const gate = deferred<string>();
    const c = new Cluster({ nodes: 2, getter: () => gate.promise });
    const key = c.keyOwnedBy(1);
    const ac = new AbortController();
    const p = rejection(c.nodes[0].group.get(key, { signal: ac.signal }));
    await sleep(1);
    ac.abort(new Error('caller left'));
    assert.match((await p).message, /caller left/);
    gate.resolve('late');
    await sleep(1);
    assert.equal(c.nodes[0].group.stats.ownerLoadErrors, 0);
    assert.equal(c.nodes[0].group.stats.peerErrors, 0);
    assert.equal(c.getterCalls[0], 0);
    c.close();
  });

  it('a non-owner holding a stale copy in its stale-if-error window serves it when the owner’s load fails', async () => {
    const clock = fakeClock();
    let failing = false;
    const c = new Cluster({
      nodes: 2,
      now: clock.now,
      hotKeyPolicy: () => randomPromotion(1),
      getter: async () => {
        if (failing) throw new OriginError('origin answered 503');
        return { value: 'v1', ttlMs: 1000, staleIfErrorMs: 60_000 };
      },
    });
    const key = c.keyOwnedBy(0);
    assert.equal(await c.nodes[1].group.getString(key), 'v1');
    assert.equal(c.nodes[1].group.cacheStats('hot').items, 1, 'mirrored at the non-owner');
    // The owner lost its copy (evicted, restarted): only the non-owner's stale mirror is left.
    c.nodes[0].group.server.removeLocal(key);
    clock.advance(2000);
    failing = true;
    const e = await c.nodes[1].group.getEntry(key);
    assert.equal(e.value.toString(), 'v1');
    assert.equal(e.stale, true);
    const s1 = c.nodes[1].group.stats;
    assert.equal(s1.staleIfErrorHits, 1);
    assert.equal(s1.ownerLoadErrors, 1);
    assert.equal(s1.peerErrors, 0);
    assert.deepEqual(c.getterCalls, [2, 0], 'the origin was asked at the owner only');
    // Past the window: the owner's failure itself.
    clock.advance(60_000);
    await assert.rejects(c.nodes[1].group.get(key), OwnerLoadError);
    assert.deepEqual(c.getterCalls, [3, 0]);
    c.close();
  });
});

describe('loadFailureName', () => {
  it('names failed loads only, and only with a name that can travel', () => {
    assert.equal(loadFailureName(new OriginError('x')), 'OriginError');
    assert.equal(loadFailureName(new Error('x')), 'Error');
    assert.equal(loadFailureName('a string thrown'), 'Error');
    const odd = new Error('x');
    odd.name = 'Bad name\r\nInjected: 1';
    assert.equal(loadFailureName(odd), 'Error');
    assert.equal(
      loadFailureName(new OwnerLoadError('p:1', 'GetterTimeoutError', 'slow')),
      'GetterTimeoutError',
    );
    assert.equal(loadFailureName(new NotFoundError('none')), undefined);
    const invalid = new TypeError('bad key');
    invalid.name = 'InvalidKeyError';
    assert.equal(loadFailureName(invalid), undefined);
    const abort = new Error('gone');
    abort.name = 'AbortError';
    assert.equal(loadFailureName(abort), undefined);
    assert.equal(new OwnerLoadError('p:1', 'x y', 'm').ownerError, 'Error');
  });
});
