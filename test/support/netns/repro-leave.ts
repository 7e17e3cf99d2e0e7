// Reproduces the graceful-leave defect seen in scenario 6, without load: n real nodes in namespaces,
// SIGTERM the last one, then print how every other node holds it ('left' = the leave was heard,
// 'dead' = it was found missing by failure detection) and how long their rings took to drop it.
// Usage (root): node --import tsx test/support/netns/repro-leave.ts [n=5] [trials=1] [encrypted]

import { randomBytes } from 'node:crypto';
import { sleep } from '../wait.js';
import { Cluster } from './cluster.js';

const n = Number(process.argv[2] ?? 5);
const trials = Number(process.argv[3] ?? 1);
const key = randomBytes(32).toString('base64');
const encrypted = process.argv[4] === 'encrypted';
const cluster = await Cluster.create({
  size: n,
  name: `repro-leave-${n}`,
  env: (): Record<string, string> => (encrypted ? { GOSSIPCACHE_SECRET_KEY: key } : {}),
});
try {
  for (const node of cluster.nodes) node.start();
  for (const node of cluster.nodes) await cluster.waitReady(node);
  for (let t = 0; t < trials; t++) {
    await cluster.waitConverged(cluster.nodes, 60_000);
    await sleep(1_000);
    const leaver = cluster.nodes[n - 1];
    const rest = cluster.nodes.slice(0, n - 1);
    const t0 = performance.now();
    const stopped = leaver.stop('SIGTERM');
    const dropMs = await cluster.waitConverged(rest, 60_000);
    const held = [...(await cluster.views(rest))].map(
      ([node, v]) =>
        `node${node.host.index}:${v?.members.find((m) => m.grpcAddr === leaver.grpcAddr)?.state ?? 'absent'}`,
    );
    await stopped;
    console.log(
      `n=${n}${encrypted ? ' encrypted' : ''} trial ${t + 1}: rings dropped the leaver after ${Math.round(performance.now() - t0)} ms (poll ${dropMs} ms); held as ${held.join(' ')}; exit ${JSON.stringify(leaver.exitInfo)}`,
    );
    leaver.start();
    await cluster.waitReady(leaver);
  }
  console.log(`node logs: ${cluster.logDir}`);
} finally {
  await cluster.destroy();
}
