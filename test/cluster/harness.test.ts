// The fault suite's plumbing on its own: namespaces reach each other and the root namespace, DNS
// names per namespace resolve to all addresses, partitions and loss rules apply, and nothing is left
// behind — including what a crashed earlier run left.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { httpGet } from '../support/netns/client.js';
import { cleanStaleRuns, NetLab, netnsUnavailableReason, PREFIX, sh } from '../support/netns/lab.js';
import { sleep } from '../support/wait.js';

const skip = netnsUnavailableReason() ?? false;
const execFileAsync = promisify(execFile);

/** Runs a one-line Node script inside a namespace, returns its stdout (async: servers in this
 * process must keep answering meanwhile). */
async function nodeIn(ns: string, script: string): Promise<string> {
  const args = ['netns', 'exec', ns, process.execPath, '-e', script];
  const { stdout } = await execFileAsync('ip', args, { timeout: 20_000 });
  return stdout.trim();
}

describe('fault-suite harness (network namespaces)', {
  skip: skip ? `fault suite skipped: ${skip}` : false,
}, () => {
  let lab: NetLab | undefined;

  after(() => lab?.destroy());

  it('builds namespaces on a bridge: per-namespace DNS, reachability, partition, loss rule, clean teardown', async () => {
    lab = NetLab.create();
    const [a, b, c] = [lab.addHost(), lab.addHost(), lab.addHost()];
    for (const name of [lab.bridge, `${PREFIX}${lab.id}h2`, `${PREFIX}${lab.id}e2`]) {
      assert.ok(name.length <= 15, `interface name ${name} fits IFNAMSIZ`);
    }
    lab.setDns({ 'seeds.test': [a.ip, b.ip, c.ip] });
    const resolved = await nodeIn(
      a.ns,
      "require('dns').lookup('seeds.test',{all:true},(e,r)=>console.log(e?e.code:r.map(x=>x.address).sort().join(',')))",
    );
    assert.equal(
      resolved,
      [a.ip, b.ip, c.ip].sort().join(','),
      'one name resolves to every node inside a namespace',
    );

    // A server in the root namespace on the bridge address is reachable from a namespace.
    const server = http.createServer((req, res) => res.end(req.socket.remoteAddress ?? ''));
    await new Promise<void>((r) => server.listen(0, lab!.hostIp, () => r()));
    const { port } = server.address() as AddressInfo;
    const fetchFrom = (ns: string, url: string) =>
      nodeIn(
        ns,
        `require('http').get(${JSON.stringify(url)},{timeout:2000},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(r.statusCode+' '+b))}).on('error',e=>console.log('ERR '+e.code)).on('timeout',function(){this.destroy(Object.assign(new Error('t'),{code:'TIMEOUT'}))})`,
      );
    try {
      assert.equal(
        await fetchFrom(b.ns, `http://${lab.hostIp}:${port}/`),
        `200 ${b.ip}`,
        'namespace → root over the bridge',
      );
    } finally {
      server.close();
    }

    // Namespace → namespace, then cut by a partition, then healed.
    const srv = nodeInBackground(c.ns, 'require("http").createServer((q,s)=>s.end("ok")).listen(8080)');
    try {
      const url = `http://${c.ip}:8080/`;
      await waitOk(() => httpGet(url, 1_000));
      assert.equal(await fetchFrom(a.ns, url), '200 ok', 'a reaches c');
      await lab.partition([a], [b, c]);
      assert.equal(await fetchFrom(a.ns, url), 'ERR TIMEOUT', 'partition drops a → c');
      assert.equal(await fetchFrom(b.ns, url), '200 ok', 'b and c, on the same side, still talk');
      await lab.clearRules();
      assert.equal(await fetchFrom(a.ns, url), '200 ok', 'healed');
      await lab.packetLoss([c], 0.1);
      assert.match(lab.rules(c), /-i eth0 -m statistic --mode random --probability 0\.1\d* -j DROP/);
    } finally {
      srv.kill('SIGKILL');
    }

    const id = lab.id;
    lab.destroy();
    assert.deepEqual(lab.leftovers(), [], `nothing of run ${id} is left`);
    assert.equal(existsSync(`/etc/netns/${a.ns}`), false);
  });

  it('removes what a crashed earlier run left behind, by prefix, and leaves live runs alone', () => {
    const dead = `${PREFIX}zz9q`; // a run whose process is gone: no pid file
    sh('ip', ['netns', 'add', `${dead}n0`]);
    sh('ip', ['link', 'add', `${dead}b`, 'type', 'bridge']);
    mkdirSync(`/etc/netns/${dead}n0`, { recursive: true });
    writeFileSync(`/etc/netns/${dead}n0/hosts`, '127.0.0.1 localhost\n');
    const live = `${PREFIX}zz8q`; // a run in progress (this process owns it)
    sh('ip', ['netns', 'add', `${live}n0`]);
    mkdirSync('/run/gossipcache-fault-suite', { recursive: true });
    writeFileSync('/run/gossipcache-fault-suite/zz8q', String(process.pid));
    try {
      const cleaned = cleanStaleRuns();
      assert.ok(cleaned.includes('zz9q'), `stale run cleaned (got ${cleaned.join(',')})`);
      assert.ok(!cleaned.includes('zz8q'), 'a live run is left alone');
      assert.ok(!sh('ip', ['netns', 'list']).includes(`${dead}n0`));
      assert.ok(!sh('ip', ['-o', 'link', 'show']).includes(`${dead}b`));
      assert.equal(existsSync(`/etc/netns/${dead}n0`), false);
      assert.ok(sh('ip', ['netns', 'list']).includes(`${live}n0`));
    } finally {
      sh('ip', ['netns', 'del', `${live}n0`], { quiet: true });
      sh('rm', ['-f', '/run/gossipcache-fault-suite/zz8q'], { quiet: true });
    }
  });
});

/** Starts a long-running Node script inside a namespace. */
function nodeInBackground(ns: string, script: string) {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: 'ignore' });
}

async function waitOk(get: () => Promise<{ status: number }>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await get()).status === 200) return;
    await sleep(100);
  }
  throw new Error('server in the namespace never answered');
}
