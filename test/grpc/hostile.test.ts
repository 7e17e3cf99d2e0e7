// Hostile and careless bytes at the gRPC services: keys that are not UTF-8 are
// refused rather than aliased to U+FFFD, TTLs out of range never make a message a client cannot
// decode, and one malformed reply in a peer's batch fails only its own request.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Client,
  credentials,
  Metadata,
  Server,
  type ServerDuplexStream,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { Group, GroupRegistry, MAX_TTL_MS } from '../../src/group.js';
import {
  BatchRefused,
  decodeFetchBatch,
  decodeFetchReplyBatch,
  decodeGetResponse,
  decodeKeyRequest,
  encodeFetchBatch,
  encodeFetchReplyBatch,
  encodeGetResponse,
  type FetchReply,
} from '../../src/grpc/codec.js';
import {
  createGrpcServer,
  FETCH_PATH,
  GET_PATH,
  GrpcPeer,
  PeerError,
  PROTO_DIR,
  REMOVE_PATH,
} from '../../src/grpc/index.js';
import { MAX_BATCH_REQUESTS } from '../../src/grpc/limits.js';
import { gossipCacheService } from '../../src/grpc/proto.js';
import { bindLocal } from '../support/grpc-cluster.js';
import { GroupCacheClient, insecure, unary } from '../support/grpc-std-client.js';
import { sleep } from '../support/wait.js';

const root = new protobuf.Root();
root.loadSync([`${PROTO_DIR}groupcache.proto`, `${PROTO_DIR}gossipcache.proto`], { keepCase: true });
const T = (name: string) => root.lookupType(name);

/** A length-delimited field: tag byte, length, bytes. */
function field(tag: number, bytes: Buffer): Buffer {
  assert.ok(bytes.length < 128);
  return Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
}
const keyRequest = (group: Buffer, key: Buffer) => Buffer.concat([field(0x0a, group), field(0x12, key)]);
const BAD = Buffer.from([0x6b, 0xff, 0x31]); // 'k', 0xff, '1'
const BAD2 = Buffer.from([0x6b, 0xfe, 0x31]); // 'k', 0xfe, '1': the same string after U+FFFD repair
const ident = (b: Buffer) => b;

describe('codec: keys that are not UTF-8', () => {
  test('a Get/Remove request carrying them is marked invalid; a real U+FFFD is fine', () => {
    assert.match(decodeKeyRequest(keyRequest(Buffer.from('g'), BAD)).invalid ?? '', /key is not valid UTF-8/);
    assert.match(
      decodeKeyRequest(keyRequest(BAD, Buffer.from('k'))).invalid ?? '',
      /group is not valid UTF-8/,
    );
    // Overlong encodings and surrogates encoded in UTF-8 are not UTF-8 either.
    for (const bad of [
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    ]) {
      assert.ok(decodeKeyRequest(keyRequest(Buffer.from('g'), Buffer.from(bad))).invalid, `${bad}`);
    }
    assert.deepEqual(decodeKeyRequest(keyRequest(Buffer.from('g'), Buffer.from('\ufffd😀'))), {
      group: 'g',
      key: '\ufffd😀',
    });
  });

  test('in a FetchBatch only the entry carrying them is invalid', () => {
    const good = encodeFetchBatch([{ id: 1, group: 'g', key: 'a', timeoutMs: 0, cancel: false }]);
    const bad = Buffer.concat([Buffer.from([0x08, 2]), field(0x12, Buffer.from('g')), field(0x1a, BAD)]);
    const batch = decodeFetchBatch(Buffer.concat([good, field(0x0a, bad), good]));
    assert.ok(Array.isArray(batch));
    assert.deepEqual(
      batch.map((q) => [q.id, q.key, q.invalid !== undefined]),
      [
        [1, 'a', false],
        [2, '', true],
        [1, 'a', false],
      ],
    );
  });

  test('a FetchBatch over MAX_BATCH_REQUESTS is refused without decoding it', () => {
    const one = encodeFetchBatch([{ id: 1, group: 'g', key: 'k', timeoutMs: 0, cancel: false }]);
    const ok = decodeFetchBatch(Buffer.concat(Array(MAX_BATCH_REQUESTS).fill(one)), MAX_BATCH_REQUESTS);
    assert.ok(Array.isArray(ok) && ok.length === MAX_BATCH_REQUESTS);
    const over = decodeFetchBatch(Buffer.concat(Array(MAX_BATCH_REQUESTS + 1).fill(one)), MAX_BATCH_REQUESTS);
    assert.ok(over instanceof BatchRefused);
    assert.match(over.message, /carried 4097 requests, over this node's limit of 4096/);
  });
});

describe('codec: TTLs out of range', () => {
  test('an int64 is never written past 2^53 - 1; Infinity and negatives are "no ttl"', () => {
    for (const [ttl, expected] of [
      [1e23, Number.MAX_SAFE_INTEGER],
      [Number.MAX_VALUE, Number.MAX_SAFE_INTEGER],
      [Number.POSITIVE_INFINITY, 0],
      [-5, 0],
      [12.7, 12],
    ] as const) {
      const get = T('groupcachepb.GetResponse').decode(
        encodeGetResponse({ value: Buffer.from('v'), minuteQps: 0, ttlMs: ttl }),
      );
      assert.equal(
        Number((get as unknown as { ttl_ms?: number }).ttl_ms ?? 0),
        expected,
        `GetResponse ${ttl}`,
      );
      const reply: FetchReply = {
        id: 1,
        code: 0,
        value: Buffer.from('v'),
        minuteQps: 0,
        ttlMs: ttl,
        message: '',
      };
      const batch = T('gossipcachepb.FetchReplyBatch').toObject(
        T('gossipcachepb.FetchReplyBatch').decode(encodeFetchReplyBatch([reply])),
        { longs: Number, defaults: true },
      );
      assert.equal(batch.replies[0].ttl_ms, expected, `FetchReply ${ttl}`);
    }
  });

  test('one reply with an undecodable ttl fails alone; the others in its batch are intact', () => {
    const good = (id: number) =>
      encodeFetchReplyBatch([
        { id, code: 0, value: Buffer.from(`v${id}`), minuteQps: 1, ttlMs: 5, message: '' },
      ]);
    // id 2 with an 11-byte varint ttl (what an unclamped 1e23 used to be written as)
    const elevenByteVarint = Buffer.from([
      0x08, 2, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    // id 3 with a negative int64 ttl (two's complement, 10 bytes)
    const negative = Buffer.from([0x08, 3, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const buf = Buffer.concat([good(1), field(0x0a, elevenByteVarint), field(0x0a, negative), good(4)]);
    const replies = decodeFetchReplyBatch(buf);
    assert.deepEqual(
      replies.map((r) => [r.id, r.code, Buffer.from(r.value).toString(), r.ttlMs]),
      [
        [1, 0, 'v1', 5],
        [2, status.INTERNAL, '', 0],
        [3, status.INTERNAL, '', 0],
        [4, 0, 'v4', 5],
      ],
    );
    assert.match(replies[1].message, /could not be decoded: varint longer than 10 bytes/);
    assert.match(replies[2].message, /ttl_ms is negative/);
    // A unary GetResponse with a negative ttl is a decode error (it is one request).
    assert.throws(() =>
      decodeGetResponse(
        Buffer.concat([field(0x0a, Buffer.from('v')), Buffer.from([0x20]), negative.subarray(3)]),
      ),
    );
  });
});

/** A node with group `g` whose getter answers `v:<key>` with `ttlMs`. */
async function node(ttlMs?: number) {
  const registry = new GroupRegistry();
  const loads: string[] = [];
  const group = new Group({
    name: 'g',
    cacheBytes: 1 << 20,
    registry,
    getter: async (k) => {
      loads.push(k);
      return ttlMs === undefined ? `v:${k}` : { value: `v:${k}`, ttlMs };
    },
  });
  const server = createGrpcServer({ registry });
  const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
  return { addr, group, loads, close: () => server.close(0) };
}

function rawUnary(client: Client, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      ident,
      ident,
      body,
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err, res) => (err ? reject(err) : resolve(res as Buffer)),
    );
  });
}

describe('over gRPC', () => {
  test('Get, Remove and Fetch refuse keys and groups that are not UTF-8 with INVALID_ARGUMENT', async () => {
    const n = await node();
    const client = new Client(n.addr, credentials.createInsecure());
    try {
      for (const path of [GET_PATH, REMOVE_PATH]) {
        for (const body of [keyRequest(Buffer.from('g'), BAD), keyRequest(BAD, Buffer.from('k'))]) {
          await assert.rejects(
            rawUnary(client, path, body),
            (e: ServiceError) => e.code === status.INVALID_ARGUMENT && /not valid UTF-8/.test(e.details),
          );
        }
      }
      // The well-formed neighbour still works, and nothing was loaded for the bad keys.
      const ok = decodeGetResponse(
        await rawUnary(client, GET_PATH, keyRequest(Buffer.from('g'), Buffer.from('k\ufffd1'))),
      );
      assert.equal(Buffer.from(ok.value).toString(), 'v:k\ufffd1');

      const call = client.makeBidiStreamRequest(
        FETCH_PATH,
        ident,
        gossipCacheService.Fetch.responseDeserialize,
        new Metadata(),
      );
      const replies: FetchReply[] = [];
      call.on('data', (b: FetchReply[]) => replies.push(...b));
      call.on('error', () => {});
      const entry = (id: number, key: Buffer) =>
        field(
          0x0a,
          Buffer.concat([Buffer.from([0x08, id]), field(0x12, Buffer.from('g')), field(0x1a, key)]),
        );
      call.write(Buffer.concat([entry(1, BAD), entry(2, BAD2), entry(3, Buffer.from('fine'))]));
      const end = Date.now() + 5000;
      while (replies.length < 3 && Date.now() < end) await sleep(5);
      call.end();
      const byId = new Map(replies.map((r) => [r.id, r]));
      assert.equal(byId.get(1)?.code, status.INVALID_ARGUMENT);
      assert.match(byId.get(1)?.message ?? '', /key is not valid UTF-8/);
      assert.equal(byId.get(2)?.code, status.INVALID_ARGUMENT);
      assert.equal(byId.get(3)?.code, 0);
      assert.equal(Buffer.from(byId.get(3)?.value ?? '').toString(), 'v:fine');
      assert.deepEqual(n.loads, ['k\ufffd1', 'fine']);
    } finally {
      client.close();
      await n.close();
    }
  });

  test('a getter TTL of 1e23 ms reaches outside Get clients and peers clamped to MAX_TTL_MS', async () => {
    const n = await node(1e23);
    const outside = new GroupCacheClient(n.addr, insecure);
    const peer = new GrpcPeer(n.addr);
    try {
      const got = await unary<{ value: Buffer; ttl_ms: number }>(outside, 'Get', { group: 'g', key: 'a' });
      assert.equal(Buffer.from(got.value).toString(), 'v:a');
      assert.ok(got.ttl_ms > MAX_TTL_MS - 60_000 && got.ttl_ms <= MAX_TTL_MS, `${got.ttl_ms}`);
      const signal = new AbortController().signal;
      const [a, b] = await Promise.all([peer.get('g', 'a', signal), peer.get('g', 'b', signal)]);
      assert.equal(Buffer.from(b.value).toString(), 'v:b');
      for (const r of [a, b]) assert.ok(r.ttlMs !== undefined && r.ttlMs <= MAX_TTL_MS);
      const u = await peer.getUnary('g', 'c');
      assert.ok(u.ttlMs !== undefined && u.ttlMs <= MAX_TTL_MS);
    } finally {
      outside.close();
      peer.close();
      await n.close();
    }
  });

  test("a peer's undecodable reply fails only its own request; the stream keeps working", async () => {
    // A fake peer that answers key 'bad' with an entry carrying an 11-byte ttl varint.
    const server = new Server();
    server.addService(
      { ...gossipCacheService, Fetch: { ...gossipCacheService.Fetch, responseSerialize: ident } },
      {
        Fetch(call: ServerDuplexStream<{ id: number; key: string }[], Buffer>) {
          call.on('data', (batch: { id: number; key: string }[]) => {
            const parts = batch.map((q) =>
              q.key === 'bad'
                ? field(
                    0x0a,
                    Buffer.from([
                      0x08,
                      q.id,
                      0x28,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0xff,
                      0x01,
                    ]),
                  )
                : encodeFetchReplyBatch([
                    {
                      id: q.id,
                      code: 0,
                      value: Buffer.from(`v:${q.key}`),
                      minuteQps: 0,
                      ttlMs: 0,
                      message: '',
                    },
                  ]),
            );
            call.write(Buffer.concat(parts));
          });
          call.on('end', () => call.end());
          call.on('error', () => {});
        },
        Remove: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, {}),
      },
    );
    const port = await bindLocal(server);
    const peer = new GrpcPeer(`127.0.0.1:${port}`);
    try {
      const signal = new AbortController().signal;
      const results = await Promise.allSettled(['a', 'bad', 'c'].map((k) => peer.get('g', k, signal)));
      assert.equal(results[0].status, 'fulfilled');
      assert.equal(results[2].status, 'fulfilled');
      assert.equal(results[1].status, 'rejected');
      const err = (results[1] as PromiseRejectedResult).reason;
      assert.ok(err instanceof PeerError && err.code === status.INTERNAL, String(err));
      // Same stream, still alive.
      assert.equal(Buffer.from((await peer.get('g', 'd', signal)).value).toString(), 'v:d');
    } finally {
      peer.close();
      server.forceShutdown();
    }
  });
});
