// The bytes a memcached connection is about to write. Replies are formatted straight into a slab (one
// Buffer reused until full), so a hit costs no allocation for its reply; what has been formatted leaves
// as one socket write per batch of commands. Large values are not copied: they are written as their own
// chunk (they are the cache's buffers, which are never written to).

import type { Socket } from 'node:net';

/** Values up to this size are copied into the slab; larger ones go out as their own chunk. */
const COPY_MAX = 4 * 1024;
/**
 * Past this many bytes waiting, `shared` stops copying small values too and references them. Why: a
 * multi-get names a key as often as it likes (a 64 KiB line: ~32,000 times), and copying a 4 KB value that
 * often made one command hold 130 MB. Referenced, the same value costs its chunk entry; memcached itself
 * references items from its replies.
 */
const COPY_WHILE_BELOW = 256 * 1024;

export class Out {
  private slab: Buffer;
  private start = 0;
  private pos = 0;
  private chunks: Buffer[] = [];
  private chunkBytes = 0;

  constructor(private readonly slabBytes: number) {
    this.slab = Buffer.allocUnsafe(slabBytes);
  }

  /** Bytes formatted and not yet handed to the socket. */
  get size(): number {
    return this.chunkBytes + this.pos - this.start;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.slab.length) return;
    this.cut();
    this.slab = Buffer.allocUnsafe(Math.max(this.slabBytes, n));
    this.start = this.pos = 0;
  }

  /** Ends the current slab segment (what follows may be written to the socket before it is not). */
  private cut(): void {
    if (this.pos > this.start) {
      this.chunks.push(this.slab.subarray(this.start, this.pos));
      this.chunkBytes += this.pos - this.start;
      this.start = this.pos;
    }
  }

  /** Bytes src[s, e). */
  bytes(src: Buffer, s = 0, e = src.length): void {
    const n = e - s;
    if (n > COPY_MAX) {
      this.ref(src, s, e);
      return;
    }
    this.ensure(n);
    const slab = this.slab;
    let p = this.pos;
    if (n <= 32) {
      for (let i = s; i < e; i++) slab[p++] = src[i];
    } else {
      p += src.copy(slab, p, s, e);
    }
    this.pos = p;
  }

  /**
   * Bytes src[s, e) of a Buffer that never changes (the cache's values): copied while little is waiting,
   * else referenced (COPY_WHILE_BELOW).
   */
  shared(src: Buffer, s: number, e: number): void {
    if (e - s <= COPY_MAX && this.size < COPY_WHILE_BELOW) this.bytes(src, s, e);
    else this.ref(src, s, e);
  }

  /** src[s, e) as a chunk of its own, not copied. */
  private ref(src: Buffer, s: number, e: number): void {
    this.cut();
    this.chunks.push(s === 0 && e === src.length ? src : src.subarray(s, e));
    this.chunkBytes += e - s;
  }

  /** A string; latin1 for ASCII-only text (reply words, numbers), utf8 for keys. */
  text(s: string, utf8 = false): void {
    this.ensure(utf8 ? s.length * 3 : s.length);
    this.pos += this.slab.write(s, this.pos, utf8 ? 'utf8' : 'latin1');
  }

  /** A non-negative integer in decimal. */
  uint(n: number): void {
    this.ensure(20);
    const slab = this.slab;
    if (n < 10) {
      slab[this.pos++] = 48 + n;
      return;
    }
    let digits = 0;
    for (let x = n; x >= 1; x = Math.floor(x / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    for (let x = n; x >= 1; x = Math.floor(x / 10)) slab[--p] = 48 + (x % 10);
  }

  byte(c: number): void {
    this.ensure(1);
    this.slab[this.pos++] = c;
  }

  crlf(): void {
    this.ensure(2);
    this.slab[this.pos++] = 13;
    this.slab[this.pos++] = 10;
  }

  /** Hands everything formatted to the socket (one write when it is one chunk). */
  flushTo(sock: Socket): void {
    const chunks = this.chunks;
    if (chunks.length === 0) {
      // The usual case (no large value): one slab segment, written without the chunk list.
      if (this.pos === this.start) return;
      const seg = this.slab.subarray(this.start, this.pos);
      this.start = this.pos;
      if (!sock.destroyed) sock.write(seg);
      this.renewSlab();
      return;
    }
    this.cut();
    if (!sock.destroyed) {
      if (chunks.length === 1) sock.write(chunks[0]);
      else {
        sock.cork();
        for (const c of chunks) sock.write(c);
        sock.uncork();
      }
    }
    chunks.length = 0;
    this.chunkBytes = 0;
    this.renewSlab();
  }

  /** A slab segment handed to the socket is never written again; start a fresh slab when little is left. */
  private renewSlab(): void {
    if (this.slab.length - this.pos < 512) {
      this.slab = Buffer.allocUnsafe(this.slabBytes);
      this.start = this.pos = 0;
    }
  }
}
