// Fuzzing the memcached front. In-process: 1,000,000 random and truncated command streams through the
// parser, each parsed whole and again in random pieces with random pauses: the parser must never throw,
// must produce the same commands and errors however the stream is cut, and every command it hands over
// must be within the limits. Over sockets: a few hundred hostile streams against a live server, while a
// well-behaved client keeps getting correct answers.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Group, GroupRegistry } from '../../src/group.js';
import {
  MAX_KEY_BYTES,
  MemcachedParser,
  type ParserSink,
  type ValueBudget,
} from '../../src/node/memcached/parser.js';
import { createMemcachedFront } from '../../src/node/memcached/server.js';
import { RawConn } from '../support/memcached-client.js';
import { prng } from '../support/prng.js';
import { sleep } from '../support/wait.js';

/** Seeded, so a failure names a seed that reproduces it. `next()`: an unsigned 32-bit integer. */
function rng(seed: number) {
  const random = prng(seed);
  const next = () => Math.floor(random() * 2 ** 32);
  return { next, int: (n: number) => next() % n, pick: <T>(a: readonly T[]) => a[next() % a.length] };
}
type Rng = ReturnType<typeof rng>;

const WORDS = [
  'get',
  'gets',
  'set',
  'add',
  'replace',
  'append',
  'cas',
  'delete',
  'touch',
  'incr',
  'decr',
  'gat',
  'version',
  'stats',
  'verbosity',
  'flush_all',
  'quit',
  'GET',
  'noreply',
  '0',
  '-1',
  '1',
  '99999999999999',
  'x',
  '',
  ' ',
  '\t',
  'k/é',
  '\x00',
  '\xff',
];
const MAX_LINE = 200;
const MAX_VALUE = 64;

function key(r: Rng): string {
  const n = r.int(8) === 0 ? MAX_KEY_BYTES - 2 + r.int(5) : 1 + r.int(10);
  let k = '';
  for (let i = 0; i < n; i++) k += String.fromCharCode(r.int(6) === 0 ? r.int(256) : 97 + r.int(26));
  return k;
}

/** One fragment of a stream: usually a well-formed command, often a broken one, sometimes noise. */
function fragment(r: Rng): string {
  switch (r.int(10)) {
    case 0:
    case 1: {
      let s = r.pick(['get', 'gets']);
      const n = 1 + r.int(4);
      for (let i = 0; i < n; i++) s += ' ' + key(r);
      return s + r.pick(['\r\n', '\n', '\r\n']);
    }
    case 2:
    case 3: {
      const len = r.int(8) === 0 ? MAX_VALUE + r.int(4) : r.int(20);
      let data = '';
      for (let i = 0; i < len; i++) data += String.fromCharCode(r.int(256));
      const declared = r.int(6) === 0 ? len + r.int(3) - 1 : len;
      const cmd = r.pick(['set', 'add', 'replace', 'cas', 'append']);
      const cas = cmd === 'cas' ? ` ${r.int(1000)}` : '';
      return `${cmd} ${key(r)} ${r.int(5) === 0 ? 'x' : r.int(70000)} ${r.int(3) - 1} ${declared}${cas}${r.int(3) === 0 ? ' noreply' : ''}\r\n${data}\r\n`;
    }
    case 4:
      return `${r.pick(['delete', 'touch', 'incr'])} ${key(r)}${r.int(2) ? ' ' + r.int(100) : ''}${r.int(3) === 0 ? ' noreply' : ''}\r\n`;
    case 5:
      return r.pick([
        'version\r\n',
        'stats\r\n',
        'stats items\r\n',
        'verbosity 1\r\n',
        'flush_all\r\n',
        '\r\n',
        'quit\r\n',
      ]);
    case 6: {
      // Words in random order.
      let s = '';
      const n = 1 + r.int(7);
      for (let i = 0; i < n; i++) s += r.pick(WORDS) + (r.int(4) === 0 ? '' : ' ');
      return s + r.pick(['\r\n', '\n', '']);
    }
    case 7: {
      // Random bytes, sometimes long (lines over the limit).
      const n = r.int(3) === 0 ? MAX_LINE + r.int(50) : r.int(30);
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCharCode(r.int(5) === 0 ? 10 : r.int(256));
      return s;
    }
    default:
      return `get ${key(r)}\r\n`;
  }
}

function stream(r: Rng): Buffer {
  let s = '';
  const n = 1 + r.int(4);
  for (let i = 0; i < n; i++) s += fragment(r);
  const b = Buffer.from(s, 'latin1');
  // Truncated streams: a connection that dies mid-command.
  return r.int(4) === 0 ? b.subarray(0, r.int(b.length + 1)) : b;
}

class CountingBudget implements ValueBudget {
  used = 0;
  take(n: number) {
    this.used += n;
    return true;
  }
  give(n: number) {
    this.used -= n;
    assert.ok(this.used >= 0, 'budget given back twice');
  }
}

/** Parses `input` in the given pieces (pausing where `pauses` says) and returns what the sink saw. */
function parse(input: Buffer, cuts: number[], pauseEvery: number): string[] {
  const events: string[] = [];
  const budget = new CountingBudget();
  let count = 0;
  let closed = false;
  const sink: ParserSink = {
    command(p) {
      assert.ok(!closed, 'a command after a closing error');
      const keys = p.keys.slice(0, p.keyCount);
      for (let i = 0; i < keys.length; i++) {
        const bytes = p.line.subarray(p.keyStart[i], p.keyEnd[i]);
        assert.ok(bytes.length >= 1 && bytes.length <= MAX_KEY_BYTES, 'key length');
        assert.ok(!bytes.some((c) => c <= 32 || c === 127), 'key bytes');
        assert.equal(Buffer.from(keys[i], 'utf8').compare(bytes), 0);
      }
      assert.ok(p.value.length <= MAX_VALUE, 'value length');
      events.push(
        `${p.cmd}${p.more ? '+more' : ''}${p.batched ? '+batch' : ''}|${keys.join(',')}|${p.flags}|${p.exptime}|${p.noreply}|${p.arg}|${p.value.toString('hex')}`,
      );
      if (pauseEvery > 0 && ++count % pauseEvery === 0) p.paused = true;
    },
    protocolError(reply, close) {
      assert.ok(!closed, 'an error after a closing error');
      assert.doesNotMatch(reply, /[\r\n]/);
      events.push(`E ${reply}${close ? ' (close)' : ''}`);
      if (close) closed = true;
    },
  };
  const parser = new MemcachedParser(sink, { maxLineBytes: MAX_LINE, maxValueBytes: MAX_VALUE, budget });
  let from = 0;
  for (const at of [...cuts, input.length]) {
    parser.push(input.subarray(from, at));
    while (parser.paused && !closed) parser.resume();
    from = at;
  }
  parser.destroy();
  assert.equal(budget.used, 0, 'value budget returned');
  return events;
}

test('parser: 1,000,000 random and truncated streams, cut anywhere, give the same commands and errors', () => {
  const seed = Number(process.env.FUZZ_SEED ?? 0x5eed);
  const r = rng(seed);
  const N = 1_000_000;
  let commands = 0;
  let errors = 0;
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const input = stream(r);
    const whole = parse(input, [], 0);
    // Every 4th input also in 1-4 random pieces with pauses (the expensive part, still 250,000 streams).
    if ((i & 3) === 0) {
      const cuts: number[] = [];
      for (let c = r.int(4); c > 0; c--) cuts.push(r.int(input.length + 1));
      cuts.sort((a, b) => a - b);
      const pieces = parse(input, cuts, 1 + r.int(3));
      if (pieces.join('\n') !== whole.join('\n')) {
        assert.deepEqual(
          pieces,
          whole,
          `input #${i} (seed ${seed}) ${JSON.stringify(input.toString('latin1'))} cut at ${cuts}`,
        );
      }
    }
    for (const e of whole) e.startsWith('E ') ? errors++ : commands++;
  }
  // The generator reaches both sides: plenty of valid commands and plenty of errors.
  assert.ok(commands > N / 2 && errors > N / 10, `commands ${commands}, errors ${errors}`);
  console.log(`parser fuzz: ${N} streams, ${commands} commands, ${errors} errors in ${Date.now() - t0} ms`);
});

test('parser: a stream byte by byte equals the stream whole (every cut point)', () => {
  const r = rng(7);
  for (let i = 0; i < 2000; i++) {
    const input = stream(r);
    const cuts = Array.from({ length: input.length }, (_, j) => j);
    assert.deepEqual(parse(input, cuts, 0), parse(input, [], 0));
  }
});

test('server: 400 hostile streams over sockets; a good client keeps its answers; the server stays up', async () => {
  const registry = new GroupRegistry();
  const group = new Group({
    name: 'default',
    cacheBytes: 1 << 20,
    registry,
    getter: async (k) => `v:${k}`,
  });
  const server = createMemcachedFront({
    group,
    version: 'x',
    maxValueBytes: 1024,
    maxLineBytes: 1024,
    idleTimeoutMs: 2000,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const good = await RawConn.open(port);
  try {
    const r = rng(99);
    for (let round = 0; round < 40; round++) {
      // 10 hostile connections at a time, each sending a few streams and leaving (or not reading).
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = await RawConn.open(port);
          for (let j = 0; j < 3; j++) c.send(stream(r));
          if (r.int(2) === 0) c.sock.pause();
          await sleep(r.int(20));
          c.close();
        }),
      );
      const v = `v:good-${round}`;
      assert.equal(
        await good.ask(`get good-${round}\r\n`),
        `VALUE good-${round} 0 ${v.length}\r\n${v}\r\nEND\r\n`,
      );
    }
    // Closed connections go at once; one the server had stopped reading (backpressure) may only notice
    // when its next write fails or the idle timeout (2 s here) passes. The good client keeps talking
    // meanwhile, as a pooled client would, so the idle sweep has no reason to close it too.
    const deadline = Date.now() + 6000;
    while (server.counters.currConnections > 1 && Date.now() < deadline) {
      assert.equal(await good.ask('version\r\n'), 'VERSION x\r\n');
      await sleep(250);
    }
    assert.equal(server.counters.currConnections, 1, 'every hostile connection was cleaned up');
    assert.equal(await good.ask('version\r\n'), 'VERSION x\r\n');
  } finally {
    good.close();
    server.closeAllConnections();
    server.close();
  }
});
