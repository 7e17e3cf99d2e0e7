import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  allocatorFacts,
  fixedMmapThreshold,
  glibcMapped,
  heapHoleReserveBytes,
  largeValuesInHeap,
  mmapThresholdWarning,
} from '../../src/allocator.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { collect } from '../support/gc.js';

const MiB = 1 << 20;

/** Runs `lines` as an ES module in a fresh node (this repo's sources through tsx) with only `env`; its stdout. */
function inFreshProcess(lines: string[], env: Record<string, string>): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', lines.join('\n')], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe("glibc's mmap threshold", () => {
  it('floats on glibc unless the variable or the tunable fixes it; the warning says so', () => {
    assert.equal(largeValuesInHeap({ env: {}, glibc: true }), true);
    assert.match(mmapThresholdWarning({ env: {}, glibc: true }) ?? '', /MALLOC_MMAP_THRESHOLD_=131072/);
    const other = { env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, glibc: true };
    assert.equal(largeValuesInHeap(other), true);
    assert.match(mmapThresholdWarning(other) ?? '', /not fixed: each group keeps 32 MiB/);
  });

  it('fixed at 128 KiB or less (the variable or the tunable), or not glibc: large values stay out of the heap', () => {
    for (const facts of [
      { env: { MALLOC_MMAP_THRESHOLD_: '131072' }, glibc: true },
      { env: { MALLOC_MMAP_THRESHOLD_: '0' }, glibc: true },
      { env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' }, glibc: true },
      {
        env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=0x20000' },
        glibc: true,
      },
      { env: {}, glibc: false },
    ]) {
      assert.equal(largeValuesInHeap(facts), false, JSON.stringify(facts));
      assert.equal(mmapThresholdWarning(facts), undefined);
    }
  });

  it('fixed above 128 KiB, large values below it come from the heap too; a value glibc ignores leaves it floating', () => {
    const high = { env: { MALLOC_MMAP_THRESHOLD_: '4194304' }, glibc: true };
    assert.equal(fixedMmapThreshold(high.env), 4194304);
    assert.equal(largeValuesInHeap(high), true);
    assert.match(mmapThresholdWarning(high) ?? '', /fixed at 4194304 bytes, above 131072: each group keeps/);
    // The tunable wins over the variable; over 32 MiB, or not a number, glibc keeps its floating threshold.
    assert.equal(
      fixedMmapThreshold({
        MALLOC_MMAP_THRESHOLD_: '4194304',
        GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072',
      }),
      131072,
    );
    for (const v of ['67108864', 'lots', '', '-1', '1.5']) {
      assert.equal(fixedMmapThreshold({ MALLOC_MMAP_THRESHOLD_: v }), undefined, v);
      assert.equal(largeValuesInHeap({ env: { MALLOC_MMAP_THRESHOLD_: v }, glibc: true }), true, v);
    }
  });

  it('the reserve: 32 MiB + 1/64 of the budget, at most half of it; none when the threshold is fixed', () => {
    assert.equal(heapHoleReserveBytes(256 * MiB, false), 0);
    assert.equal(heapHoleReserveBytes(0, true), 0);
    assert.equal(heapHoleReserveBytes(16 * MiB, true), 8 * MiB);
    assert.equal(heapHoleReserveBytes(64 * MiB, true), 32 * MiB);
    assert.equal(heapHoleReserveBytes(256 * MiB, true), 36 * MiB);
    assert.equal(heapHoleReserveBytes(4096 * MiB, true), 96 * MiB);
  });

  it('finds glibc in a maps listing, also after an upgrade replaced it on disk; not musl', () => {
    const line = (path: string) => `7f1c2a000000-7f1c2a026000 r--p 00000000 08:01 1234 ${path}\n`;
    assert.equal(glibcMapped(line('/usr/lib/x86_64-linux-gnu/libc.so.6')), true);
    assert.equal(glibcMapped(line('/lib/x86_64-linux-gnu/libc-2.31.so')), true);
    assert.equal(glibcMapped(line('/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)')), true);
    assert.equal(glibcMapped(line('/lib/ld-musl-x86_64.so.1')), false);
    assert.equal(glibcMapped(line('/usr/lib/libcrypto.so.3') + line('/usr/lib/libc.so.6.bak')), false);
  });

  it('reads the environment the process started with, not process.env as it is now', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, () => {
    // In a child: what glibc read at start is what counts; assigning process.env later changes nothing.
    const script = [
      "process.env.MALLOC_MMAP_THRESHOLD_ = '131072';",
      "const { allocatorFacts } = await import('./src/allocator.ts');",
      'const f = allocatorFacts();',
      'console.log(JSON.stringify({ t: f.env.MALLOC_MMAP_THRESHOLD_ ?? null, m: f.env.GC_MARK ?? null }));',
    ];
    const run = (env: Record<string, string>) =>
      JSON.parse(inFreshProcess(script, { GC_MARK: 'started', ...env })) as {
        t: string | null;
        m: string | null;
      };
    assert.deepEqual(run({}), { t: null, m: 'started' });
    assert.deepEqual(run({ MALLOC_MMAP_THRESHOLD_: '65536' }), { t: '65536', m: 'started' });
    // This process: on Linux with glibc (Debian, the CI machine) glibc is found.
    if (/\/libc\.so\.6$/m.test(spawnSync('cat', ['/proc/self/maps'], { encoding: 'utf8' }).stdout ?? '')) {
      assert.equal(allocatorFacts().glibc, true);
    }
  });
});

describe('the heap-hole reserve in a group', () => {
  const group = (heapHoleReserveBytes: number | undefined, size: number) =>
    new Group({
      name: 'reserve',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) => Buffer.alloc(size, key),
      heapHoleReserveBytes,
    });

  it('among small items, the reserve comes into force over the puts after the first large value, a little each', async () => {
    const g = new Group({
      name: 'mixed',
      cacheBytes: 4 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) => Buffer.alloc(key.startsWith('big') ? 200 * 1024 : 200, key),
      heapHoleReserveBytes: 2 * MiB,
    });
    // Items that left for room: evicted by the LRU rule, or reclaimed with a page given back.
    const gone = () => g.cacheStats('main').evictions + g.memoryStats().itemsReclaimed;
    let n = 0;
    let most = 0;
    const get = async (key: string) => {
      const before = gone();
      await g.get(key);
      most = Math.max(most, gone() - before);
    };
    const small = async (count: number) => {
      for (let i = 0; i < count; i++) await get(`s${n++}`);
    };
    await small(20_000); // past the budget: small items fill it, reserve included
    const full = g.cacheStats('main').items;
    assert.ok(full > 9_000, `${full} small items`);
    assert.equal(g.memoryStats().heapHoleReserveInForceBytes, 0, 'no large value yet: none of it in force');
    most = 0;
    await get('big0');
    assert.ok(g.server.getCached('big0'), 'the large value is cached');
    // The whole reserve at once would be ~3.8k of these items in this one get.
    assert.ok(most < 1_500, `the first large value made room for itself only: ${most} items went`);
    await small(40); // 256 KiB more of the reserve in force a put: all of it after 8
    assert.equal(g.memoryStats().heapHoleReserveInForceBytes, 2 * MiB);
    for (let round = 1; round <= 3; round++) {
      await small(3_000); // small items keep coming, but no longer into the reserve
      await get(`big${round}`);
      assert.ok(g.server.getCached(`big${round}`));
    }
    assert.ok(most < 1_500, `no get made more than a step's room: at most ${most} items went in one`);
    const st = g.memoryStats();
    assert.ok(st.heldBytes <= st.limitBytes - 2 * MiB, 'everything held stays under the reserve');
    for (let round = 0; round <= 3; round++) g.server.removeLocal(`big${round}`);
    assert.equal(
      g.memoryStats().heapHoleReserveInForceBytes,
      0,
      'no large value left: small items may use it',
    );
    g.close();
  });

  it('small items of many sizes beside large values: clearing the reserve does not turn into a page for every put', async () => {
    // Small items of ~25 size classes need a partly used page each, more pages than the limit less the
    // reserve leaves them: a store that kept trimming pages to that limit gave one back on every put and
    // took a new one on the next.
    let seed = 42;
    const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const g = new Group({
      name: 'classes',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) =>
        Buffer.alloc(key.startsWith('big') ? 200 * 1024 : 8 + Math.floor(rand() * 1017), 1),
      heapHoleReserveBytes: 8 * MiB,
    });
    let n = 0;
    const small = async (count: number) => {
      for (let i = 0; i < count; i++) {
        // Requests arrive over turns of the event loop, as in a server: limbo counts what was freed then.
        if (i % 50 === 0) await new Promise(setImmediate);
        await g.get(`s${n++}`);
      }
    };
    await small(40_000);
    const before = g.memoryStats().pagesReassigned;
    for (let round = 0; round < 10; round++) {
      await g.get(`big${round}`);
      await small(2_000);
    }
    const reassigned = g.memoryStats().pagesReassigned - before;
    assert.ok(reassigned < 1_000, `${reassigned} pages reassigned in 20k small puts`);
    g.close();
  });

  it('values of 128 KiB or more leave it free; the oldest go to keep it so', async () => {
    const g = group(8 * MiB, 3 * MiB);
    assert.equal(g.memoryStats().heapHoleReserveBytes, 8 * MiB);
    for (let i = 0; i < 8; i++) {
      await g.get(`k${i}`);
      await collect();
      assert.ok(g.server.getCached(`k${i}`), `k${i}, just loaded, is cached`);
      const st = g.memoryStats();
      assert.ok(st.ownBytes <= 8 * MiB, `own-buffer values ${st.ownBytes} within 16 - 8 MiB`);
    }
    assert.equal(g.cacheStats('main').items, 2, 'two 3 MiB values in 8 MiB');
    assert.ok(g.server.getCached('k7') && g.server.getCached('k6') && !g.server.getCached('k5'));
    // Without the reserve the same budget holds 4–5 (cache.test.ts, "large values under a full budget").
    g.close();
  });

  it('a value larger than the budget less the reserve is returned, not cached', async () => {
    const g = group(8 * MiB, 10 * MiB);
    assert.equal((await g.get('big')).length, 10 * MiB);
    assert.equal(g.server.getCached('big'), undefined);
    g.close();
    const all = group(0, 10 * MiB);
    await all.get('big');
    assert.equal(all.server.getCached('big')?.length, 10 * MiB, 'cached without the reserve');
    all.close();
  });

  it('a value that cannot fit beside its key even in an empty store evicts nothing', async () => {
    // 16 + 1 (uncharged) - 8 MiB = 9 MiB for a large value, less the 256 KiB page its key is pinned in.
    const g = new Group({
      name: 'reserve',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async (key) => Buffer.alloc(key === 'big' ? 9 * MiB - 64 * 1024 : 3 * MiB, 1),
      heapHoleReserveBytes: 8 * MiB,
    });
    await g.get('a');
    await g.get('b');
    assert.equal((await g.get('big')).length, 9 * MiB - 64 * 1024);
    assert.equal(g.server.getCached('big'), undefined);
    assert.equal(g.cacheStats('main').evictions, 0, 'nothing evicted for a value that was never placed');
    assert.ok(g.server.getCached('a') && g.server.getCached('b'));
    g.close();
  });

  it('set refuses a value the reserve leaves no room for, as one over cacheBytes', async () => {
    let loads = 0;
    const g = new Group({
      name: 'reserve',
      cacheBytes: 16 * MiB,
      registry: new GroupRegistry(),
      getter: async () => {
        loads++;
        return 'from the getter';
      },
      heapHoleReserveBytes: 8 * MiB,
    });
    // Resolving would promise that gets see it; the store could never hold it.
    await assert.rejects(g.set('k', Buffer.alloc(12 * MiB, 1)), RangeError);
    await g.set('fits', Buffer.alloc(8 * MiB - 16, 1));
    assert.equal((await g.get('fits')).length, 8 * MiB - 16);
    assert.equal(loads, 0);
    g.close();
  });

  it('values under 128 KiB may use all of the budget', async () => {
    const g = group(8 * MiB, 100 * 1024);
    for (let i = 0; i < 140; i++) await g.get(`k${i}`);
    const st = g.memoryStats();
    assert.ok(st.ownBytes > 12 * MiB, `${st.ownBytes} bytes of 100 KiB values held`);
    g.close();
  });

  it('a negative or fractional reserve is refused', () => {
    for (const bad of [-1, 0.5, Number.NaN]) assert.throws(() => group(bad, 1), RangeError);
  });

  it('by default it follows this process: none with the threshold fixed, 32 MiB + 1/64 where it floats', {
    skip: process.platform !== 'linux' && 'reads /proc',
  }, () => {
    const script = [
      "const { Group, GroupRegistry } = await import('./src/group.ts');",
      "const g = new Group({ name: 'd', cacheBytes: 256 << 20, registry: new GroupRegistry(), getter: async () => 'v' });",
      'console.log(g.memoryStats().heapHoleReserveBytes);',
      'g.close();',
    ];
    const run = (env: Record<string, string>) => Number(inFreshProcess(script, env).trim());
    assert.equal(run({ MALLOC_MMAP_THRESHOLD_: '131072' }), 0);
    assert.equal(run({ MALLOC_MMAP_THRESHOLD_: '1048576' }), allocatorFacts().glibc ? 36 * MiB : 0);
    assert.equal(run({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072' }), 0);
    assert.equal(run({}), allocatorFacts().glibc ? 36 * MiB : 0);
  });
});
