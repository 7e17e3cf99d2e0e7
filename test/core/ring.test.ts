// The ring is a cross-language contract (docs/ring.md): these tests pin the hash to its published
// vectors, pin owners to a table computed by an independent implementation of the spec (the Python
// reference in docs/ring.md), and check the balance and movement targets (docs/ring.md) on fixed keys.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { murmur3, Ring } from '../../src/ring.js';

const utf8 = (s: string) => Buffer.from(s, 'utf8');

/** Deterministic keys: a fixed-seed xorshift generator, so bounds below hold run after run. */
function randomKeys(count: number, seed: number): string[] {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return Array.from({ length: count }, () => `key-${next().toString(36)}-${next().toString(36)}`);
}

const labelsOf = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:9090`);

describe('murmur3 (MurmurHash3_x86_32)', () => {
  it("matches SMHasher's verification value 0xB0F57EE3", () => {
    // SMHasher's VerificationTest: hash bytes 0..i-1 with seed 256-i for i in 0..255, hash the 256
    // little-endian results with seed 0. Covers every tail length and many block counts.
    const key = new Uint8Array(256);
    const hashes = Buffer.alloc(256 * 4);
    for (let i = 0; i < 256; i++) {
      key[i] = i;
      hashes.writeUInt32LE(murmur3(key, i, 256 - i), i * 4);
    }
    assert.equal(murmur3(hashes, hashes.length, 0), 0xb0f57ee3);
  });

  it('matches the published test vectors', () => {
    const vectors: [Uint8Array, number, number][] = [
      [utf8(''), 0, 0],
      [utf8(''), 1, 0x514e28b7],
      [utf8(''), 0xffffffff, 0x81f16f39],
      [new Uint8Array(4), 0, 0x2362f9de],
      [utf8('aaaa'), 0x9747b28c, 0x5a97808a],
      [utf8('abc'), 0x9747b28c, 0xc84a62dd],
      [utf8('Hello, world!'), 0x9747b28c, 0x24884cba],
      [utf8('The quick brown fox jumps over the lazy dog'), 0x9747b28c, 0x2fa826cd],
    ];
    for (const [bytes, seed, want] of vectors) {
      assert.equal(murmur3(bytes, bytes.length, seed), want, `murmur3(${JSON.stringify(bytes)}, ${seed})`);
    }
  });

  it('hashes only the first len bytes and defaults to the whole array, seed 0', () => {
    const b = utf8('Hello, world!xyz');
    assert.equal(murmur3(b, 13, 0x9747b28c), 0x24884cba);
    assert.equal(murmur3(utf8('')), 0);
  });
});

describe('Ring: fixed vectors (computed by the Python reference in docs/ring.md)', () => {
  it('owners and checksum for five IPv4 members', () => {
    const ring = new Ring({ labels: labelsOf(5) });
    const table: [string, string][] = [
      ['', '10.0.0.3:9090'],
      ['a', '10.0.0.4:9090'],
      ['foo', '10.0.0.4:9090'],
      ['user:42', '10.0.0.3:9090'],
      ['user:43', '10.0.0.5:9090'],
      ['cache/key/0001', '10.0.0.4:9090'],
      ['Hello, world!', '10.0.0.1:9090'],
      ['é', '10.0.0.2:9090'],
      ['日本語', '10.0.0.5:9090'],
      ['😀', '10.0.0.2:9090'],
      ['k'.repeat(100), '10.0.0.1:9090'],
    ];
    for (const [key, owner] of table) assert.equal(ring.owner(key), owner, `owner(${JSON.stringify(key)})`);
    assert.equal(ring.checksum(), 'f3350a78');
    assert.deepEqual(ring.ownersOf('user:42', 5), [
      '10.0.0.3:9090',
      '10.0.0.2:9090',
      '10.0.0.4:9090',
      '10.0.0.5:9090',
      '10.0.0.1:9090',
    ]);
  });

  it('owners and checksum for host names and IPv6 members', () => {
    const ring = new Ring({
      labels: [
        'cache-0.cache.default.svc.cluster.local:9090',
        'cache-1.cache.default.svc.cluster.local:9090',
        '[::1]:9090',
        '[2001:db8::7]:443',
        'localhost:7000',
      ],
    });
    const table: [string, string][] = [
      ['', 'cache-1.cache.default.svc.cluster.local:9090'],
      ['a', '[::1]:9090'],
      ['user:42', '[2001:db8::7]:443'],
      ['é', 'cache-0.cache.default.svc.cluster.local:9090'],
      ['😀', 'localhost:7000'],
      ['x'.repeat(1000), 'localhost:7000'],
    ];
    for (const [key, owner] of table) assert.equal(ring.owner(key), owner, `owner(${JSON.stringify(key)})`);
    assert.equal(ring.checksum(), 'b876d148');
    assert.deepEqual(ring.ownersOf('user:42', 5), [
      '[2001:db8::7]:443',
      'localhost:7000',
      '[::1]:9090',
      'cache-0.cache.default.svc.cluster.local:9090',
      'cache-1.cache.default.svc.cluster.local:9090',
    ]);
  });

  it('breaks a collision of two labels’ hashes by the seed-1 hash, sharing their keys', () => {
    // These two labels have the same MurmurHash3 (0x0ed3f9ed), so their scores tie on every key.
    const a = '10.1.81.140:9090';
    const b = '10.2.37.86:9090';
    assert.equal(murmur3(utf8(a)), murmur3(utf8(b)));
    const ring = new Ring({ labels: [a, b, '10.0.0.1:9090'] });
    const table = [a, a, b, '10.0.0.1:9090', '10.0.0.1:9090', b, '10.0.0.1:9090', '10.0.0.1:9090'];
    table.push('10.0.0.1:9090', a, '10.0.0.1:9090', b);
    for (const [i, owner] of table.entries()) assert.equal(ring.owner(`key-${i}`), owner, `owner(key-${i})`);
    assert.equal(ring.checksum(), '72f86aaa');
    const counts = new Map<string, number>();
    for (const key of randomKeys(30000, 7)) {
      const o = ring.owner(key)!;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    // Without the tie-break one of the pair would own nothing; with it each has about a quarter.
    assert.ok(counts.get(a)! > 6500 && counts.get(b)! > 6500, JSON.stringify([...counts]));
  });
});

describe('Ring: basics', () => {
  it('an empty ring owns nothing', () => {
    const ring = new Ring();
    assert.equal(ring.owner('k'), undefined);
    assert.deepEqual(ring.ownersOf('k', 3), []);
    assert.deepEqual(ring.nodes(), []);
    assert.equal(ring.size, 0);
    assert.equal(ring.checksum(), '00000000');
    ring.set(labelsOf(3));
    ring.set([]);
    assert.equal(ring.owner('k'), undefined);
  });

  it('a single member owns every key', () => {
    const ring = new Ring({ labels: ['10.0.0.9:9090'] });
    for (const key of ['', 'a', 'é', 'x'.repeat(5000)]) assert.equal(ring.owner(key), '10.0.0.9:9090');
    assert.deepEqual(ring.ownersOf('a', 3), ['10.0.0.9:9090']);
  });

  it('is deterministic: separate rings and repeated calls agree', () => {
    const keys = randomKeys(2000, 3);
    const r1 = new Ring({ labels: labelsOf(7) });
    const r2 = new Ring({ labels: labelsOf(7) });
    const first = keys.map((k) => r1.owner(k));
    assert.deepEqual(
      keys.map((k) => r2.owner(k)),
      first,
    );
    assert.deepEqual(
      keys.map((k) => r1.owner(k)),
      first,
    );
  });

  it('set() is order-independent, ignores duplicates and is idempotent', () => {
    const labels = labelsOf(6);
    const r1 = new Ring({ labels });
    const r2 = new Ring({ labels: [...labels].reverse().concat(labels[2], labels[0]) });
    assert.equal(r1.checksum(), r2.checksum());
    assert.deepEqual(r1.nodes(), r2.nodes());
    assert.equal(r2.size, 6);
    for (const k of randomKeys(500, 5)) assert.equal(r1.owner(k), r2.owner(k));
    const before = r1.checksum();
    r1.set(labels);
    r1.set(labels);
    assert.equal(r1.checksum(), before);
  });

  it('the checksum changes with the member set', () => {
    const seen = new Set<string>();
    for (let n = 0; n <= 20; n++) seen.add(new Ring({ labels: labelsOf(n) }).checksum());
    assert.equal(seen.size, 21);
    for (const c of seen) assert.match(c, /^[0-9a-f]{8}$/);
  });

  it('nodes() is sorted by UTF-8 bytes and a copy; has() and size report members', () => {
    // UTF-16 order would put U+FF5E before U+1F600; UTF-8 (code point) order puts it after.
    const ring = new Ring({ labels: ['b:1', '\u{1F600}:1', 'a:1', '\uFF5E:1'] });
    assert.deepEqual(ring.nodes(), ['a:1', 'b:1', '\uFF5E:1', '\u{1F600}:1']);
    ring.nodes().pop();
    assert.equal(ring.size, 4);
    assert.ok(ring.has('b:1'));
    assert.ok(!ring.has('c:1'));
  });

  it('ownersOf lists distinct members, owner first, clamped to the member count', () => {
    const ring = new Ring({ labels: labelsOf(5) });
    for (const key of randomKeys(200, 11)) {
      const all = ring.ownersOf(key, 10);
      assert.equal(all.length, 5);
      assert.equal(new Set(all).size, 5);
      assert.equal(all[0], ring.owner(key));
      assert.deepEqual(ring.ownersOf(key, 2), all.slice(0, 2));
    }
    assert.deepEqual(ring.ownersOf('k', 0), []);
    assert.deepEqual(ring.ownersOf('k', -1), []);
    assert.deepEqual(ring.ownersOf('k', Number.NaN), []);
  });

  it('hashes keys as UTF-8, a lone surrogate as U+FFFD', () => {
    const ring = new Ring({ labels: labelsOf(40) });
    assert.equal(ring.owner('a\uD800b'), ring.owner('a\uFFFDb'));
    // Non-ASCII after a long ASCII prefix, and keys longer than any buffer seen before.
    for (const key of ['x'.repeat(300) + 'é', 'é'.repeat(70000), '日本'.repeat(40000)]) {
      const want = new Ring({ labels: labelsOf(40) }).ownersOf(key, 40)[0];
      assert.equal(ring.owner(key), want);
    }
  });

  it('rejects bad labels with a TypeError that names them, keeping the previous members', () => {
    const ring = new Ring({ labels: labelsOf(3) });
    const before = ring.checksum();
    for (const bad of ['', 'a\nb:1', 'a\rb:1', '\uD800:1']) {
      assert.throws(
        () => ring.set([...labelsOf(2), bad]),
        (e: unknown) => {
          assert.ok(e instanceof TypeError);
          assert.match(e.message, /ring: member label/);
          return true;
        },
      );
    }
    assert.throws(() => ring.set([42 as unknown as string]), /non-empty string.*got 42/);
    assert.throws(() => new Ring({ labels: [''] }), TypeError);
    assert.throws(() => ring.owner(undefined as unknown as string), /key must be a string, got undefined/);
    assert.throws(() => ring.ownersOf(7 as unknown as string, 2), /key must be a string, got number/);
    assert.equal(ring.checksum(), before);
    assert.equal(ring.size, 3);
  });
});

describe('Ring: balance and movement targets (200k fixed keys)', () => {
  it('max/mean share ≤ 1.10 for every n in 3..50; adding node N+1 moves ≤ 1.1/(N+1), only to it', () => {
    const keys = randomKeys(200_000, 20240601);
    const all = labelsOf(50);
    const ring = new Ring();
    let prev: (string | undefined)[] | undefined;
    for (let n = 3; n <= 50; n++) {
      ring.set(all.slice(0, n));
      const owners = keys.map((k) => ring.owner(k));
      const counts = new Map<string, number>();
      for (const o of owners) counts.set(o!, (counts.get(o!) ?? 0) + 1);
      assert.equal(counts.size, n, `n=${n}: every member owns keys`);
      const maxOverMean = Math.max(...counts.values()) / (keys.length / n);
      assert.ok(maxOverMean <= 1.1, `n=${n}: max/mean ${maxOverMean.toFixed(3)} > 1.10`);
      if (prev) {
        let moved = 0;
        for (let i = 0; i < keys.length; i++) {
          if (owners[i] === prev[i]) continue;
          moved++;
          assert.equal(owners[i], all[n - 1], `n=${n}: a key moved to an old member`);
        }
        const ratio = moved / keys.length / (1 / n);
        assert.ok(ratio <= 1.1, `adding member ${n}: moved ${ratio.toFixed(3)} × 1/(N+1)`);
      }
      prev = owners;
    }
  });

  it('removing a member moves only the keys it owned', () => {
    const keys = randomKeys(50_000, 99);
    const all = labelsOf(20);
    const ring = new Ring({ labels: all });
    const before = keys.map((k) => ring.owner(k));
    const gone = all[7];
    ring.set(all.filter((l) => l !== gone));
    let moved = 0;
    keys.forEach((k, i) => {
      const now = ring.owner(k);
      if (before[i] === gone) moved++;
      else assert.equal(now, before[i]);
      assert.notEqual(now, gone);
    });
    assert.ok(moved > 0);
  });
});

describe('Ring: properties', () => {
  const label = fc
    .tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 }))
    .map(([host, port]) => `${host}:${port}`);
  const members = fc.uniqueArray(label, { minLength: 1, maxLength: 30 });
  const keys = fc.array(fc.string({ unit: 'binary', maxLength: 40 }), { minLength: 1, maxLength: 50 });

  it('the owner is always a member, and ownersOf(k, 1) agrees', () => {
    fc.assert(
      fc.property(members, keys, (ls, ks) => {
        const ring = new Ring({ labels: ls });
        for (const k of ks) {
          const o = ring.owner(k);
          assert.ok(o !== undefined && ls.includes(o));
          assert.deepEqual(ring.ownersOf(k, 1), [o]);
        }
      }),
    );
  });

  it('owners do not depend on the order labels are given in', () => {
    fc.assert(
      fc.property(members, keys, fc.integer(), (ls, ks, seed) => {
        const shuffled = [...ls].sort(
          (a, b) => murmur3(utf8(a), undefined, seed) - murmur3(utf8(b), undefined, seed),
        );
        const r1 = new Ring({ labels: ls });
        const r2 = new Ring({ labels: shuffled });
        assert.equal(r1.checksum(), r2.checksum());
        for (const k of ks) assert.equal(r1.owner(k), r2.owner(k));
      }),
    );
  });

  it('when the owner leaves, the second in ownersOf takes over (replication order)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(label, { minLength: 2, maxLength: 30 }), keys, (ls, ks) => {
        const full = new Ring({ labels: ls });
        for (const k of ks) {
          const [first, second, ...rest] = full.ownersOf(k, ls.length);
          const without = new Ring({ labels: ls.filter((l) => l !== first) });
          assert.equal(without.owner(k), second);
          assert.deepEqual(without.ownersOf(k, ls.length), [second, ...rest]);
        }
      }),
    );
  });

  it('removing a member moves only its keys; adding one moves keys only to it', () => {
    fc.assert(
      fc.property(fc.uniqueArray(label, { minLength: 2, maxLength: 30 }), keys, fc.nat(), (ls, ks, pick) => {
        const removed = ls[pick % ls.length];
        const full = new Ring({ labels: ls });
        const less = new Ring({ labels: ls.filter((l) => l !== removed) });
        for (const k of ks) {
          const before = full.owner(k);
          const after = less.owner(k);
          // remove: a key moves only if its owner left; add (less → full): a key moves only to the newcomer
          if (before !== removed) assert.equal(after, before);
          else assert.notEqual(after, removed);
        }
      }),
    );
  });
});
