// Hostile input at the HTTP front of a live node process over raw sockets: random bytes, mutated
// requests (bit flips, insertions, deletions, splices, header injections, pipelining), random paths
// and percent-escapes. Afterwards the process must still be alive and serve correct values; during
// the run, every 200 it gives must carry the value of the key its request line named. Plus random keys
// (and random bytes) through the front's path decoder. Bounded in count and time; the seed is printed.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { type BadKey, decodeKey } from '../../src/node/http.js';
import { nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { prng } from '../support/prng.js';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const CASES = 3000;

const FRAGMENTS = [
  '\r\n',
  '\n',
  '\r',
  '\0',
  ' ',
  '\t',
  ':',
  '%',
  '%00',
  '%ff',
  '%c3%28',
  '%2e%2e',
  '/..',
  '/./',
  '?',
  '#',
  '\\',
  '*',
  'Transfer-Encoding: chunked\r\n',
  'Content-Length: 5\r\n',
  'Content-Length: -1\r\n',
  'Content-Length: 99999999999999999999\r\n',
  'Connection: close\r\n',
  'Connection: keep-alive\r\n',
  'Expect: 100-continue\r\n',
  'Upgrade: websocket\r\nConnection: upgrade\r\n',
  'Host: \r\n',
  'GET /default/pipelined HTTP/1.1\r\nHost: x\r\n\r\n',
  '0\r\n\r\n',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/1.1',
];
const METHODS = [
  'GET',
  'HEAD',
  'DELETE',
  'POST',
  'PUT',
  'OPTIONS',
  'CONNECT',
  'TRACE',
  'PRI',
  'get',
  'G\0T',
  '',
];

function randomKeyPath(rnd: () => number): string {
  const n = Math.floor(rnd() * 12);
  let s = '';
  for (let i = 0; i < n; i++) {
    const r = rnd();
    if (r < 0.5) s += String.fromCharCode(33 + Math.floor(rnd() * 94));
    else if (r < 0.8)
      s += `%${Math.floor(rnd() * 256)
        .toString(16)
        .padStart(2, '0')}`;
    else s += FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)];
  }
  return s;
}

function validRequest(rnd: () => number): string {
  const method = rnd() < 0.8 ? 'GET' : METHODS[Math.floor(rnd() * METHODS.length)];
  const path =
    rnd() < 0.85
      ? `/default/${randomKeyPath(rnd)}`
      : ['/healthz', '/_stats', '/metrics', '/', '*', 'http://x/default/k'][Math.floor(rnd() * 6)];
  const headers = rnd() < 0.5 ? 'User-Agent: fuzz\r\nAccept: */*\r\n' : '';
  return `${method} ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;
}

/** One payload: a valid-looking request, a mutation of one, or random bytes. */
function payload(rnd: () => number): Buffer {
  const r = rnd();
  if (r < 0.1) {
    const b = Buffer.alloc(1 + Math.floor(rnd() * 300));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  }
  let b = Buffer.from(validRequest(rnd), 'latin1');
  if (r < 0.35) return b;
  const mutations = 1 + Math.floor(rnd() * 4);
  for (let m = 0; m < mutations; m++) {
    const at = Math.floor(rnd() * (b.length + 1));
    const kind = rnd();
    if (kind < 0.25) {
      if (b.length > 0) b[Math.min(at, b.length - 1)] ^= 1 << Math.floor(rnd() * 8);
    } else if (kind < 0.45) {
      const frag = Buffer.from(FRAGMENTS[Math.floor(rnd() * FRAGMENTS.length)], 'latin1');
      b = Buffer.concat([b.subarray(0, at), frag, b.subarray(at)]);
    } else if (kind < 0.6) {
      b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(rnd() * 8)))]);
    } else if (kind < 0.7) {
      b = b.subarray(0, at); // truncated
    } else if (kind < 0.8) {
      b = Buffer.concat([b, Buffer.from(validRequest(rnd), 'latin1')]); // pipelined
    } else if (kind < 0.9) {
      const big = Buffer.from(`X-Big: ${'a'.repeat(Math.floor(rnd() * 300_000))}\r\n`, 'latin1');
      const eol = b.indexOf('\r\n');
      const p = eol === -1 ? at : eol + 2;
      b = Buffer.concat([b.subarray(0, p), big, b.subarray(p)]);
    } else {
      const junk = Buffer.alloc(1 + Math.floor(rnd() * 16));
      for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
      b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
    }
  }
  return b;
}

/** Sends `data`, half-closes, and returns what came back before the server closed (or 3 s passed). */
function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1');
    const timer = setTimeout(() => s.destroy(), 3000);
    s.on('connect', () => s.end(data));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** The key a well-formed single `GET /default/<key> HTTP/1.1` payload names, else undefined. */
function expectedKey(data: Buffer): string | undefined {
  const text = data.toString('latin1');
  const m = /^(GET|HEAD) \/default\/([!-~]*) HTTP\/1\.1\r\n/.exec(text);
  if (!m || text.indexOf('\r\n\r\n') !== text.length - 4) return undefined;
  const key = decodeKey(m[2]);
  return typeof key === 'string' ? key : undefined;
}

test(`fuzzing the HTTP front of a live node (${CASES} payloads, seed ${SEED})`, async () => {
  console.log(`# http fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
  const ports = await nodePorts();
  const node = startCli(ports, {
    GOSSIPCACHE_ORIGIN: 'demo',
    GOSSIPCACHE_HTTP_HEADERS_TIMEOUT: '2s',
    GOSSIPCACHE_HTTP_REQUEST_TIMEOUT: '2s',
    LOG_LEVEL: 'error',
  });
  try {
    await waitHealthy(node);
    const rnd = prng(SEED);
    const statuses = new Map<string, number>();
    const wrong: string[] = [];
    const deadline = Date.now() + 25_000;
    let sent = 0;
    // Keys a payload other than a plain GET/HEAD may have stored a value under (PUT stores its body):
    // their 200s carry that value, not `Value of <key>`. Recorded before the payload is sent.
    const tainted = new Set<string>();
    const taint = (data: Buffer) => {
      const text = data.toString('latin1');
      if (/^(GET|HEAD) /.test(text) && !/P(UT|OST)/i.test(text)) return;
      for (const m of text.matchAll(/\/default\/([!-~]*)/g)) {
        const k = decodeKey(m[1]);
        if (typeof k === 'string') tainted.add(k);
      }
    };
    let checked = 0;
    const worker = async () => {
      while (sent < CASES && Date.now() < deadline) {
        sent++;
        const data = payload(rnd);
        taint(data);
        const answer = (await exchange(ports.http, data)).toString('latin1');
        const status = /^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? (answer === '' ? 'closed' : 'other');
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const key = expectedKey(data);
        if (
          status === '200' &&
          key !== undefined &&
          data.subarray(0, 4).toString() === 'GET ' &&
          !tainted.has(key)
        ) {
          checked++;
          // Exactly the first response's body: a second answer (e.g. 400 for a bad body) may follow.
          const headEnd = answer.indexOf('\r\n\r\n') + 4;
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(answer.slice(0, headEnd))?.[1]);
          const body = answer.slice(headEnd, headEnd + length);
          const value = Buffer.from(body, 'latin1').toString('utf8');
          if (value !== `Value of ${key}`)
            wrong.push(`${JSON.stringify(data.toString('latin1'))} -> ${value}`);
        }
        if (status.startsWith('5'))
          wrong.push(`${status} for ${JSON.stringify(data.toString('latin1').slice(0, 200))}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    console.log(
      `# ${sent} payloads, ${checked} values checked; answers by status: ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    assert.deepEqual(wrong, [], 'no wrong value and no 5xx');
    assert.ok(sent >= 1000, `sent ${sent} payloads`);
    assert.ok(checked > 50, `${checked} values checked against their keys`);
    assert.ok((statuses.get('200') ?? 0) > 50, 'some payloads were valid requests');
    assert.ok((statuses.get('400') ?? 0) > 50, 'some were refused');
    assert.equal(node.child.exitCode, null, 'the node is alive');
    for (const key of ['after', 'ü x', 'a/b']) {
      const r = await fetch(`${node.http}/default/${encodeURIComponent(key)}`);
      assert.equal(await r.text(), `Value of ${key}`);
    }
    assert.equal((await fetch(`${node.http}/healthz`)).status, 200);
  } finally {
    await stopCli(node);
  }
  assert.doesNotMatch(node.output(), /uncaught|FATAL|"level":60/i);
});

test('the path decoder: every key round-trips through encodeURIComponent', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (key) => {
      assert.equal(decodeKey(encodeURIComponent(key)), key);
    }),
    { numRuns: 2000, seed: SEED },
  );
});

test('the path decoder: percent-encoded bytes decode to exactly those bytes, or are refused when not UTF-8', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 24 }), fc.boolean(), (bytes, upper) => {
      let path = '';
      for (const b of bytes) {
        const hex = b.toString(16).padStart(2, '0');
        path += `%${upper ? hex.toUpperCase() : hex}`;
      }
      const decoded = decodeKey(path);
      const valid = Buffer.from(Buffer.from(bytes).toString('utf8'), 'utf8').equals(Buffer.from(bytes));
      if (valid) assert.ok(Buffer.from(decoded as string, 'utf8').equals(Buffer.from(bytes)));
      else assert.match((decoded as BadKey).error, /not valid UTF-8/);
    }),
    { numRuns: 5000, seed: SEED },
  );
});

test('the path decoder: arbitrary text never throws; refusals are malformed escapes or bad UTF-8', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (raw) => {
      const decoded = decodeKey(raw);
      if (typeof decoded !== 'string')
        assert.match(decoded.error, /malformed percent-encoding|not valid UTF-8/);
    }),
    { numRuns: 5000, seed: SEED },
  );
});
