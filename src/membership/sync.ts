// Anti-entropy: full state exchanges (push-pull) over the stream path. They join a node to the
// cluster, repair whatever gossip missed (periodically, with one random member), and heal partitions
// (reconnect: a seed outside the cluster we see, or a recently dead member).

import type { SwimCore } from './core.js';
import { cmpKey, type Member } from './members.js';
import { decodeStream, encodeStream, type MemberRecord, MsgType, type PushPull } from './messages.js';
import type { Transitions } from './transitions.js';

export class Sync {
  /** A join succeeded (the background join stops retrying). */
  private joined = false;

  constructor(
    private readonly core: SwimCore,
    private readonly transitions: Transitions,
    /** `host:port` (or names) of nodes to join. */
    readonly seeds: string[],
    private readonly resolveSeeds: (seeds: string[]) => Promise<string[]>,
  ) {}

  /**
   * Contact `seeds` by a full state exchange. Resolves with how many answered; rejects when none did.
   * A lone node (no seeds other than itself) resolves 0.
   */
  async join(seeds: string[]): Promise<number> {
    const c = this.core;
    const addrs = await this.resolve(seeds);
    if (addrs.length === 0) return 0;
    const results = await Promise.allSettled(addrs.map((a) => this.pushPull(a, true, true)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    if (ok === 0) {
      const why = (results[0] as PromiseRejectedResult).reason;
      throw new Error(`join: no seed answered (${addrs.join(', ')}): ${why?.message ?? why}`);
    }
    this.joined = true;
    c.counters.joins++;
    // Nodes that joined at the same moment as us are news the seed had not yet heard of, and their
    // gossip dies out among members that already know it. A few more exchanges soon after close that
    // gap (memberlist waits for the next periodic push-pull, tens of seconds later): 1×, 5×, 25× joinRetryMs.
    for (const f of [1, 5, 25]) c.after(c.config.joinRetryMs * f, () => this.periodicPushPull());
    return ok;
  }

  /** Join the seeds with exponential backoff until one answers: start order never matters. */
  async backgroundJoin(): Promise<void> {
    const c = this.core;
    if (this.seeds.length === 0) return;
    let delay = c.config.joinRetryMs;
    while (c.running && !this.joined) {
      try {
        const n = await this.join(this.seeds);
        if (n > 0 || (await this.resolve(this.seeds)).length === 0) return;
      } catch (err) {
        c.log.debug({ err: (err as Error).message }, 'swim: join failed, will retry');
      }
      if (!c.running) return;
      await new Promise<void>((resolve) => c.after(delay * (0.5 + c.random()), () => resolve()));
      delay = Math.min(c.config.joinMaxBackoffMs, delay * 2);
    }
  }

  /** The other side of a push-pull: our state back, theirs merged. */
  answer(msg: PushPull): Uint8Array {
    this.core.counters.pushPulls++;
    const reply = encodeStream(this.snapshot(false));
    this.merge(msg.members, false);
    return reply;
  }

  private snapshot(join: boolean): PushPull {
    return { type: MsgType.PushPull, join, sourceId: this.core.id, members: this.core.table.records() };
  }

  /**
   * Full state exchange with `addr` over the stream path. `seed`: `addr` came from seed resolution,
   * not from a member's own advertised address, so the request cannot be bound to its receiver.
   */
  private async pushPull(addr: string, join: boolean, seed = false): Promise<void> {
    const c = this.core;
    c.counters.requestsOut++;
    let reply: Uint8Array;
    try {
      reply = await c.transport.request(
        addr,
        encodeStream(this.snapshot(join)),
        c.config.streamTimeoutMs,
        seed ? null : addr,
      );
    } catch (err) {
      c.counters.requestsFailed++;
      throw err;
    }
    const r = decodeStream(reply);
    if (!r.ok || r.value.type !== MsgType.PushPull) {
      c.counters.malformed++;
      throw new Error(`push-pull with ${addr}: bad reply (${r.ok ? `type ${r.value.type}` : r.error})`);
    }
    c.counters.pushPulls++;
    if (c.running) this.merge(r.value.members, join);
  }

  /**
   * Merge a remote full state. `join`: the state comes from the cluster we join, which already knows
   * it, so it is not re-gossiped. Disagreements at the same (generation, incarnation) are settled by
   * looking, not by gossip: a member we hold dead but the remote holds alive is pinged by us and revived
   * locally if it answers; a member the remote holds dead or suspect but we hold alive is left to our
   * own probes. After a partition heals this merges both sides without making every member refute
   * (an incarnation storm of n broadcasts) and without declaring any healthy member dead.
   */
  merge(records: MemberRecord[], join: boolean): void {
    const c = this.core;
    const t = this.transitions;
    for (const r of records) {
      const base = { id: r.id, generation: r.generation, incarnation: r.incarnation };
      if (r.id === c.id) {
        if (r.state === 'alive') t.aboutSelf({ type: MsgType.Alive, ...base, addr: r.addr, meta: r.meta });
        else if (cmpKey(r.generation, r.incarnation, c.self) >= 0) t.refute(r.generation, r.incarnation);
        continue;
      }
      const m = c.table.get(r.id);
      switch (r.state) {
        case 'alive':
          if (m && m.state === 'dead' && cmpKey(r.generation, r.incarnation, m) === 0) t.verify(m);
          else t.onAlive({ type: MsgType.Alive, ...base, addr: r.addr, meta: r.meta }, join);
          break;
        case 'suspect':
        case 'dead':
          if (m && cmpKey(r.generation, r.incarnation, m) > 0) {
            // Newer news than ours: a suspicion we must hear about (the member refutes if alive).
            t.onSuspect({ type: MsgType.Suspect, ...base, from: c.id }, true);
          }
          break;
        case 'left':
          if (m) t.onLeft({ type: MsgType.Left, ...base });
          break;
      }
    }
  }

  /** memberlist's scaling: above 32 members, stretch logarithmically so the stream load stays bounded. */
  pushPullInterval(): number {
    const n = this.core.table.live;
    const mult = n <= 32 ? 1 : Math.ceil(Math.log2(n) - Math.log2(32)) + 1;
    return this.core.config.pushPullIntervalMs * mult;
  }

  periodicPushPull(): void {
    const c = this.core;
    const [m] = c.table.pick(1, (p) => p.state === 'alive', c.random);
    if (!m) return;
    this.pushPull(m.addr, false).catch((err) => {
      c.log.debug({ addr: m.addr, err: err?.message }, 'swim: push-pull failed');
    });
  }

  private async resolve(seeds: string[]): Promise<string[]> {
    const c = this.core;
    let addrs: string[];
    try {
      addrs = await this.resolveSeeds(seeds);
    } catch (err) {
      c.log.warn({ err, seeds }, 'swim: seed resolution failed');
      return [];
    }
    return [...new Set(addrs)].filter((a) => a && a !== c.self.addr);
  }

  /**
   * Partition healing (Serf's reconnect): push-pull with one seed that is not a live member and one
   * recently dead member. After a partition heals this is what finds the other side.
   */
  reconnect(): void {
    const c = this.core;
    const tryAddr = (addr: string, seed: boolean) => {
      c.counters.reconnects++;
      this.pushPull(addr, false, seed).catch(() => {});
    };
    // A full scan (every few seconds, O(n)): random picks would rarely hit the few dead in a big cluster.
    const dead: Member[] = [];
    for (const p of c.table.peers) if (p.state === 'dead') dead.push(p);
    if (dead.length > 0) tryAddr(dead[Math.floor(c.random() * dead.length)].addr, false);
    if (this.seeds.length > 0) {
      this.resolve(this.seeds).then((addrs) => {
        if (!c.running) return;
        const outside = addrs.filter((a) => c.table.holderOf(a) === undefined);
        if (outside.length > 0) tryAddr(outside[Math.floor(c.random() * outside.length)], true);
      });
    }
  }
}
