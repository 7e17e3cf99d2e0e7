// The node process in situations operators meet: a lone replica seeded by its own name, a port in
// use, in-flight requests that outlive the shutdown timeout.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { countingOrigin, nodePorts, startCli, stopCli } from '../support/cli-node.js';
import { httpGet } from '../support/http.js';
import { waitFor } from '../support/wait.js';

test('a node whose only seed is itself becomes ready after the join timeout and serves', async () => {
  const ports = await nodePorts();
  const node = startCli(ports, {
    GOSSIPCACHE_SEEDS: `127.0.0.1:${ports.gossip}`,
    GOSSIPCACHE_JOIN_TIMEOUT: '500ms',
  });
  try {
    await waitFor('readyz 200', async () => (await httpGet(`${node.http}/readyz`)).status === 200, 20_000);
    assert.match(node.output(), /no seed answered yet; serving alone/);
    assert.equal((await httpGet(`${node.http}/default/x`)).text, 'Value of x');
  } finally {
    assert.equal(await stopCli(node), 0);
  }
});

/** Starts a node whose `which` port another server holds; its exit code and its output, each line parsed as JSON. */
async function onBusyPort(which: 'http' | 'grpc') {
  const busy = createServer().listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const ports = await nodePorts();
  ports[which] = (busy.address() as { port: number }).port;
  const node = startCli(ports);
  try {
    const code = await node.exited;
    const output = node.output();
    return {
      code,
      output,
      lines: output
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    };
  } finally {
    busy.close();
    await stopCli(node);
  }
}

test('a busy HTTP port: one fatal line naming the address, exit 1', async () => {
  const { code, output, lines } = await onBusyPort('http');
  assert.equal(code, 1);
  const fatal = lines.find((l) => l.level === 60);
  assert.ok(fatal, output);
  assert.match(fatal.msg, /cannot start: .*EADDRINUSE.*127\.0\.0\.1/);
});

test("a busy gRPC port: every line is JSON, grpc-js's own message too, one fatal line, exit 1", async () => {
  const { code, output, lines } = await onBusyPort('grpc');
  assert.equal(code, 1);
  // grpc-js used to print "E No address added out of total 1 resolved" to stderr by itself.
  assert.equal(lines.filter((l) => l.level === 60).length, 1);
  assert.ok(
    lines.some((l) => l.component === 'grpc-js' && /No address added/.test(l.msg)),
    output,
  );
});

test('requests still pending at the shutdown timeout are cut, and the node exits 0', async () => {
  const origin = await countingOrigin(30_000);
  const node = startCli(await nodePorts(), {
    GOSSIPCACHE_ORIGIN: origin.url,
    GOSSIPCACHE_SHUTDOWN_TIMEOUT: '300ms',
  });
  try {
    await waitFor('ready', async () => (await httpGet(`${node.http}/readyz`)).status === 200);
    const pending = httpGet(`${node.http}/default/forever`).then(
      (r) => r.status,
      () => 'cut' as const,
    );
    await waitFor('the load to reach the origin', async () => origin.pending === 1, 10_000);
    const t0 = Date.now();
    node.child.kill('SIGTERM');
    assert.equal(await node.exited, 0);
    assert.ok(Date.now() - t0 < 10_000, 'bounded by the timeout, not by the origin');
    assert.equal(await pending, 'cut');
    assert.match(node.output(), /in-flight requests did not finish in time/);
  } finally {
    await stopCli(node);
    await origin.close();
  }
});

test('several groups from GOSSIPCACHE_CONFIG, each with its own loader', async () => {
  const origin = await countingOrigin();
  const dir = mkdtempSync(join(tmpdir(), 'gc-groups-'));
  const file = join(dir, 'groups.json');
  writeFileSync(
    file,
    JSON.stringify({
      groups: [
        { name: 'users', cacheBytes: '1MiB', origin: origin.url },
        { name: 'demo', origin: 'demo:0ms' },
      ],
    }),
  );
  const node = startCli(await nodePorts(), { GOSSIPCACHE_CONFIG: file });
  try {
    await waitFor('ready', async () => (await httpGet(`${node.http}/readyz`)).status === 200);
    assert.equal((await httpGet(`${node.http}/users/42`)).text, 'value:42');
    assert.equal((await httpGet(`${node.http}/demo/42`)).text, 'Value of 42');
    assert.equal((await httpGet(`${node.http}/default/42`)).status, 404);
    const stats = JSON.parse((await httpGet(`${node.http}/_stats`)).text);
    assert.deepEqual(Object.keys(stats.groups).sort(), ['demo', 'users']);
    assert.equal(origin.loads.get('42'), 1);
  } finally {
    assert.equal(await stopCli(node), 0);
    await origin.close();
    rmSync(dir, { recursive: true });
  }
});
