// Encryption and authentication of every membership message on the wire (datagrams and stream
// messages), like memberlist's keyring: AES-256-GCM, the first installed key encrypts, every installed
// key is tried to decrypt — so keys rotate without a flag day (install the new key everywhere as a
// secondary, then make it primary everywhere, then remove the old one).
//
// Wire format of one sealed message:
//   byte 0      format: 0 = plaintext (no keys installed), 1 = AES-256-GCM
//   plaintext:  [0][payload]
//   encrypted:  [1][nonce 12][ciphertext of (timestamp ms u64 BE ‖ payload)][tag 16]
// The format byte and the message kind (datagram / request / response) are authenticated as
// additional data, so a captured datagram cannot be replayed as a stream request, nor a response as a
// request. The timestamp and the nonce feed a cheap replay guard (see ReplayGuard below).

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** AES-256 key length in bytes. */
export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const TS_BYTES = 8;
const FORMAT_PLAIN = 0;
const FORMAT_AES_GCM = 1;

/** Bytes a sealed message adds to its payload when keys are installed (format + nonce + timestamp + tag). */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TS_BYTES + TAG_BYTES;

/** What a sealed message is; bound into the authentication so one kind cannot pass for another. */
export type MessageKind = 'packet' | 'request' | 'response';
const KIND_BYTE: Record<MessageKind, number> = { packet: 1, request: 2, response: 3 };

/** Why `open` refused a message. Each reason has its own counter in `KeyringStats`. */
export type OpenFailure =
  | 'malformed' // too short, unknown format byte
  | 'decrypt' // no installed key authenticates it (wrong key, tampered, or encrypted but we have no key)
  | 'plaintext' // unencrypted message while keys are installed
  | 'stale' // timestamp outside the replay window (or clocks skewed by more than it)
  | 'replayed'; // nonce already seen inside the window

export type OpenResult = { ok: true; payload: Uint8Array } | { ok: false; reason: OpenFailure };

/** Counters of refused messages (all drop silently on the wire; these are how an operator sees them). */
export interface KeyringStats {
  malformed: number;
  decryptFailures: number;
  plaintextRejected: number;
  stale: number;
  replayed: number;
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
  };
  private keys: Buffer[];
  private readonly now: () => number;
  private readonly guard: ReplayGuard;

  /** `keys[0]` is primary. Each key must be exactly 32 bytes (see parseSecretKey). */
  constructor(keys: readonly Uint8Array[] = [], opts: KeyringOptions = {}) {
    this.keys = keys.map((k, i) => checkKey(k, i));
    this.now = opts.now ?? Date.now;
    this.guard = new ReplayGuard(opts.replayWindowMs ?? 60_000, opts.maxRememberedNonces ?? 100_000);
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

  /** Wrap `payload` for the wire. */
  seal(kind: MessageKind, payload: Uint8Array): Buffer {
    if (!this.encrypted) {
      const out = Buffer.allocUnsafe(1 + payload.length);
      out[0] = FORMAT_PLAIN;
      out.set(payload, 1);
      return out;
    }
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys[0], nonce);
    cipher.setAAD(aad(kind));
    const ts = Buffer.allocUnsafe(TS_BYTES);
    ts.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(this.now()))));
    const body = Buffer.concat([cipher.update(ts), cipher.update(payload), cipher.final()]);
    return Buffer.concat([Buffer.of(FORMAT_AES_GCM), nonce, body, cipher.getAuthTag()]);
  }

  /** Unwrap a message from the wire, or say why it is refused (and count it). Never throws. */
  open(kind: MessageKind, wire: Uint8Array): OpenResult {
    const r = this.tryOpen(kind, wire);
    if (!r.ok) {
      if (r.reason === 'malformed') this.stats.malformed++;
      else if (r.reason === 'decrypt') this.stats.decryptFailures++;
      else if (r.reason === 'plaintext') this.stats.plaintextRejected++;
      else if (r.reason === 'stale') this.stats.stale++;
      else this.stats.replayed++;
    }
    return r;
  }

  private tryOpen(kind: MessageKind, wire: Uint8Array): OpenResult {
    if (wire.length < 1) return { ok: false, reason: 'malformed' };
    const format = wire[0];
    if (format === FORMAT_PLAIN) {
      if (this.encrypted) return { ok: false, reason: 'plaintext' };
      return { ok: true, payload: wire.subarray(1) };
    }
    if (format !== FORMAT_AES_GCM) return { ok: false, reason: 'malformed' };
    if (!this.encrypted) return { ok: false, reason: 'decrypt' };
    if (wire.length < SEAL_OVERHEAD) return { ok: false, reason: 'malformed' };
    const buf = Buffer.from(wire.buffer, wire.byteOffset, wire.length);
    const nonce = buf.subarray(1, 1 + NONCE_BYTES);
    const body = buf.subarray(1 + NONCE_BYTES, buf.length - TAG_BYTES);
    const tag = buf.subarray(buf.length - TAG_BYTES);
    for (const key of this.keys) {
      let plain: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', key, nonce);
        d.setAAD(aad(kind));
        d.setAuthTag(tag);
        plain = Buffer.concat([d.update(body), d.final()]);
      } catch {
        continue; // not this key (or tampered): try the next one
      }
      const ts = Number(plain.readBigUInt64BE(0));
      const verdict = this.guard.check(Buffer.from(nonce), ts, this.now());
      if (verdict !== 'ok') return { ok: false, reason: verdict };
      return { ok: true, payload: plain.subarray(TS_BYTES) };
    }
    return { ok: false, reason: 'decrypt' };
  }
}

function aad(kind: MessageKind): Buffer {
  return Buffer.of(FORMAT_AES_GCM, KIND_BYTE[kind]);
}

function checkKey(k: Uint8Array, i: number): Buffer {
  if (!(k instanceof Uint8Array) || k.length !== KEY_BYTES)
    throw new Error(
      `secret key #${i + 1}: must be exactly ${KEY_BYTES} bytes (AES-256), got ${k?.length ?? typeof k}; ` +
        'generate one with: openssl rand -base64 32',
    );
  return Buffer.from(k);
}
