import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ByteCache, Entry, entryBytes } from '../../src/cache.js';
import { Group, GroupRegistry, InvalidKeyError } from '../../src/index.js';
import { type KeyBytes, KeyIndex, NONE } from '../../src/keyindex.js';
import { SLAB_MAX_VALUE, SlabStore } from '../../src/slab.js';
import { gc } from '../support/gc.js';

/** Keys held in a Map by id: the index alone, without a store. */
function fakeKeys(): KeyBytes & { byId: Map<number, string> } {
  const byId = new Map<number, string>();
  return { byId, keyEquals: (id, key) => byId.get(id) === key, keyOf: (id) => byId.get(id)! };
}

/** An index of one list holding items 0..n-1 (keys `key-<id>`), inserted in order. */
function listOf(n: number): KeyIndex {
  const keys = fakeKeys();
  const index = new KeyIndex(keys, 1);
  for (let id = 0; id < n; id++) {
    keys.byId.set(id, `key-${id}`);
    index.insert(0, id, index.hash(`key-${id}`));
  }
  return index;
}

const entry = (v: string) => new Entry(Buffer.from(v), 0, 0, 0);

/** Ids of `list` from most to least recently used. */
function order(index: KeyIndex, list: number): number[] {
  const ids: number[] = [];
  for (let id = index.newest(list); id !== NONE; id = index.older(id)) ids.push(id);
  return ids;
}

describe('KeyIndex', () => {
  it('finds keys per list, keeps recency per list, removes from the middle of chains and lists', () => {
    const keys = fakeKeys();
    const index = new KeyIndex(keys, 2);
    for (let id = 0; id < 2000; id++) {
      const key = `key-${id}`;
      keys.byId.set(id, key);
      index.insert(id % 2, id, index.hash(key));
    }
    assert.equal(index.size(0), 1000);
    assert.equal(index.size(1), 1000);
    assert.equal(index.find(0, 'key-10'), 10);
    assert.equal(index.find(1, 'key-10'), NONE, 'a key is found only in its own list');
    assert.equal(index.find(1, 'key-11'), 11);
    assert.equal(index.oldest(0), 0);
    index.touch(0, 0);
    assert.equal(index.newest(0), 0);
    assert.equal(index.oldest(0), 2);
    for (let id = 0; id < 2000; id += 3) index.remove(id % 2, id);
    for (let id = 0; id < 2000; id++) {
      assert.equal(index.find(id % 2, `key-${id}`), id % 3 === 0 ? NONE : id);
    }
    const ids = order(index, 1);
    assert.equal(ids.length, index.size(1));
    assert.ok(
      ids.every((id, i) => i === 0 || id < ids[i - 1]),
      'newest first: inserted later',
    );
  });

  it('an eviction gives at most 1024 read items their second chance (bounded work), then takes the next', () => {
    const index = listOf(3000);
    for (let id = 0; id < 3000; id++) index.mark(id);
    assert.equal(index.victim(0), 1024, 'the 1025th oldest, read or not');
    assert.equal(index.newest(0), 1023, 'the 1024 before it went to the newest end');
    assert.equal(index.oldest(0), 1024);
    // unmarked now: the next eviction takes the oldest of them once it reaches them
    for (let id = 1024; id < 3000; id++) index.remove(0, id);
    assert.equal(index.victim(0), 0);
  });

  it('the item placed last is passed over even when 1024 read items came before it', () => {
    const index = listOf(1025);
    for (let id = 0; id < 1024; id++) index.mark(id);
    // The 1024 second chances put the newest item at the tail: the eviction making room for it must not
    // take it.
    assert.equal(index.victim(0), 0);
  });

  it('a put into a cache of 1024 read items keeps the new item', () => {
    const c = new ByteCache(1024 * 8, () => 0);
    const key = (i: number) => `k${String(i).padStart(4, '0')}`;
    for (let i = 0; i < 1024; i++) assert.ok(c.set(key(i), entry('abc'), 8));
    for (let i = 0; i < 1024; i++) assert.ok(c.getId(key(i)) >= 0);
    assert.ok(c.set(key(1024), entry('abc'), 8));
    assert.ok(c.getId(key(1024)) >= 0, 'set said cached, and the new item is gone');
    assert.equal(c.items, 1024);
  });

  it('keys that collide on purpose make it pick a new seed, and every key is still found', () => {
    const seed = 12345;
    const probe = new KeyIndex(fakeKeys(), 1, seed);
    // 40 keys whose hashes share their low 12 bits under this seed: one chain, whatever the table size
    const colliding: string[] = [];
    const want = probe.hash('x0') & 4095;
    for (let i = 1; colliding.length < 40; i++)
      if ((probe.hash(`x${i}`) & 4095) === want) colliding.push(`x${i}`);
    const keys = fakeKeys();
    const index = new KeyIndex(keys, 1, seed);
    colliding.forEach((key, id) => {
      keys.byId.set(id, key);
      index.insert(0, id, index.hash(key));
    });
    assert.equal(index.reseeds, 1);
    assert.ok(index.longestChain(0) < 8, `longest chain after the re-seed: ${index.longestChain(0)}`);
    for (const [id, key] of colliding.entries()) assert.equal(index.find(0, key), id);
    assert.deepEqual(order(index, 0), [...colliding.keys()].reverse(), 'recency kept across the re-seed');
  });
});

describe('KeyIndex sizes', () => {
  it('gives the buckets of a spike back as items leave, and finds the rest', () => {
    const keys = fakeKeys();
    const index = new KeyIndex(keys, 2);
    const n = 100_000;
    for (let id = 0; id < n; id++) {
      keys.byId.set(id, `k${id}`);
      index.insert(0, id, index.hash(`k${id}`));
    }
    assert.ok(index.bucketCount(0) >= n, `${index.bucketCount(0)} buckets for ${n} items`);
    assert.equal(index.bucketCount(1), 16, 'the other list is untouched');
    for (let id = 0; id < n - 10; id++) index.remove(0, id);
    assert.ok(index.bucketCount(0) <= 64, `${index.bucketCount(0)} buckets left for 10 items`);
    for (let id = n - 10; id < n; id++) assert.equal(index.find(0, `k${id}`), id);
    assert.equal(index.find(0, 'k0'), NONE);
    assert.deepEqual(
      order(index, 0),
      Array.from({ length: 10 }, (_, i) => n - 1 - i),
    );
    // and grows again
    for (let id = 0; id < 1000; id++) index.insert(0, id, index.hash(`k${id}`));
    assert.ok(index.bucketCount(0) >= 1010 && index.bucketCount(0) <= 4096);
    for (let id = 0; id < 1000; id++) assert.equal(index.find(0, `k${id}`), id);
  });

  it('re-seeds at most once per as many inserts as it holds, even when keys collide under every seed it picks', () => {
    const keys = fakeKeys();
    const index = new KeyIndex(keys, 1, 12345);
    const seedOf = () => (index as unknown as { seed: number }).seed;
    /** `n` new keys whose hashes share their low 16 bits under the index's current seed. */
    let next = 0;
    const colliding = (n: number): string[] => {
      const probe = new KeyIndex(fakeKeys(), 1, seedOf());
      const want = probe.hash(`c${next++}`) & 0xffff;
      const out: string[] = [];
      while (out.length < n) {
        const k = `c${next++}`;
        if ((probe.hash(k) & 0xffff) === want) out.push(k);
      }
      return out;
    };
    let id = 0;
    const insert = (k: string) => {
      keys.byId.set(id, k);
      index.insert(0, id++, index.hash(k));
    };
    // an attacker who knew every seed: 34 colliding keys among 500 make a chain over 32, the first re-seed
    for (let i = 0; i < 500; i++) insert(`plain${i}`);
    for (const k of colliding(34)) insert(k);
    assert.equal(index.reseeds, 1);
    // the next burst collides under the new seed: no re-seed until as many inserts as the index held
    const held = index.size(0);
    let inserts = 0;
    while (index.reseeds === 1) {
      for (const k of colliding(40)) {
        insert(k);
        inserts++;
        if (index.reseeds > 1) break;
      }
    }
    assert.ok(inserts >= held, `re-seeded again after ${inserts} inserts, holding ${held}`);
    for (const [i, k] of keys.byId) assert.equal(index.find(0, k), i);
  });
});

describe('keys as bytes in the store', () => {
  const store = (): SlabStore => {
    const s: SlabStore = new SlabStore({ limitBytes: 8 << 20, reclaim: (id) => s.free(id) });
    return s;
  };

  it('compares a key with its UTF-8 bytes: never equal to another string with the same bytes read as Latin-1', () => {
    const s = store();
    const id = s.put('é', Buffer.from('v'), 0);
    assert.equal(s.keyLength(id), 2);
    assert.ok(s.keyEquals(id, 'é'));
    assert.ok(!s.keyEquals(id, '\u00c3\u00a9'), 'the two bytes of é as Latin-1 characters');
    assert.ok(!s.keyEquals(id, 'e'));
    const latin = s.put('\u00c3\u00a9', Buffer.from('w'), 0);
    assert.ok(s.keyEquals(latin, '\u00c3\u00a9'));
    assert.ok(!s.keyEquals(latin, 'é'));
    assert.equal(s.keyOf(latin), '\u00c3\u00a9');
  });

  it('a key with a lone surrogate equals no stored key, and a ByteCache does not cache it', () => {
    // "\uD800" has no UTF-8 form: written as U+FFFD's bytes, it would match a stored "\uFFFD" after a
    // full hash match, and a stored "\uD800" would read back (and re-hash, on a re-seed) as "\uFFFD"
    const s = store();
    const id = s.put('a\uFFFD', Buffer.from('v'), 0);
    assert.ok(s.keyEquals(id, 'a\uFFFD'));
    for (const lone of ['a\uD800', 'a\uDFFF', 'a\uDBFF']) assert.ok(!s.keyEquals(id, lone), lone);
    const c = new ByteCache(1000, () => 0);
    assert.equal(c.set('a\uD800', entry('lone'), entryBytes('a\uD800', Buffer.from('lone'))), false);
    assert.equal(c.items, 0);
    assert.equal(c.bytes, 0);
    assert.equal(c.store.stats().items, 0, 'nothing left in the store');
    assert.ok(c.set('a\uFFFD', entry('ok'), entryBytes('a\uFFFD', Buffer.from('ok'))));
    assert.equal(c.get('a\uD800'), undefined);
    assert.equal(c.get('a\uFFFD')?.value.toString(), 'ok');
    assert.ok(
      c.set('😀', entry('astral'), entryBytes('😀', Buffer.from('astral'))),
      'a surrogate pair is fine',
    );
  });

  it('holds empty, astral and long keys (over SLAB_MAX_VALUE: a Buffer of their own)', () => {
    const s = store();
    const long = 'k'.repeat(SLAB_MAX_VALUE * 3) + '😀';
    for (const key of ['', '😀 emoji', long, 'ascii']) {
      const id = s.put(key, Buffer.from(`value of ${key.length}`), 0);
      assert.ok(id >= 0);
      assert.equal(s.keyOf(id), key);
      assert.ok(s.keyEquals(id, key));
      assert.ok(!s.keyEquals(id, `${key}x`));
      assert.ok(!s.keyEquals(id, key.slice(0, -1) || 'z'));
    }
    assert.ok(s.stats().ownBytes >= Buffer.byteLength(long), 'the long key counts as held bytes');
  });

  it('property: a ByteCache behaves like a CLOCK map of strings (any keys, evictions, deletes, re-sets)', () => {
    const keyArb = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.string({ unit: 'binary', maxLength: 4 }),
      fc.constantFrom('é', '\u00c3\u00a9', 'a'.repeat(1500), 'a'.repeat(1501)),
    );
    const op = fc.oneof(
      fc.record({ set: keyArb, value: fc.string({ maxLength: 40 }) }),
      fc.record({ get: keyArb }),
      fc.record({ del: keyArb }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const maxBytes = 4000;
        const c = new ByteCache(maxBytes, () => 0);
        // The model: a Map in list order (oldest first) with each entry's charged bytes and mark. A get
        // marks; a set places at the newest end, unmarked; eviction takes the oldest unmarked entry other
        // than the one placed last, moving marked ones to the newest end, unmarked, on the way.
        const model = new Map<string, { v: string; bytes: number; marked: boolean }>();
        let placed: string | undefined;
        const total = () => [...model.values()].reduce((a, x) => a + x.bytes, 0);
        for (const o of ops) {
          if ('set' in o) {
            const e = entry(o.value);
            const bytes = entryBytes(o.set, e.value);
            const stored = c.set(o.set, e, bytes);
            model.delete(o.set);
            if (stored) {
              model.set(o.set, { v: o.value, bytes, marked: false });
              placed = o.set;
              while (total() > maxBytes) {
                for (;;) {
                  const [k, x] = model.entries().next().value as [
                    string,
                    { v: string; bytes: number; marked: boolean },
                  ];
                  if (!x.marked && (k !== placed || model.size === 1)) break;
                  model.delete(k);
                  model.set(k, { ...x, marked: false });
                }
                model.delete(model.keys().next().value as string);
              }
            }
          } else if ('get' in o) {
            const got = c.get(o.get);
            const want = model.get(o.get);
            assert.equal(got?.value.toString(), want?.v);
            if (want !== undefined) want.marked = true;
          } else {
            assert.equal(c.delete(o.del), model.delete(o.del));
          }
          assert.equal(c.items, model.size);
          assert.equal(c.bytes, total());
        }
        assert.deepEqual(
          [...c.ids()].map(([k]) => k),
          [...model.keys()].reverse(),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('hostile keys through a Group', () => {
  it('refuses empty, lone-surrogate and over-limit keys on every entry point; caches the rest apart', async () => {
    const loads: string[] = [];
    const g = new Group({
      name: 'hostile',
      cacheBytes: 1 << 20,
      registry: new GroupRegistry(),
      getter: async (key) => {
        loads.push(key);
        return Buffer.from(`v:${key.length}:${key.slice(-2)}`);
      },
    });
    const bad = ['', '\uD800', 'a\uDFFF', '\uDBFFb', 'x'.repeat(65_537), 'é'.repeat(32_769)];
    for (const key of bad) {
      await assert.rejects(g.get(key), InvalidKeyError);
      assert.throws(() => g.server.getCached(key), InvalidKeyError);
      assert.throws(() => g.server.setLocal(key, 'v'), InvalidKeyError);
      assert.throws(() => g.server.removeLocal(key), InvalidKeyError);
      assert.equal(g.server.acceptHandoff([{ key, value: Buffer.from('v') }]), 0);
    }
    assert.equal(g.memoryStats().items, 0, 'nothing of them reached the store');
    assert.deepEqual(loads, []);
    // keys that differ only beyond ASCII (NFC vs NFD é, é vs its Latin-1 misreading), 1 unit, the slab
    // limit and one over it (a key Buffer of its own), and the default maximum of 64 KiB
    const good = [
      'é',
      'e\u0301',
      '\u00c3\u00a9',
      'a',
      '\uFFFD',
      'k'.repeat(1024),
      'k'.repeat(1025),
      `${'é'.repeat(512)}`,
      `${'é'.repeat(512)}a`,
      'x'.repeat(65_536),
      `${'😀'.repeat(16_383)}abcd`,
    ];
    for (const key of good) assert.equal((await g.get(key)).toString(), `v:${key.length}:${key.slice(-2)}`);
    for (const key of good) {
      assert.equal(g.server.getCached(key)?.toString(), `v:${key.length}:${key.slice(-2)}`, key.slice(0, 4));
    }
    assert.equal(loads.length, good.length, 'each loaded once, then a hit');
    assert.equal(g.cacheStats('main').items, good.length);
    assert.equal(g.memoryStats().indexReseeds, 0, 'ordinary keys never make the index re-seed');
    assert.equal(
      g.cacheStats('main').bytes,
      good.reduce((n, k) => n + Buffer.byteLength(k) + Buffer.byteLength(`v:${k.length}:${k.slice(-2)}`), 0),
    );
    g.close();
  });
});

describe("findHit's memo of key strings", () => {
  /** A store and an index over it with the memo always on (ids are reused by the store's free list). */
  function space() {
    const store: SlabStore = new SlabStore({ limitBytes: 8 << 20, reclaim: (id) => store.free(id) });
    const index = new KeyIndex(store, 2, undefined, { always: true });
    const put = (list: number, key: string): number => {
      const id = store.put(key, Buffer.from(`v:${key}`), list);
      index.insert(list, id, index.hash(key));
      return id;
    };
    const drop = (list: number, id: number): void => {
      index.remove(list, id);
      store.free(id);
    };
    return { store, index, put, drop };
  }

  it('never returns an item for a key after its id was reused for another key', () => {
    const { store, index, put, drop } = space();
    const a = put(0, 'alpha');
    assert.equal(index.findHit(0, 'alpha'), a);
    assert.equal(index.findHit(0, 'alpha'), a, 'remembered');
    drop(0, a);
    const b = put(0, 'beta');
    assert.equal(b, a, 'the store reuses the freed id');
    assert.equal(index.findHit(0, 'alpha'), NONE);
    assert.equal(index.findHit(0, 'beta'), b);
    drop(0, b);
    const c = put(1, 'alpha');
    assert.equal(c, a, 'reused again, by the same key in the other list');
    assert.equal(index.findHit(0, 'alpha'), NONE, 'not in list 0 any more');
    assert.equal(index.findHit(1, 'alpha'), c);
    assert.equal(store.keyOf(index.findHit(1, 'alpha')), 'alpha');
  });

  it('keeps no key string longer than 128 code units (what it keeps alive is bounded)', () => {
    const { index, put } = space();
    const long = 'k'.repeat(129);
    const id = put(0, long);
    const short = put(0, 'k'.repeat(128));
    for (let i = 0; i < 3; i++) assert.equal(index.findHit(0, long), id);
    assert.equal(index.memoKeys, 0);
    assert.equal(index.findHit(0, 'k'.repeat(128)), short);
    assert.equal(index.memoKeys, 1);
  });

  it('keeps no larger string alive through a key sliced out of it (a request body, say)', () => {
    const { index, put } = space();
    const n = 200;
    const name = (i: number) => `request-key-${String(i).padStart(8, '0')}`;
    for (let i = 0; i < n; i++) put(0, name(i));
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i++) {
      // V8 makes a slice of 13 or more characters a view into the string it was cut from
      const body = `{"pad":"${'x'.repeat(256 << 10)}${i}","key":"${name(i)}"}`;
      const at = body.indexOf('request-key-');
      assert.ok(index.findHit(0, body.slice(at, at + 20)) !== NONE);
    }
    assert.equal(index.memoKeys, n, 'the memo took them in');
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // 200 bodies of 256 KiB are 50 MiB; the keys themselves a few KiB
    assert.ok(grown < 8 << 20, `the heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });

  it('forgets the oldest key strings past its slots, and keeps finding every key', () => {
    const { index, put } = space();
    const keys = Array.from({ length: 20_000 }, (_, i) => `k${i}`);
    const ids = keys.map((k) => put(0, k));
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < keys.length; i++) assert.equal(index.findHit(0, keys[i]), ids[i]);
    }
    index.clear(0);
    assert.equal(index.findHit(0, keys[19_999]), NONE, 'cleared with its list');
  });

  it('property: findHit answers what find answers (inserts, removes, id reuse, two lists, clears)', () => {
    const names = ['a', 'b', 'c', 'é', 'user:1:profile', 'user:2:profile', 'x'.repeat(1100)];
    const op = fc.oneof(
      fc.record({ put: fc.integer({ min: 0, max: names.length - 1 }), list: fc.integer({ min: 0, max: 1 }) }),
      fc.record({
        drop: fc.integer({ min: 0, max: names.length - 1 }),
        list: fc.integer({ min: 0, max: 1 }),
      }),
      fc.record({
        find: fc.integer({ min: 0, max: names.length - 1 }),
        list: fc.integer({ min: 0, max: 1 }),
        // a new string with the same characters, as a request's key would be
        fresh: fc.boolean(),
      }),
      fc.record({ clear: fc.integer({ min: 0, max: 1 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200, size: 'max' }), (ops) => {
        const { store, index, put, drop } = space();
        const model = [new Map<string, number>(), new Map<string, number>()];
        for (const o of ops) {
          if ('put' in o) {
            const key = names[o.put];
            const old = model[o.list].get(key);
            if (old !== undefined) drop(o.list, old);
            model[o.list].set(key, put(o.list, key));
          } else if ('drop' in o) {
            const key = names[o.drop];
            const id = model[o.list].get(key);
            if (id !== undefined) drop(o.list, id);
            model[o.list].delete(key);
          } else if ('find' in o) {
            const name = names[o.find];
            const key = o.fresh ? [...name].join('') : name;
            const want = model[o.list].get(name) ?? NONE;
            assert.equal(index.findHit(o.list, key), want);
            assert.equal(index.find(o.list, key), want);
          } else {
            for (const id of model[o.clear].values()) store.free(id);
            model[o.clear].clear();
            index.clear(o.clear);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('turns itself on for a loop over a few key strings, off when they are more than it holds', () => {
    const keys = fakeKeys();
    const index = new KeyIndex(keys, 1);
    const n = 40_000;
    const names = Array.from({ length: n }, (_, id) => {
      const key = `key-${id}`;
      keys.byId.set(id, key);
      index.insert(0, id, index.hash(key));
      return key;
    });
    assert.equal(index.memoActive, false);
    // 100 keys: every lookup through the memo hits once it has seen them (one lookup in 64 goes through it)
    let on = false;
    for (let i = 0; i < 200_000; i++) {
      assert.equal(index.findHit(0, names[i % 100]), i % 100);
      on ||= index.memoActive;
    }
    assert.ok(on, 'went on');
    // 40,000 keys in turn: more than it remembers, so it misses
    for (let i = 0; i < 2 * n; i++) assert.equal(index.findHit(0, names[i % n]), i % n);
    assert.equal(index.memoActive, false);
  });

  it('goes on soon for a loop over 10,000 key strings (it fills as it goes, once a quarter of its probes hit)', () => {
    const keys = fakeKeys();
    // a clock that stands still: no window is faster than another, the timed control never turns it off
    const index = new KeyIndex(keys, 1, undefined, { clock: () => 0 });
    const n = 10_000;
    const names = Array.from({ length: n }, (_, id) => {
      const key = `user:${id}:profile`;
      keys.byId.set(id, key);
      index.insert(0, id, index.hash(key));
      return key;
    });
    let seed = 42;
    let lookups = 0;
    while (!index.memoActive && lookups < 2_000_000) {
      seed = (seed * 48271) % 2147483647;
      assert.equal(index.findHit(0, names[seed % n]), seed % n);
      lookups++;
    }
    assert.ok(lookups < 600_000, `on after ${lookups} lookups`);
    // and it stays on as it fills (but for its control windows, 3 in 32), then every lookup hits
    let on = 0;
    for (let i = 0; i < 200_000; i++) {
      seed = (seed * 48271) % 2147483647;
      assert.equal(index.findHit(0, names[seed % n]), seed % n);
      if (index.memoActive) on++;
    }
    assert.ok(on > 0.85 * 200_000, `on for ${on} of 200,000 lookups`);
    assert.equal(index.memoKeys, n);
  });

  it('goes off for a while when lookups without it were faster', () => {
    const keys = fakeKeys();
    let now = 0;
    let lookup = 0;
    let usingMemo = true;
    // A clock that says a window of lookups through the memo takes twice as long as one without it.
    const index = new KeyIndex(keys, 1, undefined, { clock: () => now });
    keys.byId.set(0, 'k');
    index.insert(0, 0, index.hash('k'));
    const step = () => {
      usingMemo = index.memoActive;
      assert.equal(index.findHit(0, 'k'), 0);
      now += usingMemo ? 2 : 1;
      lookup++;
    };
    while (!index.memoActive && lookup < 10_000_000) step();
    assert.ok(index.memoActive, 'on: every lookup hits');
    const wentOn = lookup;
    // a round: 29 windows of 1024 lookups through the memo, 3 without (the control)
    while (lookup - wentOn < 32 * 1024) step();
    const wentOff = lookup;
    while (!index.memoActive && lookup - wentOff < 64 * 64 * 1024 * 2) step();
    assert.ok(lookup - wentOff >= 64 * 64 * 1024, `stayed off for its backoff (${lookup - wentOff} lookups)`);
  });
  it('makes its rounds longer after clear wins, and still goes off within one when it starts losing', () => {
    const keys = fakeKeys();
    let now = 0;
    let memoCost = 1;
    let plainCost = 2;
    const index = new KeyIndex(keys, 1, undefined, { clock: () => now });
    keys.byId.set(0, 'k');
    index.insert(0, 0, index.hash('k'));
    const step = () => {
      const usingMemo = index.memoActive;
      assert.equal(index.findHit(0, 'k'), 0);
      now += usingMemo ? memoCost : plainCost;
      return usingMemo;
    };
    let lookups = 0;
    while (!index.memoActive && lookups++ < 10_000_000) step();
    // the memo twice as fast: rounds double up to 512 windows, control windows (3 a round) become rare
    let without = 0;
    for (let i = 0; i < 4_000_000; i++) if (!step()) without++;
    assert.ok(without < 0.02 * 4_000_000, `${without} of 4M lookups without the memo (fixed rounds: ~9 %)`);
    // now the memo is the slower: off within the round under way (at most 512 windows of 1024)
    memoCost = 3;
    plainCost = 1;
    let n = 0;
    while (index.memoActive || n < 3 * 1024) {
      step();
      if (++n > 520 * 1024) break;
    }
    assert.ok(n <= 520 * 1024, `still on after ${n} lookups`);
  });
});

describe("findHit's memo through a Group", () => {
  it('with the memo on, evicted, removed and replaced keys never answer with another key’s value', async () => {
    let version = 0;
    const g = new Group({
      name: 'memo',
      // room for ~150 of these items (key + value ~24 bytes): loading more evicts the oldest, whose ids
      // the new ones reuse
      cacheBytes: 150 * 24,
      registry: new GroupRegistry(),
      getter: async (key) => Buffer.from(`${key}=${version}`),
    });
    const index = (g as unknown as { index: KeyIndex }).index;
    const keys = Array.from({ length: 100 }, (_, i) => `memo-key-${i}`);
    for (const k of keys) await g.get(k);
    // the same 100 key strings again and again: the memo goes on
    let on = false;
    for (let i = 0; i < 200_000 && !on; i++) {
      assert.equal(g.server.getCached(keys[i % 100])?.toString(), `${keys[i % 100]}=0`);
      on = index.memoActive;
    }
    assert.ok(on, 'the memo went on');
    // evict them all with other keys (their ids go to the new keys), then read the old strings again
    for (let i = 0; i < 400; i++) await g.get(`other-${i}`);
    assert.ok(g.cacheStats('main').evictions >= 300);
    for (const k of keys) assert.equal(g.server.getCached(k), undefined, k);
    for (let i = 300; i < 400; i++)
      assert.equal(g.server.getCached(`other-${i}`)?.toString(), `other-${i}=0`);
    // and back: half the old strings are loaded again (into ids the others had), read through the memo.
    // Half: the others just read are kept over them when room is needed (a second chance, KeyIndex.victim),
    // so of 100 loaded now only what the 50 unread others leave room for would stay.
    const back = keys.slice(0, 50);
    for (const k of back) await g.get(k);
    for (let i = 0; i < 5000; i++)
      assert.equal(g.server.getCached(back[i % 50])?.toString(), `${back[i % 50]}=0`);
    // removed and set again with a new value: the memo answers the new item
    version = 1;
    for (const k of keys.slice(0, 10)) {
      g.server.removeLocal(k);
      assert.equal(g.server.getCached(k), undefined);
      assert.equal((await g.get(k)).toString(), `${k}=1`);
      assert.equal(g.server.getCached(k)?.toString(), `${k}=1`);
    }
    g.close();
  });
});
