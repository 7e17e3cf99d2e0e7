// Hand-written protobuf encoding for the messages on the hot path (proto/groupcache.proto and
// proto/gossipcache.proto). A generic protobuf library allocates an object graph per message and
// walks reflection metadata; a peer fill must cost only a few microseconds on each end, so these
// functions compute the exact size, allocate once and write the fields directly. The output is plain
// protobuf (tested against protobufjs and a Python client), unknown fields are skipped on decode.

import { isUtf8 } from 'node:buffer';

/** groupcachepb.GetRequest, gossipcachepb.RemoveRequest. */
export interface KeyRequest {
  group: string;
  key: string;
  /**
   * Set by the decoder when the request must be refused with INVALID_ARGUMENT, saying why (a group or
   * key that is not valid UTF-8: decoding would replace the bad bytes with U+FFFD, and different keys
   * would then share one value).
   */
  invalid?: string;
}

/** groupcachepb.GetResponse. */
export interface GetResponse {
  value: Uint8Array;
  minuteQps: number;
  /** Absent (or 0) = no expiry. */
  ttlMs?: number;
}

/** gossipcachepb.FetchRequest. */
export interface FetchRequest {
  id: number;
  group: string;
  key: string;
  timeoutMs: number;
  cancel: boolean;
  /** W3C trace context of the caller's fetch span (fields 6 and 7; absent when not traced). */
  trace?: { traceparent?: string; tracestate?: string };
  /** Set by the decoder when the request must be answered INVALID_ARGUMENT: why (see KeyRequest). */
  invalid?: string;
  /** The handoff question (field 8): answer from the caches only. Absent = false. */
  handoff?: boolean;
}

/** gossipcachepb.PushEntry. */
export interface PushEntry {
  key: string;
  value: Uint8Array;
  /** Absent (or 0) = no expiry. */
  ttlMs?: number;
  minuteQps?: number;
}

/** gossipcachepb.PushRequest. */
export interface PushRequest {
  group: string;
  entries: PushEntry[];
}

/** gossipcachepb.PushResponse. */
export interface PushResponse {
  kept: number;
}

/** Longest `traceparent` / `tracestate` kept from a request (W3C: 55 chars; 32 members of ≤ 256). */
const MAX_TRACEPARENT_BYTES = 128;
const MAX_TRACESTATE_BYTES = 512;

/** gossipcachepb.FetchReply. */
export interface FetchReply {
  id: number;
  code: number;
  value: Uint8Array;
  minuteQps: number;
  /** Remaining ttl; on NOT_FOUND: how long the owner still remembers the NotFound (0 = not at all). */
  ttlMs: number;
  message: string;
  /** The value is past its ttl, answered from a stale window. Absent = false. */
  stale?: boolean;
  /** Time left in the stale-while-revalidate window, ms; absent/0 = none. */
  staleWhileRevalidateMs?: number;
  /** Time left in the stale-if-error window, ms; absent/0 = none. */
  staleIfErrorMs?: number;
  /** Time since the value was loaded or set, ms. */
  ageMs?: number;
  /**
   * On a failure: the name of the error when it is the node's own failed load (status.ts
   * Failure.loadError). Absent/empty = any other failure (and what nodes before it send).
   */
  loadError?: string;
}

/** gossipcachepb.SetRequest. */
export interface SetRequest {
  group: string;
  key: string;
  value: Uint8Array;
  /** 0 = never expires. */
  ttlMs: number;
  /** Set by the decoder when the request must be refused with INVALID_ARGUMENT: why (see KeyRequest). */
  invalid?: string;
}

const EMPTY = Buffer.alloc(0);
const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Thrown for bytes that are not a valid encoding of the expected message. */
export class DecodeError extends Error {
  override name = 'DecodeError';
}

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  n = Math.floor(n / 0x10000000);
  while (n > 0) {
    size++;
    n = Math.floor(n / 0x80);
  }
  return size;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[pos++] = n;
  return pos;
}

function lenFieldSize(tag: number, len: number): number {
  return varintSize(tag) + varintSize(len) + len;
}

/**
 * Non-negative integer for an int64 field, clamped to 2^53 - 1: anything larger (or Infinity) would be
 * written as a varint of more than 10 bytes or lose precision, and a client could not decode it.
 */
function int64(n: number | undefined): number {
  if (n === undefined || !(n > 0) || n === Number.POSITIVE_INFINITY) return 0;
  return n < Number.MAX_SAFE_INTEGER ? Math.floor(n) : Number.MAX_SAFE_INTEGER;
}

/** Non-negative integer for a uint32 field, clamped to 2^32 - 1. */
function uint32(n: number | undefined): number {
  if (n === undefined || !(n > 0)) return 0;
  return n < 0xffffffff ? Math.floor(n) : 0xffffffff;
}

/** Largest int64 ttl_ms a reply may carry: ≥ 2^63 is a negative int64 on the wire. */
const INT64_LIMIT = 2 ** 63;

/** A uint32 field as protobuf reads a longer varint: its low 32 bits. */
function low32(n: number): number {
  return n <= 0xffffffff ? n : n % 0x100000000;
}

/**
 * Bytes that decode to a string only when they are valid UTF-8. Node's decoder replaces invalid
 * sequences with U+FFFD, so a string without U+FFFD came from valid bytes (the common case, one scan);
 * one that has it is checked exactly (U+FFFD may also be sent on purpose, as EF BF BD).
 */
function utf8OrUndefined(buf: Buffer, s: number, e: number): string | undefined {
  const str = buf.toString('utf8', s, e);
  if (str.indexOf('\ufffd') === -1 || isUtf8(buf.subarray(s, e))) return str;
  return undefined;
}

class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly end: number = buf.length,
  ) {}

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError('truncated varint');
      const b = this.buf[this.pos++];
      // Beyond 2^53 precision is lost, which no field here can legitimately reach.
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
    }
    throw new DecodeError('varint longer than 10 bytes');
  }

  /** Start and end of a length-delimited field's bytes. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new DecodeError('length-delimited field runs past the message');
    this.pos = start + len;
    return [start, this.pos];
  }

  string(): string {
    const [s, e] = this.span();
    return this.buf.toString('utf8', s, e);
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new DecodeError('truncated double');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN:
        this.span();
        return;
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw new DecodeError(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new DecodeError('truncated fixed-width field');
  }
}

// ---- groupcachepb.GetRequest / gossipcachepb.RemoveRequest: group = 1, key = 2 ----

export function encodeKeyRequest(req: KeyRequest): Buffer {
  const g = Buffer.byteLength(req.group);
  const k = Buffer.byteLength(req.key);
  const buf = Buffer.allocUnsafe(lenFieldSize(1, g) + lenFieldSize(1, k));
  writeGroupKey(buf, req, g, k);
  return buf;
}

/**
 * Writes group = 1 and key = 2 at the start of `buf` (GetRequest, RemoveRequest, SetRequest), `g` and
 * `k` being their UTF-8 lengths (the caller sized the buffer with them). Returns the position after.
 */
function writeGroupKey(buf: Buffer, req: { group: string; key: string }, g: number, k: number): number {
  let pos = 0;
  buf[pos++] = 0x0a;
  pos = writeVarint(buf, pos, g);
  pos += buf.write(req.group, pos, 'utf8');
  buf[pos++] = 0x12;
  pos = writeVarint(buf, pos, k);
  return pos + buf.write(req.key, pos, 'utf8');
}

/** Invalid UTF-8 in the group or key does not throw: the request says why it is `invalid`. */
export function decodeKeyRequest(buf: Buffer): KeyRequest {
  const r = new Reader(buf);
  const req: KeyRequest = { group: '', key: '' };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a || tag === 0x12) readGroupOrKey(r, tag === 0x0a, req);
    else r.skip(tag & 7);
  }
  return req;
}

/**
 * Reads the length-delimited group (`isGroup`) or key field at `r` into `req`; bytes that are not
 * valid UTF-8 leave it as it was and make the request `invalid`, saying which.
 */
function readGroupOrKey(
  r: Reader,
  isGroup: boolean,
  req: { group: string; key: string; invalid?: string },
): void {
  const [s, e] = r.span();
  const str = utf8OrUndefined(r.buf, s, e);
  if (str === undefined) req.invalid = notUtf8(isGroup ? 'group' : 'key');
  else if (isGroup) req.group = str;
  else req.key = str;
}

function notUtf8(what: 'group' | 'key'): string {
  return `${what} is not valid UTF-8; send keys and group names as UTF-8 text (hash or encode binary keys)`;
}

// ---- groupcachepb.GetResponse: value = 1, minute_qps = 2, ttl_ms = 4 ----

export function encodeGetResponse(res: GetResponse): Buffer {
  const ttl = int64(res.ttlMs);
  const v = res.value.byteLength;
  const size = lenFieldSize(1, v) + (res.minuteQps ? 9 : 0) + (ttl ? 1 + varintSize(ttl) : 0);
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  buf[pos++] = 0x0a;
  pos = writeVarint(buf, pos, v);
  buf.set(res.value, pos);
  pos += v;
  if (res.minuteQps) {
    buf[pos++] = 0x11;
    pos = buf.writeDoubleLE(res.minuteQps, pos);
  }
  if (ttl) {
    buf[pos++] = 0x20;
    writeVarint(buf, pos, ttl);
  }
  return buf;
}

export function decodeGetResponse(buf: Buffer): GetResponse {
  const r = new Reader(buf);
  const res: GetResponse = { value: EMPTY, minuteQps: 0 };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a) {
      const [s, e] = r.span();
      res.value = buf.subarray(s, e);
    } else if (tag === 0x11) res.minuteQps = rate(r.double());
    else if (tag === 0x20) {
      const ttl = r.varint();
      if (ttl >= INT64_LIMIT) throw new DecodeError('ttl_ms is negative');
      res.ttlMs = ttl || undefined;
    } else r.skip(tag & 7);
  }
  return res;
}

// ---- gossipcachepb.FetchBatch { repeated FetchRequest requests = 1 } ----

/** Writes a length-delimited string field (`tag` byte, length, UTF-8). */
function writeString(buf: Buffer, pos: number, tag: number, s: string): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, Buffer.byteLength(s));
  return pos + buf.write(s, pos, 'utf8');
}

function fetchRequestSize(q: FetchRequest, g: number, k: number): number {
  let size = q.id ? 1 + varintSize(q.id) : 0;
  if (g) size += lenFieldSize(1, g);
  if (k) size += lenFieldSize(1, k);
  if (q.timeoutMs) size += 1 + varintSize(q.timeoutMs);
  if (q.cancel) size += 2;
  if (q.trace !== undefined) {
    if (q.trace.traceparent) size += lenFieldSize(1, Buffer.byteLength(q.trace.traceparent));
    if (q.trace.tracestate) size += lenFieldSize(1, Buffer.byteLength(q.trace.tracestate));
  }
  if (q.handoff) size += 2;
  return size;
}

/** Encoded size of one request inside a batch (for splitting batches under the message limit). */
export function fetchRequestBatchBytes(q: FetchRequest): number {
  const inner = fetchRequestSize(q, Buffer.byteLength(q.group), Buffer.byteLength(q.key));
  return 1 + varintSize(inner) + inner;
}

export function encodeFetchBatch(requests: readonly FetchRequest[]): Buffer {
  const sizes = new Array<number>(requests.length * 3);
  let total = 0;
  for (let i = 0; i < requests.length; i++) {
    const q = requests[i];
    q.id = uint32(q.id);
    q.timeoutMs = uint32(q.timeoutMs);
    const g = Buffer.byteLength(q.group);
    const k = Buffer.byteLength(q.key);
    const inner = fetchRequestSize(q, g, k);
    sizes[i * 3] = inner;
    sizes[i * 3 + 1] = g;
    sizes[i * 3 + 2] = k;
    total += 1 + varintSize(inner) + inner;
  }
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < requests.length; i++) {
    const q = requests[i];
    const g = sizes[i * 3 + 1];
    const k = sizes[i * 3 + 2];
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, sizes[i * 3]);
    if (q.id) {
      buf[pos++] = 0x08;
      pos = writeVarint(buf, pos, q.id);
    }
    if (g) {
      buf[pos++] = 0x12;
      pos = writeVarint(buf, pos, g);
      pos += buf.write(q.group, pos, 'utf8');
    }
    if (k) {
      buf[pos++] = 0x1a;
      pos = writeVarint(buf, pos, k);
      pos += buf.write(q.key, pos, 'utf8');
    }
    if (q.timeoutMs) {
      buf[pos++] = 0x20;
      pos = writeVarint(buf, pos, q.timeoutMs);
    }
    if (q.cancel) {
      buf[pos++] = 0x28;
      buf[pos++] = 1;
    }
    if (q.trace !== undefined) {
      if (q.trace.traceparent) pos = writeString(buf, pos, 0x32, q.trace.traceparent);
      if (q.trace.tracestate) pos = writeString(buf, pos, 0x3a, q.trace.tracestate);
    }
    if (q.handoff) {
      buf[pos++] = 0x40;
      buf[pos++] = 1;
    }
  }
  return buf;
}

/**
 * Reads at most `maxRequests` requests: a batch with more returns a `BatchRefused` instead, found by
 * counting entries without decoding them, so an oversized batch costs a scan and no allocation. One
 * entry that is malformed inside, or whose group or key is not UTF-8, comes back `invalid` (answered
 * INVALID_ARGUMENT alone); only broken framing of the batch itself throws DecodeError.
 */
export function decodeFetchBatch(
  buf: Buffer,
  maxRequests: number = Number.POSITIVE_INFINITY,
): FetchRequest[] | BatchRefused {
  const reader = new FetchBatchReader(buf);
  if (maxRequests !== Number.POSITIVE_INFINITY) {
    const n = reader.count();
    if (n > maxRequests) return new BatchRefused(n, maxRequests);
  }
  const out: FetchRequest[] = [];
  for (let q = reader.next(); q !== undefined; q = reader.next()) out.push(q);
  return out;
}

/**
 * A FetchBatch decoded one request at a time, so a server can take a large batch in slices between
 * other work instead of decoding it all at once. Requests come out as decodeFetchBatch makes them.
 */
export class FetchBatchReader {
  private readonly r: Reader;
  constructor(readonly buf: Buffer) {
    this.r = new Reader(buf);
  }

  /** Requests in the batch, by a scan of its framing that decodes nothing. Throws DecodeError. */
  count(): number {
    const r = new Reader(this.buf);
    let n = 0;
    while (r.pos < r.end) {
      const tag = r.varint();
      if (tag === 0x0a) n++;
      r.skip(tag & 7);
    }
    return n;
  }

  /** The next request, or undefined after the last. Throws DecodeError for broken batch framing. */
  next(): FetchRequest | undefined {
    const { r, buf } = this;
    while (r.pos < r.end) {
      const tag = r.varint();
      if (tag !== 0x0a) {
        r.skip(tag & 7);
        continue;
      }
      const [s, e] = r.span();
      const m = new Reader(buf, e);
      m.pos = s;
      const q: FetchRequest = { id: 0, group: '', key: '', timeoutMs: 0, cancel: false };
      try {
        while (m.pos < e) {
          const t = m.varint();
          if (t === 0x08) q.id = low32(m.varint());
          else if (t === 0x12 || t === 0x1a) readGroupOrKey(m, t === 0x12, q);
          else if (t === 0x20) q.timeoutMs = m.varint();
          else if (t === 0x28) q.cancel = m.varint() !== 0;
          else if (t === 0x40) {
            if (m.varint() !== 0) q.handoff = true;
          } else if (t === 0x32 || t === 0x3a) {
            // Trace context: kept only if short and UTF-8; anything else is dropped, never an error.
            const [fs, fe] = m.span();
            const str =
              fe - fs <= (t === 0x32 ? MAX_TRACEPARENT_BYTES : MAX_TRACESTATE_BYTES)
                ? utf8OrUndefined(buf, fs, fe)
                : undefined;
            if (str !== undefined && str !== '') {
              q.trace ??= {};
              if (t === 0x32) q.trace.traceparent = str;
              else q.trace.tracestate = str;
            }
          } else m.skip(t & 7);
        }
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        q.invalid = `malformed FetchRequest: ${err.message}`;
      }
      return q;
    }
    return undefined;
  }
}

/** What decodeFetchBatch returns for a batch over its request limit (the stream is then refused). */
export class BatchRefused {
  constructor(
    readonly requests: number,
    readonly limit: number,
  ) {}
  get message(): string {
    return (
      `a FetchBatch message carried ${this.requests} requests, over this node's limit of ${this.limit} ` +
      'per message; send at most that many per message'
    );
  }
}

// ---- gossipcachepb.FetchReplyBatch { repeated FetchReply replies = 1 } ----

function fetchReplySize(p: FetchReply, msg: number, loadError: number): number {
  let size = p.id ? 1 + varintSize(p.id) : 0;
  if (p.code) size += 1 + varintSize(p.code);
  if (p.value.byteLength) size += lenFieldSize(1, p.value.byteLength);
  if (p.minuteQps) size += 9;
  if (p.ttlMs) size += 1 + varintSize(p.ttlMs);
  if (msg) size += lenFieldSize(1, msg);
  if (p.stale) size += 2;
  if (p.staleWhileRevalidateMs) size += 1 + varintSize(p.staleWhileRevalidateMs);
  if (p.staleIfErrorMs) size += 1 + varintSize(p.staleIfErrorMs);
  if (p.ageMs) size += 1 + varintSize(p.ageMs);
  if (loadError) size += lenFieldSize(1, loadError);
  return size;
}

function loadErrorBytes(p: FetchReply): number {
  return p.loadError ? Buffer.byteLength(p.loadError) : 0;
}

/** Encoded size of one reply inside a batch (for splitting batches under the message limit). */
export function fetchReplyBatchBytes(p: FetchReply): number {
  const inner = fetchReplySize(p, p.message ? Buffer.byteLength(p.message) : 0, loadErrorBytes(p));
  return 1 + varintSize(inner) + inner;
}

export function encodeFetchReplyBatch(replies: readonly FetchReply[]): Buffer {
  const sizes = new Array<number>(replies.length * 3);
  let total = 0;
  for (let i = 0; i < replies.length; i++) {
    const p = replies[i];
    p.id = uint32(p.id);
    p.code = uint32(p.code);
    p.ttlMs = int64(p.ttlMs);
    if (p.staleWhileRevalidateMs) p.staleWhileRevalidateMs = int64(p.staleWhileRevalidateMs);
    if (p.staleIfErrorMs) p.staleIfErrorMs = int64(p.staleIfErrorMs);
    if (p.ageMs) p.ageMs = int64(p.ageMs);
    const msg = p.message ? Buffer.byteLength(p.message) : 0;
    const le = loadErrorBytes(p);
    const inner = fetchReplySize(p, msg, le);
    sizes[i * 3] = inner;
    sizes[i * 3 + 1] = msg;
    sizes[i * 3 + 2] = le;
    total += 1 + varintSize(inner) + inner;
  }
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < replies.length; i++) {
    const p = replies[i];
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, sizes[i * 3]);
    if (p.id) {
      buf[pos++] = 0x08;
      pos = writeVarint(buf, pos, p.id);
    }
    if (p.code) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, p.code);
    }
    const v = p.value.byteLength;
    if (v) {
      buf[pos++] = 0x1a;
      pos = writeVarint(buf, pos, v);
      buf.set(p.value, pos);
      pos += v;
    }
    if (p.minuteQps) {
      buf[pos++] = 0x21;
      pos = buf.writeDoubleLE(p.minuteQps, pos);
    }
    if (p.ttlMs) {
      buf[pos++] = 0x28;
      pos = writeVarint(buf, pos, p.ttlMs);
    }
    const msg = sizes[i * 3 + 1];
    if (msg) {
      buf[pos++] = 0x32;
      pos = writeVarint(buf, pos, msg);
      pos += buf.write(p.message, pos, 'utf8');
    }
    if (p.stale) {
      buf[pos++] = 0x38;
      buf[pos++] = 1;
    }
    if (p.staleWhileRevalidateMs) {
      buf[pos++] = 0x40;
      pos = writeVarint(buf, pos, p.staleWhileRevalidateMs);
    }
    if (p.staleIfErrorMs) {
      buf[pos++] = 0x48;
      pos = writeVarint(buf, pos, p.staleIfErrorMs);
    }
    if (p.ageMs) {
      buf[pos++] = 0x50;
      pos = writeVarint(buf, pos, p.ageMs);
    }
    const le = sizes[i * 3 + 2];
    if (le) {
      buf[pos++] = 0x5a;
      pos = writeVarint(buf, pos, le);
      pos += buf.write(p.loadError as string, pos, 'utf8');
    }
  }
  return buf;
}

/**
 * Values of a batch with one reply are views into the received message; with several they are
 * copied, so a small value kept in a cache does not pin a large batch's buffer in memory.
 *
 * Each reply is decoded on its own: one that is malformed inside (a bad varint, a negative ttl_ms)
 * becomes a failure of its own request (code INTERNAL, saying why) and spoils nothing else in the
 * batch. Only broken framing of the batch itself throws DecodeError (the stream then fails).
 */
export function decodeFetchReplyBatch(buf: Buffer): FetchReply[] {
  const r = new Reader(buf);
  const out: FetchReply[] = [];
  const spans: number[] = [];
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag !== 0x0a) {
      r.skip(tag & 7);
      continue;
    }
    const [s, e] = r.span();
    const m = new Reader(buf, e);
    m.pos = s;
    const p: FetchReply = {
      id: 0,
      code: 0,
      value: EMPTY,
      minuteQps: 0,
      ttlMs: 0,
      message: '',
      stale: false,
      staleWhileRevalidateMs: 0,
      staleIfErrorMs: 0,
      ageMs: 0,
    };
    const nspans = spans.length;
    try {
      while (m.pos < e) {
        const t = m.varint();
        if (t === 0x08) p.id = low32(m.varint());
        else if (t === 0x10) p.code = m.varint();
        else if (t === 0x1a) {
          const [vs, ve] = m.span();
          spans.push(out.length, vs, ve);
        } else if (t === 0x21) p.minuteQps = rate(m.double());
        else if (t === 0x28) {
          p.ttlMs = m.varint();
          if (p.ttlMs >= INT64_LIMIT) throw new DecodeError('ttl_ms is negative');
        } else if (t === 0x32) p.message = m.string();
        else if (t === 0x38) p.stale = m.varint() !== 0;
        else if (t === 0x40) p.staleWhileRevalidateMs = int64Field(m, 'stale_while_revalidate_ms');
        else if (t === 0x48) p.staleIfErrorMs = int64Field(m, 'stale_if_error_ms');
        else if (t === 0x50) p.ageMs = int64Field(m, 'age_ms');
        else if (t === 0x5a) p.loadError = m.string();
        else m.skip(t & 7);
      }
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      spans.length = nspans;
      p.code = CODE_INTERNAL;
      p.value = EMPTY;
      p.minuteQps = 0;
      p.ttlMs = 0;
      p.stale = false;
      p.staleWhileRevalidateMs = 0;
      p.staleIfErrorMs = 0;
      p.ageMs = 0;
      p.loadError = undefined;
      p.message = `the peer's reply could not be decoded: ${err.message}`;
    }
    // Not a uint32 (protobuf would keep its low 32 bits, which may read as 0 = OK): a failure.
    if (p.code > 0xffffffff) p.code = CODE_INTERNAL;
    out.push(p);
  }
  const copy = out.length > 1;
  for (let i = 0; i < spans.length; i += 3) {
    const view = buf.subarray(spans[i + 1], spans[i + 2]);
    out[spans[i]].value = copy ? Buffer.from(view) : view;
  }
  return out;
}

/**
 * A peer's minute_qps as the hot-key policy can use it: NaN, Infinity or a negative rate from a broken
 * or hostile peer would poison the hot cache's rate comparisons, so they read as 0 (no estimate).
 */
function rate(v: number): number {
  return v >= 0 && v !== Number.POSITIVE_INFINITY ? v : 0;
}

/** A non-negative int64 field (a negative one is malformed: durations here are never negative). */
function int64Field(m: Reader, name: string): number {
  const v = m.varint();
  if (v >= INT64_LIMIT) throw new DecodeError(`${name} is negative`);
  return v;
}

// ---- gossipcachepb.SetRequest: group = 1, key = 2, value = 3, ttl_ms = 4 ----

export function encodeSetRequest(req: SetRequest): Buffer {
  const g = Buffer.byteLength(req.group);
  const k = Buffer.byteLength(req.key);
  const v = req.value.byteLength;
  const ttl = int64(req.ttlMs);
  const buf = Buffer.allocUnsafe(
    lenFieldSize(1, g) + lenFieldSize(1, k) + lenFieldSize(1, v) + (ttl ? 1 + varintSize(ttl) : 0),
  );
  let pos = writeGroupKey(buf, req, g, k);
  buf[pos++] = 0x1a;
  pos = writeVarint(buf, pos, v);
  buf.set(req.value, pos);
  pos += v;
  if (ttl) {
    buf[pos++] = 0x20;
    writeVarint(buf, pos, ttl);
  }
  return buf;
}

/** The value is a view into `buf` (the server copies it when it stores it). */
export function decodeSetRequest(buf: Buffer): SetRequest {
  const r = new Reader(buf);
  const req: SetRequest = { group: '', key: '', value: EMPTY, ttlMs: 0 };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a || tag === 0x12) readGroupOrKey(r, tag === 0x0a, req);
    else if (tag === 0x1a) {
      const [s, e] = r.span();
      req.value = buf.subarray(s, e);
    } else if (tag === 0x20) {
      // A negative ttl is the caller's mistake, answered INVALID_ARGUMENT as the proto says; thrown, it
      // would reach the caller as grpc-js's INTERNAL "Error deserializing request".
      const ttl = r.varint();
      if (ttl >= INT64_LIMIT) req.invalid = 'ttl_ms is negative: send 0 (no expiry) or a positive ttl';
      else req.ttlMs = ttl;
    } else r.skip(tag & 7);
  }
  return req;
}

/** grpc status INTERNAL (the codec does not depend on grpc-js). */
const CODE_INTERNAL = 13;

// ---- gossipcachepb.PushRequest { group = 1, repeated PushEntry entries = 2 } ----
// PushEntry { key = 1, value = 2, ttl_ms = 3, minute_qps = 4 }. Off the hot path (a leaving node's
// batches), so clarity over speed.

function pushEntrySize(e: PushEntry, k: number, ttl: number): number {
  return (
    lenFieldSize(1, k) +
    lenFieldSize(1, e.value.byteLength) +
    (ttl ? 1 + varintSize(ttl) : 0) +
    (e.minuteQps ? 9 : 0)
  );
}

export function encodePushRequest(req: PushRequest): Buffer {
  const g = Buffer.byteLength(req.group);
  const sizes = req.entries.map((e) => {
    const k = Buffer.byteLength(e.key);
    const ttl = int64(e.ttlMs);
    return { k, ttl, inner: pushEntrySize(e, k, ttl) };
  });
  let total = lenFieldSize(1, g);
  for (const z of sizes) total += lenFieldSize(1, z.inner);
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  buf[pos++] = 0x0a;
  pos = writeVarint(buf, pos, g);
  pos += buf.write(req.group, pos, 'utf8');
  for (let i = 0; i < req.entries.length; i++) {
    const e = req.entries[i];
    const { k, ttl, inner } = sizes[i];
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, inner);
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, k);
    pos += buf.write(e.key, pos, 'utf8');
    buf[pos++] = 0x12;
    pos = writeVarint(buf, pos, e.value.byteLength);
    buf.set(e.value, pos);
    pos += e.value.byteLength;
    if (ttl) {
      buf[pos++] = 0x18;
      pos = writeVarint(buf, pos, ttl);
    }
    if (e.minuteQps) {
      buf[pos++] = 0x21;
      pos = buf.writeDoubleLE(e.minuteQps, pos);
    }
  }
  return buf;
}

/** Values are views into `buf`: the receiver copies what it keeps. */
export function decodePushRequest(buf: Buffer): PushRequest {
  const r = new Reader(buf);
  const req: PushRequest = { group: '', entries: [] };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x0a) {
      // A group name that is not valid UTF-8 is left empty: no group has that name.
      const [s, e] = r.span();
      req.group = utf8OrUndefined(buf, s, e) ?? '';
    } else if (tag === 0x12) {
      const [s, e] = r.span();
      const m = new Reader(buf, e);
      m.pos = s;
      const entry: PushEntry = { key: '', value: EMPTY };
      while (m.pos < e) {
        const t = m.varint();
        if (t === 0x0a) {
          // A key that is not valid UTF-8 is left empty: the receiver skips the entry.
          const [ks, ke] = m.span();
          entry.key = utf8OrUndefined(buf, ks, ke) ?? '';
        } else if (t === 0x12) {
          const [vs, ve] = m.span();
          entry.value = buf.subarray(vs, ve);
        } else if (t === 0x18) entry.ttlMs = m.varint() || undefined;
        else if (t === 0x21) entry.minuteQps = rate(m.double());
        else m.skip(t & 7);
      }
      req.entries.push(entry);
    } else r.skip(tag & 7);
  }
  return req;
}

export function encodePushResponse(res: PushResponse): Buffer {
  const kept = uint32(res.kept);
  if (!kept) return EMPTY;
  const buf = Buffer.allocUnsafe(1 + varintSize(kept));
  buf[0] = 0x08;
  writeVarint(buf, 1, kept);
  return buf;
}

export function decodePushResponse(buf: Buffer): PushResponse {
  const r = new Reader(buf);
  const res: PushResponse = { kept: 0 };
  while (r.pos < r.end) {
    const tag = r.varint();
    if (tag === 0x08) res.kept = r.varint();
    else r.skip(tag & 7);
  }
  return res;
}

/** gossipcachepb.RemoveResponse and other empty messages. */
export const encodeEmpty = (_: unknown): Buffer => EMPTY;
export const decodeEmpty = (_: Buffer): Record<string, never> => ({});
