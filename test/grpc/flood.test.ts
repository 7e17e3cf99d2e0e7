// A hostile client floods a node's peer port. A node (the CLI, as a child process, so a
// crash or an out-of-memory abort shows as its exit) is sent: one Fetch message with a million
// requests; messages just over the per-message limit; then many connections × many streams writing
// full 4096-request messages (one uncached key, or all distinct keys) without ever reading a reply,
// plus a burst of unary Gets. The flood lasts until a well-behaved peer has fetched GOOD_FETCHES
// values (not a fixed time, so a slow machine probes as much as a fast one), each within
// GOOD_FETCH_MAX_MS (the origin takes 200 ms; a peer starved behind the flood waited 5 s), while
// /healthz answers within a second and the node's memory stays bounded.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client, type ClientDuplexStream, credentials, Metadata, status } from '@grpc/grpc-js';
import { encodeFetchBatch, type FetchRequest } from '../../src/grpc/codec.js';
import { FETCH_PATH, GrpcPeer } from '../../src/grpc/index.js';
import { MAX_BATCH_REQUESTS } from '../../src/grpc/limits.js';
import { type NodeProcess, nodePorts, startCli, stopCli, waitHealthy } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { waitFor } from '../support/wait.js';

const ident = (b: Buffer) => b;
/** Good fetches made while the flood is on; it is stopped after them (or after FLOOD_CAP_MS). */
const GOOD_FETCHES = 10;
const GOOD_FETCH_MAX_MS = 3000;
const FLOOD_CAP_MS = 60_000;
const FLOODER = join(import.meta.dirname, '../support/grpc-flood.ts');

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A client on its own TCP connection (grpc-js shares connections between clients with equal options). */
function attacker(addr: string, n: number): Client {
  return new Client(addr, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'test.conn': n,
  });
}

/** Opens a Fetch stream that is never read; resolves with its final status. */
function openStream(c: Client): {
  call: ClientDuplexStream<Buffer, Buffer>;
  done: Promise<{ code: number; details: string }>;
} {
  const call = c.makeBidiStreamRequest(FETCH_PATH, ident, ident, new Metadata()) as ClientDuplexStream<
    Buffer,
    Buffer
  >;
  const done = new Promise<{ code: number; details: string }>((resolve) => {
    call.on('status', (s) => resolve({ code: s.code, details: s.details }));
    call.on('error', () => {});
  });
  return { call, done };
}

/** `count` requests with ids from `firstId`, for `key(i)`. */
function batch(firstId: number, count: number, key: (i: number) => string): Buffer {
  const reqs: FetchRequest[] = [];
  for (let i = 0; i < count; i++)
    reqs.push({ id: firstId + i, group: 'g', key: key(i), timeoutMs: 0, cancel: false });
  return encodeFetchBatch(reqs);
}

describe('a flood at the peer port', () => {
  let node: NodeProcess;
  let addr: string;

  before(async () => {
    const ports = await nodePorts();
    node = startCli(ports, { GOSSIPCACHE_GROUP: 'g', GOSSIPCACHE_ORIGIN: 'demo:200ms', LOG_LEVEL: 'warn' });
    addr = `127.0.0.1:${ports.grpc}`;
    await waitHealthy(node);
  });

  after(async () => {
    await stopCli(node);
  });

  test('one message with a million requests, and one just over the request limit, are refused', async () => {
    const c = attacker(addr, 0);
    try {
      // ~14 MB: over the 1 MiB a message may have; grpc-js refuses it from its length prefix.
      const huge = openStream(c);
      huge.call.write(batch(1, 1_000_000, () => 'one-uncached-key'));
      const s1 = await huge.done;
      assert.equal(s1.code, status.RESOURCE_EXHAUSTED, s1.details);
      // Under 1 MiB but MAX_BATCH_REQUESTS + 1 requests: refused by count, with a message that says so.
      const over = openStream(c);
      over.call.write(batch(1, MAX_BATCH_REQUESTS + 1, () => 'k'));
      const s2 = await over.done;
      assert.equal(s2.code, status.RESOURCE_EXHAUSTED);
      assert.match(s2.details, /carried 4097 requests, over this node's limit of 4096 per message/);
      assert.equal(node.child.exitCode, null, 'the node is alive');
    } finally {
      c.close();
    }
  });

  test('many connections and streams flooding without reading: health, good clients and memory hold', async () => {
    const pid = node.child.pid as number;
    const rssBefore = rssBytes(pid);
    let rssMax = rssBefore;
    const flood = spawn(process.execPath, ['--import', 'tsx', FLOODER, addr, String(FLOOD_CAP_MS)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let report = '';
    flood.stdout.on('data', (d) => (report += d));
    const flooded = new Promise<number | null>((resolve) => flood.on('exit', resolve));
    let running = true;
    void flooded.then(() => (running = false));
    // Probe once the flood has hold of the node: its streams are open there.
    await waitFor('the flood to start', async () => report.startsWith('flooding\n') || !running);
    await waitFor('the flood streams to be open at the node', async () => {
      const m = /^gossipcache_grpc_fetch_streams (\d+)/m.exec((await httpGet(`${node.http}/metrics`)).text);
      return Number(m?.[1]) >= 64 || !running;
    });
    const good = new GrpcPeer(addr);
    const healthMs: number[] = [];
    const goodMs: number[] = [];
    let goodOk = 0;
    for (let i = 0; running && goodOk < GOOD_FETCHES; i++) {
      let t = performance.now();
      const h = await httpGet(`${node.http}/healthz`);
      healthMs.push(performance.now() - t);
      assert.equal(h.status, 200);
      t = performance.now();
      const key = `good-${i}`;
      const r = await good.get('g', key, AbortSignal.timeout(10_000));
      goodMs.push(performance.now() - t);
      assert.equal(Buffer.from(r.value).toString(), `Value of ${key}`);
      goodOk++;
      rssMax = Math.max(rssMax, rssBytes(pid));
      await new Promise((r2) => setTimeout(r2, 100));
    }
    assert.ok(
      running,
      `the flood ended (after its ${FLOOD_CAP_MS} ms cap?) before ${GOOD_FETCHES} good fetches`,
    );
    flood.stdin.end();
    assert.equal(await flooded, 0, 'the flooding process finished');

    // After the flood: still alive, still serving.
    const r = await good.get('g', 'after', AbortSignal.timeout(10_000));
    assert.equal(Buffer.from(r.value).toString(), 'Value of after');
    good.close();
    assert.equal((await httpGet(`${node.http}/healthz`)).status, 200);
    assert.equal(node.child.exitCode, null, 'the node is alive');

    const { written, streamCodes, unaryCodes } = JSON.parse(report.slice('flooding\n'.length)) as {
      written: number;
      streamCodes: Record<string, number>;
      unaryCodes: Record<string, number>;
    };
    const growth = rssMax - rssBefore;
    console.log(
      `flood: ${written} messages of 4096 requests written by 100 streams on 4 connections ` +
        `(16 a connection served, the rest refused: maxFetchStreams); ` +
        `streams ended ${JSON.stringify(streamCodes)}; unary codes ${JSON.stringify(unaryCodes)}; ` +
        `healthz max ${Math.max(...healthMs).toFixed(0)} ms (${healthMs.length} checks); good peer ` +
        `${goodOk} values, ms ${goodMs.map((ms) => ms.toFixed(0)).join(' ')}; ` +
        `RSS ${(rssBefore / 2 ** 20).toFixed(0)} → max ${(rssMax / 2 ** 20).toFixed(0)} MiB`,
    );
    assert.ok(written >= 100, `the flood wrote ${written} messages`);
    // A starved peer waited 5 s for one value (its stream never got a turn to take its request).
    assert.ok(
      Math.max(...goodMs) < GOOD_FETCH_MAX_MS,
      `good peer fetches took ${goodMs.map((ms) => ms.toFixed(0)).join(', ')} ms (origin: 200 ms)`,
    );
    assert.ok(Math.max(...healthMs) < 1000, `healthz took up to ${Math.max(...healthMs)} ms`);
    // Without bounds the first million-request message alone grew the heap past 2 GB.
    assert.ok(growth < 600 * 2 ** 20, `RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB`);
    for (const code of Object.keys(unaryCodes).map(Number)) {
      assert.ok(
        [status.OK, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED].includes(code),
        `unary Get answered ${status[code]}`,
      );
    }
  });
});
