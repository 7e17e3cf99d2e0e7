// The real network under SWIM: UDP datagrams for probes and gossip, TCP for the one-request/one-reply
// stream path (join, push-pull, fallback ping) — both on the same port, like memberlist. Every message
// is sealed by the Keyring (encrypted + authenticated when keys are installed). Anything hostile or
// broken — garbage, oversize datagrams or frames, slow peers, refused connections — is dropped,
// counted and at most logged; nothing here throws into the protocol or crashes the process.
//
// Every sealed message is bound to its receiver (keyring.ts): a datagram or stream request to the
// advertised address the protocol names as the receiver, a reply to its request. The inbound TCP side
// keeps connections that have not yet sent an authentic first frame apart from authenticated ones
// (their own small cap, the oldest closed to make room, a short deadline, a byte budget), so idle or
// dribbling connections from someone without the key cannot hold the port against members.

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { formatHostPort, type HostPort, parseHostPort } from '../address.js';
import { type Logger, silentLogger } from '../logger.js';
import { ANY_RECEIVER, Keyring, receiverTag, replyTag } from './keyring.js';
import { DEFAULT_GOSSIP_PORT } from './seeds.js';
import type { Transport } from './transport.js';

export interface UdpTcpTransportOptions {
  /** `host:port` to bind UDP and TCP on (same port). Port 0 = one free port for both. */
  bindAddr: string;
  /**
   * `host[:port]` peers use to reach this node (no port or port 0 = the bound port). Default: the bind address, or — when bound to 0.0.0.0
   * / :: — the first non-loopback address of this machine, with the bound port.
   */
  advertiseAddr?: string;
  /** Seals every message; default a keyring with no keys (plaintext). */
  keyring?: Keyring;
  /** Largest payload sendPacket accepts. Default 1350 (keeps sealed datagrams under ~1400 bytes: one Ethernet frame). */
  maxPacketBytes?: number;
  /** Largest stream message either way, bytes after sealing. Default 4 MiB. */
  maxStreamBytes?: number;
  /** Longest an inbound stream may take from accept to reply sent (defeats slow peers). Default 10 s. */
  inboundTimeoutMs?: number;
  /**
   * Longest an inbound connection may take from accept to a complete, authentic first frame; then it
   * is closed (counted in streamTimeouts). Default 2 s: a member sends its frame at once (a push-pull
   * of 10 000 members is ~0.7 MB: 0.6 s at 10 Mbit/s). Raise it for very large clusters on slow links.
   */
  authTimeoutMs?: number;
  /**
   * Most inbound connections not yet past their first authentic frame. When full, a new connection
   * closes the oldest such one (counted in streamsEvicted) instead of being refused, so connections
   * that never authenticate cannot shut members out. Default 64.
   */
  maxPendingStreams?: number;
  /**
   * Most bytes buffered, all connections together, for first frames not yet authenticated (each one
   * is also bounded by maxStreamBytes). Past it the oldest such connections are closed. Default 16 MiB.
   */
  maxPendingBytes?: number;
  /** Most authenticated inbound streams served at once; more are refused (counted). Default 256. */
  maxInboundStreams?: number;
  /**
   * Which peer IPs may be contacted or heard (memberlist's CIDRsAllowed idea); others are dropped and
   * counted as `filtered`. Default: all. Hosts that are not IP literals never pass a filter.
   */
  allowAddress?: (ip: string) => boolean;
  logger?: Logger;
}

/** Counters of the transport (cumulative). Drops of hostile or broken input are the ones to watch. */
export interface TransportStats {
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  sendErrors: number;
  /** Datagrams or stream frames over the size limits (both directions). */
  oversize: number;
  /** Undecodable framing or envelope (too short, unknown format, bad sender field). */
  malformed: number;
  /** No installed key authenticates it: wrong key, tampered, or encrypted while this node has no key. */
  decryptFailures: number;
  /** Plaintext received while keys are installed. */
  plaintextRejected: number;
  /** Replays inside the window plus messages whose timestamp is outside it. */
  replayed: number;
  /** Authentic messages bound to another receiver (replayed from another member's traffic), or a reply to another request. */
  misaddressed: number;
  /** Unbound (older format) messages refused because receiver binding is required. */
  unbound: number;
  /** Unbound messages accepted (receiver binding 'off' or 'send'): some node still sends the older format. */
  unboundAccepted: number;
  streamsIn: number;
  streamsOut: number;
  /** Streams that failed: refused, reset, closed early, handler rejected. */
  streamErrors: number;
  streamTimeouts: number;
  /** Authenticated inbound streams refused because maxInboundStreams were already being served. */
  streamsRefused: number;
  /** Not-yet-authenticated connections closed to make room (maxPendingStreams or maxPendingBytes reached). */
  streamsEvicted: number;
  /** Datagrams and streams to or from addresses `allowAddress` refuses. */
  filtered: number;
  /** onPacket / onRequest handlers that threw (a bug upstream; the transport keeps going). */
  handlerErrors: number;
}

const FRAME_HEADER = 4;

/** Clear error for a failed bind: says what is wrong and what to do. */
function bindError(addr: string, proto: string, err: NodeJS.ErrnoException): Error {
  const code = err.code ?? 'unknown';
  const fix = 'set GOSSIPCACHE_GOSSIP_ADDR to a free host:port';
  let what: string;
  if (code === 'EADDRINUSE') what = `${addr} is already in use (EADDRINUSE); ${fix}`;
  else if (code === 'EADDRNOTAVAIL')
    what = `${addr} is not an address of this machine (EADDRNOTAVAIL); use 0.0.0.0 or one of its addresses`;
  else if (code === 'EACCES') what = `${addr} needs privileges (EACCES); use a port above 1023`;
  else what = `${addr} (${proto}): ${err.message}`;
  return Object.assign(new Error(`bind failed: ${what}`), { code, cause: err });
}

/** First non-internal address of `family`, for advertising when bound to a wildcard address. */
function guessAdvertiseHost(family: 4 | 6): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if ((family === 4 && a.family === 'IPv4') || (family === 6 && a.family === 'IPv6' && a.scopeid === 0))
        return a.address;
    }
  }
  return undefined;
}

/**
 * Reads one length-prefixed frame ([u32 BE length][body]) from a stream, refusing lengths over `max`.
 * `push` returns the body once complete, 'oversize' when the header announces too much, or undefined
 * while more bytes are needed.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private need = -1;

  constructor(private readonly max: number) {}

  /** Bytes held so far. */
  get buffered(): number {
    return this.have;
  }

  push(chunk: Buffer): Buffer | 'oversize' | undefined {
    this.chunks.push(chunk);
    this.have += chunk.length;
    if (this.need < 0) {
      if (this.have < FRAME_HEADER) return undefined;
      const head = Buffer.concat(this.chunks);
      this.chunks = [head];
      this.need = head.readUInt32BE(0);
      if (this.need > this.max) return 'oversize';
    }
    if (this.have < FRAME_HEADER + this.need) return undefined;
    const all = Buffer.concat(this.chunks);
    return all.subarray(FRAME_HEADER, FRAME_HEADER + this.need);
  }
}

function frame(body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/**
 * Transport over real sockets. Create with `UdpTcpTransport.listen(opts)`; the protocol then sets
 * `onPacket` / `onRequest`. A stream request carries the sender's advertised address (inside the
 * sealed message), so `onRequest` sees the same `from` the datagram path would.
 */
export class UdpTcpTransport implements Transport {
  onPacket: ((from: string, data: Uint8Array) => void) | null = null;
  onRequest: ((from: string, data: Uint8Array) => Promise<Uint8Array>) | null = null;
  readonly maxPacketBytes: number;
  /** Actual bound address (`host:port`, the real port when 0 was asked for). */
  readonly boundAddr: string;
  private readonly counters: Omit<
    TransportStats,
    | 'malformed'
    | 'decryptFailures'
    | 'plaintextRejected'
    | 'replayed'
    | 'misaddressed'
    | 'unbound'
    | 'unboundAccepted'
  > & { malformed: number } = {
    packetsSent: 0,
    packetsReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    sendErrors: 0,
    oversize: 0,
    malformed: 0,
    streamsIn: 0,
    streamsOut: 0,
    streamErrors: 0,
    streamTimeouts: 0,
    streamsRefused: 0,
    streamsEvicted: 0,
    filtered: 0,
    handlerErrors: 0,
  };
  /** Open outbound (request) streams; cut on close. */
  private readonly sockets = new Set<Socket>();
  /** Open inbound streams (authenticated or not); cut on close. */
  private readonly inbound = new Set<Socket>();
  /**
   * Inbound connections without an authentic first frame yet, oldest first (Map order), each with the
   * bytes it buffered and how to close it. `inbound.size - pending.size` is the authenticated ones.
   */
  private readonly pending = new Map<Socket, { bytes: number; evict: () => void }>();
  private pendingBytes = 0;
  /** receiverTag of this node's advertised address: what datagrams and requests to it are bound to. */
  private readonly selfTag: Buffer;
  private readonly tags = new Map<string, Buffer>();
  private readonly parsed = new Map<string, HostPort | null>();
  private readonly lastWarn = new Map<string, number>();
  private closing: Promise<void> | undefined;
  private readonly maxDatagram: number;
  private readonly maxStreamBytes: number;
  private readonly inboundTimeoutMs: number;
  private readonly authTimeoutMs: number;
  private readonly maxInbound: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly log: Logger;
  private readonly allow: ((ip: string) => boolean) | undefined;

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
    readonly localAddr: string,
    boundAddr: string,
    private readonly keyring: Keyring,
    opts: UdpTcpTransportOptions,
  ) {
    this.boundAddr = boundAddr;
    this.maxPacketBytes = opts.maxPacketBytes ?? 1350;
    this.maxDatagram = this.maxPacketBytes + keyring.overhead;
    this.maxStreamBytes = opts.maxStreamBytes ?? 4 * 1024 * 1024;
    this.inboundTimeoutMs = opts.inboundTimeoutMs ?? 10_000;
    this.authTimeoutMs = opts.authTimeoutMs ?? 2_000;
    this.maxInbound = opts.maxInboundStreams ?? 256;
    this.maxPending = Math.max(1, opts.maxPendingStreams ?? 64);
    this.maxPendingBytes = opts.maxPendingBytes ?? 16 * 1024 * 1024;
    this.selfTag = receiverTag(localAddr);
    this.log = opts.logger ?? silentLogger;
    this.allow = opts.allowAddress;
    udp.on('message', (msg, rinfo) => this.receivePacket(msg, rinfo));
    udp.on('error', (err) => this.warn('udp', { err: err.message }, 'gossip UDP socket error'));
    tcp.on('connection', (s) => this.serveStream(s));
    tcp.on('error', (err) => this.warn('tcp', { err: err.message }, 'gossip TCP listener error'));
  }

  /** Bind UDP and TCP on `opts.bindAddr`. Rejects with a clear "bind failed: …" error. */
  static async listen(opts: UdpTcpTransportOptions): Promise<UdpTcpTransport> {
    const bind = parseHostPort(opts.bindAddr, { defaultPort: DEFAULT_GOSSIP_PORT });
    const advertised = opts.advertiseAddr ? parseHostPort(opts.advertiseAddr, { defaultPort: 0 }) : undefined; // port 0 = the bound one
    let host = bind.host;
    if (isIP(host) === 0) {
      try {
        host = (await lookup(host)).address;
      } catch (err) {
        throw new Error(
          `bind failed: cannot resolve "${bind.host}" (${(err as Error).message}); use an IP address`,
        );
      }
    }
    const family = isIP(host) === 6 ? 6 : 4;
    const keyring = opts.keyring ?? new Keyring();
    // Port 0: the kernel picks a free TCP port; the same number may be taken for UDP, so retry.
    const attempts = bind.port === 0 ? 10 : 1;
    for (let i = 0; ; i++) {
      const tcp = createServer();
      const shown = formatHostPort({ host: bind.host, port: bind.port });
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host, port: bind.port, exclusive: true }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        throw bindError(shown, 'TCP', err as NodeJS.ErrnoException);
      }
      const port = (tcp.address() as { port: number }).port;
      const udp = createSocket(family === 6 ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ address: host, port, exclusive: true }, () => {
            udp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        await new Promise<void>((r) => tcp.close(() => r()));
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && i + 1 < attempts) continue;
        throw bindError(formatHostPort({ host: bind.host, port }), 'UDP', err as NodeJS.ErrnoException);
      }
      try {
        // Room for bursts of gossip (memberlist asks for 2 MiB too); the OS may cap it, which is fine.
        udp.setRecvBufferSize(2 * 1024 * 1024);
      } catch {}
      const boundAddr = formatHostPort({ host, port });
      let advertise: string;
      if (advertised) {
        advertise = formatHostPort({ host: advertised.host, port: advertised.port || port });
      } else if (host === '0.0.0.0' || host === '::') {
        const guess = guessAdvertiseHost(family);
        advertise = formatHostPort({ host: guess ?? (family === 6 ? '::1' : '127.0.0.1'), port });
        if (!guess)
          opts.logger?.warn(
            { bindAddr: boundAddr },
            'no non-loopback address found to advertise; set GOSSIPCACHE_GOSSIP_ADVERTISE_ADDR',
          );
      } else advertise = boundAddr;
      return new UdpTcpTransport(udp, tcp, advertise, boundAddr, keyring, opts);
    }
  }

  /** Counters, including the keyring's refusals. */
  stats(): TransportStats {
    const k = this.keyring.stats;
    return {
      ...this.counters,
      malformed: this.counters.malformed + k.malformed,
      decryptFailures: k.decryptFailures,
      plaintextRejected: k.plaintextRejected,
      replayed: k.replayed + k.stale,
      misaddressed: k.misaddressed,
      unbound: k.unbound,
      unboundAccepted: k.unboundAccepted,
    };
  }

  sendPacket(to: string, data: Uint8Array, receiver: string = to): void {
    if (this.closing) return;
    if (data.length > this.maxPacketBytes) {
      this.counters.oversize++;
      this.log.debug({ to, bytes: data.length, max: this.maxPacketBytes }, 'oversize datagram not sent');
      return;
    }
    const dst = this.parse(to);
    if (!dst) return;
    const wire = this.keyring.seal('packet', data, this.tagOf(receiver));
    this.counters.packetsSent++;
    this.counters.bytesSent += wire.length;
    try {
      this.udp.send(wire, dst.port, dst.host, (err) => {
        if (err) {
          this.counters.sendErrors++;
          this.log.debug({ to, err: err.message }, 'datagram send failed');
        }
      });
    } catch {
      this.counters.sendErrors++; // socket closing, or an address the OS refuses synchronously
    }
  }

  request(
    to: string,
    data: Uint8Array,
    timeoutMs: number,
    receiver: string | null = to,
  ): Promise<Uint8Array> {
    if (this.closing) return Promise.reject(new Error('transport closed'));
    const dst = this.parse(to);
    if (!dst) return Promise.reject(new Error(`request to "${to}": not an allowed host:port address`));
    const body = this.keyring.seal(
      'request',
      withSender(this.localAddr, data),
      receiver === null ? ANY_RECEIVER : this.tagOf(receiver),
    );
    const expectReply = replyTag(body);
    if (body.length > this.maxStreamBytes) {
      this.counters.oversize++;
      return Promise.reject(
        new Error(`request to ${to}: ${body.length} bytes exceeds ${this.maxStreamBytes}`),
      );
    }
    this.counters.streamsOut++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const sock = tcpConnect({ host: dst.host, port: dst.port });
      this.sockets.add(sock);
      const reader = new FrameReader(this.maxStreamBytes);
      let done = false;
      const finish = (err: Error | null, reply?: Uint8Array) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.sockets.delete(sock);
        sock.destroy();
        if (err) {
          this.counters.streamErrors++;
          reject(new Error(`request to ${to}: ${err.message}`));
        } else resolve(reply!);
      };
      const timer = setTimeout(() => {
        this.counters.streamTimeouts++;
        finish(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.setNoDelay(true);
      sock.once('connect', () => sock.write(frame(body)));
      sock.on('data', (chunk: Buffer) => {
        const got = reader.push(chunk);
        if (got === undefined) return;
        if (got === 'oversize') {
          this.counters.oversize++;
          return finish(new Error(`reply larger than ${this.maxStreamBytes} bytes`));
        }
        this.counters.bytesReceived += got.length + FRAME_HEADER;
        const opened = this.keyring.open('response', got, expectReply);
        if (!opened.ok) return finish(new Error(`reply refused (${opened.reason})`));
        finish(null, opened.payload);
      });
      sock.on('error', (err) => finish(err));
      sock.on('close', () => finish(new Error(this.closing ? 'transport closed' : 'closed without a reply')));
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.onPacket = null;
      this.onRequest = null;
      // dgram.send resolves even an IP literal through lookup() and sends on a later tick; a socket
      // closed in the same tick silently drops those datagrams. Let them out first: a leave announced
      // just before close() must reach the peers.
      await new Promise<void>((r) => setImmediate(r));
      for (const s of this.sockets) s.destroy();
      for (const s of this.inbound) s.destroy();
      this.sockets.clear();
      this.inbound.clear();
      this.pending.clear();
      this.pendingBytes = 0;
      await Promise.all([
        new Promise<void>((r) => {
          try {
            this.udp.close(() => r());
          } catch {
            r();
          }
        }),
        new Promise<void>((r) => this.tcp.close(() => r())),
      ]);
    })();
    return this.closing;
  }

  private receivePacket(msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.packetsReceived++;
    this.counters.bytesReceived += msg.length;
    const ip = unmapIPv4(rinfo.address);
    if (this.allow && !this.allow(ip)) {
      this.counters.filtered++;
      return;
    }
    const from = formatHostPort({ host: ip, port: rinfo.port });
    if (msg.length > this.maxDatagram) {
      this.counters.oversize++;
      return;
    }
    const opened = this.keyring.open('packet', msg, this.selfTag);
    if (!opened.ok) {
      this.refused(from, opened.reason);
      return;
    }
    const h = this.onPacket;
    if (!h) return;
    try {
      h(from, opened.payload);
    } catch (err) {
      this.counters.handlerErrors++;
      this.warn('handler', { from, err: (err as Error).message }, 'membership packet handler threw');
    }
  }

  private serveStream(sock: Socket): void {
    if (this.allow && !this.allow(unmapIPv4(sock.remoteAddress ?? ''))) {
      this.counters.filtered++;
      sock.destroy();
      return;
    }
    if (this.closing) {
      sock.destroy();
      return;
    }
    // Room for the newcomer: the oldest connection that has not authenticated yet goes. Refusing the
    // newcomer instead would let idle connections hold the port; a member sends its frame at once and
    // is past this stage within a round trip.
    if (this.pending.size >= this.maxPending) this.evictOldestPending();
    this.counters.streamsIn++;
    this.inbound.add(sock);
    const peer = formatHostPort({ host: unmapIPv4(sock.remoteAddress ?? '?'), port: sock.remotePort ?? 0 });
    const reader = new FrameReader(this.maxStreamBytes);
    const acceptedAt = performance.now();
    let settled = false;
    const drop = (why: 'timeout' | 'error' | 'oversize' | 'evicted' | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.leavePending(sock);
      this.inbound.delete(sock);
      if (why === 'timeout') this.counters.streamTimeouts++;
      else if (why === 'oversize') this.counters.oversize++;
      else if (why === 'error') this.counters.streamErrors++;
      else if (why === 'evicted') this.counters.streamsEvicted++;
      sock.destroy();
    };
    this.pending.set(sock, { bytes: 0, evict: () => drop('evicted') });
    // Until an authentic first frame: the short deadline; after it, what is left of the whole
    // exchange's deadline. A peer that dribbles bytes (slowloris) is cut off either way.
    let timer = setTimeout(() => drop('timeout'), Math.min(this.authTimeoutMs, this.inboundTimeoutMs));
    sock.on('error', () => drop('error'));
    sock.on('close', () => {
      this.inbound.delete(sock);
      drop('error'); // no-op once the reply went out; otherwise the peer hung up early
    });
    sock.on('data', (chunk: Buffer) => {
      if (settled) return;
      const p = this.pending.get(sock);
      if (p) {
        p.bytes += chunk.length;
        this.pendingBytes += chunk.length;
        if (this.pendingBytes > this.maxPendingBytes) this.shedPendingBytes(sock);
        if (settled) return;
      }
      const got = reader.push(chunk);
      if (got === undefined) return;
      if (got === 'oversize') return drop('oversize');
      // One message each way: keep reading (so the peer's FIN closes the socket promptly) but
      // discard anything after the frame, and cut off a peer that keeps sending.
      sock.removeAllListeners('data');
      let extra = 0;
      sock.on('data', (more: Buffer) => {
        extra += more.length;
        if (extra > 64 * 1024) drop('oversize');
      });
      this.leavePending(sock);
      this.counters.bytesReceived += got.length + FRAME_HEADER;
      const req = this.authenticate(got, peer);
      if (!req) return drop(null);
      if (this.inbound.size - this.pending.size > this.maxInbound) {
        this.counters.streamsRefused++;
        return drop(null);
      }
      clearTimeout(timer);
      timer = setTimeout(
        () => drop('timeout'),
        Math.max(0, acceptedAt + this.inboundTimeoutMs - performance.now()),
      );
      void this.answer(req).then(
        (reply) => {
          if (settled) return;
          if (!reply) return drop(null);
          settled = true;
          clearTimeout(timer);
          sock.end(frame(reply));
          // end() flushes, then the peer closes; one that never reads is cut off after the deadline.
          setTimeout(() => sock.destroy(), this.inboundTimeoutMs).unref();
        },
        () => drop('error'),
      );
    });
  }

  /** A connection leaves the not-yet-authenticated set (authenticated, or closed). */
  private leavePending(sock: Socket): void {
    const p = this.pending.get(sock);
    if (!p) return;
    this.pending.delete(sock);
    this.pendingBytes -= p.bytes;
  }

  private evictOldestPending(): void {
    const oldest = this.pending.values().next().value;
    oldest?.evict();
  }

  /** Over the byte budget for unauthenticated frames: close the oldest others, then `current` itself. */
  private shedPendingBytes(current: Socket): void {
    for (const [s, p] of this.pending) {
      if (this.pendingBytes <= this.maxPendingBytes) return;
      if (s !== current) p.evict();
    }
    if (this.pendingBytes > this.maxPendingBytes) this.pending.get(current)?.evict();
  }

  /** Open one inbound request frame: who sent it, what it says, what its reply is bound to; undefined = refused. */
  private authenticate(
    wire: Buffer,
    peer: string,
  ): { from: string; data: Uint8Array; replyTo: Buffer | undefined } | undefined {
    const opened = this.keyring.open('request', wire, this.selfTag);
    if (!opened.ok) {
      this.refused(peer, opened.reason);
      return undefined;
    }
    const msg = splitSender(opened.payload);
    if (!msg) {
      this.counters.malformed++;
      return undefined;
    }
    return { ...msg, replyTo: opened.replyTo };
  }

  /** Dispatch one authenticated request and seal its reply; undefined = no reply (stream is dropped). */
  private async answer(req: {
    from: string;
    data: Uint8Array;
    replyTo: Buffer | undefined;
  }): Promise<Buffer | undefined> {
    const h = this.onRequest;
    if (!h) return undefined;
    let reply: Uint8Array;
    try {
      reply = await h(req.from, req.data);
    } catch (err) {
      this.counters.streamErrors++;
      this.log.debug({ from: req.from, err: (err as Error)?.message }, 'membership request handler rejected');
      return undefined;
    }
    const sealed = this.keyring.seal('response', reply, req.replyTo);
    if (sealed.length > this.maxStreamBytes) {
      this.counters.oversize++;
      return undefined;
    }
    return sealed;
  }

  /** receiverTag of an advertised address (bounded cache: addresses come from the network). */
  private tagOf(addr: string): Buffer {
    let t = this.tags.get(addr);
    if (!t) {
      t = receiverTag(addr);
      if (this.tags.size > 10_000) this.tags.clear();
      this.tags.set(addr, t);
    }
    return t;
  }

  /** Destination of a send: parsed once per address (bounded cache); null = bad or not allowed (counted). */
  private parse(addr: string): HostPort | null {
    let hp = this.parsed.get(addr);
    if (hp === undefined) {
      try {
        hp = parseHostPort(addr);
        if (hp.port === 0) hp = null;
      } catch {
        hp = null;
      }
      if (this.parsed.size > 10_000) this.parsed.clear(); // bounded: addresses come from the network
      this.parsed.set(addr, hp);
    }
    if (hp === null) this.counters.sendErrors++;
    else if (this.allow && !(isIP(hp.host) !== 0 && this.allow(hp.host))) {
      this.counters.filtered++;
      return null;
    }
    return hp;
  }

  private refused(from: string, reason: string): void {
    if (reason === 'decrypt' || reason === 'plaintext')
      this.warn(
        `key:${reason}`,
        { from, reason },
        reason === 'decrypt'
          ? 'dropping gossip that no installed key decrypts: is GOSSIPCACHE_SECRET_KEY the same on every node?'
          : 'dropping unencrypted gossip: the sender has no GOSSIPCACHE_SECRET_KEY',
      );
    else if (reason === 'stale')
      this.warn(
        'stale',
        { from },
        'dropping gossip with a timestamp over 60 s off: are the clocks in sync (NTP)?',
      );
    else if (reason === 'misaddressed')
      // Authentic but meant for another member: a replay of captured traffic (or an address this node
      // no longer advertises). Debug only: an attacker must not be able to flood the logs.
      this.log.debug({ from }, 'dropping gossip bound to another receiver (replayed from other traffic?)');
    else if (reason === 'unbound')
      this.warn(
        'unbound',
        { from },
        'dropping gossip without receiver binding from an older node: finish the rolling upgrade with GOSSIPCACHE_GOSSIP_RECEIVER_BINDING=send on every node first',
      );
  }

  /** Warn at most once a minute per topic: a flood of bad input must not flood the logs. */
  private warn(topic: string, obj: object, msg: string): void {
    const now = Date.now();
    if (now - (this.lastWarn.get(topic) ?? 0) < 60_000) return;
    this.lastWarn.set(topic, now);
    this.log.warn(obj, msg);
  }
}

/**
 * A socket bound to `::` sees IPv4 peers as `::ffff:a.b.c.d`; report them as `a.b.c.d` so addresses
 * match what those peers advertise.
 */
function unmapIPv4(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** Request envelope: [u16 BE length][sender address utf8][data]. */
function withSender(addr: string, data: Uint8Array): Buffer {
  const a = Buffer.from(addr, 'utf8');
  const head = Buffer.allocUnsafe(2);
  head.writeUInt16BE(a.length, 0);
  return Buffer.concat([head, a, data]);
}

function splitSender(buf: Uint8Array): { from: string; data: Uint8Array } | undefined {
  if (buf.length < 2) return undefined;
  const n = (buf[0] << 8) | buf[1];
  if (n === 0 || buf.length < 2 + n) return undefined;
  const from = Buffer.from(buf.buffer, buf.byteOffset + 2, n).toString('utf8');
  return { from, data: buf.subarray(2 + n) };
}
