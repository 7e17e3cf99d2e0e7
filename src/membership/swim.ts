// The SWIM + Lifeguard membership state machine (memberlist's model, our own code).
//
// Each node, every probe interval, pings the next member of a shuffled round-robin list; without an
// ack in time it asks k others to ping it for us (they nack if they cannot reach it either) and tries
// the stream path; if all fail the member becomes suspect. The suspicion rides on the next pings to
// the suspect (so it can refute by bumping its incarnation) and is gossiped; Lifeguard shortens its
// timeout as independent accusers confirm it and stretches our own timers when we are the slow one.
// Every state change is gossiped by piggybacking on probe traffic and on a fast gossip tick, and a
// periodic full-state push-pull over the stream path repairs whatever gossip missed.
//
// Ordering of news about a member: (generation, incarnation) compared lexicographically. The
// generation is the start time of the member's process, so a restarted process (incarnation 0)
// overrides its own old dead/left record at once; the incarnation orders news within one process.

import { EventEmitter } from 'node:events';
import { type Logger, silentLogger } from '../logger.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue, retransmitLimit } from './broadcasts.js';
import {
  type Alive,
  assemblePacket,
  type Dead,
  decodePacket,
  decodeStream,
  encodeFrame,
  encodeStream,
  FRAME_HEADER_BYTES,
  type IndirectPing,
  type Left,
  type MemberRecord,
  type Message,
  MsgType,
  metaSize,
  PACKET_HEADER_BYTES,
  type Ping,
  type PushPull,
  type Suspect,
} from './messages.js';
import { Suspicion, suspicionMinMs } from './suspicion.js';
import { type Clock, realClock, type Transport } from './transport.js';
import {
  defaultSwimConfig,
  type MemberState,
  type MemberView,
  type SwimConfig,
  type SwimOptions,
  type SwimStats,
} from './types.js';

export type { MemberState, MemberView, SwimConfig, SwimOptions, SwimStats } from './types.js';

interface Member {
  id: string;
  addr: string;
  meta: Record<string, string>;
  generation: number;
  incarnation: number;
  state: MemberState;
  /** Clock time of the last state change. */
  since: number;
  suspicion: Suspicion | null;
  /** Clock time of the last ack we got from it (any probe of ours). */
  lastAck: number;
  /** Position in `peers` (for O(1) removal). */
  slot: number;
}

interface AckWaiter {
  onAck: () => void;
  onNack?: () => void;
}

/** Most relayed (indirect) probes in flight: bounds what a flood of ping-reqs can make us do. */
const MAX_PENDING_ACKS = 4096;
/** Members told of our leave directly (the rest hear it by gossip). */
const MAX_LEAVE_DIRECT = 512;
/** Stall grace: how many times one probe phase may be extended because our own timer fired late. */
const MAX_STALL_EXTENSIONS = 3;

function cmpKey(aGen: number, aInc: number, b: { generation: number; incarnation: number }): number {
  if (aGen !== b.generation) return aGen < b.generation ? -1 : 1;
  if (aInc !== b.incarnation) return aInc < b.incarnation ? -1 : 1;
  return 0;
}

function sameMeta(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

function view(m: Member): MemberView {
  return {
    id: m.id,
    addr: m.addr,
    meta: { ...m.meta },
    state: m.state,
    incarnation: m.incarnation,
    generation: m.generation,
  };
}

const utf8Len = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * One node's view of the cluster. Events: `'change'(member: MemberView, previousState: MemberState | null)`
 * on every state change, address change or metadata change of any member (self included); previous
 * is null the first time a member is seen.
 *
 * Input from the network never makes it throw: every datagram and stream message is validated, bad
 * ones are dropped and counted in `stats().malformed`.
 */
export class Swim extends EventEmitter {
  readonly id: string;
  readonly config: Readonly<SwimConfig>;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly seeds: string[];
  private readonly resolveSeeds: (seeds: string[]) => Promise<string[]>;

  private readonly self: Member;
  private readonly table = new Map<string, Member>();
  /** Every member but self, any state (random picks without building arrays). */
  private readonly peers: Member[] = [];
  /** addr → id of the live member (alive/suspect) holding it. */
  private readonly addrIndex = new Map<string, string>();
  /** Alive + suspect members, self included. */
  private live = 1;

  private probeOrder: string[] = [];
  private ticks = 0;
  /** Suspects to probe with priority (bounded by the member count; pruned as they are probed). */
  private readonly suspects: string[] = [];
  private readonly suspectSet = new Set<string>();
  private probeIndex = 0;
  private probing = false;
  private seq: number;
  private readonly acks = new Map<number, AckWaiter>();
  private readonly broadcasts: BroadcastQueue;
  private readonly awareness: Awareness;

  private running = false;
  private leaving = false;
  private joined = false;
  private readonly timers = new Set<unknown>();
  private flushTimer: unknown = null;
  private gossipTimer: unknown = null;
  private lastFlush = Number.NEGATIVE_INFINITY;

  private readonly counters: Omit<SwimStats, 'awareness'> = {
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

  constructor(opts: SwimOptions) {
    super();
    const config: SwimConfig = { ...defaultSwimConfig, ...opts.config };
    for (const [k, v] of Object.entries(config)) {
      if (typeof v === 'number' && !(Number.isFinite(v) && v >= 0)) {
        throw new RangeError(`SwimConfig.${k} must be a finite number ≥ 0, got ${v}`);
      }
    }
    this.config = Object.freeze(config);
    if (typeof opts.id !== 'string' || opts.id.length === 0 || utf8Len(opts.id) > 255) {
      throw new RangeError(`node id must be 1..255 UTF-8 bytes, got ${JSON.stringify(opts.id)}`);
    }
    const addr = opts.transport.localAddr;
    if (!addr || utf8Len(addr) > 255)
      throw new RangeError(`transport.localAddr must be 1..255 bytes, got ${addr}`);
    this.checkMeta(opts.meta);
    this.id = opts.id;
    this.transport = opts.transport;
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? silentLogger;
    this.seeds = [...(opts.seeds ?? [])];
    this.resolveSeeds = opts.resolveSeeds ?? (async (s) => s);
    this.seq = Math.floor(this.random() * 2 ** 32) >>> 0;
    this.broadcasts = new BroadcastQueue(config.maxBroadcasts);
    this.awareness = new Awareness(config.awarenessMaxMultiplier);
    this.self = {
      id: opts.id,
      addr,
      meta: { ...opts.meta },
      generation: Math.floor(opts.generation ?? Date.now()),
      incarnation: 0,
      state: 'alive',
      since: this.clock.now(),
      suspicion: null,
      lastAck: Number.NEGATIVE_INFINITY,
      slot: -1,
    };
    this.table.set(this.id, this.self);
  }

  // ---------------------------------------------------------------- public API

  /** Start probing, gossiping and (in the background) joining the seeds until one answers. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.probing = false;
    this.transport.onPacket = (from, data) => this.handlePacket(from, data);
    this.transport.onRequest = (from, data) => this.handleRequest(from, data);
    this.queueAlive(this.self);
    this.every(
      () => this.awareness.scale(this.config.probeIntervalMs),
      (late) => this.probeTick(late),
      true,
    );
    this.armGossip();
    this.every(
      () => this.pushPullInterval(),
      () => this.periodicPushPull(),
      true,
    );
    this.every(
      () => this.config.reconnectIntervalMs,
      () => this.reconnect(),
      true,
    );
    this.every(
      () => Math.max(1000, this.config.deadReapMs / 4),
      () => this.reap(),
      false,
    );
    void this.backgroundJoin();
  }

  /**
   * Contact `seeds` (default: the constructor's) by a full state exchange. Resolves with how many
   * answered; rejects when none did. A lone node (no seeds other than itself) resolves 0.
   */
  async join(seeds: string[] = this.seeds): Promise<number> {
    const addrs = await this.resolve(seeds);
    if (addrs.length === 0) return 0;
    const results = await Promise.allSettled(addrs.map((a) => this.pushPull(a, true, true)));
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    if (ok === 0) {
      const why = (results[0] as PromiseRejectedResult).reason;
      throw new Error(`join: no seed answered (${addrs.join(', ')}): ${why?.message ?? why}`);
    }
    this.joined = true;
    this.counters.joins++;
    // Nodes that joined at the same moment as us are news the seed had not yet heard of, and their
    // gossip dies out among members that already know it. A few more exchanges soon after close that
    // gap (memberlist waits for the next periodic push-pull, tens of seconds later): 1×, 5×, 25× joinRetryMs.
    for (const f of [1, 5, 25]) this.after(this.config.joinRetryMs * f, () => this.periodicPushPull());
    return ok;
  }

  /**
   * Announce that this node leaves, wait until the news went out (or `timeoutMs`), then stop.
   * Peers drop a left member at once (no suspicion).
   */
  async leave(timeoutMs = 1000): Promise<void> {
    if (!this.running || this.leaving) return;
    this.leaving = true;
    const prev = this.self.state;
    this.setState(this.self, 'left');
    this.emitChange(this.self, prev);
    const left: Left = {
      type: MsgType.Left,
      id: this.id,
      generation: this.self.generation,
      incarnation: this.self.incarnation,
    };
    const frame = encodeFrame(left);
    await new Promise<void>((resolve) => {
      const h = this.clock.setTimeout(resolve, timeoutMs);
      this.armGossip();
      this.broadcasts.push(this.id, frame, () => {
        this.clock.clearTimeout(h);
        resolve();
      });
      // Tell every live member directly (up to MAX_LEAVE_DIRECT, the rest by gossip): a leave is rare,
      // and with few members the gossip retransmit budget (4 sends each at n ≤ 9) can miss one
      // (seen with real processes: docs/membership-ops.md), which then suspects and kills us instead.
      const live = this.peers.filter((p) => p.state === 'alive' || p.state === 'suspect');
      shuffle(live, this.random);
      for (const m of live.slice(0, MAX_LEAVE_DIRECT)) this.send(m.addr, [frame]);
      this.scheduleFlush();
    });
    this.stop();
  }

  /**
   * Adopt a known member list as if learned from a join, without gossiping it (the cluster already
   * knows it). For simulations that need a converged cluster of thousands without paying for its
   * formation, and for warm restarts from a saved list. Members' states are taken as given.
   */
  seedState(members: readonly MemberView[]): void {
    this.merge(
      members.map((m) => ({ ...m })),
      true,
    );
  }

  /** Stop all timers and detach from the transport (the owner closes the transport). Idempotent. */
  stop(): void {
    this.running = false;
    for (const t of this.timers) this.clock.clearTimeout(t);
    this.timers.clear();
    this.gossipTimer = null;
    if (this.flushTimer !== null) this.clock.clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const m of this.table.values()) {
      m.suspicion?.cancel();
      m.suspicion = null;
    }
    this.acks.clear();
    this.broadcasts.clear();
    if (this.transport.onPacket) this.transport.onPacket = null;
    if (this.transport.onRequest) this.transport.onRequest = null;
  }

  /** Every known member (self included), any state. Ring: alive + suspect own keys. */
  members(): MemberView[] {
    const out: MemberView[] = [];
    for (const m of this.table.values()) out.push(view(m));
    return out;
  }

  /** One member by id (any state), or undefined when unknown or reaped. */
  member(id: string): MemberView | undefined {
    const m = this.table.get(id);
    return m ? view(m) : undefined;
  }

  /** State of one member without copying it (cheap, for hot loops and tests). */
  stateOf(id: string): MemberState | undefined {
    return this.table.get(id)?.state;
  }

  /** This node. */
  local(): MemberView {
    return view(this.self);
  }

  /** Number of alive + suspect members, self included. */
  get size(): number {
    return this.live;
  }

  /** Publish new metadata (bumps our incarnation). Throws RangeError when it is too large. */
  updateMeta(meta: Record<string, string>): void {
    this.checkMeta(meta);
    this.self.meta = { ...meta };
    this.self.incarnation++;
    this.queueAlive(this.self);
    this.scheduleFlush();
    this.emitChange(this.self, this.self.state);
  }

  stats(): SwimStats {
    return { ...this.counters, broadcastsDropped: this.broadcasts.dropped, awareness: this.awareness.health };
  }

  // ---------------------------------------------------------------- timers

  /** Repeating timer whose period is re-read each time; `late` = ms it fired behind schedule. */
  private every(period: () => number, fn: (late: number) => void, jitterFirst: boolean): void {
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

  private after(ms: number, fn: (late: number) => void): unknown {
    const due = this.clock.now() + ms;
    const h = this.clock.setTimeout(() => {
      this.timers.delete(h);
      if (this.running) fn(this.clock.now() - due);
    }, ms);
    this.timers.add(h);
    return h;
  }

  private cancel(h: unknown): void {
    if (h === null || h === undefined) return;
    this.clock.clearTimeout(h);
    this.timers.delete(h);
  }

  /** We fell behind our own schedule: this process was stalled (GC, CPU, SIGSTOP). */
  private stalled(late: number): boolean {
    if (late <= this.config.stallThresholdMs) return false;
    this.counters.stalls++;
    this.awareness.apply(1);
    this.log.debug({ lateMs: Math.round(late) }, 'swim: timer fired late, this process was stalled');
    return true;
  }

  // ---------------------------------------------------------------- probing

  private probeTick(late: number): void {
    this.stalled(late);
    if (this.probing || this.leaving) return;
    this.ticks++;
    const target = (this.ticks % 2 === 0 && this.nextSuspect()) || this.nextProbeTarget();
    if (target) this.probe(target);
  }

  /**
   * Lifeguard's buddy system: every other probe goes to a suspect (cycling through them), so each
   * suspect hears of its suspicion (it rides on our ping) and refutes well before the timeout, even
   * when the suspicion's gossip was spent while the suspect was unreachable (a partition).
   */
  private nextSuspect(): Member | null {
    for (let i = this.suspects.length; i > 0; i--) {
      const id = this.suspects.shift()!;
      const m = this.table.get(id);
      if (m?.state !== 'suspect') {
        this.suspectSet.delete(id);
        continue;
      }
      this.suspects.push(id);
      return m;
    }
    return null;
  }

  private nextProbeTarget(): Member | null {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeOrder.length) {
        const m = this.table.get(this.probeOrder[this.probeIndex++]);
        if (m && m !== this.self && (m.state === 'alive' || m.state === 'suspect')) return m;
      }
      // End of a round: reshuffle (fresh order each round, as SWIM's round-robin requires).
      const ids: string[] = [];
      for (const p of this.peers) if (p.state === 'alive' || p.state === 'suspect') ids.push(p.id);
      shuffle(ids, this.random);
      this.probeOrder = ids;
      this.probeIndex = 0;
    }
    return null;
  }

  /** Probe `m` next (a member others suspect: our independent check confirms or clears it sooner). */
  private probeSoon(m: Member): void {
    this.probeOrder.splice(this.probeIndex, 0, m.id);
  }

  private probe(target: Member): void {
    this.probing = true;
    this.counters.probes++;
    const seq = this.nextSeq();
    const timeout = this.awareness.scale(this.config.probeTimeoutMs);
    const ping = this.pingMsg(seq, target.id);
    const frames = [encodeFrame(ping)];
    // Buddy system: a suspect learns of the suspicion from the very ping that checks it.
    if (target.state === 'suspect') frames.push(encodeFrame(this.suspectMsg(target, this.id)));
    const targetGen = target.generation;
    const targetInc = target.incarnation;
    let done = false;
    let expectedNacks = 0;
    let nacks = 0;
    let timer: unknown = null;
    let extensions = 0;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      this.probing = false;
      this.acks.delete(seq);
      this.cancel(timer);
      if (ok) {
        target.lastAck = this.clock.now();
        this.awareness.apply(-1);
        return;
      }
      this.counters.probesFailed++;
      // Lifeguard: relays that did not even nack suggest that we, not the target, are cut off.
      if (expectedNacks > 0 && nacks < expectedNacks) this.awareness.apply(expectedNacks - nacks);
      if (!this.running || this.leaving) return;
      const cur = this.table.get(target.id);
      if (cur !== target || cmpKey(targetGen, targetInc, cur) !== 0) return; // news arrived meanwhile
      if (cur.state !== 'alive' && cur.state !== 'suspect') return;
      this.onSuspect(this.suspectMsg(cur, this.id), true);
    };
    this.acks.set(seq, {
      onAck: () => finish(true),
      onNack: () => {
        nacks++;
        this.counters.nacksIn++;
      },
    });
    this.send(target.addr, frames);

    const indirectPhase = (late: number) => {
      if (done) return;
      // Our timer fired late: the ack may be sitting unread in the socket. Give it time first.
      if (this.stalled(late) && extensions++ < MAX_STALL_EXTENSIONS) {
        timer = this.after(timeout, indirectPhase);
        return;
      }
      const relays = this.pick(this.config.indirectChecks, (p) => p !== target && p.state === 'alive');
      const req: IndirectPing = {
        type: MsgType.IndirectPing,
        seq,
        targetId: target.id,
        targetAddr: target.addr,
        nack: true,
        sourceId: this.id,
        sourceAddr: this.self.addr,
      };
      const reqFrame = encodeFrame(req);
      for (const r of relays) {
        this.counters.indirectProbes++;
        this.send(r.addr, [reqFrame]);
      }
      expectedNacks = relays.length;
      if (this.config.tcpFallbackPing) this.tcpPing(target, seq, timeout, () => finish(true));
      timer = this.after(timeout, finalPhase);
    };
    const finalPhase = (late: number) => {
      if (done) return;
      if (this.stalled(late) && extensions++ < MAX_STALL_EXTENSIONS) {
        timer = this.after(timeout, finalPhase);
        return;
      }
      finish(false);
    };
    timer = this.after(timeout, indirectPhase);
  }

  private tcpPing(target: Member, seq: number, timeoutMs: number, onAck: () => void): void {
    this.counters.tcpFallbacks++;
    const ping = this.pingMsg(seq, target.id);
    this.counters.requestsOut++;
    this.transport.request(target.addr, encodeStream(ping), timeoutMs).then(
      (reply) => {
        const r = decodeStream(reply);
        if (r.ok && r.value.type === MsgType.Ack && r.value.seq === seq) onAck();
        else if (!r.ok) this.counters.malformed++;
      },
      () => {
        this.counters.requestsFailed++;
      },
    );
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    return this.seq;
  }

  private pingMsg(seq: number, targetId: string): Ping {
    return { type: MsgType.Ping, seq, targetId, sourceId: this.id, sourceAddr: this.self.addr };
  }

  private suspectMsg(m: Member, from: string): Suspect {
    return { type: MsgType.Suspect, id: m.id, generation: m.generation, incarnation: m.incarnation, from };
  }

  // ---------------------------------------------------------------- sending and gossip

  /**
   * One datagram: `frames` first, then as much piggybacked news as fits. `receiver`: the advertised
   * address of the member it is for, when `addr` is the source address a datagram came from (replies).
   */
  private send(addr: string, frames: Uint8Array[], receiver: string = addr): void {
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
    return retransmitLimit(this.config.retransmitMult, this.live);
  }

  /** One gossip round: queued news to `gossipNodes` random members (and recently dead ones). */
  private gossip(): void {
    this.lastFlush = this.clock.now();
    if (this.broadcasts.size === 0) return;
    const now = this.clock.now();
    const targets = this.pick(
      this.config.gossipNodes,
      (p) =>
        p.state === 'alive' ||
        p.state === 'suspect' ||
        (p.state === 'dead' && now - p.since < this.config.gossipToTheDeadMs),
    );
    for (const t of targets) {
      if (this.broadcasts.size === 0) break;
      this.send(t.addr, []);
    }
  }

  /** Urgent news (a join, a leave, a death, a refutation): gossip now rather than at the next tick. */
  private scheduleFlush(): void {
    if (this.flushTimer !== null || !this.running) return;
    const gap = this.config.gossipIntervalMs / 5;
    const wait = Math.max(0, this.lastFlush + gap - this.clock.now());
    this.flushTimer = this.clock.setTimeout(() => {
      this.flushTimer = null;
      if (this.running) this.gossip();
    }, wait);
  }

  /** Up to `k` distinct random members (not self) satisfying `ok`. */
  private pick(k: number, ok: (m: Member) => boolean): Member[] {
    const out: Member[] = [];
    const n = this.peers.length;
    if (n === 0 || k <= 0) return out;
    if (n <= k * 4) {
      // Small cluster: scan in random rotation so we never miss eligible members.
      const start = Math.floor(this.random() * n);
      for (let i = 0; i < n && out.length < k; i++) {
        const m = this.peers[(start + i) % n];
        if (ok(m)) out.push(m);
      }
      return out;
    }
    for (let tries = 0; tries < k * 8 && out.length < k; tries++) {
      const m = this.peers[Math.floor(this.random() * n)];
      if (ok(m) && !out.includes(m)) out.push(m);
    }
    return out;
  }

  // ---------------------------------------------------------------- receiving

  private handlePacket(from: string, data: Uint8Array): void {
    this.counters.packetsIn++;
    this.counters.bytesIn += data?.length ?? 0;
    if (!this.running) return;
    if (!(data instanceof Uint8Array) || data.length > this.transport.maxPacketBytes) {
      this.counters.malformed++;
      return;
    }
    const r = decodePacket(data);
    if (!r.ok) {
      this.counters.malformed++;
      this.log.debug({ from, error: r.error }, 'swim: dropped malformed packet');
      return;
    }
    for (const msg of r.value) {
      try {
        this.handleMessage(from, msg);
      } catch (err) {
        this.log.warn({ err, from, type: msg.type }, 'swim: message handler failed');
      }
      if (!this.running) return;
    }
  }

  private handleMessage(from: string, msg: Message): void {
    switch (msg.type) {
      case MsgType.Ping:
        // A new process at an old member's address must not answer for the old id.
        if (msg.targetId !== '' && msg.targetId !== this.id) return;
        if (this.leaving) return;
        // Back to where it came from (NAT may have rewritten that), bound to the sender as it names itself.
        this.send(from, [encodeFrame({ type: MsgType.Ack, seq: msg.seq })], msg.sourceAddr);
        return;
      case MsgType.IndirectPing:
        this.relayProbe(from, msg);
        return;
      case MsgType.Ack:
        this.acks.get(msg.seq)?.onAck();
        return;
      case MsgType.Nack:
        this.acks.get(msg.seq)?.onNack?.();
        return;
      case MsgType.Alive:
        this.onAlive(msg, false);
        return;
      case MsgType.Suspect:
        this.onSuspect(msg, false);
        return;
      case MsgType.Dead:
        this.onDead(msg);
        return;
      case MsgType.Left:
        this.onLeft(msg);
        return;
      case MsgType.PushPull:
        return; // stream only (decodePacket already rejects it)
    }
  }

  private relayProbe(from: string, req: IndirectPing): void {
    if (this.leaving || this.acks.size >= MAX_PENDING_ACKS) return;
    if (req.targetAddr === this.self.addr) return; // never ping ourselves on someone's behalf
    const seq = this.nextSeq();
    // Lifeguard: nack before the requester gives up (80% of its timeout), so the nack is counted.
    const timeout = this.config.probeTimeoutMs * 0.8;
    let timer: unknown = null;
    this.acks.set(seq, {
      onAck: () => {
        this.acks.delete(seq);
        this.cancel(timer);
        this.send(from, [encodeFrame({ type: MsgType.Ack, seq: req.seq })], req.sourceAddr);
      },
    });
    timer = this.after(timeout, () => {
      this.acks.delete(seq);
      if (req.nack) this.send(from, [encodeFrame({ type: MsgType.Nack, seq: req.seq })], req.sourceAddr);
    });
    const ping = this.pingMsg(seq, req.targetId);
    this.send(req.targetAddr, [encodeFrame(ping)]);
  }

  private async handleRequest(_from: string, data: Uint8Array): Promise<Uint8Array> {
    this.counters.requestsIn++;
    if (!this.running) throw new Error('swim: stopped');
    const r = decodeStream(data);
    if (!r.ok) {
      this.counters.malformed++;
      throw new Error(`swim: malformed stream message: ${r.error}`);
    }
    const msg = r.value;
    if (msg.type === MsgType.Ping) {
      if ((msg.targetId !== '' && msg.targetId !== this.id) || this.leaving)
        throw new Error('swim: not the target');
      return encodeStream({ type: MsgType.Ack, seq: msg.seq });
    }
    if (msg.type === MsgType.PushPull) {
      this.counters.pushPulls++;
      const reply = encodeStream(this.snapshot(false));
      this.merge(msg.members, false);
      return reply;
    }
    this.counters.malformed++;
    throw new Error(`swim: unexpected stream message type ${msg.type}`);
  }

  // ---------------------------------------------------------------- state transitions

  private onAlive(msg: Alive, quiet: boolean): void {
    if (msg.id === this.id) {
      const c = cmpKey(msg.generation, msg.incarnation, this.self);
      if (c > 0 || (c === 0 && (msg.addr !== this.self.addr || !sameMeta(msg.meta, this.self.meta)))) {
        this.refute(msg.generation, msg.incarnation);
      }
      return;
    }
    let m = this.table.get(msg.id);
    if (m && cmpKey(msg.generation, msg.incarnation, m) <= 0) return;
    if (!this.claimAddr(msg)) return;
    if (!m) {
      m = {
        id: msg.id,
        addr: msg.addr,
        meta: msg.meta,
        generation: msg.generation,
        incarnation: msg.incarnation,
        state: 'alive',
        since: this.clock.now(),
        suspicion: null,
        lastAck: Number.NEGATIVE_INFINITY,
        slot: this.peers.length,
      };
      this.table.set(m.id, m);
      this.peers.push(m);
      this.live++;
      // Probe newcomers within this round, at a random place so they are not all probed at once.
      this.probeOrder.splice(
        this.probeIndex + Math.floor(this.random() * (this.probeOrder.length - this.probeIndex + 1)),
        0,
        m.id,
      );
      this.emitChange(m, null);
      if (!quiet) {
        this.queueAlive(m);
        this.scheduleFlush();
      }
      return;
    }
    const prev = m.state;
    const changed = prev !== 'alive' || m.addr !== msg.addr || !sameMeta(m.meta, msg.meta);
    if (m.addr !== msg.addr && this.addrIndex.get(m.addr) === m.id) this.addrIndex.delete(m.addr);
    m.addr = msg.addr;
    m.meta = msg.meta;
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    this.setState(m, 'alive');
    this.addrIndex.set(m.addr, m.id);
    if (changed) this.emitChange(m, prev);
    if (!quiet) {
      this.queueAlive(m);
      if (prev !== 'alive') this.scheduleFlush();
    }
  }

  /**
   * A live member at `msg.addr` with another id: one address, one process. The newer generation wins;
   * the older holder is retired locally (every node applies the same rule, so no gossip is needed).
   * Returns false when `msg` is the older one and must be ignored.
   */
  private claimAddr(msg: Alive): boolean {
    const holderId = this.addrIndex.get(msg.addr);
    if (holderId === undefined || holderId === msg.id) {
      this.addrIndex.set(msg.addr, msg.id);
      return true;
    }
    const holder = this.table.get(holderId);
    if (!holder || (holder.state !== 'alive' && holder.state !== 'suspect') || holder.addr !== msg.addr) {
      this.addrIndex.set(msg.addr, msg.id);
      return true;
    }
    if (msg.generation < holder.generation) return false;
    if (msg.generation > holder.generation) {
      const prev = holder.state;
      this.setState(holder, 'dead');
      this.counters.deaths++;
      this.emitChange(holder, prev);
    }
    this.addrIndex.set(msg.addr, msg.id);
    return true;
  }

  private onSuspect(msg: Suspect, local: boolean): void {
    if (msg.id === this.id) {
      if (cmpKey(msg.generation, msg.incarnation, this.self) >= 0)
        this.refute(msg.generation, msg.incarnation);
      else if (msg.generation < this.self.generation) this.queueAlive(this.self);
      return;
    }
    const m = this.table.get(msg.id);
    if (!m || m.state === 'dead' || m.state === 'left') return;
    const c = cmpKey(msg.generation, msg.incarnation, m);
    if (c < 0) return;
    if (m.state === 'suspect' && m.suspicion) {
      if (c > 0) {
        m.generation = msg.generation;
        m.incarnation = msg.incarnation;
      }
      if (m.suspicion.confirm(msg.from)) {
        this.counters.confirmations++;
        this.queueFrame(m.id, encodeFrame(msg));
      }
      return;
    }
    // alive → suspect
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    this.setState(m, 'suspect');
    this.counters.suspicions++;
    const k = Math.max(0, Math.min(this.config.suspicionConfirmations, this.live - 2));
    const min = suspicionMinMs(this.config.suspicionMult, this.live, this.config.probeIntervalMs);
    const max = this.config.suspicionMaxTimeoutMult * min;
    const s: Suspicion = new Suspicion(this.clock, msg.from, k, min, Math.max(min, max), (late) =>
      this.suspicionExpired(m, s, late),
    );
    m.suspicion = s;
    this.queueFrame(m.id, encodeFrame(msg));
    this.scheduleFlush();
    if (!local) this.probeSoon(m);
    if (!this.suspectSet.has(m.id)) {
      this.suspectSet.add(m.id);
      this.suspects.push(m.id);
    }
    this.log.debug({ id: m.id, from: msg.from }, 'swim: member suspect');
    this.emitChange(m, prev);
  }

  private suspicionExpired(m: Member, s: Suspicion, late: number): void {
    if (!this.running || m.suspicion !== s || m.state !== 'suspect') return;
    // Stalled: the refutation may be waiting unread in our socket; look again shortly.
    if (this.stalled(late)) {
      s.rearm(this.awareness.scale(this.config.probeTimeoutMs));
      return;
    }
    // It answered us after it was suspected: it is reachable, only its refutation is missing (its
    // suspicion was spent while it was cut off, e.g. by a partition that has healed). Tell it again.
    if (m.lastAck >= s.startedAt) {
      this.send(m.addr, [encodeFrame(this.suspectMsg(m, this.id))]);
      s.rearm(this.awareness.scale(this.config.probeIntervalMs));
      return;
    }
    // Last chance, once: a direct ping carrying the suspicion. Costs one probe timeout on a real
    // death; saves a healthy member from being declared dead by a stale suspicion.
    if (!s.finalCheck) {
      s.finalCheck = true;
      this.counters.finalChecks++;
      this.directPing(m, [encodeFrame(this.suspectMsg(m, this.id))], () => {
        m.lastAck = this.clock.now();
      });
      s.rearm(this.awareness.scale(this.config.probeTimeoutMs));
      return;
    }
    const dead: Dead = {
      type: MsgType.Dead,
      id: m.id,
      generation: m.generation,
      incarnation: m.incarnation,
      from: this.id,
    };
    this.onDead(dead, true);
  }

  /** `verdict`: our own suspicion timed out (not news from others). */
  private onDead(msg: Dead, verdict = false): void {
    if (msg.id === this.id) {
      if (this.leaving) return;
      if (cmpKey(msg.generation, msg.incarnation, this.self) >= 0)
        this.refute(msg.generation, msg.incarnation);
      else if (msg.generation < this.self.generation) this.queueAlive(this.self);
      return;
    }
    const m = this.table.get(msg.id);
    if (!m || m.state === 'dead' || m.state === 'left') return;
    const c = cmpKey(msg.generation, msg.incarnation, m);
    if (c < 0) return;
    if (c === 0 && m.state === 'alive' && !verdict) {
      // We had not even heard a suspicion: this death news may be stale (e.g. it crossed a healed
      // partition). Suspect instead: the member gets to refute, or our own probes confirm it.
      this.onSuspect(this.suspectMsg(m, msg.from), false);
      if (m.suspicion) m.suspicion.fromDeadNews = true;
      return;
    }
    const s = m.suspicion;
    if (c === 0 && m.state === 'suspect' && s && !verdict) {
      // Death news on a suspicion our own probes did not confirm may be stale (relayed suspicions
      // and their confirmations can all stem from one stale death): count it as a confirmation and
      // let our own timer, with its last-chance ping, decide. A suspicion we raised ourselves (our
      // probe failed, or we merged a suspect state) and that death news did not start is accepted at
      // once (fast in real crashes: suspects are probed first).
      if (s.fromDeadNews || !s.accusedBy(this.id)) {
        if (s.confirm(msg.from)) this.counters.confirmations++;
        return;
      }
    }
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    this.setState(m, 'dead');
    this.counters.deaths++;
    this.queueFrame(m.id, encodeFrame(msg));
    this.scheduleFlush();
    this.log.info({ id: m.id, addr: m.addr, from: msg.from }, 'swim: member dead');
    this.emitChange(m, prev);
  }

  private onLeft(msg: Left): void {
    if (msg.id === this.id) {
      if (!this.leaving && cmpKey(msg.generation, msg.incarnation, this.self) >= 0) {
        this.refute(msg.generation, msg.incarnation);
      }
      return;
    }
    const m = this.table.get(msg.id);
    if (!m || m.state === 'left') return;
    if (cmpKey(msg.generation, msg.incarnation, m) < 0) return;
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    this.setState(m, 'left');
    this.counters.leaves++;
    this.queueFrame(m.id, encodeFrame(msg));
    this.scheduleFlush();
    this.log.info({ id: m.id, addr: m.addr }, 'swim: member left');
    this.emitChange(m, prev);
  }

  /** Someone says we are suspect/dead/left (or claims our id): outbid it with a higher incarnation. */
  private refute(gen: number, inc: number): void {
    if (this.leaving) return;
    this.counters.refutations++;
    this.awareness.apply(1); // being accused hints that we are the slow one
    if (gen > this.self.generation) {
      this.self.generation = gen;
      this.self.incarnation = inc + 1;
    } else {
      this.self.incarnation = Math.max(this.self.incarnation, inc) + 1;
    }
    this.queueAlive(this.self);
    this.scheduleFlush();
  }

  private setState(m: Member, state: MemberState): void {
    const wasLive = m.state === 'alive' || m.state === 'suspect';
    const isLive = state === 'alive' || state === 'suspect';
    if (state !== 'suspect' && m.suspicion) {
      m.suspicion.cancel();
      m.suspicion = null;
    }
    if (m.state !== state) m.since = this.clock.now();
    m.state = state;
    if (m === this.self) return;
    if (wasLive && !isLive) {
      this.live--;
      if (this.addrIndex.get(m.addr) === m.id) this.addrIndex.delete(m.addr);
    } else if (!wasLive && isLive) {
      this.live++;
    }
  }

  private emitChange(m: Member, prev: MemberState | null): void {
    if (this.listenerCount('change') === 0) return; // no copy to build (big simulated clusters)
    try {
      this.emit('change', view(m), prev);
    } catch (err) {
      this.log.warn({ err }, "swim: a 'change' listener threw");
    }
  }

  // ---------------------------------------------------------------- broadcasts

  private queueAlive(m: Member): void {
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

  private queueFrame(key: string, frame: Uint8Array): void {
    this.counters.broadcastsQueued++;
    this.broadcasts.push(key, frame);
    this.armGossip();
  }

  /** The gossip tick runs only while there is news: an idle cluster costs probes only. */
  private armGossip(): void {
    if (this.gossipTimer !== null || !this.running) return;
    this.gossipTimer = this.after(this.config.gossipIntervalMs, () => {
      this.gossipTimer = null;
      this.gossip();
      if (this.broadcasts.size > 0) this.armGossip();
    });
  }

  // ---------------------------------------------------------------- push-pull, join, reconnect

  private snapshot(join: boolean): PushPull {
    const members: MemberRecord[] = [];
    for (const m of this.table.values()) {
      members.push({
        id: m.id,
        addr: m.addr,
        meta: m.meta,
        generation: m.generation,
        incarnation: m.incarnation,
        state: m.state,
      });
    }
    return { type: MsgType.PushPull, join, sourceId: this.id, members };
  }

  /**
   * Full state exchange with `addr` over the stream path. `seed`: `addr` came from seed resolution,
   * not from a member's own advertised address, so the request cannot be bound to its receiver.
   */
  private async pushPull(addr: string, join: boolean, seed = false): Promise<void> {
    this.counters.requestsOut++;
    let reply: Uint8Array;
    try {
      reply = await this.transport.request(
        addr,
        encodeStream(this.snapshot(join)),
        this.config.streamTimeoutMs,
        seed ? null : addr,
      );
    } catch (err) {
      this.counters.requestsFailed++;
      throw err;
    }
    const r = decodeStream(reply);
    if (!r.ok || r.value.type !== MsgType.PushPull) {
      this.counters.malformed++;
      throw new Error(`push-pull with ${addr}: bad reply (${r.ok ? `type ${r.value.type}` : r.error})`);
    }
    this.counters.pushPulls++;
    if (this.running) this.merge(r.value.members, join);
  }

  /**
   * Merge a remote full state. `join`: the state comes from the cluster we join, which already knows
   * it, so it is not re-gossiped. Disagreements at the same (generation, incarnation) are settled by
   * looking, not by gossip: a member we hold dead but the remote holds alive is pinged by us and revived
   * locally if it answers; a member the remote holds dead or suspect but we hold alive is left to our
   * own probes. After a partition heals this merges both sides without making every member refute
   * (an incarnation storm of n broadcasts) and without declaring any healthy member dead.
   */
  private merge(records: MemberRecord[], join: boolean): void {
    for (const r of records) {
      const base = { id: r.id, generation: r.generation, incarnation: r.incarnation };
      if (r.id === this.id) {
        if (r.state === 'alive')
          this.onAlive({ type: MsgType.Alive, ...base, addr: r.addr, meta: r.meta }, true);
        else if (cmpKey(r.generation, r.incarnation, this.self) >= 0)
          this.refute(r.generation, r.incarnation);
        continue;
      }
      const m = this.table.get(r.id);
      switch (r.state) {
        case 'alive':
          if (m && m.state === 'dead' && cmpKey(r.generation, r.incarnation, m) === 0) this.verify(m);
          else this.onAlive({ type: MsgType.Alive, ...base, addr: r.addr, meta: r.meta }, join);
          break;
        case 'suspect':
        case 'dead':
          if (m && cmpKey(r.generation, r.incarnation, m) > 0) {
            // Newer news than ours: a suspicion we must hear about (the member refutes if alive).
            this.onSuspect({ type: MsgType.Suspect, ...base, from: this.id }, true);
          }
          break;
        case 'left':
          if (m) this.onLeft({ type: MsgType.Left, ...base });
          break;
      }
    }
  }

  /** Ping a member we hold dead that others hold alive; if it answers, it is alive again (here). */
  private verify(m: Member): void {
    if (this.acks.size >= MAX_PENDING_ACKS || !this.running) return;
    const gen = m.generation;
    const inc = m.incarnation;
    this.directPing(m, [], () => {
      if (this.table.get(m.id) !== m || m.state !== 'dead' || cmpKey(gen, inc, m) !== 0) return;
      this.setState(m, 'alive');
      this.addrIndex.set(m.addr, m.id);
      this.probeOrder.push(m.id);
      this.emitChange(m, 'dead');
    });
  }

  /**
   * One direct ping to `m` (with `extra` frames in the same packet), outside the probe cycle: `onAck`
   * runs if it answers within twice the (scaled) probe timeout, after which the wait is dropped.
   */
  private directPing(m: Member, extra: Uint8Array[], onAck: () => void): void {
    const seq = this.nextSeq();
    let timer: unknown = null;
    this.acks.set(seq, {
      onAck: () => {
        this.acks.delete(seq);
        this.cancel(timer);
        onAck();
      },
    });
    timer = this.after(this.awareness.scale(this.config.probeTimeoutMs) * 2, () => this.acks.delete(seq));
    this.send(m.addr, [encodeFrame(this.pingMsg(seq, m.id)), ...extra]);
  }

  private pushPullInterval(): number {
    // memberlist's scaling: above 32 members, stretch logarithmically so the stream load stays bounded.
    const n = this.live;
    const mult = n <= 32 ? 1 : Math.ceil(Math.log2(n) - Math.log2(32)) + 1;
    return this.config.pushPullIntervalMs * mult;
  }

  private periodicPushPull(): void {
    const [m] = this.pick(1, (p) => p.state === 'alive');
    if (!m) return;
    this.pushPull(m.addr, false).catch((err) => {
      this.log.debug({ addr: m.addr, err: err?.message }, 'swim: push-pull failed');
    });
  }

  private async resolve(seeds: string[]): Promise<string[]> {
    let addrs: string[];
    try {
      addrs = await this.resolveSeeds(seeds);
    } catch (err) {
      this.log.warn({ err, seeds }, 'swim: seed resolution failed');
      return [];
    }
    return [...new Set(addrs)].filter((a) => a && a !== this.self.addr);
  }

  /** Join the seeds with exponential backoff until one answers: start order never matters. */
  private async backgroundJoin(): Promise<void> {
    if (this.seeds.length === 0) return;
    let delay = this.config.joinRetryMs;
    while (this.running && !this.joined) {
      try {
        const n = await this.join();
        if (n > 0 || (await this.resolve(this.seeds)).length === 0) return;
      } catch (err) {
        this.log.debug({ err: (err as Error).message }, 'swim: join failed, will retry');
      }
      if (!this.running) return;
      await new Promise<void>((resolve) => this.after(delay * (0.5 + this.random()), () => resolve()));
      delay = Math.min(this.config.joinMaxBackoffMs, delay * 2);
    }
  }

  /**
   * Partition healing (Serf's reconnect): push-pull with one seed that is not a live member and one
   * recently dead member. After a partition heals this is what finds the other side.
   */
  private reconnect(): void {
    const tryAddr = (addr: string, seed: boolean) => {
      this.counters.reconnects++;
      this.pushPull(addr, false, seed).catch(() => {});
    };
    // A full scan (every few seconds, O(n)): random picks would rarely hit the few dead in a big cluster.
    const dead: Member[] = [];
    for (const p of this.peers) if (p.state === 'dead') dead.push(p);
    if (dead.length > 0) tryAddr(dead[Math.floor(this.random() * dead.length)].addr, false);
    if (this.seeds.length > 0) {
      this.resolve(this.seeds).then((addrs) => {
        if (!this.running) return;
        const outside = addrs.filter((a) => {
          const id = this.addrIndex.get(a);
          return id === undefined;
        });
        if (outside.length > 0) tryAddr(outside[Math.floor(this.random() * outside.length)], true);
      });
    }
  }

  /** Forget dead/left members after deadReapMs, and the oldest beyond maxDeadMembers. */
  private reap(): void {
    const now = this.clock.now();
    const gone: Member[] = [];
    for (const p of this.peers) if (p.state === 'dead' || p.state === 'left') gone.push(p);
    gone.sort((a, b) => a.since - b.since);
    let excess = gone.length - this.config.maxDeadMembers;
    for (const m of gone) {
      if (now - m.since < this.config.deadReapMs && excess <= 0) break;
      excess--;
      this.forget(m);
    }
  }

  private forget(m: Member): void {
    this.table.delete(m.id);
    const last = this.peers.pop()!;
    if (last !== m) {
      this.peers[m.slot] = last;
      last.slot = m.slot;
    }
    this.counters.reaped++;
  }

  // ---------------------------------------------------------------- helpers

  private checkMeta(meta: Record<string, string>): void {
    if (meta === null || typeof meta !== 'object')
      throw new TypeError('metadata must be an object of strings');
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v !== 'string')
        throw new TypeError(`metadata value of ${JSON.stringify(k)} must be a string`);
      if (k.length === 0 || utf8Len(k) > 255)
        throw new RangeError(`metadata key ${JSON.stringify(k)} must be 1..255 bytes`);
    }
    let size: number;
    try {
      size = metaSize(meta);
    } catch (err) {
      throw new RangeError(`metadata too large: ${(err as Error).message}`);
    }
    const max = this.config?.maxMetaBytes ?? defaultSwimConfig.maxMetaBytes;
    if (size > max) {
      throw new RangeError(
        `metadata encodes to ${size} bytes, over the limit of ${max} (config.maxMetaBytes): it must fit in one ` +
          'datagram with the gossip it rides with; keep it to small fields such as grpcAddr and version',
      );
    }
  }
}

/** Fisher-Yates, in place. */
function shuffle<T>(a: T[], random: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
}
