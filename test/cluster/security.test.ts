// Fault-suite scenario 7: security across namespaces.
//  a) gossip encryption: with a secret key set, a node holding a different key never joins.
//  b) mutual TLS on gRPC (certificates made with openssl now): a process without a certificate can
//     neither fetch values from the cluster nor serve values to it; a certificate from the cluster's
//     CA is accepted (control, so the negative results are not vacuous).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { getJson, httpGet, sumField } from '../support/netns/client.js';
import { Cluster, Monitor, REPO_ROOT } from '../support/netns/cluster.js';
import { defaultNodeCommand, netnsUnavailableReason } from '../support/netns/lab.js';
import { expectedValue } from '../support/netns/origin.js';
import { FaultReport } from '../support/netns/report.js';
import { ipSan, makePki, type TestPki } from '../support/pki.js';
import { sleep, waitFor } from '../support/wait.js';

function skipReason(): string | false {
  const cmd = defaultNodeCommand(REPO_ROOT);
  if (cmd.label !== 'dist/cli.js') return 'security scenarios need the real node (gossip keys, TLS)';
  if (!existsSync(join(REPO_ROOT, 'dist/cli.js')))
    return 'fault suite: dist/cli.js is not built (npm run build)';
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'security scenarios skipped: `openssl` is not installed (it makes the test certificates)';
  }
  const why = netnsUnavailableReason();
  return why ? `fault suite skipped: ${why}` : false;
}

const skip = skipReason();
const runTag = Date.now().toString(36);

/**
 * One gRPC health check over HTTP/2 + TLS, written by hand so the probe does not share code with the
 * node: ok = the server answered with grpc-status 0.
 */
function grpcHealthCheck(
  addr: string,
  tls: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ ok, detail });
    };
    const session = http2.connect(`https://${addr}`, { ca: tls.ca, cert: tls.cert, key: tls.key });
    const timer = setTimeout(() => finish(false, 'timeout'), 10_000);
    session.on('error', (err) =>
      finish(false, `session error: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
    );
    session.on('close', () => finish(false, 'session closed'));
    const req = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let status: string | undefined;
    req.on('response', (h) => (status = (h['grpc-status'] as string | undefined) ?? status));
    req.on('trailers', (h) => (status = (h['grpc-status'] as string | undefined) ?? status));
    req.on('data', () => {});
    req.on('end', () => finish(status === '0', `grpc-status ${status}`));
    req.on('error', (err) =>
      finish(false, `stream error: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
    );
    req.end(Buffer.alloc(5)); // one empty HealthCheckRequest (service "" = the whole server)
  });
}

describe('security across namespaces', { skip }, () => {
  const report = new FaultReport('security', defaultNodeCommand(REPO_ROOT).label);
  let current: Cluster | undefined;
  let pki: TestPki | undefined;

  after(async () => {
    const left = current ? await current.destroy() : [];
    pki?.cleanup();
    const file = report.write(join(REPO_ROOT, 'bench-results'));
    console.log(`${report.table()}\nreport: ${file}`);
    assert.deepEqual(left, [], 'teardown left namespaces/links behind');
  });

  it('7a. with a gossip key set, a node with the wrong key never joins', async () => {
    const good = randomBytes(32).toString('base64');
    const wrong = randomBytes(32).toString('hex');
    const cluster = await Cluster.create({
      size: 4,
      name: 'gossip-key',
      env: (h) => ({ GOSSIPCACHE_SECRET_KEY: h.index === 3 ? wrong : good }),
    });
    current = cluster;
    const members = cluster.nodes.slice(0, 3);
    const intruder = cluster.nodes[3];
    for (const n of members) n.start();
    for (const n of members) await cluster.waitReady(n);
    const convergeMs = await cluster.waitConverged(members, 60_000);
    const monitor = new Monitor(cluster).start();
    intruder.start();
    await waitFor(
      'the intruder to answer HTTP',
      async () => (await httpGet(intruder.url('/healthz'), 1_000)).status === 200,
      {
        timeoutMs: 90_000,
        state: () => intruder.logTail(10),
      },
    );
    // Watch through several join retries and one partition-healing reconnect round (10 s default).
    await sleep(15_000);
    monitor.stop();
    await monitor.poll();
    const sightings = monitor.events.filter((e) => e.observer !== 3 && e.subject === intruder.grpcAddr);
    const intruderView = (await cluster.views([intruder])).get(intruder);
    const raws = await Promise.all(members.map((n) => getJson(n.url('/_cluster'))));
    const decryptFailures = raws.reduce<number | undefined>((a, r) => {
      const n = sumField(r, 'decryptFailures');
      return n === undefined ? a : (a ?? 0) + n;
    }, undefined);
    report.record('7a wrong gossip key', {
      convergeMs,
      intruderSeenByMembers: sightings.length,
      intruderRingSize: intruderView?.ring.length ?? -1,
      decryptFailuresAtMembers: decryptFailures ?? 'n/a',
    });
    assert.deepEqual(sightings, [], 'no member ever listed the node with the wrong key');
    assert.ok(intruderView, 'the intruder answers /_cluster');
    assert.deepEqual(intruderView.ring, [intruder.grpcAddr], 'the intruder knows only itself');
    await cluster.waitConverged(members, 10_000); // the members are unaffected
    if (decryptFailures !== undefined) {
      assert.ok(decryptFailures > 0, 'the members did receive (and reject) the intruder’s packets');
    }
    report.pass('7a wrong gossip key');
    assert.deepEqual(await cluster.destroy(), []);
    current = undefined;
  });

  it('7b. with mutual TLS, a process without a certificate can neither fetch from nor serve to the cluster', async () => {
    if (current) assert.deepEqual(await current.destroy(), []); // 7a failed half-way
    current = undefined;
    // Certificates carry the nodes' IPs, so they are issued once the namespaces exist; the env
    // only names the files.
    const dir = (pki = makePki()).dir;
    const cluster = await Cluster.create({
      size: 4,
      name: 'mtls',
      env: (h): Record<string, string> =>
        h.index === 3
          ? {} // the rogue: plain gRPC, no certificate
          : {
              GOSSIPCACHE_TLS_CERT: join(dir, `node${h.index}.crt`),
              GOSSIPCACHE_TLS_KEY: join(dir, `node${h.index}.key`),
              GOSSIPCACHE_TLS_CA: join(dir, 'ca.crt'),
            },
    });
    current = cluster;
    for (const n of cluster.nodes.slice(0, 3)) pki.node(`node${n.host.index}`, ipSan([n.host.ip]));
    const client = pki.node('client', ipSan([cluster.lab.hostIp]));
    const members = cluster.nodes.slice(0, 3);
    const rogue = cluster.nodes[3];
    for (const n of members) n.start();
    for (const n of members) await cluster.waitReady(n);
    await cluster.waitConverged(members, 60_000);

    // Direct probes of a member's gRPC port from the test process.
    const ca = readFileSync(pki.caFile);
    const target = members[0].grpcAddr;
    const withCert = await grpcHealthCheck(target, {
      ca,
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
    });
    const withoutCert = await grpcHealthCheck(target, { ca });
    report.record('7b mTLS', { healthWithCert: withCert.detail, healthWithoutCert: withoutCert.detail });
    assert.ok(withCert.ok, `a client with a certificate from the CA is served (control): ${withCert.detail}`);
    assert.ok(!withoutCert.ok, `a client without a certificate is refused: ${withoutCert.detail}`);

    // The rogue joins the (unencrypted) gossip, so the members' rings may route keys to it and it
    // routes keys to them: every such call must fail the TLS handshake.
    rogue.start();
    await cluster.waitReady(rogue);
    let rogueInRings = true;
    try {
      await cluster.waitConverged(cluster.nodes, 30_000);
    } catch {
      rogueInRings = false;
    }
    const fetchKeys = Array.from({ length: 40 }, (_, i) => `rogue-fetch-${runTag}-${i}`);
    const viaRogue = await Promise.all(fetchKeys.map((k) => httpGet(rogue.url(`/default/${k}`), 30_000)));
    const serveKeys = Array.from({ length: 40 }, (_, i) => `rogue-serve-${runTag}-${i}`);
    const viaMembers: Awaited<ReturnType<typeof httpGet>>[] = [];
    for (const via of [members[0], members[1]]) {
      viaMembers.push(
        ...(await Promise.all(serveKeys.map((k) => httpGet(via.url(`/default/${k}`), 30_000)))),
      );
    }
    const rogueIp = rogue.host.ip;
    const rogueLoadedFetch = cluster.origin.loadsByIp(`rogue-fetch-${runTag}-`).get(rogueIp) ?? 0;
    const rogueLoadedServe = cluster.origin.loadsByIp(`rogue-serve-${runTag}-`).get(rogueIp) ?? 0;
    const loadedOnce = serveKeys.filter((k) => cluster.origin.loads(k) === 1).length;
    const rogueStats = await getJson(rogue.url('/_stats'));
    const rogueServed = sumField(rogueStats, 'serverRequests');
    const roguePeerLoads = sumField(rogueStats, 'peerLoads');
    report.record('7b mTLS', {
      rogueInRings,
      rogueLoadedItselfOf40: rogueLoadedFetch,
      rogueLoadedForMembers: rogueLoadedServe,
      membersSharedKeysOf40: loadedOnce,
      rogueServerRequests: rogueServed ?? 'n/a',
      roguePeerLoads: roguePeerLoads ?? 'n/a',
    });
    const bad = [...viaRogue, ...viaMembers].filter((r) => r.status !== 200);
    assert.deepEqual(
      bad.slice(0, 3).map((r) => `${r.status} ${r.error ?? r.body.slice(0, 120)}`),
      [],
      'every get is answered',
    );
    assert.ok(
      [...viaRogue.map((r, i) => r.body === expectedValue(fetchKeys[i]))].every(Boolean),
      'the rogue answers correct values (from its own loads)',
    );
    assert.equal(
      rogueLoadedFetch,
      40,
      'the rogue fetched nothing from the cluster: it loaded every key itself',
    );
    assert.equal(
      rogueLoadedServe,
      0,
      'the rogue served nothing to the cluster: the members never got a value from it',
    );
    if (rogueServed !== undefined) assert.equal(rogueServed, 0, 'no peer request reached the rogue');
    if (roguePeerLoads !== undefined) assert.equal(roguePeerLoads, 0, 'the rogue got no value from a peer');
    assert.ok(
      loadedOnce >= 10,
      `the members do share keys over mTLS (control): ${loadedOnce}/40 loaded once`,
    );
    report.pass('7b mTLS');
  });
});
