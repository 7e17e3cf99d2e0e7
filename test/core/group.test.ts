import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DuplicateGroupError,
  defaultRegistry,
  Group,
  GroupRegistry,
  InvalidKeyError,
  NotFoundError,
  noPeers,
  type Peer,
  type PeerPicker,
} from '../../src/index.js';
import { fakeClock } from '../support/in-process-cluster.js';
import { testGroup } from '../support/registry.js';

function counting(getter: (key: string) => Promise<unknown> | unknown = (k) => `v:${k}`) {
  const calls: string[] = [];
  return {
    calls,
    getter: async (key: string) => {
      calls.push(key);
      return (await getter(key)) as string;
    },
  };
}

describe('Group basics', () => {
  it('loads once, then serves from the cache; stats count like groupcache', async () => {
    const { calls, getter } = counting();
    const g = testGroup({ name: 'g', cacheBytes: 1 << 20, getter });
    assert.equal(await g.getString('a'), 'v:a');
    assert.equal((await g.get('a')).toString(), 'v:a');
    assert.deepEqual(calls, ['a']);
    assert.equal(g.server.getCached('a')?.toString(), 'v:a');
    assert.equal(g.server.getCached('b'), undefined);
    const s = g.stats;
    assert.equal(s.gets, 4);
    assert.equal(s.cacheHits, 2);
    assert.equal(s.loads, 1);
    assert.equal(s.loadsDeduped, 1);
    assert.equal(s.localLoads, 1);
    assert.equal(s.localLoadErrs, 0);
    assert.equal(s.peerLoads, 0);
    // 4 lookups by gets + 1 re-check inside the flight; bytes = key 'a' + value 'v:a'
    assert.deepEqual(g.cacheStats('main'), { bytes: 1 + 3, items: 1, gets: 5, hits: 2, evictions: 0 });
    assert.equal(g.cacheStats('hot').items, 0);
    assert.throws(() => g.cacheStats('x' as 'main'), /'main' or 'hot'/);
  });

  it('accepts Uint8Array, string and { value, ttlMs } from the getter, and rejects anything else', async () => {
    const g = testGroup({
      name: 'g',
      cacheBytes: 1 << 20,
      getter: async (key) => {
        if (key === 'bytes') return new Uint8Array([1, 2, 3]);
        if (key === 'obj') return { value: 'o', ttlMs: 1000 };
        if (key === 'objbytes') return { value: new Uint8Array([9]) };
        return 42 as unknown as string;
      },
    });
    assert.deepEqual([...(await g.get('bytes'))], [1, 2, 3]);
    assert.equal(await g.getString('obj'), 'o');
    assert.deepEqual([...(await g.get('objbytes'))], [9]);
    await assert.rejects(
      g.get('bad'),
      (e: Error) => e instanceof TypeError && /getter returned number 42/.test(e.message),
    );
    assert.equal(g.stats.localLoadErrs, 1);
    // not cached: asked again
    await assert.rejects(g.get('bad'), TypeError);
    assert.equal(g.stats.localLoads, 5);
  });

  it('a getter that throws synchronously or is not async is handled like an async one', async () => {
    const g = testGroup({
      name: 'sync',
      cacheBytes: 1 << 20,
      getter: ((key: string) => {
        if (key === 'throw') throw new Error('sync failure');
        return `plain ${key}`;
      }) as unknown as (key: string) => Promise<string>,
    });
    await assert.rejects(g.get('throw'), /sync failure/);
    assert.equal(await g.getString('x'), 'plain x');
    assert.equal(g.stats.localLoadErrs, 1);
  });

  it('copies what the getter returns: reusing its buffer never changes the cache', async () => {
    const buf = new Uint8Array([1, 2, 3]);
    const g = testGroup({ name: 'g', cacheBytes: 1 << 20, getter: async () => buf });
    await g.get('k');
    buf[0] = 99;
    assert.deepEqual([...(await g.get('k'))], [1, 2, 3]);
  });

  it('returns a copy from get(): mutating it never changes the cache', async () => {
    const g = testGroup({ name: 'g', cacheBytes: 1 << 20, getter: async () => 'abc' });
    const first = await g.get('k'); // from the flight
    first.fill(0);
    const second = await g.get('k'); // from the cache
    assert.equal(second.toString(), 'abc');
    second.fill(0);
    assert.equal((await g.get('k')).toString(), 'abc');
    // server.getCached/getEntry share the cached buffer (documented read-only)
    assert.equal(g.server.getCached('k'), (await g.getEntry('k')).value);
  });

  it('never caches errors, NotFound included', async () => {
    let n = 0;
    const g = testGroup({
      name: 'g',
      cacheBytes: 1 << 20,
      getter: async (key) => {
        n++;
        if (n <= 2) throw key === 'nf' ? new NotFoundError(key) : new Error('boom');
        return 'ok';
      },
    });
    await assert.rejects(g.get('nf'), NotFoundError);
    await assert.rejects(g.get('x'), /boom/);
    assert.equal(await g.getString('x'), 'ok');
    assert.equal(g.stats.localLoadErrs, 2);
    assert.equal(g.cacheStats('main').items, 1);
  });

  it('does not cache a value larger than the budget, but returns it', async () => {
    const { calls, getter } = counting(() => 'x'.repeat(200));
    const g = testGroup({ name: 'g', cacheBytes: 100, getter });
    assert.equal((await g.get('big')).length, 200);
    assert.equal((await g.get('big')).length, 200);
    assert.equal(calls.length, 2);
    assert.equal(g.cacheStats('main').bytes, 0);
  });

  it('cacheBytes 0 caches nothing', async () => {
    const registry = new GroupRegistry();
    const { calls, getter } = counting();
    const g = new Group({ name: 'g', cacheBytes: 0, getter, registry });
    await g.get('a');
    await g.get('a');
    assert.equal(calls.length, 2);
  });
});

describe('keys', () => {
  const registry = new GroupRegistry();
  const g = new Group({
    name: 'keys',
    cacheBytes: 1 << 20,
    registry,
    getter: async (k) => `len:${k.length}`,
  });

  it('rejects an empty key with InvalidKeyError, on every entry point', async () => {
    await assert.rejects(g.get(''), (e: Error) => e instanceof InvalidKeyError && /empty/.test(e.message));
    await assert.rejects(g.getString(''), InvalidKeyError);
    await assert.rejects(g.getEntry(''), InvalidKeyError);
    assert.throws(() => g.server.getCached(''), InvalidKeyError);
    assert.throws(() => g.server.removeLocal(''), InvalidKeyError);
    await assert.rejects(g.remove(''), InvalidKeyError);
    await assert.rejects(g.get(42 as unknown as string), /must be a string, got number/);
  });

  it('accepts keys up to 64 KiB of UTF-8 and rejects one byte more, counting bytes not characters', async () => {
    assert.equal(await g.getString('a'.repeat(65536)), 'len:65536');
    await assert.rejects(
      g.get('a'.repeat(65537)),
      (e: Error) =>
        e instanceof InvalidKeyError && /65537 bytes of UTF-8, over the limit of 65536/.test(e.message),
    );
    // 'é' is 2 bytes: 32768 of them fit, 32769 do not
    assert.equal(await g.getString('é'.repeat(32768)), 'len:32768');
    await assert.rejects(g.get('é'.repeat(32769)), InvalidKeyError);
    // any string: emoji, NUL, newlines
    assert.equal(await g.getString('\u0000\n😀'), 'len:4');
  });

  it('honours maxKeyBytes', async () => {
    const r = new GroupRegistry();
    const small = new Group({
      name: 's',
      cacheBytes: 1000,
      registry: r,
      maxKeyBytes: 4,
      getter: async () => 'v',
    });
    assert.equal(await small.getString('abcd'), 'v');
    await assert.rejects(small.get('abcde'), /5 bytes of UTF-8, over the limit of 4/);
    await assert.rejects(small.get('ééé'), InvalidKeyError);
  });
});

describe('options and registry', () => {
  it('rejects bad options with messages that say what to do', () => {
    const registry = new GroupRegistry();
    const getter = async () => 'v';
    assert.throws(
      () => new Group({ name: '', cacheBytes: 1, getter, registry }),
      /name must be a non-empty string/,
    );
    assert.throws(
      () => new Group({ name: 'a', cacheBytes: -1, getter, registry }),
      /cacheBytes must be an integer >= 0/,
    );
    assert.throws(() => new Group({ name: 'a', cacheBytes: 1.5, getter, registry }), /cacheBytes/);
    assert.throws(
      () => new Group({ name: 'a', cacheBytes: 1, getter: 'x' as never, registry }),
      /getter must be a function/,
    );
    assert.throws(
      () => new Group({ name: 'a', cacheBytes: 1, getter, registry, getterTimeoutMs: -1 }),
      /getterTimeoutMs must be/,
    );
    assert.throws(
      () => new Group({ name: 'a', cacheBytes: 1, getter, registry, maxKeyBytes: 0 }),
      /maxKeyBytes/,
    );
    assert.equal(registry.list().length, 0);
  });

  it('a duplicate name in one registry is a clear error; other registries are independent', () => {
    const r1 = new GroupRegistry();
    const r2 = new GroupRegistry();
    const getter = async () => 'v';
    const a = new Group({ name: 'dup', cacheBytes: 1, getter, registry: r1 });
    assert.throws(
      () => new Group({ name: 'dup', cacheBytes: 1, getter, registry: r1 }),
      (e: Error) => e instanceof DuplicateGroupError && /"dup" already exists/.test(e.message),
    );
    const b = new Group({ name: 'dup', cacheBytes: 1, getter, registry: r2 });
    assert.equal(r1.get('dup'), a);
    assert.equal(r2.get('dup'), b);
    assert.deepEqual(r1.list(), [a]);
    a.close();
    assert.equal(r1.get('dup'), undefined);
    const c = new Group({ name: 'dup', cacheBytes: 1, getter, registry: r1 });
    assert.equal(r1.get('dup'), c);
  });

  it('close(): a load in progress answers its caller but caches nothing', async () => {
    let release!: (v: string) => void;
    const g = testGroup({
      name: 'closing',
      cacheBytes: 1000,
      getter: () => new Promise<string>((r) => (release = r)),
    });
    const p = g.getString('k');
    await new Promise((r) => setImmediate(r));
    g.close();
    release('v');
    assert.equal(await p, 'v');
    assert.equal(g.cacheStats('main').items, 0);
  });

  it('uses the process-wide defaultRegistry when none is given', () => {
    const g = new Group({ name: 'default-registry-test', cacheBytes: 1, getter: async () => 'v' });
    try {
      assert.equal(defaultRegistry.get('default-registry-test'), g);
      assert.equal(g.registry, defaultRegistry);
    } finally {
      g.close();
    }
    assert.equal(defaultRegistry.get('default-registry-test'), undefined);
  });

  it("groups without their own picker use the registry's, set before or after they were created", async () => {
    const registry = new GroupRegistry();
    const asked: string[] = [];
    const peer: Peer = {
      id: 'p',
      get: async (_g, key) => {
        asked.push(key);
        return { value: Buffer.from('remote') };
      },
    };
    const picker: PeerPicker = { pickPeer: () => peer };
    const g = new Group({ name: 'g', cacheBytes: 1 << 20, registry, getter: async () => 'local' });
    assert.equal(g.peerPicker, noPeers);
    assert.equal(await g.getString('a'), 'local');
    registry.setPeerPicker(picker);
    assert.equal(await g.getString('b'), 'remote');
    assert.deepEqual(asked, ['b']);
    // a group's own picker wins over the registry's
    g.setPeerPicker(noPeers);
    assert.equal(await g.getString('c'), 'local');
    assert.throws(() => registry.setPeerPicker({} as PeerPicker), /pickPeer/);
    assert.throws(() => g.setPeerPicker(null as unknown as PeerPicker), /pickPeer/);
  });

  it('many groups in one process keep separate budgets', async () => {
    const registry = new GroupRegistry();
    const a = new Group({ name: 'a', cacheBytes: 50, registry, getter: async () => 'x'.repeat(20) });
    const b = new Group({ name: 'b', cacheBytes: 1000, registry, getter: async () => 'y'.repeat(20) });
    for (let i = 0; i < 10; i++) {
      await a.get(`k${i}`);
      await b.get(`k${i}`);
    }
    assert.ok(a.cacheStats('main').bytes <= 50);
    assert.equal(a.cacheStats('main').items, 2);
    assert.equal(b.cacheStats('main').items, 10);
  });
});

describe('expiry (fake clock)', () => {
  it('an expired entry is a miss; ttl from the getter counts on the group clock', async () => {
    const clock = fakeClock();
    let n = 0;
    const g = testGroup({
      name: 'ttl',
      cacheBytes: 1 << 20,
      now: clock.now,
      getter: async () => ({ value: `v${++n}`, ttlMs: 1000 }),
    });
    assert.equal(await g.getString('k'), 'v1');
    clock.advance(999);
    assert.equal(await g.getString('k'), 'v1');
    const e = await g.getEntry('k');
    assert.equal(e.ttlMs, 1);
    clock.advance(1);
    assert.equal(g.server.getCached('k'), undefined);
    assert.equal(await g.getString('k'), 'v2');
    assert.equal(g.cacheStats('main').items, 1);
  });

  it('ttlMs <= 0 is returned but not cached; no ttl never expires', async () => {
    const registry = new GroupRegistry();
    const clock = fakeClock();
    let n = 0;
    const g = new Group({
      name: 'ttl0',
      cacheBytes: 1 << 20,
      registry,
      now: clock.now,
      getter: async (key) => (key === 'zero' ? { value: `z${++n}`, ttlMs: 0 } : 'forever'),
    });
    assert.equal(await g.getString('zero'), 'z1');
    assert.equal(await g.getString('zero'), 'z2');
    await g.get('f');
    clock.advance(365 * 24 * 3600 * 1000);
    assert.equal(g.server.getCached('f')?.toString(), 'forever');
    assert.equal((await g.getEntry('f')).ttlMs, undefined);
    await assert.rejects(
      new Group({
        name: 'badttl',
        cacheBytes: 100,
        registry,
        getter: async () => ({ value: 'v', ttlMs: 'soon' as unknown as number }),
      }).get('k'),
      /ttlMs string soon/,
    );
  });
});
