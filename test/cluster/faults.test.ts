// The fault suite: a 5-node cluster, each node in its own network namespace, under real failures.
// Scenarios share one cluster and run in order; each asserts its own behaviour and starts by making
// sure all five nodes are up and agree on the ring. Figures go to bench-results/faults-main-*.json.
//
// Client requests go through a load balancer model: requests are spread round-robin over the nodes
// in `cluster.routable`. Before a node is stopped (kill -9 or SIGTERM) the balancer takes it out of
// rotation, as its health check would; what the suite asserts is that the SURVIVORS answer every
// request while the stopped node's keys move (its peers fail over to local loads, then the ring drops it).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { getJson, httpGet, sumField } from '../support/netns/client.js';
import { Cluster, counterGrowth, describeViews, Monitor, REPO_ROOT } from '../support/netns/cluster.js';
import { defaultNodeCommand, type NodeProc, netnsUnavailableReason } from '../support/netns/lab.js';
import { startLoad } from '../support/netns/load.js';
import { expectedValue } from '../support/netns/origin.js';
import { FaultReport } from '../support/netns/report.js';
import { sleep, waitFor } from '../support/wait.js';

const SIZE = 5;
const LOSS_MS = Number(process.env.GOSSIPCACHE_FAULT_LOSS_MS ?? 60_000);
const PARTITION_MS = Number(process.env.GOSSIPCACHE_FAULT_PARTITION_MS ?? 20_000);
const STEADY_MS = 20_000;
const CONVERGE_MS = 60_000; // generous: a shared 2-core box

function skipReason(): string | false {
  const cmd = defaultNodeCommand(REPO_ROOT);
  if (cmd.label === 'dist/cli.js' && !existsSync(join(REPO_ROOT, 'dist/cli.js'))) {
    return 'fault suite: dist/cli.js is not built (npm run build)';
  }
  const why = netnsUnavailableReason();
  return why ? `fault suite skipped: ${why}` : false;
}

const skip = skipReason();
const runTag = Date.now().toString(36);

describe('cluster under faults (5 nodes in network namespaces)', { skip }, () => {
  let cluster: Cluster;
  let monitor: Monitor;
  const nodeLabel = defaultNodeCommand(REPO_ROOT).label;
  // Stand-in runs get their own report name, so faults-main-latest.json is always the real node's.
  const report = new FaultReport(nodeLabel === 'stand-in' ? 'main-standin' : 'main', nodeLabel);

  const name = (n: NodeProc) => `node${n.host.index}`;
  const others = (n: NodeProc) => cluster.nodes.filter((x) => x !== n);

  /** All five running and in rotation, with one ring; restarts whatever a failed scenario left down. */
  async function ensureHealthy(): Promise<void> {
    await cluster.lab.clearRules();
    for (const n of cluster.nodes) {
      if (!n.running) n.start();
    }
    for (const n of cluster.nodes) {
      await cluster.waitReady(n);
      cluster.routable.add(n);
    }
    await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
    monitor.allowDeath = () => false;
    monitor.start(); // also when scenario 1 was filtered out
  }

  // The test process is the clients, the balancer and the origin: if its own event loop stalls, the
  // figures are the machine's, not the cluster's. Its worst lag is reported with every scenario.
  const lag = monitorEventLoopDelay({ resolution: 20 });

  /** Sum of the group's peerErrors (failed fetches from an owner) over these nodes, from /_stats. */
  async function peerErrors(nodes: NodeProc[]): Promise<number> {
    const all = await Promise.all(nodes.map((n) => getJson(n.url('/_stats'))));
    return all.reduce<number>((a, s) => a + (sumField(s, 'peerErrors') ?? 0), 0);
  }

  /** Loads a key set once through all nodes (bounded concurrency), so timed load starts from warm caches. */
  async function warm(keys: string[]): Promise<number> {
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < keys.length) {
        const i = next++;
        await httpGet(cluster.nodes[i % SIZE].url(`/default/${keys[i]}`), 30_000);
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    return Math.round(performance.now() - t0);
  }

  before(async () => {
    cluster = await Cluster.create({ size: SIZE, name: 'faults' });
    monitor = new Monitor(cluster);
    lag.enable();
  });

  let countersBefore = new Map<string, Record<string, number>>();
  let falseDeathsBefore = 0;
  beforeEach(async () => {
    lag.reset();
    cluster?.origin.takeMaxServeMs();
    countersBefore = cluster ? await cluster.counters() : new Map();
    falseDeathsBefore = monitor.falseDeaths.length;
  });

  afterEach(async (t) => {
    const scenario = report.results.find((r) => r.scenario[0] === t.name[0]);
    if (!scenario) return;
    const grown = counterGrowth(countersBefore, await cluster.counters());
    const delta = (k: string) => grown[k] ?? 0;
    report.record(scenario.scenario, {
      falseDeaths: monitor.falseDeaths.length - falseDeathsBefore,
      suspicionsAtNodes: delta('suspicions'),
      refutations: delta('refutations'),
      nodeTimerStalls: delta('stalls'),
      testLoopLagMaxMs: Math.round(lag.max / 1e6),
      originMaxServeMs: cluster.origin.takeMaxServeMs(),
    });
  });

  after(async () => {
    lag.disable();
    monitor?.stop();
    const left = cluster ? await cluster.destroy() : [];
    if (left.length) report.record('teardown', { leftovers: left.join(' ') });
    const file = report.write(join(REPO_ROOT, 'bench-results'));
    console.log(`${report.table()}\nreport: ${file}\nnode logs: ${cluster?.logDir}`);
    assert.deepEqual(left, [], 'teardown left namespaces/links behind');
  });

  it('1. five nodes started in random order with one DNS seed name converge on one ring', async () => {
    const order = [...cluster.nodes].sort(() => Math.random() - 0.5);
    const t0 = performance.now();
    for (const n of order) {
      n.start();
      await sleep(Math.floor(Math.random() * 400));
    }
    const lastStart = performance.now();
    monitor.start();
    for (const n of cluster.nodes) {
      await cluster.waitReady(n);
      cluster.routable.add(n);
    }
    const convergeMs = await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
    const views = await cluster.views();
    report.record('1 random-order start', {
      order: order.map(name).join('>'),
      startSpreadMs: Math.round(lastStart - t0),
      convergeAfterLastStartMs: Math.round(performance.now() - lastStart),
      convergePollMs: convergeMs,
    });
    for (const [n, v] of views) {
      assert.ok(v, `${name(n)} answers /_cluster`);
      assert.equal(
        v.members.filter((m) => m.state === 'alive').length,
        SIZE,
        `${name(n)} sees 5 alive\n${describeViews(views)}`,
      );
      assert.ok(
        v.checksum,
        `${name(n)} reports a ring checksum (field not found in /_cluster: ${JSON.stringify(v.raw).slice(0, 300)})`,
      );
    }
    report.pass('1 random-order start');
  });

  it('2. herd: 500 concurrent gets of 20 fresh keys over all nodes load each key exactly once', async () => {
    await ensureHealthy();
    const keys = Array.from({ length: 20 }, (_, i) => `herd-${runTag}-${i}`);
    cluster.origin.setDelay(300); // a slow origin so that the 500 misses overlap
    const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
    try {
      const t0 = performance.now();
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, j) => {
          const key = keys[j % 20];
          const node = cluster.nodes[Math.floor(j / 20) % SIZE]; // every key through every node
          return httpGet(node.url(`/default/${key}`), 30_000, agent).then((r) => ({ r, key }));
        }),
      );
      const bad = results.filter(({ r, key }) => r.status !== 200 || r.body !== expectedValue(key));
      const loads = keys.map((k) => cluster.origin.loads(k));
      const total = loads.reduce((a, b) => a + b, 0);
      report.record('2 herd', {
        requests: 500,
        failed: bad.length,
        originLoads: total,
        maxLoadsPerKey: Math.max(...loads),
        wallMs: Math.round(performance.now() - t0),
      });
      assert.deepEqual(
        bad.slice(0, 5).map(({ r, key }) => `${key}: ${r.status} ${r.error ?? r.body.slice(0, 80)}`),
        [],
      );
      assert.deepEqual(
        loads,
        keys.map(() => 1),
        `each key loaded once at the origin (per key: ${loads.join(',')})`,
      );
      report.pass('2 herd');
    } finally {
      agent.destroy();
      cluster.origin.setDelay(0);
    }
  });

  it('3. kill -9 under steady load: no failed requests, dead node leaves every ring, restart rejoins and owns keys', async () => {
    await ensureHealthy();
    const victim = cluster.nodes[1 + Math.floor(Math.random() * (SIZE - 1))];
    const survivors = others(victim);
    const steadyKeys = Array.from({ length: 500 }, (_, i) => `steady-${runTag}-${i}`);
    report.record('3 kill -9 + restart', { warmMs: await warm(steadyKeys) });
    const load = startLoad({
      rate: 300,
      durationMs: STEADY_MS,
      targets: () => cluster.targets(),
      key: () => steadyKeys[Math.floor(Math.random() * steadyKeys.length)],
      timeoutMs: 30_000,
    });
    let restartReadyMs = 0;
    let detectMs = 0;
    let rejoinMs = 0;
    try {
      await sleep(5_000);
      cluster.routable.delete(victim); // the balancer's health check takes it out of rotation
      await waitFor('in-flight requests to the victim to finish', () => load.inFlight(victim.httpUrl) === 0, {
        timeoutMs: 35_000, // the client timeout (30 s) bounds it
        intervalMs: 20,
      });
      monitor.allowDeath = (_o, s) => s === victim;
      const peerErrorsBefore = await peerErrors(survivors);
      await victim.stop('SIGKILL');
      // Detection: every survivor's ring drops the victim and the survivors agree on one checksum.
      detectMs = await cluster.waitConverged(survivors, CONVERGE_MS);
      // Fetches the survivors tried from the dead owner meanwhile (each then loaded locally).
      report.record('3 kill -9 + restart', {
        survivorPeerErrors: (await peerErrors(survivors)) - peerErrorsBefore,
      });
      const views = await cluster.views(survivors);
      for (const [n, v] of views) {
        const m = v?.members.find((x) => x.grpcAddr === victim.grpcAddr);
        assert.ok(
          !m || m.state === 'dead',
          `${name(n)} holds the killed node as dead or not at all, got ${m?.state}`,
        );
      }
      victim.start();
      restartReadyMs = await cluster.waitReady(victim);
      cluster.routable.add(victim);
      rejoinMs = await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
      monitor.allowDeath = () => false;
      report.record('3 kill -9 + restart', {
        victim: name(victim),
        detectMs,
        restartReadyMs,
        rejoinAfterReadyMs: rejoinMs,
      });
    } finally {
      monitor.allowDeath = () => false;
    }
    const r = await load.done;
    report.record('3 kill -9 + restart', {
      rate: 300,
      sent: r.sent,
      ok: r.ok,
      failed: r.failed,
      shed: r.shed,
      retried: r.retried,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
    });
    if (r.failed)
      report.record(
        '3 kill -9 + restart',
        {},
        r.failures.slice(0, 3).map((f) => JSON.stringify(f)),
      );
    assert.equal(r.failed, 0, `failed client requests: ${JSON.stringify(r.failures.slice(0, 5))}`);
    // Owns keys again: fresh keys asked only through the other nodes get loaded by the victim too.
    const own = Array.from({ length: 100 }, (_, i) => `own-${runTag}-${i}`);
    const asks = await Promise.all(
      own.map((k, i) => httpGet(survivors[i % survivors.length].url(`/default/${k}`), 15_000)),
    );
    assert.deepEqual(
      asks.filter((a) => a.status !== 200).map((a) => `${a.status} ${a.error ?? a.body}`),
      [],
    );
    const byIp = cluster.origin.loadsByIp(`own-${runTag}-`);
    report.record('3 kill -9 + restart', { ownedByRestartedOf100: byIp.get(victim.host.ip) ?? 0 });
    assert.ok(
      (byIp.get(victim.host.ip) ?? 0) > 0,
      `restarted ${name(victim)} owns keys again: loads by ip ${JSON.stringify([...byIp])}`,
    );
    // Deaths of nodes other than the victim are reported (falseDeaths), not asserted here: the issue
    // asserts them under partition heal and packet loss (scenarios 4 and 5).
    report.pass('3 kill -9 + restart');
  });

  it(`4. partition 2|3 for ${PARTITION_MS / 1000} s: both sides serve; heal gives one ring and marks no healthy node dead`, async () => {
    await ensureHealthy();
    const a = cluster.nodes.slice(0, 2);
    const b = cluster.nodes.slice(2);
    const side = (n: NodeProc) => (a.includes(n) ? 'a' : 'b');
    const scenarioStart = Date.now();
    const partKeys = Array.from({ length: 500 }, (_, i) => `part-${runTag}-${i}`);
    report.record('4 partition 2|3', { warmMs: await warm(partKeys) });
    const load = startLoad({
      rate: 100,
      durationMs: PARTITION_MS + 10_000,
      targets: () => cluster.targets(),
      key: () => partKeys[Math.floor(Math.random() * partKeys.length)],
      timeoutMs: 30_000,
    });
    monitor.allowDeath = (o, s) => side(o) !== side(s);
    const tApply = performance.now();
    await cluster.lab.partition(
      a.map((n) => n.host),
      b.map((n) => n.host),
    );
    const t0 = performance.now(); // the partition holds from here
    report.record('4 partition 2|3', { applyMs: Math.round(t0 - tApply) });
    let splitA = -1;
    let splitB = -1;
    // Each side should come to agree on its own ring while the partition lasts (recorded, not asserted:
    // with long suspicion timeouts a side may still hold the others as suspect, which is also correct).
    const sideRings = Promise.all([
      cluster.waitConverged(a, PARTITION_MS).then(
        (ms) => (splitA = ms),
        () => -1,
      ),
      cluster.waitConverged(b, PARTITION_MS).then(
        (ms) => (splitB = ms),
        () => -1,
      ),
    ]);
    await sleep(Math.max(0, PARTITION_MS - (performance.now() - t0)));
    await sideRings;
    const healAt = Date.now();
    await cluster.lab.clearRules();
    const healedAt = Date.now(); // every rule gone
    // From now on, every death is false: once an observer sees a member alive after the heal, it must
    // never see it dead again.
    const seenAliveAfterHeal = new Set<string>();
    monitor.allowDeath = (o, s) => !seenAliveAfterHeal.has(`${o.host.index}|${s.grpcAddr}`);
    const tracker = setInterval(() => {
      for (const e of monitor.since(healAt))
        if (e.to === 'alive') seenAliveAfterHeal.add(`${e.observer}|${e.subject}`);
    }, 100);
    let healMs = -1;
    try {
      healMs = await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
      await sleep(3_000); // watch a little longer for flapping
    } finally {
      clearInterval(tracker);
    }
    const r = await load.done;
    // Monitor view: an observer saw a member alive after the heal, then dead.
    const afterHeal = monitor.since(healAt);
    const flaps = afterHeal.filter(
      (e) =>
        e.to === 'dead' &&
        afterHeal.some(
          (a) => a.to === 'alive' && a.observer === e.observer && a.subject === e.subject && a.t < e.t,
        ),
    );
    // Node logs (exact times): any member declared dead after the heal, with 1 s of grace for a
    // suspicion that expires before a packet could cross the healed link.
    const deathsAfterHeal = cluster
      .loggedDeaths(healedAt)
      .map((d) => ({ ...d, afterHealMs: d.t - healedAt }))
      .filter((d) => cluster.byGrpcAddr(d.subject)?.running);
    const lateDeaths = deathsAfterHeal.filter((d) => d.afterHealMs > 1_000);
    const sameSideDeaths = monitor.falseDeaths.filter((e) => e.t >= scenarioStart && e.t < healAt);
    report.record('4 partition 2|3', {
      partitionMs: PARTITION_MS,
      sideARingMs: splitA,
      sideBRingMs: splitB,
      healMs,
      sent: r.sent,
      failed: r.failed,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
      healedAt: new Date(healedAt).toISOString(),
      deadAfterHeal: flaps.length,
      loggedDeathsAfterHeal:
        deathsAfterHeal.map((d) => `node${d.observer}->${d.subject}@+${d.afterHealMs}ms`).join(' ') || 0,
      // Reported, not asserted (the issue asserts the heal): on a 2-node side the indirect probes all
      // go to the unreachable side, so a CPU-starved peer can be declared dead by its only neighbour.
      sameSideDeaths: sameSideDeaths.map((e) => `node${e.observer}->${e.subject}`).join(' ') || 0,
    });
    monitor.allowDeath = () => false;
    if (r.failed)
      report.record(
        '4 partition 2|3',
        {},
        r.failures.slice(0, 3).map((f) => JSON.stringify(f)),
      );
    assert.equal(r.failed, 0, `failed client requests: ${JSON.stringify(r.failures.slice(0, 5))}`);
    assert.deepEqual(flaps, [], 'no healthy node marked dead during the heal (monitor)');
    assert.deepEqual(
      lateDeaths.map(
        (d) => `node${d.observer} declared ${d.subject} dead ${d.afterHealMs} ms after the heal`,
      ),
      [],
      'no healthy node marked dead during the heal (node logs)',
    );
    report.pass('4 partition 2|3');
  });

  it(`5. 10% packet loss on every node for ${LOSS_MS / 1000} s: no false deaths, requests succeed`, async () => {
    await ensureHealthy();
    const lossKeys = Array.from({ length: 500 }, (_, i) => `loss-${runTag}-${i}`);
    report.record('5 10% loss', { warmMs: await warm(lossKeys) });
    const t0 = Date.now();
    const deathsBefore = monitor.falseDeaths.length;
    const suspectsBefore = monitor.suspects;
    await cluster.lab.packetLoss(
      cluster.nodes.map((n) => n.host),
      0.1,
    );
    const rules = cluster.lab.rules(cluster.nodes[0].host);
    assert.match(rules, /statistic --mode random --probability 0\.1/, 'loss rule is in place');
    const load = startLoad({
      rate: 100,
      durationMs: LOSS_MS,
      targets: () => cluster.targets(),
      key: () => lossKeys[Math.floor(Math.random() * lossKeys.length)],
      timeoutMs: 30_000,
    });
    const r = await load.done;
    await cluster.lab.clearRules();
    const deaths = monitor.falseDeaths.slice(deathsBefore);
    report.record('5 10% loss', {
      lossMs: LOSS_MS,
      sent: r.sent,
      failed: r.failed,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      maxMs: r.maxMs,
      suspicions: monitor.suspects - suspectsBefore,
      falseDeaths: deaths.length,
    });
    if (r.failed)
      report.record(
        '5 10% loss',
        {},
        r.failures.slice(0, 3).map((f) => JSON.stringify(f)),
      );
    assert.equal(r.failed, 0, `failed client requests: ${JSON.stringify(r.failures.slice(0, 5))}`);
    assert.deepEqual(
      deaths.map((e) => `node${e.observer} saw ${e.subject} dead at +${e.t - t0} ms`),
      [],
      'no false deaths',
    );
    await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
    report.pass('5 10% loss');
  });

  it('6. graceful leave (SIGTERM) under load: no failed requests, the others drop it at once', async () => {
    await ensureHealthy();
    const leaver = cluster.nodes[1 + Math.floor(Math.random() * (SIZE - 1))];
    const rest = others(leaver);
    const leaveKeys = Array.from({ length: 500 }, (_, i) => `leave-${runTag}-${i}`);
    report.record('6 graceful leave', { warmMs: await warm(leaveKeys) });
    const load = startLoad({
      rate: 200,
      durationMs: 10_000,
      targets: () => cluster.targets(),
      key: () => leaveKeys[Math.floor(Math.random() * leaveKeys.length)],
      timeoutMs: 30_000,
    });
    await sleep(3_000);
    const t0 = Date.now();
    // Balancer removal and SIGTERM at the same moment (as in Kubernetes): requests already in flight
    // to the leaver must still be answered by it.
    cluster.routable.delete(leaver);
    monitor.allowDeath = (_o, s) => s === leaver && !leaver.running;
    const stopped = leaver.stop('SIGTERM');
    const dropMs = await cluster.waitConverged(rest, CONVERGE_MS);
    // How each other node holds the leaver right when its ring dropped it: 'left' (told) or absent
    // is a graceful leave; 'dead' means it was found missing by failure detection instead.
    const heldAs = [...(await cluster.views(rest))].map(
      ([n, v]) => `${name(n)}:${v?.members.find((m) => m.grpcAddr === leaver.grpcAddr)?.state ?? 'absent'}`,
    );
    await stopped;
    const r = await load.done;
    await monitor.poll();
    const seen = monitor.since(t0).filter((e) => e.subject === leaver.grpcAddr);
    const deadSightings = [
      ...seen.filter((e) => e.to === 'dead').map((e) => `node${e.observer} (monitor)`),
      ...heldAs.filter((h) => h.endsWith(':dead')),
    ];
    report.record('6 graceful leave', {
      leaver: name(leaver),
      dropMs,
      exitCode: String(leaver.exitInfo?.code),
      sent: r.sent,
      failed: r.failed,
      p99Ms: r.p99Ms,
      heldAs: heldAs.join(' '),
      seenDeadInsteadOfLeft: deadSightings.length,
    });
    monitor.allowDeath = () => false;
    if (r.failed)
      report.record(
        '6 graceful leave',
        {},
        r.failures.slice(0, 3).map((f) => JSON.stringify(f)),
      );
    assert.equal(r.failed, 0, `failed client requests: ${JSON.stringify(r.failures.slice(0, 5))}`);
    assert.equal(
      leaver.exitInfo?.code,
      0,
      `SIGTERM exits 0, got ${JSON.stringify(leaver.exitInfo)}\n${leaver.logTail()}`,
    );
    assert.deepEqual(deadSightings, [], 'the others saw it leave (state left), not die');
    // "At once": well before failure detection could have removed it (suspicion ≥ 2 probe rounds).
    assert.ok(dropMs < 10_000, `every other node dropped it from its ring within 10 s (took ${dropMs} ms)`);
    report.pass('6 graceful leave');
  });

  it('8. rolling restart of all 5 under steady load: no failed requests, warm keys stay warm (handoff)', async () => {
    await ensureHealthy();
    const keys = Array.from({ length: 1000 }, (_, i) => `roll-${runTag}-${i}`);
    report.record('8 rolling restart', { warmKeys: keys.length, warmMs: await warm(keys) });
    const loadsOf = () => keys.reduce((a, k) => a + cluster.origin.loads(k), 0);
    const warmLoads = loadsOf();
    const load = startLoad({
      rate: 100,
      durationMs: 15 * 60_000, // stopped when the restart is over
      targets: () => cluster.targets(),
      key: () => keys[Math.floor(Math.random() * keys.length)],
      timeoutMs: 30_000,
    });
    await sleep(2_000);
    const t0 = Date.now();
    // One node at a time, as a deployment does: out of rotation, SIGTERM (it hands its values to their
    // next owners, then leaves), start again, ready, back in rotation.
    for (const n of cluster.nodes) {
      cluster.routable.delete(n);
      monitor.allowDeath = (_o, s) => s === n && !n.running;
      await n.stop('SIGTERM');
      assert.equal(n.exitInfo?.code, 0, `SIGTERM exits 0, got ${JSON.stringify(n.exitInfo)}\n${n.logTail()}`);
      await cluster.waitConverged(others(n), CONVERGE_MS);
      n.start();
      await cluster.waitReady(n);
      await cluster.waitConverged(cluster.nodes, CONVERGE_MS);
      cluster.routable.add(n);
      monitor.allowDeath = () => false;
    }
    const restartMs = Date.now() - t0;
    await sleep(2_000);
    const r = await load.stop();
    const reloads = loadsOf() - warmLoads;
    // Every key read after the restart: warm ones must come from the caches, not the origin.
    await warm(keys);
    const reloadsAfterReadAll = loadsOf() - warmLoads;
    report.record('8 rolling restart', {
      restartMs,
      sent: r.sent,
      failed: r.failed,
      p99Ms: r.p99Ms,
      originLoadsDuringRestart: reloads,
      originLoadsAfterReadingAll: reloadsAfterReadAll,
      reloadedPct: Number(((100 * reloadsAfterReadAll) / keys.length).toFixed(1)),
    });
    if (r.failed)
      report.record(
        '8 rolling restart',
        {},
        r.failures.slice(0, 3).map((f) => JSON.stringify(f)),
      );
    assert.equal(r.failed, 0, `failed client requests: ${JSON.stringify(r.failures.slice(0, 5))}`);
    assert.ok(
      reloadsAfterReadAll <= 0.05 * keys.length,
      `origin loads during the rolling restart: ${reloadsAfterReadAll} of ${keys.length} warm keys`,
    );
    report.pass('8 rolling restart');
  });
});
