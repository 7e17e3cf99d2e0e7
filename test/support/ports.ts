// Free ports on 127.0.0.1 for servers a test starts a moment later (a small race by nature: another
// process may take the port in between; the tests that care retry).

import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';

/**
 * Where freePort looks first: below Linux's default ephemeral range (32768–60999). Port 0 hands out the
 * next ephemeral port, so two test files asking at nearly the same moment could both get the one the
 * other had just released (seen: a node's gRPC port taken, EADDRINUSE); a random port here makes that
 * unlikely, and outgoing connections never take one of these.
 */
const RANDOM_FROM = 20_000;
const RANDOM_TO = 32_000;

/** A port free for TCP and UDP on 127.0.0.1 right now (gossip needs both on one port). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const srv = createServer();
    srv.on('error', () => {});
    // A random port below the ephemeral range; after 20 taken ones, whatever the kernel gives.
    const want = attempt < 20 ? RANDOM_FROM + Math.floor(Math.random() * (RANDOM_TO - RANDOM_FROM)) : 0;
    const listening = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(want, '127.0.0.1', () => resolve(true));
    });
    if (!listening) continue;
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
