// The memcached front in-process: a real Group (or a stub group with `set`) behind a real TCP server,
// spoken to over raw sockets so every byte of the protocol is checked.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NotFoundError } from '../../src/errors.js';
import type { GroupStats, ServedGroup } from '../../src/group.js';
import { Group, GroupRegistry } from '../../src/group.js';
import type { CacheStats, GroupServer } from '../../src/index.js';
import { parseConfig } from '../../src/node/config.js';
import {
  DEFAULT_RESERVE_CONNECTIONS,
  defaultGrpcMaxConnections,
  defaultMaxConnections,
  defaultMemcachedMaxConnections,
} from '../../src/node/connections.js';
import { Out } from '../../src/node/memcached/out.js';
import { createMemcachedFront } from '../../src/node/memcached/server.js';
import { casUnique, encodeItem, exptimeToTtlMs, flagsOf } from '../../src/node/memcached/values.js';
import { RawConn } from '../support/memcached-client.js';
import { sleep, waitFor } from '../support/wait.js';

const loads: string[] = [];
const registry = new GroupRegistry();
const group = new Group({
  name: 'default',
  cacheBytes: 8 << 20,
  registry,
  async getter(key) {
    loads.push(key);
    if (key.startsWith('missing')) throw new NotFoundError(`no ${key}`);
    if (key.startsWith('broken')) throw new Error('database\r\non fire');
    if (key.startsWith('slow')) await sleep(150);
    if (key.startsWith('big')) return Buffer.alloc(Number(key.slice(3)), 0x61);
    return `v:${key}`;
  },
});

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

const front = createMemcachedFront({ group, version: '1.2.3', maxValueBytes: 1 << 20 });
let port: number;
before(async () => {
  port = await listen(front);
});
after(() => {
  front.closeAllConnections();
  front.close();
});

describe('reads through a real group', () => {
  test('get: a miss loads, a hit is served from cache; flags 0, exact bytes', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask('get alpha\r\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    assert.equal(await c.ask('get alpha\r\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    assert.equal(loads.filter((k) => k === 'alpha').length, 1);
    // Bare \n line ends are accepted, as memcached does.
    assert.equal(await c.ask('get alpha\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    c.close();
  });

  test('keys are verbatim: slashes, UTF-8', async () => {
    const c = await RawConn.open(port);
    const key = 'a/b/ü/%20';
    const reply = await c.ask(Buffer.from(`get ${key}\r\n`));
    const bytes = Buffer.byteLength(`v:${key}`);
    assert.equal(
      Buffer.from(reply, 'latin1').toString('utf8'),
      `VALUE ${key} 0 ${bytes}\r\nv:${key}\r\nEND\r\n`,
    );
    assert.ok(loads.includes(key));
    c.close();
  });

  test('NotFound is a miss; a failed load is SERVER_ERROR on one line', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask('get missing-1\r\n'), 'END\r\n');
    assert.equal(await c.ask('get broken-1\r\n'), 'SERVER_ERROR Error: database on fire\r\n');
    // The connection is still usable.
    assert.equal(await c.ask('get alpha\r\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    c.close();
  });

  test('multi-get: values in key order, misses left out, loads in parallel', async () => {
    const c = await RawConn.open(port);
    const t0 = Date.now();
    const r = await c.ask('get slow-a missing-2 alpha slow-b slow-c\r\n');
    assert.equal(
      r,
      'VALUE slow-a 0 8\r\nv:slow-a\r\nVALUE alpha 0 7\r\nv:alpha\r\n' +
        'VALUE slow-b 0 8\r\nv:slow-b\r\nVALUE slow-c 0 8\r\nv:slow-c\r\nEND\r\n',
    );
    // Three 150 ms loads in parallel, not one after another (generous bound: a loaded box).
    assert.ok(Date.now() - t0 < 440, `took ${Date.now() - t0} ms`);
    // One failed key fails the command.
    assert.equal(await c.ask('get alpha broken-2\r\n'), 'SERVER_ERROR Error: database on fire\r\n');
    // All hits (a repeated key answers twice), and hits around a miss.
    const alpha = 'VALUE alpha 0 7\r\nv:alpha\r\n';
    const slowA = 'VALUE slow-a 0 8\r\nv:slow-a\r\n';
    assert.equal(await c.ask('get alpha slow-a alpha\r\n'), `${alpha}${slowA}${alpha}END\r\n`);
    assert.equal(
      await c.ask('gets alpha missing-5 slow-a\r\n').then((r) => r.replace(/ \d+\r\n/g, '\r\n')),
      `${alpha}${slowA}END\r\n`,
    );
    assert.equal(await c.ask('get alpha slow-a missing-6\r\n'), `${alpha}${slowA}END\r\n`);
    c.close();
  });

  test('gets: a cas unique derived from the value, the same on every ask', async () => {
    const c = await RawConn.open(port);
    const unique = createHash('sha256').update('v:alpha').digest().readBigUInt64BE(0).toString();
    const r = await c.ask('gets alpha missing-3\r\n');
    assert.equal(r, `VALUE alpha 0 7 ${unique}\r\nv:alpha\r\nEND\r\n`);
    assert.equal(await c.ask('gets alpha\r\n'), r);
    c.close();
  });

  test('a pipeline of sets is answered in order, in a few socket writes, not one per set', async () => {
    // Each set waits for the one before (read-your-writes), so each settles in a promise job of its own;
    // a reply written as each settled cost a socket write per set (~75 % of the node's time under a pipeline).
    // (A set that waits for an owner elsewhere settles on I/O: its reply is written when it comes.)
    let writes = 0;
    front.once('connection', (sock: Socket) => {
      const s = sock as Socket & Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
      for (const m of ['_write', '_writev'] as const) {
        const orig = s[m];
        s[m] = function (this: Socket, ...a: unknown[]) {
          writes++;
          return orig.apply(this, a);
        };
      }
    });
    const c = await RawConn.open(port);
    let req = '';
    for (let i = 0; i < 50; i++) req += `set pipe${i} 0 0 ${String(i).length}\r\n${i}\r\n`;
    const r = await c.ask(`${req}get pipe49\r\n`, /END\r\n$/);
    assert.equal(r, `${'STORED\r\n'.repeat(50)}VALUE pipe49 0 2\r\n49\r\nEND\r\n`);
    assert.equal(group.server.getCached('pipe7')?.toString(), '7');
    assert.ok(writes <= 5, `${writes} socket writes for 50 sets and a get`);
    c.close();
  });

  test('pipelined commands are answered in order, hits behind a slow miss included', async () => {
    const c = await RawConn.open(port);
    const r = await c.ask(
      'get slow-pipe\r\nget alpha\r\nbogus\r\nget missing-4\r\nversion\r\nget alpha slow-pipe\r\nget broken-3\r\nversion\r\n',
      /VERSION 1\.2\.3\r\n[\s\S]*VERSION 1\.2\.3\r\n$/,
    );
    assert.equal(
      r,
      'VALUE slow-pipe 0 11\r\nv:slow-pipe\r\nEND\r\n' +
        'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n' +
        'ERROR\r\n' +
        'END\r\n' +
        'VERSION 1.2.3\r\n' +
        'VALUE alpha 0 7\r\nv:alpha\r\nVALUE slow-pipe 0 11\r\nv:slow-pipe\r\nEND\r\n' +
        'SERVER_ERROR Error: database on fire\r\n' +
        'VERSION 1.2.3\r\n',
    );
    c.close();
  });

  test('a value larger than one socket write arrives whole', async () => {
    const c = await RawConn.open(port);
    const r = await c.ask('get big300000\r\n');
    assert.equal(r, `VALUE big300000 0 300000\r\n${'a'.repeat(300000)}\r\nEND\r\n`);
    c.close();
  });

  test('delete removes the key (the next get loads again)', async () => {
    const c = await RawConn.open(port);
    await c.ask('get del-me\r\n');
    assert.equal(await c.ask('delete del-me\r\n'), 'DELETED\r\n');
    assert.equal(await c.ask('delete del-me 0\r\n'), 'DELETED\r\n');
    // noreply: nothing comes back; the next command's reply is the next thing read.
    assert.equal(
      await c.ask('delete del-me noreply\r\nget del-me\r\n'),
      'VALUE del-me 0 8\r\nv:del-me\r\nEND\r\n',
    );
    assert.equal(loads.filter((k) => k === 'del-me').length, 2);
    c.close();
  });

  test('set/add/replace/touch store through group.set: visible to HTTP-style readers, flags kept', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask('set stored 0 0 2\r\nhi\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('get stored\r\n'), 'VALUE stored 0 2\r\nhi\r\nEND\r\n');
    // Flags 0: the group holds exactly the bytes sent (what HTTP and gRPC readers get).
    assert.equal((await group.get('stored')).toString(), 'hi');
    assert.equal(await c.ask('set stored 42 100 3\r\nabc\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('get stored\r\n'), 'VALUE stored 42 3\r\nabc\r\nEND\r\n');
    const held = await group.get('stored');
    assert.equal(flagsOf(held), 42);
    assert.equal(held.subarray(12).toString(), 'abc');
    assert.equal(await c.ask('add stored 0 0 1\r\nx\r\n'), 'NOT_STORED\r\n');
    assert.equal(await c.ask('add missing-add 0 0 1\r\nx\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('replace missing-rep 0 0 1\r\nx\r\n'), 'NOT_STORED\r\n');
    assert.equal(await c.ask('replace stored 0 0 1\r\ny\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('get stored\r\n'), 'VALUE stored 0 1\r\ny\r\nEND\r\n');
    assert.equal(await c.ask('touch stored 50\r\n'), 'TOUCHED\r\n');
    const stored = group.server.lookup('stored');
    assert.ok(stored >= 0);
    const ttl = group.server.ttlMs(stored) ?? 0;
    assert.ok(ttl > 40_000 && ttl <= 50_000, `ttl ${ttl}`);
    assert.equal(await c.ask('touch missing-touch 50\r\n'), 'NOT_FOUND\r\n');
    // Expired on arrival: the key is removed, the next get loads it from the getter again.
    assert.equal(await c.ask('set stored 0 -1 1\r\nz\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('get stored\r\n'), 'VALUE stored 0 8\r\nv:stored\r\nEND\r\n');
    // noreply: nothing comes back.
    assert.equal(await c.ask('set k 0 0 2 noreply\r\nhi\r\nversion\r\n'), 'VERSION 1.2.3\r\n');
    c.close();
  });

  test('version, verbosity, stats with memcached names, quit', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask('version\r\n'), 'VERSION 1.2.3\r\n');
    assert.equal(await c.ask('verbosity 1\r\n'), 'OK\r\n');
    const stats = await c.ask('stats\r\n');
    const m = new Map([...stats.matchAll(/^STAT (\S+) (.*)\r$/gm)].map((x) => [x[1], x[2]]));
    for (const k of [
      'cmd_get',
      'get_hits',
      'get_misses',
      'curr_items',
      'bytes',
      'evictions',
      'curr_connections',
    ]) {
      assert.match(m.get(k) ?? '', /^\d+$/, k);
    }
    assert.equal(Number(m.get('cmd_get')), group.stats.gets);
    assert.equal(Number(m.get('get_hits')), group.stats.cacheHits);
    assert.equal(m.get('limit_maxbytes'), String(8 << 20));
    assert.ok(Number(m.get('curr_connections')) >= 1);
    assert.equal(await c.ask('stats slabs\r\n'), 'ERROR\r\n');
    c.send('quit\r\n');
    await c.closedByServer();
  });

  test('commands not offered answer SERVER_ERROR not supported; unknown ones ERROR', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask('incr n 1\r\n'), 'SERVER_ERROR not supported\r\n');
    assert.equal(await c.ask('append k 0 0 1\r\nx\r\n'), 'SERVER_ERROR not supported\r\n');
    assert.equal(await c.ask('cas k 0 0 1 123\r\nx\r\n'), 'SERVER_ERROR not supported\r\n');
    assert.equal(await c.ask('flush_all\r\n'), 'SERVER_ERROR not supported\r\n');
    assert.equal(await c.ask('gat 10 alpha\r\n'), 'SERVER_ERROR not supported\r\n');
    assert.equal(await c.ask('GET alpha\r\n'), 'ERROR\r\n');
    assert.equal(await c.ask('\r\n'), 'ERROR\r\n');
    assert.equal(await c.ask('get\r\n'), 'ERROR\r\n');
    // The meta protocol's set: refused, and its data block is not run as commands (it deleted `alpha`).
    assert.equal(
      await c.ask('ms alpha 12 T0\r\ndelete alpha\r\nget alpha\r\n', /END\r\n$/),
      'CLIENT_ERROR meta commands are not supported\r\nVALUE alpha 0 7\r\nv:alpha\r\nEND\r\n',
    );
    assert.equal(await c.ask('mg alpha v\r\n'), 'ERROR\r\n');
    assert.equal(await c.ask('version\r\n'), 'VERSION 1.2.3\r\n');
    c.close();
  });
});

describe('protocol errors, as memcached answers them', () => {
  test('bad keys: too long, control characters, invalid UTF-8', async () => {
    const c = await RawConn.open(port);
    assert.equal(await c.ask(`get ${'k'.repeat(251)}\r\n`), 'CLIENT_ERROR bad command line format\r\n');
    assert.equal(
      await c.ask(`get ${'k'.repeat(250)}\r\n`),
      `VALUE ${'k'.repeat(250)} 0 252\r\nv:${'k'.repeat(250)}\r\nEND\r\n`,
    );
    assert.equal(await c.ask('get a\tb\r\n'), 'CLIENT_ERROR bad command line format\r\n');
    assert.equal(
      await c.ask(Buffer.from('get a\xffb\r\n', 'latin1')),
      'CLIENT_ERROR key is not valid UTF-8\r\n',
    );
    assert.equal(await c.ask(`delete ${'k'.repeat(251)}\r\n`), 'CLIENT_ERROR bad command line format\r\n');
    assert.equal(await c.ask('version\r\n'), 'VERSION 1.2.3\r\n');
    c.close();
  });

  test('storage commands: a bad line swallows its data block, an unreadable length closes', async () => {
    const c = await RawConn.open(port);
    // The data ("get alpha") must not run as a command.
    assert.equal(
      await c.ask(`set ${'k'.repeat(251)} 0 0 9\r\nget alpha\r\nversion\r\n`, /VERSION.*\r\n$/),
      'CLIENT_ERROR bad command line format\r\nVERSION 1.2.3\r\n',
    );
    assert.equal(
      await c.ask('set k x 0 9\r\nget alpha\r\nversion\r\n', /VERSION.*\r\n$/),
      'CLIENT_ERROR bad command line format\r\nVERSION 1.2.3\r\n',
    );
    assert.equal(
      await c.ask(
        `set k 0 0 ${(1 << 20) + 1}\r\n${'x'.repeat((1 << 20) + 1)}\r\nversion\r\n`,
        /VERSION.*\r\n$/,
      ),
      'SERVER_ERROR object too large for cache\r\nVERSION 1.2.3\r\n',
    );
    c.send('set k 0 0 nine\r\nget alpha\r\n');
    assert.equal(await c.until((t) => t.endsWith('\r\n')), 'CLIENT_ERROR bad command line format\r\n');
    await c.closedByServer();
  });

  test('a line over the limit closes the connection; others are unaffected', async () => {
    const good = await RawConn.open(port);
    for (const line of [
      'delete ' + 'k '.repeat(40_000),
      'gat 0 ' + 'k '.repeat(40_000),
      'get ' + ' '.repeat(70_000),
    ]) {
      const bad = await RawConn.open(port);
      bad.send(line);
      assert.equal(await bad.until((t) => t.endsWith('\r\n')), 'CLIENT_ERROR line too long\r\n');
      await bad.closedByServer();
    }
    assert.equal(await good.ask('get alpha\r\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    good.close();
  });

  test('a get line over the limit (a multi-get of thousands of keys) is answered whole, as memcached does', async () => {
    // memcslap's mget sends 20,000 keys in one line (~700 KB); libmemcached and pymemcache's get_many do the
    // same for whatever the caller asks. The line is taken in batches of the keys in each 64 KiB of it.
    const c = await RawConn.open(port);
    const keys = Array.from({ length: 15_000 }, (_, i) =>
      i % 1000 === 7 ? `missing-many-${i}` : i === 9_001 ? 'broken-many' : `many-${i}`,
    );
    // Sent in pieces that cut keys, as a socket may deliver it.
    const line = Buffer.from(`gets ${keys.join(' ')}\r\nget alpha\r\n`);
    for (let at = 0; at < line.length; at += 9_999) c.send(line.subarray(at, at + 9_999));
    const r = await c.until((t) => /VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n$/.test(t), 60_000);
    const ends = r.match(/^END\r\n/gm) ?? [];
    assert.equal(ends.length, 2, 'one END for the long get, one for the next');
    const got = [...r.matchAll(/^VALUE (\S+) 0 (\d+) \d+\r\n/gm)].map((m) => m[1]);
    assert.deepEqual(
      got,
      keys.filter((k) => !k.startsWith('missing') && !k.startsWith('broken')),
      'every value, in key order, the missing ones and the failed load left out',
    );
    assert.doesNotMatch(
      r,
      /ERROR/,
      'a failed load in a batch reads as a miss: no error line among the values',
    );
    assert.ok(r.includes('VALUE many-14999 0 12 '), 'the last key');
    // A bad key in a later batch: the values before it, the error, the rest of the line dropped.
    const bad = `get ${keys.slice(0, 10_000).join(' ')} ${'x'.repeat(300)} ${keys.slice(10_000).join(' ')}\r\nget alpha\r\n`;
    c.send(bad);
    const b = await c.until((t) => /VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n$/.test(t), 60_000);
    assert.match(b, /\r\nCLIENT_ERROR bad command line format\r\nVALUE alpha 0 7\r\n/);
    assert.doesNotMatch(b, /VALUE many-12000 /, 'nothing after the bad key');
    assert.equal((b.match(/^END\r\n/gm) ?? []).length, 1, 'only the next get ends');
    c.close();
  });

  test('the binary protocol is refused by closing', async () => {
    const c = await RawConn.open(port);
    c.send(Buffer.from([0x80, 0x00, 0x00, 0x05, 0, 0, 0, 0]));
    await c.closedByServer();
  });
});

describe('limits', () => {
  test('at the cap the quietest connection makes room; only when all are busy is a new one refused', async () => {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const slowGroup = new Group({
      name: 'capped',
      cacheBytes: 1 << 20,
      registry: new GroupRegistry(),
      async getter(key) {
        await held;
        return `v:${key}`;
      },
    });
    const capped = createMemcachedFront({
      group: slowGroup,
      version: 'x',
      maxValueBytes: 1024,
      maxConnections: 2,
    });
    const p = await listen(capped);
    try {
      // An idle connection (what an attacker holds by the thousand) and an active client.
      const idle = await RawConn.open(p);
      const active = await RawConn.open(p);
      assert.equal(await active.ask('version\r\n'), 'VERSION x\r\n');
      // A newcomer at the cap: the idle one is closed for it, the active one keeps working.
      const newcomer = await RawConn.open(p);
      await idle.closedByServer();
      assert.equal(await newcomer.ask('version\r\n'), 'VERSION x\r\n');
      assert.equal(await active.ask('version\r\n'), 'VERSION x\r\n');
      assert.equal(capped.counters.idleClosedForNew, 1);
      // Both connections owe a reply (a load in progress): nobody can be closed, the next one is refused.
      newcomer.send('get a\r\n');
      active.send('get b\r\n');
      await waitFor('both loads to start', () => slowGroup.stats.loads >= 2, 5000);
      const refused = await RawConn.open(p);
      assert.equal(
        await refused.until((t) => t.endsWith('\r\n')),
        'SERVER_ERROR too many open connections\r\n',
      );
      await refused.closedByServer();
      assert.equal(capped.counters.rejectedConnections, 1);
      release();
      assert.equal(await newcomer.until((t) => t.endsWith('END\r\n')), 'VALUE a 0 3\r\nv:a\r\nEND\r\n');
      assert.equal(await active.until((t) => t.endsWith('END\r\n')), 'VALUE b 0 3\r\nv:b\r\nEND\r\n');
      newcomer.close();
      active.close();
    } finally {
      release();
      capped.closeAllConnections();
      capped.close();
    }
  });

  test('an idle or stalled client is closed after the idle timeout', async () => {
    const idle = createMemcachedFront({ group, version: 'x', maxValueBytes: 1024, idleTimeoutMs: 300 });
    const p = await listen(idle);
    try {
      const stalled = await RawConn.open(p);
      stalled.send('get alp'); // half a command, then nothing
      const t0 = Date.now();
      await stalled.closedByServer(5000);
      assert.ok(Date.now() - t0 >= 250);
    } finally {
      idle.closeAllConnections();
      idle.close();
    }
  });

  test('a client that does not read its replies stops being read (bounded memory), then catches up in order', async () => {
    const c = await RawConn.open(port);
    await c.ask('get big100000\r\n');
    const before = front.counters.backpressurePauses;
    c.sock.pause(); // stop reading replies
    // 1,000 gets of a 100 kB value = 100 MB of replies if the server buffered them all.
    const n = 1000;
    const req = Buffer.from('get big100000\r\n'.repeat(n));
    c.send(req);
    await sleep(800);
    assert.ok(front.counters.backpressurePauses > before, 'the server paused reading this client');
    // What the server holds for this client is about HIGH_WATER (1 MiB) plus one batch, not 100 MB.
    const held = front.writeBufferedBytes();
    assert.ok(held > 0 && held < 4e6, `write-buffered ${held} bytes`);
    c.sock.resume();
    const reply = await c.untilBytes(n * 100032, 60_000);
    assert.equal((reply.match(/VALUE big100000 0 100000\r\n/g) ?? []).length, n);
    c.close();
  });

  test('garbage from one client does not disturb another', async () => {
    const good = await RawConn.open(port);
    const bad = await RawConn.open(port);
    bad.sock.pause();
    for (let i = 0; i < 200; i++) bad.send(Buffer.from(`zz${i}\r\n\x00\x01get \r\nset a b c\r\n`));
    assert.equal(await good.ask('get alpha\r\n'), 'VALUE alpha 0 7\r\nv:alpha\r\nEND\r\n');
    bad.close();
    good.close();
  });
});

/** A group with `set` (the optional storing entry point), over a Map: exercises the storage side of the protocol. */
function storingGroup() {
  const store = new Map<string, { value: Buffer; ttlMs?: number }>();
  const sets: Array<{ key: string; value: Buffer; ttlMs?: number }> = [];
  const removes: string[] = [];
  const server: Partial<GroupServer> = {
    getCached: (k) => store.get(k)?.value,
    loadAfterMiss: async (k) => {
      await sleep(5);
      if (k.startsWith('origin-'))
        return { value: Buffer.from(`o:${k}`), ageMs: 0, source: 'getter', minuteQps: 0 };
      throw new NotFoundError(k);
    },
  };
  // Only what the memcached front calls; the rest of ServedGroup is left out.
  const g: Partial<ServedGroup> & { sets: typeof sets; removes: string[] } = {
    name: 'stub',
    server: server as GroupServer,
    cacheBytes: 1 << 20,
    sets,
    removes,
    stats: {
      gets: 0,
      cacheHits: 0,
      loads: 0,
      loadsDeduped: 0,
      peerLoads: 0,
      peerErrors: 0,
      ownerLoadErrors: 0,
      localLoads: 0,
      localLoadErrs: 0,
    } as Partial<GroupStats> as GroupStats,
    remove: async (k) => {
      removes.push(k);
      store.delete(k);
    },
    set: async (key, value, opts) => {
      await sleep(5);
      sets.push({ key, value: Buffer.from(value), ttlMs: opts?.ttlMs });
      store.set(key, { value: Buffer.from(value), ttlMs: opts?.ttlMs });
    },
    cacheStats: () => ({ bytes: 0, items: store.size, evictions: 0 }) as Partial<CacheStats> as CacheStats,
  };
  return g as ServedGroup & typeof g;
}

describe('storage commands over a group with set', () => {
  const g = storingGroup();
  const srv = createMemcachedFront({ group: g, version: 'x', maxValueBytes: 1 << 16 });
  let p: number;
  before(async () => {
    p = await listen(srv);
  });
  after(() => {
    srv.closeAllConnections();
    srv.close();
  });

  test('set then get: flags kept, value bytes exact (flags 0 stored raw)', async () => {
    const c = await RawConn.open(p);
    assert.equal(await c.ask('set plain 0 0 5\r\nhello\r\n'), 'STORED\r\n');
    assert.deepEqual(g.sets.at(-1), { key: 'plain', value: Buffer.from('hello'), ttlMs: undefined });
    assert.equal(await c.ask('set flagged 4294967295 0 3\r\nabc\r\n'), 'STORED\r\n');
    assert.equal(flagsOf(g.sets.at(-1)!.value), 4294967295);
    assert.equal(
      await c.ask('get plain flagged\r\n'),
      'VALUE plain 0 5\r\nhello\r\nVALUE flagged 4294967295 3\r\nabc\r\nEND\r\n',
    );
    // Binary values, \r\n inside included.
    const bin = Buffer.from([0, 13, 10, 255, 0xff, 0x67]);
    assert.equal(
      await c.ask(Buffer.concat([Buffer.from('set bin 7 0 6\r\n'), bin, Buffer.from('\r\n')])),
      'STORED\r\n',
    );
    const r = Buffer.from(await c.ask('get bin\r\n'), 'latin1');
    assert.deepEqual(r, Buffer.concat([Buffer.from('VALUE bin 7 6\r\n'), bin, Buffer.from('\r\nEND\r\n')]));
    // A flags-0 value that begins with the header's magic still reads back exactly.
    const tricky = encodeItem(Buffer.from('x'), 9);
    await c.ask(
      Buffer.concat([Buffer.from(`set tricky 0 0 ${tricky.length}\r\n`), tricky, Buffer.from('\r\n')]),
    );
    const tr = Buffer.from(await c.ask('get tricky\r\n'), 'latin1');
    assert.deepEqual(
      tr,
      Buffer.concat([Buffer.from(`VALUE tricky 0 ${tricky.length}\r\n`), tricky, Buffer.from('\r\nEND\r\n')]),
    );
    c.close();
  });

  test('a client that pipelines commands and shuts its side: every command runs, every reply arrives', async () => {
    // `printf 'set … noreply …' | nc -N`, or a script that pipelines noreply sets and closes: memcached
    // runs all of them. Each set here waits 5 ms, so most are still unread when the client's FIN arrives.
    const c = await RawConn.open(p);
    let batch = '';
    for (let i = 0; i < 20; i++) batch += `set halfclosed${i} 0 0 2 noreply\r\nv${i % 10}\r\n`;
    c.send(`${batch}get halfclosed19 origin-hc\r\nset halfcl` /* a partial command, dropped */);
    c.sock.end();
    const replies = await c.until(() => false, 5_000).catch((e: Error) => e.message);
    assert.equal(c.closed, true, 'the server closes its side once it has answered');
    assert.equal(replies, 'VALUE halfclosed19 0 2\r\nv9\r\nVALUE origin-hc 0 11\r\no:origin-hc\r\nEND\r\n');
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(
        g.server.getCached(`halfclosed${i}`),
        Buffer.from(`v${i % 10}`),
        `halfclosed${i} stored`,
      );
    }
  });

  test('exptime: relative seconds, absolute unix time, negative = expired (removed)', async () => {
    const c = await RawConn.open(p);
    assert.equal(await c.ask('set e1 0 100 1\r\nx\r\n'), 'STORED\r\n');
    assert.equal(g.sets.at(-1)?.ttlMs, 100_000);
    const abs = Math.floor(Date.now() / 1000) + 3600;
    assert.equal(await c.ask(`set e2 0 ${abs} 1\r\nx\r\n`), 'STORED\r\n');
    const ttl = g.sets.at(-1)?.ttlMs ?? 0;
    assert.ok(ttl > 3_590_000 && ttl <= 3_600_000, String(ttl));
    assert.equal(await c.ask('set e1 0 -1 1\r\nx\r\n'), 'STORED\r\n');
    assert.equal(g.removes.at(-1), 'e1');
    assert.equal(await c.ask('get e1\r\n'), 'END\r\n');
    assert.equal(exptimeToTtlMs(2_592_000, 0), 2_592_000_000);
    assert.equal(exptimeToTtlMs(2_592_001, 2_592_001_000 - 5000), 5000);
    assert.equal(exptimeToTtlMs(1_000_000_000, 2_000_000_000_000), 0);
    c.close();
  });

  test('add and replace follow what a read would see (cached, or the origin has it)', async () => {
    const c = await RawConn.open(p);
    assert.equal(await c.ask('add fresh 0 0 1\r\na\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('add fresh 0 0 1\r\nb\r\n'), 'NOT_STORED\r\n');
    assert.equal(await c.ask('add origin-k 0 0 1\r\nb\r\n'), 'NOT_STORED\r\n');
    assert.equal(await c.ask('replace nothing 0 0 1\r\nb\r\n'), 'NOT_STORED\r\n');
    assert.equal(await c.ask('replace fresh 0 0 1\r\nc\r\n'), 'STORED\r\n');
    assert.equal(await c.ask('get fresh\r\n'), 'VALUE fresh 0 1\r\nc\r\nEND\r\n');
    c.close();
  });

  test('touch re-stores with the new expiry; NOT_FOUND without a value', async () => {
    const c = await RawConn.open(p);
    await c.ask('set t 3 0 2\r\nhi\r\n');
    assert.equal(await c.ask('touch t 60\r\n'), 'TOUCHED\r\n');
    assert.equal(g.sets.at(-1)?.ttlMs, 60_000);
    assert.equal(flagsOf(g.sets.at(-1)!.value), 3, 'flags survive a touch');
    assert.equal(await c.ask('touch none 60\r\n'), 'NOT_FOUND\r\n');
    c.close();
  });

  test('noreply writes are applied before the next command runs (read your writes)', async () => {
    const c = await RawConn.open(p);
    let req = '';
    for (let i = 0; i < 20; i++) req += `set nr 0 0 ${String(i).length} noreply\r\n${i}\r\n`;
    req += 'get nr\r\n';
    assert.equal(await c.ask(req), 'VALUE nr 0 2\r\n19\r\nEND\r\n');
    c.close();
  });

  test('a data block not ending in \\r\\n is a bad data chunk; the stream continues after it', async () => {
    const c = await RawConn.open(p);
    assert.equal(
      await c.ask('set x 0 0 2\r\nabcd\r\nversion\r\n', /VERSION x\r\n$/),
      'CLIENT_ERROR bad data chunk\r\nERROR\r\nVERSION x\r\n',
    );
    c.close();
  });

  test('noreply silences errors too, as on memcached: the next reply read is the next command’s', async () => {
    // Each error here used to be written despite noreply; pymemcache (whose set is noreply by default)
    // then read it as the answer to its next get.
    const c = await RawConn.open(p);
    const version = 'VERSION x\r\n';
    assert.equal(
      await c.ask(`set tl 0 0 ${(1 << 16) + 1} noreply\r\n${'t'.repeat((1 << 16) + 1)}\r\nversion\r\n`),
      version,
    );
    assert.equal(await c.ask('set k\x01 0 0 1 noreply\r\na\r\nversion\r\n'), version);
    assert.equal(await c.ask(`delete ${'k'.repeat(251)} noreply\r\nversion\r\n`), version);
    assert.equal(await c.ask('incr k abc noreply\r\nversion\r\n'), version);
    assert.equal(await c.ask('touch k noreply\r\nversion\r\n'), version);
    // A bad data chunk: its error silenced, and what follows the declared length is read as a line (memcached
    // answers that ERROR too).
    assert.equal(await c.ask('set bc 0 0 1 noreply\r\nab\r\nversion\r\n'), `ERROR\r\n${version}`);
    // The next line is not noreply: its error is answered.
    assert.equal(await c.ask('set k 0 0 1 noreply\r\na\r\nbogus noreply\r\n'), 'ERROR\r\n');
    assert.equal(
      await c.ask(`set k2 0 0 1\r\nab\r\n`, /\r\n.*\r\n$/),
      'CLIENT_ERROR bad data chunk\r\nERROR\r\n',
    );
    c.close();
  });

  /** A front over `g` whose values being received share 1,000 bytes. */
  const smallBudget = async () => {
    const small = createMemcachedFront({
      group: g,
      version: 'x',
      maxValueBytes: 1 << 16,
      valueBudgetBytes: 1000,
    });
    return { small, sp: await listen(small) };
  };

  test('values being received share one budget, taken as their bytes arrive: a declared length costs nothing', async () => {
    const { small, sp } = await smallBudget();
    const value = 'x'.repeat(500);
    /** A 500-byte set sent in two pieces, so its first piece is held from the budget. */
    const setInPieces = async (c: RawConn, key: string) => {
      c.send(`set ${key} 0 0 500\r\n${value.slice(0, 100)}`);
      await sleep(50);
      return c.ask(`${value.slice(100)}\r\n`);
    };
    try {
      // Eight connections declare 8,000 bytes between them and send 10 each: only the 80 sent are held
      // (before, the declarations alone took the budget and every other set failed).
      const declarers: RawConn[] = [];
      for (let i = 0; i < 8; i++) {
        const d = await RawConn.open(sp);
        d.send(`set hog${i} 0 0 1000\r\n0123456789`);
        declarers.push(d);
      }
      await sleep(100);
      const b = await RawConn.open(sp);
      assert.equal(await setInPieces(b, 'other'), 'STORED\r\n');
      // Bytes really sent do count: 950 of a value held by a sender still sending leaves no room.
      const a = await RawConn.open(sp);
      a.send(`set half 0 0 990\r\n${'y'.repeat(900)}`);
      await sleep(50);
      assert.equal(await setInPieces(b, 'other2'), 'SERVER_ERROR out of memory storing object\r\n');
      assert.equal(small.counters.stalledSendersClosed, 0, 'senders quiet for less than a second are kept');
      // Once they have sent nothing for a second, their values make room for a client that is sending.
      await sleep(1100);
      assert.equal(await setInPieces(b, 'other3'), 'STORED\r\n');
      assert.ok(small.counters.stalledSendersClosed >= 1, 'the stalled sender was closed');
      await a.closedByServer();
      assert.equal(await b.ask('get other3\r\n', /END\r\n$/), `VALUE other3 0 500\r\n${value}\r\nEND\r\n`);
      for (const d of declarers) d.close();
      b.close();
    } finally {
      small.closeAllConnections();
      small.close();
    }
  });

  test('a closed connection gives its share of the budget back', async () => {
    const { small, sp } = await smallBudget();
    try {
      const a = await RawConn.open(sp);
      a.send(`set half 0 0 990\r\n${'y'.repeat(900)}`);
      await sleep(50);
      const b = await RawConn.open(sp);
      b.send(`set other 0 0 500\r\n${'x'.repeat(100)}`);
      await sleep(50);
      assert.equal(await b.ask(`${'x'.repeat(400)}\r\n`), 'SERVER_ERROR out of memory storing object\r\n');
      a.close();
      await sleep(100);
      b.send(`set other 0 0 500\r\n${'x'.repeat(100)}`);
      await sleep(50);
      assert.equal(await b.ask(`${'x'.repeat(400)}\r\n`), 'STORED\r\n');
      b.close();
    } finally {
      small.closeAllConnections();
      small.close();
    }
  });

  test('a value arriving a byte at a time', async () => {
    const c = await RawConn.open(p);
    const msg = Buffer.from(`set slowly 0 0 300\r\n${'z'.repeat(300)}\r\n`);
    for (const b of msg) {
      c.send(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await c.until((t) => t.endsWith('\r\n')), 'STORED\r\n');
    c.close();
  });
});

describe('what one client can make the node hold', () => {
  test('replies held behind a slow load count: a client sending hits behind it stops being read', async () => {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const slowGroup = new Group({
      name: 'held',
      cacheBytes: 8 << 20,
      registry: new GroupRegistry(),
      async getter(key) {
        if (key === 'slow') await held;
        return key === 'v1k' ? 'v'.repeat(1000) : `v:${key}`;
      },
    });
    const srv = createMemcachedFront({ group: slowGroup, version: 'x', maxValueBytes: 1 << 20 });
    const sp = await listen(srv);
    try {
      const c = await RawConn.open(sp);
      const hit = `VALUE v1k 0 1000\r\n${'v'.repeat(1000)}\r\nEND\r\n`;
      assert.equal(await c.ask('get v1k\r\n'), hit);
      // 4,000 hits of ~1 KB behind one load that does not settle: ~4 MB of replies that cannot leave yet.
      c.send(`get slow\r\n${'get v1k\r\n'.repeat(4000)}`);
      await waitFor('the front to stop reading', () => srv.counters.backpressurePauses > 0);
      await sleep(100);
      const asked = srv.counters.getKeys;
      assert.ok(asked < 1 + 1 + 4000, `stopped before all 4,000 hits were formatted (${asked - 1})`);
      assert.ok(asked - 2 < 1100, `~1 MiB of replies held, not all of them (${asked - 2} hits formatted)`);
      // When the load settles, everything is answered, in order.
      release();
      const slow = 'VALUE slow 0 6\r\nv:slow\r\nEND\r\n';
      const all = await c.untilBytes(slow.length + 4000 * hit.length, 20_000);
      assert.equal(all, slow + hit.repeat(4000));
      c.close();
    } finally {
      release();
      srv.closeAllConnections();
      srv.close();
    }
  });

  test('a multi-get naming one value thousands of times references it rather than copying it each time', () => {
    const v = Buffer.alloc(4000, 0x61);
    const written: Buffer[] = [];
    const sock = {
      destroyed: false,
      write: (b: Buffer) => written.push(b),
      cork() {},
      uncork() {},
    } as unknown as Socket;
    // Little waiting: a small value is copied into the slab (one socket write for many small replies).
    const o = new Out(16 * 1024);
    o.shared(v, 0, v.length);
    o.flushTo(sock);
    assert.ok(!written.includes(v));
    // Past 256 KiB waiting, it is referenced: memory stays the size of the keys' headers, not n copies.
    written.length = 0;
    for (let i = 0; i < 100; i++) o.shared(v, 0, v.length);
    o.flushTo(sock);
    const refs = written.filter((b) => b === v).length;
    assert.ok(refs >= 100 - Math.ceil((256 * 1024) / 4000), `${refs} of 100 referenced`);
    assert.equal(Buffer.concat(written).length, 100 * 4000);
  });

  test('the cas unique of a large value is computed once in its life (a gets hit hashed it every time)', () => {
    const big = Buffer.alloc(8 << 20, 0x62);
    const first = casUnique(big);
    // Observed by changing the bytes, which the cache never does: the remembered unique comes back.
    big[0] = 0x63;
    assert.equal(casUnique(big), first);
    assert.notEqual(casUnique(Buffer.from(big)), first, 'another Buffer of other bytes: its own unique');
    // Small values (a new copy per hit anyway) are hashed each time.
    const small = Buffer.from('abc');
    const u = casUnique(small);
    small[0] = 0x78;
    assert.notEqual(casUnique(small), u);
  });
});

describe('configuration', () => {
  test('GOSSIPCACHE_MEMCACHED_ADDR turns the front on; bad values name the variable', () => {
    const off = parseConfig([], {});
    assert.ok(!off.help && off.config.memcached.addr === undefined);
    const on = parseConfig(['--memcached-idle-timeout', '30s'], {
      GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1:11211',
      GOSSIPCACHE_MEMCACHED_MAX_CONNECTIONS: '10',
    });
    assert.ok(!on.help);
    if (!on.help) {
      assert.deepEqual(on.config.memcached, {
        addr: { host: '127.0.0.1', port: 11211 },
        maxConnections: 10,
        idleTimeoutMs: 30_000,
      });
    }
    assert.throws(
      () => parseConfig([], { GOSSIPCACHE_MEMCACHED_ADDR: '11211' }),
      /^ConfigError: GOSSIPCACHE_MEMCACHED_ADDR: "11211" is not an address/,
    );
    assert.throws(
      () => parseConfig([], { GOSSIPCACHE_MEMCACHED_MAX_CONNECTIONS: '0' }),
      /GOSSIPCACHE_MEMCACHED_MAX_CONNECTIONS: "0" is not a count/,
    );
  });

  test('the default connection cap is a quarter of the fds beyond 256: the three fronts fit the fd limit', () => {
    const d = parseConfig([], { GOSSIPCACHE_MEMCACHED_ADDR: '127.0.0.1:11211' });
    assert.ok(!d.help);
    if (!d.help) assert.equal(d.config.memcached.maxConnections, defaultMemcachedMaxConnections());
    assert.equal(defaultMemcachedMaxConnections(1024), 192);
    assert.equal(defaultMemcachedMaxConnections(256), 64);
    assert.equal(defaultMemcachedMaxConnections(1 << 20), 1024);
    // HTTP (with its reserve), gRPC and memcached clients together leave 256 fds for peers, gossip and
    // origins at every fd limit where no floor applies.
    for (const fds of [768, 1024, 4096, 4352]) {
      const clients =
        defaultMaxConnections(fds) +
        DEFAULT_RESERVE_CONNECTIONS +
        defaultGrpcMaxConnections(fds) +
        defaultMemcachedMaxConnections(fds);
      assert.ok(fds - clients >= 256 - DEFAULT_RESERVE_CONNECTIONS, `${fds} fds: ${clients} for clients`);
    }
  });

  test('a group of the groups file may have a memcached port of its own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gc-mc-'));
    try {
      const file = join(dir, 'groups.json');
      writeFileSync(
        file,
        JSON.stringify({
          groups: [
            { name: 'a', origin: 'demo' },
            { name: 'b', origin: 'demo', memcachedAddr: ':11311' },
          ],
        }),
      );
      const r = parseConfig(['--config', file], {});
      assert.ok(!r.help);
      if (!r.help) {
        assert.equal(r.config.groups[0].memcachedAddr, undefined);
        assert.deepEqual(r.config.groups[1].memcachedAddr, { host: '0.0.0.0', port: 11311 });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
