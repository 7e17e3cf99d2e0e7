import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HotCacheView, PromotionCandidate, RateState } from '../../src/hotkeys.js';
import { RATE_WINDOW_MS, randomPromotion, rateBasedPromotion, readRate } from '../../src/hotkeys.js';
import { Group, GroupRegistry } from '../../src/index.js';
import { fakeClock } from '../support/in-process-cluster.js';

const near = (actual: number, expected: number, tolerance: number) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} is not within ${tolerance} of ${expected}`);

describe('decayed rate counter', () => {
  it('a steady stream of λ requests per minute reads back as about λ', () => {
    const s: RateState = { hits: 0, rate: 0, rateAt: 0 };
    // 120/min for 10 minutes, read every second
    for (let t = 0; t < 10 * 60_000; t += 500) {
      s.hits++;
      if (t % 1000 === 0) readRate(s, t);
    }
    near(readRate(s, 10 * 60_000), 120, 3);
  });

  it('reads the same whether it is read often or rarely', () => {
    const often: RateState = { hits: 0, rate: 0, rateAt: 0 };
    const rarely: RateState = { hits: 0, rate: 0, rateAt: 0 };
    for (let t = 0; t < 5 * 60_000; t += 100) {
      often.hits++;
      rarely.hits++;
      readRate(often, t);
    }
    near(readRate(rarely, 5 * 60_000), readRate(often, 5 * 60_000), 25);
  });

  it('decays by e every window once requests stop', () => {
    const s: RateState = { hits: 0, rate: 100, rateAt: 0 };
    near(readRate(s, RATE_WINDOW_MS), 100 / Math.E, 1e-9);
    near(readRate(s, 10 * RATE_WINDOW_MS), 100 * Math.exp(-10), 1e-9);
  });

  it('hits with no time passed add up (each one is a request in the last window, as a rate per minute)', () => {
    const perMinute = 60_000 / RATE_WINDOW_MS;
    const s: RateState = { hits: 3, rate: 1, rateAt: 50 };
    assert.equal(readRate(s, 50), 1 + 3 * perMinute);
    assert.equal(readRate(s, 40), 1 + 3 * perMinute, 'a clock going backwards does not break it');
  });
});

function view(room: boolean, coldest: number | undefined): HotCacheView {
  return { hasRoom: () => room, coldestMinuteQps: () => coldest };
}

function candidate(over: Partial<PromotionCandidate>): PromotionCandidate {
  return {
    key: 'k',
    bytes: 10,
    now: 0,
    ownerMinuteQps: undefined,
    clusterSize: 5,
    hot: view(false, 10),
    ...over,
  };
}

describe('rateBasedPromotion', () => {
  it('mirrors anything while the hot cache has room', () => {
    const p = rateBasedPromotion();
    assert.notEqual(p.shouldPromote(candidate({ hot: view(true, 1000) })), false);
  });

  it("uses the owner's rate divided by the cluster size against the coldest hot entry", () => {
    const p = rateBasedPromotion({ margin: 1 });
    assert.equal(p.shouldPromote(candidate({ key: 'a', ownerMinuteQps: 40, hot: view(false, 10) })), false);
    assert.equal(p.shouldPromote(candidate({ key: 'b', ownerMinuteQps: 60, hot: view(false, 10) })), 12);
  });

  it("counts this process's own fetches of a key", () => {
    const p = rateBasedPromotion({ margin: 1 });
    const decisions: (boolean | number)[] = [];
    // 1 fetch a second of a key the owner reports nothing for; the coldest hot entry is at 30/min
    for (let t = 0; t <= 60_000; t += 1000) {
      decisions.push(p.shouldPromote(candidate({ key: 'x', now: t, hot: view(false, 30) })));
      if (decisions.at(-1) !== false) break;
    }
    assert.deepEqual(decisions, [false, 60], 'one fetch says nothing; two a second apart read as 60/min');
  });

  it('recognises a newly popular key from its fetches over its age, not a counter still warming up', () => {
    const p = rateBasedPromotion({ margin: 1 });
    const c = (now: number) => candidate({ key: 'new', now, hot: view(false, 100) });
    assert.equal(p.shouldPromote(c(0)), false);
    // a decayed counter would read ~6/min here; 1 more fetch in 0.2 s is 300/min
    assert.equal(p.shouldPromote(c(200)), 300);
  });

  it('a key first seen longer than RATE_WINDOW_MS ago is judged by its decayed counter alone', () => {
    // 10 fetches in the first second, then one more: its average over its age would still promote it
    // against a coldest entry of 15/min (~32/min at 19 s, ~26/min at 25 s); the decayed counter (~10.5)
    // takes over once the key is older than RATE_WINDOW_MS (20 s).
    const burst = (p: ReturnType<typeof rateBasedPromotion>) => {
      for (let i = 0; i < 10; i++)
        p.shouldPromote(candidate({ key: 'old', now: i * 100, hot: view(false, 1e9) }));
    };
    const young = rateBasedPromotion({ margin: 1 });
    burst(young);
    assert.ok(young.shouldPromote(candidate({ key: 'old', now: 19_000, hot: view(false, 15) })) !== false);
    const old = rateBasedPromotion({ margin: 1 });
    burst(old);
    assert.equal(old.shouldPromote(candidate({ key: 'old', now: 25_000, hot: view(false, 15) })), false);
  });

  it('tracks a bounded number of keys (LRU): a key pushed out starts from zero again', () => {
    const p = rateBasedPromotion({ maxTrackedKeys: 2, margin: 1 });
    const perFetch = 60_000 / RATE_WINDOW_MS; // each fetch "now" adds one request per window
    // the coldest hot entry sits between 2 and 3 fetches' worth
    const c = (key: string) => candidate({ key, now: 0, hot: view(false, 2.5 * perFetch) });
    assert.equal(p.shouldPromote(c('a')), false); // a: 1
    assert.equal(p.shouldPromote(c('a')), false); // a: 2
    p.shouldPromote(c('b'));
    p.shouldPromote(c('c')); // pushes a out
    assert.equal(p.shouldPromote(c('a')), false, 'a was forgotten: 1 again');
    assert.equal(p.shouldPromote(c('a')), false);
    assert.equal(p.shouldPromote(c('a')), 3 * perFetch);
    assert.throws(() => rateBasedPromotion({ maxTrackedKeys: 0 }), /maxTrackedKeys/);
  });

  it('displaces the coldest entry only when `margin` times hotter (default 1.5)', () => {
    const p = rateBasedPromotion();
    assert.equal(p.shouldPromote(candidate({ key: 'a', ownerMinuteQps: 70, hot: view(false, 10) })), false);
    assert.equal(p.shouldPromote(candidate({ key: 'b', ownerMinuteQps: 80, hot: view(false, 10) })), 16);
    assert.equal(rateBasedPromotion({ margin: 4 }).shouldPromote(candidate({ ownerMinuteQps: 105 })), false);
    assert.throws(() => rateBasedPromotion({ margin: 0.5 }), /margin must be >= 1/);
  });

  it('honours minMinuteQps even when there is room', () => {
    const p = rateBasedPromotion({ minMinuteQps: 5 });
    assert.equal(p.shouldPromote(candidate({ hot: view(true, undefined), ownerMinuteQps: 10 })), false);
    assert.equal(
      p.shouldPromote(candidate({ key: 'z', hot: view(true, undefined), ownerMinuteQps: 50 })),
      10,
    );
  });
});

describe('randomPromotion', () => {
  it('mirrors about 1 in n', () => {
    let seed = 1;
    const rnd = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const p = randomPromotion(10, rnd);
    let yes = 0;
    for (let i = 0; i < 10_000; i++) if (p.shouldPromote(candidate({})) !== false) yes++;
    near(yes, 1000, 120);
  });
});

describe('owners report minuteQps', () => {
  it('getEntry returns the per-key rate kept in the cache entry', async () => {
    const clock = fakeClock();
    const g = new Group({
      name: 'qps',
      cacheBytes: 1 << 20,
      registry: new GroupRegistry(),
      now: clock.now,
      getter: async () => 'v',
    });
    for (let i = 0; i < 600; i++) {
      await g.server.getEntry('hot', { local: true });
      if (i % 10 === 0) await g.server.getEntry('cold', { local: true });
      clock.advance(100); // 10 requests a second = 600 a minute for 'hot', 60 for 'cold'
    }
    const hot = (await g.server.getEntry('hot', { local: true })).minuteQps;
    const cold = (await g.server.getEntry('cold', { local: true })).minuteQps;
    // one minute of a 600/min (60/min) stream, starting from 0
    const warm = 1 - Math.exp(-60_000 / RATE_WINDOW_MS);
    near(hot, 600 * warm, 30);
    near(cold, 60 * warm, 8);
  });
});
