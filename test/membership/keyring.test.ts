import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Keyring, parseSecretKey, parseSecretKeys, SEAL_OVERHEAD } from '../../src/membership/keyring.js';

const payload = Buffer.from('ping from node-a, incarnation 7');

function opened(r: ReturnType<Keyring['open']>): Buffer {
  assert.ok(r.ok, `expected the message to open, got ${r.ok ? '' : r.reason}`);
  return Buffer.from(r.payload);
}

describe('Keyring', () => {
  it('round-trips a payload with the same key, and the wire hides it', () => {
    const key = randomBytes(32);
    const a = new Keyring([key]);
    const b = new Keyring([key]);
    const wire = a.seal('packet', payload);
    assert.equal(wire.length, payload.length + SEAL_OVERHEAD);
    assert.equal(wire.indexOf(payload), -1, 'payload visible on the wire');
    assert.deepEqual(opened(b.open('packet', wire)), payload);
  });

  it('round-trips plaintext when no key is installed', () => {
    const a = new Keyring();
    const wire = a.seal('packet', payload);
    assert.deepEqual(opened(new Keyring().open('packet', wire)), payload);
  });

  it('drops and counts a message sealed with a different key', () => {
    const a = new Keyring([randomBytes(32)]);
    const b = new Keyring([randomBytes(32)]);
    const r = b.open('packet', a.seal('packet', payload));
    assert.deepEqual(r, { ok: false, reason: 'decrypt' });
    assert.equal(b.stats.decryptFailures, 1);
  });

  it('drops every single-byte tampering', () => {
    const key = randomBytes(32);
    const a = new Keyring([key]);
    const b = new Keyring([key]);
    const wire = a.seal('packet', payload);
    for (let i = 0; i < wire.length; i++) {
      const bad = Buffer.from(wire);
      bad[i] ^= 0x01;
      assert.equal(b.open('packet', bad).ok, false, `flipping byte ${i} was accepted`);
    }
    assert.equal(b.stats.decryptFailures + b.stats.malformed + b.stats.plaintextRejected, wire.length);
  });

  it('drops truncated messages as malformed or undecryptable', () => {
    const key = randomBytes(32);
    const wire = new Keyring([key]).seal('packet', payload);
    const b = new Keyring([key]);
    for (let n = 0; n < wire.length; n++) assert.equal(b.open('packet', wire.subarray(0, n)).ok, false);
    assert.ok(b.stats.malformed > 0);
  });

  it('refuses plaintext when keys are installed, and encrypted messages when none are', () => {
    const keyed = new Keyring([randomBytes(32)]);
    assert.deepEqual(keyed.open('packet', new Keyring().seal('packet', payload)), {
      ok: false,
      reason: 'plaintext',
    });
    const open = new Keyring();
    assert.deepEqual(open.open('packet', keyed.seal('packet', payload)), { ok: false, reason: 'decrypt' });
  });

  it('binds the message kind: a datagram cannot pass for a stream request', () => {
    const key = randomBytes(32);
    const wire = new Keyring([key]).seal('packet', payload);
    assert.deepEqual(new Keyring([key]).open('request', wire), { ok: false, reason: 'decrypt' });
  });

  it('rotation: a node with [new, old] reads both; a node with only [old] cannot read new', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const rotated = new Keyring([newKey, oldKey]);
    const oldOnly = new Keyring([oldKey]);
    const newOnly = new Keyring([newKey]);
    assert.deepEqual(opened(rotated.open('packet', oldOnly.seal('packet', payload))), payload);
    assert.deepEqual(opened(rotated.open('packet', newOnly.seal('packet', payload))), payload);
    // rotated encrypts with its primary (new): old-only nodes must be given the new key first.
    assert.equal(oldOnly.open('packet', rotated.seal('packet', payload)).ok, false);
    assert.deepEqual(opened(newOnly.open('packet', rotated.seal('packet', payload))), payload);
  });

  it('install/use/remove rotate keys at runtime', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const k = new Keyring([oldKey]);
    k.install(newKey);
    k.use(newKey);
    assert.throws(() => k.remove(newKey), /primary/);
    k.remove(oldKey);
    assert.equal(new Keyring([oldKey]).open('packet', k.seal('packet', payload)).ok, false);
    assert.ok(new Keyring([newKey]).open('packet', k.seal('packet', payload)).ok);
  });

  it('refuses a replayed message and one outside the time window', () => {
    const key = randomBytes(32);
    let now = 1_000_000;
    const a = new Keyring([key], { now: () => now });
    const b = new Keyring([key], { now: () => now, replayWindowMs: 10_000 });
    const wire = a.seal('packet', payload);
    assert.ok(b.open('packet', wire).ok);
    assert.deepEqual(b.open('packet', wire), { ok: false, reason: 'replayed' });
    now += 10_001;
    assert.deepEqual(b.open('packet', wire), { ok: false, reason: 'stale' });
    assert.equal(b.stats.replayed, 1);
    assert.equal(b.stats.stale, 1);
    const future = new Keyring([key], { now: () => now + 20_000 }).seal('packet', payload);
    assert.deepEqual(b.open('packet', future), { ok: false, reason: 'stale' });
  });

  it('keeps refusing replays after the nonce memory overflows', () => {
    const key = randomBytes(32);
    let now = 1_000_000;
    const a = new Keyring([key], { now: () => now });
    const b = new Keyring([key], { now: () => now, maxRememberedNonces: 4 });
    const first = a.seal('packet', payload);
    assert.ok(b.open('packet', first).ok);
    for (let i = 0; i < 10; i++) {
      now += 1;
      assert.ok(b.open('packet', a.seal('packet', payload)).ok);
    }
    assert.equal(b.open('packet', first).ok, false, 'evicted nonce was accepted again');
  });

  it('rejects keys of the wrong length', () => {
    assert.throws(() => new Keyring([randomBytes(16)]), /exactly 32 bytes/);
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
