import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodePacket,
  decodeStream,
  encodeFrame,
  encodePacket,
  encodeStream,
  type Message,
  MsgType,
  metaSize,
} from '../../src/membership/messages.js';

const id = fc.string({ minLength: 1, maxLength: 40 });
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const gen = fc.integer({ min: 0, max: 2 ** 48 - 1 });
const meta = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 30 }), {
  maxKeys: 5,
});

const packetMessage: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant(MsgType.Ping), seq: u32, targetId: id, sourceId: id, sourceAddr: id }),
  fc.record({
    type: fc.constant(MsgType.IndirectPing),
    seq: u32,
    targetId: id,
    targetAddr: id,
    nack: fc.boolean(),
    sourceId: id,
    sourceAddr: id,
  }),
  fc.record({ type: fc.constant(MsgType.Ack), seq: u32 }),
  fc.record({ type: fc.constant(MsgType.Nack), seq: u32 }),
  fc.record({ type: fc.constant(MsgType.Alive), id, addr: id, meta, generation: gen, incarnation: u32 }),
  fc.record({ type: fc.constant(MsgType.Suspect), id, generation: gen, incarnation: u32, from: id }),
  fc.record({ type: fc.constant(MsgType.Dead), id, generation: gen, incarnation: u32, from: id }),
  fc.record({ type: fc.constant(MsgType.Left), id, generation: gen, incarnation: u32 }),
) as fc.Arbitrary<Message>;

const pushPull = fc.record({
  type: fc.constant(MsgType.PushPull as const),
  join: fc.boolean(),
  sourceId: id,
  members: fc.array(
    fc.record({
      id,
      addr: id,
      meta,
      generation: gen,
      incarnation: u32,
      state: fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const, 'left' as const),
    }),
    { maxLength: 20 },
  ),
});

/** Compare through JSON so null-prototype vs plain objects do not matter. */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x));

describe('membership codec', () => {
  it('round-trips every datagram message, alone and packed together', () => {
    fc.assert(
      fc.property(fc.array(packetMessage, { minLength: 1, maxLength: 6 }), (msgs) => {
        const r = decodePacket(encodePacket(msgs));
        assert.ok(r.ok, r.ok ? '' : r.error);
        assert.deepEqual(plain(r.value), plain(msgs));
      }),
    );
  });

  it('round-trips push-pull on the stream path', () => {
    fc.assert(
      fc.property(pushPull, (m) => {
        const r = decodeStream(encodeStream(m));
        assert.ok(r.ok, r.ok ? '' : r.error);
        assert.deepEqual(plain(r.value), plain(m));
      }),
    );
  });

  it('rejects every truncation of a datagram and of a stream message', () => {
    fc.assert(
      fc.property(fc.array(packetMessage, { minLength: 1, maxLength: 3 }), pushPull, (msgs, pp) => {
        const pkt = encodePacket(msgs);
        // Cuts on a frame boundary are whole shorter packets (valid); every other cut must fail.
        const boundaries = new Set<number>();
        let at = 2;
        for (const m of msgs) {
          at += encodeFrame(m).length;
          boundaries.add(at);
        }
        for (let n = 0; n < pkt.length; n++) {
          const r = decodePacket(pkt.subarray(0, n));
          if (boundaries.has(n)) assert.ok(r.ok);
          else assert.equal(r.ok, false, `cut at ${n} of ${pkt.length} accepted`);
        }
        const s = encodeStream(pp);
        for (let n = 0; n < s.length; n++) assert.equal(decodeStream(s.subarray(0, n)).ok, false);
      }),
      { numRuns: 60 },
    );
  });

  it('never throws on random bytes, and rejects trailing garbage', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        decodePacket(bytes);
        decodeStream(bytes);
        const withHeader = new Uint8Array([0x47, 0x01, ...bytes]);
        decodePacket(withHeader);
        const streamHeader = new Uint8Array([0x47, 0x02, ...bytes]);
        decodeStream(streamHeader);
      }),
      { numRuns: 2000 },
    );
    const ok = encodePacket([{ type: MsgType.Ack, seq: 7 }]);
    const extra = new Uint8Array([...ok, 0]);
    assert.equal(decodePacket(extra).ok, false);
    const s = encodeStream({ type: MsgType.Ack, seq: 7 });
    assert.equal(decodeStream(new Uint8Array([...s, 1])).ok, false);
  });

  it('rejects flipped bytes in fixed fields with a reason', () => {
    const good = encodePacket([{ type: MsgType.Ack, seq: 1 }]);
    const badMagic = good.slice();
    badMagic[0] = 0;
    const r1 = decodePacket(badMagic);
    assert.equal(r1.ok, false);
    assert.match(r1.ok ? '' : r1.error, /magic/);
    const badType = good.slice();
    badType[2] = 99;
    const r2 = decodePacket(badType);
    assert.match(r2.ok ? '' : r2.error, /unknown message type 99/);
    // Push-pull is not allowed in a datagram (it would not fit and must come over the stream path).
    const pp = encodeStream({ type: MsgType.PushPull, join: false, sourceId: 'a', members: [] });
    const asPacket = new Uint8Array([0x47, 0x01, pp[2], 0, pp.length - 7, ...pp.subarray(7)]);
    assert.equal(decodePacket(asPacket).ok, false);
    // Invalid UTF-8 in an id.
    const alive = encodePacket([{ type: MsgType.Ack, seq: 0 }]);
    assert.ok(decodePacket(alive).ok);
    const bad = encodePacket([{ type: MsgType.Left, id: 'ab', generation: 1, incarnation: 1 }]);
    bad[6] = 0xff;
    const r3 = decodePacket(bad);
    assert.match(r3.ok ? '' : r3.error, /UTF-8/);
    // An absurd member count is refused before allocating anything.
    const huge = encodeStream({ type: MsgType.PushPull, join: false, sourceId: 'a', members: [] });
    huge.set([0xff, 0xff, 0xff, 0xff], huge.length - 4);
    assert.match((decodeStream(huge) as { error: string }).error, /member count/);
  });

  it('keeps metadata keys such as __proto__ as plain data', () => {
    const m: Message = {
      type: MsgType.Alive,
      id: 'x',
      addr: 'a:1',
      meta: JSON.parse('{"__proto__":"p","grpcAddr":"a:2"}'),
      generation: 1,
      incarnation: 2,
    };
    const r = decodePacket(encodePacket([m]));
    assert.ok(r.ok);
    const got = (r.value[0] as { meta: Record<string, string> }).meta;
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.deepEqual(Object.keys(got).sort(), ['__proto__', 'grpcAddr']);
    assert.equal(metaSize({ grpcAddr: '10.0.0.1:9090' }), 1 + 1 + 8 + 2 + 13);
  });
});
