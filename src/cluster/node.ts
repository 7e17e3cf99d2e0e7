// createNode: one process's place in a gossipcache cluster. It ties three parts together:
//   gRPC server   serves this process's groups to its peers;
//   membership    SWIM gossip: who is in the cluster, with each member's advertised gRPC address;
//   ring picker   the owner of each key among the members' gRPC addresses (set on the registry).
// Whenever membership changes, the ring is rebuilt from the alive + suspect members (suspects keep
// their keys until declared dead, so a slow node does not reshuffle the ring), this node included.

import { once } from 'node:events';
import { formatHostPort, parseHostPort } from '../address.js';
import { defaultRegistry, type GroupRegistry } from '../group.js';
import {
  createGrpcServer,
  type GrpcLimits,
  type GrpcServerStats,
  RingPeerPicker,
  type TlsFiles,
} from '../grpc/index.js';
import type { Logger } from '../logger.js';
import {
  createMembership,
  DEFAULT_GOSSIP_PORT,
  type MemberState,
  type Membership,
  type MemberView,
  type ReceiverBinding,
  type SwimConfig,
} from '../membership/index.js';
import { VERSION } from '../version.js';

export interface NodeOptions {
  /** gRPC bind address `host:port` (port 0 = any free port). */
  grpcAddr: string;
  /** Gossip bind address `host:port`, UDP and TCP (port 0 = any free port). */
  gossipAddr: string;
  /** Host peers use to reach this node; the advertised gRPC address is `advertiseHost:<gRPC port>`. */
  advertiseHost: string;
  /** `host:port` of nodes to join; empty = start a new cluster. */
  seeds?: string[];
  /**
   * Gossip encryption keys, 32 bytes each (the first encrypts); empty = plaintext gossip. Key text (base64 or
   * hex, as `openssl rand -base64 32` prints it) is decoded by `parseSecretKey` from 'gossipcache/membership'.
   */
  secretKeys?: Buffer[];
  /** Receiver binding of encrypted gossip (default 'require'; see ReceiverBinding). */
  gossipReceiverBinding?: ReceiverBinding;
  /** gRPC TLS for the server and for the connections to peers. */
  tls?: TlsFiles;
  /** What gRPC clients can make this node hold; defaults in src/grpc/limits.ts. */
  grpcLimits?: Partial<GrpcLimits>;
  /** Groups to serve and wire to the ring. Default: the process-wide defaultRegistry. */
  registry?: GroupRegistry;
  logger?: Logger;
  /** Stable member id. Default (membership's) `<hostname>@<advertised host:gossip port>`. */
  id?: string;
  /** Become ready after this long even if no seed answered (keeps trying to join). Default 10 000 ms. */
  joinTimeoutMs?: number;
  /** Membership timers, passed through (defaults: LAN). */
  membershipConfig?: Partial<SwimConfig>;
  /** Called when each fill from a peer settles (latency ms, answered or failed): for metrics. */
  onPeerRpc?: (ms: number, ok: boolean, peer: string) => void;
  /**
   * After a membership change (and after start), how long a miss at the owner first asks the key's
   * previous holders (docs/handoff.md). Default 300 000; 0 = never.
   */
  handoffWindowMs?: number;
  /**
   * On close, how long the node spends pushing its main-cache entries (hottest first) to the members
   * that own them once it is gone, before announcing its leave. Default 5 000; 0 = no push.
   */
  handoffPushMs?: number;
  /** Most bytes (keys + values) pushed on close, over all groups. Default: everything cached. */
  handoffPushBytes?: number;
}

/** A running node. */
export interface GossipNode {
  /** Advertised gRPC address (this node's label on the ring). */
  readonly grpcAddr: string;
  /** Gossip address peers reach this node at. */
  readonly gossipAddr: string;
  /** Resolves once membership has joined (or started alone, or joinTimeoutMs passed) and gRPC is serving. */
  readonly ready: Promise<void>;
  isReady(): boolean;
  /** Every member this node knows, with state and incarnation. */
  members(): MemberView[];
  /** gRPC addresses on the ring, sorted. */
  ringMembers(): string[];
  /** Ring checksum: equal on every node with the same member set. */
  ringChecksum(): string;
  /** Membership counters. */
  membershipStats(): Record<string, unknown>;
  /** What gRPC clients make this node hold, and Fetch streams reset for not reading (src/grpc/stall.ts). */
  grpcStats(): GrpcServerStats;
  /**
   * Hand cached entries to their next owners (handoffPushMs), announce leave, stop gossip, then stop
   * gRPC (in-flight peer requests get `graceMs`).
   */
  close(opts?: { leaveTimeoutMs?: number; graceMs?: number }): Promise<void>;
}

/** Membership metadata key under which a member publishes its ring checksum. */
export const RING_META = 'ring';
/** Shortest interval between two publications of this node's ring checksum. */
const RING_PUBLISH_MS = 250;

export async function createNode(opts: NodeOptions): Promise<GossipNode> {
  const registry = opts.registry ?? defaultRegistry;
  const log = opts.logger;
  const grpc = createGrpcServer({ registry, tls: opts.tls, logger: log, limits: opts.grpcLimits });
  const grpcPort = await grpc.listen(opts.grpcAddr);
  const self = formatHostPort({ host: opts.advertiseHost, port: grpcPort });

  const picker = new RingPeerPicker({
    self,
    tls: opts.tls,
    onPeerRpc: opts.onPeerRpc,
    handoffWindowMs: opts.handoffWindowMs,
  });
  picker.set([self]);
  registry.setPeerPicker(picker);

  let membership: Membership;
  try {
    const gossipPort = parseHostPort(opts.gossipAddr, { defaultPort: DEFAULT_GOSSIP_PORT }).port;
    membership = await createMembership({
      bindAddr: opts.gossipAddr,
      advertiseAddr:
        gossipPort === 0 ? undefined : formatHostPort({ host: opts.advertiseHost, port: gossipPort }),
      id: opts.id,
      meta: { grpcAddr: self, version: VERSION },
      seeds: opts.seeds ?? [],
      secretKeys: opts.secretKeys ?? [],
      receiverBinding: opts.gossipReceiverBinding,
      config: opts.membershipConfig,
      logger: log,
    });
  } catch (err) {
    await grpc.close(0);
    picker.close();
    throw err;
  }

  let ring: string[] = [self];
  const rebuildRing = () => {
    const addrs = new Set<string>([self]);
    for (const m of membership.members()) {
      if ((m.state === 'alive' || m.state === 'suspect') && m.meta.grpcAddr) addrs.add(m.meta.grpcAddr);
    }
    const next = [...addrs].sort();
    if (next.length === ring.length && next.every((a, i) => a === ring[i])) return;
    ring = next;
    picker.set(ring);
    log?.info({ ring, ringChecksum: picker.checksum() }, 'ring changed');
    publishTimer ??= setTimeout(publishRing, RING_PUBLISH_MS);
    publishTimer.unref();
  };
  // Every member publishes its ring's checksum, so each node can show which members see another ring
  // (the dashboard): one metadata update per member per ring change, a few bytes of gossip each. During
  // churn (a rolling restart) a ring changes several times a second, so only the latest is published,
  // at most every RING_PUBLISH_MS.
  let publishTimer: NodeJS.Timeout | undefined;
  const publishRing = () => {
    publishTimer = undefined;
    if (closing) return;
    const meta = membership.local().meta;
    const checksum = picker.checksum();
    if (meta[RING_META] === checksum) return;
    try {
      membership.updateMeta({ ...meta, [RING_META]: checksum });
    } catch (err) {
      log?.warn({ err }, 'cannot publish the ring checksum in membership metadata');
    }
  };
  membership.on('change', (member: MemberView, prev: MemberState | null) => {
    // Same state = new metadata (e.g. a published ring checksum): debug, not news.
    log?.[prev === member.state ? 'debug' : 'info'](
      { member: member.id, addr: member.addr, grpcAddr: member.meta.grpcAddr, state: member.state, prev },
      `member ${member.id} ${prev ?? 'new'} → ${member.state}`,
    );
    rebuildRing();
  });
  rebuildRing();

  let isReady = false;
  let closing: Promise<void> | undefined;
  // Membership is ready once a seed answered (at once without seeds). A node whose seeds never answer
  // (it is the only replica and its service name resolves to itself; or every pod waits for the others
  // to be ready before DNS lists them) still serves every key itself: after joinTimeoutMs it reports
  // ready anyway and membership keeps retrying the seeds in the background.
  const joinTimeoutMs = opts.joinTimeoutMs ?? 10_000;
  let joinTimer: NodeJS.Timeout | undefined;
  const joined = membership.ready
    ? Promise.resolve()
    : Promise.race([
        once(membership, 'ready').then(() => undefined),
        new Promise<void>((resolve) => {
          joinTimer = setTimeout(() => {
            log?.warn(
              { seeds: opts.seeds, joinTimeoutMs },
              'no seed answered yet; serving alone (ready) and still trying to join',
            );
            resolve();
          }, joinTimeoutMs);
          joinTimer.unref();
        }),
      ]);
  const ready = joined.then(() => {
    clearTimeout(joinTimer);
    rebuildRing();
    if (!closing) {
      grpc.setServing(true);
      isReady = true;
    }
  });
  ready.catch(() => {});

  return {
    grpcAddr: self,
    gossipAddr: membership.addr,
    ready,
    isReady: () => isReady,
    members: () => membership.members(),
    ringMembers: () => ring.slice(),
    ringChecksum: () => picker.checksum(),
    membershipStats: () => ({ ...membership.stats() }),
    grpcStats: () => grpc.stats(),
    close(closeOpts) {
      closing ??= (async () => {
        clearTimeout(joinTimer);
        clearTimeout(publishTimer);
        isReady = false;
        grpc.setServing(false);
        // Before the leave: peers still route this node's keys here while their next owners fill up,
        // so no read falls in between (docs/handoff.md).
        const pushMs = opts.handoffPushMs ?? 5_000;
        if (pushMs > 0 && picker.members().length > 1) {
          let budget = opts.handoffPushBytes ?? Number.POSITIVE_INFINITY;
          const t0 = Date.now();
          for (const g of registry.list()) {
            const left = pushMs - (Date.now() - t0);
            if (left <= 0 || budget <= 0) break;
            const r = await g.handOff({ maxBytes: budget, timeoutMs: left });
            budget -= r.bytes;
            log?.info(
              { group: g.name, ...r, ms: Date.now() - t0 },
              'handed cached entries to their next owners',
            );
          }
        }
        try {
          await membership.leave(closeOpts?.leaveTimeoutMs ?? 2000);
        } catch (err) {
          log?.warn({ err }, 'leave announcement failed; peers will detect the departure by probing');
        }
        await membership.close();
        await grpc.close(closeOpts?.graceMs ?? 5000);
        picker.close();
      })();
      return closing;
    },
  };
}
