import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteCache, Entry, enforceBudget, entryBytes } from '../../src/cache.js';
import { Group, GroupRegistry, type Peer } from '../../src/index.js';
import { collect } from '../support/gc.js';
import { fakeClock } from '../support/in-process-cluster.js';
import { sleep } from '../support/wait.js';

const entry = (v: string, expiresAt = 0, now = 0) => new Entry(Buffer.from(v), expiresAt, now, 0);

describe('ByteCache', () => {
  it('charges key bytes (UTF-8) + value bytes', () => {
    const c = new ByteCache(1000, () => 0);
    const e = entry('12345');
    c.set('é', e, entryBytes('é', e.value));
    assert.equal(c.bytes, 2 + 5);
    assert.equal(c.items, 1);
  });

  it('evicts least recently used entries past its own ceiling and counts them', () => {
    const c = new ByteCache(30, () => 0);
    for (const k of ['a', 'b', 'c']) c.set(k, entry('x'.repeat(9)), 10);
    assert.ok(c.get('a'));
    c.set('d', entry('x'.repeat(9)), 10);
    assert.equal(c.get('b'), undefined, 'b was least recently used');
    assert.ok(c.get('a'));
    assert.equal(c.evictions, 1);
    assert.equal(c.bytes, 30);
  });

  it('a read item outlives unread ones on eviction, older and newer alike, until a round passes without reads', () => {
    // room for 10 items of 10 bytes
    const c = new ByteCache(100, () => 0);
    for (let i = 0; i < 10; i++) c.set(`k${i}`, entry('x'.repeat(8)), 10);
    assert.ok(c.get('k0'), 'the oldest, read');
    assert.ok(c.get('k5'), 'one in the middle, read');
    // 8 new items: the 8 unread ones go, oldest first; the two read ones stay
    for (let i = 10; i < 18; i++) c.set(`k${i}`, entry('x'.repeat(8)), 10);
    assert.deepEqual(
      [...c.ids()].map(([k]) => k).sort(),
      ['k0', 'k5', ...Array.from({ length: 8 }, (_, i) => `k${i + 10}`)].sort(),
    );
    assert.equal(c.evictions, 8);
    // Not read again, they take their turn where their second chance put them: k0 went back behind k10
    // (placed just before), k5 behind k14
    c.set('k18', entry('x'.repeat(8)), 10);
    assert.ok(!c.has('k10') && c.has('k0'));
    c.set('k19', entry('x'.repeat(8)), 10);
    assert.ok(!c.has('k0') && c.has('k11') && c.has('k5'));
    assert.equal(c.items, 10);
  });

  it('when every older item was read, the one just placed is not evicted for its own room', () => {
    const c = new ByteCache(100, () => 0);
    for (let i = 0; i < 10; i++) c.set(`k${i}`, entry('x'.repeat(8)), 10);
    for (let i = 0; i < 10; i++) assert.ok(c.get(`k${i}`));
    c.set('new', entry('x'.repeat(8)), 10);
    assert.ok(c.get('new'), 'the new item stays');
    // the oldest of the read ones went (after a second chance for all of them)
    assert.equal(c.get('k0'), undefined);
    assert.equal(c.items, 10);
  });

  it('hottest finds a hot key wherever it sits in the order (hits are sampled), not only among the newest', () => {
    const c = new ByteCache(1 << 30, () => 0);
    c.set('hot', entry('v'), 4);
    for (let i = 0; i < 20_000; i++) c.set(`cold-${i}`, entry('v'), 10);
    for (let i = 0; i < 5_000; i++) assert.ok(c.get('hot'));
    for (let i = 0; i < 300; i++) assert.ok(c.get(`cold-${i * 7}`));
    // A read does not move the item: 'hot' is still the oldest, 20k items behind the newest 1,000 scanned
    assert.equal([...c.ids()].at(-1)?.[0], 'hot');
    const top = c.hottest(3, 1000, 0);
    assert.equal(top[0]?.key, 'hot');
    assert.ok(top[0].minuteQps > top[1].minuteQps * 100, 'by rate');
  });

  it('an expired entry reads as a miss and is dropped (not an eviction)', () => {
    let now = 100;
    const c = new ByteCache(100, () => now);
    c.set('k', entry('v', 150, now), 2);
    assert.ok(c.get('k'));
    now = 150;
    assert.equal(c.get('k'), undefined);
    assert.equal(c.items, 0);
    assert.equal(c.evictions, 0);
    assert.deepEqual(c.stats(), { bytes: 0, items: 0, gets: 2, hits: 1, evictions: 0 });
  });

  it('refuses an entry over its ceiling (and forgets an older value of that key)', () => {
    const c = new ByteCache(10, () => 0);
    c.set('k', entry('v'), 2);
    assert.equal(c.set('k', entry('x'.repeat(20)), 21), false);
    assert.equal(c.items, 0);
  });
});

describe('shared budget (groupcache rule)', () => {
  it('evicts from hot while hot > main/8, else from main', () => {
    const main = new ByteCache(1000, () => 0);
    const hot = new ByteCache(125, () => 0);
    for (let i = 0; i < 8; i++) main.set(`m${i}`, entry('x'.repeat(98)), 100);
    for (let i = 0; i < 3; i++) hot.set(`h${i}`, entry('x'.repeat(38)), 40);
    // 800 + 120 = 920 > 900: hot (120) > main/8 (100), so hot loses its oldest
    enforceBudget(main, hot, 900);
    assert.equal(hot.items, 2);
    assert.equal(main.items, 8);
    // 800 + 80 = 880 > 850: hot (80) <= 100, so main loses its oldest
    enforceBudget(main, hot, 850);
    assert.equal(main.items, 7);
    assert.equal(hot.items, 2);
  });

  it('property: main + hot bytes never exceed cacheBytes and hot never exceeds cacheBytes/8', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4000 }),
        fc.array(
          fc.record({
            node: fc.nat(2),
            key: fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }),
            size: fc.nat(600),
            remove: fc.boolean(),
            ttl: fc.option(fc.integer({ min: -5, max: 50 })),
            tick: fc.nat(20),
          }),
          { maxLength: 150 },
        ),
        async (cacheBytes, ops) => {
          const clock = fakeClock();
          const registry = new GroupRegistry();
          // node 0 owns keys that start with an even code unit; the others are fetched from "node 1",
          // an owner that answers anything and reports a high rate, so every fetch is a promotion candidate
          const owner: Peer = {
            id: 'owner',
            get: async (_g, key) => ({ value: Buffer.alloc((key.length * 7) % 300), minuteQps: 1e6 }),
          };
          const g = new Group({
            name: 'prop',
            cacheBytes,
            registry,
            now: clock.now,
            peers: { pickPeer: (k) => (k.charCodeAt(0) % 2 === 0 ? null : owner), peers: () => [owner] },
            getter: async (key) => {
              const op = ops.find((o) => o.key === key);
              const value = Buffer.alloc(op?.size ?? 1);
              return op?.ttl == null ? value : { value, ttlMs: op.ttl };
            },
          });
          for (const op of ops) {
            if (op.remove) g.server.removeLocal(op.key);
            else await g.get(op.key);
            clock.advance(op.tick);
            const main = g.cacheStats('main');
            const hot = g.cacheStats('hot');
            assert.ok(main.bytes + hot.bytes <= cacheBytes, `${main.bytes} + ${hot.bytes} > ${cacheBytes}`);
            assert.ok(hot.bytes <= Math.floor(cacheBytes / 8), `hot ${hot.bytes} > ${cacheBytes}/8`);
            assert.ok(main.bytes >= 0 && hot.bytes >= 0 && main.items >= 0);
          }
          g.close();
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('large values under a full budget', () => {
  it('a new value larger than the uncharged margin evicts the least recently used ones instead of being refused', async () => {
    const MiB = 1 << 20;
    const g = new Group({
      name: 'large',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) => Buffer.alloc(3 * MiB, key),
      // All of the budget, whatever glibc's threshold in this process (the reserve is tested on its own).
      heapHoleReserveBytes: 0,
    });
    for (let i = 0; i < 20; i++) {
      await g.get(`k${i}`);
      // the evicted values' memory counts until the collector frees it: let it run, as it would in time
      await collect();
      assert.ok(g.server.getCached(`k${i}`), `k${i}, just loaded, is cached`);
    }
    const main = g.cacheStats('main');
    assert.ok(main.items >= 4 && main.items <= 5, `${main.items} values of 3 MiB in 16 MiB`);
    assert.ok(main.evictions >= 15, `evicted ${main.evictions}`);
    assert.ok(g.server.getCached('k19') && !g.server.getCached('k0'), 'the oldest went first');
    g.close();
  });

  it('room for a large value among small ones costs a page or two of them, not the whole cache', () => {
    // Small values spread over the pages in no LRU order (reads of random keys): freeing a page by
    // evicting in LRU order empties one only when nearly every item is gone. Past a page's worth of
    // evicted chunks the store takes a page back instead (it evicted 99 % of the items before).
    const MiB = 1 << 20;
    const c = new ByteCache(4 * MiB, () => 0);
    const small = Buffer.alloc(100, 1);
    let n = 0;
    for (; n < 100_000; n++) c.set(`k${n}`, new Entry(small, 0, 0, 0), entryBytes(`k${n}`, small));
    let seed = 1;
    const random = () => ((seed = Math.imul(seed, 48271) % 0x7fffffff) & 0x7fffffff) / 0x7fffffff;
    for (let j = 0; j < 100_000; j++) c.getId(`k${Math.floor(random() * n)}`);
    const before = c.stats();
    assert.ok(c.store.stats().freePages === 0 || c.store.stats().freePages <= 1, 'pages are all in use');
    const big = Buffer.alloc(300 * 1024, 2);
    assert.ok(c.set('big', new Entry(big, 0, 0, 0), entryBytes('big', big)), 'cached');
    const evicted = c.stats().evictions - before.evictions;
    // its own budget alone evicts ~300 KiB / 106 B ≈ 2900 items; the store's limit a few pages more
    assert.ok(
      evicted < before.items / 4,
      `evicted ${evicted} of ${before.items} items for one 300 KiB value`,
    );
    assert.ok(c.store.stats().pagesReassigned > 0, 'it took pages back');
  });
});

describe('after a spike of small items', () => {
  it('the per-id arrays shrink once large values have pushed the small items out', async () => {
    const MiB = 1 << 20;
    let large = false;
    const g = new Group({
      name: 'spike',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) => (large ? Buffer.alloc(256 * 1024, key) : `v:${key}`),
    });
    for (let i = 0; i < 100_000; i++) await g.get(`s${i}`);
    const spike = g.memoryStats();
    assert.ok(spike.idCapacity >= 100_000, `${spike.idCapacity} ids after the spike`);
    large = true;
    for (let i = 0; i < 200; i++) {
      await g.get(`L${i}`);
      if (i % 20 === 0) await sleep(1); // let the store learn what the collector freed
    }
    const after = g.memoryStats();
    assert.ok(g.cacheStats('main').items < 100, 'the small items are gone');
    assert.ok(after.idCapacity <= 1024 * 4, `${after.idCapacity} ids left allocated`);
    // and the index still finds what is held, with the right values
    let held = 0;
    for (let i = 0; i < 200; i++) {
      const v = g.server.getCached(`L${i}`);
      if (v === undefined) continue;
      held++;
      assert.ok(v.equals(Buffer.alloc(256 * 1024, `L${i}`)), `L${i}`);
    }
    assert.equal(held, g.cacheStats('main').items);
    large = false;
    assert.equal(await g.getString('s5'), 'v:s5', 'a small key loads again');
    assert.equal(g.server.getCached('s5')?.toString(), 'v:s5');
    g.close();
  });
});
