// What every part of one SWIM node shares: its identity and config, the member table, the clock and
// its timers, the counters, and the outbox (datagrams out, news queued for gossip). Probing
// (probe.ts), the state transitions (transitions.ts) and anti-entropy (sync.ts) each work through one
// SwimCore; swim.ts creates it and wires the parts together.

import type { EventEmitter } from 'node:events';
import type { Logger } from '../logger.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue, retransmitLimit } from './broadcasts.js';
import { type Member, type MemberTable, view } from './members.js';
import {
  type Alive,
  assemblePacket,
  encodeFrame,
  FRAME_HEADER_BYTES,
  MsgType,
  PACKET_HEADER_BYTES,
  type Ping,
  type Suspect,
} from './messages.js';
import type { Clock, Transport } from './transport.js';
import type { MemberState, SwimConfig, SwimStats } from './types.js';

export type SwimCounters = Omit<SwimStats, 'awareness'>;

export interface SwimCoreOptions {
  id: string;
  config: Readonly<SwimConfig>;
  table: MemberTable;
  transport: Transport;
  clock: Clock;
  random: () => number;
  log: Logger;
  /** Where 'change' events go (the Swim instance). */
  events: EventEmitter;
}

export class SwimCore {
  readonly id: string;
  readonly config: Readonly<SwimConfig>;
  readonly table: MemberTable;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: () => number;
  readonly log: Logger;
  private readonly events: EventEmitter;

  /** Between start() and stop(): timers run and input is handled. */
  running = false;
  /** leave() was called: no more probes, answers or refutations. */
  leaving = false;

  readonly broadcasts: BroadcastQueue;
  readonly awareness: Awareness;
  readonly counters: SwimCounters = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    malformed: 0,
    requestsIn: 0,
    requestsOut: 0,
    requestsFailed: 0,
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    tcpFallbacks: 0,
    nacksIn: 0,
    suspicions: 0,
    confirmations: 0,
    refutations: 0,
    deaths: 0,
    leaves: 0,
    pushPulls: 0,
    joins: 0,
    reconnects: 0,
    stalls: 0,
    broadcastsQueued: 0,
    broadcastsDropped: 0,
    reaped: 0,
    finalChecks: 0,
  };

  private seq: number;
  private readonly timers = new Set<unknown>();
  private flushTimer: unknown = null;
  private gossipTimer: unknown = null;
  private lastFlush = Number.NEGATIVE_INFINITY;

  constructor(o: SwimCoreOptions) {
    this.id = o.id;
    this.config = o.config;
    this.table = o.table;
    this.transport = o.transport;
    this.clock = o.clock;
    this.random = o.random;
    this.log = o.log;
    this.events = o.events;
    this.seq = Math.floor(this.random() * 2 ** 32) >>> 0;
    this.broadcasts = new BroadcastQueue(o.config.maxBroadcasts);
    this.awareness = new Awareness(o.config.awarenessMaxMultiplier);
  }

  get self(): Member {
    return this.table.self;
  }

  // ---------------------------------------------------------------- timers

  /** Repeating timer whose period is re-read each time; `late` = ms it fired behind schedule. */
  every(period: () => number, fn: (late: number) => void, jitterFirst: boolean): void {
    const arm = (ms: number) => {
      const due = this.clock.now() + ms;
      const h = this.clock.setTimeout(() => {
        this.timers.delete(h);
        if (!this.running) return;
        try {
          fn(this.clock.now() - due);
        } catch (err) {
          this.log.warn({ err }, 'swim: timer task failed');
        }
        if (this.running) arm(period());
      }, ms);
      this.timers.add(h);
    };
    arm(jitterFirst ? this.random() * period() : period());
  }

  /** One-shot timer that does not fire once stopped; `late` = ms it fired behind schedule. */
  after(ms: number, fn: (late: number) => void): unknown {
    const due = this.clock.now() + ms;
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      if (this.running) fn(this.clock.now() - due);
    }, ms);
    this.timers.add(h);
    return h;
  }

  cancel(h: unknown): void {
    if (h === null || h === undefined) return;
    this.clock.clearTimeout(h);
    this.timers.delete(h);
  }

  /** Clears every timer (stop()). */
  cancelAll(): void {
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    this.gossipTimer = null;
    if (this.flushTimer !== null) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  /** We fell behind our own schedule: this process was stalled (GC, CPU, SIGSTOP). */
  stalled(late: number): boolean {
    if (late <= this.config.stallThresholdMs) return false;
    this.counters.stalls++;
    this.awareness.apply(1);
    this.log.debug({ lateMs: Math.round(late) }, 'swim: timer fired late, this process was stalled');
    return true;
  }

  // ---------------------------------------------------------------- messages

  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  pingMsg(seq: number, targetId: string): Ping {
    return { type: MsgType.Ping, seq, targetId, sourceId: this.id, sourceAddr: this.self.addr };
  }

  suspectMsg(m: Member, from: string): Suspect {
    return { type: MsgType.Suspect, id: m.id, generation: m.generation, incarnation: m.incarnation, from };
  }

  emitChange(m: Member, prev: MemberState | null): void {
    if (this.events.listenerCount('change') === 0) return; // no copy to build (big simulated clusters)
    try {
      this.events.emit('change', view(m), prev);
    } catch (err) {
      this.log.warn({ err }, "swim: a 'change' listener threw");
    }
  }

  // ---------------------------------------------------------------- sending and gossip

  /**
   * One datagram: `frames` first, then as much piggybacked news as fits. `receiver`: the advertised
   * address of the member it is for, when `addr` is the source address a datagram came from (replies).
   */
  send(addr: string, frames: Uint8Array[], receiver: string = addr): void {
    let budget = this.transport.maxPacketBytes - PACKET_HEADER_BYTES;
    for (const f of frames) budget -= f.length;
    const news = budget > FRAME_HEADER_BYTES ? this.broadcasts.take(budget, this.retransmitLimit()) : [];
    if (frames.length === 0 && news.length === 0) return;
    const packet = assemblePacket(news.length ? [...frames, ...news] : frames);
    this.counters.packetsOut++;
    this.counters.bytesOut += packet.length;
    this.transport.sendPacket(addr, packet, receiver);
  }

  private retransmitLimit(): number {
    return retransmitLimit(this.config.retransmitMult, this.table.live);
  }

  /** One gossip round: queued news to `gossipNodes` random members (and recently dead ones). */
  private gossip(): void {
    this.lastFlush = this.clock.now();
    if (this.broadcasts.size === 0) return;
    const now = this.clock.now();
    const targets = this.table.pick(
      this.config.gossipNodes,
      (p) =>
        p.state === 'alive' ||
        p.state === 'suspect' ||
        (p.state === 'dead' && now - p.since < this.config.gossipToTheDeadMs),
      this.random,
    );
    for (const t of targets) {
      if (this.broadcasts.size === 0) break;
      this.send(t.addr, []);
    }
  }

  /** Urgent news (a join, a leave, a death, a refutation): gossip now rather than at the next tick. */
  scheduleFlush(): void {
    if (this.flushTimer !== null || !this.running) return;
    const gap = this.config.gossipIntervalMs / 5;
    const wait = Math.max(0, this.lastFlush + gap - this.clock.now());
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null;
      if (this.running) this.gossip();
    }, wait);
  }

  queueAlive(m: Member): void {
    const alive: Alive = {
      type: MsgType.Alive,
      id: m.id,
      addr: m.addr,
      meta: m.meta,
      generation: m.generation,
      incarnation: m.incarnation,
    };
    this.queueFrame(m.id, encodeFrame(alive));
  }

  queueFrame(key: string, frame: Uint8Array): void {
    this.counters.broadcastsQueued++;
    this.broadcasts.push(key, frame);
    this.armGossip();
  }

  /** The gossip tick runs only while there is news: an idle cluster costs probes only. */
  armGossip(): void {
    if (this.gossipTimer !== null || !this.running) return;
    this.gossipTimer = this.after(this.config.gossipIntervalMs, () => {
      this.gossipTimer = null;
      this.gossip();
      if (this.broadcasts.size > 0) this.armGossip();
    });
  }
}
