// Probing (SWIM's failure detector with Lifeguard's refinements). Every probe interval this node pings
// the next member of a shuffled round-robin list; without an ack in time it asks k others to ping it for
// us (they nack if they cannot reach it either) and tries the stream path; if all fail, the member
// becomes suspect (the `suspect` callback: transitions.ts). Every other probe goes to a suspect instead
// (Lifeguard's buddy system), carrying the suspicion so the suspect can refute it.

import type { SwimCore } from './core.js';
import { cmpKey, type Member } from './members.js';
import {
  decodeStream,
  encodeFrame,
  encodeStream,
  type IndirectPing,
  MsgType,
  type Suspect,
} from './messages.js';

interface AckWaiter {
  onAck: () => void;
  onNack?: () => void;
}

/** Most relayed (indirect) probes in flight: bounds what a flood of ping-reqs can make us do. */
const MAX_PENDING_ACKS = 4096;
/** Stall grace: how many times one probe phase may be extended because our own timer fired late. */
const MAX_STALL_EXTENSIONS = 3;

export class Prober {
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private ticks = 0;
  /** Suspects to probe with priority (bounded by the member count; pruned as they are probed). */
  private readonly suspects: string[] = [];
  private readonly suspectSet = new Set<string>();
  /** A probe of ours is under way (one at a time). */
  probing = false;
  private readonly acks = new Map<number, AckWaiter>();

  constructor(
    private readonly core: SwimCore,
    /** Our probe of a live member failed: suspect it (on our own authority). */
    private readonly suspect: (msg: Suspect) => void,
  ) {}

  /** Pings waiting for an ack are at their bound: take on no more (relays, verifications). */
  get busy(): boolean {
    return this.acks.size >= MAX_PENDING_ACKS;
  }

  /** An ack (datagram) for `seq` arrived. */
  ack(seq: number): void {
    this.acks.get(seq)?.onAck();
  }

  /** A nack for `seq` arrived: a relay could not reach the target either. */
  nack(seq: number): void {
    this.acks.get(seq)?.onNack?.();
  }

  /** Forget every pending ack (stop()). */
  clear(): void {
    this.acks.clear();
  }

  /** A new member: probe it within this round, at a random place so newcomers are not all probed at once. */
  addNewcomer(m: Member): void {
    this.probeOrder.splice(
      this.probeIndex + Math.floor(this.core.random() * (this.probeOrder.length - this.probeIndex + 1)),
      0,
      m.id,
    );
  }

  /** A member back from the dead: probe it at the end of this round. */
  addToRound(m: Member): void {
    this.probeOrder.push(m.id);
  }

  /** Probe `m` next (a member others suspect: our independent check confirms or clears it sooner). */
  probeSoon(m: Member): void {
    this.probeOrder.splice(this.probeIndex, 0, m.id);
  }

  /** `m` became suspect: it joins the suspects probed every other tick. */
  trackSuspect(m: Member): void {
    if (!this.suspectSet.has(m.id)) {
      this.suspectSet.add(m.id);
      this.suspects.push(m.id);
    }
  }

  /** The probe timer: one probe per interval, every other one to a suspect. */
  tick(late: number): void {
    this.core.stalled(late);
    if (this.probing || this.core.leaving) return;
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
      const m = this.core.table.get(id);
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
    const { table } = this.core;
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeOrder.length) {
        const m = table.get(this.probeOrder[this.probeIndex++]);
        if (m && m !== table.self && (m.state === 'alive' || m.state === 'suspect')) return m;
      }
      // End of a round: reshuffle (fresh order each round, as SWIM's round-robin requires).
      const ids: string[] = [];
      for (const p of table.peers) if (p.state === 'alive' || p.state === 'suspect') ids.push(p.id);
      shuffle(ids, this.core.random);
      this.probeOrder = ids;
      this.probeIndex = 0;
    }
    return null;
  }

  private probe(target: Member): void {
    const c = this.core;
    this.probing = true;
    c.counters.probes++;
    const seq = c.nextSeq();
    const timeout = c.awareness.scale(c.config.probeTimeoutMs);
    const ping = c.pingMsg(seq, target.id);
    const frames = [encodeFrame(ping)];
    // Buddy system: a suspect learns of the suspicion from the very ping that checks it.
    if (target.state === 'suspect') frames.push(encodeFrame(c.suspectMsg(target, c.id)));
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
      c.cancel(timer);
      if (ok) {
        target.lastAck = c.clock.now();
        c.awareness.apply(-1);
        return;
      }
      c.counters.probesFailed++;
      // Lifeguard: relays that did not even nack suggest that we, not the target, are cut off.
      if (expectedNacks > 0 && nacks < expectedNacks) c.awareness.apply(expectedNacks - nacks);
      if (!c.running || c.leaving) return;
      const cur = c.table.get(target.id);
      if (cur !== target || cmpKey(targetGen, targetInc, cur) !== 0) return; // news arrived meanwhile
      if (cur.state !== 'alive' && cur.state !== 'suspect') return;
      this.suspect(c.suspectMsg(cur, c.id));
    };
    this.acks.set(seq, {
      onAck: () => finish(true),
      onNack: () => {
        nacks++;
        c.counters.nacksIn++;
      },
    });
    c.send(target.addr, frames);

    const indirectPhase = (late: number) => {
      if (done) return;
      // Our timer fired late: the ack may be sitting unread in the socket. Give it time first.
      if (c.stalled(late) && extensions++ < MAX_STALL_EXTENSIONS) {
        timer = c.after(timeout, indirectPhase);
        return;
      }
      const relays = c.table.pick(
        c.config.indirectChecks,
        (p) => p !== target && p.state === 'alive',
        c.random,
      );
      const req: IndirectPing = {
        type: MsgType.IndirectPing,
        seq,
        targetId: target.id,
        targetAddr: target.addr,
        nack: true,
        sourceId: c.id,
        sourceAddr: c.self.addr,
      };
      const reqFrame = encodeFrame(req);
      for (const r of relays) {
        c.counters.indirectProbes++;
        c.send(r.addr, [reqFrame]);
      }
      expectedNacks = relays.length;
      if (c.config.tcpFallbackPing) this.tcpPing(target, seq, timeout, () => finish(true));
      timer = c.after(timeout, finalPhase);
    };
    const finalPhase = (late: number) => {
      if (done) return;
      if (c.stalled(late) && extensions++ < MAX_STALL_EXTENSIONS) {
        timer = c.after(timeout, finalPhase);
        return;
      }
      finish(false);
    };
    timer = c.after(timeout, indirectPhase);
  }

  private tcpPing(target: Member, seq: number, timeoutMs: number, onAck: () => void): void {
    const c = this.core;
    c.counters.tcpFallbacks++;
    const ping = c.pingMsg(seq, target.id);
    c.counters.requestsOut++;
    c.transport.request(target.addr, encodeStream(ping), timeoutMs).then(
      (reply) => {
        const r = decodeStream(reply);
        if (r.ok && r.value.type === MsgType.Ack && r.value.seq === seq) onAck();
        else if (!r.ok) c.counters.malformed++;
      },
      () => {
        c.counters.requestsFailed++;
      },
    );
  }

  /** Someone asks us to ping `req.target` for them: ack back if it answers, nack in time if not. */
  relay(from: string, req: IndirectPing): void {
    const c = this.core;
    if (c.leaving || this.busy) return;
    if (req.targetAddr === c.self.addr) return; // never ping ourselves on someone's behalf
    const seq = c.nextSeq();
    // Lifeguard: nack before the requester gives up (80% of its timeout), so the nack is counted.
    const timeout = c.config.probeTimeoutMs * 0.8;
    let timer: unknown = null;
    this.acks.set(seq, {
      onAck: () => {
        this.acks.delete(seq);
        c.cancel(timer);
        c.send(from, [encodeFrame({ type: MsgType.Ack, seq: req.seq })], req.sourceAddr);
      },
    });
    timer = c.after(timeout, () => {
      this.acks.delete(seq);
      if (req.nack) c.send(from, [encodeFrame({ type: MsgType.Nack, seq: req.seq })], req.sourceAddr);
    });
    const ping = c.pingMsg(seq, req.targetId);
    c.send(req.targetAddr, [encodeFrame(ping)]);
  }

  /**
   * One direct ping to `m` (with `extra` frames in the same packet), outside the probe cycle: `onAck`
   * runs if it answers within twice the (scaled) probe timeout, after which the wait is dropped.
   */
  directPing(m: Member, extra: Uint8Array[], onAck: () => void): void {
    const c = this.core;
    const seq = c.nextSeq();
    let timer: unknown = null;
    this.acks.set(seq, {
      onAck: () => {
        this.acks.delete(seq);
        c.cancel(timer);
        onAck();
      },
    });
    timer = c.after(c.awareness.scale(c.config.probeTimeoutMs) * 2, () => this.acks.delete(seq));
    c.send(m.addr, [encodeFrame(c.pingMsg(seq, m.id)), ...extra]);
  }
}

/** Fisher-Yates, in place. */
export function shuffle<T>(a: T[], random: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
}
