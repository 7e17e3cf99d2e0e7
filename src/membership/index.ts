// The membership layer as the node uses it: SWIM (swim.ts) over real UDP/TCP (net.ts), sealed by the
// keyring, with seeds resolved through DNS. `createMembership` is the one entry point.

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { parseHostPort } from '../address.js';
import { type Logger, silentLogger } from '../logger.js';
import { Keyring, type ReceiverBinding } from './keyring.js';
import { type TransportStats, UdpTcpTransport, type UdpTcpTransportOptions } from './net.js';
import { DEFAULT_GOSSIP_PORT, type Lookup, parseSeeds, resolveSeeds } from './seeds.js';
import { Swim } from './swim.js';
import type { MemberState, MemberView, SwimConfig, SwimStats } from './types.js';

export {
  KEY_BYTES,
  Keyring,
  parseSecretKey,
  parseSecretKeys,
  RECEIVER_BINDINGS,
  type ReceiverBinding,
} from './keyring.js';
export type { TransportStats } from './net.js';
export { DEFAULT_GOSSIP_PORT, parseSeeds, resolveSeeds } from './seeds.js';
export type { MemberState, MemberView, SwimConfig, SwimStats } from './types.js';
export { defaultSwimConfig } from './types.js';

export interface MembershipOptions {
  /** `host:port` for UDP and TCP (same port). Port 0 = a free one (see `addr`). Default port 7946. */
  bindAddr: string;
  /** `host:port` other nodes use to reach this one (NAT, containers). Default: see UdpTcpTransport. */
  advertiseAddr?: string;
  /**
   * Unique, stable node id. Default `<hostname>@<advertised host:port>`: the advertised address is what
   * makes it unique (two processes can share a hostname and a port in different network namespaces, never
   * an address), and it stays the same when the node restarts there, so a restart replaces its old record.
   */
  id?: string;
  /** Metadata gossiped with this member, e.g. `{ grpcAddr, version }`. */
  meta: Record<string, string>;
  /**
   * `host[:port]` of nodes to join (a missing port = this node's gossip port); names resolve to all
   * their addresses; retried until one answers.
   */
  seeds?: string[];
  /**
   * AES-256 keys (32 bytes each); the first encrypts, all decrypt. Empty/absent = plaintext: then
   * anyone who can reach the gossip port can join the cluster and read its member list.
   */
  secretKeys?: Buffer[];
  /**
   * Receiver binding of encrypted messages (default 'require'); 'off' and 'send' are for a rolling
   * upgrade from a version without it (see ReceiverBinding and docs/membership-ops.md).
   */
  receiverBinding?: ReceiverBinding;
  /** Limits of the gossip TCP port (defaults in UdpTcpTransportOptions and docs/security.md). */
  limits?: Pick<
    UdpTcpTransportOptions,
    | 'maxStreamBytes'
    | 'inboundTimeoutMs'
    | 'authTimeoutMs'
    | 'maxPendingStreams'
    | 'maxPendingBytes'
    | 'maxInboundStreams'
  >;
  config?: Partial<SwimConfig>;
  logger?: Logger;
  /** Only peers whose IP passes are contacted or heard (others dropped, counted). Default: all. */
  allowAddress?: (ip: string) => boolean;
  /** DNS resolver for seeds (tests). Default dns.lookup with all: true. */
  lookup?: Lookup;
}

/** Protocol counters plus the transport's (drops of hostile or broken input). */
export type MembershipStats = SwimStats & { transport: TransportStats };

/**
 * A running member of the cluster.
 * Events: `'change'(member: MemberView, previous: MemberState | null)` for every state change seen
 * (including new members: previous = null); `'ready'()` once, when `ready` becomes true.
 */
export interface Membership extends EventEmitter {
  /** This node's id. */
  readonly id: string;
  /** Actual bound address `host:port` (the real port when 0 was asked for). */
  readonly addr: string;
  /** Address advertised to the other members. */
  readonly advertiseAddr: string;
  /** True once another member has been reached through a seed, or at once when there are no seeds. */
  readonly ready: boolean;
  /** Every known member, this node included (alive, suspect, dead and left ones until reaped). */
  members(): MemberView[];
  local(): MemberView;
  /** Publish new metadata (gossiped with a higher incarnation). */
  updateMeta(meta: Record<string, string>): void;
  /** Tell the others this node leaves (so they drop it at once instead of detecting a failure). */
  leave(timeoutMs?: number): Promise<void>;
  /** Stop the protocol and release the sockets. Call after leave() for a graceful exit. Idempotent. */
  close(): Promise<void>;
  stats(): MembershipStats;
}

class RealMembership extends EventEmitter implements Membership {
  ready = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly id: string,
    private readonly swim: Swim,
    private readonly transport: UdpTcpTransport,
    hasSeeds: boolean,
  ) {
    super();
    if (!hasSeeds) this.ready = true;
    swim.on('change', (member: MemberView, prev: MemberState | null) => {
      if (!this.ready && member.id !== id && member.state === 'alive') {
        this.ready = true;
        this.emit('ready');
      }
      this.emit('change', member, prev);
    });
  }

  get addr(): string {
    return this.transport.boundAddr;
  }

  get advertiseAddr(): string {
    return this.transport.localAddr;
  }

  members(): MemberView[] {
    return this.swim.members();
  }

  local(): MemberView {
    return this.swim.local();
  }

  updateMeta(meta: Record<string, string>): void {
    this.swim.updateMeta(meta);
  }

  async leave(timeoutMs = 2000): Promise<void> {
    await this.swim.leave(timeoutMs);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.swim.stop();
      } finally {
        await this.transport.close();
      }
    })();
    return this.closing;
  }

  stats(): MembershipStats {
    return { ...this.swim.stats(), transport: this.transport.stats() };
  }
}

/**
 * Bind the gossip port, start SWIM and join the seeds in the background (retrying until one answers;
 * DNS failures are logged and retried, never thrown). Rejects only for bad options or when the port
 * cannot be bound — with an error that says what to change.
 */
export async function createMembership(opts: MembershipOptions): Promise<Membership> {
  const log = opts.logger ?? silentLogger;
  const seeds = (opts.seeds ?? []).filter((s) => s.trim() !== '');
  // A seed without a port uses this node's gossip port (all nodes usually share one), else 7946.
  const seedPort =
    parseHostPort(opts.bindAddr, { defaultPort: DEFAULT_GOSSIP_PORT }).port || DEFAULT_GOSSIP_PORT;
  parseSeeds(seeds, seedPort); // validate now: a typo in a seed is a configuration error, not a retry
  if (opts.advertiseAddr) parseHostPort(opts.advertiseAddr, { defaultPort: DEFAULT_GOSSIP_PORT });
  const keyring = new Keyring(opts.secretKeys ?? [], { receiverBinding: opts.receiverBinding });
  if (!keyring.encrypted)
    log.warn(
      { bindAddr: opts.bindAddr },
      'gossip is not encrypted: anyone who can reach this port can join the cluster; set GOSSIPCACHE_SECRET_KEY',
    );
  const transport = await UdpTcpTransport.listen({
    ...opts.limits,
    bindAddr: opts.bindAddr,
    advertiseAddr: opts.advertiseAddr,
    keyring,
    logger: log,
    allowAddress: opts.allowAddress,
  });
  const id = opts.id ?? `${hostname()}@${transport.localAddr}`;
  const family = transport.boundAddr.startsWith('[') ? 6 : 4;
  let swim: Swim;
  try {
    swim = new Swim({
      id,
      meta: opts.meta,
      transport,
      config: opts.config,
      seeds,
      resolveSeeds: (list) =>
        resolveSeeds(list, {
          defaultPort: seedPort,
          family,
          exclude: [transport.localAddr, transport.boundAddr],
          lookup: opts.lookup,
          onError: (seed, err) =>
            log.warn({ seed, err: err.message }, 'cannot resolve gossip seed; will retry'),
        }),
      log,
    });
  } catch (err) {
    await transport.close();
    throw err;
  }
  const m = new RealMembership(id, swim, transport, seeds.length > 0);
  // Swim joins the seeds in the background, retrying with backoff, and re-resolves them on reconnect.
  swim.start();
  log.info(
    {
      id,
      addr: transport.localAddr,
      seeds,
      encrypted: keyring.encrypted,
      receiverBinding: keyring.receiverBinding,
    },
    'membership started',
  );
  return m;
}
