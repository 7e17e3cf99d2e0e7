// Server lifecycle and the standard services: grpc.health.v1 follows setServing/close, reflection
// lists both services, a graceful close finishes what is in flight, bad options fail clearly.

import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, test } from 'node:test';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { OwnerLoadError } from '../../src/errors.js';
import { Group, GroupRegistry, type ServedGroup, type ServedRegistry } from '../../src/group.js';
import { createGrpcServer, GrpcPeer, PeerError } from '../../src/grpc/index.js';
import type { GroupServer } from '../../src/peers.js';
import {
  GossipCacheClient,
  HealthClient,
  insecure,
  ReflectionClient,
  unary,
} from '../support/grpc-std-client.js';
import { sleep } from '../support/wait.js';

function node(getter: (key: string, ctx: { signal: AbortSignal }) => Promise<string>) {
  const registry = new GroupRegistry();
  new Group({ name: 'g', cacheBytes: 1 << 20, registry, getter });
  return { registry, server: createGrpcServer({ registry }) };
}

describe('server', () => {
  test('health reports SERVING after listen and follows setServing', async () => {
    const { server } = node(async (k) => k);
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const health = new HealthClient(addr, insecure);
    const check = async (service: string) =>
      (await unary<{ status: string }>(health, 'Check', { service })).status;
    try {
      for (const s of ['', 'groupcachepb.GroupCache', 'gossipcachepb.GossipCache']) {
        assert.equal(await check(s), 'SERVING', `service "${s}"`);
      }
      server.setServing(false);
      assert.equal(await check(''), 'NOT_SERVING');
      server.setServing(true);
      assert.equal(await check(''), 'SERVING');
      await assert.rejects(check('no.such.Service'), (e: { code: number }) => e.code === 5);
    } finally {
      health.close();
      await server.close(0);
    }
  });

  test('a unary call ends with its caller signal; the signal keeps one listener across calls', async () => {
    let aborted: unknown;
    const { server } = node((k, { signal }) =>
      k === 'hang'
        ? new Promise<string>((_, reject) =>
            signal.addEventListener('abort', () => {
              aborted = signal.reason;
              reject(signal.reason);
            }),
          )
        : Promise.resolve(`v:${k}`),
    );
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const peer = new GrpcPeer(addr);
    try {
      const ac = new AbortController();
      for (const k of ['a', 'b', 'c']) {
        assert.equal(Buffer.from((await peer.getUnary('g', k, ac.signal)).value).toString(), `v:${k}`);
      }
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
      const p = peer.getUnary('g', 'hang', ac.signal);
      await sleep(100);
      ac.abort(new Error('caller left'));
      await assert.rejects(p, /caller left/);
      const end = Date.now() + 5000;
      while (aborted === undefined && Date.now() < end) await sleep(10);
      assert.ok(aborted !== undefined, 'the cancel reached the getter');
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('reflection lists the groupcache and gossipcache services', async () => {
    const { server } = node(async (k) => k);
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const client = new ReflectionClient(addr, insecure);
    try {
      const call = (
        client as unknown as { ServerReflectionInfo(): ClientDuplexStream<object, object> }
      ).ServerReflectionInfo();
      const reply = new Promise<{ list_services_response: { service: { name: string }[] } }>(
        (resolve, reject) => {
          call.on('data', resolve);
          call.on('error', reject);
        },
      );
      call.write({ list_services: '*' });
      const names = (await reply).list_services_response.service.map((s) => s.name);
      call.end();
      assert.ok(names.includes('groupcachepb.GroupCache'), names.join(', '));
      assert.ok(names.includes('gossipcachepb.GossipCache'), names.join(', '));
    } finally {
      client.close();
      await server.close(0);
    }
  });

  test('graceful close finishes stream requests in flight, then refuses; the port is released', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const began = new Promise<void>((r) => (started = r));
    const { server } = node(async (key) => {
      if (key === 'slow') {
        started();
        await gate;
      }
      return `v:${key}`;
    });
    const port = await server.listen('127.0.0.1:0');
    const peer = new GrpcPeer(`127.0.0.1:${port}`);
    const signal = new AbortController().signal;
    try {
      const inFlight = peer.get('g', 'slow', signal);
      await began;
      const closing = server.close(10_000);
      release();
      assert.equal(Buffer.from((await inFlight).value).toString(), 'v:slow');
      await closing;
      const after = await peer.get('g', 'x', signal).then(
        () => assert.fail('served after close'),
        (e: Error) => e,
      );
      assert.ok(after instanceof PeerError, `${after}`);
      // The same port can be bound again: close released it.
      const again = node(async (k) => k).server;
      assert.equal(await again.listen(`127.0.0.1:${port}`), port);
      await again.close(0);
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('a Fetch stream from a plain protobuf client is answered per request id', async () => {
    const { server } = node(async (k) => `v:${k}`);
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const client = new GossipCacheClient(addr, insecure);
    try {
      const call = (client as unknown as { Fetch(): ClientDuplexStream<object, object> }).Fetch();
      type Reply = { id: number; code?: number; value?: Buffer; message?: string };
      const got = new Map<number, Reply>();
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (b: { replies: Reply[] }) => {
          for (const r of b.replies) got.set(r.id, r);
          if (got.size === 3) resolve();
        });
        call.on('error', reject);
      });
      call.write({
        requests: [
          { id: 1, group: 'g', key: 'a' },
          { id: 2, group: 'g', key: '' },
        ],
      });
      call.write({ requests: [{ id: 3, group: 'zzz', key: 'a', timeout_ms: 1000 }] });
      await done;
      call.end();
      assert.equal(got.get(1)?.value?.toString(), 'v:a');
      assert.equal(got.get(2)?.code, 3);
      assert.equal(got.get(3)?.code, 5);
      assert.match(got.get(3)?.message ?? '', /unknown group "zzz"/);
    } finally {
      client.close();
      await server.close(0);
    }
  });

  test("values above grpc's 4 MiB default pass with the default limit, on the stream and unary", async () => {
    const big = Buffer.alloc(5 << 20, 7);
    const registry = new GroupRegistry();
    new Group({ name: 'g', cacheBytes: 16 << 20, registry, getter: async () => big });
    const server = createGrpcServer({ registry });
    const peer = new GrpcPeer(`127.0.0.1:${await server.listen('127.0.0.1:0')}`, { timeoutMs: 30_000 });
    try {
      const signal = new AbortController().signal;
      assert.ok(Buffer.from((await peer.get('g', 'k', signal)).value).equals(big));
      assert.ok(Buffer.from((await peer.getUnary('g', 'k', signal)).value).equals(big));
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('Remove drops a key; a peer without the group counts as done', async () => {
    let loads = 0;
    const { server, registry } = node(async (k) => `v${++loads}:${k}`);
    const peer = new GrpcPeer(`127.0.0.1:${await server.listen('127.0.0.1:0')}`);
    try {
      const signal = new AbortController().signal;
      assert.equal(Buffer.from((await peer.get('g', 'k', signal)).value).toString(), 'v1:k');
      assert.equal(Buffer.from((await peer.get('g', 'k', signal)).value).toString(), 'v1:k', 'cached');
      await peer.remove('g', 'k', signal);
      assert.equal(registry.get('g')?.server.getCached('k'), undefined);
      assert.equal(Buffer.from((await peer.get('g', 'k', signal)).value).toString(), 'v2:k');
      await peer.remove('no-such-group', 'k', signal);
    } finally {
      peer.close();
      await server.close(0);
    }
    await assert.rejects(peer.remove('g', 'k', new AbortController().signal), /removed/);
  });

  test('a stream request past its timeout_ms is answered DEADLINE_EXCEEDED even if the getter hangs', async () => {
    let release!: () => void;
    const hang = new Promise<void>((r) => (release = r));
    const { server } = node(async (k) => {
      await hang; // ignores its signal
      return k;
    });
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const client = new GossipCacheClient(addr, insecure);
    try {
      const call = (client as unknown as { Fetch(): ClientDuplexStream<object, object> }).Fetch();
      const reply = new Promise<{ replies: { id: number; code: number }[] }>((resolve, reject) => {
        call.on('data', resolve);
        call.on('error', reject);
      });
      call.write({ requests: [{ id: 9, group: 'g', key: 'stuck', timeout_ms: 100 }] });
      const r = await reply;
      assert.deepEqual(
        r.replies.map((x) => [x.id, x.code]),
        [[9, 4]],
      );
      call.end();
    } finally {
      release();
      client.close();
      await server.close(0);
    }
  });

  test('onServed sees every answered request with its method, code and time', async () => {
    const seen: [string, number][] = [];
    const registry = new GroupRegistry();
    new Group({ name: 'g', cacheBytes: 1 << 20, registry, getter: async (k) => k });
    const server = createGrpcServer({
      registry,
      onServed: (method, code, ms) => {
        assert.ok(ms >= 0 && Number.isFinite(ms));
        seen.push([method, code]);
      },
    });
    const addr = `127.0.0.1:${await server.listen('127.0.0.1:0')}`;
    const peer = new GrpcPeer(addr);
    const signal = new AbortController().signal;
    try {
      await peer.getUnary('g', 'a', signal);
      await assert.rejects(peer.getUnary('nope', 'a', signal));
      await peer.get('g', 'b', signal);
      await assert.rejects(peer.get('g', '', signal));
      await peer.remove('g', 'a', signal);
      assert.deepEqual(seen, [
        ['Get', 0],
        ['Get', 5],
        ['Fetch', 0],
        ['Fetch', 3],
        ['Remove', 0],
      ]);
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('a group whose getEntry throws synchronously fails that request as a failed load (UNAVAILABLE), and the node keeps serving', async () => {
    const server = createGrpcServer({
      registry: stubRegistry({
        getEntry: (key: string) => {
          if (key === 'boom') throw new Error('sync boom');
          return Promise.resolve({ value: Buffer.from('fine'), minuteQps: 0, ageMs: 0, source: 'hit' });
        },
        removeLocal: () => {},
      }),
    });
    const peer = new GrpcPeer(`127.0.0.1:${await server.listen('127.0.0.1:0')}`);
    const signal = new AbortController().signal;
    try {
      for (const call of [() => peer.get('g', 'boom', signal), () => peer.getUnary('g', 'boom', signal)]) {
        const err = await call().then(
          () => assert.fail('succeeded'),
          (e: Error) => e,
        );
        // Sent as UNAVAILABLE with the load-error mark: GrpcPeer reads it as the node's failed load.
        assert.ok(err instanceof OwnerLoadError, `${err}`);
        assert.match(err.message, /sync boom/);
      }
      assert.equal(Buffer.from((await peer.get('g', 'ok', signal)).value).toString(), 'fine');
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('a value expiring right now (ttl 0) travels as 1 ms, never as "no expiry"', async () => {
    const server = createGrpcServer({
      registry: stubRegistry({
        getEntry: async () => ({ value: Buffer.from('v'), minuteQps: 0, ttlMs: 0, ageMs: 0, source: 'hit' }),
        removeLocal: () => {},
      }),
    });
    const peer = new GrpcPeer(`127.0.0.1:${await server.listen('127.0.0.1:0')}`);
    const signal = new AbortController().signal;
    try {
      assert.equal((await peer.get('g', 'k', signal)).ttlMs, 1);
      assert.equal((await peer.getUnary('g', 'k', signal)).ttlMs, 1);
    } finally {
      peer.close();
      await server.close(0);
    }
  });

  test('bad options fail with errors that say what to fix', async () => {
    assert.throws(
      () => createGrpcServer({ registry: new GroupRegistry(), maxMessageBytes: 0 }),
      /maxMessageBytes/,
    );
    assert.throws(() => new GrpcPeer('127.0.0.1:1', { timeoutMs: -1 }), /timeoutMs/);
    const { server } = node(async (k) => k);
    await assert.rejects(server.listen('not an address'), /cannot listen on not an address/);
    await server.close(0);
  });
});

/** A registry of one group, not built on Group, that implements only the server calls `server` has. */
function stubRegistry(server: Partial<GroupServer>): ServedRegistry {
  const group = { name: 'g', server: server as GroupServer } as Partial<ServedGroup> as ServedGroup;
  return { get: () => group, list: () => [group] };
}
