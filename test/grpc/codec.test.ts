// The hand-written codecs against protobufjs (what proto-loader uses) reading and writing the same
// messages from the .proto files, plus hostile input.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import {
  DecodeError,
  decodeFetchBatch,
  decodeFetchReplyBatch,
  decodeGetResponse,
  decodeKeyRequest,
  decodePushRequest,
  decodePushResponse,
  decodeSetRequest,
  encodeFetchBatch,
  encodeFetchReplyBatch,
  encodeGetResponse,
  encodeKeyRequest,
  encodePushRequest,
  encodePushResponse,
  encodeSetRequest,
  type FetchReply,
  type FetchRequest,
} from '../../src/grpc/codec.js';
import { PROTO_DIR } from '../../src/grpc/index.js';

const root = new protobuf.Root();
root.loadSync([join(PROTO_DIR, 'groupcache.proto'), join(PROTO_DIR, 'gossipcache.proto')], {
  keepCase: true,
});
const T = (name: string) => root.lookupType(name);
const plain = (type: string, buf: Uint8Array) =>
  T(type).toObject(T(type).decode(buf), { longs: Number, bytes: Buffer, defaults: true });

const key = fc.string({ unit: 'grapheme', maxLength: 40 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const ttl = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const qps = fc.double({ min: 0, max: 1e12, noNaN: true });
const bytes = fc.uint8Array({ maxLength: 300 });

describe('codec', () => {
  test('GetRequest / RemoveRequest match protobufjs both ways', () => {
    fc.assert(
      fc.property(key, key, (group, k) => {
        const ours = encodeKeyRequest({ group, key: k });
        assert.deepEqual(plain('groupcachepb.GetRequest', ours), { group, key: k });
        const theirs = Buffer.from(T('gossipcachepb.RemoveRequest').encode({ group, key: k }).finish());
        assert.deepEqual(decodeKeyRequest(theirs), { group, key: k });
      }),
    );
  });

  test('GetResponse matches protobufjs both ways', () => {
    fc.assert(
      fc.property(bytes, qps, ttl, (value, minuteQps, ttlMs) => {
        const ours = encodeGetResponse({ value, minuteQps, ttlMs });
        const got = plain('groupcachepb.GetResponse', ours);
        assert.deepEqual(Buffer.from(got.value), Buffer.from(value));
        assert.equal(got.minute_qps, minuteQps);
        assert.equal(got.ttl_ms, ttlMs);
        const msg = T('groupcachepb.GetResponse').fromObject({ value, minute_qps: minuteQps, ttl_ms: ttlMs });
        const back = decodeGetResponse(Buffer.from(T('groupcachepb.GetResponse').encode(msg).finish()));
        assert.deepEqual(Buffer.from(back.value), Buffer.from(value));
        assert.equal(back.minuteQps, minuteQps);
        assert.equal(back.ttlMs ?? 0, ttlMs);
      }),
    );
  });

  test('FetchBatch matches protobufjs both ways', () => {
    // Trace context (fields 6, 7) in some requests: W3C values are short ASCII.
    const traceCtx = fc.record(
      {
        traceparent: fc.string({ minLength: 1, maxLength: 100 }),
        tracestate: fc.string({ minLength: 1, maxLength: 200 }),
      },
      { requiredKeys: ['traceparent'], noNullPrototype: true },
    );
    const req = fc.record(
      {
        id: u32,
        group: key,
        key,
        timeoutMs: u32,
        cancel: fc.boolean(),
        trace: traceCtx,
        handoff: fc.constant(true),
      },
      { requiredKeys: ['id', 'group', 'key', 'timeoutMs', 'cancel'], noNullPrototype: true },
    );
    fc.assert(
      fc.property(fc.array(req, { maxLength: 8 }), (reqs: FetchRequest[]) => {
        const ours = encodeFetchBatch(reqs.map((r) => ({ ...r })));
        const got = plain('gossipcachepb.FetchBatch', ours) as { requests: Record<string, unknown>[] };
        assert.deepEqual(
          got.requests,
          reqs.map((r) => ({
            id: r.id,
            group: r.group,
            key: r.key,
            timeout_ms: r.timeoutMs,
            cancel: r.cancel,
            traceparent: r.trace?.traceparent ?? '',
            tracestate: r.trace?.tracestate ?? '',
            handoff: r.handoff ?? false,
          })),
        );
        const theirs = T('gossipcachepb.FetchBatch').encode({ requests: got.requests }).finish();
        assert.deepEqual(
          decodeFetchBatch(Buffer.from(theirs)),
          reqs.map((r) => ({ ...r })),
        );
      }),
    );
  });

  test('PushRequest / PushResponse match protobufjs both ways', () => {
    const entry = fc.record({ key, value: bytes, ttlMs: ttl, minuteQps: qps });
    fc.assert(
      fc.property(key, fc.array(entry, { maxLength: 6 }), u32, (group, entries, kept) => {
        const ours = encodePushRequest({ group, entries });
        const got = plain('gossipcachepb.PushRequest', ours) as {
          group: string;
          entries: Record<string, unknown>[];
        };
        assert.equal(got.group, group);
        assert.deepEqual(
          got.entries,
          entries.map((e) => ({
            key: e.key,
            value: Buffer.from(e.value),
            ttl_ms: e.ttlMs,
            minute_qps: e.minuteQps,
          })),
        );
        const theirs = Buffer.from(T('gossipcachepb.PushRequest').encode(got).finish());
        const back = decodePushRequest(theirs);
        assert.equal(back.group, group);
        assert.deepEqual(
          back.entries.map((e) => ({
            ...e,
            value: Buffer.from(e.value),
            ttlMs: e.ttlMs ?? 0,
            minuteQps: e.minuteQps ?? 0,
          })),
          entries.map((e) => ({ ...e, value: Buffer.from(e.value) })),
        );
        assert.deepEqual(plain('gossipcachepb.PushResponse', encodePushResponse({ kept })), { kept });
        const r = Buffer.from(T('gossipcachepb.PushResponse').encode({ kept }).finish());
        assert.deepEqual(decodePushResponse(r), { kept });
      }),
    );
  });

  test('FetchReplyBatch matches protobufjs both ways', () => {
    const rep = fc.record({
      id: u32,
      code: fc.integer({ min: 0, max: 16 }),
      value: bytes,
      minuteQps: qps,
      ttlMs: ttl,
      message: key,
      stale: fc.boolean(),
      staleWhileRevalidateMs: ttl,
      staleIfErrorMs: ttl,
      ageMs: ttl,
      loadError: key,
    });
    fc.assert(
      fc.property(fc.array(rep, { maxLength: 8 }), (reps: FetchReply[]) => {
        const ours = encodeFetchReplyBatch(reps.map((r) => ({ ...r })));
        const got = plain('gossipcachepb.FetchReplyBatch', ours) as { replies: Record<string, unknown>[] };
        const expected = reps.map((r) => ({
          id: r.id,
          code: r.code,
          value: Buffer.from(r.value),
          minute_qps: r.minuteQps,
          ttl_ms: r.ttlMs,
          message: r.message,
          stale: r.stale,
          stale_while_revalidate_ms: r.staleWhileRevalidateMs,
          stale_if_error_ms: r.staleIfErrorMs,
          age_ms: r.ageMs,
          load_error: r.loadError,
        }));
        assert.deepEqual(got.replies, expected);
        const theirs = T('gossipcachepb.FetchReplyBatch').encode({ replies: expected }).finish();
        const back = decodeFetchReplyBatch(Buffer.from(theirs));
        // An empty load_error is not sent (proto3): it decodes as absent.
        assert.deepEqual(
          back.map((r) => ({ ...r, value: Buffer.from(r.value), loadError: r.loadError ?? '' })),
          reps.map((r) => ({ ...r, value: Buffer.from(r.value) })),
        );
      }),
    );
  });

  test('SetRequest matches protobufjs both ways; a non-UTF-8 key is marked invalid', () => {
    fc.assert(
      fc.property(key, key, bytes, ttl, (group, k, value, ttlMs) => {
        const ours = encodeSetRequest({ group, key: k, value, ttlMs });
        const expected = { group, key: k, value: Buffer.from(value), ttl_ms: ttlMs };
        assert.deepEqual(plain('gossipcachepb.SetRequest', ours), expected);
        const theirs = T('gossipcachepb.SetRequest').encode(expected).finish();
        const back = decodeSetRequest(Buffer.from(theirs));
        assert.deepEqual(
          { ...back, value: Buffer.from(back.value) },
          { group, key: k, value: Buffer.from(value), ttlMs },
        );
      }),
    );
    const bad = decodeSetRequest(Buffer.from([0x0a, 1, 0x67, 0x12, 1, 0xff, 0x1a, 1, 0x76]));
    assert.match(bad.invalid ?? '', /key is not valid UTF-8/);
    // A negative ttl_ms (int64 >= 2^63 on the wire, what a Python client sends for ttl_ms=-5) is the
    // caller's mistake: marked invalid (the server answers INVALID_ARGUMENT), not thrown (grpc-js would
    // answer INTERNAL "Error deserializing request").
    const neg = Buffer.from([0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert.match(decodeSetRequest(neg).invalid ?? '', /ttl_ms is negative/);
  });

  test('a reply with a negative lifecycle duration fails alone, as INTERNAL', () => {
    const good = encodeFetchReplyBatch([
      { id: 1, code: 0, value: Buffer.from('a'), minuteQps: 0, ttlMs: 5, message: '', stale: true, ageMs: 7 },
    ]);
    // reply 2: age_ms = -1 (10-byte varint)
    const inner = Buffer.from([0x08, 2, 0x50, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const bad = Buffer.concat([Buffer.from([0x0a, inner.length]), inner]);
    const [a, b] = decodeFetchReplyBatch(Buffer.concat([good, bad]));
    assert.equal(a.code, 0);
    assert.equal(a.stale, true);
    assert.equal(a.ageMs, 7);
    assert.equal(b.id, 2);
    assert.equal(b.code, 13);
    assert.match(b.message, /age_ms is negative/);
  });

  test('values of a multi-reply batch do not share the batch buffer', () => {
    const buf = encodeFetchReplyBatch([
      { id: 1, code: 0, value: Buffer.from('a'), minuteQps: 0, ttlMs: 0, message: '' },
      { id: 2, code: 0, value: Buffer.from('b'), minuteQps: 0, ttlMs: 0, message: '' },
    ]);
    const [a, b] = decodeFetchReplyBatch(buf);
    buf.fill(0);
    assert.deepEqual([Buffer.from(a.value).toString(), Buffer.from(b.value).toString()], ['a', 'b']);
  });

  test('unknown fields are skipped; truncated or malformed input throws DecodeError, never crashes', () => {
    // field 9 (varint), field 10 (fixed64), field 11 (bytes), field 12 (fixed32) before the known ones
    const extra = Buffer.from([
      0x48, 0x96, 0x01, 0x51, 1, 2, 3, 4, 5, 6, 7, 8, 0x5a, 0x01, 0x00, 0x65, 1, 2, 3, 4,
    ]);
    const req = Buffer.concat([extra, encodeKeyRequest({ group: 'g', key: 'k' })]);
    assert.deepEqual(decodeKeyRequest(req), { group: 'g', key: 'k' });
    for (const bad of [
      Buffer.from([0x0a, 0x05, 0x61]), // length past the end
      Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11-byte varint
      Buffer.from([0x0b]), // group start wire type
      Buffer.from([0x11, 1, 2]), // truncated double
    ]) {
      assert.throws(() => decodeGetResponse(bad), DecodeError);
      assert.throws(() => decodeFetchBatch(bad), DecodeError);
      assert.throws(() => decodeFetchReplyBatch(bad), DecodeError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (junk) => {
        for (const decode of [decodeKeyRequest, decodeGetResponse, decodeFetchBatch, decodeFetchReplyBatch]) {
          try {
            decode(Buffer.from(junk));
          } catch (err) {
            assert.ok(err instanceof DecodeError, `${err}`);
          }
        }
      }),
    );
  });
});
