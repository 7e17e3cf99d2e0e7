// An incremental parser of memcached's text protocol (the server side): it frames a byte stream into
// command lines and data blocks, tokenizes, validates the arguments memcached validates, and hands each
// command to a sink, in order. It never throws on input: malformed input becomes the reply memcached
// gives (`ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`), plus "close" when the stream can no longer be
// followed (a line over the limit, a storage command whose data length is unreadable).
//
// No npm package fits: the memcached packages on npm are clients (they parse replies, not commands),
// and the server-side ones (e.g. memcached-server-like mocks) keep whole lines as strings, split them with
// regular expressions and have no limits. This one is bounded — a line is at most `maxLineBytes` (a longer
// get/gets line is handed over in batches of the keys in each `maxLineBytes` of it, see `more`), a value
// at most `maxValueBytes`, and value bytes a connection may hold at once come from a budget shared by
// every connection — and allocation-light on the hit path: a `get <key>` costs one string (the key).
//
// Bytes held per connection: the unparsed rest of the last chunk (≤ one socket read + one partial
// line), or the chunks of one data block as they arrive (≤ its declared length + 2 + one read).

import { isUtf8 } from 'node:buffer';

/** Longest key memcached accepts (bytes). */
export const MAX_KEY_BYTES = 250;
/** memcached's own line limit for non-get commands is ~2 KiB; get lines carry many keys, so more. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024;
/** memcached's exptime boundary: larger values are absolute unix times. */
export const RELATIVE_EXPTIME_MAX_S = 60 * 60 * 24 * 30;

export type CommandName =
  | 'get'
  | 'gets'
  | 'gat'
  | 'gats'
  | 'set'
  | 'add'
  | 'replace'
  | 'append'
  | 'prepend'
  | 'cas'
  | 'delete'
  | 'touch'
  | 'incr'
  | 'decr'
  | 'version'
  | 'stats'
  | 'quit'
  | 'flush_all'
  | 'verbosity';

/**
 * Value bytes all connections may hold in partly received data blocks, together. Taken as the bytes arrive,
 * not when a command declares its length: a declaration costs the client nothing to send (195 bytes of
 * `set … 8388000` on 8 connections reserved the whole 64 MiB and every other client's set failed).
 */
export interface ValueBudget {
  /** Takes `n` bytes; false (nothing taken) when that would go over the budget. */
  take(n: number): boolean;
  give(n: number): void;
}

/** An unbounded budget (tests, benches). */
export const unlimitedBudget: ValueBudget = { take: () => true, give: () => {} };

export interface ParserLimits {
  /** Longest command line (without its `\r\n`). Default DEFAULT_MAX_LINE_BYTES. */
  maxLineBytes?: number;
  /** Longest value of a storage command; longer ones answer `SERVER_ERROR object too large for cache`. */
  maxValueBytes: number;
  /** Shared by every connection of a server. Default unlimited. */
  budget?: ValueBudget;
}

/** Where parsed commands and protocol errors go. Called synchronously, in stream order. */
export interface ParserSink {
  /**
   * One valid command; read its fields from the parser (`cmd`, `keys`, `keyCount`, `flags`, …) during
   * the call only: `value` is a view of the input and the key arrays are reused. Set `parser.paused`
   * to stop parsing after this command (backpressure); `parser.resume()` continues.
   */
  command(p: MemcachedParser): void;
  /**
   * A protocol error; `reply` is the line to answer (without `\r\n`). With `close` the connection must
   * be closed after the reply: the parser has stopped for good.
   */
  protocolError(reply: string, close: boolean): void;
}

enum State {
  Line,
  Data,
  Swallow,
  Closed,
}

const EMPTY = Buffer.alloc(0);
/**
 * ASCII bytes to a string. Buffer.prototype.latin1Slice (there in Node 20, not in its type definitions) is
 * what toString('latin1', s, e) calls after checking its arguments: ~5 % of a hit. Falls back if it goes.
 */
type LatinSlice = Buffer & { latin1Slice(start: number, end: number): string };
const HAS_LATIN1_SLICE = typeof (EMPTY as Partial<LatinSlice>).latin1Slice === 'function';
const MAX_TOKENS = 8; // the longest non-get command: cas <key> <flags> <exptime> <bytes> <cas> noreply
const BAD_FORMAT = 'CLIENT_ERROR bad command line format';

export class MemcachedParser {
  // ── The current command (valid during sink.command only) ──
  cmd: CommandName = 'get';
  /** Keys of the command (get/gets: all of them; others: keys[0]); first keyCount entries are valid. */
  readonly keys: string[] = [];
  keyCount = 0;
  /** The buffer holding the current line, and each key's byte range in it (to echo keys without encoding). */
  line: Buffer = EMPTY;
  readonly keyStart: number[] = [];
  readonly keyEnd: number[] = [];
  flags = 0;
  /** Seconds as sent (see RELATIVE_EXPTIME_MAX_S for what it means). */
  exptime = 0;
  noreply = false;
  /** Data block of a storage command: a VIEW of the input, valid during the call only. */
  value: Buffer = EMPTY;
  /** `cas` unique, incr/decr delta, `stats` arguments, as sent (ASCII). */
  arg = '';

  /** Set by the sink to stop after the current command; see resume(). */
  paused = false;
  /**
   * get/gets: more keys of this same command follow, so the reply must not end yet. A get line longer than
   * maxLineBytes (a client's multi-get of thousands of keys; memcached takes them) comes to the sink in
   * batches of the keys in each maxLineBytes of it; the last batch (more = false, maybe of no keys) ends it.
   */
  more = false;
  /** get/gets: this command is a batch of a split line (`more` or its last batch). */
  batched = false;

  private readonly maxLine: number;
  private readonly maxValue: number;
  private readonly budget: ValueBudget;
  private state = State.Line;
  /** Unparsed input is buf[pos, buf.length). */
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Where the search for '\n' resumes (no rescanning of a partial line). */
  private scanFrom = 0;
  /** Data / Swallow: bytes still to come (data + "\r\n"); Data: the chunks received so far. */
  private need = 0;
  private parts: Buffer[] = [];
  private partsBytes = 0;
  private reserved = 0;
  /** A get/gets line split into batches (`more`) continues: the rest of the line is keys of this command. */
  private continuing: 'get' | 'gets' | undefined;
  /** After a bad key in a split get line: the rest of the line is dropped. */
  private skippingLine = false;
  private readonly tokS = new Int32Array(MAX_TOKENS);
  private readonly tokE = new Int32Array(MAX_TOKENS);

  constructor(
    private readonly sink: ParserSink,
    limits: ParserLimits,
  ) {
    this.maxLine = limits.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxValue = limits.maxValueBytes;
    this.budget = limits.budget ?? unlimitedBudget;
  }

  /** Feeds the next bytes of the stream (the parser keeps a reference: do not reuse the buffer). */
  push(chunk: Buffer): void {
    if (this.state === State.Closed || chunk.length === 0) return;
    if (this.state === State.Data && this.parts.length > 0) {
      // A data block arriving in pieces: keep the pieces, join them once it is complete.
      if (!this.hold(Math.min(chunk.length, this.need - this.partsBytes), this.need - this.partsBytes)) {
        this.buf = chunk;
        this.pos = this.scanFrom = 0;
        if (!this.paused) this.run();
        return;
      }
      this.parts.push(chunk);
      this.partsBytes += chunk.length;
      if (this.partsBytes < this.need) return;
      this.buf = Buffer.concat(this.parts, this.partsBytes);
      this.pos = 0;
      this.parts = [];
      this.partsBytes = 0;
    } else if (this.pos >= this.buf.length) {
      this.buf = chunk;
      this.pos = 0;
      this.scanFrom = 0;
    } else {
      const rest = this.buf.length - this.pos;
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk], rest + chunk.length);
      this.scanFrom -= this.pos;
      this.pos = 0;
    }
    if (!this.paused) this.run();
  }

  /** Continues after the sink set `paused`. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.state !== State.Closed) this.run();
  }

  /** Bytes of the data block being received taken from the budget (given back when it completes). */
  get valueBytesHeld(): number {
    return this.reserved;
  }

  /** Bytes held for input not parsed yet. */
  get bufferedBytes(): number {
    return this.buf.length - this.pos + this.partsBytes;
  }

  /** Stops for good and returns any value budget held (call when the connection closes). */
  destroy(): void {
    this.state = State.Closed;
    this.release();
    this.buf = EMPTY;
    this.parts = [];
    this.partsBytes = 0;
  }

  private release(): void {
    if (this.reserved > 0) this.budget.give(this.reserved);
    this.reserved = 0;
  }

  private fail(reply: string): void {
    this.destroy();
    this.sink.protocolError(reply, true);
  }

  private run(): void {
    while (!this.paused) {
      const buf = this.buf;
      const avail = buf.length - this.pos;
      if (this.state === State.Line) {
        if (avail === 0) return;
        let nl = buf.indexOf(10, Math.max(this.scanFrom, this.pos));
        if (this.skippingLine) {
          if (nl === -1) {
            this.buf = EMPTY;
            this.pos = this.scanFrom = 0;
            return;
          }
          this.pos = this.scanFrom = nl + 1;
          this.skippingLine = false;
          continue;
        }
        if (nl === -1) {
          if (avail > this.maxLine + 1) {
            if (this.splitGet(buf, buf.length)) continue;
            this.fail('CLIENT_ERROR line too long');
            return;
          }
          this.scanFrom = buf.length;
          return;
        }
        const start = this.pos;
        const lineEnd = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
        if (lineEnd - start > this.maxLine) {
          if (this.splitGet(buf, start)) continue;
          this.pos = nl + 1;
          this.fail('CLIENT_ERROR line too long');
          return;
        }
        this.pos = nl + 1;
        this.scanFrom = this.pos;
        nl = lineEnd;
        this.line = buf;
        const name = this.continuing;
        if (name !== undefined) {
          // The last batch of a split get line.
          this.continuing = undefined;
          this.batch(name, buf, start, nl, false);
          continue;
        }
        this.parseLine(buf, start, nl);
      } else if (this.state === State.Data) {
        if (avail < this.need) {
          if (avail > 0) {
            if (!this.hold(avail, this.need)) continue; // now swallowing the block
            this.parts.push(buf.subarray(this.pos));
            this.partsBytes = avail;
          }
          this.buf = EMPTY;
          this.pos = 0;
          return;
        }
        const end = this.pos + this.need - 2;
        this.pos += this.need;
        this.state = State.Line;
        this.scanFrom = this.pos;
        this.release();
        if (buf[end] !== 13 || buf[end + 1] !== 10) {
          this.sink.protocolError('CLIENT_ERROR bad data chunk', false);
          continue;
        }
        this.value = buf.subarray(end - (this.need - 2), end);
        this.sink.command(this);
        this.value = EMPTY;
      } else if (this.state === State.Swallow) {
        const n = Math.min(avail, this.need);
        this.pos += n;
        this.need -= n;
        if (this.need > 0) return;
        this.state = State.Line;
        this.scanFrom = this.pos;
      } else {
        return;
      }
    }
  }

  /**
   * A get/gets line longer than maxLineBytes (or the rest of one): hands the sink the keys that end in its
   * first maxLineBytes (up to the last space in them) as a batch with `more`, and continues the line after
   * them. The batches depend on the line's bytes only, not on how they arrived. False (nothing done) for
   * any other command, or a window with no complete key in it (a key longer than a line: cannot be valid).
   * `scanned`: where the search for the line end may resume after this batch.
   */
  private splitGet(buf: Buffer, scanned: number): boolean {
    let s = this.pos;
    let name = this.continuing;
    const windowEnd = this.pos + this.maxLine;
    if (name === undefined) {
      while (s < windowEnd && buf[s] === 32) s++;
      let ce = s;
      while (ce < windowEnd && buf[ce] !== 32) ce++;
      const n = commandName(buf, s, ce);
      if (n !== 'get' && n !== 'gets') return false;
      name = n;
      s = ce;
    }
    let split = windowEnd;
    while (split > s && buf[split] !== 32) split--;
    let k = s;
    while (k < split && buf[k] === 32) k++;
    if (k === split) return false;
    this.continuing = name;
    this.pos = split;
    this.scanFrom = Math.max(split, scanned);
    this.batch(name, buf, s, split, true);
    return true;
  }

  /** Hands the sink the keys in buf[s, e) as a batch of a split `name` line (`batched`; `more` unless the last). */
  private batch(name: 'get' | 'gets', buf: Buffer, s: number, e: number, more: boolean): void {
    this.cmd = name;
    this.noreply = false;
    this.line = buf;
    this.more = more;
    this.batched = true;
    this.parseKeys(buf, s, e);
    this.more = this.batched = false;
  }

  /** One command line: buf[s, e), without the line end. */
  private parseLine(buf: Buffer, s: number, e: number): void {
    // The command name: up to the first space.
    while (s < e && buf[s] === 32) s++;
    let ce = s;
    while (ce < e && buf[ce] !== 32) ce++;
    const name = commandName(buf, s, ce);
    this.noreply = false;
    if (name === undefined) {
      if (ce - s === 2 && buf[s] === 109 && buf[s + 1] === 115) {
        this.metaSet(buf, ce, e);
        return;
      }
      this.sink.protocolError('ERROR', false);
      return;
    }
    this.cmd = name;
    if (name === 'get' || name === 'gets') {
      this.parseKeys(buf, ce, e);
      return;
    }
    if (name === 'gat' || name === 'gats') {
      // `gat <exptime> <key>*`
      let i = ce;
      while (i < e && buf[i] === 32) i++;
      this.tokS[0] = i;
      while (i < e && buf[i] !== 32) i++;
      this.tokE[0] = i;
      const x = this.intToken(buf, 0, true);
      if (x === undefined) {
        this.error();
        return;
      }
      this.exptime = x;
      this.parseKeys(buf, i, e);
      return;
    }
    // Everything else has a handful of tokens.
    let n = this.tokenize(buf, ce, e, MAX_TOKENS);
    if (n > MAX_TOKENS) {
      this.sink.protocolError('ERROR', false);
      return;
    }
    if (n > 0 && this.isToken(buf, n - 1, 'noreply')) {
      this.noreply = true;
      n--;
    }
    switch (name) {
      case 'set':
      case 'add':
      case 'replace':
      case 'append':
      case 'prepend':
      case 'cas': {
        this.parseStorage(buf, n, name === 'cas' ? 5 : 4);
        return;
      }
      case 'delete':
        // `delete <key> [0]`: memcached still accepts a zero hold time from old clients.
        if (n === 2 && this.isToken(buf, 1, '0')) n = 1;
        if (n !== 1) {
          this.badFormat();
          return;
        }
        {
          this.oneKey(buf);
          return;
        }
      case 'touch': {
        if (n !== 2) {
          this.error();
          return;
        }
        const x = this.intToken(buf, 1, true);
        if (x === undefined) {
          this.badFormat();
          return;
        }
        this.exptime = x;
        this.oneKey(buf);
        return;
      }
      case 'incr':
      case 'decr':
        if (n !== 2) {
          this.error();
          return;
        }
        if (!this.digitsToken(buf, 1, 20)) {
          this.badFormat();
          return;
        }
        this.arg = buf.toString('latin1', this.tokS[1], this.tokE[1]);
        {
          this.oneKey(buf);
          return;
        }
      case 'stats':
        this.arg = n === 0 ? '' : buf.toString('latin1', this.tokS[0], this.tokE[n - 1]);
        this.keyCount = 0;
        this.sink.command(this);
        return;
      case 'flush_all':
        if (n > 1 || (n === 1 && this.intToken(buf, 0, true) === undefined)) {
          this.badFormat();
          return;
        }
        this.keyCount = 0;
        this.sink.command(this);
        return;
      case 'verbosity':
        if (n !== 1 || !this.digitsToken(buf, 0, 10)) {
          this.error();
          return;
        }
        this.keyCount = 0;
        this.sink.command(this);
        return;
      case 'version':
      case 'quit':
        if (n !== 0) {
          this.error();
          return;
        }
        this.keyCount = 0;
        this.sink.command(this);
        return;
    }
  }

  /**
   * `ms <key> <datalen> <flags>*` (the meta protocol's set), which is not supported: answered
   * `CLIENT_ERROR`, and its data block swallowed — run as commands, a value's bytes would be another
   * client's commands (a value `delete victim` deleted victim). Without a readable length: `ERROR`, as for
   * any unknown command.
   */
  private metaSet(buf: Buffer, s: number, e: number): void {
    // Only the key and the length matter; meta flags may follow, as many as the client likes.
    const len = this.tokenize(buf, s, e, 2) >= 2 ? this.intToken(buf, 1, false) : undefined;
    if (len === undefined || len > 0x7fff_fffd) {
      this.sink.protocolError('ERROR', false);
      return;
    }
    this.swallow(len);
    this.sink.protocolError('CLIENT_ERROR meta commands are not supported', false);
  }

  /**
   * The space-separated tokens of buf[i, e) into tokS/tokE, at most `max` of them: how many, or max + 1 when
   * more follow.
   */
  private tokenize(buf: Buffer, i: number, e: number, max: number): number {
    let n = 0;
    while (i < e) {
      while (i < e && buf[i] === 32) i++;
      if (i === e) break;
      if (n === max) return max + 1;
      this.tokS[n] = i;
      while (i < e && buf[i] !== 32) i++;
      this.tokE[n++] = i;
    }
    return n;
  }

  /** `<cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply]`, then the data block. */
  private parseStorage(buf: Buffer, n: number, want: number): void {
    // The data length decides where the next command starts. Without a readable one the stream cannot
    // be followed (the data would be taken for commands): close, rather than run a value as a command.
    const bytesTok = 3;
    const len = n > bytesTok ? this.intToken(buf, bytesTok, false) : undefined;
    if (len === undefined || len > 0x7fff_fffd) {
      if (n !== want) {
        this.fail('ERROR');
        return;
      }
      this.fail(BAD_FORMAT);
      return;
    }
    const flags = this.intToken(buf, 1, false);
    const exptime = this.intToken(buf, 2, true);
    const keyOk = this.key(buf, this.tokS[0], this.tokE[0], 0);
    if (n !== want || flags === undefined || flags > 0xffff_ffff || exptime === undefined || !keyOk) {
      this.swallow(len);
      if (n !== want) this.sink.protocolError('ERROR', false);
      else if (!keyOk) this.sink.protocolError(this.keyError, false);
      else this.badFormat();
      return;
    }
    if (want === 5) {
      if (!this.digitsToken(buf, 4, 20)) {
        this.swallow(len);
        this.badFormat();
        return;
      }
      this.arg = buf.toString('latin1', this.tokS[4], this.tokE[4]);
    }
    this.keyCount = 1;
    this.flags = flags;
    this.exptime = exptime;
    if (len > this.maxValue) {
      this.swallow(len);
      this.sink.protocolError('SERVER_ERROR object too large for cache', false);
      return;
    }
    this.state = State.Data;
    this.need = len + 2;
  }

  /**
   * Keeps `n` more bytes of the data block being received, from the budget. When the budget has none left,
   * the value is given up: the bytes kept are dropped, the rest of the block (`rest`, from here) swallowed,
   * and the command answered `SERVER_ERROR out of memory storing object`. False then.
   */
  private hold(n: number, rest: number): boolean {
    if (this.budget.take(n)) {
      this.reserved += n;
      return true;
    }
    this.release();
    this.parts = [];
    this.partsBytes = 0;
    this.state = State.Swallow;
    this.need = rest;
    this.sink.protocolError('SERVER_ERROR out of memory storing object', false);
    return false;
  }

  private swallow(len: number): void {
    this.state = State.Swallow;
    this.need = len + 2;
  }

  /** The single key of delete / touch / incr / decr: tokens[0]. */
  private oneKey(buf: Buffer): void {
    if (!this.key(buf, this.tokS[0], this.tokE[0], 0)) {
      this.sink.protocolError(this.keyError, false);
      return;
    }
    this.keyCount = 1;
    this.sink.command(this);
  }

  /**
   * get / gets / gat / gats: every space-separated key in buf[s, e). No keys is an error, except in a batch
   * of a split get line (`batched`: its last batch may hold none).
   */
  private parseKeys(buf: Buffer, s: number, e: number): void {
    let n = 0;
    let i = s;
    while (i < e) {
      while (i < e && buf[i] === 32) i++;
      if (i === e) break;
      const ks = i;
      while (i < e && buf[i] !== 32) i++;
      if (!this.key(buf, ks, i, n)) {
        this.sink.protocolError(this.keyError, false);
        this.trimKeys(n);
        // The rest of a split line is not keys of anything any more.
        if (this.more) {
          this.continuing = undefined;
          this.skippingLine = true;
        }
        return;
      }
      n++;
    }
    if (n === 0 && !this.batched) {
      this.sink.protocolError('ERROR', false);
      return;
    }
    this.keyCount = n;
    this.sink.command(this);
    this.trimKeys(n);
  }

  /** A huge multi-get should not keep its arrays alive for the life of the connection. */
  private trimKeys(n: number): void {
    if (n > 1024) {
      this.keys.length = 0;
      this.keyStart.length = 0;
      this.keyEnd.length = 0;
    }
  }

  private keyError = BAD_FORMAT;

  /**
   * Validates buf[s, e) as a key (1..250 bytes, no control characters, UTF-8) and stores it at index
   * `n`. ASCII keys (the usual case) are decoded without a UTF-8 pass.
   */
  private key(buf: Buffer, s: number, e: number, n: number): boolean {
    const len = e - s;
    if (len > MAX_KEY_BYTES || len === 0) {
      this.keyError = BAD_FORMAT;
      return false;
    }
    let high = false;
    for (let i = s; i < e; i++) {
      const c = buf[i];
      if (c < 32 || c === 127) {
        this.keyError = BAD_FORMAT;
        return false;
      }
      if (c > 127) high = true;
    }
    let k: string;
    if (!high) k = HAS_LATIN1_SLICE ? (buf as LatinSlice).latin1Slice(s, e) : buf.toString('latin1', s, e);
    else if (isUtf8(buf.subarray(s, e))) k = buf.toString('utf8', s, e);
    else {
      // Decoding would map different byte strings to one key (U+FFFD): refuse instead of aliasing.
      this.keyError = 'CLIENT_ERROR key is not valid UTF-8';
      return false;
    }
    this.keys[n] = k;
    this.keyStart[n] = s;
    this.keyEnd[n] = e;
    return true;
  }

  private isToken(buf: Buffer, t: number, word: string): boolean {
    const s = this.tokS[t];
    const len = this.tokE[t] - s;
    if (len !== word.length) return false;
    for (let i = 0; i < len; i++) if (buf[s + i] !== word.charCodeAt(i)) return false;
    return true;
  }

  /** Only digits, 1..maxDigits of them. */
  private digitsToken(buf: Buffer, t: number, maxDigits: number): boolean {
    const s = this.tokS[t];
    const e = this.tokE[t];
    if (e - s < 1 || e - s > maxDigits) return false;
    for (let i = s; i < e; i++) if (buf[i] < 48 || buf[i] > 57) return false;
    return true;
  }

  /** A decimal integer of at most 12 digits (a leading '-' when `signed`), else undefined. */
  private intToken(buf: Buffer, t: number, signed: boolean): number | undefined {
    let s = this.tokS[t];
    const e = this.tokE[t];
    let neg = false;
    if (signed && e - s > 1 && buf[s] === 45) {
      neg = true;
      s++;
    }
    if (e - s < 1 || e - s > 12) return undefined;
    let v = 0;
    for (let i = s; i < e; i++) {
      const c = buf[i] - 48;
      if (c < 0 || c > 9) return undefined;
      v = v * 10 + c;
    }
    return neg ? -v : v;
  }

  private badFormat(): void {
    this.sink.protocolError(BAD_FORMAT, false);
  }

  private error(): void {
    this.sink.protocolError('ERROR', false);
  }
}

/** The command named by buf[s, e), matched byte by byte (no string is made for it). */
function commandName(buf: Buffer, s: number, e: number): CommandName | undefined {
  const c0 = buf[s];
  switch (e - s) {
    case 3:
      if (c0 === 103 && buf[s + 1] === 101 && buf[s + 2] === 116) return 'get';
      if (is(buf, s, 'set')) return 'set';
      if (is(buf, s, 'add')) return 'add';
      if (is(buf, s, 'cas')) return 'cas';
      if (is(buf, s, 'gat')) return 'gat';
      return undefined;
    case 4:
      if (c0 === 103 && buf[s + 1] === 101 && buf[s + 2] === 116 && buf[s + 3] === 115) return 'gets';
      if (is(buf, s, 'incr')) return 'incr';
      if (is(buf, s, 'decr')) return 'decr';
      if (is(buf, s, 'quit')) return 'quit';
      if (is(buf, s, 'gats')) return 'gats';
      return undefined;
    case 5:
      if (is(buf, s, 'touch')) return 'touch';
      if (is(buf, s, 'stats')) return 'stats';
      return undefined;
    case 6:
      if (is(buf, s, 'delete')) return 'delete';
      if (is(buf, s, 'append')) return 'append';
      return undefined;
    case 7:
      if (is(buf, s, 'replace')) return 'replace';
      if (is(buf, s, 'prepend')) return 'prepend';
      if (is(buf, s, 'version')) return 'version';
      return undefined;
    case 9:
      if (is(buf, s, 'flush_all')) return 'flush_all';
      if (is(buf, s, 'verbosity')) return 'verbosity';
      return undefined;
    default:
      return undefined;
  }
}

function is(buf: Buffer, s: number, word: string): boolean {
  for (let i = 0; i < word.length; i++) if (buf[s + i] !== word.charCodeAt(i)) return false;
  return true;
}
