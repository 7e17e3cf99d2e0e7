// The HTTP origin loader against origins that see what we really send (raw request lines) and that
// misbehave on the wire: dot-segment keys, a burst of distinct misses, bodies cut short.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  type AddressInfo,
  connect as createConnectionTo,
  createServer,
  type Server,
  type Socket,
} from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type GetterValue, Group, GroupRegistry } from '../../src/group.js';
import { createHttpFront } from '../../src/node/http.js';
import { httpOrigin, OriginError } from '../../src/node/origin.js';
import { isDotSegment, parseOriginTemplate } from '../../src/node/origin-url.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * A raw-TCP HTTP/1.1 origin: records each request line as received and answers per `answer`, which
 * returns the bytes to write and whether to close the socket after them (else keep-alive).
 */
interface RawOrigin {
  port: number;
  lines: string[];
  /** Sockets open now, and the most ever open at once. */
  open: number;
  maxOpen: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Answers written so far. */
  answered: number;
  /** `reset`: close with a TCP RST after the bytes (else FIN when `close`). */
  answer: (target: string) => { bytes: string | Buffer; close?: boolean; reset?: boolean; delayMs?: number };
  server: Server;
}

async function rawOrigin(answer: RawOrigin['answer']): Promise<RawOrigin> {
  const o: RawOrigin = {
    port: 0,
    lines: [],
    open: 0,
    maxOpen: 0,
    accepted: 0,
    answered: 0,
    answer,
    server: createServer(),
  };
  const sockets = new Set<Socket>();
  o.server.on('connection', (socket) => {
    sockets.add(socket);
    o.accepted++;
    o.open++;
    o.maxOpen = Math.max(o.maxOpen, o.open);
    socket.on('close', () => {
      sockets.delete(socket);
      o.open--;
    });
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end !== -1; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const line = head.slice(0, head.indexOf('\r\n'));
        o.lines.push(line);
        const a = o.answer(line.split(' ')[1]);
        const send = () => {
          if (socket.destroyed) return;
          o.answered++;
          socket.write(a.bytes);
          if (a.reset) setTimeout(() => socket.resetAndDestroy(), 10);
          else if (a.close) socket.end();
        };
        if (a.delayMs) setTimeout(send, a.delayMs);
        else send();
      }
    });
  });
  o.server.listen(0, '127.0.0.1');
  await once(o.server, 'listening');
  o.port = (o.server.address() as AddressInfo).port;
  const close = o.server.close.bind(o.server);
  o.server.close = (cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  return o;
}

/** A complete keep-alive 200 with Content-Length whose body is `value:<decoded key>`. */
function echo(target: string): { bytes: Buffer } {
  const key = decodeURIComponent(target.slice(target.lastIndexOf('/') + 1).replace(/^.*=/, ''));
  const body = Buffer.from(`value:${key}`);
  return {
    bytes: Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]),
  };
}

const ctx = () => ({ signal: new AbortController().signal });
const text = (v: unknown) => Buffer.from((v as { value?: Uint8Array }).value ?? (v as Uint8Array)).toString();

describe('keys stay in their {key} slot', () => {
  let o: RawOrigin;
  before(async () => {
    o = await rawOrigin(echo);
  });
  after(() => o.server.close());

  test('dot-segment keys are refused before any request; other keys arrive verbatim, encoded', async () => {
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      o.lines.length = 0;
      for (const key of ['.', '..']) {
        await assert.rejects(origin.load(key, ctx()), (err: Error) => {
          assert.equal(err.name, 'InvalidKeyError', key);
          assert.match(err.message, /path segment/);
          return true;
        });
      }
      assert.deepEqual(o.lines, [], 'the origin saw no request for a dot-segment key');
      // Keys that look like paths, or like encoded dots, are one segment of the key's own.
      const keys = ['...', '.a', 'a/../..', '../x', '%2e', '%2E%2E', './', 'a?b#c', 'ü/..', ' '];
      for (const key of keys) {
        assert.equal(text(await origin.load(key, ctx())), `value:${key}`, key);
      }
      assert.deepEqual(
        o.lines,
        keys.map((k) => `GET /items/${encodeURIComponent(k)} HTTP/1.1`),
      );
      assert.equal(o.lines[2], 'GET /items/a%2F..%2F.. HTTP/1.1');
    } finally {
      origin.close();
    }
  });

  test('in the query, or sharing its segment with fixed text, a dot key is an ordinary key', async () => {
    const q = httpOrigin(`http://127.0.0.1:${o.port}/get?id={key}`, { timeoutMs: 2000, maxBytes: 1000 });
    const part = httpOrigin(`http://127.0.0.1:${o.port}/items/v-{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      o.lines.length = 0;
      assert.equal(text(await q.load('..', ctx())), 'value:..');
      await part.load('..', ctx());
      assert.deepEqual(o.lines, ['GET /get?id=.. HTTP/1.1', 'GET /items/v-.. HTTP/1.1']);
    } finally {
      q.close();
      part.close();
    }
  });

  test('a template whose fixed parts make the slot a dot segment refuses the completing key', async () => {
    const t = parseOriginTemplate('http://h/items/%2E{key}/x');
    assert.equal(t.before, '/items/%2E');
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/%2E{key}/x`, {
      timeoutMs: 2000,
      maxBytes: 1000,
    });
    try {
      await assert.rejects(origin.load('.', ctx()), { name: 'InvalidKeyError' });
      await origin.load('a', ctx());
      assert.equal(o.lines.at(-1), 'GET /items/%2Ea/x HTTP/1.1');
    } finally {
      origin.close();
    }
    for (const s of ['.', '..', '%2e', '%2E%2e', '.%2E', '%2e.']) assert.ok(isDotSegment(s), s);
    for (const s of ['...', '%2e%2e%2e', '', 'a.', '%2f']) assert.ok(!isDotSegment(s), s);
  });

  test('the template is parsed once: userinfo becomes Basic auth and is hidden from the description', () => {
    const t = parseOriginTemplate('https://us%20er:p%40ss@backend:8443/a/../items/{key}?v=1');
    assert.equal(t.origin, 'https://backend:8443');
    assert.equal(t.before, '/items/');
    assert.equal(t.after, '?v=1');
    assert.equal(t.authorization, `Basic ${Buffer.from('us er:p@ss').toString('base64')}`);
    assert.equal(t.description, 'https://backend:8443/items/{key}?v=1');
    assert.throws(() => parseOriginTemplate('http://h/items/{key}/..'), /once, in the path or the query/);
  });

  test('through the front: GET /g/.. and /g/%2E%2E get a 400, and nothing is cached or loaded', async () => {
    const registry = new GroupRegistry();
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    new Group({ name: 'g', cacheBytes: 1 << 20, registry, getter: origin.load });
    const front = createHttpFront({ registry });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    const port = (front.address() as AddressInfo).port;
    try {
      o.lines.length = 0;
      // fetch() would resolve the dot segments itself: send the request lines raw.
      for (const target of ['/g/..', '/g/%2E%2E', '/g/.', '/g/%2e']) {
        const answer = await rawRequest(
          port,
          `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        );
        assert.match(answer, /^HTTP\/1.1 400 /, target);
        assert.match(answer, /path segment/, target);
      }
      assert.deepEqual(o.lines, []);
      const ok = await fetch(`http://127.0.0.1:${port}/g/...`);
      assert.equal(await ok.text(), 'value:...');
    } finally {
      front.closeAllConnections();
      front.close();
      origin.close();
    }
  });
});

describe('origin connections are bounded', () => {
  test('1 000 concurrent distinct misses use at most `connections` sockets and all get their value', async () => {
    const o = await rawOrigin((target) => ({ ...echo(target), delayMs: 2 }));
    const registry = new GroupRegistry();
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, {
      timeoutMs: 20_000,
      maxBytes: 1000,
      connections: 8,
    });
    const g = new Group({ name: 'fan', cacheBytes: 1 << 22, registry, getter: origin.load });
    try {
      const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
      const values = await Promise.all(keys.map((k) => g.get(k)));
      for (const [i, v] of values.entries()) assert.equal(Buffer.from(v).toString(), `value:k${i}`);
      assert.equal(o.lines.length, 1000, 'one origin request per key');
      assert.ok(o.maxOpen <= 8, `at most 8 origin connections at once, saw ${o.maxOpen}`);
      assert.ok(o.maxOpen >= 2, `the pool did use several connections (${o.maxOpen})`);
    } finally {
      g.close();
      origin.close();
      o.server.close();
    }
  });

  test('a load waits for a busy connection instead of opening another; its caller can give up meanwhile', async () => {
    const o = await rawOrigin((target) => ({ ...echo(target), delayMs: target.endsWith('slow') ? 1000 : 0 }));
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, {
      timeoutMs: 10_000,
      maxBytes: 1000,
      connections: 1,
    });
    try {
      const first = origin.load('slow', ctx());
      const ac = new AbortController();
      const queued = origin.load('queued', { signal: ac.signal });
      await waitFor('the slow request at the origin', async () => o.lines.length === 1, 5000);
      await sleep(200);
      assert.equal(o.lines.length, 1, 'the second load waits in the queue');
      assert.equal(o.maxOpen, 1, 'it did not open a second connection');
      let firstDone = false;
      first.finally(() => {
        firstDone = true;
      });
      ac.abort(new Error('caller left'));
      await assert.rejects(queued, /caller left/);
      assert.ok(!firstDone, 'the queued load settled at once, not when the connection freed up');
      assert.equal(text(await first), 'value:slow');
      assert.equal(text(await origin.load('later', ctx())), 'value:later');
      assert.deepEqual(
        o.lines,
        ['GET /items/slow HTTP/1.1', 'GET /items/later HTTP/1.1'],
        'the abandoned load was never sent',
      );
    } finally {
      origin.close();
      o.server.close();
    }
  });

  test('the timeout message names the queue when loads are waiting for a connection', async () => {
    const o = await rawOrigin((target) => ({ ...echo(target), delayMs: 1500 }));
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, {
      timeoutMs: 300,
      maxBytes: 1000,
      connections: 1,
    });
    try {
      const loads = ['a', 'b', 'c'].map((k) => origin.load(k, ctx()));
      const errors = await Promise.all(
        loads.map((p) =>
          p.then(
            () => null,
            (e: Error) => e.message,
          ),
        ),
      );
      assert.ok(
        errors.every((m) => m !== null && /did not answer within 300ms/.test(m)),
        String(errors),
      );
      assert.ok(
        errors.some((m) => /loads waiting for one of its 1 connections/.test(m as string)),
        String(errors),
      );
      // All three timed out on time: none waited for the origin's first answer (due at 1 500 ms).
      assert.equal(o.answered, 0, 'the queued loads did not wait for the busy connection');
    } finally {
      origin.close();
      o.server.close();
    }
  });
});

describe('loads whose callers give up keep the origin connections', () => {
  test('timed-out loads: the sent ones finish in the background, the queued ones are dropped; no new connections', async () => {
    const o = await rawOrigin((target) => ({ ...echo(target), delayMs: 150 }));
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, {
      timeoutMs: 400,
      maxBytes: 1000,
      connections: 2,
    });
    try {
      // 2 connections, 150 ms per answer: loads 0-5 are sent within the 400 ms every load waits; loads 4
      // and 5 (sent at ~300 ms) time out before their answer, the 14 still queued time out unsent.
      const keys = Array.from({ length: 20 }, (_, i) => `t${i}`);
      const results = await Promise.all(
        keys.map((k) =>
          origin.load(k, ctx()).then(
            (v) => text(v),
            (e: Error) => e,
          ),
        ),
      );
      const loaded = results.filter((r) => typeof r === 'string');
      const failed = results.filter((r) => r instanceof Error) as Error[];
      assert.ok(
        loaded.length >= 2 && failed.length >= 10,
        `loaded ${loaded.length}, failed ${failed.length}`,
      );
      for (const [i, r] of results.entries()) if (typeof r === 'string') assert.equal(r, `value:t${i}`);
      for (const e of failed) assert.match(e.message, /did not answer within 400ms/);
      assert.ok(o.accepted <= 2, `at most 2 connections opened, saw ${o.accepted}`);
      // The requests sent before their callers left are answered and read on their connection.
      await waitFor('the sent requests answered', async () => o.answered === o.lines.length, 5000);
      assert.ok(o.lines.length <= 8, `the dropped loads were never sent (${o.lines.length} requests)`);
      assert.equal(text(await origin.load('after', ctx())), 'value:after');
      assert.ok(o.accepted <= 2, `at most 2 connections ever opened, saw ${o.accepted}`);
      assert.equal(o.open, o.accepted, 'none of them was closed');
    } finally {
      origin.close();
      o.server.close();
    }
  });

  test('200 loads, half abandoned by their callers at random times: correct values, at most `connections` sockets', async () => {
    const o = await rawOrigin((target) => ({ ...echo(target), delayMs: 20 }));
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, {
      timeoutMs: 10_000,
      maxBytes: 1000,
      connections: 4,
    });
    try {
      const loads = Array.from({ length: 200 }, (_, i) => {
        const ac = new AbortController();
        if (i % 2 === 1) setTimeout(() => ac.abort(new Error(`left ${i}`)), (i * 37) % 600);
        return origin.load(`r${i}`, { signal: ac.signal }).then(
          (v) => text(v),
          (e: Error) => e.message,
        );
      });
      const results = await Promise.all(loads);
      for (const [i, r] of results.entries()) {
        if (i % 2 === 0) assert.equal(r, `value:r${i}`);
        else assert.ok(r === `value:r${i}` || r === `left ${i}`, r);
      }
      assert.ok(
        results.some((r, i) => r === `left ${i}`),
        'some callers left before their value came',
      );
      assert.ok(o.accepted <= 4, `at most 4 connections opened, saw ${o.accepted}`);
      await waitFor('the sent requests answered', async () => o.answered === o.lines.length, 5000);
      assert.ok(o.accepted <= 4, `at most 4 connections ever opened, saw ${o.accepted}`);
      assert.equal(o.open, o.accepted, 'none of them was closed');
    } finally {
      origin.close();
      o.server.close();
    }
  });

  test('a body cut short (FIN or RST) or a connection closed before the answer is requested once per load', async () => {
    const o = await rawOrigin((target) => {
      if (target === '/items/fin')
        return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123', close: true };
      if (target === '/items/rst')
        return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123', reset: true };
      if (target === '/items/none') return { bytes: '', close: true };
      return echo(target);
    });
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      for (const key of ['fin', 'rst', 'none']) {
        // On a kept-alive connection, as after any earlier load.
        assert.equal(text(await origin.load(`ok-${key}`, ctx())), `value:ok-${key}`);
        o.lines.length = 0;
        await assert.rejects(origin.load(key, ctx()), OriginError);
        assert.deepEqual(o.lines, [`GET /items/${key} HTTP/1.1`], `${key}: one request, no retry`);
      }
    } finally {
      origin.close();
      o.server.close();
    }
  });
});

describe('bodies cut short are never cached', () => {
  const bodies: Record<string, { bytes: string; close?: boolean }> = {
    // Declares 100 bytes, sends 10, closes.
    '/items/cl-cut': { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789', close: true },
    // One chunk, then the connection closes before the last (zero) chunk.
    '/items/chunked-cut': {
      bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
      close: true,
    },
    '/items/chunked-ok': {
      bytes:
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    },
    // No length, not chunked: the body ends when the origin closes; complete or not, we cannot tell.
    '/items/close-delimited': {
      bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\nCache-Control: max-age=60\r\n\r\nwhole-or-not',
      close: true,
    },
    '/items/http10': { bytes: 'HTTP/1.0 200 OK\r\n\r\nold-style', close: true },
  };
  let o: RawOrigin;
  before(async () => {
    o = await rawOrigin((target) => bodies[target] ?? echo(target));
  });
  after(() => o.server.close());

  test('a Content-Length or chunked body cut short fails the load; complete ones load', async () => {
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      await assert.rejects(origin.load('cl-cut', ctx()), (err: Error) => {
        assert.ok(err instanceof OriginError, String(err));
        return true;
      });
      await assert.rejects(origin.load('chunked-cut', ctx()), OriginError);
      const ok = (await origin.load('chunked-ok', ctx())) as { value: Uint8Array; ttlMs: number };
      assert.equal(Buffer.from(ok.value).toString(), 'hello');
      assert.equal(ok.ttlMs, 60_000);
    } finally {
      origin.close();
    }
  });

  test('a close-delimited body is returned with TTL 0 whatever its Cache-Control says', async () => {
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    try {
      const r = (await origin.load('close-delimited', ctx())) as GetterValue;
      assert.equal(Buffer.from(r.value).toString(), 'whole-or-not');
      assert.equal(r.ttlMs, 0);
      // Windows 0, not absent: a node's default stale windows must not keep it either.
      assert.equal(r.staleWhileRevalidateMs, 0);
      assert.equal(r.staleIfErrorMs, 0);
      const old = (await origin.load('http10', ctx())) as { value: Uint8Array; ttlMs: number };
      assert.equal(Buffer.from(old.value).toString(), 'old-style');
      assert.equal(old.ttlMs, 0);
    } finally {
      origin.close();
    }
  });

  test('through a group: cut bodies and close-delimited bodies are loaded again every time', async () => {
    const registry = new GroupRegistry();
    const origin = httpOrigin(`http://127.0.0.1:${o.port}/items/{key}`, { timeoutMs: 2000, maxBytes: 1000 });
    const g = new Group({ name: 'cut', cacheBytes: 1 << 20, registry, getter: origin.load });
    const count = (t: string) => o.lines.filter((l) => l === `GET ${t} HTTP/1.1`).length;
    o.lines.length = 0;
    try {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(g.get('cl-cut'));
        await assert.rejects(g.get('chunked-cut'));
        assert.equal(Buffer.from(await g.get('close-delimited')).toString(), 'whole-or-not');
        assert.equal(Buffer.from(await g.get('chunked-ok')).toString(), 'hello');
      }
      assert.equal(count('/items/cl-cut'), 2);
      assert.equal(count('/items/chunked-cut'), 2);
      assert.equal(count('/items/close-delimited'), 2, 'a close-delimited value is not cached');
      assert.equal(count('/items/chunked-ok'), 1, 'a complete chunked value is cached');
    } finally {
      g.close();
      origin.close();
    }
  });
});

/** Writes `request` to a fresh connection and returns everything read until the server closes. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = createConnectionTo(port);
    s.on('connect', () => s.end(request));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}
