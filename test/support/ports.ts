// Free ports on 127.0.0.1 for servers a test starts a moment later (a small race by nature: another
// process may take the port in between; the tests that care retry).

import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';

/** A port free for TCP and UDP on 127.0.0.1 right now (gossip needs both on one port). */
export async function freePort(): Promise<number> {
  for (;;) {
    const srv = createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    const udp = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) udp.close();
    srv.close();
    await once(srv, 'close');
    if (ok) return port;
  }
}

/** `n` distinct ports, each free for TCP and UDP. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}
