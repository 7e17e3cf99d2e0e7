// Hostile input at a live member over real sockets: ≥ 100k random and mutated datagrams (mutations of
// packets captured from a real exchange with it, truncations, oversize ones) plus garbage TCP streams.
// Afterwards its process must still be alive and still let a new node join; its counters show drops.
// The target talks only to 127.0.0.0/8 (forged gossip can name any address).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMembership, type Membership } from '../../src/membership/index.js';
import { ANY_RECEIVER, Keyring, receiverTag } from '../../src/membership/keyring.js';
import { UdpTcpTransport } from '../../src/membership/net.js';
import { Swim } from '../../src/membership/swim.js';
import type { Transport } from '../../src/membership/transport.js';
import { MemberProcess } from '../support/member-process.js';
import { prng } from '../support/prng.js';

/** Passes everything through to a real transport and keeps a copy of every payload, both directions. */
class TapTransport implements Transport {
  readonly packets: Uint8Array[] = [];
  readonly streams: Uint8Array[] = [];
  private packetHandler: Transport['onPacket'] = null;
  private requestHandler: Transport['onRequest'] = null;

  constructor(private readonly inner: UdpTcpTransport) {}
  get localAddr() {
    return this.inner.localAddr;
  }
  get maxPacketBytes() {
    return this.inner.maxPacketBytes;
  }
  get onPacket() {
    return this.packetHandler;
  }
  set onPacket(h) {
    this.packetHandler = h;
    this.inner.onPacket = h
      ? (from, data) => {
          this.packets.push(data.slice());
          h(from, data);
        }
      : null;
  }
  get onRequest() {
    return this.requestHandler;
  }
  set onRequest(h) {
    this.requestHandler = h;
    this.inner.onRequest = h
      ? async (from, data) => {
          this.streams.push(data.slice());
          return h(from, data);
        }
      : null;
  }
  sendPacket(to: string, data: Uint8Array, receiver?: string): void {
    this.packets.push(data.slice());
    this.inner.sendPacket(to, data, receiver);
  }
  async request(
    to: string,
    data: Uint8Array,
    timeoutMs: number,
    receiver?: string | null,
  ): Promise<Uint8Array> {
    this.streams.push(data.slice());
    const reply = await this.inner.request(to, data, timeoutMs, receiver);
    this.streams.push(reply.slice());
    return reply;
  }
  close() {
    return this.inner.close();
  }
}

/** Join `target` with a tapped in-process member for a few seconds; returns the captured payloads. */
async function capture(
  target: string,
  keys: Buffer[],
): Promise<{ packets: Uint8Array[]; streams: Uint8Array[] }> {
  const inner = await UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0', keyring: new Keyring(keys) });
  const tap = new TapTransport(inner);
  const swim = new Swim({ id: 'capturer', meta: { role: 'fuzz' }, transport: tap, seeds: [target] });
  swim.start();
  await sleep(3000);
  await swim.leave(500);
  swim.stop();
  await tap.close();
  assert.ok(tap.packets.length > 5, `captured only ${tap.packets.length} datagrams`);
  assert.ok(tap.streams.length >= 2, 'captured no push-pull');
  return { packets: tap.packets, streams: tap.streams };
}

/** One hostile datagram payload (before sealing): random, mutated, truncated, spliced, oversize or replayed. */
function hostile(rand: () => number, corpus: Uint8Array[]): { bytes: Uint8Array; raw: boolean } {
  const pick = () => Buffer.from(corpus[Math.floor(rand() * corpus.length)]);
  const int = (n: number) => Math.floor(rand() * n);
  const r = rand();
  if (r < 0.1) return { bytes: randomBytes(int(1500)), raw: true }; // not even our envelope
  if (r < 0.2) return { bytes: randomBytes(int(1400)), raw: false };
  if (r < 0.55) {
    const b = pick();
    for (let i = 1 + int(8); i > 0 && b.length > 0; i--) {
      const at = int(b.length);
      b[at] = rand() < 0.5 ? b[at] ^ (1 << int(8)) : int(256);
    }
    return { bytes: b, raw: false };
  }
  if (r < 0.65) {
    const b = pick();
    return { bytes: b.subarray(0, int(b.length)), raw: false };
  }
  if (r < 0.75) {
    const a = pick();
    const b = pick();
    const cut = Buffer.concat([
      a.subarray(0, int(a.length + 1)),
      randomBytes(int(16)),
      b.subarray(int(b.length)),
    ]);
    return { bytes: cut.subarray(0, 1350), raw: false };
  }
  if (r < 0.85) {
    // Length fields to extremes: any 2 adjacent bytes set to 0xffff or 0x0000.
    const b = pick();
    if (b.length >= 2) {
      const at = int(b.length - 1);
      const v = rand() < 0.5 ? 0xff : 0;
      b[at] = v;
      b[at + 1] = v;
    }
    return { bytes: b, raw: false };
  }
  if (r < 0.92) return { bytes: randomBytes(1400 + int(8000)), raw: rand() < 0.5 };
  return { bytes: pick(), raw: false }; // replay of a valid packet
}

async function sendAll(sock: UdpSocket, port: number, wires: Iterable<Uint8Array>): Promise<number> {
  let n = 0;
  let batch: Promise<void>[] = [];
  for (const w of wires) {
    batch.push(new Promise<void>((r) => sock.send(w, port, '127.0.0.1', () => r())));
    n++;
    if (batch.length === 250) {
      await Promise.all(batch);
      batch = [];
      await sleep(2); // paced: the target must keep up; loopback drops would only weaken the test
    }
  }
  await Promise.all(batch);
  return n;
}

/**
 * Garbage over TCP: random bytes, absurd lengths, framed junk, mutated real requests (bound to the
 * target, to another member, or to any receiver), a few slow peers, then a burst of idle connections
 * over the target's cap for unauthenticated ones (64).
 */
async function tcpGarbage(
  port: number,
  rand: () => number,
  streams: Uint8Array[],
  keyring: Keyring,
): Promise<void> {
  const tags = [receiverTag(`127.0.0.1:${port}`), receiverTag('127.0.0.1:1'), ANY_RECEIVER];
  const tag = () => tags[Math.floor(rand() * tags.length)];
  const one = (data: Buffer, holdMs: number) =>
    new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const s = connect(port, '127.0.0.1', () => {
        s.write(data);
        timer = setTimeout(() => s.destroy(), holdMs);
      });
      s.on('error', () => {});
      s.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      s.on('data', () => {});
    });
  const frame = (body: Buffer) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(body.length);
    return Buffer.concat([h, body]);
  };
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    const kind = i % 6;
    let data: Buffer;
    if (kind === 0) data = randomBytes(1 + Math.floor(rand() * 4096));
    else if (kind === 1) data = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    else if (kind === 2) data = frame(randomBytes(Math.floor(rand() * 2048)));
    else if (kind === 3) {
      const b = Buffer.from(streams[Math.floor(rand() * streams.length)]);
      for (let k = 0; k < 4; k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      data = frame(keyring.seal('request', b, tag()));
    } else if (kind === 4) data = frame(keyring.seal('request', randomBytes(64), tag()));
    else data = Buffer.from([0, 0, 0x10]); // half a header, then silence
    jobs.push(one(data, kind === 5 ? 1500 : 200));
    if (jobs.length % 50 === 0) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  // 100 connections that say nothing, held open: the oldest are closed to make room, the rest at the
  // target's first-frame deadline (2 s); each resolves when the target closes it.
  const idle = Array.from({ length: 100 }, () => one(Buffer.alloc(0), 60_000));
  await Promise.all(idle);
}

const locals: Membership[] = [];
after(async () => {
  await Promise.all(locals.map((m) => m.close()));
  await MemberProcess.killAll(); // includes children still starting when a test failed
});

async function survives(target: MemberProcess, keys: Buffer[]): Promise<void> {
  assert.equal(target.exited, false, 'the target process died');
  const joiner = await createMembership({
    id: `joiner-${keys.length}`,
    bindAddr: '127.0.0.1:0',
    meta: {},
    seeds: [target.addr],
    secretKeys: keys,
  });
  locals.push(joiner);
  const end = Date.now() + 60_000;
  while (
    !(joiner.ready && (await target.status()).members.some((m) => m.id === joiner.id && m.state === 'alive'))
  ) {
    assert.ok(Date.now() < end, 'a new node could not join the fuzzed target');
    await sleep(200);
  }
  const me = joiner.members().find((m) => m.id === target.args.id);
  assert.equal(me?.state, 'alive', 'the joiner does not see the target alive');
  await joiner.leave(500);
  await joiner.close();
}

describe('fuzzing a live member over real sockets', { timeout: 300_000 }, () => {
  it('survives 100k hostile datagrams and garbage streams (plaintext: every byte reaches the codec)', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);
    const rand = prng(seed);
    const target = await MemberProcess.spawn({ id: 'target', bindAddr: '127.0.0.1:0', loopbackOnly: true });
    const { packets, streams } = await capture(target.addr, []);
    const plain = new Keyring([]);
    const port = Number(target.addr.split(':')[1]);
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    function* wires() {
      for (let i = 0; i < 100_000; i++) {
        const h = hostile(rand, packets);
        yield h.raw ? h.bytes : plain.seal('packet', h.bytes, receiverTag(target.addr));
      }
    }
    const sent = await sendAll(sock, port, wires());
    sock.close();
    await tcpGarbage(port, rand, streams, plain);
    assert.equal(sent, 100_000);
    const s = await target.status(30_000);
    const t = s.stats.transport;
    const swimMalformed = s.stats.malformed as number;
    const drops = t.oversize + t.malformed + swimMalformed;
    assert.ok(t.oversize > 1000, `oversize drops not counted (seed ${seed}): ${JSON.stringify(t)}`);
    assert.ok(swimMalformed > 10_000, `malformed drops not counted (seed ${seed}): ${swimMalformed}`);
    assert.ok(t.streamsIn >= 300 && t.streamErrors > 0, `stream drops not counted: ${JSON.stringify(t)}`);
    assert.ok(drops > 20_000, `only ${drops} drops counted (seed ${seed})`);
    await survives(target, []);
  });

  it('with a key: mutated encrypted datagrams and replays are dropped and counted', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);
    const rand = prng(seed);
    const key = randomBytes(32);
    const target = await MemberProcess.spawn({
      id: 'keyed-target',
      bindAddr: '127.0.0.1:0',
      keys: [key.toString('base64')],
      loopbackOnly: true,
    });
    const { packets, streams } = await capture(target.addr, [key]);
    const keyring = new Keyring([key]);
    const legacy = new Keyring([key], { receiverBinding: 'off' });
    const toTarget = receiverTag(target.addr);
    const toOther = receiverTag('127.0.0.1:1');
    // Bound to the target (most), to another member (replayed from its traffic) or unbound (older nodes).
    const sealed = packets.map((p, i) =>
      i % 10 === 1
        ? keyring.seal('packet', p, toOther)
        : i % 10 === 2
          ? legacy.seal('packet', p, toTarget)
          : keyring.seal('packet', p, toTarget),
    );
    const port = Number(target.addr.split(':')[1]);
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    function* wires() {
      for (let i = 0; i < 20_000; i++) yield hostile(rand, sealed).bytes;
    }
    await sendAll(sock, port, wires());
    sock.close();
    await tcpGarbage(port, rand, streams, keyring);
    const t = (await target.status(30_000)).stats.transport;
    assert.ok(t.decryptFailures > 5_000, `decrypt failures not counted (seed ${seed}): ${JSON.stringify(t)}`);
    assert.ok(t.replayed > 0, `replays not counted: ${JSON.stringify(t)}`);
    assert.ok(t.malformed > 0 && t.oversize > 0, JSON.stringify(t));
    assert.ok(t.misaddressed > 0, `datagrams bound to another member not counted: ${JSON.stringify(t)}`);
    assert.ok(t.unbound > 0, `unbound datagrams not counted: ${JSON.stringify(t)}`);
    assert.ok(t.streamsEvicted > 0, `no idle connection evicted: ${JSON.stringify(t)}`);
    assert.ok(t.streamTimeouts > 0, `no first-frame deadline hit: ${JSON.stringify(t)}`);
    await survives(target, [key]);
  });
});
