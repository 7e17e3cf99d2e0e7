// createMembership in one process over real sockets on 127.0.0.1: what the node composes.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMembership, type Membership, type MemberView } from '../../src/membership/index.js';
import { waitFor } from '../support/wait.js';

const open: Membership[] = [];
after(async () => {
  await Promise.all(open.map((m) => m.close()));
});

async function member(opts: Partial<Parameters<typeof createMembership>[0]> = {}): Promise<Membership> {
  const m = await createMembership({ bindAddr: '127.0.0.1:0', meta: { grpcAddr: 'x:1' }, ...opts });
  open.push(m);
  return m;
}

const stateOf = (m: Membership, id: string) => m.members().find((x) => x.id === id)?.state;

describe('createMembership', () => {
  it('alone (no seeds): ready at once, on a real port, itself alive', async () => {
    const a = await member({ id: 'a' });
    assert.equal(a.ready, true);
    assert.match(a.addr, /^127\.0\.0\.1:[1-9]\d*$/);
    assert.equal(a.advertiseAddr, a.addr);
    assert.equal(a.local().id, 'a');
    assert.deepEqual(
      a.members().map((m) => [m.id, m.state]),
      [['a', 'alive']],
    );
    assert.equal(typeof a.stats().transport.decryptFailures, 'number');
  });

  it('joins through a seed given as a DNS name, emits ready and change, sees metadata', async () => {
    const key = randomBytes(32);
    const a = await member({ id: 'a', secretKeys: [key], meta: { grpcAddr: '127.0.0.1:9001' } });
    const port = a.addr.split(':')[1];
    const b = await member({ id: 'b', secretKeys: [key], seeds: [`localhost:${port}`] });
    const changes: [string, string, string | null][] = [];
    b.on('change', (m: MemberView, prev: string | null) => changes.push([m.id, m.state, prev]));
    if (!b.ready) await new Promise((r) => b.once('ready', r));
    await waitFor('both alive', () => stateOf(a, 'b') === 'alive' && stateOf(b, 'a') === 'alive');
    assert.equal(b.members().find((m) => m.id === 'a')?.meta.grpcAddr, '127.0.0.1:9001');
    assert.ok(changes.some(([id, state]) => id === 'a' && state === 'alive'));
    await b.leave(1000);
    await waitFor('a sees b left', () => stateOf(a, 'b') === 'left');
    assert.equal(b.stats().transport.decryptFailures, 0);
  });

  it('does not become ready while its seeds do not answer, and joins once one does', async () => {
    const a = await member({ id: 'late-a', bindAddr: '127.0.0.1:0' });
    const aPort = Number(a.addr.split(':')[1]);
    await a.close();
    const b = await member({ id: 'late-b', seeds: [`127.0.0.1:${aPort}`, 'no-such-seed.invalid:1'] });
    await sleep(500);
    assert.equal(b.ready, false);
    const again = await member({ id: 'late-a', bindAddr: `127.0.0.1:${aPort}` });
    await waitFor('b ready after its seed came up', () => b.ready);
    await waitFor('the seed knows b', () => stateOf(again, 'late-b') === 'alive');
  });

  it('says what to change when the port is taken or an option is bad', async () => {
    const a = await member();
    await assert.rejects(
      createMembership({ bindAddr: a.addr, meta: {} }),
      /^Error: bind failed: 127\.0\.0\.1:\d+ is already in use \(EADDRINUSE\); set GOSSIPCACHE_GOSSIP_ADDR/,
    );
    await assert.rejects(
      createMembership({ bindAddr: '127.0.0.1:0', meta: {}, seeds: ['a:b:c:d:'] }),
      /invalid address/,
    );
    await assert.rejects(
      createMembership({ bindAddr: '127.0.0.1:0', meta: {}, secretKeys: [randomBytes(8)] }),
      /exactly 32 bytes/,
    );
  });
});
