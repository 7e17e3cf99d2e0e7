// The member table: every member this node knows (self included), by id, with the indexes the
// protocol needs to be cheap at thousands of members: the peers as an array (random picks without
// building arrays), the live count, and which live member holds each address. Data only: the rules
// that change a member's state are in transitions.ts.

import type { MemberRecord } from './messages.js';
import type { Suspicion } from './suspicion.js';
import type { Clock } from './transport.js';
import type { MemberState, MemberView } from './types.js';

/** A member as the table holds it: what a full-state exchange says of it, and this node's own notes. */
export interface Member extends MemberRecord {
  /** Clock time of the last state change. */
  since: number;
  /** The running suspicion while the member is suspect (its timer, its accusers). */
  suspicion: Suspicion | null;
  /** Clock time of the last ack we got from it (any probe of ours). */
  lastAck: number;
  /** Position in `peers` (for O(1) removal). */
  slot: number;
}

/**
 * Orders news about a member: (generation, incarnation) compared lexicographically. The generation is
 * the start time of the member's process, so a restarted process (incarnation 0) overrides its own old
 * dead/left record at once; the incarnation orders news within one process.
 */
export function cmpKey(aGen: number, aInc: number, b: { generation: number; incarnation: number }): number {
  if (aGen !== b.generation) return aGen < b.generation ? -1 : 1;
  if (aInc !== b.incarnation) return aInc < b.incarnation ? -1 : 1;
  return 0;
}

export function sameMeta(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

/** A copy for callers (they cannot change the table through it). */
export function view(m: Member): MemberView {
  return {
    id: m.id,
    addr: m.addr,
    meta: { ...m.meta },
    state: m.state,
    incarnation: m.incarnation,
    generation: m.generation,
  };
}

export class MemberTable {
  readonly self: Member;
  private readonly byId = new Map<string, Member>();
  /** Every member but self, any state. */
  readonly peers: Member[] = [];
  /** addr → id of the live member (alive/suspect) holding it. */
  private readonly addrIndex = new Map<string, string>();
  private liveCount = 1;

  constructor(
    self: Member,
    private readonly clock: Clock,
  ) {
    this.self = self;
    this.byId.set(self.id, self);
  }

  /** Alive + suspect members, self included. */
  get live(): number {
    return this.liveCount;
  }

  get(id: string): Member | undefined {
    return this.byId.get(id);
  }

  /** Every member, self included, any state. */
  all(): IterableIterator<Member> {
    return this.byId.values();
  }

  /** A member seen for the first time (alive). */
  add(m: Member): void {
    m.slot = this.peers.length;
    this.byId.set(m.id, m);
    this.peers.push(m);
    this.liveCount++;
  }

  /** Sets `m.state` and keeps the live count and the address index right; a suspicion ends unless suspect. */
  setState(m: Member, state: MemberState): void {
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
      this.liveCount--;
      if (this.addrIndex.get(m.addr) === m.id) this.addrIndex.delete(m.addr);
    } else if (!wasLive && isLive) {
      this.liveCount++;
    }
  }

  /** Id of the live member holding `addr`, if any. */
  holderOf(addr: string): string | undefined {
    return this.addrIndex.get(addr);
  }

  holdAddr(addr: string, id: string): void {
    this.addrIndex.set(addr, id);
  }

  /** `m` no longer holds its address (it moved). */
  releaseAddr(m: Member): void {
    if (this.addrIndex.get(m.addr) === m.id) this.addrIndex.delete(m.addr);
  }

  /** Forget dead/left members gone for `maxAgeMs`, and the oldest beyond `maxDead`. Returns how many. */
  reap(now: number, maxAgeMs: number, maxDead: number): number {
    const gone: Member[] = [];
    for (const p of this.peers) if (p.state === 'dead' || p.state === 'left') gone.push(p);
    gone.sort((a, b) => a.since - b.since);
    let excess = gone.length - maxDead;
    let reaped = 0;
    for (const m of gone) {
      if (now - m.since < maxAgeMs && excess <= 0) break;
      excess--;
      this.forget(m);
      reaped++;
    }
    return reaped;
  }

  private forget(m: Member): void {
    this.byId.delete(m.id);
    const last = this.peers.pop()!;
    if (last !== m) {
      this.peers[m.slot] = last;
      last.slot = m.slot;
    }
  }

  /** Up to `k` distinct random members (not self) satisfying `ok`. */
  pick(k: number, ok: (m: Member) => boolean, random: () => number): Member[] {
    const out: Member[] = [];
    const n = this.peers.length;
    if (n === 0 || k <= 0) return out;
    if (n <= k * 4) {
      // Small cluster: scan in random rotation so we never miss eligible members.
      const start = Math.floor(random() * n);
      for (let i = 0; i < n && out.length < k; i++) {
        const m = this.peers[(start + i) % n];
        if (ok(m)) out.push(m);
      }
      return out;
    }
    for (let tries = 0; tries < k * 8 && out.length < k; tries++) {
      const m = this.peers[Math.floor(random() * n)];
      if (ok(m) && !out.includes(m)) out.push(m);
    }
    return out;
  }

  /** The whole table as push-pull records. */
  records(): MemberRecord[] {
    const members: MemberRecord[] = [];
    for (const m of this.byId.values()) {
      members.push({
        id: m.id,
        addr: m.addr,
        meta: m.meta,
        generation: m.generation,
        incarnation: m.incarnation,
        state: m.state,
      });
    }
    return members;
  }
}
