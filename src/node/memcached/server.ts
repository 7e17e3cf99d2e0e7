// The memcached front of a cache node: memcached's text protocol on a plain TCP socket, so any memcached
// client reads through the cluster. A memcached key is a key of one group (the node's default group),
// verbatim. See docs/memcached.md for the commands, their mapping onto the group and the limits.
//
// Hit path: the parser hands over `get <key>`, the group answers synchronously from server.getCached, and the
// reply is formatted into the connection's slab (out.ts): one socket write per batch of pipelined
// commands, no promise, no per-request object. Anything that waits (a miss, a write) takes a Slot in the
// connection's queue, so replies still leave in command order.
//
// Bounds (all documented in docs/security.md): connections (maxConnections; at the cap the quietest
// connection that owes no reply makes room, and only when all are busy is a client told
// `SERVER_ERROR too many open connections` and closed), idle time (idleTimeoutMs: a client that sends
// nothing and drains no replies for that long is closed, a half-sent command included), line length and value
// size (parser.ts), value bytes being received by all connections together (valueBudgetBytes), and
// backpressure: a client that does not read its replies stops being read once HIGH_WATER bytes are
// waiting to be written to it, or MAX_PENDING commands or keys are waiting for loads.

import { createServer, type Server, type Socket } from 'node:net';
import { isNotFound } from '../../errors.js';
import type { ServedGroup } from '../../group.js';
import { Out } from './out.js';
import {
  type CommandName,
  DEFAULT_MAX_LINE_BYTES,
  MemcachedParser,
  type ParserSink,
  type ValueBudget,
} from './parser.js';
import {
  casUnique,
  encodeItem,
  exptimeToTtlMs,
  FLAGS_HEADER_BYTES,
  flagsOf,
  hasFlagsHeader,
} from './values.js';

export interface MemcachedFrontOptions {
  group: ServedGroup;
  /** What `version` answers after `VERSION `. */
  version: string;
  /** Largest value a storage command may carry. */
  maxValueBytes: number;
  /** Default 1024 (memcached's -c default). */
  maxConnections?: number;
  /** Close a connection that neither sends nor reads for this long. Default 300 000 ms; 0 = never. */
  idleTimeoutMs?: number;
  /** Longest command line. Default 64 KiB (a get of ~250 keys of 250 bytes). */
  maxLineBytes?: number;
  /** Value bytes all connections may be receiving at once. Default 64 MiB. */
  valueBudgetBytes?: number;
  /** Load failures (SERVER_ERROR answers), for a rate-limited log. */
  onLoadError?: (key: string, err: unknown) => void;
}

/** Counts kept by the front; plain integers (read by `stats`). */
export interface MemcachedCounters {
  currConnections: number;
  totalConnections: number;
  rejectedConnections: number;
  /** Idle connections closed at the cap to admit a new one (see createMemcachedFront). */
  idleClosedForNew: number;
  /** Keys asked by get/gets. */
  getKeys: number;
  /** Keys answered without a value because the loader said NotFound. */
  getNotFound: number;
  cmdSet: number;
  cmdTouch: number;
  cmdDelete: number;
  protocolErrors: number;
  serverErrors: number;
  /** Times a connection stopped being read because its client was not reading replies. */
  backpressurePauses: number;
  /** Connections closed mid-value, their sender stalled, because the value budget was needed by another. */
  stalledSendersClosed: number;
}

/** Bytes waiting to be written to a client before it stops being read. */
const HIGH_WATER = 1024 * 1024;
/** Commands + keys waiting for loads on one connection before it stops being read. */
const MAX_PENDING = 4096;
/** Formatted replies are handed to the socket at least every this many bytes. */
const FLUSH_BYTES = 64 * 1024;
const SLAB_BYTES = 16 * 1024;
const SLOT_SLAB_BYTES = 1024;

const VALUE_SP = Buffer.from('VALUE ');
const END = Buffer.from('END\r\n');
const NOT_SUPPORTED = 'SERVER_ERROR not supported';

/** Creates (does not start) the memcached front. `server.counters` holds its counts. */
export function createMemcachedFront(opts: MemcachedFrontOptions): Server & {
  counters: MemcachedCounters;
  /** Reply bytes waiting in the sockets' write buffers, all connections together. */
  writeBufferedBytes(): number;
  /** Shutdown: reads no more commands; each connection closes once the replies it owes are written. */
  drainConnections(): void;
  /** Closes every connection now (shutdown after the drain deadline). */
  closeAllConnections(): void;
} {
  const counters: MemcachedCounters = {
    currConnections: 0,
    totalConnections: 0,
    rejectedConnections: 0,
    idleClosedForNew: 0,
    getKeys: 0,
    getNotFound: 0,
    cmdSet: 0,
    cmdTouch: 0,
    cmdDelete: 0,
    protocolErrors: 0,
    serverErrors: 0,
    backpressurePauses: 0,
    stalledSendersClosed: 0,
  };
  const budgetMax = opts.valueBudgetBytes ?? 64 * 1024 * 1024;
  let budgetUsed = 0;
  const fits = (n: number) => budgetUsed + n <= budgetMax;
  const ctx: Ctx = {
    opts,
    counters,
    group: opts.group,
    started: Date.now(),
    idleTimeoutMs: opts.idleTimeoutMs ?? 300_000,
    maxConnections: opts.maxConnections ?? 1024,
    budget: {
      take(n) {
        if (!fits(n)) closeStalledSenders(ctx, () => fits(n));
        if (!fits(n)) return false;
        budgetUsed += n;
        return true;
      },
      give(n) {
        budgetUsed -= n;
      },
    },
    conns: new Set(),
    tick: 0,
    activity: 0,
    sweeper: undefined,
  };
  const { maxConnections } = ctx;
  // allowHalfOpen: a client that sends its commands and then shuts its side (`printf … | nc -N`, or a
  // script that pipelines `set … noreply` and closes) still has every command run and answered, as on
  // memcached; Node would otherwise end our side at the client's FIN and drop what was not run yet.
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => {}); // resets and the like: 'close' follows and cleans up
    // At the cap, the connection that has been quiet the longest and owes no reply makes room: else
    // whoever opens maxConnections idle sockets first (they cost nothing to hold) shuts every other
    // client out until the idle timeout, and again as soon as they reconnect. A memcached client
    // reconnects a closed pool connection by itself. Only when every connection is busy is the new one
    // refused.
    if (counters.currConnections >= maxConnections) closeQuietest(ctx);
    if (counters.currConnections >= maxConnections) {
      counters.rejectedConnections++;
      sock.end('SERVER_ERROR too many open connections\r\n');
      sock.setTimeout(1000, () => sock.destroy());
      return;
    }
    ctx.conns.add(new Conn(ctx, sock));
  }) as ReturnType<typeof createMemcachedFront>;
  server.counters = counters;
  server.writeBufferedBytes = () => writeBuffered(ctx);
  server.drainConnections = () => {
    for (const c of ctx.conns) c.drain();
  };
  server.closeAllConnections = () => {
    for (const c of ctx.conns) c.destroy();
  };
  return server;
}

/** Closes the connection quiet the longest among those that owe no reply (O(connections), at the cap only). */
function closeQuietest(ctx: Ctx): void {
  let quietest: Conn | undefined;
  for (const c of ctx.conns) {
    if (c.owesReply || c.isClosing) continue;
    if (quietest === undefined || c.lastActivity < quietest.lastActivity) quietest = c;
  }
  if (quietest === undefined) return;
  ctx.counters.idleClosedForNew++;
  quietest.closeNow();
}

/**
 * A value whose sender has sent nothing for this long is given up when the budget for values being received
 * is needed: else whoever sends the start of values and stops (holding up to 64 MiB) makes every other
 * client's set fail until the idle timeout.
 */
const STALLED_SENDER_MS = 1000;

/**
 * Closes connections holding part of a value whose sender has stalled (STALLED_SENDER_MS), the longest
 * stalled first, until `enough()` or none is left. O(connections), only when the budget is short.
 */
function closeStalledSenders(ctx: Ctx, enough: () => boolean): void {
  const now = Date.now();
  while (!enough()) {
    let stalled: Conn | undefined;
    for (const c of ctx.conns) {
      if (c.valueBytesHeld === 0 || c.isClosing || now - c.lastDataAt < STALLED_SENDER_MS) continue;
      if (stalled === undefined || c.lastDataAt < stalled.lastDataAt) stalled = c;
    }
    if (stalled === undefined) return;
    ctx.counters.stalledSendersClosed++;
    stalled.closeNow();
  }
}

function writeBuffered(ctx: Ctx): number {
  let n = 0;
  for (const c of ctx.conns) n += c.writableLength;
  return n;
}

interface Ctx {
  opts: MemcachedFrontOptions;
  counters: MemcachedCounters;
  group: ServedGroup;
  started: number;
  idleTimeoutMs: number;
  maxConnections: number;
  budget: ValueBudget;
  conns: Set<Conn>;
  /** Idle sweeps so far; a connection records the tick of its last activity. */
  tick: number;
  /** Bumped on every connection's activity: orders connections by how recently they were active. */
  activity: number;
  sweeper: NodeJS.Timeout | undefined;
}

/**
 * Idle connections are found by a sweep every quarter of the idle timeout, not by a timer per socket:
 * `socket.setTimeout` re-arms a timer on every read and write, which measured ~10-15% of a hit's CPU
 * (64 connections, one get in flight each). A connection is idle when it has neither received bytes nor
 * drained replies for 4 sweeps, so it is closed between 1× and 1.25× the idle timeout.
 */
const SWEEPS_PER_TIMEOUT = 4;

function startSweeping(ctx: Ctx): void {
  if (ctx.sweeper !== undefined || ctx.idleTimeoutMs <= 0) return;
  ctx.sweeper = setInterval(
    () => {
      ctx.tick++;
      for (const c of ctx.conns) if (ctx.tick - c.lastTick > SWEEPS_PER_TIMEOUT) c.destroy();
      if (ctx.conns.size === 0) {
        clearInterval(ctx.sweeper);
        ctx.sweeper = undefined;
      }
    },
    Math.max(1, Math.floor(ctx.idleTimeoutMs / SWEEPS_PER_TIMEOUT)),
  );
  ctx.sweeper.unref();
}

/** A reply that waits for something; written when it and every reply before it are done. */
interface Slot {
  out: Out;
  done: boolean;
  /** Of out.size, what `queuedBytes` counts (sealed: no longer the last slot, see Conn.sealed). */
  counted: number;
}

class Conn implements ParserSink {
  private readonly out = new Out(SLAB_BYTES);
  private readonly parser: MemcachedParser;
  private readonly queue: Slot[] = [];
  /** Keys being loaded (for MAX_PENDING). */
  private loading = 0;
  /** A write (set, delete, …) is in progress: later commands wait for it (read-your-writes). */
  private writing = false;
  private closeWhenFlushed = false;
  /** A flush is scheduled (`flushSoon`). */
  private flushPending = false;
  private closed = false;
  /** The client shut its sending side: finish what it sent, then close (finishIfDone). */
  private inputEnded = false;
  /** Counted out of the connections (onClose ran). */
  private gone = false;
  private firstChunk = true;
  private ac: AbortController | undefined;
  /** ctx.tick at the last bytes received or replies drained (idle sweep). */
  lastTick = 0;
  /** ctx.activity at the last bytes received or replies drained (who is closed first at the cap). */
  lastActivity = 0;
  /** Date.now() at the last bytes received (closeStalledSenders). */
  lastDataAt = 0;
  /**
   * Bytes formatted in the slots before the last (their `counted`): with the last slot's size, the replies
   * held behind a load that has not settled. Hits behind a slow load join the last finished slot, so
   * without counting these a client could pile up replies without limit while it never read (measured:
   * 373 MB from one connection) — the socket's buffer and the queue's length both stayed small.
   */
  private sealed = 0;
  /** Values found by the multi-get being handled (reused; emptied after each command). */
  private readonly found: Array<Buffer | undefined> = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly sock: Socket,
  ) {
    ctx.counters.currConnections++;
    ctx.counters.totalConnections++;
    this.parser = new MemcachedParser(this, {
      maxLineBytes: ctx.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      maxValueBytes: ctx.opts.maxValueBytes,
      budget: ctx.budget,
    });
    sock.setNoDelay(true);
    this.lastTick = ctx.tick;
    this.lastActivity = ++ctx.activity;
    startSweeping(ctx);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => {
      this.lastTick = this.ctx.tick;
      this.lastActivity = ++this.ctx.activity;
      this.maybeResume();
      this.finishIfDone();
    });
    sock.on('end', () => {
      this.inputEnded = true;
      this.finishIfDone();
    });
    sock.on('close', () => this.onClose());
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** A reply is still to be written (a load, a write, or bytes in the socket's buffer). */
  get owesReply(): boolean {
    return this.queue.length > 0 || this.writing || this.sock.writableLength > 0;
  }

  get isClosing(): boolean {
    return this.closed || this.sock.destroyed;
  }

  /** Closed to make room (a new connection at the cap, the value budget): counted out now, its budget returned. */
  closeNow(): void {
    this.sock.destroy();
    this.onClose();
  }

  get writableLength(): number {
    return this.sock.writableLength;
  }

  drain(): void {
    this.closeWhenFlushed = true;
    this.pause();
    this.flush();
  }

  /** Bytes of a partly received value this connection holds from the shared budget. */
  get valueBytesHeld(): number {
    return this.parser.valueBytesHeld;
  }

  private onData(chunk: Buffer): void {
    this.lastDataAt = Date.now();
    this.lastTick = this.ctx.tick;
    this.lastActivity = ++this.ctx.activity;
    if (this.firstChunk) {
      this.firstChunk = false;
      // memcached's binary protocol starts with the magic byte 0x80: not spoken here, and a binary client
      // would wait forever for an answer it can parse.
      if (chunk[0] === 0x80) {
        this.ctx.counters.protocolErrors++;
        this.sock.destroy();
        return;
      }
    }
    this.parser.push(chunk);
    this.flush();
  }

  private onClose(): void {
    if (this.gone) return; // closeNow already did this; 'close' follows
    this.gone = true;
    this.closed = true;
    this.parser.destroy();
    this.ac?.abort(new Error('client closed the connection'));
    this.ctx.counters.currConnections--;
    this.ctx.conns.delete(this);
  }

  /** Where a reply goes that is ready now: straight out when nothing is waiting, else in its own slot. */
  private target(): Out {
    const q = this.queue;
    if (q.length === 0) return this.out;
    // Behind a reply that waits: join the last slot if it is already complete, else start one.
    if (q[q.length - 1].done) return q[q.length - 1].out;
    return this.slot(true).out;
  }

  private slot(done = false): Slot {
    const q = this.queue;
    if (q.length > 0) {
      const last = q[q.length - 1];
      last.counted = last.out.size;
      this.sealed += last.counted;
    }
    const slot: Slot = { out: new Out(SLOT_SLAB_BYTES), done, counted: 0 };
    q.push(slot);
    return slot;
  }

  /** `slot` was filled in (a load or write settled): count what it holds if it is no longer the last. */
  private filled(slot: Slot): void {
    slot.done = true;
    const q = this.queue;
    if (q[q.length - 1] === slot) return;
    this.sealed += slot.out.size - slot.counted;
    slot.counted = slot.out.size;
  }

  /** Replies formatted but not handed to the socket: in the slots, and what waits in `out`. */
  private queuedBytes(): number {
    const q = this.queue;
    const last = q.length > 0 ? q[q.length - 1] : undefined;
    return this.sealed + (last === undefined ? 0 : last.out.size - last.counted) + this.out.size;
  }

  private line(text: string): void {
    const o = this.target();
    o.text(text, true);
    o.crlf();
  }

  /**
   * `flush` once the promise jobs under way have run (process.nextTick: Node runs it after the microtask
   * queue drains). A write's reply used to be flushed as it settled: a pipeline of sets (each waits for the one
   * before) cost a socket write per set, ~75 % of the node's busy time (1M sets of 32 B, 100 in flight on one
   * connection: 11.7 s against memcached's 2.7 s in the same run; 300k now 1.54 s, memcached 0.70–0.73 s).
   */
  private flushSoon(): void {
    if (this.flushPending) return;
    this.flushPending = true;
    process.nextTick(this.deferredFlush);
  }

  private readonly deferredFlush = (): void => {
    this.flushPending = false;
    this.flush();
  };

  /** Writes what is formatted, then every finished slot at the head of the queue, in order. */
  private flush(): void {
    if (this.closed) return;
    const q = this.queue;
    // Several finished slots (a pipeline of writes): one writev, not a socket write each.
    const many = q.length > 1 && q[0].done && q[1].done;
    if (many) this.sock.cork();
    this.out.flushTo(this.sock);
    let n = 0;
    while (n < q.length && q[n].done) {
      this.sealed -= q[n].counted;
      q[n++].out.flushTo(this.sock);
    }
    if (many) this.sock.uncork();
    if (n > 0) q.splice(0, n);
    if (this.closeWhenFlushed && q.length === 0) {
      this.closed = true;
      this.sock.end();
      return;
    }
    this.maybeResume();
    this.finishIfDone();
  }

  /**
   * After the client's FIN: once every complete command it sent has run and every reply is written
   * (a partial command at the end is dropped, as memcached does), close our side too.
   */
  private finishIfDone(): void {
    if (!this.inputEnded || this.closed || this.writing || this.parser.paused || this.queue.length > 0)
      return;
    this.closed = true;
    this.out.flushTo(this.sock);
    this.sock.end();
  }

  /** Stops reading this client while replies pile up (see HIGH_WATER, MAX_PENDING). */
  private checkPressure(): void {
    if (this.out.size > FLUSH_BYTES) this.out.flushTo(this.sock);
    if (
      !this.parser.paused &&
      (this.sock.writableLength + this.queuedBytes() > HIGH_WATER ||
        this.queue.length + this.loading > MAX_PENDING)
    ) {
      this.pause();
      this.ctx.counters.backpressurePauses++;
    }
  }

  private pause(): void {
    this.parser.paused = true;
    this.sock.pause();
  }

  private maybeResume(): void {
    if (
      !this.parser.paused ||
      this.closed ||
      this.closeWhenFlushed ||
      this.writing ||
      this.sock.writableLength + this.queuedBytes() > HIGH_WATER / 2 ||
      this.queue.length + this.loading > MAX_PENDING / 2
    ) {
      return;
    }
    this.parser.resume();
    this.out.flushTo(this.sock);
    if (!this.parser.paused) this.sock.resume();
  }

  private signal(): AbortSignal {
    this.ac ??= new AbortController();
    return this.ac.signal;
  }

  // ── ParserSink ──

  protocolError(reply: string, close: boolean): void {
    this.ctx.counters.protocolErrors++;
    // noreply silences errors too, as on memcached: a client that sent noreply reads no reply to the
    // command, and an error line would be taken as the reply to its next one (pymemcache's default set).
    if (this.parser.noreply && !close) return;
    this.line(reply);
    if (close) {
      this.closeWhenFlushed = true;
      this.parser.paused = true;
    }
    this.checkPressure();
  }

  command(p: MemcachedParser): void {
    switch (p.cmd) {
      case 'get':
        this.get(p, false);
        break;
      case 'gets':
        this.get(p, true);
        break;
      case 'set':
      case 'add':
      case 'replace':
        this.store(p, p.cmd);
        break;
      case 'delete':
        this.delete(p);
        break;
      case 'touch':
        this.touch(p);
        break;
      case 'version':
        this.line(`VERSION ${this.ctx.opts.version}`);
        break;
      case 'stats':
        if (p.arg === '') this.stats();
        else this.line('ERROR');
        break;
      case 'verbosity':
        if (!p.noreply) this.line('OK');
        break;
      case 'quit':
        this.closeWhenFlushed = true;
        this.parser.destroy();
        return;
      default:
        this.unsupported(p.cmd, p.noreply);
    }
    this.checkPressure();
  }

  private unsupported(_cmd: CommandName, noreply: boolean): void {
    if (!noreply) this.line(NOT_SUPPORTED);
  }

  // ── get / gets ──

  private get(p: MemcachedParser, cas: boolean): void {
    const group = this.ctx.group;
    const n = p.keyCount;
    this.ctx.counters.getKeys += n;
    // A batch of a get line too long to take at once (MemcachedParser.more): its values, and END only
    // after the last batch (which may have no keys). Its failed loads read as misses (see renderValues).
    const end = !p.more;
    const batched = p.batched;
    if (n === 0) {
      if (end) this.target().bytes(END);
      return;
    }
    if (n === 1 && !batched && this.queue.length === 0) {
      // The hit path.
      let v: Buffer | undefined;
      try {
        v = group.server.getCached(p.keys[0]);
      } catch (err) {
        this.line(this.errorReply(p.keys[0], err));
        return;
      }
      if (v !== undefined) {
        const o = this.out;
        writeValue(o, p.line, p.keyStart[0], p.keyEnd[0], v, cas);
        o.bytes(END);
        return;
      }
      this.loadKeys([p.keys[0]], [undefined], [0], cas);
      return;
    }
    // A multi-get: every key looked up first (into a reused array); when all hit, the reply is formatted
    // straight from the command line's key bytes, like a single get. A miss or an error takes the general path.
    const found = this.found;
    let m = 0; // the first key that is not a hit
    let err: Error | undefined;
    for (; m < n; m++) {
      let v: Buffer | undefined;
      try {
        v = group.server.getCached(p.keys[m]);
      } catch (e) {
        err = e as Error;
      }
      if (v === undefined) break;
      found[m] = v;
    }
    if (m === n && this.queue.length === 0) {
      const o = this.out;
      for (let i = 0; i < n; i++) writeValue(o, p.line, p.keyStart[i], p.keyEnd[i], found[i]!, cas);
      if (end) o.bytes(END);
      // Do not pin cache buffers until the next multi-get, nor keep a huge array.
      if (n > 1024) found.length = 0;
      else found.fill(undefined, 0, n);
      return;
    }
    const keys = p.keys.slice(0, n);
    const values: Array<Buffer | Error | undefined> = found.slice(0, m);
    values.length = n;
    if (n > 1024) found.length = 0;
    else found.fill(undefined, 0, m);
    const misses: number[] = [];
    if (m < n) {
      if (err !== undefined) values[m] = err;
      else misses.push(m);
    }
    for (let i = m + 1; i < n; i++) {
      try {
        const v = group.server.getCached(keys[i]);
        if (v === undefined) misses.push(i);
        else values[i] = v;
      } catch (e) {
        values[i] = e as Error;
      }
    }
    if (misses.length === 0) {
      renderValues(this.target(), keys, values, cas, this, end, batched);
      return;
    }
    this.loadKeys(keys, values, misses, cas, end, batched);
  }

  /**
   * Loads the missed keys in parallel, in this tick (right after their lookup): the keys of one owner
   * leave in one multiplexed round to it, and each joins its key's flight.
   */
  private loadKeys(
    keys: string[],
    values: Array<Buffer | Error | undefined>,
    misses: number[],
    cas: boolean,
    end = true,
    batched = false,
  ) {
    const group = this.ctx.group;
    const slot = this.slot();
    const signal = this.signal();
    let left = misses.length;
    this.loading += left;
    const settle = () => {
      this.loading--;
      if (--left > 0) return;
      renderValues(slot.out, keys, values, cas, this, end, batched);
      this.filled(slot);
      this.flush();
    };
    for (const i of misses) {
      group.server.loadAfterMiss(keys[i], { signal }).then(
        (e) => {
          values[i] = e.value;
          settle();
        },
        (err) => {
          if (isNotFound(err)) this.ctx.counters.getNotFound++;
          else values[i] = err instanceof Error ? err : new Error(String(err));
          settle();
        },
      );
    }
  }

  /** The reply line for an error of `key`'s load (counted, logged). */
  errorReply(key: string, err: unknown): string {
    const name = (err as Error)?.name ?? 'Error';
    const message = oneLine((err as Error)?.message ?? String(err));
    if (name === 'InvalidKeyError') {
      this.ctx.counters.protocolErrors++;
      return `CLIENT_ERROR ${message}`;
    }
    this.ctx.counters.serverErrors++;
    this.ctx.opts.onLoadError?.(key, err);
    return `SERVER_ERROR ${name}: ${message}`;
  }

  // ── writes ──

  /**
   * Runs a write; later commands of this connection wait for it (a `get` after a `set` sees the set, as
   * on memcached), and its reply takes its place in the queue (none with noreply).
   */
  private write(key: string, noreply: boolean, run: () => Promise<string>): void {
    const slot = noreply ? undefined : this.slot();
    this.writing = true;
    this.pause();
    const done = (reply: string) => {
      this.writing = false;
      if (slot !== undefined) {
        slot.out.text(reply, true);
        slot.out.crlf();
        this.filled(slot);
      }
      // The commands behind it run now (a pipelined write each settles in a later microtask); their replies
      // leave together, once this round of promise jobs is over (`flushSoon`), not a socket write each.
      this.maybeResume();
      this.flushSoon();
    };
    let p: Promise<string>;
    try {
      p = run();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(done, (err) => done(this.errorReply(key, err)));
  }

  private store(p: MemcachedParser, mode: 'set' | 'add' | 'replace'): void {
    this.ctx.counters.cmdSet++;
    const group = this.ctx.group;
    if (typeof group.set !== 'function') {
      this.unsupported(mode, p.noreply);
      return;
    }
    const key = p.keys[0];
    const item = encodeItem(p.value, p.flags); // a copy: p.value is a view of the input
    const ttlMs = exptimeToTtlMs(p.exptime, Date.now());
    this.write(key, p.noreply, async () => {
      if (mode !== 'set') {
        const exists = await this.present(key);
        if (exists === (mode === 'add')) return 'NOT_STORED';
      }
      // Already expired (negative exptime, or an absolute time in the past): memcached stores an item
      // nobody can read, i.e. the key has no cached value any more — the same as a remove here.
      if (ttlMs === 0) await group.remove(key);
      else await group.set!(key, item, ttlMs === undefined ? undefined : { ttlMs });
      return 'STORED';
    });
  }

  /** Whether `key` has a value through the normal read path (cached, at its owner, or from the origin). */
  private async present(key: string): Promise<boolean> {
    const group = this.ctx.group;
    if (group.server.getCached(key) !== undefined) return true;
    try {
      await group.server.loadAfterMiss(key, { signal: this.signal() });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  private delete(p: MemcachedParser): void {
    this.ctx.counters.cmdDelete++;
    const key = p.keys[0];
    const group = this.ctx.group;
    // Cluster-wide remove; it cannot tell whether some node held the key, so it answers DELETED.
    this.write(key, p.noreply, async () => {
      await group.remove(key);
      return 'DELETED';
    });
  }

  private touch(p: MemcachedParser): void {
    this.ctx.counters.cmdTouch++;
    const group = this.ctx.group;
    if (typeof group.set !== 'function') {
      this.unsupported('touch', p.noreply);
      return;
    }
    const key = p.keys[0];
    const ttlMs = exptimeToTtlMs(p.exptime, Date.now());
    this.write(key, p.noreply, async () => {
      let v = group.server.getCached(key);
      if (v === undefined) {
        try {
          v = (await group.server.loadAfterMiss(key, { signal: this.signal() })).value;
        } catch (err) {
          if (isNotFound(err)) return 'NOT_FOUND';
          throw err;
        }
      }
      if (ttlMs === 0) await group.remove(key);
      else await group.set!(key, Buffer.from(v), ttlMs === undefined ? undefined : { ttlMs });
      return 'TOUCHED';
    });
  }

  // ── stats ──

  private stats(): void {
    const { group, counters } = this.ctx;
    const s = group.stats;
    const main = group.cacheStats('main');
    const hot = group.cacheStats('hot');
    const now = Date.now();
    const rows: Array<[string, string | number]> = [
      ['pid', process.pid],
      ['uptime', Math.floor((now - this.ctx.started) / 1000)],
      ['time', Math.floor(now / 1000)],
      ['version', this.ctx.opts.version],
      ['pointer_size', 64],
      ['curr_connections', counters.currConnections],
      ['total_connections', counters.totalConnections],
      ['rejected_connections', counters.rejectedConnections],
      ['max_connections', this.ctx.maxConnections],
      // groupcache's counters of the whole group (every front, the library and peers' requests).
      ['cmd_get', s.gets],
      ['get_hits', s.cacheHits],
      ['get_misses', s.loads],
      ['cmd_set', counters.cmdSet],
      ['cmd_touch', counters.cmdTouch],
      ['curr_items', main.items + hot.items],
      ['bytes', main.bytes + hot.bytes],
      ['limit_maxbytes', group.cacheBytes],
      ['evictions', main.evictions + hot.evictions],
      ['item_size_max', this.ctx.opts.maxValueBytes],
      ['threads', 1],
      // gossipcache's own.
      ['gossipcache_group', group.name],
      ['gossipcache_loads_deduped', s.loadsDeduped],
      ['gossipcache_peer_loads', s.peerLoads],
      ['gossipcache_peer_errors', s.peerErrors],
      ['gossipcache_owner_load_errors', s.ownerLoadErrors],
      ['gossipcache_local_loads', s.localLoads],
      ['gossipcache_local_load_errors', s.localLoadErrs],
      ['gossipcache_hot_items', hot.items],
      ['gossipcache_hot_bytes', hot.bytes],
      ['gossipcache_memcached_get_keys', counters.getKeys],
      ['gossipcache_memcached_get_not_found', counters.getNotFound],
      ['gossipcache_memcached_deletes', counters.cmdDelete],
      ['gossipcache_memcached_protocol_errors', counters.protocolErrors],
      ['gossipcache_memcached_server_errors', counters.serverErrors],
      ['gossipcache_memcached_backpressure_pauses', counters.backpressurePauses],
      ['gossipcache_memcached_idle_closed_for_new', counters.idleClosedForNew],
      ['gossipcache_memcached_stalled_senders_closed', counters.stalledSendersClosed],
      ['gossipcache_memcached_write_buffered_bytes', writeBuffered(this.ctx)],
    ];
    const o = this.target();
    for (const [k, v] of rows) o.text(`STAT ${k} ${v}\r\n`);
    o.bytes(END);
  }
}

/** `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`, the key echoed from src[ks, ke). */
function writeValue(o: Out, src: Buffer, ks: number, ke: number, v: Buffer, cas: boolean): void {
  o.bytes(VALUE_SP);
  o.bytes(src, ks, ke);
  writeValueRest(o, v, cas);
}

function writeValueRest(o: Out, v: Buffer, cas: boolean): void {
  const flagged = hasFlagsHeader(v);
  const start = flagged ? FLAGS_HEADER_BYTES : 0;
  o.byte(32);
  o.uint(flagged ? flagsOf(v) : 0);
  o.byte(32);
  o.uint(v.length - start);
  if (cas) {
    o.byte(32);
    o.text(casUnique(v));
  }
  o.crlf();
  o.shared(v, start, v.length);
  o.crlf();
}

/**
 * The reply of a multi-get once every key is settled: the values found, then END. One failed load (not a
 * NotFound) fails the whole command with SERVER_ERROR: a client cannot tell a partial answer from misses.
 * `end`: the get's last keys (false for a batch of a split get line: MemcachedParser.more). `batched`: a batch
 * of such a line, whose earlier values may be out already: a failed load there is counted and logged but
 * answered as a miss, so the reply stays VALUE blocks and one END (an error line in the middle would put the
 * client out of step with the stream).
 */
function renderValues(
  o: Out,
  keys: string[],
  values: Array<Buffer | Error | undefined>,
  cas: boolean,
  conn: Conn,
  end = true,
  batched = false,
): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v instanceof Error) {
      const reply = conn.errorReply(keys[i], v);
      if (batched) continue;
      o.text(reply, true);
      o.crlf();
      return;
    }
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === undefined || v instanceof Error) continue;
    o.bytes(VALUE_SP);
    o.text(keys[i], true);
    writeValueRest(o, v as Buffer, cas);
  }
  if (end) o.bytes(END);
}

/** A single line of at most 300 characters (a reply line must not contain CR or LF). */
function oneLine(s: string): string {
  const t = s.replace(/[\r\n]+/g, ' ');
  return t.length > 300 ? t.slice(0, 300) + '...' : t;
}
