// The HTTP front under connection exhaustion: the connection cap and whom it sheds, the operational
// reserve, the request-head timeout, and a flood of slow partial heads against a real node process.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { Group, GroupRegistry } from '../../src/group.js';
import { defaultMaxConnections, headerBytesFor } from '../../src/node/connections.js';
import { createHttpFront, type FrontOptions, type HttpFront } from '../../src/node/http.js';
import { countingOrigin, nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { HealthClient, insecure, unary } from '../support/grpc-std-client.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * A group whose `hang-*` keys wait until `release()`, whose `big` key is 24 MiB (more than a client that
 * does not read leaves room for in the socket buffers); other keys load `v:<key>` at once.
 */
function registryWithHangs(): { registry: GroupRegistry; release: () => void } {
  const registry = new GroupRegistry();
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  new Group({
    name: 'g',
    cacheBytes: 1 << 20,
    registry,
    async getter(key) {
      if (key.startsWith('hang-')) await released;
      if (key === 'big') return Buffer.alloc(24 << 20, 0x62);
      return `v:${key}`;
    },
  });
  return { registry, release };
}

async function startFront(opts: Omit<FrontOptions, 'registry'>, registry: GroupRegistry): Promise<HttpFront> {
  const front = createHttpFront({ registry, ...opts });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  return front;
}

function stopFront(front: HttpFront): void {
  front.closeAllConnections();
  front.close();
}

/** A raw client connection that records what it reads and when it closed. */
interface Raw {
  socket: Socket;
  data(): string;
  closed: Promise<number>;
  isClosed(): boolean;
}

async function raw(port: number, send?: string): Promise<Raw> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  socket.on('data', (d) => (text += d.toString()));
  socket.on('error', () => {});
  const t0 = Date.now();
  const r: Raw = {
    socket,
    data: () => text,
    closed: new Promise((resolve) =>
      socket.on('close', () => {
        closed = true;
        resolve(Date.now() - t0);
      }),
    ),
    isClosed: () => closed,
  };
  await once(socket, 'connect');
  if (send !== undefined) socket.write(send);
  return r;
}

const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

describe('connection cap', () => {
  test('at the cap, connections that never sent a whole request go first (oldest first), then the idlest keep-alive', async () => {
    const { registry } = registryWithHangs();
    const front = await startFront(
      { maxConnections: 3, reserveConnections: 1, keepAliveTimeoutMs: 30_000 },
      registry,
    );
    const port = (front.address() as AddressInfo).port;
    const open = (n: number) => waitFor(`${n} connections`, async () => front.guard.sockets.size === n, 5000);
    try {
      const a = await raw(port, GET('/g/a'));
      await waitFor('the answer to a', async () => a.data().includes('v:a'), 5000);
      const b = await raw(port); // silent
      await open(2);
      const c = await raw(port, 'GET /g/c HTTP/1.1\r\nX-Slow: '); // a head that never ends
      await open(3);
      const d = await raw(port);
      await b.closed;
      assert.ok(!a.isClosed() && !c.isClosed(), 'the oldest connection that never sent a request went first');
      const e = await raw(port);
      await c.closed;
      assert.ok(!a.isClosed(), 'the established keep-alive client stays while never-served ones remain');
      // d and e become established (each completes a request), later than a did.
      await sleep(300); // the guard's clock is coarse (250 ms)
      d.socket.write(GET('/g/d'));
      e.socket.write(GET('/g/e'));
      await waitFor(
        'd and e answered',
        async () => d.data().includes('v:d') && e.data().includes('v:e'),
        5000,
      );
      const f = await raw(port, GET('/g/f'));
      await a.closed;
      assert.ok(!d.isClosed() && !e.isClosed(), 'the idlest keep-alive client went, not the recent ones');
      await waitFor('f answered', async () => f.data().includes('v:f'), 5000);
      assert.equal(front.counters.connectionsShed, 3);
      assert.equal(front.counters.connectionsRefused, 0);
      for (const s of [d, e, f]) s.socket.destroy();
    } finally {
      stopFront(front);
    }
  });

  test('at the cap, a response the client does not read, or a body it stopped sending, makes room after 1 s', async () => {
    const { registry } = registryWithHangs();
    const front = await startFront({ maxConnections: 2, reserveConnections: 1 }, registry);
    const port = (front.address() as AddressInfo).port;
    try {
      const reader = await raw(port, GET('/g/big'));
      reader.socket.pause(); // never reads: its 24 MiB stay queued
      const trickler = await raw(
        port,
        'PUT /g/t HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789',
      );
      await waitFor('both held', async () => front.guard.sockets.size === 2, 5000);
      // Neither waits for a value: each waits on its client. Once stalled a second, each makes room.
      await sleep(1300);
      const first = await raw(port, GET('/g/one'));
      await waitFor('the first newcomer answered', async () => first.data().includes('v:one'), 5000);
      const second = await raw(port, GET('/g/two'));
      await waitFor('the second newcomer answered', async () => second.data().includes('v:two'), 5000);
      // Both stalled ones went, before the idle keep-alive newcomer (the reader sees it once it reads).
      reader.socket.resume();
      await waitFor(
        'both stalled connections closed',
        async () => reader.isClosed() && trickler.isClosed(),
        5000,
      );
      assert.ok(!first.isClosed());
      assert.equal(front.counters.connectionsShed, 2);
      assert.equal(front.counters.connectionsRefused, 0);
      for (const r of [first, second]) r.socket.destroy();
    } finally {
      stopFront(front);
    }
  });

  test('a response the client does not read is closed after the request timeout, below the cap too', async () => {
    const { registry, release } = registryWithHangs();
    const front = await startFront({ headersTimeoutMs: 500, requestTimeoutMs: 1000 }, registry);
    const port = (front.address() as AddressInfo).port;
    try {
      const reader = await raw(port, GET('/g/big'));
      reader.socket.pause();
      await waitFor('closed by the server', async () => front.counters.connectionsStalled === 1, 5000);
      reader.socket.resume(); // a paused socket does not see its close
      const after = await reader.closed;
      assert.ok(after >= 1000, `closed after ${after} ms: not before the timeout`);
      assert.equal(front.counters.connectionsStalled, 1);
      // A slow load is not a stall: the client waits for the server, not the other way round.
      const waiting = await raw(port, GET('/g/hang-x'));
      await sleep(2000);
      assert.ok(!waiting.isClosed());
      release();
      await waitFor('the slow value', async () => waiting.data().includes('v:hang-x'), 5000);
      assert.equal(front.counters.connectionsStalled, 1, 'still only the reader');
      waiting.socket.destroy();
    } finally {
      release();
      stopFront(front);
    }
  });

  test('when every connection is busy, the reserve answers /healthz and nothing else, one request per connection', async () => {
    const { registry, release } = registryWithHangs();
    const front = await startFront({ maxConnections: 2, reserveConnections: 1 }, registry);
    const port = (front.address() as AddressInfo).port;
    try {
      const busy = [await raw(port, GET('/g/hang-1')), await raw(port, GET('/g/hang-2'))];
      await waitFor('two loads in flight', async () => (registry.get('g') as Group).stats.loads === 2, 5000);
      const health = await raw(port, GET('/healthz'));
      await health.closed;
      assert.match(health.data(), /^HTTP\/1.1 200 /);
      assert.match(health.data(), /connection: close/i);
      const value = await raw(port, GET('/g/k'));
      await value.closed;
      assert.match(value.data(), /^HTTP\/1.1 503 /);
      assert.match(value.data(), /connection limit reached/);
      assert.equal(front.counters.connectionsReserved, 2);
      release();
      for (const [i, b] of busy.entries()) {
        await waitFor(`busy ${i} answered`, async () => b.data().includes(`v:hang-${i + 1}`), 5000);
        b.socket.destroy();
      }
    } finally {
      stopFront(front);
    }
  });

  test('a head that arrives too slowly (or never) is answered 408 and closed after headersTimeout', async () => {
    const { registry } = registryWithHangs();
    const front = await startFront({ headersTimeoutMs: 600 }, registry);
    const port = (front.address() as AddressInfo).port;
    try {
      const silent = await raw(port);
      const trickle = await raw(port, 'GET /g/x HTTP/1.1\r\nX-Slow: ');
      const timer = setInterval(() => trickle.isClosed() || trickle.socket.write('a'), 100);
      const [ms1, ms2] = await Promise.all([silent.closed, trickle.closed]);
      clearInterval(timer);
      for (const [ms, r] of [
        [ms1, silent],
        [ms2, trickle],
      ] as const) {
        assert.ok(ms >= 500 && ms < 5000, `closed after ${ms} ms`);
        assert.match(r.data(), /^HTTP\/1.1 408 /);
      }
      // A prompt client is unaffected.
      const ok = await raw(port, GET('/g/y'));
      await waitFor('y answered', async () => ok.data().includes('v:y'), 5000);
      ok.socket.destroy();
    } finally {
      stopFront(front);
    }
  });

  test('request heads are limited to what the longest key needs', async () => {
    const registry = new GroupRegistry();
    new Group({
      name: 'small',
      cacheBytes: 1 << 20,
      registry,
      maxKeyBytes: 1000,
      getter: async (k) => `v:${k}`,
    });
    const front = await startFront({}, registry);
    const port = (front.address() as AddressInfo).port;
    try {
      // A 1 000-byte key of 3-byte characters, percent-encoded, fits; a head of twice the limit does not.
      const key = encodeURIComponent('€'.repeat(333));
      const ok = await raw(port, GET(`/small/${key}`, 'Connection: close\r\n'));
      await ok.closed;
      assert.match(ok.data(), /^HTTP\/1.1 200 /);
      const big = await raw(port, GET('/small/k', `X-Pad: ${'a'.repeat(2 * headerBytesFor(1000))}\r\n`));
      await big.closed;
      assert.match(big.data(), /^HTTP\/1.1 431 /);
    } finally {
      stopFront(front);
    }
  });

  test('the default cap follows the fd limit', () => {
    assert.equal(defaultMaxConnections(1024), 384);
    assert.equal(defaultMaxConnections(256), 64);
    assert.equal(defaultMaxConnections(1_048_576), 1024);
  });
});

/** Resident set size of `pid`, bytes (Linux). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]) * 1024;
}

test('a flood of slow partial heads: the node keeps serving keep-alive clients and /healthz, memory stays bounded', async () => {
  const ports = await nodePorts();
  const cap = 40;
  const node = startCli(ports, {
    GOSSIPCACHE_ORIGIN: 'demo',
    GOSSIPCACHE_HTTP_MAX_CONNECTIONS: String(cap),
    GOSSIPCACHE_HTTP_HEADERS_TIMEOUT: '3s',
    GOSSIPCACHE_HTTP_KEEPALIVE_TIMEOUT: '30s',
    LOG_LEVEL: 'warn',
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const attackers: Socket[] = [];
  try {
    await waitHealthy(node);
    const pid = node.child.pid as number;
    const get = (path: string, a: Agent | false = agent) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request(`${node.http}${path}`, { agent: a }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path} timed out`)));
        req.on('error', reject);
        req.end();
      });
    assert.equal((await get('/default/warm')).text, 'Value of warm');
    const rssBefore = rssOf(pid);

    // A well-behaved keep-alive client keeps asking throughout.
    let stop = false;
    const failures: string[] = [];
    let served = 0;
    const client = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const r = await get(`/default/k${i}`);
          if (r.status !== 200 || r.text !== `Value of k${i}`) failures.push(`${r.status} ${r.text}`);
          else served++;
        } catch (err) {
          failures.push(String(err));
        }
        await sleep(20);
      }
    })();

    // 400 connections, each sending a 150 KiB partial head and then nothing: 60 MiB if all were held.
    const head = `GET /default/x HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(150 * 1024)}`;
    let rssPeak = 0;
    for (let wave = 0; wave < 8; wave++) {
      const batch = await Promise.all(
        Array.from({ length: 50 }, () => raw(Number(new URL(node.http).port), head).then((r) => r.socket)),
      );
      attackers.push(...batch);
      rssPeak = Math.max(rssPeak, rssOf(pid));
      // Health checks on fresh connections get through while the flood goes on.
      const h = await get('/healthz', false);
      assert.equal(h.status, 200, `healthz during wave ${wave}`);
    }
    await sleep(500);
    rssPeak = Math.max(rssPeak, rssOf(pid));
    const stillOpen = attackers.filter((s) => !s.destroyed && !s.closed).length;
    stop = true;
    await client;
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`# RSS ${mib(rssBefore)} -> peak ${mib(rssPeak)} MiB; ${stillOpen} slow senders still open`);

    assert.deepEqual(failures, [], 'the keep-alive client never failed');
    assert.ok(served > 5, `the keep-alive client was served throughout (${served} answers)`);
    assert.ok(stillOpen <= cap, `${stillOpen} attacker connections still open, cap ${cap}`);
    const metrics = await (await fetch(`${node.http}/metrics`)).text();
    const shed = Number(
      /gossipcache_http_connections_limited_total\{action="shed"\} (\d+)/.exec(metrics)?.[1],
    );
    assert.ok(shed >= 400 - cap, `shed ${shed}`);
    const growth = rssPeak - rssBefore;
    assert.ok(
      growth < 40 * 2 ** 20,
      `RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB (60 MiB of heads were sent)`,
    );
    // The slow senders that were not shed are closed by the headers timeout.
    await waitFor(
      'attackers closed by the headers timeout',
      async () => attackers.every((s) => s.destroyed || s.closed),
      15_000,
    );
    assert.equal((await get('/default/after')).text, 'Value of after');
  } finally {
    for (const s of attackers) s.destroy();
    agent.destroy();
    await stopCli(node);
  }
});

test('under a low fd limit, hundreds of idle connections leave fds for gRPC, the origin and /healthz', async () => {
  // `ulimit -n` in sh sets the hard limit too, so Node cannot raise it: 320 fds, default cap 64.
  const ports = await nodePorts();
  const origin = await countingOrigin();
  const node = startCli(
    ports,
    { GOSSIPCACHE_ORIGIN: origin.url, GOSSIPCACHE_HTTP_HEADERS_TIMEOUT: '30s', LOG_LEVEL: 'warn' },
    { fdLimit: 320 },
  );
  const http = node.http;
  const idle: Socket[] = [];
  const health = new HealthClient(`127.0.0.1:${ports.grpc}`, insecure);
  try {
    await waitHealthy(node);
    for (let wave = 0; wave < 10; wave++) {
      idle.push(
        ...(await Promise.all(Array.from({ length: 50 }, () => raw(ports.http).then((r) => r.socket)))),
      );
    }
    await sleep(300);
    const open = idle.filter((s) => !s.destroyed).length;
    // Without the cap all ~300 free fds were held here, and the checks below failed with EMFILE.
    assert.ok(open <= 64, `${open} idle connections held, cap 64`);
    const check = await unary<{ status: string }>(health, 'Check', { service: '' }, { deadlineMs: 5000 });
    assert.equal(check.status, 'SERVING', 'the gRPC port still accepts and answers');
    assert.equal((await fetch(`${http}/healthz`)).status, 200);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${http}/default/fd-${i}`);
      assert.equal(await r.text(), `value:fd-${i}`, 'misses still open origin connections');
    }
    assert.doesNotMatch(node.output(), /EMFILE/);
  } finally {
    health.close();
    for (const s of idle) s.destroy();
    await stopCli(node);
    await origin.close();
  }
});
