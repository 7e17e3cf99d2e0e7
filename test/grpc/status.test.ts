// Every status code of the contract, on the unary Get (through a standard proto-loader client) and on
// the peer stream (through GrpcPeer), plus deadlines reaching the getter, cancel semantics and sizes.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, type ServiceError, status } from '@grpc/grpc-js';
import { loadFailureName, NotFoundError, OwnerLoadError } from '../../src/errors.js';
import { Group, GroupRegistry } from '../../src/group.js';
import { createGrpcServer, GrpcPeer, type GrpcServer, PeerError } from '../../src/grpc/index.js';
import { CancelledError, DeadlineError, failureOf } from '../../src/grpc/status.js';
import { GroupCacheClient, insecure, unary } from '../support/grpc-std-client.js';
import { deferred, sleep, waitFor, within } from '../support/wait.js';

const MAX = 4096;

interface Slow {
  signal: AbortSignal;
  aborted: Promise<void>;
  release: () => void;
}

describe('status codes, deadlines, cancel, sizes', () => {
  const registry = new GroupRegistry();
  const calls = new Map<string, number>();
  const slow = new Map<string, Slow>();
  const slowStarted = new Map<string, ReturnType<typeof deferred<void>>>();
  let server: GrpcServer;
  let addr: string;
  let std: Client;
  let peer: GrpcPeer;
  let group: Group;
  /** Resolves once the node has seen `n` more gets than when this was called. */
  const joined = (n: number) => {
    const base = group.stats.gets;
    return () => waitFor(`${n} requests to reach the node`, () => group.stats.gets >= base + n, 5000);
  };

  const started = (key: string) => {
    let d = slowStarted.get(key);
    if (!d) slowStarted.set(key, (d = deferred()));
    return d.promise;
  };

  before(async () => {
    group = new Group({
      name: 'g',
      cacheBytes: 1 << 20,
      registry,
      maxKeyBytes: 32,
      getter: async (key, { signal }) => {
        calls.set(key, (calls.get(key) ?? 0) + 1);
        if (key === 'missing') throw new NotFoundError(`no row for ${key}`);
        if (key === 'fail') throw new Error('database down');
        if (key === 'big') return Buffer.alloc(MAX + 1, 1);
        if (key === 'edge') return Buffer.alloc(MAX, 2);
        if (key === 'ttl') return { value: 'expiring', ttlMs: 60_000 };
        if (key.startsWith('slow')) {
          const aborted = deferred();
          const released = deferred();
          signal.addEventListener('abort', () => aborted.resolve(), { once: true });
          slow.set(key, { signal, aborted: aborted.promise, release: released.resolve });
          started(key);
          slowStarted.get(key)!.resolve();
          await Promise.race([released.promise, aborted.promise]);
          if (signal.aborted) throw signal.reason;
          return `value:${key}`;
        }
        return `value:${key}`;
      },
    });
    server = createGrpcServer({ registry, maxMessageBytes: MAX });
    addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    std = new GroupCacheClient(addr, insecure);
    peer = new GrpcPeer(addr, { maxMessageBytes: MAX, timeoutMs: 10_000 });
  });

  after(async () => {
    std.close();
    peer.close();
    await server.close(0);
  });

  const get = (group: string, key: string, opts: { deadlineMs?: number; signal?: AbortSignal } = {}) =>
    unary<{ value?: Buffer; minute_qps?: number; ttl_ms?: number }>(std, 'Get', { group, key }, opts);
  const fetch = (group: string, key: string, signal = new AbortController().signal, p = peer) =>
    p.get(group, key, signal);

  async function unaryCode(group: string, key: string): Promise<ServiceError> {
    try {
      await get(group, key);
    } catch (err) {
      return err as ServiceError;
    }
    assert.fail(`Get ${group}/${key} succeeded; expected an error`);
  }

  async function streamErr(group: string, key: string, p = peer): Promise<Error> {
    try {
      await fetch(group, key, undefined, p);
    } catch (err) {
      return err as Error;
    }
    assert.fail(`Fetch ${group}/${key} succeeded; expected an error`);
  }

  test('OK: value, minute_qps and ttl on both paths', async () => {
    for (let i = 0; i < 5; i++) await get('g', 'plain');
    const r = await get('g', 'plain');
    assert.equal(r.value?.toString(), 'value:plain');
    assert.ok((r.minute_qps ?? 0) > 0, `minute_qps ${r.minute_qps} should be positive after 6 gets`);
    const s = await fetch('g', 'plain');
    assert.equal(Buffer.from(s.value).toString(), 'value:plain');
    assert.ok((s.minuteQps ?? 0) > 0);
    assert.equal(s.ttlMs, undefined);

    const t = await get('g', 'ttl');
    assert.ok(t.ttl_ms! > 50_000 && t.ttl_ms! <= 60_000, `ttl_ms ${t.ttl_ms}`);
    const st = await fetch('g', 'ttl');
    assert.ok(st.ttlMs! > 50_000 && st.ttlMs! <= 60_000, `ttlMs ${st.ttlMs}`);
    assert.equal(calls.get('plain'), 1);
  });

  test('unknown group → NOT_FOUND naming the group (a PeerError on the stream, not NotFoundError)', async () => {
    const u = await unaryCode('nope', 'k');
    assert.equal(u.code, status.NOT_FOUND);
    assert.match(u.details, /unknown group "nope"/);
    const s = await streamErr('nope', 'k');
    assert.ok(s instanceof PeerError, `${s}`);
    assert.equal((s as PeerError).code, status.NOT_FOUND);
    assert.match(s.message, /"nope"/);
  });

  test('NotFoundError → NOT_FOUND (NotFoundError on the stream)', async () => {
    const u = await unaryCode('g', 'missing');
    assert.equal(u.code, status.NOT_FOUND);
    assert.match(u.details, /no row for missing/);
    const s = await streamErr('g', 'missing');
    assert.ok(s instanceof NotFoundError, `${s}`);
    assert.match(s.message, /no row for missing/);
  });

  test('empty or over-limit key → INVALID_ARGUMENT', async () => {
    for (const key of ['', 'k'.repeat(33)]) {
      const u = await unaryCode('g', key);
      assert.equal(u.code, status.INVALID_ARGUMENT, `unary key of ${key.length}: ${u.details}`);
      const s = await streamErr('g', key);
      assert.equal((s as PeerError).code, status.INVALID_ARGUMENT, `stream key of ${key.length}: ${s}`);
    }
  });

  test('getter failure → UNAVAILABLE carrying the cause, marked as a failed load', async () => {
    const u = await unaryCode('g', 'fail');
    assert.equal(u.code, status.UNAVAILABLE);
    assert.equal(u.details, 'getter failed: database down');
    assert.deepEqual(u.metadata.get('gossipcache-load-error'), ['Error']);
    // The peer stream: the caller learns the node's load failed (and does not load it itself).
    const s = await streamErr('g', 'fail');
    assert.ok(s instanceof OwnerLoadError, `${s}`);
    assert.equal(s.ownerError, 'Error');
    assert.match(s.message, /failed to load it: Error: database down$/);
  });

  test('values up to maxMessageBytes pass; bigger → RESOURCE_EXHAUSTED saying what to do', async () => {
    assert.equal((await get('g', 'edge')).value?.length, MAX);
    assert.equal((await fetch('g', 'edge')).value.byteLength, MAX);
    const u = await unaryCode('g', 'big');
    assert.equal(u.code, status.RESOURCE_EXHAUSTED);
    assert.match(
      u.details,
      new RegExp(`${MAX + 1} bytes, over the ${MAX}-byte message limit.*maxMessageBytes`),
    );
    const s = await streamErr('g', 'big');
    assert.equal((s as PeerError).code, status.RESOURCE_EXHAUSTED);
  });

  test("a client's lower limit fails only that value, not its stream", async () => {
    const small = new GrpcPeer(addr, { maxMessageBytes: 1000 });
    try {
      const s = await streamErr('g', 'edge', small);
      assert.equal((s as PeerError).code, status.RESOURCE_EXHAUSTED, `${s}`);
      assert.match(s.message, /over the 1000-byte/);
      const ok = await fetch('g', 'plain', undefined, small);
      assert.equal(Buffer.from(ok.value).toString(), 'value:plain');
    } finally {
      small.close();
    }
  });

  test('unary deadline → DEADLINE_EXCEEDED and the getter signal aborts', async () => {
    const u = get('g', 'slow-u1', { deadlineMs: 1500 }).then(
      () => assert.fail('expected DEADLINE_EXCEEDED'),
      (e: { code: number }) => e,
    );
    await within(started('slow-u1'), 5000, 'getter start');
    assert.equal((await u).code, status.DEADLINE_EXCEEDED);
    await within(slow.get('slow-u1')!.aborted, 5000, "the getter's signal to abort");
  });

  test('stream deadline → DEADLINE_EXCEEDED and the getter signal aborts', async () => {
    const short = new GrpcPeer(addr, { timeoutMs: 1500 });
    try {
      const p = fetch('g', 'slow-s1', undefined, short).then(
        () => assert.fail('expected DEADLINE_EXCEEDED'),
        (e: Error) => e,
      );
      await within(started('slow-s1'), 5000, 'getter start');
      const err = await p;
      assert.ok(err instanceof PeerError);
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
      await within(slow.get('slow-s1')!.aborted, 5000, "the getter's signal to abort");
    } finally {
      short.close();
    }
  });

  test('a cancelled stream request does not cancel the load for other waiters', async () => {
    const other = new GrpcPeer(addr);
    try {
      const ac = new AbortController();
      const both = joined(2);
      const first = fetch('g', 'slow-c1', ac.signal);
      const second = fetch('g', 'slow-c1', undefined, other);
      await both();
      await within(started('slow-c1'), 5000, 'getter start');
      ac.abort(new Error('caller gave up'));
      await assert.rejects(first, /caller gave up/);
      // Give the cancel time to reach the node before the load finishes.
      await sleep(100);
      assert.equal(slow.get('slow-c1')!.signal.aborted, false);
      slow.get('slow-c1')!.release();
      assert.equal(Buffer.from((await second).value).toString(), 'value:slow-c1');
      assert.equal(calls.get('slow-c1'), 1);
    } finally {
      other.close();
    }
  });

  test("the only waiter's cancel reaches the getter (stream and unary)", async () => {
    const ac = new AbortController();
    const p = fetch('g', 'slow-c2', ac.signal);
    await within(started('slow-c2'), 5000, 'getter start');
    ac.abort(new Error('gone'));
    await assert.rejects(p, /gone/);
    await within(slow.get('slow-c2')!.aborted, 5000, 'stream cancel to abort the getter');

    const uc = new AbortController();
    const u = get('g', 'slow-c3', { signal: uc.signal });
    await within(started('slow-c3'), 5000, 'getter start');
    uc.abort();
    await assert.rejects(u, (e: { code: number }) => e.code === status.CANCELLED);
    await within(slow.get('slow-c3')!.aborted, 5000, 'unary cancel to abort the getter');
  });

  test('a cancelled unary caller does not cancel the load for a stream waiter', async () => {
    const uc = new AbortController();
    const both = joined(2);
    const u = get('g', 'slow-c4', { signal: uc.signal });
    const s = fetch('g', 'slow-c4');
    await both();
    await within(started('slow-c4'), 5000, 'getter start');
    uc.abort();
    await assert.rejects(u);
    await sleep(100);
    slow.get('slow-c4')!.release();
    assert.equal(Buffer.from((await s).value).toString(), 'value:slow-c4');
    assert.equal(calls.get('slow-c4'), 1);
  });

  test("Set with a negative ttl_ms → INVALID_ARGUMENT (the caller's mistake), nothing stored", async () => {
    const raw = new Client(addr, insecure);
    try {
      // SetRequest { group "g", key "neg", value "v", ttl_ms -5 }, as protoc's clients encode it.
      const body = Buffer.concat([
        Buffer.from([0x0a, 1, 0x67, 0x12, 3, 0x6e, 0x65, 0x67, 0x1a, 1, 0x76]),
        Buffer.from([0x20, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      ]);
      const err = await new Promise<{ code: number; details: string } | null>((resolve) => {
        raw.makeUnaryRequest(
          '/gossipcachepb.GossipCache/Set',
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          (e) => resolve(e as unknown as { code: number; details: string } | null),
        );
      });
      assert.equal(err?.code, status.INVALID_ARGUMENT);
      assert.match(err?.details ?? '', /ttl_ms is negative/);
    } finally {
      raw.close();
    }
    assert.equal((await get('g', 'neg')).value?.toString(), 'value:neg');
  });

  test('garbage bytes never crash the node', async () => {
    const raw = new Client(addr, insecure);
    try {
      const bad = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
      const err = await new Promise<{ code: number }>((resolve) => {
        raw.makeUnaryRequest(
          '/groupcachepb.GroupCache/Get',
          (b: Buffer) => b,
          (b: Buffer) => b,
          bad,
          (e) => resolve(e as unknown as { code: number }),
        );
      });
      assert.notEqual(err?.code ?? status.OK, status.OK);
      const stream = raw.makeBidiStreamRequest(
        '/gossipcachepb.GossipCache/Fetch',
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      const ended = new Promise<{ code: number }>((r) => stream.on('status', r));
      stream.on('error', () => {});
      stream.write(bad);
      assert.notEqual((await within(ended, 5000, 'bad stream to end')).code, status.OK);
    } finally {
      raw.close();
    }
    assert.equal((await get('g', 'plain')).value?.toString(), 'value:plain');
  });
});

test('failureOf marks as a failed load (loadError) exactly the errors loadFailureName names', () => {
  const named = (name: string) => Object.assign(new Error('x'), { name });
  const errors: unknown[] = [
    new NotFoundError('none'),
    named('InvalidKeyError'),
    named('AbortError'),
    new CancelledError('gone'),
    new DeadlineError('late'),
    named('PeerTimeoutError'),
    named('GetterTimeoutError'),
    named('TimeoutError'),
    new OwnerLoadError('peer', 'OriginError', 'boom'),
    named('OriginError'),
    new Error('plain'),
    'a string thrown',
    named('bad name!'),
  ];
  for (const err of errors) {
    assert.equal(failureOf(err).loadError, loadFailureName(err), `for ${String((err as Error).name ?? err)}`);
  }
});
