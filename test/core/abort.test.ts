import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { AbortWaiter, onAbort, watch } from '../../src/abort.js';
import { ChurnMap } from '../../src/churn.js';

class Recorder extends AbortWaiter {
  reasons: unknown[] = [];
  constructor(private readonly then?: () => void) {
    super();
  }
  onAbort(reason: unknown): void {
    this.reasons.push(reason);
    this.then?.();
  }
}

describe('abort waiters (one listener per signal)', () => {
  it('many waiters on one signal add one listener and are all told, once, with the reason', () => {
    const ac = new AbortController();
    const ws = Array.from({ length: 50 }, () => new Recorder());
    for (const w of ws) watch(ac.signal, w);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    const reason = new Error('bye');
    ac.abort(reason);
    for (const w of ws) assert.deepEqual(w.reasons, [reason]);
    ac.abort(new Error('again'));
    for (const w of ws) assert.equal(w.reasons.length, 1);
  });

  it('an unwatched waiter is not told; unwatch twice (or never watched) is harmless', () => {
    const ac = new AbortController();
    const [a, b, c] = [new Recorder(), new Recorder(), new Recorder()];
    watch(ac.signal, a);
    watch(ac.signal, b);
    watch(ac.signal, c);
    b.unwatch(); // middle of the list
    b.unwatch();
    c.unwatch(); // head of the list
    new Recorder().unwatch();
    ac.abort('r');
    assert.deepEqual(a.reasons, ['r']);
    assert.deepEqual(b.reasons, []);
    assert.deepEqual(c.reasons, []);
  });

  it('a waiter may unwatch another from its callback: that one is not told', () => {
    const ac = new AbortController();
    const later = new Recorder();
    const first = new Recorder(() => later.unwatch());
    watch(ac.signal, later);
    watch(ac.signal, first); // linked at the head: told first
    ac.abort('r');
    assert.deepEqual(first.reasons, ['r']);
    assert.deepEqual(later.reasons, []);
  });

  it('watching another signal moves the waiter; signals do not share lists', () => {
    const [ac1, ac2] = [new AbortController(), new AbortController()];
    const w = new Recorder();
    watch(ac1.signal, w);
    watch(ac2.signal, w);
    ac1.abort('one');
    assert.deepEqual(w.reasons, []);
    ac2.abort('two');
    assert.deepEqual(w.reasons, ['two']);
  });

  it('100k watch/unwatch cycles on one signal keep one listener and tell nobody', () => {
    const ac = new AbortController();
    const keep = new Recorder();
    watch(ac.signal, keep);
    let told = 0;
    for (let i = 0; i < 100_000; i++) {
      const w = onAbort(ac.signal, () => told++);
      w.unwatch();
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort('end');
    assert.equal(told, 0);
    assert.deepEqual(keep.reasons, ['end']);
  });
});

describe('ChurnMap', () => {
  it('behaves like a Map for set/get/delete/size with string and integer keys', () => {
    const m = new ChurnMap<string, number>();
    m.set('a', 1);
    m.set('a', 2); // overwrite: size unchanged
    m.set('__proto__', 3);
    m.set('constructor', 4);
    assert.equal(m.size, 3);
    assert.equal(m.get('a'), 2);
    assert.equal(m.get('__proto__'), 3);
    assert.equal(m.get('constructor'), 4);
    assert.equal(m.get('toString'), undefined, 'no inherited properties');
    assert.equal(m.delete('a'), true);
    assert.equal(m.delete('a'), false);
    assert.equal(m.size, 2);
    assert.deepEqual(m.keys().sort(), ['__proto__', 'constructor']);
    const ids = new ChurnMap<number, string>();
    ids.set(0xffffffff, 'max');
    ids.set(1, 'one');
    assert.equal(ids.get(0xffffffff), 'max');
    assert.deepEqual(ids.values().sort(), ['max', 'one']);
    const seen: string[] = [];
    ids.forEach((v) => {
      seen.push(v);
      ids.delete(1); // deleting the current entry while iterating is allowed
    });
    assert.deepEqual(seen.sort(), ['max', 'one']);
    assert.equal(ids.get(1), undefined);
    ids.clear();
    assert.equal(ids.size, 0);
    assert.equal(ids.get(1), undefined);
  });

  it('agrees with a Map over 50k random operations', () => {
    const m = new ChurnMap<string, number>();
    const ref = new Map<string, number>();
    let seed = 42;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 50_000; i++) {
      const k = `k${rnd(300)}`;
      if (rnd(2) === 0) {
        m.set(k, i);
        ref.set(k, i);
      } else assert.equal(m.delete(k), ref.delete(k));
      assert.equal(m.size, ref.size);
      assert.equal(m.get(k), ref.get(k));
    }
  });
});
