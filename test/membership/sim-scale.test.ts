// 1,000+ simulated members in one process (fake clock, in-memory network, seeded randomness). One
// formed cluster goes through the scenarios below in turn, so its formation is paid once.
// Simulated-time bounds are generous (they are protocol properties, not machine speed).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimCluster, simAddr } from '../../src/membership/testing/index.js';

const N = 1000;
const JOINS = 20;
const cpu0 = process.cpuUsage();

describe(`swim at scale: ${N} simulated members`, () => {
  let sim: SimCluster;
  let n = N;

  before(async () => {
    sim = new SimCluster({ seed: 42, recordChanges: false, config: { reconnectIntervalMs: 3000 } });
    sim.formed(N);
    await sim.run(2000);
    sim.startRecording();
  });

  after(() => {
    sim.stopAll();
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `# sim-scale: ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU, ${sim.net.stats.packetsSent} packets`,
    );
  });

  it(`converges after ${JOINS} simultaneous joins (each through a different seed)`, async () => {
    for (let i = N; i < N + JOINS; i++) sim.add(`n${i}`, simAddr(i), { seeds: [simAddr(i % 97)] });
    n = N + JOINS;
    const t = await sim.runUntil(() => sim.allSize(n), 30_000, 100);
    assert.notEqual(t, -1, 'joins did not converge within 30 s of simulated time');
    console.log(`# ${n} members: ${JOINS} joins converged in ${t} ms (simulated)`);
  });

  it('detects 3 crashed members at 5% datagram loss, and nobody else is accused of death', async () => {
    const t0 = sim.clock.now();
    sim.net.loss = 0.05;
    const victims = ['n10', 'n444', 'n1010'];
    for (const v of victims) sim.crash(v);
    const t = await sim.runUntil(() => victims.every((v) => sim.allSee(v, ['dead'])), 60_000, 100);
    sim.net.loss = 0;
    assert.notEqual(t, -1, 'crashes not detected everywhere');
    const wrong = sim.changesTo('dead', t0).filter((c) => !victims.includes(c.id));
    assert.deepEqual(wrong, []);
    n -= victims.length;
    assert.ok(sim.allSize(n));
    console.log(
      `# ${n + victims.length} members, 5% loss: ${victims.length} crashes known to all in ${t} ms (simulated)`,
    );
  });

  it('a suspected member refutes and stays alive', async () => {
    const t0 = sim.clock.now();
    sim.net.partition(
      [...sim.nodes.values()].filter((x) => x.id !== 'n5').map((x) => x.addr),
      [simAddr(5)],
    );
    await sim.runUntil(() => sim.changesTo('suspect', t0).some((c) => c.id === 'n5'), 10_000, 20);
    sim.net.heal();
    const t = await sim.runUntil(() => sim.allSee('n5', ['alive']), 20_000, 100);
    assert.notEqual(t, -1);
    await sim.run(2000);
    assert.ok(sim.nodes.get('n5')!.swim.stats().refutations >= 1);
    assert.deepEqual(sim.changesTo('dead', t0), []);
  });

  it('a leave is known to all quickly', async () => {
    const t0 = sim.clock.now();
    const leaving = sim.nodes.get('n6')!;
    void leaving.swim.leave(2000);
    const t = await sim.runUntil(() => sim.allSee('n6', ['left']), 10_000, 10);
    assert.notEqual(t, -1);
    leaving.transport.closeNow();
    n -= 1;
    assert.deepEqual(sim.changesTo('suspect', t0), []);
    console.log(`# ${n + 1} members: leave known to all in ${t} ms (simulated)`);
  });

  it('a restarted member (same id, incarnation 0) is accepted', async () => {
    sim.net.setDown(simAddr(10), false);
    sim.add('n10', simAddr(10), { seeds: [simAddr(0)], meta: { grpcAddr: 'restarted:9090', version: '2' } });
    n += 1;
    const t = await sim.runUntil(() => sim.allSee('n10', ['alive']), 20_000, 50);
    assert.notEqual(t, -1);
    assert.ok(sim.allSize(n));
  });

  it('a partition heals into one membership, no member dead after the heal', async () => {
    const island = [...sim.nodes.values()].filter((x) => !x.transport.closed).slice(20, 30);
    const islandAddrs = new Set(island.map((x) => x.addr));
    const main = sim.live().filter((x) => !islandAddrs.has(x.addr));
    sim.net.partition(
      main.map((x) => x.addr),
      [...islandAddrs],
    );
    // Long enough for the main side to declare the island dead; the island only learns of the
    // others' deaths by probing them one by one, so it never sees the whole split — that is fine.
    const split = await sim.runUntil(() => main.every((x) => x.swim.size === main.length), 60_000, 200);
    assert.notEqual(split, -1, 'the main side did not declare the island dead');
    const healedAt = sim.clock.now();
    sim.net.heal();
    const t = await sim.runUntil(() => sim.allSize(n), 60_000, 200);
    assert.notEqual(t, -1, 'sides did not merge');
    await sim.run(3000);
    assert.ok(sim.allSize(n));
    // An island member may still declare a main member dead within one (health-stretched) probe
    // timeout of the heal: its last-chance ping went out before the heal. Later than that, nobody.
    const grace = 250 * 8;
    assert.deepEqual(sim.changesTo('dead', healedAt + grace), []);
    const early = sim.changesTo('dead', healedAt);
    const isIsland = (id: string) => islandAddrs.has(sim.nodes.get(id)!.addr);
    assert.deepEqual(
      early.filter((c) => !isIsland(c.observer) || isIsland(c.id)),
      [],
      'within the grace only island members may declare main members dead',
    );
    console.log(`# ${n} members: partition 10 | ${n - 10} merged ${t} ms after the heal (simulated)`);
  });
});
