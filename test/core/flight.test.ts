import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deadline, Flight, Flights, FlightTable } from '../../src/flight.js';
import { GetterTimeoutError, Group, GroupRegistry } from '../../src/index.js';
import { gc } from '../support/gc.js';
import { prng } from '../support/prng.js';
import { deferred, rejection, sleep } from '../support/wait.js';

/** A group whose getter waits for the test to release it; `started` lists each call's signal. */
function gated(opts: { getterTimeoutMs?: number } = {}) {
  const registry = new GroupRegistry();
  const calls: {
    key: string;
    signal: AbortSignal;
    release: (v: string) => void;
    fail: (e: unknown) => void;
  }[] = [];
  const group = new Group({
    name: 'gated',
    cacheBytes: 1 << 20,
    registry,
    getterTimeoutMs: opts.getterTimeoutMs,
    getter: (key, { signal }) => {
      const d = deferred<string>();
      calls.push({ key, signal, release: d.resolve, fail: d.reject });
      return d.promise;
    },
  });
  return { group, calls };
}

describe('flights', () => {
  it('500 concurrent gets of one missing key call the getter once', async () => {
    const { group, calls } = gated();
    const all = Promise.all(Array.from({ length: 500 }, () => group.getString('k')));
    await sleep(0);
    assert.equal(calls.length, 1);
    calls[0].release('v');
    const values = await all;
    assert.ok(values.every((v) => v === 'v'));
    assert.equal(group.stats.loads, 500);
    assert.equal(group.stats.loadsDeduped, 1);
    assert.equal(group.stats.localLoads, 1);
  });

  it('a waiter that aborts stops waiting at once; the others still get the value', async () => {
    const { group, calls } = gated();
    const ac = new AbortController();
    const leaving = group.get('k', { signal: ac.signal });
    const staying = group.getString('k', { signal: new AbortController().signal });
    const plain = group.getString('k');
    await sleep(0);
    const reason = new Error('caller gave up');
    ac.abort(reason);
    await assert.rejects(leaving, (e) => e === reason);
    assert.equal(calls[0].signal.aborted, false, 'the shared load goes on for the others');
    calls[0].release('v');
    assert.equal(await staying, 'v');
    assert.equal(await plain, 'v');
    assert.equal(calls.length, 1);
  });

  it("the getter's signal fires only when every waiter has aborted; the next get loads again", async () => {
    const { group, calls } = gated();
    const acs = [new AbortController(), new AbortController(), new AbortController()];
    const gets = acs.map((ac) => group.get('k', { signal: ac.signal }).catch((e: unknown) => e));
    await sleep(0);
    acs[0].abort();
    acs[1].abort();
    await sleep(0);
    assert.equal(calls[0].signal.aborted, false);
    acs[2].abort(new Error('last'));
    assert.equal(calls[0].signal.aborted, true);
    assert.match(String(calls[0].signal.reason), /last/);
    for (const g of gets) assert.ok((await g) instanceof Error);
    // the key is not wedged: a new get starts a new load
    const again = group.getString('k');
    await sleep(0);
    assert.equal(calls.length, 2);
    calls[1].release('fresh');
    assert.equal(await again, 'fresh');
    // the aborted getter settling late changes nothing
    calls[0].release('late');
    await sleep(0);
    assert.equal(await group.getString('k'), 'fresh');
  });

  it('an already-aborted signal rejects without starting a load', async () => {
    const { group, calls } = gated();
    const ac = new AbortController();
    ac.abort(new Error('before'));
    await assert.rejects(group.get('k', { signal: ac.signal }), /before/);
    assert.equal(calls.length, 0);
  });

  it('a getter that throws does not wedge the key: the error goes to every waiter, the next get loads again', async () => {
    const { group, calls } = gated();
    const both = Promise.allSettled([group.get('k'), group.get('k')]);
    await sleep(0);
    calls[0].fail(new Error('db down'));
    for (const r of await both) assert.ok(r.status === 'rejected' && /db down/.test(String(r.reason)));
    const c = group.getString('k');
    await sleep(0);
    assert.equal(calls.length, 2);
    calls[1].release('ok');
    assert.equal(await c, 'ok');
  });

  it('a getter that never settles times out (getterTimeoutMs) and the next get loads again', async () => {
    const { group, calls } = gated({ getterTimeoutMs: 30 });
    const [a, b] = await Promise.allSettled([group.get('k'), group.get('k')]);
    assert.equal(a.status, 'rejected');
    assert.ok(a.reason instanceof GetterTimeoutError && /30 ms/.test(a.reason.message), String(a.reason));
    assert.ok(b.status === 'rejected' && b.reason instanceof GetterTimeoutError);
    assert.equal(calls[0].signal.aborted, true);
    assert.ok(calls[0].signal.reason instanceof GetterTimeoutError);
    assert.equal(group.stats.localLoadErrs, 1);
    const c = group.getString('k');
    await sleep(0);
    assert.equal(calls.length, 2);
    calls[1].release('ok');
    assert.equal(await c, 'ok');
  });

  it('a remove racing a flight: waiters get the in-flight value but it is not cached', async () => {
    const { group, calls } = gated();
    const before = group.getString('k');
    await sleep(0);
    group.server.removeLocal('k');
    // a get after the remove does not join the stale flight
    const after = group.getString('k');
    await sleep(0);
    assert.equal(calls.length, 2);
    calls[0].release('stale');
    assert.equal(await before, 'stale');
    assert.equal(group.server.getCached('k'), undefined, 'the stale result was not cached');
    calls[1].release('fresh');
    assert.equal(await after, 'fresh');
    assert.equal(group.server.getCached('k')?.toString(), 'fresh');
    // and the stale flight finishing last does not evict or overwrite the fresh one
    assert.equal(await group.getString('k'), 'fresh');
  });

  it('group.remove (no peers) drops the cached value', async () => {
    const registry = new GroupRegistry();
    let n = 0;
    const group = new Group({ name: 'r', cacheBytes: 1000, registry, getter: async () => `v${++n}` });
    assert.equal(await group.getString('k'), 'v1');
    await group.remove('k');
    assert.equal(await group.getString('k'), 'v2');
  });
});

describe('shared signals', () => {
  it('one signal passed to many gets adds one listener (no MaxListeners warning) and aborts them all', async () => {
    const { group, calls } = gated();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ac = new AbortController();
      const gets = Array.from({ length: 50 }, (_, i) =>
        group.get(`k${i % 5}`, { signal: ac.signal }).catch((e: unknown) => e),
      );
      await sleep(0);
      assert.equal(calls.length, 5);
      ac.abort(new Error('request over'));
      for (const g of gets) assert.match(String(await g), /request over/);
      assert.ok(
        calls.every((c) => c.signal.aborted),
        'every load lost all its waiters',
      );
      await sleep(5);
      assert.deepEqual(
        warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
        [],
      );
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('Flights (unit)', () => {
  it('never leaves an unhandled rejection when every waiter has left', async () => {
    const flights = new Flights<string>();
    const ac = new AbortController();
    const d = deferred<string>();
    const p = flights.do('k', ac.signal, () => d.promise);
    ac.abort();
    await assert.rejects(p);
    d.reject(new Error('late failure'));
    await sleep(5);
    assert.equal(flights.size, 0);
  });
});

describe('Flights (unit): waiters answered directly', () => {
  it('every waiter gets the value; one that left gets its own reason and not the value', async () => {
    const flights = new Flights<string>();
    const d = deferred<string>();
    const leave = new AbortController();
    let runs = 0;
    const fn = () => {
      runs++;
      return d.promise;
    };
    const a = flights.do('k', undefined, fn);
    const b = flights.do('k', leave.signal, fn);
    const c = flights.do('k', new AbortController().signal, fn);
    leave.abort(new Error('b left'));
    await assert.rejects(b, /b left/);
    d.resolve('v');
    assert.deepEqual(await Promise.all([a, c]), ['v', 'v']);
    assert.equal(runs, 1);
    assert.equal(flights.size, 0);
  });

  it('a failure reaches every remaining waiter; a function that throws synchronously fails the flight', async () => {
    const flights = new Flights<string>();
    const d = deferred<string>();
    const a = flights.do('k', new AbortController().signal, () => d.promise);
    const b = flights.do('k', undefined, () => d.promise);
    d.reject(new Error('boom'));
    await assert.rejects(a, /boom/);
    await assert.rejects(b, /boom/);
    await assert.rejects(
      flights.do('k2', undefined, () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(flights.size, 0);
  });

  it('after all waiters left, a new get of the key starts a new flight while the old one still runs', async () => {
    const flights = new Flights<string>();
    const old = deferred<string>();
    const ac = new AbortController();
    let oldSignal: AbortSignal | undefined;
    const p1 = flights.do('k', ac.signal, (f) => {
      oldSignal = f.signal;
      return old.promise;
    });
    ac.abort(new Error('left'));
    await assert.rejects(p1, /left/);
    assert.equal(oldSignal?.aborted, true, "the abandoned flight's signal fired");
    const p2 = flights.do('k', undefined, async () => 'fresh');
    old.resolve('stale');
    assert.equal(await p2, 'fresh');
  });
});

describe('Flights (unit): the table of flights by key', () => {
  it('2,000 concurrent keys, two waiters each, settled in random order: one run per key, each waiter its own value', async () => {
    const flights = new Flights<string>();
    const random = prng(20261207);
    const n = 2_000;
    const gates = new Map<string, ReturnType<typeof deferred<string>>>();
    const runs = new Map<string, number>();
    const fn = (f: Flight<string>) => {
      runs.set(f.key, (runs.get(f.key) ?? 0) + 1);
      const d = deferred<string>();
      gates.set(f.key, d);
      return d.promise;
    };
    const keys = Array.from({ length: n }, (_, i) => `user:${i}`);
    const first = keys.map((k) => flights.do(k, undefined, fn));
    const second = keys.map((k) => flights.do(k, new AbortController().signal, fn));
    assert.equal(flights.size, n);
    assert.ok(keys.every((k) => flights.has(k)));
    assert.equal(flights.has('user:x'), false);
    // Settle in a random order (the table shrinks as it empties).
    const order = [...keys];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const k of order) gates.get(k)!.resolve(`value of ${k}`);
    const values = await Promise.all([...first, ...second]);
    assert.deepEqual(
      values,
      [...keys, ...keys].map((k) => `value of ${k}`),
    );
    assert.ok([...runs.values()].every((r) => r === 1));
    assert.equal(runs.size, n);
    assert.equal(flights.size, 0);
    // A key loads afresh once its flight is over.
    assert.equal(await flights.do('user:7', undefined, async () => 'again'), 'again');
  });

  it('stays correct when every key hashes alike: lookups, removes, growth, re-seeds and shrinking', () => {
    const table = new FlightTable<string>();
    table.hashOf = () => 42; // every key in one chain, whatever the seed
    const held = new Map<string, Flight<string>>();
    const random = prng(7);
    for (let i = 0; i < 3_000; i++) {
      const key = `k${Math.floor(random() * 1_000)}`;
      const f = held.get(key);
      if (f === undefined) {
        const nf = new Flight<string>(undefined, key);
        table.add(nf);
        held.set(key, nf);
      } else {
        assert.equal(table.delete(f), true);
        assert.equal(table.delete(f), false, 'a flight is removed once');
        held.delete(key);
      }
      if (i % 97 === 0) {
        for (const [k, g] of held) assert.equal(table.get(k), g);
        assert.equal(table.get('absent'), undefined);
      }
      assert.equal(table.count, held.size);
    }
    for (const g of held.values()) assert.equal(table.delete(g), true);
    assert.equal(table.count, 0);
  });

  it('keys that collide under its seed make the table pick a new one, and every flight is found under it', () => {
    const table = new FlightTable<string>();
    const seedOf = () => (table as unknown as { seed: number }).seed;
    const firstSeed = seedOf();
    const real = table.hashOf.bind(table);
    // Keys chosen to collide: under the first seed they all hash alike; under any other, as usual.
    table.hashOf = (key) => (seedOf() === firstSeed ? 42 : real(key));
    const flights = Array.from({ length: 100 }, (_, i) => new Flight<string>(undefined, `collide:${i}`));
    for (const f of flights) table.add(f);
    assert.notEqual(seedOf(), firstSeed, 'a chain over 32 made it re-seed');
    for (const f of flights) assert.equal(table.get(f.key), f);
    for (const f of flights) assert.equal(table.delete(f), true);
    assert.equal(table.count, 0);
  });

  it('an invalidated flight is forgotten: a new flight of its key starts, and the old one ending does not remove it', async () => {
    const flights = new Flights<string>();
    const old = deferred<string>();
    const p1 = flights.do('k', undefined, () => old.promise);
    flights.invalidate('k');
    assert.equal(flights.has('k'), false);
    const fresh = deferred<string>();
    const p2 = flights.do('k', undefined, () => fresh.promise);
    old.resolve('old');
    assert.equal(await p1, 'old');
    assert.equal(flights.has('k'), true, "the old flight's end leaves the new one in place");
    const p3 = flights.do('k', undefined, async () => 'never run');
    fresh.resolve('new');
    assert.deepEqual(await Promise.all([p2, p3]), ['new', 'new']);
    assert.equal(flights.size, 0);
  });
});

describe('deadline: one timer per length', () => {
  it('of many deadlines of one length, those settled in time keep their outcome and the others time out, none early', async () => {
    const ms = 120;
    const fired: number[] = [];
    const started: number[] = [];
    const outcomes: Promise<string>[] = [];
    const gates: ReturnType<typeof deferred<string>>[] = [];
    for (let i = 0; i < 40; i++) {
      const d = deferred<string>();
      gates.push(d);
      started.push(performance.now());
      outcomes.push(
        deadline(
          d.promise,
          ms,
          () => new Error(`timeout ${i}`),
          () => fired.push(i),
        ),
      );
      if (i % 10 === 9) await sleep(15); // four batches, started at different times
    }
    // Even ones settle in time (two of them fail), odd ones never do.
    for (let i = 0; i < 40; i += 2) {
      if (i === 10 || i === 20) gates[i].reject(new Error(`own failure ${i}`));
      else gates[i].resolve(`value ${i}`);
    }
    const results = await Promise.allSettled(outcomes);
    const ended = performance.now();
    for (let i = 0; i < 40; i++) {
      const r = results[i];
      if (i === 10 || i === 20) assert.ok(r.status === 'rejected' && /own failure/.test(String(r.reason)));
      else if (i % 2 === 0) assert.deepEqual(r, { status: 'fulfilled', value: `value ${i}` });
      else assert.ok(r.status === 'rejected' && String(r.reason) === `Error: timeout ${i}`, String(i));
    }
    assert.deepEqual(
      fired,
      Array.from({ length: 20 }, (_, k) => 2 * k + 1),
      'onFire once for each that timed out, in order',
    );
    assert.ok(ended - started[39] >= ms - 2, 'the last batch waited its whole time');
  });

  it('deadlines of another length run on their own timer; a deadline set after the queue emptied still fires', async () => {
    const never = new Promise<string>(() => {});
    const order: string[] = [];
    const long = deadline(never, 400, () => new Error('long')).catch((e: Error) => order.push(e.message));
    const short = deadline(never, 40, () => new Error('short')).catch((e: Error) => order.push(e.message));
    await short;
    assert.deepEqual(order, ['short']);
    // The 40 ms queue is empty now; a new deadline of that length re-arms it.
    assert.equal(await deadline(Promise.resolve('quick'), 40, () => new Error('x')), 'quick');
    await sleep(60); // the old timer fires for nothing
    const again = await rejection(deadline(never, 40, () => new Error('again')));
    assert.equal(again.message, 'again');
    await long;
    assert.deepEqual(order, ['short', 'long']);
  });

  it("under a test's fake timers a deadline fires when the fake clock passes it", async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const never = new Promise<string>(() => {});
    const a = rejection(deadline(never, 1_000, () => new Error('a')));
    t.mock.timers.tick(500);
    const b = rejection(deadline(never, 1_000, () => new Error('b')));
    t.mock.timers.tick(500); // a is due (real time has hardly moved)
    assert.equal((await a).message, 'a');
    let bDone = false;
    void b.then(() => {
      bDone = true;
    });
    await Promise.resolve();
    assert.equal(bDone, false, 'b is not due yet');
    t.mock.timers.tick(1_000);
    assert.equal((await b).message, 'b');
  });

  it('a settled deadline keeps nothing alive until its timer fires (the flight it would cancel is collected)', async () => {
    const flights = new Flights<string>();
    let ref: WeakRef<Flight<string>> | undefined;
    // A length of its own, so that its queue's timer is armed for this deadline.
    const v = await flights.do('k', undefined, (flight) => {
      ref = new WeakRef(flight);
      return deadline(
        Promise.resolve('v'),
        61_234,
        () => new Error('timed out'),
        (err) => flight.cancel(err),
      );
    });
    assert.equal(v, 'v');
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
    assert.equal(ref?.deref(), undefined, 'the settled flight is still held (by the armed timer)');
  });

  it("a deadline longer than Node's longest timer (2^31 - 1 ms) does not fire early", async () => {
    // setTimeout takes a delay over 2^31 - 1 ms as 1 ms: a getterTimeoutMs of 25 days must not time
    // every load out at once.
    for (const ms of [2 ** 31, 30 * 86_400_000]) {
      const gate = deferred<string>();
      let fired = false;
      const out = deadline(
        gate.promise,
        ms,
        () => new Error('timed out'),
        () => {
          fired = true;
        },
      );
      await sleep(50);
      assert.equal(fired, false, `a deadline of ${ms} ms fired after 50 ms`);
      gate.resolve('value'); // settles it (and lets go of the timer)
      assert.equal(await out, 'value');
    }
  });

  it('a pending deadline keeps the process alive until it fires; an empty queue does not', async () => {
    const flight = fileURLToPath(new URL('../../src/flight.ts', import.meta.url));
    const run = (code: string) =>
      new Promise<{ out: string; ms: number }>((resolve, reject) => {
        const t0 = performance.now();
        execFile(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', code],
          { timeout: 20_000 },
          (err, stdout) => (err ? reject(err) : resolve({ out: stdout.trim(), ms: performance.now() - t0 })),
        );
      });
    const pending = await run(
      // The first one empties the queue (its timer let go of); the second must take the timer back.
      `const { deadline } = await import(${JSON.stringify(flight)});
       await deadline(Promise.resolve(), 300, () => new Error('x'));
       deadline(new Promise(() => {}), 300, () => new Error('timed out')).catch((e) => console.log(e.message));`,
    );
    assert.equal(pending.out, 'timed out');
    // Settled at once: its queue empties, and the 60 s timer must not hold the process.
    const settled = await run(
      `const { deadline } = await import(${JSON.stringify(flight)});
       console.log(await deadline(Promise.resolve('done'), 60_000, () => new Error('x')));`,
    );
    assert.equal(settled.out, 'done');
    assert.ok(settled.ms < 15_000, `exited after ${Math.round(settled.ms)} ms`);
  });
});
