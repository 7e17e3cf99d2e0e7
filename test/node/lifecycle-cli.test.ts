// The value lifecycle through three `gossipcache` CLI processes on 127.0.0.1 over a real HTTP origin
// that sends RFC 5861 directives, goes down and comes back: stale-while-revalidate (one refresh per key
// cluster-wide), stale-if-error, remembered 404s, an origin answering 503 (one origin call per request,
// at the owner), PUT (visible through every node, racing a get, over the size limit), and the counters
// in /metrics.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { type NodeProcess, startCliCluster, stopCli, waitForOneRing } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { freePort } from '../support/ports.js';
import { sleep, waitFor } from '../support/wait.js';

/** The origin: behaviour by key prefix; loads counted per key; can go down and come back on its port. */
const loads = new Map<string, number>();
let delayMs = 0;
let raceDelayMs = 0;
let originPort = 0;
let origin: Server | undefined;

function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const key = decodeURIComponent((req.url ?? '').slice('/items/'.length));
  const n = (loads.get(key) ?? 0) + 1;
  loads.set(key, n);
  const answer = () => {
    if (key.startsWith('missing-')) {
      res.writeHead(404, { 'cache-control': 'max-age=30' }).end('no such item');
    } else if (key.startsWith('fail-')) {
      res.writeHead(503).end('origin overloaded');
    } else if (key.startsWith('swr-')) {
      // The first version expires after 1 s; later ones live a minute (so a test sees exactly one refresh).
      const cc = `max-age=${n === 1 ? 1 : 60}, stale-while-revalidate=30, stale-if-error=60`;
      res.writeHead(200, { 'cache-control': cc }).end(`${key}@${n}`);
    } else if (key.startsWith('sie-')) {
      res.writeHead(200, { 'cache-control': 'max-age=1, stale-if-error=60' }).end(`${key}@${n}`);
    } else {
      res.writeHead(200, { 'cache-control': 'max-age=60' }).end(`origin:${key}`);
    }
  };
  const wait = key.startsWith('race-') ? raceDelayMs : delayMs;
  if (wait > 0) setTimeout(answer, wait);
  else answer();
}

async function originUp(): Promise<void> {
  origin = createServer(handler);
  origin.listen(originPort, '127.0.0.1');
  await once(origin, 'listening');
}

async function originDown(): Promise<void> {
  const o = origin!;
  origin = undefined;
  o.closeAllConnections();
  o.close();
  await once(o, 'close');
}

const nodes: NodeProcess[] = [];
const url = (i: number, key: string) => `${nodes[i].http}/default/${encodeURIComponent(key)}`;

async function get(i: number, key: string) {
  const res = await fetch(url(i, key), { signal: AbortSignal.timeout(20_000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

before(async () => {
  originPort = await freePort();
  await originUp();
  const cluster = await startCliCluster(3, () => ({
    GOSSIPCACHE_ORIGIN: `http://127.0.0.1:${originPort}/items/{key}`,
    GOSSIPCACHE_ORIGIN_MAX_BYTES: '64KiB',
    GOSSIPCACHE_ORIGIN_TIMEOUT: '3s',
    LOG_LEVEL: 'warn',
  }));
  nodes.push(...cluster.nodes);
  await waitForOneRing(nodes);
});

after(async () => {
  const codes = await Promise.all(nodes.map((n) => stopCli(n)));
  if (origin) await originDown();
  assert.deepEqual(codes, [0, 0, 0], 'every node exits 0 on SIGTERM');
});

test('stale-while-revalidate: every node answers the stale value at once; one origin refresh cluster-wide', async () => {
  const key = 'swr-a';
  for (let i = 0; i < 3; i++) assert.equal((await get(i, key)).text, `${key}@1`);
  assert.equal(loads.get(key), 1);
  await sleep(1300); // past max-age=1
  delayMs = 400; // the refresh takes a while; stale answers must not wait for it
  const answers = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => get(i, key)));
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(a.text, `${key}@1`);
    assert.match(a.headers.get('cache-status') ?? '', /stale/, a.headers.get('cache-status') ?? '');
    assert.ok(Number(a.headers.get('age')) >= 1);
  }
  await waitFor('every node answers the refreshed value', async () => {
    const r = await Promise.all([0, 1, 2].map((i) => get(i, key)));
    return r.every((x) => x.text === `${key}@2`);
  });
  delayMs = 0;
  assert.equal(loads.get(key), 2, 'one refresh for the key across the 3 nodes');
});

test('the origin goes down and comes back: stale-if-error answers; a failed refresh keeps the stale value', async () => {
  for (let i = 0; i < 3; i++) {
    assert.equal((await get(i, 'sie-a')).text, 'sie-a@1');
    assert.equal((await get(i, 'swr-b')).text, 'swr-b@1');
  }
  await sleep(1300);
  await originDown();
  for (let i = 0; i < 3; i++) {
    const r = await get(i, 'sie-a');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'sie-a@1');
    assert.match(r.headers.get('cache-status') ?? '', /stale/);
    const s = await get(i, 'swr-b');
    assert.equal(s.text, 'swr-b@1', 'the background refresh fails: the stale value stays');
  }
  // A key nobody holds has nothing to fall back on.
  assert.equal((await get(0, 'never-loaded')).status, 502);
  await originUp();
  // sie-a lives 1 s per version, so it may be past @2 by then; swr-b@2 lives a minute.
  await waitFor('fresh values once the origin is back', async () => {
    const r = await Promise.all([0, 1, 2].flatMap((i) => [get(i, 'sie-a'), get(i, 'swr-b')]));
    return r.every((x) => /^sie-a@([2-9]|\d\d)$/.test(x.text) || x.text === 'swr-b@2');
  });
  const m = (await Promise.all(nodes.map((n) => httpGet(`${n.http}/metrics`)))).map((r) => r.text);
  const total = (name: string) =>
    m.reduce((sum, text) => {
      const line = new RegExp(`^gossipcache_group_${name}_total\\{group="default"\\} (\\d+)`, 'm').exec(text);
      return sum + Number(line?.[1] ?? 0);
    }, 0);
  assert.ok(total('stale_if_error_hits') >= 1, 'stale-if-error answers counted');
  assert.ok(total('refresh_errors') >= 1, 'failed refreshes counted');
  assert.ok(total('stale_hits') >= total('stale_if_error_hits'));
});

test('a 404 with max-age is remembered: 5 reads through 3 nodes make one origin call', async () => {
  for (const i of [0, 1, 2, 0, 1]) {
    const r = await get(i, 'missing-a');
    assert.equal(r.status, 404);
    assert.match(r.headers.get('cache-control') ?? '', /^max-age=(29|30)$/);
  }
  assert.equal(loads.get('missing-a'), 1);
});

test('the origin answers 503: one origin call per request, at the owner, whichever node it reached', async () => {
  const causes: string[] = [];
  for (const i of [0, 1, 2, 0, 1, 2]) {
    const r = await get(i, 'fail-a');
    assert.equal(r.status, 502, r.text);
    const cause = String(JSON.parse(r.text).cause);
    assert.match(cause, /origin answered HTTP 503$/);
    causes.push(cause);
  }
  // Before, a request through a non-owner made two origin calls (the owner's, then its own fallback).
  assert.equal(loads.get('fail-a'), 6);
  // Two of the three nodes are not the owner: their answers say the owner's load failed.
  const viaOwner = causes.filter((c) => c.startsWith('OriginError: '));
  const viaOthers = causes.filter((c) =>
    /^OwnerLoadError: the key's owner \S+ failed to load it: OriginError: /.test(c),
  );
  assert.deepEqual([viaOwner.length, viaOthers.length], [2, 4], causes.join('\n'));
  const m = (await Promise.all(nodes.map((n) => httpGet(`${n.http}/metrics`)))).map((r) => r.text);
  const counted = m.map((text) =>
    Number(/^gossipcache_group_owner_load_errors_total\{group="default"\} (\d+)/m.exec(text)?.[1]),
  );
  assert.ok(
    counted.every((n) => Number.isInteger(n)) && counted.reduce((a, b) => a + b, 0) >= 4,
    `owner_load_errors per node: ${counted}`,
  );
});

test('PUT through one node is visible through every node right after it returns', async () => {
  for (let i = 0; i < 3; i++) assert.equal((await get(i, 'put-a')).text, 'origin:put-a');
  const put = await fetch(url(1, 'put-a'), {
    method: 'PUT',
    body: 'written',
    headers: { 'cache-control': 'max-age=120' },
  });
  assert.equal(put.status, 204);
  for (let i = 0; i < 3; i++) {
    const r = await get(i, 'put-a');
    assert.equal(r.text, 'written');
    assert.match(r.headers.get('cache-control') ?? '', /^max-age=(119|120)$/);
  }
  // A key never loaded: stored, no origin call.
  assert.equal((await fetch(url(2, 'put-new'), { method: 'PUT', body: 'fresh' })).status, 204);
  for (let i = 0; i < 3; i++) assert.equal((await get(i, 'put-new')).text, 'fresh');
  assert.equal(loads.get('put-new'), undefined);
  assert.equal(loads.get('put-a'), 1);
});

test('PUT racing a get of the same key: the get answers what it loaded, the PUT value wins', async () => {
  raceDelayMs = 800;
  const racing = get(0, 'race-a');
  await sleep(300); // the load is at the origin now
  const put = await fetch(url(2, 'race-a'), { method: 'PUT', body: 'set-wins' });
  assert.equal(put.status, 204);
  assert.equal((await racing).text, 'origin:race-a');
  for (let i = 0; i < 3; i++) assert.equal((await get(i, 'race-a')).text, 'set-wins');
  assert.equal(loads.get('race-a'), 1);
  raceDelayMs = 0;
});

test('a PUT over the value limit is refused with 413 and says why', async () => {
  const r = await fetch(url(0, 'too-big'), { method: 'PUT', body: Buffer.alloc(100 * 1024, 1) });
  assert.equal(r.status, 413);
  assert.match((await r.json()).error, /102400 bytes is over this node's limit of 65536 bytes/);
  assert.equal((await get(1, 'too-big')).text, 'origin:too-big', 'nothing stored');
});
