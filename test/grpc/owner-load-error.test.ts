// The owner's failed load on the wire (real gRPC on 127.0.0.1): FetchReply.load_error on the peer
// stream, the `gossipcache-load-error` trailer on the unary Get. A non-owner whose owner was reached
// and failed its load fails too without running its getter; an owner it cannot reach, or one that does
// not send the signal (a node from before it, played by a scripted fake), still makes it load the key
// itself. The core side: test/core/owner-load-error.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Server, type ServerDuplexStream, type ServiceError, status } from '@grpc/grpc-js';
import { NotFoundError, OwnerLoadError } from '../../src/errors.js';
import { Group, GroupRegistry } from '../../src/group.js';
import type { FetchReply, FetchRequest } from '../../src/grpc/codec.js';
import { GrpcPeer, PeerError } from '../../src/grpc/index.js';
import { gossipCacheService } from '../../src/grpc/proto.js';
import type { Peer } from '../../src/peers.js';
import { bindLocal, type Cluster, keyOwnedBy, startCluster } from '../support/grpc-cluster.js';
import { GroupCacheClient, insecure, peerMetadata, unary } from '../support/grpc-std-client.js';
import { freePort } from '../support/ports.js';
import { rejection } from '../support/wait.js';

class OriginError extends Error {
  override name = 'OriginError';
}

/** A cluster whose every getter fails like an origin answering 503. */
function failingCluster(nodes: number, extra: { getterTimeoutMs?: number } = {}) {
  return startCluster({
    nodes,
    ...extra,
    getter:
      ({ addr }) =>
      async (key) => {
        if (key.startsWith('slow')) return new Promise<string>(() => {});
        if (key.startsWith('none')) throw new NotFoundError(`no ${key}`, { ttlMs: 30_000 });
        throw new OriginError(`GET /${key} at ${addr}: origin answered 503`);
      },
  });
}

async function withCluster(c: Promise<Cluster>, fn: (c: Cluster) => Promise<void>): Promise<void> {
  const cluster = await c;
  try {
    await fn(cluster);
  } finally {
    await cluster.close();
  }
}

/** A node that answers every Fetch request with `reply` (a node of any version, scripted). */
async function scriptedNode(reply: (q: FetchRequest) => Omit<FetchReply, 'id'>) {
  const server = new Server();
  server.addService(gossipCacheService, {
    Fetch(call: ServerDuplexStream<FetchRequest[], FetchReply[]>) {
      call.on('data', (batch: FetchRequest[]) =>
        call.write(batch.filter((q) => !q.cancel).map((q) => ({ id: q.id, ...reply(q) }))),
      );
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  });
  const port = await bindLocal(server);
  return { addr: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

/** A group whose only peer, `owner`, owns every key; its getter counts calls. */
function nonOwner(owner: Peer) {
  const registry = new GroupRegistry();
  let loads = 0;
  const group = new Group({
    name: 'g',
    cacheBytes: 1 << 20,
    registry,
    peers: { pickPeer: () => owner, peers: () => [owner] },
    getter: async (key) => {
      loads++;
      return `${key}@local`;
    },
  });
  return { group, loads: () => loads };
}

const failure = (code: status, message: string, loadError?: string): Omit<FetchReply, 'id'> => ({
  code,
  value: Buffer.alloc(0),
  minuteQps: 0,
  ttlMs: 0,
  message,
  ...(loadError === undefined ? {} : { loadError }),
});

describe('owner load failures over gRPC', () => {
  test('peer stream: the owner’s getter error reaches non-owners, whose getters never run', () =>
    withCluster(failingCluster(3), async (c) => {
      const [a, b, d] = c.nodes;
      const key = keyOwnedBy(a, b, 'down');
      const err = await rejection(a.group.get(key));
      assert.ok(err instanceof OwnerLoadError, `got ${err.name}: ${err.message}`);
      assert.equal(err.ownerError, 'OriginError');
      assert.equal(err.peer, b.addr);
      assert.match(
        err.message,
        new RegExp(`^the key's owner ${b.addr} failed to load it: OriginError: GET /`),
      );
      assert.match(err.message, /origin answered 503$/, 'the getter’s message, without the wire prefix');
      // One origin call per request, all at the owner, whichever node the request came through.
      await assert.rejects(d.group.get(key), OwnerLoadError);
      await assert.rejects(a.group.get(key), OwnerLoadError);
      assert.deepEqual(
        c.nodes.map((n) => n.loads.get(key) ?? 0),
        [0, 3, 0],
      );
      assert.equal(a.group.stats.ownerLoadErrors, 2);
      assert.equal(a.group.stats.peerErrors, 0);
      assert.equal(d.group.stats.ownerLoadErrors, 1);
    }));

  test('peer stream: the owner’s getter timeout arrives as OwnerLoadError(GetterTimeoutError)', () =>
    withCluster(failingCluster(2, { getterTimeoutMs: 100 }), async (c) => {
      const [a, b] = c.nodes;
      const key = keyOwnedBy(a, b, 'slow');
      const err = await rejection(a.group.get(key));
      assert.ok(err instanceof OwnerLoadError, `got ${err.name}: ${err.message}`);
      assert.equal(err.ownerError, 'GetterTimeoutError');
      assert.equal(a.loads.get(key), undefined, 'no second getter wait at the non-owner');
      assert.equal(b.loads.get(key), 1);
    }));

  test('peer stream: NotFound is unchanged (NotFoundError with its ttl, no load here)', () =>
    withCluster(failingCluster(2), async (c) => {
      const [a, b] = c.nodes;
      const key = keyOwnedBy(a, b, 'none');
      const err = await rejection(a.group.get(key));
      assert.ok(err instanceof NotFoundError, `got ${err.name}: ${err.message}`);
      assert.ok((err.ttlMs ?? 0) > 0, 'the owner’s remembered NotFound travels with its ttl');
      assert.equal(a.loads.get(key), undefined);
      assert.equal(a.group.stats.ownerLoadErrors, 0);
      assert.equal(a.group.stats.peerErrors, 0);
    }));

  test('owner unreachable (connection refused): the non-owner loads the key itself', async () => {
    const dead = new GrpcPeer(`127.0.0.1:${await freePort()}`, { timeoutMs: 5_000 });
    const n = nonOwner(dead);
    try {
      assert.equal(await n.group.getString('k'), 'k@local');
      assert.equal(n.loads(), 1);
      assert.equal(n.group.stats.peerErrors, 1);
      assert.equal(n.group.stats.ownerLoadErrors, 0);
    } finally {
      dead.close();
      n.group.close();
    }
  });

  test('an old owner (no load_error in its reply) makes the non-owner load, as before', async () => {
    const old = await scriptedNode(() => failure(status.UNAVAILABLE, 'getter failed: origin answered 503'));
    const peer = new GrpcPeer(old.addr);
    const n = nonOwner(peer);
    try {
      const err = await rejection(peer.get('g', 'k0', new AbortController().signal));
      assert.ok(err instanceof PeerError, `got ${err.name}`);
      assert.equal((err as PeerError).code, status.UNAVAILABLE);
      assert.equal(await n.group.getString('k1'), 'k1@local');
      assert.equal(n.loads(), 1);
      assert.equal(n.group.stats.peerErrors, 1);
      assert.equal(n.group.stats.ownerLoadErrors, 0);
    } finally {
      peer.close();
      old.close();
      n.group.close();
    }
  });

  test('load_error from a scripted node: kept with its code; a name that cannot travel reads as Error', async () => {
    const node = await scriptedNode((q) =>
      q.key === 'timeout'
        ? failure(status.DEADLINE_EXCEEDED, 'group g: getter did not settle', 'GetterTimeoutError')
        : q.key === 'odd'
          ? failure(status.UNAVAILABLE, 'getter failed: boom', 'Bad\r\nName: 1')
          : q.key === 'notfound'
            ? failure(status.NOT_FOUND, 'no such key', 'OriginError')
            : failure(status.UNAVAILABLE, 'getter failed: boom', 'OriginError'),
    );
    const peer = new GrpcPeer(node.addr);
    const n = nonOwner(peer);
    const signal = new AbortController().signal;
    try {
      const t = await rejection(peer.get('g', 'timeout', signal));
      assert.ok(t instanceof OwnerLoadError);
      assert.equal(t.ownerError, 'GetterTimeoutError');
      const odd = await rejection(peer.get('g', 'odd', signal));
      assert.ok(odd instanceof OwnerLoadError);
      assert.equal(odd.ownerError, 'Error');
      assert.doesNotMatch(odd.message, /[\r\n]/);
      assert.ok((await rejection(peer.get('g', 'notfound', signal))) instanceof NotFoundError);
      // Through a group: the failure answers, the getter never runs.
      await assert.rejects(n.group.get('k'), OwnerLoadError);
      assert.equal(n.loads(), 0);
      assert.equal(n.group.stats.ownerLoadErrors, 1);
    } finally {
      peer.close();
      node.close();
      n.group.close();
    }
  });

  test('unary Get: a failed load carries the gossipcache-load-error trailer, same code and details', () =>
    withCluster(failingCluster(2), async (c) => {
      const [a, b] = c.nodes;
      const client = new GroupCacheClient(b.addr, insecure);
      const viaA = new GroupCacheClient(a.addr, insecure);
      const peer = new GrpcPeer(b.addr);
      try {
        const key = keyOwnedBy(a, b, 'unary');
        // A peer-marked Get at the owner: what any groupcache client sees, plus the trailer.
        const e1 = (await rejection(
          unary(client, 'Get', { group: 'g', key }, { metadata: peerMetadata() }),
        )) as ServiceError;
        assert.equal(e1.code, status.UNAVAILABLE);
        assert.match(e1.details, /^getter failed: GET \/unary-\d+ at 127\.0\.0\.1:\d+: origin answered 503$/);
        assert.deepEqual(e1.metadata.get('gossipcache-load-error'), ['OriginError']);
        // GrpcPeer's unary Get reads it.
        const e2 = await rejection(peer.getUnary('g', key));
        assert.ok(e2 instanceof OwnerLoadError, `got ${e2.name}`);
        assert.equal(e2.ownerError, 'OriginError');
        // An outside client at a non-owner: routed to the owner, whose failure answers (a never loads).
        const e3 = (await rejection(unary(viaA, 'Get', { group: 'g', key }))) as ServiceError;
        assert.equal(e3.code, status.UNAVAILABLE);
        assert.deepEqual(e3.metadata.get('gossipcache-load-error'), ['OriginError']);
        assert.equal(a.loads.get(key), undefined);
        assert.equal(b.loads.get(key), 3);
        // NotFound carries no trailer.
        const e4 = (await rejection(
          unary(client, 'Get', { group: 'g', key: keyOwnedBy(a, b, 'none') }, { metadata: peerMetadata() }),
        )) as ServiceError;
        assert.equal(e4.code, status.NOT_FOUND);
        assert.deepEqual(e4.metadata.get('gossipcache-load-error'), []);
      } finally {
        client.close();
        viaA.close();
        peer.close();
      }
    }));
});
