// SIGTERM while requests are in flight: they complete, the node exits 0, and the logs say so.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countingOrigin, nodePorts, startCli, stopCli } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { waitFor } from '../support/wait.js';

test('SIGTERM lets in-flight requests finish, then exits 0', async () => {
  const origin = await countingOrigin(800);
  const node = startCli(await nodePorts(), { GOSSIPCACHE_ORIGIN: origin.url });
  try {
    await waitFor('the node to be ready', async () => (await httpGet(`${node.http}/readyz`)).status === 200);
    const pending = Array.from({ length: 5 }, (_, i) => httpGet(`${node.http}/default/slow-${i}`));
    await waitFor('the origin to receive the loads', async () => origin.pending === 5, 10_000);
    node.child.kill('SIGTERM');
    const answers = await Promise.all(pending);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200, 200],
    );
    assert.deepEqual(
      answers.map((a) => a.text),
      Array.from({ length: 5 }, (_, i) => `value:slow-${i}`),
    );
    assert.equal(await node.exited, 0);
    // No new connections after shutdown.
    await assert.rejects(httpGet(`${node.http}/healthz`));
    const lines = node
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    assert.ok(
      lines.some((l) => l.msg.startsWith('shutting down')),
      node.output(),
    );
    assert.ok(
      lines.some((l) => l.msg === 'stopped'),
      node.output(),
    );
  } finally {
    await stopCli(node);
    await origin.close();
  }
});

test('start log: config summary without secrets, and a curl line', async () => {
  const key = Buffer.alloc(32, 9).toString('base64');
  const node = startCli(await nodePorts(), { GOSSIPCACHE_SECRET_KEY: key });
  try {
    await waitFor('the start line', async () => node.output().includes('gossipcache started'));
    assert.ok(!node.output().includes(key), 'the secret key is never logged');
    const start = node
      .output()
      .split('\n')
      .filter((l) => l.includes('gossipcache started'))
      .map((l) => JSON.parse(l))[0];
    assert.match(start.msg, /try: curl http:\/\/127\.0\.0\.1:\d+\/default\/Tom/);
    assert.equal(start.gossipEncryption, '1 key(s)');
    assert.match(start.groups[0].origin, /^demo/);
  } finally {
    assert.equal(await stopCli(node), 0);
  }
});
