// One SWIM + Lifeguard node (memberlist's model, our own code): its lifecycle, its public API, and the
// receiving side that hands each message to the part that handles it. The parts, as memberlist splits
// memberlist.go / state.go / net.go:
//   members.ts      the member table (data and indexes only)
//   transitions.ts  the member state machine: alive, suspect, dead, left; news about ourselves
//   probe.ts        the failure detector: probes, indirect probes, relays, acks
//   sync.ts         anti-entropy: push-pull, join, reconnect
//   core.ts         what they share: config, clock and timers, counters, sending and gossip
//
// Each node, every probe interval, pings the next member of a shuffled round-robin list; without an
// ack in time it asks k others to ping it for us and tries the stream path; if all fail the member
// becomes suspect. The suspicion rides on the next pings to the suspect (so it can refute by bumping
// its incarnation) and is gossiped; Lifeguard shortens its timeout as independent accusers confirm it
// and stretches our own timers when we are the slow one. Every state change is gossiped by
// piggybacking on probe traffic and on a fast gossip tick, and a periodic full-state push-pull over
// the stream path repairs whatever gossip missed.

import { EventEmitter } from 'node:events';
import { silentLogger } from '../logger.js';
import { SwimCore } from './core.js';
import { MemberTable, view } from './members.js';
import {
  decodePacket,
  decodeStream,
  encodeFrame,
  encodeStream,
  type Left,
  type Message,
  MsgType,
  metaSize,
} from './messages.js';
import { Prober, shuffle } from './probe.js';
import { Sync } from './sync.js';
import { Transitions } from './transitions.js';
import { realClock } from './transport.js';
import {
  defaultSwimConfig,
  type MemberState,
  type MemberView,
  type SwimConfig,
  type SwimOptions,
  type SwimStats,
} from './types.js';

export type { MemberState, MemberView, SwimConfig, SwimOptions, SwimStats } from './types.js';

/** Members told of our leave directly (the rest hear it by gossip). */
const MAX_LEAVE_DIRECT = 512;

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
  private readonly core: SwimCore;
  private readonly table: MemberTable;
  private readonly prober: Prober;
  private readonly transitions: Transitions;
  private readonly sync: Sync;

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
    checkMeta(opts.meta, this.config.maxMetaBytes);
    this.id = opts.id;
    const clock = opts.clock ?? realClock;
    const random = opts.random ?? Math.random;
    this.table = new MemberTable(
      {
        id: opts.id,
        addr,
        meta: { ...opts.meta },
        generation: Math.floor(opts.generation ?? Date.now()),
        incarnation: 0,
        state: 'alive',
        since: clock.now(),
        suspicion: null,
        lastAck: Number.NEGATIVE_INFINITY,
        slot: -1,
      },
      clock,
    );
    this.core = new SwimCore({
      id: opts.id,
      config: this.config,
      table: this.table,
      transport: opts.transport,
      clock,
      random,
      log: opts.log ?? silentLogger,
      events: this,
    });
    this.prober = new Prober(this.core, (msg) => this.transitions.onSuspect(msg, true));
    this.transitions = new Transitions(this.core, this.prober);
    this.sync = new Sync(
      this.core,
      this.transitions,
      [...(opts.seeds ?? [])],
      opts.resolveSeeds ?? (async (s) => s),
    );
  }

  // ---------------------------------------------------------------- lifecycle

  /** Start probing, gossiping and (in the background) joining the seeds until one answers. */
  start(): void {
    const c = this.core;
    if (c.running) return;
    c.running = true;
    this.prober.probing = false;
    c.transport.onPacket = (from, data) => this.handlePacket(from, data);
    c.transport.onRequest = (from, data) => this.handleRequest(from, data);
    c.queueAlive(this.table.self);
    c.every(
      () => c.awareness.scale(this.config.probeIntervalMs),
      (late) => this.prober.tick(late),
      true,
    );
    c.armGossip();
    c.every(
      () => this.sync.pushPullInterval(),
      () => this.sync.periodicPushPull(),
      true,
    );
    c.every(
      () => this.config.reconnectIntervalMs,
      () => this.sync.reconnect(),
      true,
    );
    c.every(
      () => Math.max(1000, this.config.deadReapMs / 4),
      () => {
        c.counters.reaped += this.table.reap(
          c.clock.now(),
          this.config.deadReapMs,
          this.config.maxDeadMembers,
        );
      },
      false,
    );
    void this.sync.backgroundJoin();
  }

  /**
   * Contact `seeds` (default: the constructor's) by a full state exchange. Resolves with how many
   * answered; rejects when none did. A lone node (no seeds other than itself) resolves 0.
   */
  join(seeds: string[] = this.sync.seeds): Promise<number> {
    return this.sync.join(seeds);
  }

  /**
   * Announce that this node leaves, wait until the news went out (or `timeoutMs`), then stop.
   * Peers drop a left member at once (no suspicion).
   */
  async leave(timeoutMs = 1000): Promise<void> {
    const c = this.core;
    const self = this.table.self;
    if (!c.running || c.leaving) return;
    c.leaving = true;
    const prev = self.state;
    this.table.setState(self, 'left');
    c.emitChange(self, prev);
    const left: Left = {
      type: MsgType.Left,
      id: this.id,
      generation: self.generation,
      incarnation: self.incarnation,
    };
    const frame = encodeFrame(left);
    await new Promise<void>((resolve) => {
      const h = c.clock.setTimeout(resolve, timeoutMs);
      c.armGossip();
      c.broadcasts.push(this.id, frame, () => {
        c.clock.clearTimeout(h);
        resolve();
      });
      // Tell every live member directly (up to MAX_LEAVE_DIRECT, the rest by gossip): a leave is rare,
      // and with few members the gossip retransmit budget (4 sends each at n ≤ 9) can miss one
      // (seen with real processes: docs/membership-ops.md), which then suspects and kills us instead.
      const live = this.table.peers.filter((p) => p.state === 'alive' || p.state === 'suspect');
      shuffle(live, c.random);
      for (const m of live.slice(0, MAX_LEAVE_DIRECT)) c.send(m.addr, [frame]);
      c.scheduleFlush();
    });
    this.stop();
  }

  /**
   * Adopt a known member list as if learned from a join, without gossiping it (the cluster already
   * knows it). For simulations that need a converged cluster of thousands without paying for its
   * formation, and for warm restarts from a saved list. Members' states are taken as given.
   */
  seedState(members: readonly MemberView[]): void {
    this.sync.merge(
      members.map((m) => ({ ...m })),
      true,
    );
  }

  /** Stop all timers and detach from the transport (the owner closes the transport). Idempotent. */
  stop(): void {
    const c = this.core;
    c.running = false;
    c.cancelAll();
    for (const m of this.table.all()) {
      m.suspicion?.cancel();
      m.suspicion = null;
    }
    this.prober.clear();
    c.broadcasts.clear();
    if (c.transport.onPacket) c.transport.onPacket = null;
    if (c.transport.onRequest) c.transport.onRequest = null;
  }

  // ---------------------------------------------------------------- queries

  /** Every known member (self included), any state. Ring: alive + suspect own keys. */
  members(): MemberView[] {
    const out: MemberView[] = [];
    for (const m of this.table.all()) out.push(view(m));
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
    return view(this.table.self);
  }

  /** Number of alive + suspect members, self included. */
  get size(): number {
    return this.table.live;
  }

  /** Publish new metadata (bumps our incarnation). Throws RangeError when it is too large. */
  updateMeta(meta: Record<string, string>): void {
    checkMeta(meta, this.config.maxMetaBytes);
    const self = this.table.self;
    self.meta = { ...meta };
    self.incarnation++;
    this.core.queueAlive(self);
    this.core.scheduleFlush();
    this.core.emitChange(self, self.state);
  }

  stats(): SwimStats {
    const c = this.core;
    return { ...c.counters, broadcastsDropped: c.broadcasts.dropped, awareness: c.awareness.health };
  }

  // ---------------------------------------------------------------- receiving

  private handlePacket(from: string, data: Uint8Array): void {
    const c = this.core;
    c.counters.packetsIn++;
    c.counters.bytesIn += data?.length ?? 0;
    if (!c.running) return;
    if (!(data instanceof Uint8Array) || data.length > c.transport.maxPacketBytes) {
      c.counters.malformed++;
      return;
    }
    const r = decodePacket(data);
    if (!r.ok) {
      c.counters.malformed++;
      c.log.debug({ from, error: r.error }, 'swim: dropped malformed packet');
      return;
    }
    for (const msg of r.value) {
      try {
        this.handleMessage(from, msg);
      } catch (err) {
        c.log.warn({ err, from, type: msg.type }, 'swim: message handler failed');
      }
      if (!c.running) return;
    }
  }

  private handleMessage(from: string, msg: Message): void {
    switch (msg.type) {
      case MsgType.Ping:
        // A new process at an old member's address must not answer for the old id.
        if (msg.targetId !== '' && msg.targetId !== this.id) return;
        if (this.core.leaving) return;
        // Back to where it came from (NAT may have rewritten that), bound to the sender as it names itself.
        this.core.send(from, [encodeFrame({ type: MsgType.Ack, seq: msg.seq })], msg.sourceAddr);
        return;
      case MsgType.IndirectPing:
        this.prober.relay(from, msg);
        return;
      case MsgType.Ack:
        this.prober.ack(msg.seq);
        return;
      case MsgType.Nack:
        this.prober.nack(msg.seq);
        return;
      case MsgType.Alive:
      case MsgType.Suspect:
      case MsgType.Dead:
      case MsgType.Left:
        this.transitions.receive(msg);
        return;
      case MsgType.PushPull:
        return; // stream only (decodePacket already rejects it)
    }
  }

  private async handleRequest(_from: string, data: Uint8Array): Promise<Uint8Array> {
    const c = this.core;
    c.counters.requestsIn++;
    if (!c.running) throw new Error('swim: stopped');
    const r = decodeStream(data);
    if (!r.ok) {
      c.counters.malformed++;
      throw new Error(`swim: malformed stream message: ${r.error}`);
    }
    const msg = r.value;
    if (msg.type === MsgType.Ping) {
      if ((msg.targetId !== '' && msg.targetId !== this.id) || c.leaving)
        throw new Error('swim: not the target');
      return encodeStream({ type: MsgType.Ack, seq: msg.seq });
    }
    if (msg.type === MsgType.PushPull) return this.sync.answer(msg);
    c.counters.malformed++;
    throw new Error(`swim: unexpected stream message type ${msg.type}`);
  }
}

function checkMeta(meta: Record<string, string>, max: number): void {
  if (meta === null || typeof meta !== 'object') throw new TypeError('metadata must be an object of strings');
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== 'string') throw new TypeError(`metadata value of ${JSON.stringify(k)} must be a string`);
    if (k.length === 0 || utf8Len(k) > 255)
      throw new RangeError(`metadata key ${JSON.stringify(k)} must be 1..255 bytes`);
  }
  let size: number;
  try {
    size = metaSize(meta);
  } catch (err) {
    throw new RangeError(`metadata too large: ${(err as Error).message}`);
  }
  if (size > max) {
    throw new RangeError(
      `metadata encodes to ${size} bytes, over the limit of ${max} (config.maxMetaBytes): it must fit in one ` +
        'datagram with the gossip it rides with; keep it to small fields such as grpcAddr and version',
    );
  }
}
