// A remote node as the core's Peer: one gRPC channel per address, kept for as long as the node is a
// member. Fills go over the multiplexed Fetch stream (mux.ts); Remove, and Get for callers that want
// groupcache's plain unary call, are unary calls on the same channel.

import { Client, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { type AbortWaiter, onAbort } from '../abort.js';
import { DEFAULT_PEER_TIMEOUT_MS, MAX_TTL_MS } from '../group.js';
import type { HandoffEntry, Peer, PeerGetResult } from '../peers.js';
import { outgoingTraceContext } from '../tracing.js';
import type { GetResponse, KeyRequest, PushRequest, PushResponse, SetRequest } from './codec.js';
import { MAX_REQUEST_MESSAGE_BYTES } from './limits.js';
import { FetchMux } from './mux.js';
import {
  GET_PATH,
  gossipCacheService,
  groupCacheService,
  PUSH_PATH,
  REMOVE_PATH,
  SET_PATH,
} from './proto.js';
import { checkMaxMessageBytes, messageLimitOptions, PEER_METADATA } from './serve.js';
import { errorOf, LOAD_ERROR_METADATA, PeerError, UNKNOWN_GROUP } from './status.js';
import { channelCredentials, type TlsFiles, tlsChannelOptions } from './tls.js';

export interface GrpcPeerOptions {
  /** Unset = plaintext. Present this certificate to the peer; verify the peer against `caFile`. */
  tls?: TlsFiles;
  /**
   * Deadline of each fill and remove, in ms, also sent to the owner (whose load for this caller is
   * abandoned when it passes). Default 31 000: the core's default getterTimeoutMs + 1 s, so an owner
   * still running a slow getter is not given up on early. The core's signal (peerTimeoutMs) may end
   * a fill sooner.
   */
  timeoutMs?: number;
  /** Largest value accepted from the peer (default 64 MiB); bigger ones fail with RESOURCE_EXHAUSTED. */
  maxMessageBytes?: number;
  /**
   * Called when each fill settles, with its latency in ms and whether it was answered (a value, "not
   * found", or "my load of it failed": the peer worked, its origin did not) rather than failed — for
   * peer RPC latency histograms and error counters.
   */
  onPeerRpc?: (ms: number, ok: boolean, peer: string) => void;
}

export { DEFAULT_PEER_TIMEOUT_MS };

const FLOW_CONTROL_WINDOW = 4 * 1024 * 1024;

const getMethod = groupCacheService.Get;
const removeMethod = gossipCacheService.Remove;
const setMethod = gossipCacheService.Set;
/** Field tags and lengths of a SetRequest besides its group, key and value (generous). */
const SET_OVERHEAD_BYTES = 32;
const pushMethod = gossipCacheService.Push;

/**
 * Marks a Get, Remove or Set as a peer's: served or changed on that node only, never forwarded (the
 * caller asks each node itself). Without it the node treats the call as an outside client's.
 */
function peerMetadata(): Metadata {
  const md = new Metadata();
  md.set(PEER_METADATA, '1');
  return md;
}

export class GrpcPeer implements Peer {
  readonly id: string;
  private readonly client: Client;
  private readonly timeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly onPeerRpc: ((ms: number, ok: boolean) => void) | undefined;
  private mux: FetchMux | undefined;
  private closed = false;

  /** `addr` is the peer's advertised gRPC address, `host:port`. */
  constructor(addr: string, opts: GrpcPeerOptions = {}) {
    this.id = addr;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${opts.timeoutMs}`);
    this.maxMessageBytes = checkMaxMessageBytes(opts.maxMessageBytes);
    const hook = opts.onPeerRpc;
    this.onPeerRpc = hook && ((ms, ok) => hook(ms, ok, addr));
    this.client = new Client(addr, channelCredentials(opts.tls), {
      ...messageLimitOptions(this.maxMessageBytes),
      ...tlsChannelOptions(opts.tls),
      // Notice a vanished peer (no FIN, no RST) within ~15 s even while the stream sits idle.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // HTTP/2's default 64 KiB receive window costs a round trip per 64 KiB of values; a larger
      // window lets big values stream at link speed (still bounded: the peer stops at 4 MiB unread).
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    });
  }

  /** Fetch over the peer stream; opens (or reopens) the stream when needed. */
  get(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult> {
    return this.fetch(group, key, signal, false);
  }

  /** The cache-only handoff question, on the same stream (see Peer.handoff). */
  handoff(group: string, key: string, signal: AbortSignal): Promise<PeerGetResult> {
    return this.fetch(group, key, signal, true);
  }

  /** Hand entries to this peer (a unary Push); resolves with how many it kept. */
  push(group: string, entries: HandoffEntry[], signal: AbortSignal): Promise<number> {
    const req: PushRequest = { group, entries };
    return this.unary<PushResponse>(PUSH_PATH, pushMethod, req, new Metadata(), signal).then((r) => r.kept);
  }

  private fetch(group: string, key: string, signal: AbortSignal, handoff: boolean): Promise<PeerGetResult> {
    if (this.closed) {
      return Promise.reject(new PeerError(this.id, status.UNAVAILABLE, 'the peer was removed'));
    }
    let mux = this.mux;
    if (!mux?.alive) {
      mux = this.mux = new FetchMux(this.client, {
        peer: this.id,
        timeoutMs: this.timeoutMs,
        maxMessageBytes: this.maxMessageBytes,
        onPeerRpc: this.onPeerRpc,
      });
    }
    return mux.fetch(group, key, signal, handoff);
  }

  /**
   * groupcache's unary Get. `peer: true` (default) marks it as a peer's fill (served by that node,
   * never forwarded); `peer: false` asks like an outside client (routed to the key's owner). Rejects
   * like `get`: OwnerLoadError when the node's load failed (its `gossipcache-load-error` trailer).
   */
  getUnary(
    group: string,
    key: string,
    signal?: AbortSignal,
    opts: { peer?: boolean } = {},
  ): Promise<PeerGetResult> {
    const md = opts.peer !== false ? peerMetadata() : new Metadata();
    const trace = outgoingTraceContext();
    if (trace?.traceparent) md.set('traceparent', trace.traceparent);
    if (trace?.tracestate) md.set('tracestate', trace.tracestate);
    return this.unary<GetResponse>(GET_PATH, getMethod, { group, key }, md, signal, true).then((r) => ({
      value: r.value,
      minuteQps: r.minuteQps,
      ttlMs: r.ttlMs === undefined ? undefined : Math.min(r.ttlMs, MAX_TTL_MS),
    }));
  }

  /** Drop `key` of `group` from the peer's caches. A peer that lacks the group has nothing to drop. */
  remove(group: string, key: string, signal: AbortSignal): Promise<void> {
    return this.unary(REMOVE_PATH, removeMethod, { group, key }, peerMetadata(), signal).then(
      () => undefined,
      (err: Error) => {
        if (err instanceof PeerError && err.code === status.NOT_FOUND) return;
        if (err.name === 'NotFoundError' && err.message.startsWith(UNKNOWN_GROUP)) return;
        throw err;
      },
    );
  }

  /**
   * Store `value` as the value of `key` at this peer, as the key's owner (the Set RPC). Rejects with a
   * PeerError saying why the peer refused (INVALID_ARGUMENT: value over its cache size, bad key or ttl;
   * NOT_FOUND: it has no such group) or could not be reached.
   */
  set(
    group: string,
    key: string,
    value: Uint8Array,
    opts: { ttlMs?: number },
    signal: AbortSignal,
  ): Promise<void> {
    // The value travels in one request message, which a node accepts up to MAX_REQUEST_MESSAGE_BYTES.
    const bytes = value.byteLength + Buffer.byteLength(key) + Buffer.byteLength(group) + SET_OVERHEAD_BYTES;
    if (bytes > MAX_REQUEST_MESSAGE_BYTES) {
      return Promise.reject(
        new RangeError(
          `set of a ${value.byteLength}-byte value through peer ${this.id}: over the ` +
            `${MAX_REQUEST_MESSAGE_BYTES}-byte limit of one peer request (key and value); ` +
            'store smaller values, or set them on the node that owns the key',
        ),
      );
    }
    const req = { group, key, value, ttlMs: opts.ttlMs ?? 0 };
    return this.unary(SET_PATH, setMethod, req, peerMetadata(), signal).then(() => undefined);
  }

  /** Close the stream and the channel; later calls fail with UNAVAILABLE. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mux?.close();
    this.client.close();
  }

  private unary<R>(
    path: string,
    method: typeof getMethod | typeof removeMethod | typeof setMethod | typeof pushMethod,
    req: KeyRequest | SetRequest | PushRequest,
    md: Metadata,
    signal: AbortSignal | undefined,
    /** A Get: a failure's load-error trailer makes it an OwnerLoadError. */
    loadErrors = false,
  ): Promise<R> {
    if (this.closed) {
      return Promise.reject(new PeerError(this.id, status.UNAVAILABLE, 'the peer was removed'));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      let waiter: AbortWaiter | undefined;
      const call = this.client.makeUnaryRequest(
        path,
        method.requestSerialize,
        method.responseDeserialize,
        req,
        md,
        { deadline: Date.now() + this.timeoutMs },
        (err: ServiceError | null, res?: R) => {
          waiter?.unwatch();
          if (err) {
            if (signal?.aborted) return reject(signal.reason);
            const loadError = loadErrors ? err.metadata?.get(LOAD_ERROR_METADATA)[0] : undefined;
            return reject(
              errorOf(
                this.id,
                err.code,
                err.details || err.message,
                0,
                typeof loadError === 'string' ? loadError : undefined,
              ),
            );
          }
          resolve(res as R);
        },
      );
      // One shared listener per signal (see abort.ts), not one per call.
      if (signal) waiter = onAbort(signal, () => call.cancel());
    });
  }
}
