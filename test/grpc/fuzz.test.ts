// Hostile bytes at the gRPC services: the gossip port's kind of fuzzing, at the peer port.
// 1. In-process, for volume: 100 000 random and mutated messages (mutations of valid encodings:
//    bit flips, special bytes, insertions, deletions, truncations, splices) through every decoder.
//    They may only throw DecodeError, and what they return must be usable: well-formed strings,
//    uint32 ids and codes, finite non-negative numbers.
// 2. At a live node (the CLI, as a child process) over real grpc-js and raw HTTP/2: 4 000 mutated
//    Fetch messages on 80 streams, 2 000 random Get/Remove/Set/Push bodies, 300 streams of garbage gRPC
//    framing. Afterwards the node is
//    alive and serves correct values to a well-behaved peer and an outside client.
// A failing run prints its seed; set FUZZ_SEED to replay it.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { Client, type ClientDuplexStream, credentials, Metadata } from '@grpc/grpc-js';
import {
  DecodeError,
  decodeFetchBatch,
  decodeFetchReplyBatch,
  decodeGetResponse,
  decodeKeyRequest,
  decodePushRequest,
  decodeSetRequest,
  encodeFetchBatch,
  encodeFetchReplyBatch,
  encodeGetResponse,
  encodeKeyRequest,
  encodePushRequest,
  encodeSetRequest,
  FetchBatchReader,
  type FetchReply,
  type FetchRequest,
} from '../../src/grpc/codec.js';
import { FETCH_PATH, GET_PATH, GrpcPeer, REMOVE_PATH } from '../../src/grpc/index.js';
import { MAX_BATCH_REQUESTS } from '../../src/grpc/limits.js';
import { PUSH_PATH, SET_PATH } from '../../src/grpc/proto.js';
import { type NodeProcess, nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { GroupCacheClient, insecure, unary } from '../support/grpc-std-client.js';
import { httpGet } from '../support/http.js';
import { prng } from '../support/prng.js';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000_007);

class Gen {
  constructor(readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  str(): string {
    const parts = ['k', 'g', 'é', '😀', '\ufffd', '\u0000', 'key-', String(this.int(1000))];
    let s = '';
    for (let i = this.int(5); i > 0; i--) s += this.pick(parts);
    return s;
  }
  num(): number {
    return this.pick([0, 1, 5, 1000, 0xffffffff, 2 ** 40, Number.MAX_SAFE_INTEGER, 1e23, this.int(1e6)]);
  }
  request(): FetchRequest {
    return {
      id: this.int(2 ** 32),
      group: this.pick(['g', '', this.str()]),
      key: this.str(),
      timeoutMs: this.pick([0, 1, 100, 5000]),
      cancel: this.rnd() < 0.1,
    };
  }
  reply(): FetchReply {
    return {
      id: this.int(2 ** 32),
      code: this.pick([0, 0, 5, 13, 14]),
      value: this.bytes(this.int(40)),
      minuteQps: this.rnd() * 100,
      ttlMs: this.num(),
      message: this.str(),
      stale: this.rnd() < 0.2,
      staleWhileRevalidateMs: this.num(),
      staleIfErrorMs: this.num(),
      ageMs: this.num(),
    };
  }
  /** A valid encoding of a random message of any type. */
  seed(): Buffer {
    switch (this.int(6)) {
      case 5:
        return encodePushRequest({
          group: this.pick(['g', this.str()]),
          entries: Array.from({ length: this.int(4) }, () => ({
            key: this.str(),
            value: this.bytes(this.int(40)),
            ttlMs: this.num(),
            minuteQps: this.rnd() * 10,
          })),
        });
      case 0:
        return encodeKeyRequest({ group: this.str(), key: this.str() });
      case 1:
        return encodeGetResponse({
          value: this.bytes(this.int(40)),
          minuteQps: this.rnd() * 10,
          ttlMs: this.num(),
        });
      case 2:
        return encodeFetchBatch(Array.from({ length: this.int(6) }, () => this.request()));
      case 3:
        return encodeFetchReplyBatch(Array.from({ length: this.int(6) }, () => this.reply()));
      default:
        return encodeSetRequest({
          group: 'g',
          key: this.str(),
          value: this.bytes(this.int(40)),
          ttlMs: this.num(),
        });
    }
  }
  /** `b` damaged one to three times. */
  mutate(b: Buffer): Buffer {
    let out = Buffer.from(b);
    for (let n = 1 + this.int(3); n > 0; n--) {
      const at = out.length === 0 ? 0 : this.int(out.length);
      switch (this.int(7)) {
        case 0:
          if (out.length) out[at] ^= 1 << this.int(8);
          break;
        case 1:
          if (out.length) out[at] = this.pick([0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a]);
          break;
        case 2:
          out = Buffer.concat([out.subarray(0, at), this.bytes(1 + this.int(12)), out.subarray(at)]);
          break;
        case 3:
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + this.int(8))]);
          break;
        case 4:
          out = out.subarray(0, at);
          break;
        case 5:
          out = Buffer.concat([out, out.subarray(at)]);
          break;
        default:
          out = Buffer.concat([out.subarray(0, at), this.seed()]);
      }
    }
    return out;
  }
  /** Random bytes, a mutated valid message, or a valid one. */
  input(): Buffer {
    const r = this.rnd();
    if (r < 0.2) return this.bytes(this.int(64));
    if (r < 0.9) return this.mutate(this.seed());
    return this.seed();
  }
}

const isU32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
const isDuration = (n: number) => Number.isFinite(n) && n >= 0 && n < 2 ** 63;
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function check(name: string, input: Buffer, decode: () => void): void {
  try {
    decode();
  } catch (err) {
    if (err instanceof DecodeError) return;
    assert.fail(`${name} threw ${err} for ${input.toString('hex')} (seed ${SEED})`);
  }
}

describe(`fuzz: the gRPC codecs in-process (seed ${SEED})`, () => {
  test('100 000 random and mutated messages: only DecodeError, and sane results', () => {
    const g = new Gen(prng(SEED));
    for (let i = 0; i < 100_000; i++) {
      const b = g.input();
      check('decodeKeyRequest', b, () => {
        const r = decodeKeyRequest(b);
        assert.ok(wellFormed(r.group) && wellFormed(r.key));
      });
      check('decodeSetRequest', b, () => {
        const r = decodeSetRequest(b);
        assert.ok(wellFormed(r.group) && wellFormed(r.key) && isDuration(r.ttlMs));
        assert.ok(r.value instanceof Uint8Array);
      });
      check('decodePushRequest', b, () => {
        const r = decodePushRequest(b);
        assert.ok(wellFormed(r.group));
        for (const e of r.entries) {
          assert.ok(wellFormed(e.key) && e.value instanceof Uint8Array);
          assert.ok(e.ttlMs === undefined || Number.isFinite(e.ttlMs));
          assert.ok(e.minuteQps === undefined || (Number.isFinite(e.minuteQps) && e.minuteQps >= 0));
        }
      });
      check('decodeGetResponse', b, () => {
        const r = decodeGetResponse(b);
        assert.ok(r.value instanceof Uint8Array && Number.isFinite(r.minuteQps) && r.minuteQps >= 0);
        assert.ok(r.ttlMs === undefined || isDuration(r.ttlMs));
      });
      check('decodeFetchBatch', b, () => {
        const reqs = decodeFetchBatch(b, MAX_BATCH_REQUESTS);
        if (!Array.isArray(reqs)) return;
        for (const q of reqs) {
          assert.ok(isU32(q.id) && Number.isFinite(q.timeoutMs) && q.timeoutMs >= 0, JSON.stringify(q));
          assert.ok(wellFormed(q.group) && wellFormed(q.key));
        }
        const reader = new FetchBatchReader(b);
        assert.equal(reader.count(), reqs.length);
      });
      check('decodeFetchReplyBatch', b, () => {
        for (const p of decodeFetchReplyBatch(b)) {
          assert.ok(isU32(p.id) && isU32(p.code), JSON.stringify(p));
          assert.ok(p.value instanceof Uint8Array && wellFormed(p.message));
          assert.ok(Number.isFinite(p.minuteQps) && p.minuteQps >= 0);
          for (const d of [p.ttlMs, p.staleWhileRevalidateMs, p.staleIfErrorMs, p.ageMs]) {
            assert.ok(isDuration(d ?? 0));
          }
          // A reply that failed to decode never carries a value.
          if (p.message.startsWith("the peer's reply could not be decoded")) {
            assert.ok(p.code === 13 && p.value.byteLength === 0);
          }
        }
      });
    }
  });
});

describe(`fuzz: a live node's gRPC port (seed ${SEED})`, () => {
  let node: NodeProcess;
  let addr: string;

  before(async () => {
    const ports = await nodePorts();
    node = startCli(ports, { GOSSIPCACHE_GROUP: 'g', GOSSIPCACHE_ORIGIN: 'demo', LOG_LEVEL: 'error' });
    addr = `127.0.0.1:${ports.grpc}`;
    await waitHealthy(node);
  });

  after(async () => {
    await stopCli(node);
  });

  test('mutated Fetch messages, random unary bodies and garbage framing; the node keeps serving', async () => {
    const g = new Gen(prng(SEED + 1));
    const ident = (b: Buffer) => b;
    const client = new Client(addr, credentials.createInsecure());
    const stats = { streams: 0, messages: 0, replies: 0, unary: 0, raw: 0 };
    const t0 = performance.now();
    const phase: number[] = [];

    // Fetch streams: 4 000 messages. Most are well-framed batches of damaged requests (each one is
    // then answered on its own); 1% are damaged batches, which end their stream (a new one follows).
    const entry = (q: Buffer) => {
      const head = Buffer.from([0x0a, 0, 0, 0]);
      let n = 1;
      for (let len = q.length; ; len >>>= 7) {
        head[n++] = len >= 0x80 ? (len & 0x7f) | 0x80 : len;
        if (len < 0x80) break;
      }
      return Buffer.concat([head.subarray(0, n), q]);
    };
    const fetchBatch = () =>
      g.rnd() < 0.99
        ? Buffer.concat(
            Array.from({ length: 1 + g.int(8) }, () => {
              const q = encodeFetchBatch([g.request()]);
              // The request's own bytes (after its 0x0a tag and varint length), damaged or not.
              let at = 1;
              while (q[at] & 0x80) at++;
              const inner = q.subarray(at + 1);
              return entry(g.rnd() < 0.6 ? g.mutate(inner) : inner);
            }),
          )
        : g.input();
    // Bursts of 50 messages per stream: a damaged batch ends its stream, losing only its burst.
    const codes: Record<number, number> = {};
    for (let sent = 0; sent < 4000; ) {
      stats.streams++;
      const call = client.makeBidiStreamRequest(
        FETCH_PATH,
        ident,
        ident,
        new Metadata(),
      ) as ClientDuplexStream<Buffer, Buffer>;
      const ended = new Promise<void>((resolve) => {
        call.on('status', (st) => {
          codes[st.code] = (codes[st.code] ?? 0) + 1;
          resolve();
        });
      });
      call.on('error', () => {});
      call.on('data', (b: Buffer) => {
        // What the node sends back must decode.
        stats.replies += decodeFetchReplyBatch(b).length;
      });
      for (let i = 0; i < 50; i++, sent++) {
        stats.messages++;
        if (!call.write(fetchBatch())) {
          // Let the node read what was sent (it stops reading a stream while busy with it).
          await Promise.race([new Promise((r) => call.once('drain', r)), ended]);
        }
      }
      call.end();
      await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
      call.cancel();
    }
    assert.ok((codes[0] ?? 0) > 0, `some streams ended normally: ${JSON.stringify(codes)}`);

    phase.push(Math.round(performance.now() - t0));
    // Unary Get, Remove, Set and Push with random bodies, 50 at a time.
    const paths = [GET_PATH, REMOVE_PATH, SET_PATH, PUSH_PATH];
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        Array.from(
          { length: 50 },
          () =>
            new Promise<void>((resolve) => {
              stats.unary++;
              client.makeUnaryRequest(
                g.pick(paths),
                ident,
                ident,
                g.input(),
                new Metadata(),
                { deadline: Date.now() + 5000 },
                () => resolve(),
              );
            }),
        ),
      );
    }
    client.close();

    phase.push(Math.round(performance.now() - t0));
    // Raw HTTP/2: gRPC framing broken on purpose (bad lengths, the compressed flag with garbage, junk).
    const session = http2.connect(`http://${addr}`);
    session.on('error', () => {});
    await Promise.all(
      Array.from({ length: 300 }, async () => {
        stats.raw++;
        const s = session.request({
          ':method': 'POST',
          ':path': g.pick([FETCH_PATH, GET_PATH, REMOVE_PATH, SET_PATH, PUSH_PATH]),
          'content-type': 'application/grpc',
          te: 'trailers',
          ...(g.rnd() < 0.3 ? { 'grpc-encoding': g.pick(['gzip', 'deflate', 'snappy']) } : {}),
        });
        s.on('error', () => {});
        s.on('data', () => {});
        const body = g.input();
        const frame = Buffer.alloc(5 + body.length);
        frame[0] = g.pick([0, 0, 1, 2, 0xff]);
        frame.writeUInt32BE(g.rnd() < 0.7 ? body.length : g.int(2 ** 32), 1);
        body.copy(frame, 5);
        s.end(g.rnd() < 0.8 ? frame : g.bytes(g.int(40)));
        await new Promise<void>((resolve) => {
          s.on('close', () => resolve());
          setTimeout(() => {
            s.close();
            resolve();
          }, 1000);
        });
      }),
    );
    session.close();

    phase.push(Math.round(performance.now() - t0));
    // Still alive, still correct.
    assert.equal(node.child.exitCode, null, `the node is alive (seed ${SEED})`);
    assert.equal((await httpGet(`${node.http}/healthz`)).status, 200);
    const peer = new GrpcPeer(addr);
    const outside = new GroupCacheClient(addr, insecure);
    try {
      const signal = AbortSignal.timeout(10_000);
      for (let i = 0; i < 20; i++) {
        const r = await peer.get('g', `after-${i}`, signal);
        assert.equal(Buffer.from(r.value).toString(), `Value of after-${i}`);
      }
      const got = await unary<{ value: Buffer }>(outside, 'Get', { group: 'g', key: 'outside' });
      assert.equal(Buffer.from(got.value).toString(), 'Value of outside');
    } finally {
      peer.close();
      outside.close();
    }
    console.log(
      `fuzz (seed ${SEED}): ${JSON.stringify(stats)}; Fetch streams ended ${JSON.stringify(codes)}; ` +
        `phases end at ${phase.join(', ')} ms`,
    );
    assert.ok(stats.messages >= 4000 && stats.unary >= 2000 && stats.raw >= 300);
  });
});
