import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Awareness } from '../../src/membership/awareness.js';
import { BroadcastQueue, retransmitLimit } from '../../src/membership/broadcasts.js';
import { Suspicion, suspicionMinMs, suspicionTimeout } from '../../src/membership/suspicion.js';
import { SimClock } from '../../src/membership/testing/index.js';

describe('suspicion timeout (Lifeguard)', () => {
  it('starts at max, reaches min after k confirmations, shrinks logarithmically in between', () => {
    assert.equal(suspicionTimeout(0, 3, 1000, 6000), 6000);
    assert.equal(suspicionTimeout(3, 3, 1000, 6000), 1000);
    assert.equal(suspicionTimeout(9, 3, 1000, 6000), 1000);
    const one = suspicionTimeout(1, 3, 1000, 6000);
    const two = suspicionTimeout(2, 3, 1000, 6000);
    // log(2)/log(4) = 0.5 → 6000 − 5000 × 0.5
    assert.equal(one, 3500);
    assert.ok(two < one && two > 1000);
    // The first confirmation buys more than the second (logarithmic).
    assert.ok(6000 - one > one - two);
    assert.equal(suspicionTimeout(0, 0, 1000, 6000), 1000);
  });

  it('scales the min timeout with log10 of the cluster size', () => {
    assert.equal(suspicionMinMs(3, 1, 500), 1500);
    assert.equal(suspicionMinMs(3, 10, 500), 1500);
    assert.equal(suspicionMinMs(3, 100, 500), 3000);
    assert.equal(suspicionMinMs(3, 1000, 500), 4500);
  });

  it('fires at max without confirmations, earlier with them, never after cancel', async () => {
    const clock = new SimClock();
    let fired = -1;
    const s = new Suspicion(clock, 'a', 2, 1000, 4000, () => (fired = clock.now()));
    await clock.advance(500);
    assert.equal(s.confirm('a'), false, 'the first accuser does not confirm itself');
    assert.equal(s.confirm('b'), true);
    assert.equal(s.confirm('b'), false, 'one vote per member');
    await clock.advance(100);
    assert.equal(s.confirm('c'), true);
    assert.equal(s.confirm('d'), false, 'beyond k confirmations change nothing');
    await clock.advance(5000);
    assert.equal(fired, 1000, 'two confirmations: min timeout from the start');

    const clock2 = new SimClock();
    let fired2 = -1;
    new Suspicion(clock2, 'a', 2, 1000, 4000, () => (fired2 = clock2.now()));
    await clock2.advance(10_000);
    assert.equal(fired2, 4000);

    let fired3 = false;
    const s3 = new Suspicion(clock2, 'a', 2, 1000, 4000, () => (fired3 = true));
    s3.cancel();
    await clock2.advance(10_000);
    assert.equal(fired3, false);
    assert.equal(clock2.pending, 0);
  });

  it('a confirmation that arrives after the shrunk deadline fires at once', async () => {
    const clock = new SimClock();
    let fired = -1;
    const s = new Suspicion(clock, 'a', 1, 1000, 4000, () => (fired = clock.now()));
    await clock.advance(2000);
    s.confirm('b');
    await clock.advance(0);
    assert.equal(fired, 2000);
  });
});

describe('awareness (local health)', () => {
  it('stretches timers by (score + 1), clamped to [0, max − 1]', () => {
    const a = new Awareness(8);
    assert.equal(a.scale(500), 500);
    a.apply(3);
    assert.equal(a.health, 3);
    assert.equal(a.scale(500), 2000);
    a.apply(100);
    assert.equal(a.health, 7);
    a.apply(-2);
    assert.equal(a.health, 5);
    a.apply(-100);
    assert.equal(a.health, 0);
  });
});

describe('broadcast queue', () => {
  const frame = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

  it('sends least-transmitted first and retires after the limit', () => {
    const q = new BroadcastQueue(100);
    q.push('a', frame(10, 1));
    q.push('b', frame(10, 2));
    assert.equal(q.take(15, 2).length, 1); // only one fits
    const second = q.take(100, 2);
    assert.equal(second.length, 2);
    assert.equal(second[0][0], 2, 'b (never sent) goes before a (sent once)');
    // a has now been sent twice: retired. b once: still queued.
    assert.equal(q.size, 1);
    assert.ok(q.has('b'));
    q.take(100, 2);
    assert.equal(q.size, 0);
  });

  it('newer news about a member replaces the older, and the queue is bounded', () => {
    const q = new BroadcastQueue(3);
    let doneA = 0;
    q.push('a', frame(5, 1), () => doneA++);
    q.push('a', frame(5, 9));
    assert.equal(doneA, 1, 'the replaced item is done');
    assert.equal(q.size, 1);
    assert.equal(q.take(100, 5)[0][0], 9);
    q.push('b', frame(5));
    q.push('c', frame(5));
    q.push('d', frame(5));
    assert.equal(q.size, 3);
    assert.equal(q.dropped, 1);
    assert.equal(q.has('a'), false, 'the most transmitted item is dropped first');
  });

  it('retransmit limit grows with log10 n', () => {
    assert.equal(retransmitLimit(4, 1), 4);
    assert.equal(retransmitLimit(4, 10), 8);
    assert.equal(retransmitLimit(4, 100), 12);
    assert.equal(retransmitLimit(4, 1000), 16);
  });
});
