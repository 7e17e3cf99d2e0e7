// A node's default stale windows (GOSSIPCACHE_STALE_WHILE_REVALIDATE / _IF_ERROR), in-process: the groups
// a node builds from its configuration (createGroups, as main.ts does) behind the HTTP front, over a real
// HTTP origin on 127.0.0.1 whose values expire after a second and name no windows. The origin's own
// Cache-Control windows still win over the defaults.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { GroupRegistry } from '../../src/group.js';
import { parseConfig } from '../../src/node/config.js';
import { createGroups } from '../../src/node/groups.js';
import { createHttpFront, STATUS_HIT, STATUS_ORIGIN, STATUS_STALE } from '../../src/node/http.js';
import { createMetrics } from '../../src/node/metrics.js';
import type { Origin } from '../../src/node/origin.js';
import { listenLocal } from '../support/http.js';
import { deferred, sleep, waitFor } from '../support/wait.js';

/** Cache-Control by key prefix; every value lives 1 s. Loads counted per key. */
const CACHE_CONTROL: Record<string, string> = {
  plain: 'max-age=1',
  strict: 'max-age=1, must-revalidate',
  own: 'max-age=1, stale-while-revalidate=0',
};
const loads = new Map<string, number>();
/** Refreshes of `plain-*` keys wait for this: a stale answer must not. */
let gate = deferred();

const origin = createServer(async (req, res) => {
  const key = decodeURIComponent((req.url ?? '').slice('/items/'.length));
  const n = (loads.get(key) ?? 0) + 1;
  loads.set(key, n);
  if (n > 1 && key.startsWith('plain-')) await gate.promise;
  res.writeHead(200, { 'cache-control': CACHE_CONTROL[key.split('-')[0]] }).end(`${key}@${n}`);
});

const fronts: ReturnType<typeof createHttpFront>[] = [];
const origins: Origin[] = [];
let withDefault = '';
let without = '';

/** A node's groups and HTTP front, from the same parsing the CLI does. */
async function startNode(argv: string[], env: Record<string, string>): Promise<string> {
  const r = parseConfig(argv, env);
  assert.ok(!r.help);
  const registry = new GroupRegistry();
  origins.push(...createGroups(r.config, registry));
  const front = createHttpFront({
    registry,
    maxValueBytes: 1000,
    metrics: createMetrics({ registry, processMetrics: false }),
  });
  fronts.push(front);
  return `${await listenLocal(front)}/default`;
}

before(async () => {
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  const env = {
    GOSSIPCACHE_ORIGIN: `http://127.0.0.1:${(origin.address() as AddressInfo).port}/items/{key}`,
  };
  withDefault = await startNode(['--stale-while-revalidate', '30s'], env);
  without = await startNode([], env);
});

after(() => {
  gate.resolve();
  for (const f of fronts) {
    f.closeAllConnections();
    f.close();
  }
  for (const o of origins) o.close();
  origin.closeAllConnections();
  origin.close();
});

async function get(base: string, key: string) {
  const res = await fetch(`${base}/${key}`, { signal: AbortSignal.timeout(20_000) });
  return { text: await res.text(), status: res.headers.get('cache-status') };
}

test('a default stale-while-revalidate window answers the stale value while one refresh runs; origin windows win', async () => {
  gate = deferred();
  for (const key of ['plain-a', 'strict-a', 'own-a']) {
    assert.deepEqual(await get(withDefault, key), { text: `${key}@1`, status: STATUS_ORIGIN });
  }
  assert.deepEqual(await get(without, 'plain-b'), { text: 'plain-b@1', status: STATUS_ORIGIN });
  await sleep(1100); // every value has expired (max-age=1)

  // Named no window: the node's default applies. Answered at once although the refresh is held.
  assert.deepEqual(await get(withDefault, 'plain-a'), { text: 'plain-a@1', status: STATUS_STALE });
  assert.deepEqual(await get(withDefault, 'plain-a'), { text: 'plain-a@1', status: STATUS_STALE });
  await waitFor('the refresh of plain-a to reach the origin', () => loads.get('plain-a') === 2);
  // `must-revalidate`, or its own `stale-while-revalidate=0`: no stale answer, the get waits for the load.
  assert.deepEqual(await get(withDefault, 'strict-a'), { text: 'strict-a@2', status: STATUS_ORIGIN });
  assert.deepEqual(await get(withDefault, 'own-a'), { text: 'own-a@2', status: STATUS_ORIGIN });
  // The refresh lands: the new value replaces the stale one, after one refresh for both stale answers.
  gate.resolve();
  await waitFor(
    'the refreshed plain-a',
    async () => (await get(withDefault, 'plain-a')).text === 'plain-a@2',
  );
  assert.equal(loads.get('plain-a'), 2);
  assert.equal((await get(withDefault, 'plain-a')).status, STATUS_HIT);

  // A node without the option waits for the load (the refresh is released: this get completes).
  assert.deepEqual(await get(without, 'plain-b'), { text: 'plain-b@2', status: STATUS_ORIGIN });
});
