// Warm handoff across membership changes (docs/handoff.md), on the in-process harness: scale-out,
// restart and graceful leave load nothing again from the getter; removes are not undone by a handoff;
// TTLs travel; nodes that disagree about the ring do not ask each other in a circle; hot-cache mirrors
// have a maximum age.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Group, GroupRegistry, type HandoffEntry, type Peer } from '../../src/index.js';
import { Cluster, fakeClock } from '../support/in-process-cluster.js';
import { sleep } from '../support/wait.js';

const WINDOW = 60_000;
const KEYS = Array.from({ length: 300 }, (_, i) => `key${i}`);

/** A cluster of `nodes` whose getter answers `v<version>:<key>`; `version` changes what the origin says. */
function cluster(
  nodes: number,
  handoffWindowMs = WINDOW,
  extra: Partial<ConstructorParameters<typeof Cluster>[0]> = {},
) {
  const clock = fakeClock();
  const origin = { version: 1 };
  const c = new Cluster({
    nodes,
    handoffWindowMs,
    now: clock.now,
    getter: async (key) => `v${origin.version}:${key}`,
    ...extra,
  });
  return { c, clock, origin };
}

/** Reads every key through node `(i + offset) % members.length`, checking each value. */
async function readAll(c: Cluster, members: number[], offset = 0, version = 1): Promise<void> {
  for (let i = 0; i < KEYS.length; i++) {
    const node = members[(i + offset) % members.length];
    assert.equal(await c.nodes[node].group.getString(KEYS[i]), `v${version}:${KEYS[i]}`);
  }
}

describe('warm handoff (in-process cluster)', () => {
  it('scale-out 3 → 5: the new owners take their keys from the previous owners, 0 getter calls', async () => {
    const { c, clock } = cluster(5);
    c.setRing([0, 1, 2]);
    await readAll(c, [0, 1, 2]);
    const warm = c.totalGetterCalls();
    assert.equal(warm, KEYS.length);
    const missesBefore = c.sum('handoffMisses'); // a new cluster's cold loads ask too (its window is open)
    clock.advance(WINDOW * 2); // the first ring's window is long over: only the join opens it again
    // Nodes 3 and 4 start now (fresh processes) and join.
    c.restart(3, [0, 1, 2, 3, 4]);
    c.restart(4, [0, 1, 2, 3, 4]);
    c.setRing([0, 1, 2, 3, 4], [0, 1, 2]);
    await readAll(c, [0, 1, 2, 3, 4], 1);
    assert.equal(c.totalGetterCalls() - warm, 0, 'keys loaded again from the getter after scale-out');
    // Both new nodes got about 2/5 of the keys, all by handoff.
    const moved = c.nodes[3].group.stats.handoffHits + c.nodes[4].group.stats.handoffHits;
    assert.ok(moved > KEYS.length / 4, `only ${moved} keys handed off`);
    assert.equal(c.sum('handoffMisses'), missesBefore);
    assert.ok(c.sum('handoffBytes') > 0);
    c.close();
  });

  it('without handoff the same scale-out loads the moved keys again (what the test above guards)', async () => {
    const { c } = cluster(5, 0);
    c.setRing([0, 1, 2]);
    await readAll(c, [0, 1, 2]);
    const warm = c.totalGetterCalls();
    c.setRing([0, 1, 2, 3, 4]);
    await readAll(c, [0, 1, 2, 3, 4], 1);
    assert.ok(c.totalGetterCalls() - warm > KEYS.length / 4);
    assert.equal(c.sum('handoffHits'), 0);
    c.close();
  });

  it('graceful leave, then restart of the same node: 0 getter calls, during the absence and after', async () => {
    const { c, clock } = cluster(5);
    const all = [0, 1, 2, 3, 4];
    await readAll(c, all);
    const warm = c.totalGetterCalls();
    clock.advance(WINDOW * 2);
    // Node 2 leaves: it pushes its entries to their next owners while still a member, then the others
    // drop it from their rings.
    const owned = c.nodes[2].group.cacheStats('main').items;
    const r = await c.nodes[2].group.handOff();
    assert.equal(r.entries, owned);
    assert.equal(r.skipped, 0);
    assert.equal(c.sum('handoffAccepted'), owned);
    c.nodes[2].faults.down = true;
    c.setRing([0, 1, 3, 4]);
    await readAll(c, [0, 1, 3, 4], 2);
    assert.equal(c.totalGetterCalls() - warm, 0, 'keys loaded again while node 2 was away');
    // It comes back empty; its keys are at the members that stood in for it.
    c.nodes[2].faults.down = false;
    c.restart(2, all);
    c.setRing(all, [0, 1, 3, 4]);
    await readAll(c, all, 3);
    assert.equal(c.totalGetterCalls() - warm, 0, 'keys loaded again after the restart');
    assert.ok(c.nodes[2].group.stats.handoffHits > 0);
    c.close();
  });

  it('a rolling restart of all 5 nodes loads 0 keys again', async () => {
    const { c, clock } = cluster(5);
    const all = [0, 1, 2, 3, 4];
    await readAll(c, all);
    const warm = c.totalGetterCalls();
    for (const i of all) {
      clock.advance(10_000);
      await c.nodes[i].group.handOff();
      const others = all.filter((m) => m !== i);
      c.setRing(others);
      c.restart(i, all);
      c.setRing(all, others);
      await readAll(c, all, i);
    }
    assert.equal(c.totalGetterCalls() - warm, 0);
    c.close();
  });

  it('an owner that left before the others noticed: their fallback asks its next member, not the getter', async () => {
    const { c, clock } = cluster(3);
    await readAll(c, [0, 1, 2]);
    const warm = c.totalGetterCalls();
    clock.advance(WINDOW * 2); // steady state: the window is closed everywhere
    await c.nodes[2].group.handOff();
    c.nodes[2].faults.down = true; // gone, but still on every ring
    await readAll(c, [0, 1], 1);
    assert.equal(c.totalGetterCalls() - warm, 0);
    assert.ok(c.sum('peerErrors') > 0);
    c.close();
  });

  it('a key removed cluster-wide is not brought back by a node that missed the remove', async () => {
    const { c, clock, origin } = cluster(4);
    c.setRing([0, 1, 2]);
    // A key that node 3 will own, now owned by one of 0..2 (its runner-up once 3 joins).
    const key = KEYS.find((k) => c.ownerOf(k) === 3) as string;
    await c.nodes[0].group.getString(key);
    const holder = c.nodes.findIndex((n) => n.group.cacheStats('main').items === 1);
    assert.ok(holder >= 0 && holder < 3);
    const remover = (holder + 1) % 3;
    clock.advance(WINDOW * 2);
    c.restart(3, [0, 1, 2, 3]);
    c.setRing([0, 1, 2, 3], [0, 1, 2]);
    // The holder misses the remove (frozen, partitioned); everyone else, node 3 included, applies it.
    c.nodes[holder].faults.dropRemoves = true;
    origin.version = 2;
    await c.nodes[remover].group.remove(key);
    assert.equal(c.nodes[holder].group.server.handoffEntry(key)?.value.toString(), `v1:${key}`);
    // Node 3 owns the key and remembers the remove: no handoff, the getter answers.
    assert.equal(await c.nodes[remover].group.getString(key), `v2:${key}`);
    assert.equal(c.nodes[3].group.stats.handoffHits, 0);
    assert.equal(c.nodes[holder].handoffsReceived, 0);
    // And the holder's leave push does not bring it back either.
    c.nodes[3].group.server.removeLocal(key);
    const pushed = c.nodes[3].group.server.acceptHandoff([{ key, value: Buffer.from(`v1:${key}`) }]);
    assert.equal(pushed, 0);
    c.close();
  });

  it('tombstones are bounded: after tombstoneMs, or beyond maxTombstones, a handoff is taken again', async () => {
    const { c, clock } = cluster(2, WINDOW, { groupOptions: { tombstoneMs: 10_000, maxTombstones: 2 } });
    const key = c.keyOwnedBy(1);
    const g = c.nodes[1].group.server;
    // Node 0 holds a copy; node 1 (the owner) removed the key locally and is asked to take a push.
    g.removeLocal(key);
    const entry = [{ key, value: Buffer.from('v0') }];
    assert.equal(g.acceptHandoff(entry), 0, 'refused while the tombstone lives');
    clock.advance(10_000);
    assert.equal(g.acceptHandoff(entry), 1, 'taken once the tombstone is over');
    // Only the 2 most recent removes are remembered.
    const [a, b, d] = ['t-a', 't-b', 't-d'];
    for (const k of [a, b, d]) g.removeLocal(k);
    assert.equal(g.acceptHandoff([{ key: a, value: Buffer.from('x') }]), 1, 'the oldest was forgotten');
    assert.equal(g.acceptHandoff([{ key: d, value: Buffer.from('x') }]), 0);
    c.close();
  });

  it('the remaining TTL travels with a handoff, and an expired value is not handed off', async () => {
    const { c, clock } = cluster(4, WINDOW, {
      getter: async (key) => ({ value: `v:${key}`, ttlMs: 10_000 }),
    });
    c.setRing([0, 1, 2]);
    const [a, b] = KEYS.filter((k) => c.ownerOf(k) === 3);
    await c.nodes[0].group.getString(a);
    await c.nodes[0].group.getString(b);
    const loads = c.totalGetterCalls();
    clock.advance(4_000);
    c.restart(3, [0, 1, 2, 3]);
    c.setRing([0, 1, 2, 3], [0, 1, 2]);
    const e = await c.nodes[3].group.getEntry(a);
    assert.equal(e.ttlMs, 6_000);
    assert.equal(c.totalGetterCalls(), loads);
    clock.advance(7_000); // b expired at its old owner: it is loaded again, with a fresh TTL
    const f = await c.nodes[3].group.getEntry(b);
    assert.equal(f.ttlMs, 10_000);
    assert.equal(c.totalGetterCalls(), loads + 1);
    c.close();
  });

  it('two nodes that disagree about the ring finish in bounded time (handoff is cache-only)', async () => {
    const { c } = cluster(2);
    // Node 0 thinks node 1 owns everything, node 1 thinks node 0 does (each sees only the other).
    c.setRing([1], [0]);
    c.setRing([0], [1]);
    const t0 = performance.now();
    assert.equal(await c.nodes[0].group.getString('a'), 'v1:a');
    assert.equal(await c.nodes[1].group.getString('b'), 'v1:b');
    // Each get: forwarded once, the owner-in-its-view asks the other one handoff question, which is
    // answered from the cache only (a miss) instead of being forwarded back; then the getter.
    assert.equal(c.totalGetterCalls(), 2);
    assert.equal(c.nodes[0].handoffsReceived, 1);
    assert.equal(c.nodes[1].handoffsReceived, 1);
    assert.equal(c.nodes[0].peerGetsReceived + c.nodes[1].peerGetsReceived, 2);
    assert.ok(performance.now() - t0 < 5_000);
    c.close();
  });

  it('a slow previous holder costs one bounded wait, then the getter runs', async () => {
    const { c, clock } = cluster(3, WINDOW, { groupOptions: { handoffTimeoutMs: 50 } });
    c.setRing([0, 1]);
    const key = KEYS.find((k) => c.ownerOf(k) === 2) as string;
    await c.nodes[0].group.getString(key);
    clock.advance(WINDOW * 2);
    c.restart(2, [0, 1, 2]); // starts now and joins
    c.setRing([0, 1, 2], [0, 1]);
    c.nodes[0].faults.hang = true;
    c.nodes[1].faults.hang = true;
    const t0 = performance.now();
    assert.equal(await c.nodes[2].group.getString(key), `v1:${key}`);
    const ms = performance.now() - t0;
    assert.ok(ms >= 90, `two candidates, 50 ms each: waited ${ms} ms`);
    assert.ok(ms < 2_000, `waited ${ms} ms`);
    assert.equal(c.nodes[2].group.stats.handoffMisses, 1);
    c.close();
  });

  it('steady state: outside the window a miss at the owner asks nobody', async () => {
    const { c, clock } = cluster(3);
    clock.advance(WINDOW);
    await readAll(c, [0, 1, 2]);
    assert.equal(c.nodes[0].handoffsReceived + c.nodes[1].handoffsReceived + c.nodes[2].handoffsReceived, 0);
    assert.equal(c.sum('handoffMisses'), 0);
    c.close();
  });

  it('a hot-cache mirror stops being served hotMaxAgeMs after a remove its node missed', async () => {
    const { c, clock, origin } = cluster(2, 0, { groupOptions: { hotMaxAgeMs: 5_000 } });
    const key = c.keyOwnedBy(1);
    assert.equal(await c.nodes[0].group.getString(key), `v1:${key}`);
    assert.equal(c.nodes[0].group.cacheStats('hot').items, 1, 'mirrored');
    c.nodes[0].faults.dropRemoves = true;
    origin.version = 2;
    await c.nodes[1].group.remove(key);
    assert.equal(await c.nodes[0].group.getString(key), `v1:${key}`, 'the stale mirror (bounded)');
    clock.advance(5_000);
    assert.equal(await c.nodes[0].group.getString(key), `v2:${key}`);
    c.close();
  });

  it('a leave push is bounded in bytes, hottest first, and never evicts the receiver', async () => {
    const { c } = cluster(2, WINDOW, { cacheBytes: 1_000 });
    const own = KEYS.filter((k) => c.ownerOf(k) === 0).slice(0, 20);
    for (const k of own) await c.nodes[0].group.getString(k);
    for (let i = 0; i < 5; i++) await c.nodes[0].group.getString(own[3]); // the hottest
    const r = await c.nodes[0].group.handOff({ maxBytes: 20 });
    assert.equal(r.entries, 1);
    assert.equal(c.nodes[1].group.server.handoffEntry(own[3])?.value.toString(), `v1:${own[3]}`);
    // Fill node 1: a push that does not fit is refused rather than evicting.
    for (const k of KEYS.filter((k) => c.ownerOf(k) === 1).slice(0, 200)) await c.nodes[1].group.getString(k);
    const before = c.nodes[1].group.cacheStats('main').evictions;
    assert.ok(before > 0, 'node 1 is full');
    const r2 = await c.nodes[0].group.handOff();
    assert.equal(r2.entries, 0);
    assert.ok(r2.sent > 0);
    assert.equal(c.nodes[1].group.cacheStats('main').evictions, before);
    c.close();
  });

  it('a push is refused when only the per-item overhead fills the budget (it would evict at the next load)', async () => {
    // 4 MiB budget of 200k-ish small items: key + value bytes alone leave room, their overhead does not
    const { c } = cluster(1, WINDOW, { cacheBytes: 4 << 20 });
    const g = c.nodes[0].group;
    let i = 0;
    while (g.cacheStats('main').evictions === 0) await g.getString(`k${i++}`);
    const main = g.cacheStats('main');
    assert.ok(main.bytes + 20 < 4 << 20, 'key + value bytes alone leave room');
    assert.equal(g.server.acceptHandoff([{ key: 'pushed', value: Buffer.from('x') }]), 0);
    assert.equal(g.server.handoffEntry('pushed'), undefined);
    assert.equal(g.cacheStats('main').evictions, main.evictions, 'nothing of its own was evicted');
    c.close();
  });

  it('a push the store refuses leaves the hot-cache mirror it would have replaced', async () => {
    const big = 'x'.repeat(512 << 10);
    const { c } = cluster(2, WINDOW, {
      cacheBytes: 4 << 20,
      getter: async (key: string) => (key.startsWith('big') ? big : `v1:${key}`),
      // Refused for limbo, not for the glibc reserve this process may keep (tested on its own).
      groupOptions: { heapHoleReserveBytes: 0 },
    });
    const g = c.nodes[0].group;
    const mirrored = c.keyOwnedBy(1);
    assert.equal(await g.getString(mirrored), `v1:${mirrored}`);
    assert.equal(g.cacheStats('hot').items, 1, 'mirrored');
    // Large values churned through node 0 while a slow reader still holds them: evicted, they wait for
    // the collector (limbo) past its allowance, and the store takes no new large value for now.
    const held: Buffer[] = [];
    const bigKeys: string[] = [];
    for (let i = 0; bigKeys.length < 80; i++) if (c.ownerOf(`big${i}`) === 0) bigKeys.push(`big${i}`);
    for (const k of bigKeys) held.push(await g.get(k));
    for (const k of bigKeys) await g.remove(k); // free room in the budget; the bytes stay in limbo
    const mem = g.memoryStats();
    assert.ok(mem.limboBytes > 16 << 20, 'limbo is past its allowance');
    // Fits the budget (main is empty now), but not the store's limit while limbo waits.
    const pushed = Buffer.alloc(2 << 20, 'p');
    assert.ok(mem.heldBytes - (16 << 20) + pushed.length > mem.limitBytes, 'limbo stands in the way');
    assert.equal(g.server.acceptHandoff([{ key: mirrored, value: pushed }]), 0, 'refused by the store');
    assert.equal(g.cacheStats('hot').items, 1, 'the mirror is still held');
    assert.equal(await g.getString(mirrored), `v1:${mirrored}`);
    assert.equal(held.length, 80);
    c.close();
  });

  it('a walk cut short by its time budget still hands off a hot key placed before the others', async () => {
    // Eviction is CLOCK (KeyIndex.victim): a hit leaves its item where it is, so a key read all along but
    // loaded first sits at the oldest end of the walk — the end a huge cache's walk leaves out.
    const pushed: string[] = [];
    const successor = {
      id: 'next',
      get: async () => {
        throw new Error('not asked');
      },
      push: async (_group: string, entries: HandoffEntry[]) => {
        for (const e of entries) pushed.push(e.key);
        return entries.length;
      },
    } satisfies Peer;
    const clock = fakeClock();
    const g = new Group({
      name: 'walk-cut',
      cacheBytes: 64 << 20,
      getter: async (key) => `v:${key}`,
      registry: new GroupRegistry(),
      now: clock.now,
      peers: { pickPeer: () => null, successor: () => successor },
    });
    await g.getString('hot');
    for (let i = 0; i < 3000; i++) {
      await g.getString(`cold${i}`);
      await g.getString('hot'); // read all along: an LRU would keep it at the newest end
    }
    // The walk looks at the time every 1024 entries: the first look finds its half of the budget spent.
    const realNow = Date.now;
    let calls = 0;
    Date.now = () => realNow() + (++calls === 2 ? 1e6 : 0);
    let result: Awaited<ReturnType<Group['handOff']>>;
    try {
      result = await g.handOff({ timeoutMs: 5_000 });
    } finally {
      Date.now = realNow;
    }
    assert.ok(calls >= 2, 'the walk looked at the time');
    assert.ok(pushed.length < 3001, `the walk was cut short (${pushed.length} pushed)`);
    assert.equal(result.entries, pushed.length);
    assert.ok(pushed.includes('hot'), 'the hottest key was left out of the handoff');
    assert.equal(pushed.indexOf('hot'), 0, 'hottest first');
    g.close();
  });

  it('handOff without a picker that knows successors is a no-op', async () => {
    const { c } = cluster(1);
    await c.nodes[0].group.getString('x');
    assert.deepEqual(await c.nodes[0].group.handOff(), { entries: 0, sent: 0, bytes: 0, skipped: 0 });
    await sleep(0);
    c.close();
  });
});
