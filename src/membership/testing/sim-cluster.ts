// TEST-ONLY (testing toolkit, see testing/index.ts). A deterministic cluster simulator: many Swim nodes in one process over a MemoryNetwork, all driven
// by one SimClock and one seeded PRNG. Used by test/membership/sim*.test.ts and
// scripts/bench/swim-sim.ts; also handy for anyone who wants to see how a config behaves at scale.

import { Swim } from '../swim.js';
import type { MemberState, SwimConfig } from '../types.js';
import { MemoryNetwork, type MemoryTransport } from './memory-network.js';
import { PausableClock, SimClock, seededRandom } from './sim-clock.js';

export interface SimOptions {
  seed?: number;
  /** Datagram loss probability. */
  loss?: number;
  delayMs?: number;
  jitterMs?: number;
  config?: Partial<SwimConfig>;
  /** Record 'change' events (default true). */
  recordChanges?: boolean;
}

export interface SimNode {
  id: string;
  addr: string;
  swim: Swim;
  clock: PausableClock;
  transport: MemoryTransport;
}

/** `10.x.y.z:7946` for node index i: distinct, stable, readable. */
export function simAddr(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7946`;
}

export class SimCluster {
  readonly clock = new SimClock(1_000_000);
  readonly random: () => number;
  readonly net: MemoryNetwork;
  readonly nodes = new Map<string, SimNode>();
  private readonly config: Partial<SwimConfig>;
  /** Every 'change' seen by any node: [time, observer, member, from, to]. */
  readonly changes: {
    at: number;
    observer: string;
    id: string;
    from: MemberState | null;
    to: MemberState;
  }[] = [];
  /** Record every 'change' event in `changes` (costly while a big cluster forms: see startRecording). */
  private recordChanges: boolean;
  private generation = 1_700_000_000_000;

  constructor(opts: SimOptions = {}) {
    this.random = seededRandom(opts.seed ?? 1);
    this.net = new MemoryNetwork({
      clock: this.clock,
      random: this.random,
      loss: opts.loss ?? 0,
      delayMs: opts.delayMs ?? 1,
      jitterMs: opts.jitterMs ?? 2,
    });
    this.config = opts.config ?? {};
    this.recordChanges = opts.recordChanges ?? true;
  }

  /** Create (and by default start) node `id` at `addr`. Replaces a stopped node with the same id. */
  add(
    id: string,
    addr: string,
    opts: { seeds?: string[]; meta?: Record<string, string>; start?: boolean; generation?: number } = {},
  ): SimNode {
    const old = this.nodes.get(id);
    if (old) old.swim.stop();
    const clock = new PausableClock(this.clock);
    const transport = this.net.transport(addr);
    this.generation += 1000;
    const swim = new Swim({
      id,
      meta: opts.meta ?? { grpcAddr: addr.replace(':7946', ':9090'), version: '1' },
      transport,
      clock,
      config: this.config,
      seeds: opts.seeds ?? [],
      random: this.random,
      generation: opts.generation ?? this.generation,
    });
    const node = { id, addr, swim, clock, transport };
    if (this.recordChanges) this.listen(node);
    this.nodes.set(id, node);
    if (opts.start !== false) swim.start();
    return node;
  }

  /**
   * n started nodes n0..n{n-1} (addresses simAddr(i)) that already know each other — a formed cluster
   * without the cost of forming it (each node adopts the list with Swim.seedState).
   */
  formed(n: number): SimNode[] {
    const nodes: SimNode[] = [];
    for (let i = 0; i < n; i++) nodes.push(this.add(`n${i}`, simAddr(i), { start: false }));
    const views = nodes.map((x) => x.swim.local());
    for (const x of nodes) x.swim.seedState(views);
    for (const x of nodes) x.swim.start();
    return nodes;
  }

  /** Record 'change' events from now on (all nodes, and nodes added later). */
  startRecording(): void {
    if (this.recordChanges) return;
    this.recordChanges = true;
    for (const n of this.nodes.values()) this.listen(n);
  }

  private listen(node: SimNode): void {
    node.swim.on('change', (m, from) => {
      this.changes.push({ at: this.clock.now(), observer: node.id, id: m.id, from, to: m.state });
    });
  }

  /** kill -9: the process vanishes (no leave); its address stops answering. */
  crash(id: string): void {
    const n = this.nodes.get(id)!;
    n.swim.stop();
    n.transport.closeNow();
    this.net.setDown(n.addr, true);
  }

  /** Freeze node `id` for `ms` (SIGSTOP … SIGCONT): its timers and input queue up. */
  pause(id: string, ms: number): void {
    const n = this.nodes.get(id)!;
    n.clock.pause();
    n.transport.hold();
    this.clock.setTimeout(() => {
      n.clock.resume(); // timers first (they see the late clock), then the queued input — Node's order
      n.transport.release();
    }, ms);
  }

  async run(ms: number): Promise<void> {
    await this.clock.advance(ms);
  }

  /** Advance in `stepMs` steps until `done()` or `maxMs`; returns the elapsed ms, or -1 on timeout. */
  async runUntil(done: () => boolean, maxMs: number, stepMs = 50): Promise<number> {
    const start = this.clock.now();
    while (this.clock.now() - start < maxMs) {
      if (done()) return this.clock.now() - start;
      await this.clock.advance(stepMs);
    }
    return done() ? this.clock.now() - start : -1;
  }

  /** Running nodes (not crashed or stopped by the test). */
  live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.transport.closed);
  }

  /** Every running node sees exactly `n` alive+suspect members. */
  allSize(n: number): boolean {
    for (const node of this.live()) if (node.swim.size !== n) return false;
    return true;
  }

  /** Every running node (except `id` itself) sees member `id` in one of `states`. */
  allSee(id: string, states: (MemberState | undefined)[]): boolean {
    for (const node of this.live()) {
      if (node.id === id) continue;
      if (!states.includes(node.swim.stateOf(id))) return false;
    }
    return true;
  }

  /** Changes to `to` about members, at or after `since`. */
  changesTo(to: MemberState, since = 0): SimCluster['changes'] {
    return this.changes.filter((c) => c.to === to && c.at >= since);
  }

  stopAll(): void {
    for (const n of this.nodes.values()) n.swim.stop();
  }
}
