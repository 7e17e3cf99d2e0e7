// In-process multi-peer harness: several "nodes", each a Group in its own GroupRegistry, wired by an
// in-memory PeerPicker over src/ring.ts. A peer call is a direct getEntry({ local: true }) on the
// owner's group, so tests see the real load path on both sides without any network. Its failures are
// what Peer.get's contract says (and the gRPC layer sends): the owner's own failed load is an
// OwnerLoadError, anything else the owner rejects with is passed on as is.

import { loadFailureName, NotFoundError, OwnerLoadError } from '../../src/errors.js';
import type { GetterResult, GroupOptions } from '../../src/group.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { HandoffWindow, handoffCandidates, successorOf } from '../../src/handoff.js';
import type { HotKeyPolicy } from '../../src/hotkeys.js';
import type { HandoffEntry, Peer, PeerGetResult, PeerPicker } from '../../src/peers.js';
import { Ring } from '../../src/ring.js';

export interface ClusterOptions {
  nodes: number;
  /** Group name on every node. Default 'test'. */
  name?: string;
  cacheBytes?: number;
  /** The getter of node `node`. Calls are counted in `cluster.getterCalls`. */
  getter: (key: string, ctx: { signal: AbortSignal; node: number }) => Promise<GetterResult>;
  now?: () => number;
  /** A fresh policy per node. */
  hotKeyPolicy?: (node: number) => HotKeyPolicy;
  getterTimeoutMs?: number;
  peerTimeoutMs?: number;
  /**
   * Warm handoff window of every node's picker (src/handoff.ts), on the cluster's clock (`now`).
   * Default 0: no handoff questions, so tests of the plain load path see no extra peer calls.
   */
  handoffWindowMs?: number;
  /** Extra Group options. */
  groupOptions?: Partial<GroupOptions>;
}

/** What a node's peers can do to it. */
export interface NodeFaults {
  /** Peer calls to this node fail at once with an Error (as if the process were down). */
  down: boolean;
  /** Peer calls to this node never answer (until their signal aborts). */
  hang: boolean;
  /** Remove requests to this node are lost (it answers them but keeps the key), as for a frozen node. */
  dropRemoves: boolean;
  /**
   * Its failed loads reach peers as the getter's raw error, not OwnerLoadError: a node from before
   * OwnerLoadError existed (its peers then load the key themselves).
   */
  legacyErrors: boolean;
}

export interface ClusterNode {
  readonly index: number;
  readonly id: string;
  /** Replaced by `cluster.restart(i)`. */
  registry: GroupRegistry;
  group: Group;
  picker: MemPicker;
  readonly faults: NodeFaults;
  /** Peer calls (get) this node received. */
  peerGetsReceived: number;
  /** Peer remove calls this node received. */
  peerRemovesReceived: number;
  /** Peer set calls this node received. */
  peerSetsReceived: number;
  /** Handoff questions this node received. */
  handoffsReceived: number;
}

/** A Peer that calls the target node's group in-process, honouring its faults. */
export class MemPeer implements Peer {
  constructor(private readonly target: ClusterNode) {}

  get id(): string {
    return this.target.id;
  }

  async get(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult> {
    this.target.peerGetsReceived++;
    await this.fault(signal);
    const g = this.group(group);
    try {
      return await g.server.getEntry(key, { signal, local: true });
    } catch (err) {
      // After the caller's abort the rejection is its signal's reason, not a failed load.
      const name = signal.aborted || this.target.faults.legacyErrors ? undefined : loadFailureName(err);
      if (name === undefined) throw err;
      throw new OwnerLoadError(this.id, name, err instanceof Error ? err.message : String(err));
    }
  }

  async remove(group: string, key: string, signal: AbortSignal): Promise<void> {
    this.target.peerRemovesReceived++;
    await this.fault(signal);
    if (!this.target.faults.dropRemoves) this.target.registry.get(group)?.server.removeLocal(key);
  }

  async handoff(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult> {
    this.target.handoffsReceived++;
    await this.fault(signal);
    const e = this.group(group).server.handoffEntry(key);
    if (e === undefined) throw new NotFoundError(`peer ${this.id} does not hold ${key}`);
    return e;
  }

  async push(group: string, entries: HandoffEntry[], signal: AbortSignal): Promise<number> {
    await this.fault(signal);
    return this.group(group).server.acceptHandoff(entries);
  }

  private group(name: string): Group {
    const g = this.target.registry.get(name);
    if (g === undefined) throw new Error(`peer ${this.id}: no group ${name}`);
    return g;
  }

  async set(
    group: string,
    key: string,
    value: Uint8Array,
    opts: { ttlMs?: number },
    signal: AbortSignal,
  ): Promise<void> {
    this.target.peerSetsReceived++;
    await this.fault(signal);
    this.group(group).server.setLocal(key, value, opts);
  }

  private async fault(signal: AbortSignal): Promise<void> {
    if (this.target.faults.down) throw new Error(`peer ${this.id} is down`);
    if (this.target.faults.hang) {
      await new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
  }
}

/**
 * Owner by rendezvous hashing over this node's view of the members (`setRing`); `null` for keys this
 * node owns. Answers handoff candidates within its window after each change of its view, like
 * RingPeerPicker.
 */
export class MemPicker implements PeerPicker {
  readonly window: HandoffWindow;
  constructor(
    private readonly self: string,
    private ring: Ring,
    private readonly byId: Map<string, Peer>,
    windowMs = 0,
    now: () => number = Date.now,
  ) {
    this.window = new HandoffWindow(windowMs, now);
  }

  /** This node's view of the members changes to `ring`. */
  setRing(ring: Ring): void {
    if (ring.checksum() !== this.ring.checksum()) this.window.changed();
    this.ring = ring;
  }

  pickPeer(key: string): Peer | null {
    const owner = this.ring.owner(key);
    if (owner === undefined || owner === this.self) return null;
    return this.byId.get(owner) ?? null;
  }

  peers(): Peer[] {
    return [...this.byId.values()].filter((p) => this.ring.has(p.id));
  }

  handoffPeers(key: string, anyTime = false): Peer[] {
    if (this.window.windowMs === 0 || (!anyTime && !this.window.open)) return [];
    return handoffCandidates(this.ring, this.self, key).flatMap((id) => this.byId.get(id) ?? []);
  }

  successor(key: string): Peer | null {
    const id = successorOf(this.ring, this.self, key);
    return id === null ? null : (this.byId.get(id) ?? null);
  }
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  /** The ring every node was given at construction (all nodes); `setRing` gives nodes other views. */
  readonly ring: Ring;
  /** getterCalls[node] = getter calls on that node; `keys` = every key passed to any getter, in order. */
  readonly getterCalls: number[];
  readonly keys: string[] = [];
  private readonly opts: ClusterOptions;

  constructor(opts: ClusterOptions) {
    this.opts = opts;
    const ids = Array.from({ length: opts.nodes }, (_, i) => `node${i}:7000`);
    this.ring = new Ring({ labels: ids });
    this.getterCalls = ids.map(() => 0);
    for (let i = 0; i < ids.length; i++) {
      const registry = new GroupRegistry();
      this.nodes.push({
        index: i,
        id: ids[i],
        registry,
        group: this.makeGroup(i, registry),
        picker: undefined as unknown as MemPicker,
        faults: { down: false, hang: false, dropRemoves: false, legacyErrors: false },
        peerGetsReceived: 0,
        peerRemovesReceived: 0,
        peerSetsReceived: 0,
        handoffsReceived: 0,
      });
    }
    for (const node of this.nodes) this.wire(node, this.ring);
  }

  private makeGroup(i: number, registry: GroupRegistry): Group {
    const opts = this.opts;
    return new Group({
      name: opts.name ?? 'test',
      cacheBytes: opts.cacheBytes ?? 1 << 20,
      registry,
      getter: (key, ctx) => {
        this.getterCalls[i]++;
        this.keys.push(key);
        return opts.getter(key, { signal: ctx.signal, node: i });
      },
      now: opts.now,
      hotKeyPolicy: opts.hotKeyPolicy?.(i),
      getterTimeoutMs: opts.getterTimeoutMs,
      peerTimeoutMs: opts.peerTimeoutMs,
      ...opts.groupOptions,
    });
  }

  /** A fresh picker for `node` (a fresh handoff window: as if the process just started). */
  private wire(node: ClusterNode, ring: Ring): void {
    const byId = new Map<string, Peer>();
    for (const other of this.nodes) if (other !== node) byId.set(other.id, new MemPeer(other));
    node.picker = new MemPicker(node.id, ring, byId, this.opts.handoffWindowMs ?? 0, this.opts.now);
    node.registry.setPeerPicker(node.picker);
  }

  /** Nodes `on` (default: the members themselves) now see exactly `members` (node indexes) on the ring. */
  setRing(members: number[], on: number[] = members): void {
    const ring = new Ring({ labels: members.map((i) => this.nodes[i].id) });
    for (const i of on) this.nodes[i].picker.setRing(ring);
  }

  /**
   * Node `i`'s process restarts: its group (and caches) are gone, a new one starts empty with a fresh
   * picker seeing `members`. Peers keep calling the same node id.
   */
  restart(i: number, members: number[]): void {
    const node = this.nodes[i];
    node.group.close();
    node.registry = new GroupRegistry();
    node.group = this.makeGroup(i, node.registry);
    this.wire(node, new Ring({ labels: members.map((m) => this.nodes[m].id) }));
  }

  /** Index of the node owning `key`. */
  ownerOf(key: string): number {
    const id = this.ring.owner(key);
    return this.nodes.findIndex((n) => n.id === id);
  }

  /** A key owned by node `owner` (deterministic: the first `prefix<i>` that hashes there). */
  keyOwnedBy(owner: number, prefix = 'k'): string {
    for (let i = 0; ; i++) if (this.ownerOf(prefix + i) === owner) return prefix + i;
  }

  totalGetterCalls(): number {
    return this.getterCalls.reduce((a, b) => a + b, 0);
  }

  /** Sum of one stats field over all nodes. */
  sum(field: keyof Group['stats']): number {
    return this.nodes.reduce((a, n) => a + n.group.stats[field], 0);
  }

  close(): void {
    for (const n of this.nodes) n.group.close();
  }
}

/** A fake clock: `clock.now` for the Group, `clock.advance(ms)` to move time. */
export function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
