// Regression: a leave announced just before the transport closes must reach the peers. dgram.send
// defers the actual send to a later tick (it resolves even IP literals through lookup), so a socket
// closed in the same tick dropped the datagrams and a gracefully leaving node looked crashed.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { UdpTcpTransport } from '../../src/membership/net.js';

it('datagrams sent right before close() are delivered', async () => {
  const a = await UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0' });
  const b = await UdpTcpTransport.listen({ bindAddr: '127.0.0.1:0' });
  try {
    const got: string[] = [];
    b.onPacket = (_from, data) => got.push(Buffer.from(data).toString());
    for (let i = 0; i < 4; i++) a.sendPacket(b.localAddr, Buffer.from(`left-${i}`));
    await a.close(); // same tick as the sends, as in Swim.leave() → Membership.close()
    const end = Date.now() + 5000;
    while (got.length < 4 && Date.now() < end) await sleep(10);
    assert.deepEqual(got.sort(), ['left-0', 'left-1', 'left-2', 'left-3']);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
