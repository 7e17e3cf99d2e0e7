// Value lifecycle over real gRPC between nodes on 127.0.0.1: stale windows and remembered NotFounds
// travel with what they have left, and set stores at the owner through the Set RPC.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NotFoundError } from '../../src/errors.js';
import type { GetterResult } from '../../src/group.js';
import { type Cluster, startCluster } from '../support/grpc-cluster.js';
import { sleep } from '../support/wait.js';

describe('lifecycle over gRPC', () => {
  let c: Cluster;
  let mode: 'stale' | 'negative' | 'plain' = 'plain';
  before(async () => {
    c = await startCluster({
      nodes: 3,
      getter:
        () =>
        async (key): Promise<GetterResult> => {
          if (mode === 'negative') throw new NotFoundError(`no ${key}`, { ttlMs: 60_000 });
          if (mode === 'stale') {
            return { value: `${key}:v`, ttlMs: 200, staleWhileRevalidateMs: 60_000, staleIfErrorMs: 120_000 };
          }
          return `${key}:plain`;
        },
    });
  });
  after(() => c.close());

  /** A key owned by node `i` (by asking each node's picker). */
  function keyOwnedBy(i: number, prefix: string): string {
    const other = c.nodes[(i + 1) % c.nodes.length];
    for (let n = 0; ; n++) {
      const k = `${prefix}${n}`;
      if (other.picker.pickPeer(k)?.id === c.nodes[i].addr) return k;
    }
  }

  it('a stale answer reaches a peer as stale, with the windows the owner has left', async () => {
    mode = 'stale';
    const key = keyOwnedBy(0, 'stale');
    await c.nodes[0].group.get(key);
    await sleep(400);
    const e = await c.nodes[1].group.getEntry(key);
    assert.equal(e.value.toString(), `${key}:v`);
    assert.equal(e.stale, true);
    assert.equal(e.source, 'peer');
    // The owner's window ends 60.2 s after the load; at least 400 ms of it are gone.
    assert.ok(
      e.staleWhileRevalidateMs! <= 59_800 && e.staleWhileRevalidateMs! > 50_000,
      `${e.staleWhileRevalidateMs}`,
    );
    assert.ok(e.staleIfErrorMs! <= 119_800 && e.staleIfErrorMs! > 110_000, `${e.staleIfErrorMs}`);
    assert.ok(e.ageMs >= 400 && e.ageMs < 10_000, `${e.ageMs}`);
  });

  it('a remembered NotFound reaches a peer with its remaining ttl; the owner is asked once', async () => {
    mode = 'negative';
    const key = keyOwnedBy(0, 'neg');
    await assert.rejects(c.nodes[0].group.get(key), NotFoundError);
    await sleep(50);
    await assert.rejects(
      c.nodes[2].group.get(key),
      (e: NotFoundError) => e instanceof NotFoundError && e.ttlMs! <= 59_950 && e.ttlMs! > 50_000,
    );
    await assert.rejects(c.nodes[1].group.get(key), NotFoundError);
    assert.equal(c.nodes[0].loads.get(key), 1);
    assert.equal(c.nodes[1].loads.get(key), undefined);
  });

  it('set through a non-owner stores at the owner (Set RPC) and is seen through every node', async () => {
    mode = 'plain';
    const key = keyOwnedBy(0, 'set');
    for (const n of c.nodes) assert.equal(await n.group.getString(key), `${key}:plain`);
    await c.nodes[2].group.set(key, 'written', { ttlMs: 60_000 });
    for (const n of c.nodes) assert.equal(await n.group.getString(key), 'written');
    const atOwner = await c.nodes[0].group.getEntry(key);
    assert.equal(atOwner.source, 'hit');
    assert.ok(atOwner.ttlMs! > 59_000 && atOwner.ttlMs! <= 60_000);
    assert.equal(c.nodes[0].loads.get(key), 1);
    assert.equal(c.nodes[0].group.stats.sets, 1);
  });

  it('refuses values a peer message cannot carry, and values over the owner’s cache size, clearly', async () => {
    const key = keyOwnedBy(0, 'big');
    await assert.rejects(
      c.nodes[1].group.set(key, Buffer.alloc(2 * 1024 * 1024)),
      (e: Error) =>
        e instanceof RangeError && /over the 1048576-byte limit of one peer request/.test(e.message),
    );
    // 16 MiB cache: a 1 MiB value fits here but not a 17 MiB one (refused before any RPC).
    await assert.rejects(
      c.nodes[1].group.set(key, Buffer.alloc(17 * 1024 * 1024)),
      (e: Error) => e instanceof RangeError && /over the cache size/.test(e.message),
    );
    assert.equal(c.nodes[0].group.stats.sets, 1, 'nothing stored');
  });
});
