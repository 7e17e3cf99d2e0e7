// Public shapes of the membership protocol: what a member looks like to users of Swim (the ring, the
// node) and the timers it runs on. Kept apart from swim.ts so net.ts / index.ts can build against it.

import type { Logger } from '../logger.js';
import type { Clock, Transport } from './transport.js';

/**
 * Lifecycle of a member as seen by one node.
 * - alive: answers probes (owns keys on the ring);
 * - suspect: missed a probe; still owns keys until its suspicion times out (it may refute);
 * - dead: the suspicion timed out (owns no keys; kept for `deadReapMs` so it can come back);
 * - left: announced its own departure (owns no keys).
 */
export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

/** A snapshot of one member. Plain data: safe to keep, never mutated by Swim afterwards. */
export interface MemberView {
  /** Stable node id (unique in the cluster; a restarted process may reuse it). */
  id: string;
  /** Transport address `host:port` (what the membership protocol talks to). */
  addr: string;
  /** Application metadata, e.g. `{ grpcAddr, version }`. At most `maxMetaBytes` encoded. */
  meta: Record<string, string>;
  state: MemberState;
  /** Bumped by the member itself to refute a suspicion or to publish new metadata. */
  incarnation: number;
  /**
   * Process generation (ms timestamp of the process start). Compared before the incarnation, so a
   * restarted process (new generation, incarnation 0) overrides its own old dead/left record at once.
   */
  generation: number;
}

/** Timers and limits. All durations in ms. Defaults: `defaultSwimConfig` (LAN, see docs/membership.md). */
export interface SwimConfig {
  /** Time between two probes of this node (scaled up by local health awareness). */
  probeIntervalMs: number;
  /** Wait for a direct ack before asking others (indirect probe + TCP fallback). */
  probeTimeoutMs: number;
  /** How many members relay an indirect probe (k). */
  indirectChecks: number;
  /** Use the stream path (transport.request) as a fallback ping. */
  tcpFallbackPing: boolean;
  /** Suspicion min timeout = suspicionMult × max(1, log10 n) × probeIntervalMs. */
  suspicionMult: number;
  /** Suspicion max timeout = suspicionMaxTimeoutMult × min timeout (used while unconfirmed). */
  suspicionMaxTimeoutMult: number;
  /** Independent confirmations that shrink a suspicion to its min timeout (Lifeguard's k). */
  suspicionConfirmations: number;
  /** Max local health score: probe interval and timeout are multiplied by (score + 1). */
  awarenessMaxMultiplier: number;
  /** Time between two gossip rounds (piggyback queue flushed to `gossipNodes` random members). */
  gossipIntervalMs: number;
  gossipNodes: number;
  /** Dead members still receive gossip this long (so a falsely-dead node learns it and refutes). */
  gossipToTheDeadMs: number;
  /** A broadcast is sent retransmitMult × ceil(log10(n + 1)) times. */
  retransmitMult: number;
  /** Max queued broadcasts; beyond it the most-transmitted ones are dropped (counted). */
  maxBroadcasts: number;
  /** Full state exchange with a random member, base interval (scaled up beyond 32 members). */
  pushPullIntervalMs: number;
  /** Timeout of one stream exchange (push-pull, join, TCP ping). */
  streamTimeoutMs: number;
  /** Background join: first retry delay, doubled up to joinMaxBackoffMs. */
  joinRetryMs: number;
  joinMaxBackoffMs: number;
  /** Partition healing: contact one seed not in the cluster and one recently dead member this often. */
  reconnectIntervalMs: number;
  /** Dead and left members are forgotten after this long. */
  deadReapMs: number;
  /** Hard cap on remembered dead + left members (oldest reaped first). */
  maxDeadMembers: number;
  /** A timer that fires this much later than scheduled means this process was stalled. */
  stallThresholdMs: number;
  /** Max encoded metadata size in bytes (must leave room in one datagram). */
  maxMetaBytes: number;
}

/**
 * LAN defaults, tuned for: detection ≤ 3 s median at n = 10, zero false deaths with the process
 * paused 1 s every 3 s, join/leave seen by all within a few hundred ms (docs/membership.md says why).
 */
export const defaultSwimConfig: Readonly<SwimConfig> = Object.freeze({
  probeIntervalMs: 500,
  probeTimeoutMs: 250,
  indirectChecks: 3,
  tcpFallbackPing: true,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 3,
  suspicionConfirmations: 2,
  awarenessMaxMultiplier: 8,
  gossipIntervalMs: 100,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  retransmitMult: 4,
  maxBroadcasts: 8192,
  pushPullIntervalMs: 30_000,
  streamTimeoutMs: 2_000,
  joinRetryMs: 200,
  joinMaxBackoffMs: 5_000,
  reconnectIntervalMs: 10_000,
  deadReapMs: 120_000,
  maxDeadMembers: 4096,
  stallThresholdMs: 100,
  maxMetaBytes: 512,
});

/** Counters (monotonic) reported by `Swim.stats()`. */
export interface SwimStats {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  malformed: number;
  requestsIn: number;
  requestsOut: number;
  requestsFailed: number;
  probes: number;
  probesFailed: number;
  indirectProbes: number;
  tcpFallbacks: number;
  nacksIn: number;
  suspicions: number;
  confirmations: number;
  refutations: number;
  deaths: number;
  leaves: number;
  pushPulls: number;
  joins: number;
  reconnects: number;
  stalls: number;
  broadcastsQueued: number;
  broadcastsDropped: number;
  reaped: number;
  /** Suspicions that reached their timeout and got a last-chance ping before a death was declared. */
  finalChecks: number;
  /** Current local health score (0 = healthy). Not monotonic. */
  awareness: number;
}

/** Options of `new Swim(...)`. */
export interface SwimOptions {
  /** Stable node id, unique in the cluster (1..255 UTF-8 bytes). */
  id: string;
  /** Application metadata (e.g. `{ grpcAddr, version }`); ≤ config.maxMetaBytes encoded. */
  meta: Record<string, string>;
  transport: Transport;
  /** Default realClock. */
  clock?: Clock;
  config?: Partial<SwimConfig>;
  /** Seeds to join (`host:port`, or names `resolveSeeds` understands). */
  seeds?: string[];
  /** Turns seeds into `host:port` addresses (DNS); called again on every retry. Default: identity. */
  resolveSeeds?: (seeds: string[]) => Promise<string[]>;
  /** Deterministic randomness for tests. Default Math.random. */
  random?: () => number;
  /** Process generation; default Date.now(). Must grow across restarts of the same id. */
  generation?: number;
  log?: Logger;
}
