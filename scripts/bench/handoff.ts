// Warm handoff. Origin loads as a share of the warm keys when a cluster scales out 3 → 5 and
// when all 5 nodes are restarted one after another (close, start again on the same ports), with handoff
// on and off in the same run; and what a cold miss at an owner costs inside the handoff window (one
// cache-only question to the runner-up, which misses) against outside it. Nodes are createNode() in
// this process: real SWIM membership and gRPC peers on 127.0.0.1, one registry each; the getter counts.

import { createNode, type GossipNode } from '../../src/cluster/index.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { sleep } from '../../test/support/wait.js';
import { isMain, runAlone } from './lib/main.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'handoff';
const GROUP = 'h';

interface Node {
  node: GossipNode;
  group: Group;
  grpcPort: number;
  gossipPort: number;
}

interface Fleet {
  handoff: boolean;
  nodes: (Node | undefined)[];
  loads: number;
}

const portOf = (addr: string) => Number(addr.slice(addr.lastIndexOf(':') + 1));

async function startNode(f: Fleet, i: number, seeds: string[], ports?: { grpc: number; gossip: number }) {
  const registry = new GroupRegistry();
  const group = new Group({
    name: GROUP,
    cacheBytes: 64 << 20,
    registry,
    getter: async (key) => {
      f.loads++;
      return `value:${key}`;
    },
    handoffTimeoutMs: f.handoff ? undefined : 0,
  });
  const node = await createNode({
    grpcAddr: `127.0.0.1:${ports?.grpc ?? 0}`,
    gossipAddr: `127.0.0.1:${ports?.gossip ?? 0}`,
    advertiseHost: '127.0.0.1',
    seeds,
    registry,
    joinTimeoutMs: 2_000,
    handoffWindowMs: f.handoff ? undefined : 0,
    handoffPushMs: f.handoff ? undefined : 0,
  });
  await node.ready;
  f.nodes[i] = { node, group, grpcPort: portOf(node.grpcAddr), gossipPort: portOf(node.gossipAddr) };
}

const live = (f: Fleet) => f.nodes.filter((n): n is Node => n !== undefined);

async function oneRing(f: Fleet, size: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const ns = live(f);
    if (
      ns.every(
        (n) => n.node.ringMembers().length === size && n.node.ringChecksum() === ns[0].node.ringChecksum(),
      )
    )
      return;
    if (Date.now() - t0 > 60_000) throw new Error(`no ring of ${size} after 60 s`);
    await sleep(50);
  }
}

/** Reads every key through the live nodes (key i through node i + offset), 64 at a time. */
async function readAll(f: Fleet, keys: string[], offset: number): Promise<number> {
  const ns = live(f);
  let wrong = 0;
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const v = await ns[(i + offset) % ns.length].group.getString(keys[i]);
      if (v !== `value:${keys[i]}`) wrong++;
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  return wrong;
}

const seedsOf = (f: Fleet, except?: number) =>
  live(f)
    .filter((_, j) => j !== except)
    .map((n) => n.node.gossipAddr);

/** 3 → 5, then a rolling restart of the 5: origin loads at each stage. */
async function scenario(handoff: boolean, keys: string[]) {
  const f: Fleet = { handoff, nodes: [], loads: 0 };
  try {
    await startNode(f, 0, []);
    await startNode(f, 1, seedsOf(f));
    await startNode(f, 2, seedsOf(f));
    await oneRing(f, 3);
    let wrong = await readAll(f, keys, 0);
    const warm = f.loads;
    await startNode(f, 3, seedsOf(f));
    await startNode(f, 4, seedsOf(f));
    await oneRing(f, 5);
    wrong += await readAll(f, keys, 1);
    const scaleOut = f.loads - warm;
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) {
      const n = f.nodes[i] as Node;
      await n.node.close();
      n.group.close();
      f.nodes[i] = undefined;
      await oneRing(f, 4);
      await startNode(f, i, seedsOf(f), { grpc: n.grpcPort, gossip: n.gossipPort });
      await oneRing(f, 5);
      wrong += await readAll(f, keys, i + 2);
    }
    const restartMs = performance.now() - t0;
    const restart = f.loads - warm - scaleOut;
    const hits = live(f).reduce((a, n) => a + n.group.stats.handoffHits, 0);
    return { warm, scaleOut, restart, wrong, restartMs, hits };
  } finally {
    for (const n of live(f)) {
      await n.node.close({ leaveTimeoutMs: 200, graceMs: 200 }).catch(() => {});
      n.group.close();
    }
  }
}

/** Mean µs of a cold miss at the owner, handoff window open vs closed, in alternating slices. */
async function coldMiss(quick: boolean) {
  const fleets = [true, false].map((handoff) => ({ handoff, nodes: [], loads: 0 }) as Fleet);
  try {
    for (const f of fleets) {
      await startNode(f, 0, []);
      await startNode(f, 1, seedsOf(f));
      await oneRing(f, 2);
    }
    const per = quick ? 300 : 1000;
    const us = [0, 0];
    const n = [0, 0];
    let fillUs = 0;
    let fills = 0;
    for (let round = 0; round < 6; round++) {
      for (let which = 0; which < 2; which++) {
        const f = fleets[(round + which) % 2];
        const idx = f.handoff ? 0 : 1;
        const owner = f.nodes[1] as Node;
        let done = 0;
        let k = 0;
        const t0 = performance.now();
        while (done < per) {
          const key = `cold-${round}-${which}-${k++}`;
          // Only keys the owner (node 1) owns: the miss runs at the owner, as a peer's fill would.
          if (owner.node.ringMembers().length !== 2) throw new Error('ring changed');
          if ((owner.group.peerPicker.pickPeer(key) ?? null) !== null) continue;
          await owner.group.getString(key);
          done++;
        }
        us[idx] += (performance.now() - t0) * 1000;
        n[idx] += per;
        if (f.handoff) continue;
        // The yardstick: a miss at a non-owner, filled by the owner over the same peer stream.
        const asker = f.nodes[0] as Node;
        let m = 0;
        const t1 = performance.now();
        for (let j = 0; m < per / 3; j++) {
          const key = `fill-${round}-${j}`;
          if (asker.group.peerPicker.pickPeer(key) === null) continue;
          await asker.group.getString(key);
          m++;
        }
        fillUs += (performance.now() - t1) * 1000;
        fills += m;
      }
    }
    const asked = fleets[0].nodes.reduce((a, x) => a + (x?.group.stats.handoffMisses ?? 0), 0);
    return { onUs: us[0] / n[0], offUs: us[1] / n[1], fillUs: fillUs / fills, asked };
  } finally {
    for (const f of fleets)
      for (const x of live(f)) {
        await x.node.close({ leaveTimeoutMs: 200, graceMs: 200 }).catch(() => {});
        x.group.close();
      }
  }
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  const keys = Array.from({ length: quick ? 1000 : 3000 }, (_, i) => `k-${i}`);
  const rows: BenchRow[] = [];
  const pct = (x: number) => `${((100 * x) / keys.length).toFixed(1)} %`;
  const off = await scenario(false, keys);
  const on = await scenario(true, keys);
  for (const [name, r] of [
    ['off', off],
    ['on', on],
  ] as const) {
    rows.push({
      bench: BENCH,
      case: `3 → 5 nodes, ${keys.length} warm keys, handoff ${name}`,
      metrics: { 'origin loads': r.scaleOut, 'of warm keys': pct(r.scaleOut), wrong: r.wrong },
      baseline: name === 'on' ? `3 → 5 nodes, ${keys.length} warm keys, handoff off` : undefined,
      goal: name === 'on' ? '≤ 2 % of warm keys' : undefined,
    });
    rows.push({
      bench: BENCH,
      case: `rolling restart of 5, ${keys.length} warm keys, handoff ${name}`,
      metrics: {
        'origin loads': r.restart,
        'of warm keys': pct(r.restart),
        'handoff hits': r.hits,
        'restart s': (r.restartMs / 1000).toFixed(1),
      },
      baseline: name === 'on' ? `rolling restart of 5, ${keys.length} warm keys, handoff off` : undefined,
      goal: name === 'on' ? '≤ 5 % of warm keys' : undefined,
    });
  }
  const c = await coldMiss(quick);
  rows.push({
    bench: BENCH,
    case: 'cold miss at the owner (getter 0 ms), 2 nodes: window open vs closed',
    metrics: {
      'open µs/miss': c.onUs.toFixed(0),
      'closed µs/miss': c.offUs.toFixed(0),
      'extra µs': (c.onUs - c.offUs).toFixed(0),
      'peer fill µs': c.fillUs.toFixed(0),
      'questions asked': c.asked,
    },
    ratio: Number((c.onUs / c.offUs).toFixed(2)),
    goal: 'small against a getter call',
  });
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
