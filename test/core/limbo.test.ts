import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Limbo } from '../../src/limbo.js';
import { SlabStore } from '../../src/slab.js';
import { collect as collectAfterSettling, gc } from '../support/gc.js';

const MiB = 1 << 20;
/** A full collection in a turn of its own; these tests run limbo's clock themselves (no settling wait). */
const collect = () => collectAfterSettling(0);

/** One turn of the event loop: what setImmediate scheduled before it has run. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A store with a 4 MiB limbo allowance and `dropped` MiB of 2 MiB values evicted into limbo. */
function storeWithLimbo(dropped: number, askForCollection = true): SlabStore {
  const store: SlabStore = new SlabStore({
    limitBytes: 64 * MiB,
    limboAllowanceBytes: 4 * MiB,
    askForCollection,
    reclaim: (id) => store.free(id),
  });
  for (let i = 0; i < dropped / 2; i++) store.free(store.put(`v${i}`, Buffer.alloc(2 * MiB, i), 0));
  return store;
}

// The test that asks V8 for a collection comes first: the last test leaves FinalizationRegistry broken
// for this process.
describe('Limbo', () => {
  it('a store refused by limbo asks V8 to collect, and limbo drains without anyone calling gc()', async () => {
    const store = storeWithLimbo(64);
    const big = Buffer.alloc(40 * MiB);
    assert.equal(store.put('big', big, 0), -1, '64 MiB in limbo, 60 past the allowance: no room');
    assert.ok(store.stats().collectionsAsked >= 1);
    // The ask is an ArrayBuffer counted as external memory: V8 starts a collection as for any such
    // allocation. Generous bound: a loaded box.
    const deadline = Date.now() + 20_000;
    while (store.stats().limboBytes > 4 * MiB && Date.now() < deadline) await sleep(20);
    assert.ok(store.stats().limboBytes <= 4 * MiB, `limbo ${store.stats().limboBytes} never drained`);
    assert.ok(store.put('big', big, 0) >= 0, 'and then the value fits');
  });

  it('a store told not to ask does not', () => {
    const store = storeWithLimbo(64, false);
    assert.equal(store.put('big', Buffer.alloc(40 * MiB), 0), -1);
    assert.equal(store.stats().collectionsAsked, 0);
  });

  it('counts what it was given until the collector frees it, and what is still referenced stays', async () => {
    const limbo = new Limbo({ nudge: false });
    let kept: ArrayBuffer | undefined = new ArrayBuffer(1000);
    (() => {
      limbo.add(new ArrayBuffer(3000), 3000);
      limbo.add(kept, 1000);
    })();
    assert.equal(limbo.sweep(), 4000);
    assert.equal(limbo.entries, 2);
    await collect();
    assert.equal(limbo.sweep(), 1000, 'the unreferenced one was freed');
    assert.equal(limbo.entries, 1);
    kept = undefined;
    await collect();
    assert.equal(limbo.sweep(), 0);
    assert.equal(limbo.entries, 0);
  });

  it('a scan keeps nothing it watches alive, even when a collection runs in the same job', async () => {
    const limbo = new Limbo({ nudge: false });
    let buffer: ArrayBuffer | undefined = new ArrayBuffer(5000);
    const probe = new WeakRef(buffer);
    limbo.add(buffer, 5000);
    await sleep(1);
    buffer = undefined;
    assert.equal(limbo.sweep(), 5000);
    gc(); // right after the scan: had the scan read WeakRefs to the buffers, this would keep them
    await sleep(1);
    assert.equal(probe.deref(), undefined, 'the buffer was freed');
    // the count may learn of it one collection late (the scan kept its token for that job)
    await collect();
    assert.equal(limbo.sweep(), 0);
  });

  it('paces its asks by bytes churned and heap size, and slows down after three seen to free nothing', async () => {
    let now = 10_000;
    let heap = 4 * MiB;
    const limbo = new Limbo({ now: () => now, heapBytes: () => heap, schedule: () => {} });
    const drop = (bytes: number) => (() => limbo.add(new ArrayBuffer(8), bytes))();
    limbo.askForCollection();
    assert.equal(limbo.asked, 0, 'nothing churned yet');
    drop(16 * MiB);
    limbo.askForCollection();
    assert.equal(limbo.asked, 1);
    drop(10 * MiB);
    limbo.refused(6 * MiB); // a value refused for want of room counts too
    now += 19;
    limbo.askForCollection();
    assert.equal(limbo.asked, 1, '4 MiB of heap: 20 ms since the last ask');
    now += 1;
    limbo.askForCollection();
    assert.equal(limbo.asked, 2);
    heap = 100 * MiB;
    drop(16 * MiB);
    now += 400;
    limbo.askForCollection();
    assert.equal(limbo.asked, 2, '100 MiB of heap: 500 ms');
    now += 100;
    limbo.askForCollection();
    assert.equal(limbo.asked, 3);
    heap = 4 * MiB;
    // No scan ran since ask 1: asks 2 and 3 were not seen to free nothing, pacing stays by bytes.
    for (let ask = 4; ask <= 6; ask++) {
      limbo.sweep(); // finds nothing freed (the buffers were 8 bytes each, and no collection ran)
      drop(16 * MiB);
      now += 20;
      limbo.askForCollection();
      assert.equal(limbo.asked, ask);
    }
    limbo.sweep();
    drop(16 * MiB);
    now += 20;
    limbo.askForCollection();
    assert.equal(limbo.asked, 6, 'three asks seen to free nothing: the next waits a second');
    now += 980;
    limbo.askForCollection();
    assert.equal(limbo.asked, 7);
    // A scan finds something freed: back to pacing by bytes.
    (() => limbo.add(new ArrayBuffer(100), 16 * MiB))();
    await collect(); // also runs the asks (setImmediate): no scan for 15 ms after the last
    now += 15;
    limbo.sweep();
    now += 20;
    limbo.askForCollection();
    assert.equal(limbo.asked, 8);
  });

  it('follows an ask up: asks again while nothing is freed, at most three times, and not while it settles', async () => {
    let now = 10_000;
    const followUps: { fn: () => void; ms: number }[] = [];
    const opts = {
      now: () => now,
      heapBytes: () => 4 * MiB,
      followUpAboveBytes: MiB,
      schedule: (fn: () => void, ms: number) => followUps.push({ fn, ms }),
    };
    const fire = () => followUps.shift()!.fn();
    const limbo = new Limbo(opts);
    let kept: ArrayBuffer | undefined = new ArrayBuffer(8); // what limbo waits for is still referenced
    limbo.add(kept, 16 * MiB);
    limbo.askForCollection();
    assert.equal(limbo.asked, 1);
    assert.deepEqual(
      followUps.map((f) => f.ms),
      [100],
    );
    await sleep(1); // the ask runs: no scan for the next 15 ms
    now += 10;
    fire();
    assert.equal(limbo.asked, 1, 'still settling: the follow-up waits');
    assert.deepEqual(
      followUps.map((f) => f.ms),
      [5],
    );
    now += 5;
    fire();
    assert.equal(limbo.asked, 2, 'nothing freed: asked again');
    for (let ask = 3; ask <= 4; ask++) {
      await sleep(1);
      now += 100;
      fire();
      assert.equal(limbo.asked, ask);
    }
    assert.equal(followUps.length, 0, 'three asks seen to free nothing: no more follow-ups');
    assert.ok(kept.byteLength > 0);

    // An ask that frees something is not followed by another.
    const freeing = new Limbo(opts);
    (() => freeing.add(new ArrayBuffer(5000), 16 * MiB))();
    freeing.askForCollection();
    await collect();
    now += 100;
    fire();
    assert.equal(freeing.sweep(), 0);
    assert.equal(freeing.asked, 1);
    assert.equal(followUps.length, 0);

    // Nor is one that leaves limbo under what is worth asking for.
    const small = new Limbo({ ...opts, followUpAboveBytes: 32 * MiB });
    small.add(kept, 16 * MiB);
    small.askForCollection();
    await sleep(1);
    now += 100;
    fire();
    assert.equal(small.asked, 1);
    kept = undefined;
  });

  it("limbo's own scans wait while an asked-for collection may be marking (a scan then keeps its tokens)", async () => {
    let now = 10_000;
    const limbo = new Limbo({ now: () => now, heapBytes: () => 4 * MiB, schedule: () => {} });
    (() => limbo.add(new ArrayBuffer(5000), 16 * MiB))();
    limbo.askForCollection();
    await turn(); // the ask runs: limbo's own scans wait 15 ms
    await collect(); // a collection frees the buffer
    limbo.bytes(); // would schedule a scan, were it not settling
    await turn();
    assert.equal(limbo.bytes(), 16 * MiB, 'within 15 ms of the ask: the count as it stood');
    now += 15;
    limbo.bytes(); // schedules a scan
    await turn();
    assert.equal(limbo.bytes(), 0);
    assert.equal(limbo.entries, 0);
  });

  it('still drains after V8 has stopped calling FinalizationRegistry callbacks for the whole process', async (t) => {
    // V8 11.3 (Node 20): a registry collected after a collection made it dirty but before its cleanup
    // task ran leaves the task flag set, and no registry gets a callback again. A canary says whether this
    // V8 has the bug; the store must drain either way.
    let canaryCalled = false;
    const canary = new FinalizationRegistry(() => {
      canaryCalled = true;
    });
    let transient: FinalizationRegistry<number> | undefined = new FinalizationRegistry(() => {});
    (() => transient!.register({}, 1))();
    await sleep(1);
    gc(); // the transient registry's target dies: the registry is dirty, its cleanup task posted
    transient = undefined;
    gc(); // the registry itself dies before the task runs
    await sleep(20);
    (() => canary.register({}, 1))();
    const store = storeWithLimbo(20, false);
    assert.equal(store.stats().limboBytes, 20 * MiB);
    await collect();
    await sleep(50);
    t.diagnostic(
      `FinalizationRegistry callbacks ${canaryCalled ? 'still run' : 'have stopped'} in this process`,
    );
    assert.equal(store.stats().limboBytes, 0, 'dropped values were collected and limbo knows it');
  });
});
