// Gossip-port attacks at the level of a running cluster over real sockets on 127.0.0.1, with the gossip key:
// - join lock-out: someone without the key holds more connections to a member's gossip TCP port than
//   its cap (idle ones and ones dribbling a frame); members with the key still join and push-pull;
// - replay across members: every datagram and stream request captured on its way to member B is
//   replayed at once (inside the 60 s window) to member C, which never saw it; C refuses each one,
//   counts it and logs it at debug, and the cluster keeps working.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../src/logger.js';
import { createMembership, type Membership } from '../../src/membership/index.js';
import { ANY_RECEIVER, Keyring } from '../../src/membership/keyring.js';
import { UdpTcpTransport } from '../../src/membership/net.js';
import { Swim } from '../../src/membership/swim.js';
import { holdConnections } from '../support/hold-connections.js';
import { waitFor } from '../support/wait.js';

const memberships: Membership[] = [];
const stops: (() => Promise<void>)[] = [];
after(async () => {
  await Promise.all(memberships.map((m) => m.close()));
  await Promise.all(stops.map((f) => f()));
});

const aliveIn = (m: { members(): { id: string; state: string }[] }, id: string) =>
  m.members().some((x) => x.id === id && x.state === 'alive');

describe('gossip port under attack (real sockets, encrypted)', { timeout: 120_000 }, () => {
  it('members with the key join and push-pull while the TCP port is held by connections that never authenticate', async (t) => {
    const key = randomBytes(32);
    const fast = { pushPullIntervalMs: 300 };
    const target = await createMembership({
      id: 'target',
      bindAddr: '127.0.0.1:0',
      meta: {},
      secretKeys: [key],
      config: fast,
    });
    memberships.push(target);
    const member = await createMembership({
      id: 'member',
      bindAddr: '127.0.0.1:0',
      meta: {},
      seeds: [target.advertiseAddr],
      secretKeys: [key],
      config: fast,
    });
    memberships.push(member);
    await waitFor('the first member to join', () => aliveIn(target, 'member'), 10_000);
    // Default limits: 64 connections without an authentic first frame, 2 s to send one; 330 held
    // connections are also more than the 256 authenticated streams the port serves at once.
    const attacker = holdConnections(Number(target.advertiseAddr.split(':')[1]), 300, 30);
    stops.push(async () => attacker.stop());
    try {
      await waitFor('the attacker to overflow the cap', () => attacker.closedByTarget >= 270, 10_000);
      const pushPullsBefore = target.stats().pushPulls;
      const joiner = await createMembership({
        id: 'joiner',
        bindAddr: '127.0.0.1:0',
        meta: {},
        seeds: [target.advertiseAddr],
        secretKeys: [key],
        config: fast,
      });
      memberships.push(joiner);
      const joinStart = performance.now();
      await waitFor(
        'the joiner to join while the port is held',
        () => joiner.ready && aliveIn(target, 'joiner') && aliveIn(member, 'joiner'),
        15_000,
      );
      t.diagnostic(
        `joined in ${Math.round(performance.now() - joinStart)} ms with ${attacker.open} attacker sockets open`,
      );
      // Periodic push-pulls (every 300 ms from two members) keep going through too.
      await waitFor(
        'push-pulls during the attack',
        () => target.stats().pushPulls >= pushPullsBefore + 5,
        15_000,
      );
      assert.ok(attacker.open > 50, `the attacker held only ${attacker.open} connections`);
    } finally {
      attacker.stop();
    }
    const st = target.stats().transport;
    assert.ok(st.streamsEvicted >= 270, `evicted ${st.streamsEvicted}`);
    assert.equal(st.streamsRefused, 0);
    assert.equal(st.decryptFailures, 0);
  });

  it('a datagram or request captured on its way to B and replayed to C inside the window is refused, counted and logged', async (t) => {
    const key = randomBytes(32);
    const config = { pushPullIntervalMs: 300, probeIntervalMs: 100 };
    const debugC: { obj: object; msg: string }[] = [];
    const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
    const start = async (id: string, seeds: string[], logger: Logger = quiet) => {
      const transport = await UdpTcpTransport.listen({
        bindAddr: '127.0.0.1:0',
        keyring: new Keyring([key]),
        logger,
      });
      const swim = new Swim({ id, meta: {}, transport, seeds, config });
      swim.start();
      stops.push(async () => {
        swim.stop();
        await transport.close();
      });
      return { swim, transport };
    };
    const a = await start('a', []);
    const b = await start('b', [a.transport.localAddr]);
    const c = await start('c', [a.transport.localAddr], {
      ...quiet,
      debug: (obj, msg) => debugC.push({ obj, msg: msg ?? '' }),
    });
    const all = [a, b, c];
    const converged = () => all.every((x) => ['a', 'b', 'c'].every((id) => aliveIn(x.swim, id)));
    await waitFor('the cluster to form', converged, 10_000);

    // The eavesdropper: a copy of every datagram and every stream request as it reaches B's socket
    // (what a tap on the wire to B sees), each replayed at once to C.
    const cPort = Number(c.transport.localAddr.split(':')[1]);
    const raw = createSocket('udp4');
    raw.bind(0, '127.0.0.1');
    await once(raw, 'listening');
    let datagrams = 0;
    let requests = 0;
    let toAnyone = 0;
    const bUdp = (b.transport as unknown as { udp: UdpSocket }).udp;
    const bTcp = (b.transport as unknown as { tcp: Server }).tcp;
    const onDatagram = (msg: Buffer) => {
      datagrams++;
      raw.send(msg, cPort, '127.0.0.1');
    };
    const onConnection = (s: import('node:net').Socket) => {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length < 4 || all.length < 4 + all.readUInt32BE(0)) return;
        // A request to a seed is bound to "any receiver" (documented); B is nobody's seed here.
        if (all.subarray(4 + 13, 4 + 21).equals(ANY_RECEIVER)) toAnyone++;
        requests++;
        const replay = connect(cPort, '127.0.0.1', () => replay.end(all));
        replay.on('error', () => {});
        replay.resume();
      });
    };
    bUdp.prependListener('message', onDatagram);
    bTcp.prependListener('connection', onConnection);
    const before = c.transport.stats();
    await waitFor('traffic to B to replay', () => datagrams >= 100 && requests >= 3, 30_000);
    bUdp.off('message', onDatagram);
    bTcp.off('connection', onConnection);
    await waitFor(
      `C to refuse all ${datagrams} datagrams and ${requests} requests replayed to it`,
      () => c.transport.stats().misaddressed - before.misaddressed >= datagrams + requests,
      10_000,
    );
    raw.close();
    t.diagnostic(`replayed to C: ${datagrams} datagrams, ${requests} stream requests`);
    assert.equal(toAnyone, 0);
    const after = c.transport.stats();
    // Refused as meant for someone else, not as a wrong key or C's own replay memory.
    assert.equal(after.misaddressed - before.misaddressed, datagrams + requests);
    assert.equal(after.decryptFailures, 0);
    assert.equal(after.replayed, before.replayed);
    assert.ok(debugC.some((d) => /bound to another receiver/.test(d.msg)));
    // The cluster kept working: B and C still see everyone alive, and keep probing each other.
    const acksBefore = c.swim.stats().probes - c.swim.stats().probesFailed;
    await sleep(500);
    assert.ok(converged(), 'a member is no longer alive somewhere');
    assert.ok(c.swim.stats().probes - c.swim.stats().probesFailed > acksBefore);
  });
});
