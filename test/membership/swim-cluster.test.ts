// Small simulated clusters (fake clock, in-memory network, seeded randomness): each protocol
// behaviour on its own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Swim } from '../../src/membership/swim.js';
import { MemoryNetwork, SimClock, SimCluster, simAddr } from '../../src/membership/testing/index.js';

/** n started nodes n0..n{n-1}, all seeded with n0, run until everyone sees everyone. */
async function cluster(
  n: number,
  opts: ConstructorParameters<typeof SimCluster>[0] = {},
): Promise<SimCluster> {
  const sim = new SimCluster(opts);
  for (let i = 0; i < n; i++) sim.add(`n${i}`, simAddr(i), { seeds: i === 0 ? [] : [simAddr(0)] });
  const t = await sim.runUntil(() => sim.allSize(n), 30_000);
  assert.notEqual(t, -1, `cluster of ${n} did not converge`);
  return sim;
}

describe('swim: join', () => {
  it('a lone node is a cluster of one; start order never matters (seed starts last)', async () => {
    const sim = new SimCluster({ seed: 3 });
    const lone = sim.add('solo', simAddr(99));
    await sim.run(2000);
    assert.equal(lone.swim.size, 1);
    assert.deepEqual(
      lone.swim.members().map((m) => [m.id, m.state]),
      [['solo', 'alive']],
    );
    // Joiners start 5 s before their seed: they keep retrying with backoff until it answers.
    for (let i = 1; i < 5; i++) sim.add(`n${i}`, simAddr(i), { seeds: [simAddr(0)] });
    await sim.run(5000);
    for (let i = 1; i < 5; i++) assert.equal(sim.nodes.get(`n${i}`)!.swim.size, 1);
    sim.add('n0', simAddr(0), { seeds: [simAddr(0)] });
    const t = await sim.runUntil(
      () => sim.nodes.get('n1')!.swim.size === 5 && sim.nodes.get('n0')!.swim.size === 5,
      20_000,
    );
    assert.notEqual(t, -1);
    assert.equal(lone.swim.size, 1, 'a node with no seeds is not pulled in');
    sim.stopAll();
  });

  it('join() resolves with the number of seeds that answered, rejects when none did', async () => {
    const sim = await cluster(3, { seed: 4 });
    const late = sim.add('late', simAddr(50), { start: false });
    late.swim.start();
    assert.equal(
      await Promise.race([late.swim.join([simAddr(0), simAddr(1)]), sim.run(100).then(() => -1)]),
      2,
    );
    const p = late.swim.join([simAddr(77)]);
    const settled = p.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    await sim.run(5000);
    assert.match(await settled, /no seed answered \(10\.0\.0\.77:7946\)/);
    sim.stopAll();
  });

  it('metadata changes propagate; oversize metadata is refused with a clear error', async () => {
    const sim = await cluster(6, { seed: 5 });
    const n2 = sim.nodes.get('n2')!.swim;
    n2.updateMeta({ grpcAddr: '10.9.9.9:9090', version: '2' });
    const t = await sim.runUntil(
      () => sim.live().every((x) => x.swim.member('n2')?.meta.grpcAddr === '10.9.9.9:9090'),
      5000,
    );
    assert.notEqual(t, -1);
    assert.throws(
      () => n2.updateMeta({ big: 'x'.repeat(600) }),
      /over the limit of 512 \(config\.maxMetaBytes\)/,
    );
    assert.throws(
      () =>
        new Swim({
          id: 'x',
          meta: { v: 'y'.repeat(600) },
          transport: sim.net.transport('z:1'),
          clock: sim.clock,
        }),
      /metadata encodes to \d+ bytes/,
    );
    sim.stopAll();
  });
});

describe('swim: failure detection', () => {
  it('detects a crashed member: suspect, then dead everywhere; nobody else is accused', async () => {
    const sim = await cluster(10, { seed: 6 });
    const t0 = sim.clock.now();
    sim.crash('n4');
    const t = await sim.runUntil(() => sim.allSee('n4', ['dead']), 30_000);
    assert.notEqual(t, -1, 'n4 not declared dead everywhere');
    assert.ok(sim.changesTo('suspect', t0).every((c) => c.id === 'n4'));
    assert.ok(sim.changesTo('dead', t0).every((c) => c.id === 'n4'));
    for (const n of sim.live()) assert.equal(n.swim.size, 9);
    sim.stopAll();
  });

  it('a suspected member refutes (buddy system) and is never declared dead', async () => {
    const sim = await cluster(8, { seed: 7 });
    const t0 = sim.clock.now();
    // Cut n3 off for longer than a probe round: it is suspected; then let it answer again.
    const others = [...sim.nodes.values()].filter((n) => n.id !== 'n3').map((n) => n.addr);
    sim.net.partition(others, [simAddr(3)]);
    await sim.runUntil(() => sim.changesTo('suspect', t0).some((c) => c.id === 'n3'), 10_000, 10);
    sim.net.heal();
    await sim.run(10_000);
    const n3 = sim.nodes.get('n3')!.swim;
    assert.ok(n3.stats().refutations >= 1, 'n3 refuted');
    assert.ok(n3.local().incarnation >= 1);
    assert.equal(sim.changesTo('dead', t0).length, 0);
    assert.ok(sim.allSee('n3', ['alive']));
    sim.stopAll();
  });

  it('no false deaths at 5% datagram loss', async () => {
    const sim = await cluster(30, { seed: 8, loss: 0.05 });
    const t0 = sim.clock.now();
    await sim.run(60_000);
    assert.equal(sim.changesTo('dead', t0).length, 0);
    assert.ok(sim.allSize(30));
    sim.stopAll();
  });

  it('no false deaths when a node is paused 100 ms every second, or 1 s every 3 s (SIGSTOP)', async () => {
    for (const [pause, period] of [
      [100, 1000],
      [1000, 3000],
    ]) {
      const sim = await cluster(10, { seed: 9 });
      const t0 = sim.clock.now();
      for (let t = 0; t < 60_000; t += period) {
        sim.pause('n5', pause);
        await sim.run(period);
      }
      assert.deepEqual(
        sim.changesTo('dead', t0).map((c) => `${c.observer} saw ${c.id} dead`),
        [],
        `pause ${pause} ms every ${period} ms`,
      );
      assert.ok(sim.allSize(10));
      // The paused node noticed its own stalls instead of blaming its peers.
      if (pause >= 1000) assert.ok(sim.nodes.get('n5')!.swim.stats().stalls > 0);
      sim.stopAll();
    }
  });
});

describe('swim: leave and restart', () => {
  it('a graceful leave is seen by all at once, with no suspicion', async () => {
    const sim = await cluster(10, { seed: 10 });
    const t0 = sim.clock.now();
    const leaving = sim.nodes.get('n7')!;
    const done = leaving.swim.leave(1000);
    const t = await sim.runUntil(() => sim.allSee('n7', ['left']), 5000, 5);
    await done;
    assert.notEqual(t, -1);
    assert.ok(t <= 300, `leave took ${t} ms of simulated time`);
    assert.equal(sim.changesTo('suspect', t0).length, 0);
    leaving.transport.closeNow();
    await sim.run(5000);
    assert.ok(sim.allSee('n7', ['left']), 'left stays left (not resurrected, not dead)');
    sim.stopAll();
  });

  it('every leave reaches every member directly, even at 10% loss (15 leaves, no suspicion)', async () => {
    const sim = await cluster(10, { seed: 16 });
    sim.net.loss = 0.1;
    for (let round = 0; round < 15; round++) {
      const id = `n${1 + (round % 9)}`;
      const t0 = sim.clock.now();
      const node = sim.nodes.get(id)!;
      void node.swim.leave(1000);
      const t = await sim.runUntil(() => sim.allSee(id, ['left']), 3000, 10);
      assert.notEqual(t, -1, `round ${round}: not every member saw ${id} leave`);
      assert.deepEqual(
        sim.changesTo('suspect', t0).filter((c) => c.id === id),
        [],
      );
      node.transport.closeNow();
      await sim.run(500);
      sim.add(id, node.addr, { seeds: [simAddr(0)] });
      await sim.runUntil(() => sim.allSize(10), 10_000);
    }
    sim.stopAll();
  });

  it('a restarted process (same id and address, incarnation 0, new metadata) is accepted at once', async () => {
    const sim = await cluster(8, { seed: 11 });
    sim.crash('n2');
    await sim.runUntil(() => sim.allSee('n2', ['dead']), 30_000);
    const t0 = sim.clock.now();
    sim.net.setDown(simAddr(2), false);
    sim.add('n2', simAddr(2), { seeds: [simAddr(0)], meta: { grpcAddr: 'new:9090', version: '2' } });
    const t = await sim.runUntil(
      () =>
        sim.allSee('n2', ['alive']) &&
        sim.live().every((n) => n.id === 'n2' || n.swim.member('n2')!.meta.version === '2'),
      10_000,
      10,
    );
    assert.notEqual(t, -1);
    assert.ok(t < 1000, `restart accepted after ${t} ms`);
    assert.equal(
      sim.nodes.get('n2')!.swim.local().incarnation,
      0,
      'no refutation needed: the generation decides',
    );
    assert.equal(sim.changesTo('dead', t0).length, 0);
    sim.stopAll();
  });

  it('a new id at a dead member’s address replaces it', async () => {
    const sim = await cluster(5, { seed: 12 });
    sim.crash('n1');
    sim.net.setDown(simAddr(1), false);
    sim.add('n1-new', simAddr(1), { seeds: [simAddr(0)] });
    const t = await sim.runUntil(
      () => sim.allSee('n1-new', ['alive']) && sim.allSee('n1', ['dead', undefined]),
      10_000,
    );
    assert.notEqual(t, -1);
    sim.stopAll();
  });

  it('dead members are reaped after deadReapMs (bounded memory)', async () => {
    const sim = await cluster(5, { seed: 13, config: { deadReapMs: 20_000 } });
    sim.crash('n3');
    await sim.runUntil(() => sim.allSee('n3', ['dead']), 30_000);
    await sim.run(30_000);
    assert.ok(sim.allSee('n3', [undefined]));
    assert.ok(sim.nodes.get('n0')!.swim.stats().reaped >= 1);
    sim.stopAll();
  });
});

describe('swim: partitions', () => {
  it('after a partition heals the sides merge; no healthy member goes dead after the heal', async () => {
    const sim = await cluster(12, { seed: 14, config: { reconnectIntervalMs: 2000 } });
    const a = [0, 1, 2, 3, 4, 5].map(simAddr);
    const b = [6, 7, 8, 9, 10, 11].map(simAddr);
    sim.net.partition(a, b);
    await sim.runUntil(() => sim.allSize(6), 60_000);
    assert.ok(sim.allSize(6), 'each side sees only itself');
    const healedAt = sim.clock.now();
    sim.net.heal();
    const t = await sim.runUntil(() => sim.allSize(12), 60_000);
    assert.notEqual(t, -1, 'sides did not merge');
    await sim.run(20_000);
    assert.ok(sim.allSize(12));
    assert.deepEqual(sim.changesTo('dead', healedAt), []);
    sim.stopAll();
  });
});

describe('swim: hostile input', () => {
  it('drops and counts malformed datagrams and stream messages, never throws', async () => {
    const sim = await cluster(3, { seed: 15 });
    const victim = sim.nodes.get('n1')!;
    const evil = sim.net.transport('6.6.6.6:1');
    const junk = [
      new Uint8Array(0),
      new Uint8Array([0x47]),
      new Uint8Array([0x47, 1, 5, 0, 200]),
      new Uint8Array(5000),
    ];
    for (const j of junk) evil.sendPacket(victim.addr, j);
    for (let i = 0; i < 200; i++) {
      evil.sendPacket(
        victim.addr,
        Uint8Array.from({ length: 1 + (i % 90) }, (_, k) => (k * 31 + i) & 255),
      );
    }
    const garbage = evil.request(victim.addr, new Uint8Array([1, 2, 3]), 1000).catch((e: Error) => e.message);
    const wrongType = evil
      .request(victim.addr, new Uint8Array([0x47, 2, 9, 0, 0, 0, 1, 0]), 1000)
      .catch((e: Error) => e.message);
    await sim.run(2000);
    assert.match(String(await garbage), /handler rejected: swim: malformed stream message: bad magic/);
    assert.match(String(await wrongType), /handler rejected: swim: malformed stream message/);
    assert.ok(victim.swim.stats().malformed >= 200, `malformed ${victim.swim.stats().malformed}`);
    assert.ok(sim.allSize(3));
    sim.stopAll();
  });

  it('stop() leaves no timer behind', async () => {
    const clock = new SimClock();
    const net = new MemoryNetwork({ clock });
    const s = new Swim({ id: 'a', meta: {}, transport: net.transport('a:1'), clock, seeds: ['b:1'] });
    s.start();
    await clock.advance(3000);
    s.stop();
    await clock.advance(60_000);
    assert.equal(clock.pending, 0);
  });
});
