// The two things the SWIM protocol needs from the outside world: a way to move bytes (Transport) and
// a way to tell time (Clock). Both are injected so the very same state machine runs over real UDP/TCP
// with the wall clock (net.ts, index.ts) and over the in-memory network and simulated clock of the
// testing toolkit (testing/) — memberlist's "mock transport" idea.

/**
 * Moves opaque protocol messages between nodes. Two paths, like memberlist:
 * - datagrams (UDP): small, unordered, may be lost, duplicated or delayed; carry probes + gossip;
 * - requests (TCP): one message each way, for state larger than a datagram (push-pull, join) and
 *   for the fallback ping.
 * Encryption, if any, happens below this interface: the protocol sees plaintext payloads only.
 */
export interface Transport {
  /** `host:port` this node is reached at (advertised to peers; may differ from the bind address). */
  readonly localAddr: string;
  /** Largest payload `sendPacket` accepts, after the transport's own overhead (≈1350 on UDP). */
  readonly maxPacketBytes: number;
  /**
   * Best effort: may be dropped or delayed. Never throws (oversize or bad address = dropped).
   * `receiver`: the advertised address of the member it is meant for, when that is not `to` (a reply
   * sent back to the source address a datagram came from, which NAT may have rewritten). An encrypting
   * transport binds the datagram to it, so it is refused if replayed to any other member.
   */
  sendPacket(to: string, data: Uint8Array, receiver?: string): void;
  /** Called with each datagram received. `from` is the sender's transport address. */
  onPacket: ((from: string, data: Uint8Array) => void) | null;
  /**
   * Stream path: send one message to `to` and wait for its one reply. Rejects when the peer cannot
   * be reached, it has no handler, its handler rejects, or no reply arrived within `timeoutMs`.
   * `receiver`: as for sendPacket (default `to`); null = not known (a seed, whose advertised address
   * may differ from the one it was reached at): the request is then accepted by whoever receives it.
   */
  request(to: string, data: Uint8Array, timeoutMs: number, receiver?: string | null): Promise<Uint8Array>;
  /** Answers one stream request. A rejection closes the stream without a reply (the caller rejects). */
  onRequest: ((from: string, data: Uint8Array) => Promise<Uint8Array>) | null;
  /** Stop sending and receiving; pending requests reject. Idempotent. */
  close(): Promise<void>;
}

/** Time as the protocol sees it (ms). A fake in tests, the wall clock in production. */
export interface Clock {
  /** Milliseconds, monotonic (only differences matter). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

/** The real clock: `performance.now()` (monotonic) and Node timers, unref'd so they never hold the process open. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
