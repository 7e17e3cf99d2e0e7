// groupcache's HTTPPool.Set/PickPeer over gRPC: the ring says which address owns a key, and each
// remote address has one GrpcPeer (one channel, one stream) kept while the address is a member.
// Membership (or a static list) calls set() whenever the member set changes.

import { HandoffWindow, handoffCandidates, successorOf } from '../handoff.js';
import type { Peer, PeerPicker } from '../peers.js';
import { Ring } from '../ring.js';
import { GrpcPeer, type GrpcPeerOptions } from './client.js';

export interface RingPeerPickerOptions extends GrpcPeerOptions {
  /** This node's own advertised gRPC address (`host:port`, as it appears in set()): its keys load here. */
  self: string;
  /**
   * How long after a change of the member set (and after start) an owner's miss first asks the key's
   * previous holders (docs/handoff.md). Default 300 000 (DEFAULT_HANDOFF_WINDOW_MS); 0 = never.
   */
  handoffWindowMs?: number;
}

/**
 * The core's PeerPicker over the ring of members' gRPC addresses. `pickPeer` is a ring lookup and a
 * map read (no allocation), so it is cheap enough for every cache miss.
 */
export class RingPeerPicker implements PeerPicker {
  readonly self: string;
  private ring: Ring;
  private clients = new Map<string, GrpcPeer>();
  private readonly peerOpts: GrpcPeerOptions;
  private readonly window: HandoffWindow;
  private closed = false;

  constructor(opts: RingPeerPickerOptions) {
    if (typeof opts?.self !== 'string' || opts.self === '') {
      throw new TypeError('RingPeerPicker: self must be this node\'s gRPC address "host:port"');
    }
    const { self, handoffWindowMs, ...peerOpts } = opts;
    this.self = self;
    this.window = new HandoffWindow(handoffWindowMs);
    this.peerOpts = peerOpts;
    this.ring = new Ring({ labels: [self] });
  }

  /**
   * Replace the member set with `grpcAddrs` (groupcache's Set). This node's own address is always a
   * member, listed or not. Channels to addresses that left are closed; requests in flight to them
   * fail and load locally.
   */
  set(grpcAddrs: Iterable<string>): void {
    if (this.closed) throw new Error('RingPeerPicker.set: the picker is closed');
    const members = new Set(grpcAddrs);
    members.add(this.self);
    // Nothing changes unless every step succeeds: the new ring (which validates labels), then channels.
    const ring = new Ring({ labels: members });
    const created: GrpcPeer[] = [];
    const next = new Map<string, GrpcPeer>();
    for (const addr of members) {
      if (addr === this.self) continue;
      let peer = this.clients.get(addr);
      if (!peer) {
        try {
          peer = new GrpcPeer(addr, this.peerOpts);
        } catch (err) {
          for (const p of created) p.close();
          throw new TypeError(
            `RingPeerPicker.set: cannot dial ${JSON.stringify(addr)}: ${(err as Error).message}; use host:port`,
          );
        }
        created.push(peer);
      }
      next.set(addr, peer);
    }
    for (const [addr, peer] of this.clients) if (!next.has(addr)) peer.close();
    this.clients = next;
    if (ring.checksum() !== this.ring.checksum()) this.window.changed();
    this.ring = ring;
  }

  /** The owner of `key`; null when this node owns it. */
  pickPeer(key: string): Peer | null {
    const owner = this.ring.owner(key);
    if (owner === undefined || owner === this.self) return null;
    return this.clients.get(owner) ?? null;
  }

  /** The key's next members after this node, within the handoff window after a ring change; else []. */
  handoffPeers(key: string, anyTime = false): Peer[] {
    // A window of 0 turns handoff off altogether.
    if (this.window.windowMs === 0 || (!anyTime && !this.window.open) || this.clients.size === 0) return [];
    const out: Peer[] = [];
    for (const addr of handoffCandidates(this.ring, this.self, key)) {
      const p = this.clients.get(addr);
      if (p) out.push(p);
    }
    return out;
  }

  /** Where this node's entry for `key` goes when it leaves (null: nobody else is left). */
  successor(key: string): Peer | null {
    const addr = successorOf(this.ring, this.self, key);
    return addr === null ? null : (this.clients.get(addr) ?? null);
  }

  /** Every remote member (for cluster-wide remove). */
  peers(): GrpcPeer[] {
    return [...this.clients.values()];
  }

  /** Identifies the member set; equal on nodes that agree on membership. */
  checksum(): string {
    return this.ring.checksum();
  }

  /** The members, this node included, sorted. */
  members(): string[] {
    return this.ring.nodes();
  }

  /** Close every channel. The picker then owns every key (pickPeer returns null). */
  close(): void {
    this.closed = true;
    for (const peer of this.clients.values()) peer.close();
    this.clients = new Map();
    this.ring = new Ring({ labels: [this.self] });
  }
}
