// The member state machine: what news about a member (alive, suspect, dead, left) does to our table.
// News about a member is ordered by (generation, incarnation) (cmpKey in members.ts); news about this
// node itself is answered in one place, aboutSelf: anything that says we are not alive, at our current
// incarnation or later, is outbid by a higher incarnation (a refutation).
//
//   alive ──(our probe fails, or gossip)──▶ suspect ──(suspicion times out)──▶ dead
//     ▲                                       │ refuted (newer alive)            │ answers a ping
//     └───────────────────────────────────────┴──────────────────────────────────┘ (verify)
//   any state ──(left)──▶ left; dead/left members are reaped after deadReapMs.

import type { SwimCore } from './core.js';
import { cmpKey, type Member, sameMeta } from './members.js';
import { type Alive, type Dead, encodeFrame, type Left, MsgType, type Suspect } from './messages.js';
import type { Prober } from './probe.js';
import { Suspicion, suspicionMinMs } from './suspicion.js';

export type News = Alive | Suspect | Dead | Left;

export class Transitions {
  constructor(
    private readonly core: SwimCore,
    private readonly prober: Prober,
  ) {}

  /** News from the network (gossip, a piggybacked frame) about any member, this node included. */
  receive(msg: News): void {
    if (msg.id === this.core.id) {
      this.aboutSelf(msg);
      return;
    }
    switch (msg.type) {
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
    }
  }

  /** News about this node from someone else. */
  aboutSelf(msg: News): void {
    const c = this.core;
    const self = c.self;
    const order = cmpKey(msg.generation, msg.incarnation, self);
    switch (msg.type) {
      case MsgType.Alive:
        // Our own news coming back is not news; a newer one, or ours with another address or metadata,
        // is someone else speaking for our id.
        if (order > 0 || (order === 0 && (msg.addr !== self.addr || !sameMeta(msg.meta, self.meta)))) {
          this.refute(msg.generation, msg.incarnation);
        }
        return;
      case MsgType.Left:
        if (!c.leaving && order >= 0) this.refute(msg.generation, msg.incarnation);
        return;
      case MsgType.Suspect:
      case MsgType.Dead:
        if (msg.type === MsgType.Dead && c.leaving) return;
        if (order >= 0) this.refute(msg.generation, msg.incarnation);
        // About an older process of ours: remind whoever still spreads it that we restarted.
        else if (msg.generation < self.generation) c.queueAlive(self);
        return;
    }
  }

  // onAlive, onSuspect, onDead, onLeft: news about another member (news about us goes to aboutSelf).

  /** `quiet`: the news came with a state the cluster already knows (a join): do not gossip it again. */
  onAlive(msg: Alive, quiet: boolean): void {
    const c = this.core;
    let m = c.table.get(msg.id);
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
        since: c.clock.now(),
        suspicion: null,
        lastAck: Number.NEGATIVE_INFINITY,
        slot: -1,
      };
      c.table.add(m);
      this.prober.addNewcomer(m);
      c.emitChange(m, null);
      if (!quiet) {
        c.queueAlive(m);
        c.scheduleFlush();
      }
      return;
    }
    const prev = m.state;
    const changed = prev !== 'alive' || m.addr !== msg.addr || !sameMeta(m.meta, msg.meta);
    if (m.addr !== msg.addr) c.table.releaseAddr(m);
    m.addr = msg.addr;
    m.meta = msg.meta;
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    c.table.setState(m, 'alive');
    c.table.holdAddr(m.addr, m.id);
    if (changed) c.emitChange(m, prev);
    if (!quiet) {
      c.queueAlive(m);
      if (prev !== 'alive') c.scheduleFlush();
    }
  }

  /**
   * A live member at `msg.addr` with another id: one address, one process. The newer generation wins;
   * the older holder is retired locally (every node applies the same rule, so no gossip is needed).
   * Returns false when `msg` is the older one and must be ignored.
   */
  private claimAddr(msg: Alive): boolean {
    const c = this.core;
    const holderId = c.table.holderOf(msg.addr);
    if (holderId === undefined || holderId === msg.id) {
      c.table.holdAddr(msg.addr, msg.id);
      return true;
    }
    const holder = c.table.get(holderId);
    if (!holder || (holder.state !== 'alive' && holder.state !== 'suspect') || holder.addr !== msg.addr) {
      c.table.holdAddr(msg.addr, msg.id);
      return true;
    }
    if (msg.generation < holder.generation) return false;
    if (msg.generation > holder.generation) {
      const prev = holder.state;
      c.table.setState(holder, 'dead');
      c.counters.deaths++;
      c.emitChange(holder, prev);
    }
    c.table.holdAddr(msg.addr, msg.id);
    return true;
  }

  /** `local`: our own verdict (our probe failed, or a merged state), not gossip from others. */
  onSuspect(msg: Suspect, local: boolean): void {
    const c = this.core;
    const m = c.table.get(msg.id);
    if (!m || m.state === 'dead' || m.state === 'left') return;
    const order = cmpKey(msg.generation, msg.incarnation, m);
    if (order < 0) return;
    if (m.state === 'suspect' && m.suspicion) {
      if (order > 0) {
        m.generation = msg.generation;
        m.incarnation = msg.incarnation;
      }
      if (m.suspicion.confirm(msg.from)) {
        c.counters.confirmations++;
        c.queueFrame(m.id, encodeFrame(msg));
      }
      return;
    }
    // alive → suspect
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    c.table.setState(m, 'suspect');
    c.counters.suspicions++;
    const live = c.table.live;
    const k = Math.max(0, Math.min(c.config.suspicionConfirmations, live - 2));
    const min = suspicionMinMs(c.config.suspicionMult, live, c.config.probeIntervalMs);
    const max = c.config.suspicionMaxTimeoutMult * min;
    const s: Suspicion = new Suspicion(c.clock, msg.from, k, min, Math.max(min, max), (late) =>
      this.suspicionExpired(m, s, late),
    );
    m.suspicion = s;
    c.queueFrame(m.id, encodeFrame(msg));
    c.scheduleFlush();
    if (!local) this.prober.probeSoon(m);
    this.prober.trackSuspect(m);
    c.log.debug({ id: m.id, from: msg.from }, 'swim: member suspect');
    c.emitChange(m, prev);
  }

  private suspicionExpired(m: Member, s: Suspicion, late: number): void {
    const c = this.core;
    if (!c.running || m.suspicion !== s || m.state !== 'suspect') return;
    // Stalled: the refutation may be waiting unread in our socket; look again shortly.
    if (c.stalled(late)) {
      s.rearm(c.awareness.scale(c.config.probeTimeoutMs));
      return;
    }
    // It answered us after it was suspected: it is reachable, only its refutation is missing (its
    // suspicion was spent while it was cut off, e.g. by a partition that has healed). Tell it again.
    if (m.lastAck >= s.startedAt) {
      c.send(m.addr, [encodeFrame(c.suspectMsg(m, c.id))]);
      s.rearm(c.awareness.scale(c.config.probeIntervalMs));
      return;
    }
    // Last chance, once: a direct ping carrying the suspicion. Costs one probe timeout on a real
    // death; saves a healthy member from being declared dead by a stale suspicion.
    if (!s.finalCheck) {
      s.finalCheck = true;
      c.counters.finalChecks++;
      this.prober.directPing(m, [encodeFrame(c.suspectMsg(m, c.id))], () => {
        m.lastAck = c.clock.now();
      });
      s.rearm(c.awareness.scale(c.config.probeTimeoutMs));
      return;
    }
    const dead: Dead = {
      type: MsgType.Dead,
      id: m.id,
      generation: m.generation,
      incarnation: m.incarnation,
      from: c.id,
    };
    this.onDead(dead, true);
  }

  /** `verdict`: our own suspicion timed out (not news from others). */
  onDead(msg: Dead, verdict = false): void {
    const c = this.core;
    const m = c.table.get(msg.id);
    if (!m || m.state === 'dead' || m.state === 'left') return;
    const order = cmpKey(msg.generation, msg.incarnation, m);
    if (order < 0) return;
    if (order === 0 && m.state === 'alive' && !verdict) {
      // We had not even heard a suspicion: this death news may be stale (e.g. it crossed a healed
      // partition). Suspect instead: the member gets to refute, or our own probes confirm it.
      this.onSuspect(c.suspectMsg(m, msg.from), false);
      if (m.suspicion) m.suspicion.fromDeadNews = true;
      return;
    }
    const s = m.suspicion;
    if (order === 0 && m.state === 'suspect' && s && !verdict) {
      // Death news on a suspicion our own probes did not confirm may be stale (relayed suspicions
      // and their confirmations can all stem from one stale death): count it as a confirmation and
      // let our own timer, with its last-chance ping, decide. A suspicion we raised ourselves (our
      // probe failed, or we merged a suspect state) and that death news did not start is accepted at
      // once (fast in real crashes: suspects are probed first).
      if (s.fromDeadNews || !s.accusedBy(c.id)) {
        if (s.confirm(msg.from)) c.counters.confirmations++;
        return;
      }
    }
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    c.table.setState(m, 'dead');
    c.counters.deaths++;
    c.queueFrame(m.id, encodeFrame(msg));
    c.scheduleFlush();
    c.log.info({ id: m.id, addr: m.addr, from: msg.from }, 'swim: member dead');
    c.emitChange(m, prev);
  }

  onLeft(msg: Left): void {
    const c = this.core;
    const m = c.table.get(msg.id);
    if (!m || m.state === 'left') return;
    if (cmpKey(msg.generation, msg.incarnation, m) < 0) return;
    m.generation = msg.generation;
    m.incarnation = msg.incarnation;
    const prev = m.state;
    c.table.setState(m, 'left');
    c.counters.leaves++;
    c.queueFrame(m.id, encodeFrame(msg));
    c.scheduleFlush();
    c.log.info({ id: m.id, addr: m.addr }, 'swim: member left');
    c.emitChange(m, prev);
  }

  /** Someone says we are suspect/dead/left (or claims our id): outbid it with a higher incarnation. */
  refute(gen: number, inc: number): void {
    const c = this.core;
    if (c.leaving) return;
    c.counters.refutations++;
    c.awareness.apply(1); // being accused hints that we are the slow one
    if (gen > c.self.generation) {
      c.self.generation = gen;
      c.self.incarnation = inc + 1;
    } else {
      c.self.incarnation = Math.max(c.self.incarnation, inc) + 1;
    }
    c.queueAlive(c.self);
    c.scheduleFlush();
  }

  /** Ping a member we hold dead that others hold alive; if it answers, it is alive again (here). */
  verify(m: Member): void {
    const c = this.core;
    if (this.prober.busy || !c.running) return;
    const gen = m.generation;
    const inc = m.incarnation;
    this.prober.directPing(m, [], () => {
      if (c.table.get(m.id) !== m || m.state !== 'dead' || cmpKey(gen, inc, m) !== 0) return;
      c.table.setState(m, 'alive');
      c.table.holdAddr(m.addr, m.id);
      this.prober.addToRound(m);
      c.emitChange(m, 'dead');
    });
  }
}
