import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CHUNK_SIZES, SLAB_MAX_VALUE, SlabStore } from '../../src/slab.js';
import { collect } from '../support/gc.js';

/** A store plus a model of what it should hold; reclaimed items leave the model. */
function harness(limitBytes: number, pageBytes?: number) {
  const model = new Map<number, Buffer>();
  /** The key each item was put under (kept by `put` below). */
  const keys = new Map<number, string>();
  const reclaimed: number[] = [];
  const store: SlabStore = new SlabStore({
    limitBytes,
    pageBytes,
    reclaim: (id) => {
      assert.ok(model.has(id), `reclaim(${id}) of an item not stored`);
      reclaimed.push(id);
      model.delete(id);
      store.free(id);
    },
  });
  const check = () => {
    const st = store.stats();
    assert.equal(st.items, model.size);
    assert.ok(st.heldBytes <= limitBytes, `held ${st.heldBytes} > limit ${limitBytes}`);
    let chunkBytes = 0;
    let ownBytes = 0;
    for (const [id, want] of model) {
      assert.ok(store.has(id));
      assert.equal(store.length(id), want.length);
      assert.ok(store.copy(id).equals(want), `item ${id} corrupted`);
      if (store.inSlab(id)) chunkBytes += SlabStore.storeOverhead(want.length) + want.length;
      else ownBytes += want.length;
      // its key, in a chunk of its own (every key here is short)
      const kn = store.keyLength(id);
      assert.equal(store.keyOf(id), keys.get(id), `key of item ${id} corrupted`);
      assert.ok(store.keyEquals(id, keys.get(id)!));
      chunkBytes += SlabStore.storeOverhead(kn) + kn;
    }
    assert.equal(st.chunkBytes, chunkBytes);
    assert.equal(st.ownBytes, ownBytes);
  };
  const put = store.put.bind(store);
  store.put = (key, value, tag, adopt, mayEvict) => {
    const id = put(key, value, tag, adopt, mayEvict);
    if (id >= 0) keys.set(id, key);
    return id;
  };
  return { store, model, reclaimed, check };
}

const bytes = (n: number, seed: number) => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
};

describe('SlabStore', () => {
  it('size classes grow by ~1.25, are 8-byte aligned, and the last holds SLAB_MAX_VALUE + header', () => {
    for (let i = 1; i < CHUNK_SIZES.length; i++) {
      assert.ok(CHUNK_SIZES[i] > CHUNK_SIZES[i - 1]);
      assert.equal(CHUNK_SIZES[i] % 8, 0);
      assert.ok(CHUNK_SIZES[i] <= Math.ceil(CHUNK_SIZES[i - 1] * 1.25) + 8 || i === CHUNK_SIZES.length - 1);
    }
    assert.equal(CHUNK_SIZES[CHUNK_SIZES.length - 1], SLAB_MAX_VALUE);
    // a 32-byte value takes a 32-byte chunk, a 33-byte one a 40-byte chunk
    assert.equal(SlabStore.storeOverhead(32), 0);
    assert.equal(SlabStore.storeOverhead(33), 7);
    assert.equal(SlabStore.storeOverhead(0), 8);
    assert.ok(SlabStore.storeOverhead(SLAB_MAX_VALUE + 1) > 300, 'own buffers cost their objects');
  });

  it('stores, reads back in every form, and frees', () => {
    const { store, model, check } = harness(1 << 20, 64 * 1024);
    const small = Buffer.from('héllo wörld', 'utf8');
    const big = bytes(5000, 3);
    const a = store.put('a', small, 0);
    const b = store.put('b', big, 1);
    model.set(a, small).set(b, big);
    check();
    assert.equal(store.toString(a, 'utf8'), 'héllo wörld');
    assert.equal(store.toString(a, 'latin1'), small.toString('latin1'));
    assert.equal(store.keyOf(a), 'a');
    assert.equal(store.tag[b], 1);
    assert.ok(store.inSlab(a));
    assert.ok(!store.inSlab(b));
    const into = Buffer.alloc(small.length + 2);
    assert.equal(store.readInto(a, into, 2), small.length);
    assert.ok(into.subarray(2).equals(small));
    assert.equal(store.stable(b), store.stable(b), 'an own buffer is its own stable value');
    store.free(a);
    model.delete(a);
    check();
    assert.throws(() => store.free(a), /not in use/);
    assert.equal(store.has(a), false);
  });

  it('a stable copy is reused while the item lives and never changes when its chunk is reused', () => {
    const { store } = harness(1 << 20, 64 * 1024);
    const id = store.put('k', Buffer.from('first'), 0);
    const s = store.stable(id);
    assert.equal(store.stable(id), s, 'same object on the next read: no allocation');
    store.free(id);
    const id2 = store.put('k2', Buffer.from('other'), 0);
    assert.equal(id2, id, 'the id and its chunk are reused');
    assert.equal(s.toString(), 'first', 'what a reader kept did not change');
    assert.equal(store.stable(id2).toString(), 'other', 'the new item does not see the old copy');
  });

  it('copies of every value length read back exact, from any chunk, and never change when chunks are reused', () => {
    const { store, model, check } = harness(8 << 20, 64 * 1024);
    // Every length up to SLAB_MAX_VALUE (word copies up to 128 B, Buffer.copy above; lengths that are not
    // whole words end byte by byte), several items per length so that copies start at varied chunks
    const kept: { copy: Buffer; stable: Buffer; want: Buffer }[] = [];
    for (let n = 0; n <= SLAB_MAX_VALUE; n++) {
      for (let k = 0; k < (n <= 130 ? 3 : 1); k++) {
        const want = bytes(n, n * 3 + k);
        const id = store.put(`v${n}.${k}`, want, 0);
        model.set(id, want);
        const copy = store.copy(id);
        const stable = store.stable(id);
        assert.ok(copy.equals(want), `copy of ${n} bytes`);
        assert.ok(stable.equals(want), `stable copy of ${n} bytes`);
        kept.push({ copy, stable, want: Buffer.from(want) });
      }
    }
    check();
    // every chunk reused for other bytes: what readers hold is as it was
    for (const id of [...model.keys()]) {
      const n = store.length(id);
      store.free(id);
      model.delete(id);
      const other = Buffer.alloc(n, 0xee);
      model.set(store.put(`w${id}`, other, 0), other);
    }
    check();
    for (const { copy, stable, want } of kept) {
      assert.ok(copy.equals(want) && stable.equals(want), `a copy of ${want.length} bytes changed`);
    }
  });

  it('keeps stable copies while reads come back to them, stops while they are spread over more items than it holds, and starts again', () => {
    const { store } = harness(64 << 20);
    const ids: number[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(store.put(`k${i}`, Buffer.from(`v${i}`), 0));
    const hot = ids.slice(0, 1000);
    /** Whether a second read of `id` returns the Buffer the first one did. */
    const again = (id: number) => {
      const first = store.stable(id);
      return store.stable(id) === first;
    };
    for (let round = 0; round < 5; round++) for (const id of hot) store.stable(id);
    assert.equal(
      hot.filter(again).length,
      hot.length,
      'a hot set: every read after the first returns the same Buffer',
    );
    // Reads spread over 100,000 items (the table holds 16,384): new copies are no longer kept.
    let seed = 7;
    for (let i = 0; i < 200_000; i++) {
      seed = (seed * 48271) % 2147483647;
      const id = ids[seed % ids.length];
      assert.equal(store.stable(id).toString(), `v${id}`);
    }
    const fresh = ids.slice(50_000, 51_000);
    const repeats = fresh.filter(again).length;
    // (but for the few kept before it noticed)
    assert.ok(repeats < fresh.length / 10, `copies of spread reads kept: ${repeats} of ${fresh.length}`);
    // Another hot set (none of its copies kept): its reads would find them, so it keeps every copy again.
    const hot2 = ids.slice(20_000, 21_000);
    for (let round = 0; round < 10; round++) for (const id of hot2) store.stable(id);
    assert.equal(hot2.filter(again).length, hot2.length);
  });

  it('metadata arrays keep their values when the item table grows', () => {
    const { store } = harness(64 << 20);
    const ids: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const id = store.put(`k${i}`, Buffer.from(String(i)), i % 2);
      store.expiresAt[id] = i + 0.5;
      store.rate[id] = i * 2;
      ids.push(id);
    }
    for (let i = 0; i < ids.length; i++) {
      assert.equal(store.expiresAt[ids[i]], i + 0.5);
      assert.equal(store.rate[ids[i]], i * 2);
      assert.equal(store.tag[ids[i]], i % 2);
      assert.equal(store.toString(ids[i], 'utf8'), String(i));
    }
  });

  it('past its limit a page of another size class is taken back (its items reclaimed) and the limit holds', () => {
    const page = 64 * 1024;
    const { store, model, reclaimed, check } = harness(4 * page, page);
    // fill 3 pages with 32-byte values (32-byte chunks): 3 × 2048 items, their keys (8-byte chunks) a 4th
    let seed = 0;
    for (let i = 0; i < 3 * Math.floor(page / 32); i++) {
      const v = bytes(32, seed++);
      const id = store.put(`s${seed}`, v, 0);
      assert.ok(id >= 0);
      model.set(id, v);
    }
    assert.equal(store.stats().pages, 4);
    assert.equal(reclaimed.length, 0);
    // now 1000-byte values: every page must come from the small class
    for (let i = 0; i < 200; i++) {
      const v = bytes(1000, seed++);
      const id = store.put(`b${i}`, v, 0);
      assert.ok(id >= 0);
      model.set(id, v);
    }
    check();
    assert.ok(reclaimed.length > 0);
    assert.ok(store.stats().pagesReassigned >= 2);
    assert.equal(store.stats().pages, 4);
  });

  it('values over the limit are refused; own buffers make room by releasing pages, once they are collected', async () => {
    const page = 64 * 1024;
    const { store, model, check } = harness(4 * page, page);
    assert.equal(store.put('huge', Buffer.alloc(4 * page + 1), 0), -1);
    for (let i = 0; i < 3000; i++) model.set(store.put(`s${i}`, bytes(100, i), 0), bytes(100, i));
    const big = bytes(3 * page, 9);
    // The pages it lets go of still count until the collector frees them: no room yet.
    assert.equal(store.put('big', big, 0), -1);
    assert.ok(store.stats().limboBytes >= 3 * page);
    check();
    await collect();
    assert.equal(store.stats().limboBytes, 0, 'the collector freed the released pages');
    const id = store.put('big', big, 0);
    assert.ok(id >= 0);
    model.set(id, big);
    check();
    assert.ok(store.stats().pages <= 1);
  });

  it('a put that may not evict uses free room only: no page is taken back, no item evicted', () => {
    const page = 64 * 1024;
    let evictions = 0;
    const { store, model, check, reclaimed } = harness(4 * page, page);
    // 1000-byte values (their keys share a first page) until the store is full and takes a page back
    for (let i = 0; i < 1000 && reclaimed.length === 0; i++) {
      const id = store.put(`a${i}`, bytes(1000, i), 0);
      assert.ok(id >= 0);
      model.set(id, bytes(1000, i));
    }
    assert.ok(reclaimed.length > 0, 'the store is full');
    const reclaimedBefore = reclaimed.length;
    // a 100-byte value needs a page of its size class: only a reassignment would give one
    assert.equal(store.put('small', bytes(100, 1), 0, false, false), -1);
    assert.equal(reclaimed.length, reclaimedBefore, 'nothing was taken back');
    const evicting = new SlabStore({
      limitBytes: 4 * page,
      pageBytes: page,
      reclaim: (id) => evicting.free(id),
      evict: () => {
        evictions++;
        return false;
      },
    });
    assert.ok(evicting.put('big', Buffer.alloc(2 * page), 0) >= 0);
    // a large value that only an eviction would make room for
    assert.equal(evicting.put('big2', Buffer.alloc(2 * page), 0, false, false), -1);
    assert.equal(evictions, 0, 'the owner was not asked to evict');
    check();
    // with mayEvict (the default) the same put takes a page back
    assert.ok(store.put('small', bytes(100, 1), 0) >= 0);
    assert.ok(reclaimed.length > reclaimedBefore);
  });

  it('ids are handed out lowest first, and the per-id arrays shrink once most items have gone', () => {
    const shrunk: number[] = [];
    const store: SlabStore = new SlabStore({
      limitBytes: 64 << 20,
      reclaim: (id) => store.free(id),
      idsShrunk: (capacity) => shrunk.push(capacity),
    });
    const ids: number[] = [];
    for (let i = 0; i < 20_000; i++) ids.push(store.put(`k${i}`, bytes(20, i), 0));
    assert.deepEqual(ids.slice(0, 5), [0, 1, 2, 3, 4]);
    assert.equal(store.stats().idCapacity, 32768);
    // free all but a few scattered items; the lowest free ids are reused first
    const keep = new Set([3, 700, 1500]);
    for (const id of ids) if (!keep.has(id)) store.free(id);
    const again = store.put('again', bytes(20, 1), 0);
    assert.equal(again, 0, 'the lowest free id');
    assert.deepEqual(shrunk, [4096], 'halved while every id in use (max 1500) fits with room to grow');
    assert.equal(store.stats().idCapacity, 4096);
    for (const id of keep) assert.deepEqual(store.copy(id), bytes(20, id), `item ${id} kept its value`);
    assert.equal(store.toString(again, 'latin1'), bytes(20, 1).toString('latin1'));
    // and it grows again
    for (let i = 0; i < 10_000; i++) assert.ok(store.put(`n${i}`, bytes(20, i), 0) >= 0);
    assert.equal(store.stats().items, 10_004);
    assert.equal(store.stats().idCapacity, 16384);
  });

  it('slack is for pages: a value in a Buffer of its own is held to limitBytes - slackBytes', () => {
    const page = 64 * 1024;
    const store: SlabStore = new SlabStore({
      limitBytes: 4 * page,
      slackBytes: 2 * page,
      pageBytes: page,
      reclaim: (id) => store.free(id),
    });
    // the key takes a chunk in a page: a page of the 2 outside the slack
    assert.equal(store.put('big', Buffer.alloc(page + 1), 0), -1);
    assert.ok(store.put('fits', Buffer.alloc(page), 0) >= 0);
    // pages may still use the slack: 2 pages of 56-byte chunks (the keys share the first page)
    for (let i = 0; i < 2 * Math.floor(page / 56); i++) {
      assert.ok(store.put(`s${i}`, Buffer.alloc(56), 0) >= 0);
    }
    assert.equal(store.stats().heldBytes, 4 * page);
  });

  it('an evicted own-buffer value counts against the limit until it is collected', async () => {
    // 180 000: a 64 KiB page for the keys + one 60 000-byte value, not two
    const { store, model, check } = harness(180_000, 64 * 1024);
    const v = bytes(60_000, 1);
    let held: Buffer | undefined = Buffer.from(v);
    const id = store.put('a', held, 0, true);
    assert.equal(store.stable(id), held, 'a whole Buffer is adopted, not copied');
    store.free(id);
    assert.equal(store.put('b', v, 0), -1, 'a key page + 60 000 dropped + 60 000 new > 180 000');
    await collect();
    assert.equal(store.stats().limboBytes, 60_000, 'still referenced by the reader: not freed');
    held = undefined;
    await collect();
    assert.equal(store.stats().limboBytes, 0);
    const id2 = store.put('b', v, 0);
    assert.ok(id2 >= 0);
    model.set(id2, v);
    check();
    assert.equal(held, undefined);
  });

  it('property: random puts and frees never overlap, corrupt or exceed the limit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }),
        fc.array(
          fc.oneof(
            { weight: 3, arbitrary: fc.record({ put: fc.nat(1300), seed: fc.nat(1000) }) },
            {
              weight: 1,
              arbitrary: fc.record({ put: fc.integer({ min: 1025, max: 40_000 }), seed: fc.nat() }),
            },
            { weight: 2, arbitrary: fc.record({ free: fc.nat() }) },
          ),
          { maxLength: 400 },
        ),
        (pages, ops) => {
          const pageBytes = 16 * 1024;
          const { store, model, check } = harness(pages * pageBytes, pageBytes);
          let i = 0;
          for (const op of ops) {
            if ('free' in op) {
              if (model.size === 0) continue;
              const ids = [...model.keys()];
              const id = ids[op.free % ids.length];
              store.free(id);
              model.delete(id);
            } else {
              const v = bytes(op.put, op.seed);
              const id = store.put(`k${i++}`, v, 0);
              if (id < 0) {
                // refused only when no page is left to take back and the value still does not fit
                // (the page holding the new key's chunk cannot be taken back while the value is placed)
                const st = store.stats();
                const need = op.put > SLAB_MAX_VALUE ? op.put : pageBytes;
                assert.ok(
                  need > pages * pageBytes ||
                    // beside its key's page it could never fit: refused before anything is taken back
                    (op.put > SLAB_MAX_VALUE && need + pageBytes > pages * pageBytes) ||
                    (st.pageBytes + st.ownBytes + st.limboBytes + need > pages * pageBytes &&
                      (st.limboBytes > 0 || st.pages <= 1)),
                );
              } else {
                assert.ok(!model.has(id), 'an id in use was handed out again');
                model.set(id, v);
              }
            }
            check();
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('limbo within its allowance does not count against the limit; past it, it does until the collector frees it', async () => {
    const MiB = 1 << 20;
    const store: SlabStore = new SlabStore({
      limitBytes: 64 * MiB,
      limboAllowanceBytes: 4 * MiB,
      reclaim: (id) => store.free(id),
    });
    // 2 × 2 MiB values dropped: 4 MiB in limbo, all within the allowance: 64 MiB still fit
    for (let i = 0; i < 2; i++) store.free(store.put(`v${i}`, Buffer.alloc(2 * MiB, i), 0));
    assert.equal(store.stats().limboBytes, 4 * MiB);
    const big = Buffer.alloc(63 * MiB);
    const fits = store.put('big', big, 0);
    assert.ok(fits >= 0, 'limbo within the allowance is not in the way');
    store.free(fits);
    // now 67 MiB in limbo, 63 past the allowance: the same value is refused until the collector has run
    assert.equal(store.put('big', big, 0), -1);
    await collect();
    assert.ok(store.stats().limboBytes <= 4 * MiB);
    assert.ok(store.put('big', big, 0) >= 0);
  });

  it('clear() drops everything (held until the collector frees it)', async () => {
    const store: SlabStore = new SlabStore({ limitBytes: 1 << 20, reclaim: (id) => store.free(id) });
    for (let i = 0; i < 100; i++) store.put(`k${i}`, Buffer.alloc(i * 20), 0);
    const held = store.stats().heldBytes;
    assert.ok(held > 0);
    store.clear();
    const st = store.stats();
    assert.deepEqual({ items: st.items, pages: st.pages, own: st.ownBytes }, { items: 0, pages: 0, own: 0 });
    assert.equal(st.limboBytes, held);
    await collect();
    assert.equal(store.stats().heldBytes, 0);
    const id = store.put('k', Buffer.from('v'), 0);
    assert.equal(store.toString(id, 'utf8'), 'v');
  });
});
