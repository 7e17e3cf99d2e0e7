// Named protocol messages and their binary codec. Everything that arrives from the network goes
// through decodePacket / decodeStream, which validate strictly (exact lengths, known types, valid
// UTF-8, size limits) and never throw: bad input yields `{ ok: false, error }` and the caller drops
// and counts it. Encoding is big-endian, length-prefixed; no field is optional.
//
// Datagram:  'G' 0x01 then messages, each  [type u8][len u16][body]
// Stream:    'G' 0x02 then one message     [type u8][len u32][body]

import type { MemberState } from './types.js';

export const MAGIC = 0x47; // 'G'
export const PACKET_VERSION = 0x01;
export const STREAM_VERSION = 0x02;
/** Largest stream message accepted (a push-pull of ~20k members). */
export const MAX_STREAM_BYTES = 16 * 1024 * 1024;
/** Longest node id / address, UTF-8 bytes. */
export const MAX_ID_BYTES = 255;
/** Most metadata entries per member. */
export const MAX_META_ENTRIES = 64;
/** Hard codec limit of one member's encoded metadata (Swim enforces its smaller config.maxMetaBytes). */
export const MAX_META_BYTES_CODEC = 4096;
/** Bytes of a datagram header and of one message frame header. */
export const PACKET_HEADER_BYTES = 2;
export const FRAME_HEADER_BYTES = 3;

export enum MsgType {
  Ping = 1,
  IndirectPing = 2,
  Ack = 3,
  Nack = 4,
  Alive = 5,
  Suspect = 6,
  Dead = 7,
  Left = 8,
  PushPull = 9,
}

/** Direct probe. `targetId` lets a new process at a reused address refuse to answer for an old id. */
export interface Ping {
  type: MsgType.Ping;
  seq: number;
  targetId: string;
  sourceId: string;
  sourceAddr: string;
}
/** Ask the receiver to probe `targetAddr` for us and forward the ack (and a nack if it gets none). */
export interface IndirectPing {
  type: MsgType.IndirectPing;
  seq: number;
  targetId: string;
  targetAddr: string;
  nack: boolean;
  sourceId: string;
  sourceAddr: string;
}
export interface Ack {
  type: MsgType.Ack;
  seq: number;
}
/** Lifeguard: the relay is alive but the target did not answer it either. */
export interface Nack {
  type: MsgType.Nack;
  seq: number;
}
export interface Alive {
  type: MsgType.Alive;
  id: string;
  addr: string;
  meta: Record<string, string>;
  generation: number;
  incarnation: number;
}
export interface Suspect {
  type: MsgType.Suspect;
  id: string;
  generation: number;
  incarnation: number;
  from: string;
}
export interface Dead {
  type: MsgType.Dead;
  id: string;
  generation: number;
  incarnation: number;
  from: string;
}
/** Graceful departure, announced by the member itself. */
export interface Left {
  type: MsgType.Left;
  id: string;
  generation: number;
  incarnation: number;
}
/** One member in a full-state exchange. */
export interface MemberRecord {
  id: string;
  addr: string;
  meta: Record<string, string>;
  generation: number;
  incarnation: number;
  state: MemberState;
}
/** Full-state exchange over the stream path (request and reply have the same shape). */
export interface PushPull {
  type: MsgType.PushPull;
  join: boolean;
  sourceId: string;
  members: MemberRecord[];
}

export type Message = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead | Left | PushPull;
export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: string };

const STATES: MemberState[] = ['alive', 'suspect', 'dead', 'left'];
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// ---- writing ----

/** Most ids, addresses and metadata are ASCII: skip TextEncoder/TextDecoder for them (hot in big clusters). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

class Writer {
  private buf: Uint8Array;
  private view: DataView;
  len = 0;
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.need(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.need(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
  }
  u32(v: number): void {
    this.need(4);
    this.view.setUint32(this.len, v >>> 0);
    this.len += 4;
  }
  /** 48-bit unsigned (ms timestamps). */
  u48(v: number): void {
    this.u16(Math.floor(v / 2 ** 32) & 0xffff);
    this.u32(v % 2 ** 32);
  }
  bytes(b: Uint8Array): void {
    this.need(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** u8 length + UTF-8. */
  str8(s: string): void {
    if (s.length <= 255 && isAscii(s)) {
      this.u8(s.length);
      this.ascii(s);
      return;
    }
    const b = utf8.encode(s);
    if (b.length > 255) throw new RangeError(`string of ${b.length} bytes exceeds 255: ${s.slice(0, 40)}…`);
    this.u8(b.length);
    this.bytes(b);
  }
  /** u16 length + UTF-8. */
  str16(s: string): void {
    if (s.length <= 0xffff && isAscii(s)) {
      this.u16(s.length);
      this.ascii(s);
      return;
    }
    const b = utf8.encode(s);
    if (b.length > 0xffff) throw new RangeError(`string of ${b.length} bytes exceeds 65535`);
    this.u16(b.length);
    this.bytes(b);
  }
  private ascii(s: string): void {
    this.need(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i);
  }
  setU16(at: number, v: number): void {
    this.view.setUint16(at, v);
  }
  setU32(at: number, v: number): void {
    this.view.setUint32(at, v);
  }
  done(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writeMeta(w: Writer, meta: Record<string, string>): void {
  const keys = Object.keys(meta);
  if (keys.length > MAX_META_ENTRIES)
    throw new RangeError(`metadata has ${keys.length} entries, max ${MAX_META_ENTRIES}`);
  const start = w.len;
  w.u16(0);
  w.u8(keys.length);
  for (const k of keys) {
    w.str8(k);
    w.str16(String(meta[k]));
  }
  const size = w.len - start - 2;
  if (size > MAX_META_BYTES_CODEC)
    throw new RangeError(`metadata encodes to ${size} bytes, max ${MAX_META_BYTES_CODEC}`);
  w.setU16(start, size);
}

function writeRecord(w: Writer, r: MemberRecord): void {
  w.str8(r.id);
  w.str8(r.addr);
  writeMeta(w, r.meta);
  w.u48(r.generation);
  w.u32(r.incarnation);
  w.u8(STATES.indexOf(r.state));
}

function writeBody(w: Writer, m: Message): void {
  switch (m.type) {
    case MsgType.Ping:
      w.u32(m.seq);
      w.str8(m.targetId);
      w.str8(m.sourceId);
      w.str8(m.sourceAddr);
      return;
    case MsgType.IndirectPing:
      w.u32(m.seq);
      w.str8(m.targetId);
      w.str8(m.targetAddr);
      w.u8(m.nack ? 1 : 0);
      w.str8(m.sourceId);
      w.str8(m.sourceAddr);
      return;
    case MsgType.Ack:
    case MsgType.Nack:
      w.u32(m.seq);
      return;
    case MsgType.Alive:
      w.str8(m.id);
      w.str8(m.addr);
      writeMeta(w, m.meta);
      w.u48(m.generation);
      w.u32(m.incarnation);
      return;
    case MsgType.Suspect:
    case MsgType.Dead:
      w.str8(m.id);
      w.u48(m.generation);
      w.u32(m.incarnation);
      w.str8(m.from);
      return;
    case MsgType.Left:
      w.str8(m.id);
      w.u48(m.generation);
      w.u32(m.incarnation);
      return;
    case MsgType.PushPull:
      w.u8(m.join ? 1 : 0);
      w.str8(m.sourceId);
      w.u32(m.members.length);
      for (const r of m.members) writeRecord(w, r);
      return;
  }
}

/**
 * One message framed for a datagram: [type][len u16][body]. Throws RangeError when a field is out of
 * range (our own data: a bug or oversize metadata), never for network input.
 */
export function encodeFrame(m: Message): Uint8Array {
  const w = new Writer(64);
  w.u8(m.type);
  w.u16(0);
  writeBody(w, m);
  const len = w.len - FRAME_HEADER_BYTES;
  if (len > 0xffff) throw new RangeError(`message of ${len} bytes does not fit a datagram frame`);
  w.setU16(1, len);
  return w.done();
}

/** A datagram from frames made by encodeFrame. */
export function assemblePacket(frames: Uint8Array[]): Uint8Array {
  let size = PACKET_HEADER_BYTES;
  for (const f of frames) size += f.length;
  const out = new Uint8Array(size);
  out[0] = MAGIC;
  out[1] = PACKET_VERSION;
  let at = PACKET_HEADER_BYTES;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

export function encodePacket(msgs: Message[]): Uint8Array {
  return assemblePacket(msgs.map(encodeFrame));
}

/** One message for the stream path: 'G' 0x02 [type][len u32][body]. */
export function encodeStream(m: Message): Uint8Array {
  const w = new Writer(256);
  w.u8(MAGIC);
  w.u8(STREAM_VERSION);
  w.u8(m.type);
  w.u32(0);
  writeBody(w, m);
  w.setU32(3, w.len - 7);
  return w.done();
}

/** Encoded size of metadata (what maxMetaBytes limits). Throws RangeError past the codec limits. */
export function metaSize(meta: Record<string, string>): number {
  const w = new Writer(64);
  writeMeta(w, meta);
  return w.len - 2;
}

// ---- reading ----

class DecodeError extends Error {}

class Reader {
  private readonly view: DataView;
  at: number;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.at = start;
  }
  private need(n: number, what: string): void {
    if (this.at + n > this.end) throw new DecodeError(`truncated ${what} at byte ${this.at}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.at++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.at);
    this.at += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.at);
    this.at += 4;
    return v;
  }
  u48(what: string): number {
    const hi = this.u16(what);
    return hi * 2 ** 32 + this.u32(what);
  }
  private text(len: number, what: string): string {
    this.need(len, what);
    if (len <= 64) {
      let ascii = true;
      for (let i = this.at; i < this.at + len; i++) {
        if (this.buf[i] > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        const out = String.fromCharCode.apply(
          null,
          this.buf.subarray(this.at, this.at + len) as unknown as number[],
        );
        this.at += len;
        return out;
      }
    }
    try {
      return strictUtf8.decode(this.buf.subarray(this.at, (this.at += len)));
    } catch {
      throw new DecodeError(`${what} is not valid UTF-8`);
    }
  }
  str8(what: string, nonEmpty = false): string {
    const len = this.u8(what);
    if (nonEmpty && len === 0) throw new DecodeError(`empty ${what}`);
    return this.text(len, what);
  }
  str16(what: string): string {
    return this.text(this.u16(what), what);
  }
}

function readMeta(r: Reader): Record<string, string> {
  const size = r.u16('metadata size');
  if (size > MAX_META_BYTES_CODEC)
    throw new DecodeError(`metadata of ${size} bytes exceeds ${MAX_META_BYTES_CODEC}`);
  const end = r.at + size;
  if (end > r.end) throw new DecodeError('truncated metadata');
  const n = r.u8('metadata count');
  if (n > MAX_META_ENTRIES) throw new DecodeError(`metadata has ${n} entries, max ${MAX_META_ENTRIES}`);
  // A plain object; a key such as "__proto__" is stored as data, never as the prototype.
  const meta: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const k = r.str8('metadata key', true);
    if (Object.hasOwn(meta, k)) throw new DecodeError(`duplicate metadata key ${JSON.stringify(k)}`);
    const v = r.str16('metadata value');
    if (k === '__proto__')
      Object.defineProperty(meta, k, { value: v, enumerable: true, writable: true, configurable: true });
    else meta[k] = v;
  }
  if (r.at !== end) throw new DecodeError('metadata size does not match its entries');
  return meta;
}

function readBody(r: Reader, type: number): Message {
  switch (type) {
    case MsgType.Ping:
      return {
        type,
        seq: r.u32('seq'),
        targetId: r.str8('target id'),
        sourceId: r.str8('source id', true),
        sourceAddr: r.str8('source addr', true),
      };
    case MsgType.IndirectPing: {
      const seq = r.u32('seq');
      const targetId = r.str8('target id', true);
      const targetAddr = r.str8('target addr', true);
      const nack = r.u8('nack flag');
      if (nack > 1) throw new DecodeError('nack flag is not 0 or 1');
      return {
        type,
        seq,
        targetId,
        targetAddr,
        nack: nack === 1,
        sourceId: r.str8('source id', true),
        sourceAddr: r.str8('source addr', true),
      };
    }
    case MsgType.Ack:
    case MsgType.Nack:
      return { type, seq: r.u32('seq') };
    case MsgType.Alive:
      return {
        type,
        id: r.str8('id', true),
        addr: r.str8('addr', true),
        meta: readMeta(r),
        generation: r.u48('generation'),
        incarnation: r.u32('incarnation'),
      };
    case MsgType.Suspect:
    case MsgType.Dead:
      return {
        type,
        id: r.str8('id', true),
        generation: r.u48('generation'),
        incarnation: r.u32('incarnation'),
        from: r.str8('from', true),
      };
    case MsgType.Left:
      return {
        type,
        id: r.str8('id', true),
        generation: r.u48('generation'),
        incarnation: r.u32('incarnation'),
      };
    case MsgType.PushPull: {
      const join = r.u8('join flag');
      if (join > 1) throw new DecodeError('join flag is not 0 or 1');
      const sourceId = r.str8('source id', true);
      const count = r.u32('member count');
      // Each record takes at least 1+1+1+2+1+6+4+1 bytes: reject absurd counts before allocating.
      if (count * 17 > r.end - r.at) throw new DecodeError(`member count ${count} exceeds the message size`);
      const members: MemberRecord[] = [];
      for (let i = 0; i < count; i++) {
        const id = r.str8('member id', true);
        const addr = r.str8('member addr', true);
        const meta = readMeta(r);
        const generation = r.u48('member generation');
        const incarnation = r.u32('member incarnation');
        const s = r.u8('member state');
        if (s >= STATES.length) throw new DecodeError(`unknown member state ${s}`);
        members.push({ id, addr, meta, generation, incarnation, state: STATES[s] });
      }
      return { type, join: join === 1, sourceId, members };
    }
    default:
      throw new DecodeError(`unknown message type ${type}`);
  }
}

/** Decode a datagram into its messages. Rejects the whole datagram on any defect. Never throws. */
export function decodePacket(data: Uint8Array): DecodeResult<Message[]> {
  try {
    if (!(data instanceof Uint8Array)) throw new DecodeError('not bytes');
    if (data.length < PACKET_HEADER_BYTES) throw new DecodeError('truncated header');
    if (data[0] !== MAGIC) throw new DecodeError('bad magic');
    if (data[1] !== PACKET_VERSION) throw new DecodeError(`unsupported packet version ${data[1]}`);
    const out: Message[] = [];
    let at = PACKET_HEADER_BYTES;
    if (at === data.length) throw new DecodeError('empty packet');
    while (at < data.length) {
      const head = new Reader(data, at, data.length);
      const type = head.u8('frame type');
      const len = head.u16('frame length');
      const end = head.at + len;
      if (end > data.length) throw new DecodeError(`truncated frame of type ${type}`);
      if (type === MsgType.PushPull) throw new DecodeError('push-pull is only valid on the stream path');
      const r = new Reader(data, head.at, end);
      out.push(readBody(r, type));
      if (r.at !== end) throw new DecodeError(`frame of type ${type} has ${end - r.at} trailing bytes`);
      at = end;
    }
    return { ok: true, value: out };
  } catch (err) {
    return { ok: false, error: err instanceof DecodeError ? err.message : `decode failed: ${String(err)}` };
  }
}

/** Decode one stream message. Never throws. */
export function decodeStream(data: Uint8Array): DecodeResult<Message> {
  try {
    if (!(data instanceof Uint8Array)) throw new DecodeError('not bytes');
    if (data.length > MAX_STREAM_BYTES)
      throw new DecodeError(`stream message of ${data.length} bytes exceeds ${MAX_STREAM_BYTES}`);
    const head = new Reader(data, 0, data.length);
    if (head.u8('magic') !== MAGIC) throw new DecodeError('bad magic');
    const version = head.u8('version');
    if (version !== STREAM_VERSION) throw new DecodeError(`unsupported stream version ${version}`);
    const type = head.u8('type');
    const len = head.u32('length');
    if (head.at + len !== data.length)
      throw new DecodeError(`stream length ${len} does not match ${data.length - head.at} bytes`);
    const r = new Reader(data, head.at, data.length);
    const m = readBody(r, type);
    if (r.at !== data.length)
      throw new DecodeError(`stream message has ${data.length - r.at} trailing bytes`);
    return { ok: true, value: m };
  } catch (err) {
    return { ok: false, error: err instanceof DecodeError ? err.message : `decode failed: ${String(err)}` };
  }
}
