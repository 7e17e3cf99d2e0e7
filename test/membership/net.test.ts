import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Keyring, receiverTag } from '../../src/membership/keyring.js';
import { UdpTcpTransport, type UdpTcpTransportOptions } from '../../src/membership/net.js';
import { holdConnections } from '../support/hold-connections.js';
import { waitFor } from '../support/wait.js';

const open: UdpTcpTransport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

async function listen(opts: Partial<UdpTcpTransportOptions> = {}): Promise<UdpTcpTransport> {
  const t = await UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0', ...opts });
  open.push(t);
  return t;
}

function port(t: UdpTcpTransport): number {
  return Number(t.localAddr.split(':')[1]);
}

/** The port `t` is bound to (differs from port(t) when it advertises another address). */
function boundPort(t: UdpTcpTransport): number {
  return Number(t.boundAddr.split(':')[1]);
}

/** Resolves with the next datagram `t` hands to the protocol. */
function nextPacket(t: UdpTcpTransport): Promise<{ from: string; data: Uint8Array }> {
  return new Promise((resolve) => {
    t.onPacket = (from, data) => resolve({ from, data });
  });
}

/** Length-prefixed frame, as the stream path sends it. */
function framed(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

/** Resolves when `s` closes (a reset from the other side included: events.once would reject on it). */
function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** Connect to 127.0.0.1:`p`; resolves once connected. */
async function dial(p: number): Promise<Socket> {
  const s = connect(p, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

describe('UdpTcpTransport', () => {
  it('binds UDP and TCP on the same free port and advertises it', async () => {
    const t = await listen();
    assert.match(t.localAddr, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(port(t), 0);
    assert.equal(t.boundAddr, t.localAddr);
    assert.equal(t.maxPacketBytes, 1350);
    const adv = await listen({ advertiseAddr: '10.9.9.9' });
    assert.equal(adv.localAddr, `10.9.9.9:${port(adv)}`);
  });

  for (const keyed of [false, true]) {
    it(`exchanges datagrams and requests ${keyed ? 'encrypted' : 'in plaintext'}`, async () => {
      const key = randomBytes(32);
      const a = await listen({ keyring: new Keyring(keyed ? [key] : []) });
      const b = await listen({ keyring: new Keyring(keyed ? [key] : []) });
      const got = nextPacket(b);
      const big = randomBytes(a.maxPacketBytes);
      a.sendPacket(b.localAddr, big);
      const p = await got;
      assert.equal(p.from, a.localAddr);
      assert.deepEqual(Buffer.from(p.data), big);

      b.onRequest = async (from, data) => Buffer.concat([Buffer.from(`${from}|`), data]);
      const reply = await a.request(b.localAddr, Buffer.from('push-pull'), 2000);
      assert.equal(Buffer.from(reply).toString(), `${a.localAddr}|push-pull`);
      // A large stream message (well over a datagram) goes through too.
      const state = randomBytes(512 * 1024);
      b.onRequest = async (_from, data) => data;
      assert.deepEqual(Buffer.from(await a.request(b.localAddr, state, 5000)), state);
      assert.equal(b.stats().decryptFailures, 0);
    });
  }

  it('works over IPv6 loopback too (bracketed addresses)', async (t) => {
    let a: UdpTcpTransport;
    try {
      a = await listen({ bindAddr: '[::1]:0' });
    } catch (err) {
      t.skip(`no IPv6 loopback here: ${(err as Error).message}`);
      return;
    }
    const b = await listen({ bindAddr: '[::1]:0' });
    assert.match(a.localAddr, /^\[::1\]:\d+$/);
    const got = nextPacket(b);
    a.sendPacket(b.localAddr, Buffer.from('v6'));
    assert.equal((await got).from, a.localAddr);
    b.onRequest = async (from) => Buffer.from(from);
    assert.equal(Buffer.from(await a.request(b.localAddr, Buffer.from('x'), 2000)).toString(), a.localAddr);
  });

  it('bound to :: (dual stack), reports IPv4 peers as plain IPv4 addresses', async (t) => {
    let b: UdpTcpTransport;
    try {
      b = await listen({ bindAddr: '[::]:0', advertiseAddr: '127.0.0.1' });
    } catch (err) {
      t.skip(`no IPv6 here: ${(err as Error).message}`);
      return;
    }
    const a = await listen();
    const got = nextPacket(b);
    a.sendPacket(`127.0.0.1:${port(b)}`, Buffer.from('v4'));
    assert.equal((await got).from, a.localAddr);
    b.onRequest = async (from) => Buffer.from(from);
    assert.equal(
      Buffer.from(await a.request(`127.0.0.1:${port(b)}`, Buffer.from('x'), 2000)).toString(),
      a.localAddr,
    );
  });

  it('never sends an oversize datagram and drops one that arrives', async () => {
    const a = await listen();
    const b = await listen();
    let received = 0;
    b.onPacket = () => received++;
    a.sendPacket(b.localAddr, new Uint8Array(a.maxPacketBytes + 1));
    assert.equal(a.stats().oversize, 1);
    assert.equal(a.stats().packetsSent, 0);
    const raw = createSocket('udp4');
    raw.send(Buffer.alloc(2000, 0), port(b), '127.0.0.1');
    await waitFor('oversize datagram counted', () => b.stats().oversize === 1);
    raw.close();
    assert.equal(received, 0);
  });

  it('drops datagrams sealed with another key or unencrypted, and counts them', async () => {
    const a = await listen({ keyring: new Keyring([randomBytes(32)]) });
    const b = await listen({ keyring: new Keyring([randomBytes(32)]) });
    const c = await listen();
    let received = 0;
    b.onPacket = () => received++;
    a.sendPacket(b.localAddr, Buffer.from('hello'));
    c.sendPacket(b.localAddr, Buffer.from('hello'));
    await waitFor(
      'drops counted',
      () => b.stats().decryptFailures === 1 && b.stats().plaintextRejected === 1,
    );
    assert.equal(received, 0);
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 1000), /request to/);
  });

  it('tolerates bad destination addresses without throwing', async () => {
    const a = await listen();
    for (const to of ['', 'nonsense', 'host:99999', '[::1', '127.0.0.1:0'])
      a.sendPacket(to, Buffer.from('x'));
    assert.equal(a.stats().sendErrors, 5);
    await assert.rejects(a.request('nonsense', Buffer.from('x'), 100), /not an allowed host:port/);
  });

  it('neither contacts nor hears addresses the filter refuses', async () => {
    const a = await listen({ allowAddress: (ip) => ip === '127.0.0.2' });
    const b = await listen();
    let received = 0;
    a.onPacket = () => received++;
    a.sendPacket(b.localAddr, Buffer.from('x'));
    a.sendPacket(`localhost:${port(b)}`, Buffer.from('x')); // names never pass a filter
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 500), /not an allowed/);
    b.sendPacket(a.localAddr, Buffer.from('x'));
    b.onRequest = async (_f, d) => d;
    await assert.rejects(b.request(a.localAddr, Buffer.from('x'), 1000));
    await waitFor('filtered drops counted', () => a.stats().filtered === 5);
    assert.equal(received, 0);
    assert.equal(b.stats().packetsReceived, 0);
  });

  it('says clearly when the port is in use (TCP or UDP side)', async () => {
    const a = await listen();
    await assert.rejects(
      UdpTcpTransport.listen({ bindAddr: a.localAddr }),
      (e: Error & { code?: string }) =>
        e.code === 'EADDRINUSE' &&
        e.message ===
          `bind failed: ${a.localAddr} is already in use (EADDRINUSE); set GOSSIPCACHE_GOSSIP_ADDR to a free host:port`,
    );
    // Only the UDP port taken: the half-bound TCP listener must be released again. The port is a
    // random ephemeral one, so on a busy machine another process's loopback connection may take its
    // TCP side in between: then try another port (a leaked listener would fail every time).
    for (let attempt = 1; ; attempt++) {
      const udp = createSocket('udp4');
      udp.bind(0, '127.0.0.1');
      await once(udp, 'listening');
      const p = udp.address().port;
      await assert.rejects(
        UdpTcpTransport.listen({ bindAddr: `127.0.0.1:${p}` }),
        /already in use \(EADDRINUSE\)/,
      );
      udp.close();
      try {
        const again = await listen({ bindAddr: `127.0.0.1:${p}` });
        assert.equal(port(again), p);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE' || attempt === 5) throw err;
      }
    }
  });

  it('says clearly when the address is not local or not resolvable', async () => {
    await assert.rejects(UdpTcpTransport.listen({ bindAddr: '192.0.2.1:0' }), /bind failed: .*EADDRNOTAVAIL/);
    await assert.rejects(
      UdpTcpTransport.listen({ bindAddr: 'no-such-host.invalid:0' }),
      /bind failed: cannot resolve/,
    );
    await assert.rejects(UdpTcpTransport.listen({ bindAddr: 'a b' }), /invalid address/);
    await assert.rejects(
      UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0', advertiseAddr: 'x:y' }),
      /invalid address "x:y"/,
    );
  });

  it('rejects requests that fail: refused, timed out, handler rejects, no handler', async () => {
    const a = await listen();
    const b = await listen();
    // A port nobody listens on.
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const deadPort = (srv.address() as { port: number }).port;
    srv.close();
    await assert.rejects(a.request(`127.0.0.1:${deadPort}`, Buffer.from('x'), 1000), /ECONNREFUSED/);
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 1000), /closed without a reply/);
    b.onRequest = () => new Promise(() => {});
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 200), /no reply within 200 ms/);
    b.onRequest = async () => {
      throw new Error('busy');
    };
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 1000), /closed without a reply/);
    assert.ok(a.stats().streamTimeouts >= 1);
  });

  it('disconnects garbage, oversize frames and slow peers over TCP, and keeps serving', async () => {
    const b = await listen({ inboundTimeoutMs: 300, keyring: new Keyring([randomBytes(32)]) });
    b.onRequest = async (_f, d) => d;
    const closed = (write: (s: ReturnType<typeof connect>) => void) =>
      new Promise<void>((resolve) => {
        const s = connect(port(b), '127.0.0.1', () => write(s));
        s.on('error', () => {});
        s.on('close', () => resolve());
      });
    // HTTP request: its first 4 bytes read as a ~1.2 GB length.
    await closed((s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    // A well-framed body of random bytes: fails authentication.
    await closed((s) => {
      const body = randomBytes(100);
      body[0] = 1; // the AES-GCM format byte, so it reaches decryption
      const head = Buffer.alloc(4);
      head.writeUInt32BE(body.length);
      s.write(Buffer.concat([head, body]));
    });
    // Slowloris: announces 100 bytes, sends 3, then stalls.
    await closed((s) => s.write(Buffer.from([0, 0, 0, 100, 1, 2, 3])));
    // Connects and says nothing.
    await closed(() => {});
    const st = b.stats();
    assert.equal(st.oversize, 1);
    assert.equal(st.decryptFailures, 1);
    assert.equal(st.streamTimeouts, 2);
    const a = await listen({ keyring: new Keyring([]) });
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 1000));
    assert.equal(b.stats().plaintextRejected, 1);
  });

  it('closes a connection without an authentic first frame after the short deadline, dribbling or not', async () => {
    const b = await listen({ authTimeoutMs: 300, keyring: new Keyring([randomBytes(32)]) });
    b.onRequest = async (_f, d) => d;
    const closedAfter = async (s: Socket): Promise<number> => {
      const t0 = performance.now();
      await closed(s);
      return performance.now() - t0;
    };
    const idle = await dial(port(b));
    const dribbler = await dial(port(b));
    dribbler.write(Buffer.from([0, 0, 3, 232]));
    const drip = setInterval(() => dribbler.write(Buffer.of(1)), 50);
    dribbler.once('close', () => clearInterval(drip));
    const [tIdle, tDribble] = await Promise.all([closedAfter(idle), closedAfter(dribbler)]);
    // Timers never fire early by more than a tick; the whole-exchange deadline (10 s) is far away.
    for (const t of [tIdle, tDribble]) assert.ok(t >= 280 && t < 5000, `closed after ${Math.round(t)} ms`);
    assert.equal(b.stats().streamTimeouts, 2);
  });

  it('lets a member through while more idle and dribbling connections than the cap are held', async () => {
    const key = randomBytes(32);
    const b = await listen({
      keyring: new Keyring([key]),
      authTimeoutMs: 1000,
      maxPendingStreams: 8,
      maxInboundStreams: 8,
    });
    let served = 0;
    b.onRequest = async (_f, d) => {
      served++;
      return d;
    };
    const attacker = holdConnections(port(b), 24, 8);
    try {
      await waitFor('the attacker to fill (and overflow) the cap', () => attacker.closedByTarget >= 24);
      const a = await listen({ keyring: new Keyring([key]) });
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) {
        const reply = await a.request(b.localAddr, Buffer.of(i), 3000);
        assert.equal(Buffer.from(reply)[0], i);
      }
      const ms = performance.now() - t0;
      assert.equal(served, 10);
      assert.ok(ms < 20_000, `10 requests took ${Math.round(ms)} ms`);
      assert.ok(attacker.open > 0, 'the attacker held no connection');
    } finally {
      attacker.stop();
    }
    const st = b.stats();
    assert.ok(st.streamsEvicted >= 24, `evicted ${st.streamsEvicted}`);
    assert.equal(st.streamsRefused, 0);
  });

  it('bounds the bytes buffered for first frames not yet authenticated', async () => {
    const key = randomBytes(32);
    const b = await listen({ keyring: new Keyring([key]), maxPendingBytes: 256 * 1024 });
    b.onRequest = async (_f, d) => d;
    // 8 connections each announce a 1 MiB frame and send 64 KiB of it: 512 KiB in all.
    const socks: Socket[] = [];
    let closed = 0;
    for (let i = 0; i < 8; i++) {
      const s = await dial(port(b));
      s.on('close', () => closed++);
      const part = Buffer.alloc(4 + 64 * 1024, 7);
      part.writeUInt32BE(1024 * 1024, 0);
      s.write(part);
      socks.push(s);
      await sleep(20);
    }
    await waitFor('the oldest connections to be closed', () => closed >= 4);
    await sleep(100);
    assert.ok(closed <= 5, `${closed} closed: the budget keeps 3–4 of 64 KiB`);
    assert.ok(
      socks.slice(-3).every((s) => !s.destroyed),
      'the newest were closed',
    );
    assert.ok(b.stats().streamsEvicted >= 4);
    // A member's 100 KiB request still goes through (the oldest unauthenticated ones make room).
    const a = await listen({ keyring: new Keyring([key]) });
    const big = randomBytes(100 * 1024);
    assert.deepEqual(Buffer.from(await a.request(b.localAddr, big, 3000)), big);
    for (const s of socks) s.destroy();
  });

  it('binds datagrams and requests to the receiver: a capture replayed to another member is refused', async () => {
    const key = randomBytes(32);
    // "B" is reached at X (a relay, as behind NAT or port mapping) and advertises X. The relay keeps
    // a copy of what it forwards: the attacker's capture.
    const udpRelay = createSocket('udp4');
    udpRelay.bind(0, '127.0.0.1');
    await once(udpRelay, 'listening');
    const x = `127.0.0.1:${udpRelay.address().port}`;
    const b = await listen({ keyring: new Keyring([key]), advertiseAddr: x });
    const c = await listen({ keyring: new Keyring([key]) });
    const a = await listen({ keyring: new Keyring([key]) });
    const debug: string[] = [];
    const logged = await listen({
      keyring: new Keyring([key]),
      logger: { debug: (_o, m) => debug.push(m ?? ''), info() {}, warn() {}, error() {} },
    });
    const captured: Buffer[] = [];
    udpRelay.on('message', (m) => {
      captured.push(m);
      udpRelay.send(m, boundPort(b), '127.0.0.1');
    });
    const atB = nextPacket(b);
    a.sendPacket(x, Buffer.from('gossip for B'));
    assert.equal(Buffer.from((await atB).data).toString(), 'gossip for B');
    assert.equal(captured.length, 1);
    // Replayed at once (well inside the 60 s window) to C, which never saw it, and to another member.
    let atC = 0;
    c.onPacket = () => atC++;
    logged.onPacket = () => atC++;
    const raw = createSocket('udp4');
    raw.send(captured[0], port(c), '127.0.0.1');
    raw.send(captured[0], port(logged), '127.0.0.1');
    await waitFor('replays refused', () => c.stats().misaddressed === 1 && logged.stats().misaddressed === 1);
    raw.close();
    assert.equal(atC, 0);
    assert.equal(c.stats().decryptFailures + c.stats().replayed, 0);
    assert.ok(
      debug.some((m) => /bound to another receiver/.test(m)),
      `debug log: ${debug}`,
    );
    udpRelay.close();

    // The same over TCP: a request captured on its way to B (at X) and replayed to C.
    const frames: Buffer[] = [];
    const tcpRelay = createServer();
    tcpRelay.listen(0, '127.0.0.1');
    await once(tcpRelay, 'listening');
    const y = `127.0.0.1:${(tcpRelay.address() as { port: number }).port}`;
    const b2 = await listen({ keyring: new Keyring([key]), advertiseAddr: y });
    b2.onRequest = async (_f, d) => Buffer.concat([Buffer.from('from B: '), d]);
    tcpRelay.on('connection', (s) => {
      s.on('error', () => {});
      s.on('data', (d) => frames.push(d));
      s.pipe(connect(boundPort(b2), '127.0.0.1').on('error', () => {})).pipe(s);
    });
    const reply = await a.request(y, Buffer.from('push-pull'), 3000);
    assert.equal(Buffer.from(reply).toString(), 'from B: push-pull');
    let servedByC = 0;
    c.onRequest = async (_f, d) => {
      servedByC++;
      return d;
    };
    const replay = await dial(port(c));
    replay.write(Buffer.concat(frames));
    await closed(replay);
    assert.equal(servedByC, 0);
    assert.equal(c.stats().misaddressed, 2);
    tcpRelay.close();
    // Bound to an address C does not advertise, even sealed fresh: refused as well.
    const fresh = new Keyring([key]).seal('request', Buffer.from('x'), receiverTag(y));
    const s2 = await dial(port(c));
    s2.write(framed(fresh));
    await closed(s2);
    assert.equal(c.stats().misaddressed, 3);
  });

  it('releases each inbound stream once answered (a low stream limit is never hit by sequential requests)', async () => {
    const a = await listen();
    const b = await listen({ maxInboundStreams: 3 });
    b.onRequest = async (_f, d) => d;
    for (let i = 0; i < 30; i++)
      assert.equal(Buffer.from(await a.request(b.localAddr, Buffer.of(i), 2000))[0], i);
    assert.equal(b.stats().streamsRefused, 0);
  });

  it('close() rejects pending requests and is idempotent', async () => {
    const a = await UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0' });
    const b = await listen();
    b.onRequest = () => new Promise(() => {});
    const pending = a.request(b.localAddr, Buffer.from('x'), 10_000);
    await sleep(50);
    await Promise.all([a.close(), a.close()]);
    await assert.rejects(pending, /transport closed/);
    await assert.rejects(a.request(b.localAddr, Buffer.from('x'), 100), /transport closed/);
    a.sendPacket(b.localAddr, Buffer.from('x')); // no throw after close
  });
});
