// Encryption and authentication of every membership message on the wire (datagrams and stream
// messages), like memberlist's keyring: AES-256-GCM, the first installed key encrypts, every installed
// key is tried to decrypt — so keys rotate without a flag day (install the new key everywhere as a
// secondary, then make it primary everywhere, then remove the old one).
//
// Wire format of one sealed message:
//   byte 0      format: 0 = plaintext (no keys installed), 1 = AES-256-GCM (unbound, before receiver
//               binding), 2 = AES-256-GCM bound to its receiver
//   plaintext:  [0][payload]
//   format 1:   [1][nonce 12][ciphertext of (timestamp ms u64 BE ‖ payload)][tag 16]
//   format 2:   [2][nonce 12][to 8][ciphertext of (timestamp ms u64 BE ‖ payload)][tag 16]
// The format byte and the message kind (datagram / request / response) are authenticated as
// additional data, so a captured datagram cannot be replayed as a stream request, nor a response as a
// request. The timestamp and the nonce feed a cheap replay guard (see ReplayGuard below); that guard
// lives in each receiver, so on its own it cannot stop a message captured on its way to member B from
// being accepted once by member C. Format 2 closes that: `to` (authenticated too) names the intended
// receiver — for a datagram or stream request a digest of the receiver's advertised address as the
// sender knows it (receiverTag), which the receiver knows of itself; for a stream response the start
// of the request's nonce, so a reply answers exactly one request. `to` travels in clear so that a
// receiver can tell "meant for someone else" (counted as misaddressed) from "wrong key".

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** AES-256 key length in bytes. */
export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const TS_BYTES = 8;
const FORMAT_PLAIN = 0;
const FORMAT_AES_GCM = 1;
const FORMAT_AES_GCM_BOUND = 2;
/** Bytes of the receiver binding (`to`) of a format-2 message. */
export const RECEIVER_TAG_BYTES = 8;

/**
 * Bytes a sealed message adds to its payload when keys are installed (format + nonce + receiver +
 * timestamp + tag). Unbound (format 1) messages are 8 bytes shorter.
 */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + RECEIVER_TAG_BYTES + TS_BYTES + TAG_BYTES;

/**
 * The receiver binding of a stream request to a seed: the sender does not know the seed's advertised
 * address yet (a DNS name, a service IP, NAT). Accepted on stream requests only; never sent otherwise.
 */
export const ANY_RECEIVER: Buffer = Buffer.alloc(RECEIVER_TAG_BYTES);

/**
 * The binding of a datagram or stream request to the member at advertised address `addr`: the first
 * 8 bytes of SHA-256 over a label and the address. Two addresses of one cluster collide with
 * probability ~n²/2⁶⁵.
 */
export function receiverTag(addr: string): Buffer {
  const h = createHash('sha256').update('gossipcache receiver\0').update(addr, 'utf8').digest();
  const tag = h.subarray(0, RECEIVER_TAG_BYTES);
  if (tag.equals(ANY_RECEIVER)) tag[0] = 1; // never the wildcard
  return tag;
}

/**
 * Receiver binding during a rolling upgrade from a version without it (format 1 only):
 * - 'off': send unbound (format 1, readable by old nodes); accept both formats;
 * - 'send': send bound (format 2); still accept unbound messages from nodes in 'off' mode;
 * - 'require' (default): send bound, refuse unbound messages (counted as `unbound`).
 * Upgrade: roll out with 'off', then roll to 'send', then to 'require'; each step talks to the one
 * before it. Replies always use the format of the request they answer.
 */
export type ReceiverBinding = 'off' | 'send' | 'require';
export const RECEIVER_BINDINGS: readonly ReceiverBinding[] = ['off', 'send', 'require'];

/** What a sealed message is; bound into the authentication so one kind cannot pass for another. */
export type MessageKind = 'packet' | 'request' | 'response';
const KIND_BYTE: Record<MessageKind, number> = { packet: 1, request: 2, response: 3 };

/** Why `open` refused a message. Each reason has its own counter in `KeyringStats`. */
export type OpenFailure =
  | 'malformed' // too short, unknown format byte
  | 'decrypt' // no installed key authenticates it (wrong key, tampered, or encrypted but we have no key)
  | 'plaintext' // unencrypted message while keys are installed
  | 'stale' // timestamp outside the replay window (or clocks skewed by more than it)
  | 'replayed' // nonce already seen inside the window
  | 'misaddressed' // authentic, but bound to another receiver (or a reply to another request)
  | 'unbound'; // authentic but unbound (format 1) while receiver binding is required

/**
 * `replyTo`: what a response to this (stream request) message must be bound to; absent for plaintext
 * and unbound requests (their reply is unbound too).
 */
export type OpenResult =
  | { ok: true; payload: Uint8Array; replyTo?: Buffer }
  | { ok: false; reason: OpenFailure };

/** Counters of refused messages (all drop silently on the wire; these are how an operator sees them). */
export interface KeyringStats {
  malformed: number;
  decryptFailures: number;
  plaintextRejected: number;
  stale: number;
  replayed: number;
  /** Authentic messages bound to another receiver: a replay from another member's traffic. */
  misaddressed: number;
  /** Unbound (format 1) messages refused in 'require' mode: a node still on an older version or in 'off' mode. */
  unbound: number;
  /** Unbound messages accepted ('off' / 'send' mode): while this grows, some node still sends unbound. */
  unboundAccepted: number;
}

export interface KeyringOptions {
  /**
   * How far a message's timestamp may be from this node's wall clock, ms (default 60 000). Messages
   * outside it are refused as stale, so clocks of all nodes must agree within this window (NTP).
   */
  replayWindowMs?: number;
  /** Most nonces remembered for replay detection (default 100 000; bounds memory). */
  maxRememberedNonces?: number;
  /** Wall clock in ms (tests pass a fake). Default Date.now. */
  now?: () => number;
  /** Receiver binding (see ReceiverBinding). Default 'require'. */
  receiverBinding?: ReceiverBinding;
}

/**
 * Parse one 32-byte key written as base64 (44 chars, or 43 without padding / base64url) or hex (64 chars).
 * Throws an Error that says what is wrong and how to make a valid key.
 */
export function parseSecretKey(str: string): Buffer {
  const s = str.trim();
  const how = 'generate one with: openssl rand -base64 32';
  if (s === '') throw new Error(`invalid secret key: empty (expected 32 bytes as base64 or hex; ${how})`);
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]+$/.test(s) && s.length === KEY_BYTES * 2) key = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(s)) {
    const b = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64');
    if (b.length === KEY_BYTES) key = b;
    else
      throw new Error(
        `invalid secret key: decodes to ${b.length} bytes, need exactly ${KEY_BYTES} (AES-256); ${how}`,
      );
  }
  if (!key) throw new Error(`invalid secret key: not base64 or 64 hex digits (expected 32 bytes; ${how})`);
  return key;
}

/**
 * Parse a comma-separated list of keys (the GOSSIPCACHE_SECRET_KEY form): the first is primary (it
 * encrypts), the others only decrypt. Empty string or undefined → no keys (no encryption). Errors name
 * the position of the bad key.
 */
export function parseSecretKeys(list: string | undefined): Buffer[] {
  if (list === undefined || list.trim() === '') return [];
  return list.split(',').map((part, i) => {
    try {
      return parseSecretKey(part);
    } catch (err) {
      throw new Error(`secret key #${i + 1} of ${list.split(',').length}: ${(err as Error).message}`);
    }
  });
}

/**
 * Remembers nonces of recently accepted messages so a captured message replayed inside the timestamp
 * window is refused. Cheap: a Map in insertion order, pruned from the front. When full, the oldest
 * entries are evicted and the window's lower edge rises to their timestamp, so an evicted nonce can
 * never be accepted again either (at worst a genuinely late message is refused; only possible when
 * more than `max` messages arrive inside one window).
 */
class ReplayGuard {
  private readonly seen = new Map<string, number>();
  private floor = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly windowMs: number,
    private readonly max: number,
  ) {}

  /** 'ok' and remembers it, or why it is refused. */
  check(nonce: Buffer, ts: number, now: number): 'ok' | 'stale' | 'replayed' {
    if (Math.abs(now - ts) > this.windowMs || ts <= this.floor) return 'stale';
    const k = nonce.toString('latin1');
    if (this.seen.has(k)) return 'replayed';
    this.prune(now);
    while (this.seen.size >= this.max) {
      const [oldKey, oldTs] = this.seen.entries().next().value as [string, number];
      this.seen.delete(oldKey);
      if (oldTs > this.floor) this.floor = oldTs;
    }
    this.seen.set(k, ts);
    return 'ok';
  }

  private prune(now: number): void {
    // Entries arrive roughly in timestamp order; stop at the first one still inside the window.
    for (const [k, ts] of this.seen) {
      if (now - ts <= this.windowMs) break;
      this.seen.delete(k);
    }
  }
}

/**
 * The installed keys of one node. With no keys, messages travel in plaintext (anyone who can reach the
 * port can join). With keys, every message is encrypted with the primary key and authenticated.
 */
export class Keyring {
  readonly stats: KeyringStats = {
    malformed: 0,
    decryptFailures: 0,
    plaintextRejected: 0,
    stale: 0,
    replayed: 0,
    misaddressed: 0,
    unbound: 0,
    unboundAccepted: 0,
  };
  readonly receiverBinding: ReceiverBinding;
  private keys: Buffer[];
  private readonly now: () => number;
  private readonly guard: ReplayGuard;

  /** `keys[0]` is primary. Each key must be exactly 32 bytes (see parseSecretKey). */
  constructor(keys: readonly Uint8Array[] = [], opts: KeyringOptions = {}) {
    this.keys = keys.map((k, i) => checkKey(k, i));
    this.now = opts.now ?? Date.now;
    this.guard = new ReplayGuard(opts.replayWindowMs ?? 60_000, opts.maxRememberedNonces ?? 100_000);
    const binding = opts.receiverBinding ?? 'require';
    if (!RECEIVER_BINDINGS.includes(binding))
      throw new Error(`receiver binding must be one of ${RECEIVER_BINDINGS.join(', ')}, got ${binding}`);
    this.receiverBinding = binding;
  }

  /** Whether messages are encrypted. */
  get encrypted(): boolean {
    return this.keys.length > 0;
  }

  /** Bytes `seal` adds to a payload. */
  get overhead(): number {
    return this.encrypted ? SEAL_OVERHEAD : 1;
  }

  /** Install `key` as a secondary (decrypt-only) key; no-op if already installed. */
  install(key: Uint8Array): void {
    const k = checkKey(key, this.keys.length);
    if (!this.keys.some((x) => x.equals(k))) this.keys.push(k);
  }

  /** Make an installed key primary (it encrypts from now on). */
  use(key: Uint8Array): void {
    const i = this.keys.findIndex((x) => x.equals(key));
    if (i < 0) throw new Error('keyring: cannot use a key that is not installed; install it first');
    const [k] = this.keys.splice(i, 1);
    this.keys.unshift(k);
  }

  /** Remove a secondary key. The primary cannot be removed (make another key primary first). */
  remove(key: Uint8Array): void {
    const i = this.keys.findIndex((x) => x.equals(key));
    if (i === 0) throw new Error('keyring: cannot remove the primary key; use() another key first');
    if (i > 0) this.keys.splice(i, 1);
  }

  /**
   * Wrap `payload` for the wire, bound to `to`: for a datagram or stream request the receiverTag of
   * the receiver's advertised address (or ANY_RECEIVER for a request to a seed), for a response the
   * request's `replyTo` (undefined: the request was unbound, so is the reply). Ignored without keys.
   */
  seal(kind: MessageKind, payload: Uint8Array, to: Uint8Array | undefined): Buffer {
    if (!this.encrypted) {
      const out = Buffer.allocUnsafe(1 + payload.length);
      out[0] = FORMAT_PLAIN;
      out.set(payload, 1);
      return out;
    }
    const bound = to !== undefined && (kind === 'response' || this.receiverBinding !== 'off');
    if (bound && to.length !== RECEIVER_TAG_BYTES)
      throw new RangeError(`receiver binding must be ${RECEIVER_TAG_BYTES} bytes, got ${to.length}`);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys[0], nonce);
    cipher.setAAD(bound ? aadBound(kind, to) : aad(kind));
    const ts = Buffer.allocUnsafe(TS_BYTES);
    ts.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(this.now()))));
    const body = Buffer.concat([cipher.update(ts), cipher.update(payload), cipher.final()]);
    return bound
      ? Buffer.concat([Buffer.of(FORMAT_AES_GCM_BOUND), nonce, to, body, cipher.getAuthTag()])
      : Buffer.concat([Buffer.of(FORMAT_AES_GCM), nonce, body, cipher.getAuthTag()]);
  }

  /**
   * Unwrap a message from the wire, or say why it is refused (and count it). Never throws.
   * `expect`: for a datagram or stream request, this node's own receiverTag (a request may also be
   * bound to ANY_RECEIVER); for a response, `replyTag` of the request it answers.
   */
  open(kind: MessageKind, wire: Uint8Array, expect: Uint8Array | undefined): OpenResult {
    const r = this.tryOpen(kind, wire, expect);
    if (!r.ok) {
      if (r.reason === 'malformed') this.stats.malformed++;
      else if (r.reason === 'decrypt') this.stats.decryptFailures++;
      else if (r.reason === 'plaintext') this.stats.plaintextRejected++;
      else if (r.reason === 'stale') this.stats.stale++;
      else if (r.reason === 'misaddressed') this.stats.misaddressed++;
      else if (r.reason === 'unbound') this.stats.unbound++;
      else this.stats.replayed++;
    }
    return r;
  }

  private tryOpen(kind: MessageKind, wire: Uint8Array, expect: Uint8Array | undefined): OpenResult {
    if (wire.length < 1) return { ok: false, reason: 'malformed' };
    const format = wire[0];
    if (format === FORMAT_PLAIN) {
      if (this.encrypted) return { ok: false, reason: 'plaintext' };
      return { ok: true, payload: wire.subarray(1) };
    }
    if (format !== FORMAT_AES_GCM && format !== FORMAT_AES_GCM_BOUND)
      return { ok: false, reason: 'malformed' };
    if (!this.encrypted) return { ok: false, reason: 'decrypt' };
    const bound = format === FORMAT_AES_GCM_BOUND;
    const head = 1 + NONCE_BYTES + (bound ? RECEIVER_TAG_BYTES : 0);
    if (wire.length < head + TS_BYTES + TAG_BYTES) return { ok: false, reason: 'malformed' };
    const buf = Buffer.from(wire.buffer, wire.byteOffset, wire.length);
    const nonce = buf.subarray(1, 1 + NONCE_BYTES);
    const to = bound ? buf.subarray(1 + NONCE_BYTES, head) : undefined;
    const body = buf.subarray(head, buf.length - TAG_BYTES);
    const tag = buf.subarray(buf.length - TAG_BYTES);
    const ad = to ? aadBound(kind, to) : aad(kind);
    for (const key of this.keys) {
      let plain: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', key, nonce);
        d.setAAD(ad);
        d.setAuthTag(tag);
        plain = Buffer.concat([d.update(body), d.final()]);
      } catch {
        continue; // not this key (or tampered): try the next one
      }
      // Authentic. Now: is it meant for us? (Before the replay guard: a misaddressed message must
      // not take room among the remembered nonces.)
      const verdict = this.addressedHere(kind, to, expect);
      if (verdict !== 'ok') return { ok: false, reason: verdict };
      const ts = Number(plain.readBigUInt64BE(0));
      const fresh = this.guard.check(Buffer.from(nonce), ts, this.now());
      if (fresh !== 'ok') return { ok: false, reason: fresh };
      if (!to && kind !== 'response') this.stats.unboundAccepted++;
      const payload = plain.subarray(TS_BYTES);
      return bound && kind === 'request'
        ? { ok: true, payload, replyTo: Buffer.from(nonce.subarray(0, RECEIVER_TAG_BYTES)) }
        : { ok: true, payload };
    }
    return { ok: false, reason: 'decrypt' };
  }

  private addressedHere(
    kind: MessageKind,
    to: Buffer | undefined,
    expect: Uint8Array | undefined,
  ): 'ok' | 'misaddressed' | 'unbound' {
    if (kind === 'response') {
      // A reply has the format of our request: bound to its nonce, or unbound if we sent it unbound.
      if (expect === undefined) return to === undefined ? 'ok' : 'misaddressed';
      return to?.equals(expect) ? 'ok' : 'misaddressed';
    }
    if (to === undefined) return this.receiverBinding === 'require' ? 'unbound' : 'ok';
    if (expect !== undefined && to.equals(expect)) return 'ok';
    if (kind === 'request' && to.equals(ANY_RECEIVER)) return 'ok';
    return 'misaddressed';
  }
}

/**
 * What the response to sealed stream request `wire` must be bound to (the start of its nonce), or
 * undefined when the request is unbound or plaintext (so is its response).
 */
export function replyTag(wire: Uint8Array): Buffer | undefined {
  if (wire.length < 1 + NONCE_BYTES || wire[0] !== FORMAT_AES_GCM_BOUND) return undefined;
  return Buffer.from(wire.subarray(1, 1 + RECEIVER_TAG_BYTES));
}

function aad(kind: MessageKind): Buffer {
  return Buffer.of(FORMAT_AES_GCM, KIND_BYTE[kind]);
}

function aadBound(kind: MessageKind, to: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(2 + RECEIVER_TAG_BYTES);
  out[0] = FORMAT_AES_GCM_BOUND;
  out[1] = KIND_BYTE[kind];
  out.set(to, 2);
  return out;
}

function checkKey(k: Uint8Array, i: number): Buffer {
  // A key written as text (what `openssl rand -base64 32` prints, an environment variable) is the usual
  // mistake: say how to decode it rather than count its characters as bytes.
  if (typeof k === 'string')
    throw new Error(
      `secret key #${i + 1}: a string, not the key's ${KEY_BYTES} bytes; decode base64 or hex text with ` +
        "parseSecretKey from 'gossipcache/membership'",
    );
  if (!(k instanceof Uint8Array) || k.length !== KEY_BYTES)
    throw new Error(
      `secret key #${i + 1}: must be exactly ${KEY_BYTES} bytes (AES-256), got ${k?.length ?? typeof k}; ` +
        'generate one with: openssl rand -base64 32, and decode it with parseSecretKey',
    );
  return Buffer.from(k);
}
