import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  ANY_RECEIVER,
  Keyring,
  parseSecretKey,
  parseSecretKeys,
  receiverTag,
  replyTag,
  SEAL_OVERHEAD,
} from '../../src/membership/keyring.js';

const payload = Buffer.from('ping from node-a, incarnation 7');
/** The receiver every message in these tests is bound to. */
const TO = receiverTag('10.0.0.2:7946');

function opened(r: ReturnType<Keyring['open']>): Buffer {
  assert.ok(r.ok, `expected the message to open, got ${r.ok ? '' : r.reason}`);
  return Buffer.from(r.payload);
}

describe('Keyring', () => {
  it('round-trips a payload with the same key, and the wire hides it', () => {
    const key = randomBytes(32);
    const a = new Keyring([key]);
    const b = new Keyring([key]);
    const wire = a.seal('packet', payload, TO);
    assert.equal(wire.length, payload.length + SEAL_OVERHEAD);
    assert.equal(wire.indexOf(payload), -1, 'payload visible on the wire');
    assert.deepEqual(opened(b.open('packet', wire, TO)), payload);
  });

  it('round-trips plaintext when no key is installed', () => {
    const a = new Keyring();
    const wire = a.seal('packet', payload, TO);
    assert.deepEqual(opened(new Keyring().open('packet', wire, TO)), payload);
  });

  it('drops and counts a message sealed with a different key', () => {
    const a = new Keyring([randomBytes(32)]);
    const b = new Keyring([randomBytes(32)]);
    const r = b.open('packet', a.seal('packet', payload, TO), TO);
    assert.deepEqual(r, { ok: false, reason: 'decrypt' });
    assert.equal(b.stats.decryptFailures, 1);
  });

  it('drops every single-byte tampering', () => {
    const key = randomBytes(32);
    const a = new Keyring([key]);
    const b = new Keyring([key]);
    const wire = a.seal('packet', payload, TO);
    for (let i = 0; i < wire.length; i++) {
      const bad = Buffer.from(wire);
      bad[i] ^= 0x01;
      assert.equal(b.open('packet', bad, TO).ok, false, `flipping byte ${i} was accepted`);
    }
    assert.equal(b.stats.decryptFailures + b.stats.malformed + b.stats.plaintextRejected, wire.length);
  });

  it('drops truncated messages as malformed or undecryptable', () => {
    const key = randomBytes(32);
    const wire = new Keyring([key]).seal('packet', payload, TO);
    const b = new Keyring([key]);
    for (let n = 0; n < wire.length; n++) assert.equal(b.open('packet', wire.subarray(0, n), TO).ok, false);
    assert.ok(b.stats.malformed > 0);
  });

  it('refuses plaintext when keys are installed, and encrypted messages when none are', () => {
    const keyed = new Keyring([randomBytes(32)]);
    assert.deepEqual(keyed.open('packet', new Keyring().seal('packet', payload, TO), TO), {
      ok: false,
      reason: 'plaintext',
    });
    const open = new Keyring();
    assert.deepEqual(open.open('packet', keyed.seal('packet', payload, TO), TO), {
      ok: false,
      reason: 'decrypt',
    });
  });

  it('binds the message kind: a datagram cannot pass for a stream request', () => {
    const key = randomBytes(32);
    const wire = new Keyring([key]).seal('packet', payload, TO);
    assert.deepEqual(new Keyring([key]).open('request', wire, TO), { ok: false, reason: 'decrypt' });
  });

  it('rotation: a node with [new, old] reads both; a node with only [old] cannot read new', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const rotated = new Keyring([newKey, oldKey]);
    const oldOnly = new Keyring([oldKey]);
    const newOnly = new Keyring([newKey]);
    assert.deepEqual(opened(rotated.open('packet', oldOnly.seal('packet', payload, TO), TO)), payload);
    assert.deepEqual(opened(rotated.open('packet', newOnly.seal('packet', payload, TO), TO)), payload);
    // rotated encrypts with its primary (new): old-only nodes must be given the new key first.
    assert.equal(oldOnly.open('packet', rotated.seal('packet', payload, TO), TO).ok, false);
    assert.deepEqual(opened(newOnly.open('packet', rotated.seal('packet', payload, TO), TO)), payload);
  });

  it('install/use/remove rotate keys at runtime', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const k = new Keyring([oldKey]);
    k.install(newKey);
    k.use(newKey);
    assert.throws(() => k.remove(newKey), /primary/);
    k.remove(oldKey);
    assert.equal(new Keyring([oldKey]).open('packet', k.seal('packet', payload, TO), TO).ok, false);
    assert.ok(new Keyring([newKey]).open('packet', k.seal('packet', payload, TO), TO).ok);
  });

  it('refuses a replayed message and one outside the time window', () => {
    const key = randomBytes(32);
    let now = 1_000_000;
    const a = new Keyring([key], { now: () => now });
    const b = new Keyring([key], { now: () => now, replayWindowMs: 10_000 });
    const wire = a.seal('packet', payload, TO);
    assert.ok(b.open('packet', wire, TO).ok);
    assert.deepEqual(b.open('packet', wire, TO), { ok: false, reason: 'replayed' });
    now += 10_001;
    assert.deepEqual(b.open('packet', wire, TO), { ok: false, reason: 'stale' });
    assert.equal(b.stats.replayed, 1);
    assert.equal(b.stats.stale, 1);
    const future = new Keyring([key], { now: () => now + 20_000 }).seal('packet', payload, TO);
    assert.deepEqual(b.open('packet', future, TO), { ok: false, reason: 'stale' });
  });

  it('keeps refusing replays after the nonce memory overflows', () => {
    const key = randomBytes(32);
    let now = 1_000_000;
    const a = new Keyring([key], { now: () => now });
    const b = new Keyring([key], { now: () => now, maxRememberedNonces: 4 });
    const first = a.seal('packet', payload, TO);
    assert.ok(b.open('packet', first, TO).ok);
    for (let i = 0; i < 10; i++) {
      now += 1;
      assert.ok(b.open('packet', a.seal('packet', payload, TO), TO).ok);
    }
    assert.equal(b.open('packet', first, TO).ok, false, 'evicted nonce was accepted again');
  });

  it('binds a message to its receiver: another member refuses it, even inside the window', () => {
    const key = randomBytes(32);
    const toB = receiverTag('10.0.0.2:7946');
    const toC = receiverTag('10.0.0.3:7946');
    assert.equal(toB.length, 8);
    assert.notDeepEqual(toB, toC);
    const wire = new Keyring([key]).seal('packet', payload, toB);
    const c = new Keyring([key]); // never saw it: its own replay memory cannot help
    assert.deepEqual(c.open('packet', wire, toC), { ok: false, reason: 'misaddressed' });
    assert.equal(c.stats.misaddressed, 1);
    assert.equal(c.stats.decryptFailures, 0);
    const b = new Keyring([key]);
    assert.deepEqual(opened(b.open('packet', wire, toB)), payload);
    // A stream request too; only a request may be sent to "any receiver" (a seed), never a datagram.
    const req = new Keyring([key]).seal('request', payload, toB);
    assert.deepEqual(c.open('request', req, toC), { ok: false, reason: 'misaddressed' });
    assert.ok(c.open('request', new Keyring([key]).seal('request', payload, ANY_RECEIVER), toC).ok);
    assert.deepEqual(c.open('packet', new Keyring([key]).seal('packet', payload, ANY_RECEIVER), toC), {
      ok: false,
      reason: 'misaddressed',
    });
    assert.equal(c.stats.misaddressed, 3);
  });

  it('binds a reply to its request: a reply to another request is refused', () => {
    const key = randomBytes(32);
    const requester = new Keyring([key]);
    const server = new Keyring([key]);
    const req1 = requester.seal('request', payload, TO);
    const req2 = requester.seal('request', payload, TO);
    const got1 = server.open('request', req1, TO);
    const got2 = server.open('request', req2, TO);
    assert.ok(got1.ok && got2.ok);
    assert.deepEqual(got1.replyTo, replyTag(req1));
    const reply1 = server.seal('response', Buffer.from('state 1'), got1.replyTo);
    const reply2 = server.seal('response', Buffer.from('state 2'), got2.replyTo);
    assert.deepEqual(requester.open('response', reply2, replyTag(req1)), {
      ok: false,
      reason: 'misaddressed',
    });
    assert.deepEqual(opened(requester.open('response', reply1, replyTag(req1))), Buffer.from('state 1'));
    // An unbound reply to a bound request is refused as well.
    const unbound = new Keyring([key], { receiverBinding: 'off' }).seal('response', payload, undefined);
    assert.deepEqual(requester.open('response', unbound, replyTag(req2)), {
      ok: false,
      reason: 'misaddressed',
    });
  });

  it('rolling upgrade: off ↔ send ↔ require talk to their neighbours; require refuses unbound', () => {
    const key = randomBytes(32);
    const off = () => new Keyring([key], { receiverBinding: 'off' });
    const send = () => new Keyring([key], { receiverBinding: 'send' });
    const req = () => new Keyring([key]);
    assert.equal(req().receiverBinding, 'require');
    // 'off' sends the older, unbound format (8 bytes shorter): what nodes before binding read.
    const legacy = off().seal('packet', payload, TO);
    assert.equal(legacy.length, payload.length + SEAL_OVERHEAD - 8);
    assert.equal(legacy[0], 1);
    const s = send();
    assert.deepEqual(opened(s.open('packet', legacy, TO)), payload);
    assert.equal(s.stats.unboundAccepted, 1);
    assert.deepEqual(opened(off().open('packet', send().seal('packet', payload, TO), TO)), payload);
    assert.deepEqual(opened(req().open('packet', send().seal('packet', payload, TO), TO)), payload);
    assert.deepEqual(opened(send().open('packet', req().seal('packet', payload, TO), TO)), payload);
    const r = req();
    assert.deepEqual(r.open('packet', legacy, TO), { ok: false, reason: 'unbound' });
    assert.equal(r.stats.unbound, 1);
    // A reply has the format of its request: an unbound request from an 'off' node gets an unbound reply.
    const o = off();
    const legacyReq = o.seal('request', payload, TO);
    assert.equal(replyTag(legacyReq), undefined);
    const got = send().open('request', legacyReq, TO);
    assert.ok(got.ok);
    assert.equal(got.replyTo, undefined);
    const reply = send().seal('response', payload, got.replyTo);
    assert.deepEqual(opened(o.open('response', reply, undefined)), payload);
    assert.throws(
      () => new Keyring([key], { receiverBinding: 'maybe' as 'off' }),
      /one of off, send, require/,
    );
  });

  it('rejects keys of the wrong length', () => {
    assert.throws(() => new Keyring([randomBytes(16)]), /exactly 32 bytes/);
  });

  it('names parseSecretKey when given key text instead of its bytes', () => {
    // What `openssl rand -base64 32` prints: 44 characters, which must not be read as a 44-byte key.
    const text = randomBytes(32).toString('base64');
    assert.throws(
      () => new Keyring([text as unknown as Buffer]),
      /a string, not the key's 32 bytes.*parseSecretKey/,
    );
    assert.equal(new Keyring([parseSecretKey(text)]).encrypted, true);
  });
});

describe('parseSecretKey', () => {
  it('accepts base64, base64url and hex of 32 bytes', () => {
    const key = randomBytes(32);
    assert.deepEqual(parseSecretKey(key.toString('base64')), key);
    assert.deepEqual(parseSecretKey(key.toString('base64url')), key);
    assert.deepEqual(parseSecretKey(key.toString('hex')), key);
    assert.deepEqual(parseSecretKey(`  ${key.toString('hex').toUpperCase()}\n`), key);
  });

  it('says what is wrong with a bad key', () => {
    assert.throws(() => parseSecretKey(''), /empty/);
    assert.throws(() => parseSecretKey(randomBytes(16).toString('base64')), /16 bytes, need exactly 32/);
    assert.throws(() => parseSecretKey('not a key!'), /not base64 or 64 hex/);
  });

  it('parses a comma-separated list, first = primary, and names the bad position', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    assert.deepEqual(parseSecretKeys(`${a.toString('base64')},${b.toString('hex')}`), [a, b]);
    assert.deepEqual(parseSecretKeys(''), []);
    assert.deepEqual(parseSecretKeys(undefined), []);
    assert.throws(() => parseSecretKeys(`${a.toString('base64')},xyz`), /secret key #2 of 2/);
  });
});
