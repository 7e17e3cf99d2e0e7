// TEST-ONLY: an in-memory network for the SWIM state machine (memberlist's mock transport): datagram
// loss, delay with jitter, partitions, crashed and paused nodes, deterministic given the clock and the
// random source. Part of the testing toolkit (see testing/index.ts); production code never imports it.

import type { Clock, Transport } from '../transport.js';

/** Options of the in-memory network. All probabilities are in [0, 1]. */
export interface MemoryNetworkOptions {
  /** Drives delivery delays and request timeouts (a SimClock in tests). */
  clock: Clock;
  /** Deterministic randomness for loss and jitter. Default Math.random. */
  random?: () => number;
  /** Probability that one datagram is lost. Default 0. */
  loss?: number;
  /** One-way delay of a datagram or a stream message, ms: base + uniform jitter. Default 1 + [0, 1). */
  delayMs?: number;
  jitterMs?: number;
  /** maxPacketBytes of every transport. Default 1350. */
  maxPacketBytes?: number;
}

/** Counters of the whole simulated network. */
export interface MemoryNetworkStats {
  packetsSent: number;
  packetsDelivered: number;
  packetsLost: number;
  packetsBlocked: number;
  packetsOversize: number;
  bytesSent: number;
  requests: number;
  requestsFailed: number;
}

/**
 * A simulated network of MemoryTransports: datagram loss, delay with jitter, partitions, and nodes
 * that are down (crashed: everything to and from them vanishes). Deterministic given the clock and
 * the random source, so a test failure replays exactly.
 */
export class MemoryNetwork {
  readonly clock: Clock;
  readonly stats: MemoryNetworkStats = {
    packetsSent: 0,
    packetsDelivered: 0,
    packetsLost: 0,
    packetsBlocked: 0,
    packetsOversize: 0,
    bytesSent: 0,
    requests: 0,
    requestsFailed: 0,
  };
  loss: number;
  delayMs: number;
  jitterMs: number;
  readonly maxPacketBytes: number;
  private readonly random: () => number;
  private readonly nodes = new Map<string, MemoryTransport>();
  /** addr → partition group; two addrs with different groups cannot talk. Absent = group 0. */
  private readonly groups = new Map<string, number>();
  private readonly down = new Set<string>();

  constructor(opts: MemoryNetworkOptions) {
    this.clock = opts.clock;
    this.random = opts.random ?? Math.random;
    this.loss = opts.loss ?? 0;
    this.delayMs = opts.delayMs ?? 1;
    this.jitterMs = opts.jitterMs ?? 1;
    this.maxPacketBytes = opts.maxPacketBytes ?? 1350;
  }

  /** A transport reachable at `addr`. Replaces (closes) an earlier one at the same address: a restart. */
  transport(addr: string): MemoryTransport {
    const old = this.nodes.get(addr);
    if (old) old.closeNow();
    const t = new MemoryTransport(this, addr);
    this.nodes.set(addr, t);
    this.down.delete(addr);
    return t;
  }

  /** Split the network: each list becomes its own island; addrs not listed join the first island. */
  partition(...islands: string[][]): void {
    this.groups.clear();
    islands.forEach((island, i) => {
      for (const a of island) this.groups.set(a, i);
    });
  }

  /** Remove every partition. */
  heal(): void {
    this.groups.clear();
  }

  /** Crash (true) or revive (false) `addr`: while down, nothing reaches it and nothing leaves it. */
  setDown(addr: string, isDown: boolean): void {
    if (isDown) this.down.add(addr);
    else this.down.delete(addr);
  }

  /** Whether a message from `from` to `to` may pass right now (partitions, down nodes). */
  canReach(from: string, to: string): boolean {
    if (this.down.has(from) || this.down.has(to)) return false;
    return (this.groups.get(from) ?? 0) === (this.groups.get(to) ?? 0);
  }

  private delay(): number {
    return this.delayMs + this.random() * this.jitterMs;
  }

  /** @internal */
  sendPacket(from: string, to: string, data: Uint8Array): void {
    this.stats.packetsSent++;
    this.stats.bytesSent += data.length;
    if (data.length > this.maxPacketBytes) {
      this.stats.packetsOversize++;
      return;
    }
    if (!this.canReach(from, to)) {
      this.stats.packetsBlocked++;
      return;
    }
    if (this.loss > 0 && this.random() < this.loss) {
      this.stats.packetsLost++;
      return;
    }
    const copy = data.slice();
    this.clock.setTimeout(() => {
      // Re-check at delivery: a partition or crash that happened in flight also drops the packet.
      const dst = this.nodes.get(to);
      if (!dst || dst.closed || !this.canReach(from, to)) {
        this.stats.packetsBlocked++;
        return;
      }
      this.stats.packetsDelivered++;
      dst.enqueue(() => dst.deliverPacket(from, copy));
    }, this.delay());
  }

  /** @internal */
  request(from: string, to: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.stats.requests++;
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        this.clock.clearTimeout(timer);
        this.stats.requestsFailed++;
        reject(new Error(`request ${from} → ${to}: ${why}`));
      };
      const timer = this.clock.setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      const copy = data.slice();
      this.clock.setTimeout(() => {
        const dst = this.nodes.get(to);
        if (!dst || dst.closed || !this.canReach(from, to)) return fail('connection refused');
        dst.enqueue(() => serve(dst));
      }, this.delay());
      const serve = (dst: MemoryTransport) => {
        const handler = dst.onRequest;
        if (!handler) return fail('no request handler');
        let reply: Promise<Uint8Array>;
        try {
          reply = handler(from, copy);
        } catch (err) {
          return fail(`handler threw: ${(err as Error).message}`);
        }
        reply.then(
          (res) => {
            const out = res.slice();
            this.clock.setTimeout(() => {
              if (settled) return;
              if (!this.canReach(to, from)) return fail('connection reset');
              const src = this.nodes.get(from);
              const finish = () => {
                if (settled) return;
                settled = true;
                this.clock.clearTimeout(timer);
                resolve(out);
              };
              if (src) src.enqueue(finish);
              else finish();
            }, this.delay());
          },
          (err: Error) => fail(`handler rejected: ${err?.message ?? err}`),
        );
      };
    });
  }

  /** @internal */
  forget(t: MemoryTransport): void {
    if (this.nodes.get(t.localAddr) === t) this.nodes.delete(t.localAddr);
  }
}

/** One node's end of a MemoryNetwork. */
export class MemoryTransport implements Transport {
  onPacket: ((from: string, data: Uint8Array) => void) | null = null;
  onRequest: ((from: string, data: Uint8Array) => Promise<Uint8Array>) | null = null;
  closed = false;
  readonly maxPacketBytes: number;

  constructor(
    private readonly net: MemoryNetwork,
    readonly localAddr: string,
  ) {
    this.maxPacketBytes = net.maxPacketBytes;
  }

  /** `receiver` is not needed here: the simulated network has no eavesdropper (see UdpTcpTransport). */
  sendPacket(to: string, data: Uint8Array, _receiver?: string): void {
    if (this.closed) return;
    this.net.sendPacket(this.localAddr, to, data);
  }

  request(to: string, data: Uint8Array, timeoutMs: number, _receiver?: string | null): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    return this.net.request(this.localAddr, to, data, timeoutMs);
  }

  private held: (() => void)[] | null = null;

  /** Freeze this node's input (a paused process): deliveries queue up until `release()`. */
  hold(): void {
    this.held ??= [];
  }

  /** Deliver everything that arrived while held, in arrival order. */
  release(): void {
    const q = this.held;
    this.held = null;
    for (const fn of q ?? []) fn();
  }

  /** @internal run `fn` now, or later if this node is held. */
  enqueue(fn: () => void): void {
    if (this.held) this.held.push(fn);
    else fn();
  }

  /** @internal */
  deliverPacket(from: string, data: Uint8Array): void {
    const h = this.onPacket;
    if (!h) return;
    try {
      h(from, data);
    } catch {
      // A handler that throws is a bug in the handler; the network keeps running.
    }
  }

  /** @internal close without awaiting (used when a restart replaces this transport). */
  closeNow(): void {
    this.closed = true;
    this.onPacket = null;
    this.onRequest = null;
    this.net.forget(this);
  }

  async close(): Promise<void> {
    this.closeNow();
  }
}
