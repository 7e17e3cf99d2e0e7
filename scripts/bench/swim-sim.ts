// SWIM in the simulator: how dissemination and failure detection scale with cluster size.
// For n = 10, 100, 1000, 2000 (quick: up to 1000) a formed cluster of n simulated members (fake
// clock, in-memory network with 1–3 ms latency, seeded randomness) measures:
//   join   — a new member joins through one seed: time until all n + 1 know it, in gossip rounds
//            (gossipIntervalMs); SWIM's epidemic must make this grow like log n;
//   leave  — that member leaves: time until all know it;
//   detect — kill -9 of one member: time to its first suspicion and until all hold it dead (median of
//            several trials for small n).
// Baseline: memberlist's LAN defaults (probe 1 s / timeout 500 ms, suspicion mult 4, gossip 200 ms),
// measured on the same simulated cluster; our defaults are tuned for ≤ 3 s detection at n = 10.
// All times are simulated ms (machine load does not change them); CPU s is this process's cost.
import { SimCluster, simAddr } from '../../src/membership/testing/index.js';
import type { SwimConfig } from '../../src/membership/types.js';
import { isMain, runAlone } from './lib/main.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const MEMBERLIST_LAN: Partial<SwimConfig> = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  gossipIntervalMs: 200,
};

interface Figures {
  joinMs: number;
  joinRounds: number;
  leaveMs: number;
  suspectMs: number;
  deadMs: number;
  cpuS: number;
  pktsPerNodeS: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(
  n: number,
  config: Partial<SwimConfig>,
  trials: number,
  seed: number,
): Promise<Figures> {
  const cpu0 = process.cpuUsage();
  const gossipMs = config.gossipIntervalMs ?? 100;
  const joins: number[] = [];
  const leaves: number[] = [];
  const suspects: number[] = [];
  const deads: number[] = [];
  let pkts = 0;
  let simMs = 0;
  for (let trial = 0; trial < trials; trial++) {
    const sim = new SimCluster({ seed: seed + trial, config, recordChanges: false });
    sim.formed(n);
    await sim.run(3000);
    const p0 = sim.net.stats.packetsSent;
    const s0 = sim.clock.now();

    const joiner = sim.add('joiner', simAddr(n), { seeds: [simAddr(0)] });
    joins.push(
      await sim.runUntil(() => sim.allSee('joiner', ['alive']) && joiner.swim.size === n + 1, 60_000, 5),
    );
    await sim.run(1000);
    void joiner.swim.leave(2000);
    leaves.push(await sim.runUntil(() => sim.allSee('joiner', ['left']), 60_000, 5));
    joiner.transport.closeNow();
    await sim.run(3000);

    const victim = `n${1 + (trial % (n - 1))}`;
    sim.crash(victim);
    const suspected = () => sim.live().some((x) => x.swim.stateOf(victim) === 'suspect');
    const t = await sim.runUntil(suspected, 60_000, 10);
    suspects.push(t);
    const d = await sim.runUntil(() => sim.allSee(victim, ['dead']), 60_000, 10);
    deads.push(t + d);
    pkts += sim.net.stats.packetsSent - p0;
    simMs += (sim.clock.now() - s0) * (n + 1);
    sim.stopAll();
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    joinMs: median(joins),
    joinRounds: median(joins) / gossipMs,
    leaveMs: median(leaves),
    suspectMs: median(suspects),
    deadMs: median(deads),
    cpuS: (cpu.user + cpu.system) / 1e6,
    pktsPerNodeS: pkts / (simMs / 1000),
  };
}

function row(name: string, n: number, f: Figures, trials: number): BenchRow {
  return {
    bench: 'swim-sim',
    case: `${name} n=${n}`,
    metrics: {
      'join→all ms': Math.round(f.joinMs),
      'join rounds': Number(f.joinRounds.toFixed(1)),
      'rounds/log10(n)': Number((f.joinRounds / Math.log10(n)).toFixed(2)),
      'leave→all ms': Math.round(f.leaveMs),
      'kill→suspect ms': Math.round(f.suspectMs),
      'kill→all dead ms': Math.round(f.deadMs),
      'pkts/node/s': Number(f.pktsPerNodeS.toFixed(1)),
      trials,
      'CPU s': Number(f.cpuS.toFixed(1)),
    },
  };
}

export async function run(opts: BenchOptions): Promise<BenchRow[]> {
  const sizes = opts.quick ? [10, 100, 1000] : [10, 100, 1000, 2000];
  const rows: BenchRow[] = [];
  for (const n of sizes) {
    const trials = n <= 10 ? 9 : n <= 100 ? 3 : 1;
    const ours = await measure(n, {}, trials, 100);
    if (n <= 100) {
      const base = await measure(n, MEMBERLIST_LAN, trials, 100);
      const baseRow = row('memberlist LAN defaults', n, base, trials);
      rows.push(baseRow);
      rows.push({
        ...row('gossipcache defaults', n, ours, trials),
        baseline: baseRow.case,
        ratio: Number((ours.deadMs / base.deadMs).toFixed(2)),
        goal:
          n === 10
            ? 'detection median ≤ 3 s at n=10; join ≤ 250 ms; leave ≤ 300 ms'
            : 'rounds grow like log n',
      });
    } else {
      rows.push({ ...row('gossipcache defaults', n, ours, trials), goal: 'rounds grow like log n' });
    }
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
