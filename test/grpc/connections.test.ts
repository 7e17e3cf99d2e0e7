// The gRPC port's connection cap (src/grpc/connections.ts): many raw TCP connections that send
// nothing cannot fill the port and lock a well-behaved peer out; at the cap, silent ones are closed
// for new ones, and when every connection has spoken the new one is closed.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, test } from 'node:test';
import { Client, connectivityState, credentials } from '@grpc/grpc-js';
import { Group, GroupRegistry } from '../../src/group.js';
import { ConnectionCap } from '../../src/grpc/connections.js';
import { createGrpcServer, GrpcPeer } from '../../src/grpc/index.js';
import { createMetrics } from '../../src/node/metrics.js';
import { hasOpenssl, makePki } from '../support/pki.js';
import { sleep, waitFor } from '../support/wait.js';

const CAP = 8;

async function node() {
  const registry = new GroupRegistry();
  new Group({ name: 'g', cacheBytes: 1 << 20, registry, getter: async (k) => `v:${k}` });
  const server = createGrpcServer({ registry, limits: { maxConnections: CAP } });
  const port = await server.listen('127.0.0.1:0');
  // The node program's metrics read the same stats (src/node/main.ts).
  const metrics = createMetrics({ registry, grpc: () => server.stats(), processMetrics: false });
  return { server, port, addr: `127.0.0.1:${port}`, metrics };
}

/** `n` raw TCP connections that never send a byte; `closed` counts those the server closed. */
async function silent(port: number, n: number) {
  const sockets: net.Socket[] = [];
  const state = { closed: 0 };
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => state.closed++);
    // Read, so the server's close is seen (it never sends anything else).
    s.resume();
    await new Promise<void>((resolve) => {
      s.once('connect', resolve);
      s.once('close', resolve);
    });
    sockets.push(s);
  }
  return {
    sockets,
    state,
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

describe('gRPC connection cap', () => {
  test('silent connections beyond the cap are closed, and a good peer still gets values', async () => {
    const { server, port, addr } = await node();
    const idle = await silent(port, 5 * CAP);
    try {
      // All but CAP of them are closed as the later ones arrive (oldest silent first).
      await waitFor(
        'the server to close the silent connections over the cap',
        async () => idle.state.closed >= 4 * CAP,
      );
      assert.ok(server.stats().connections <= CAP, `${server.stats().connections} open`);
      const good = new GrpcPeer(addr);
      try {
        for (let i = 0; i < 5; i++) {
          const r = await good.get('g', `k${i}`, AbortSignal.timeout(5000));
          assert.equal(Buffer.from(r.value).toString(), `v:k${i}`);
        }
        // The good peer's connection took the place of a silent one.
        assert.ok(server.stats().connectionsShed >= 4 * CAP + 1, JSON.stringify(server.stats()));
        assert.ok(server.stats().connections <= CAP);
        // More silent connections now shed the other silent ones, never the good peer.
        const more = await silent(port, 2 * CAP);
        try {
          await waitFor('more silent connections to be closed', async () => more.state.closed >= CAP);
          const r = await good.get('g', 'after', AbortSignal.timeout(5000));
          assert.equal(Buffer.from(r.value).toString(), 'v:after');
        } finally {
          more.destroy();
        }
      } finally {
        good.close();
      }
    } finally {
      idle.destroy();
      await server.close(0);
    }
  });

  test('when every connection has spoken, a new one is closed (refused), not an established one', async () => {
    const { server, port, addr, metrics } = await node();
    const talkers: net.Socket[] = [];
    const peers: Client[] = [];
    try {
      for (let i = 0; i < CAP; i++) {
        // Distinct options and a local pool: grpc-js would otherwise share one connection between them.
        const p = new Client(addr, credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'test.conn': i,
        });
        peers.push(p);
        await new Promise<void>((resolve, reject) =>
          p.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())),
        );
      }
      assert.equal(server.stats().connections, CAP);
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.resume();
      talkers.push(s);
      await new Promise<void>((resolve) => s.once('close', () => resolve()));
      assert.equal(server.stats().connectionsRefused, 1);
      const text = await metrics.text();
      assert.match(text, /gossipcache_grpc_connections_closed_total\{reason="refused"\} 1\n/);
      assert.match(text, /gossipcache_grpc_connections 8\n/);
      // The established connections were left alone.
      await sleep(100);
      for (const p of peers)
        assert.equal(p.getChannel().getConnectivityState(false), connectivityState.READY);
      assert.equal(server.stats().connections, CAP);
    } finally {
      for (const p of peers) p.close();
      for (const t of talkers) t.destroy();
      await server.close(0);
    }
  });

  test('at the cap, a connection quiet for the idle time is shed for a new one; a talking one is not', async () => {
    // ConnectionCap on a plain TCP server, shaped like grpc-js's (its listening servers in http2Servers).
    const tcp = net.createServer((s) => s.resume());
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const port = (tcp.address() as net.AddressInfo).port;
    const cap = new ConnectionCap(2, 200);
    assert.ok(cap.attach({ http2Servers: new Map([[tcp, {}]]) }));
    const open = (): Promise<{ s: net.Socket; closed: Promise<void> }> =>
      new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.resume();
        const closed = new Promise<void>((r) => s.once('close', () => r()));
        s.once('connect', () => resolve({ s, closed }));
      });
    const quiet = await open();
    quiet.s.write('x');
    const talker = await open();
    talker.s.write('x');
    // The talker keeps sending; the quiet one has sent nothing since its first byte.
    const chatter = setInterval(() => talker.s.write('x'), 20);
    try {
      await sleep(500);
      const third = await open();
      await quiet.closed;
      assert.deepEqual(cap.counts, { open: 2, shed: 1, refused: 0 });
      assert.ok(!talker.s.destroyed && !third.s.destroyed);
      // Now both open ones have spoken recently: a fourth is refused.
      third.s.write('x');
      await sleep(100); // read and sampled (every 50 ms) by the server
      const fourth = await open();
      await fourth.closed;
      assert.deepEqual(cap.counts, { open: 2, shed: 1, refused: 1 });
      third.s.destroy();
    } finally {
      clearInterval(chatter);
      talker.s.destroy();
      await new Promise((r) => tcp.close(r));
    }
  });

  /**
   * A ConnectionCap of 2 on an http2 server (plain, or TLS with `tls`): a connection that only pings and one
   * with a call open, then a third; the pinger must be the one shed.
   */
  async function pingerIsShed(tls?: { cert: Buffer; key: Buffer; ca: Buffer }) {
    const h2 = tls ? http2.createSecureServer({ cert: tls.cert, key: tls.key }) : http2.createServer();
    h2.on('stream', () => {}); // calls stay open
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const port = (h2.address() as net.AddressInfo).port;
    const cap = new ConnectionCap(2, 200);
    assert.ok(cap.attach({ http2Servers: new Map([[h2, {}]]) }));
    const session = () => {
      const s = tls
        ? http2.connect(`https://127.0.0.1:${port}`, { ca: tls.ca })
        : http2.connect(`http://127.0.0.1:${port}`);
      s.on('error', () => {});
      const state = { closed: false };
      s.once('close', () => {
        state.closed = true;
      });
      return { s, state };
    };
    const pinger = session();
    const pings = setInterval(() => {
      if (!pinger.s.destroyed && !pinger.s.closed && !pinger.s.connecting) pinger.s.ping(() => {});
    }, 20);
    const caller = session();
    const call = caller.s.request({ ':method': 'POST', ':path': '/x' }); // open, never ended
    call.on('error', () => {});
    let third: ReturnType<typeof session> | undefined;
    try {
      await waitFor('two connections', () => cap.counts.open === 2);
      await sleep(500); // both sent bytes all along; only the caller has a call
      third = session();
      await waitFor('the pinger shed', () => pinger.state.closed, 5000);
      assert.deepEqual(cap.counts, { open: 2, shed: 1, refused: 0 });
      assert.ok(!caller.s.destroyed);
    } finally {
      clearInterval(pings);
      for (const x of [caller, pinger, third]) x?.s.destroy();
      await new Promise((r) => h2.close(r));
    }
  }

  test('over HTTP/2, quiet means no call: a connection that only sends PINGs is shed; one with a call open is not', async () => {
    // Before, bytes counted as speaking: 1,023 connections pinging every 10 s held the port.
    await pingerIsShed();
  });

  test('the same over TLS (the session is paired with its socket after the handshake)', {
    skip: !hasOpenssl() && 'needs openssl for test certificates',
  }, async () => {
    const pki = makePki();
    try {
      const f = pki.node('a');
      await pingerIsShed({
        cert: readFileSync(f.certFile),
        key: readFileSync(f.keyFile),
        ca: readFileSync(f.caFile),
      });
    } finally {
      pki.cleanup();
    }
  });
});
