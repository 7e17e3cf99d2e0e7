// The thundering herd. 200 concurrent gets of one fresh key spread over the 3 nodes' HTTP fronts
// must cause exactly one origin load (loads per key 1.00): the owner's single flight, the others waiting on
// it over gRPC. Then the same while a fourth node joins: herds of fresh keys keep starting every 250 ms from
// before the join until after every node agrees on the 4-node ring, and the loads per key are reported.
// The origin is an HTTP server in its own process that counts its loads per key and answers after 150 ms.
import { Agent, request } from 'node:http';
import { freePort } from '../../test/support/ports.js';
import { sleep } from '../../test/support/wait.js';
import {
  findField,
  getJson,
  hasNode,
  type NodeHandle,
  startCluster,
  startNode,
  waitForRing,
} from './lib/cluster.js';
import { isMain, runAlone } from './lib/main.js';
import { startProcess, stopAll, waitForPort } from './lib/proc.js';
import type { BenchOptions, BenchRow } from './lib/types.js';

const BENCH = 'herd';
const GROUP = 'herd';
const HERD = 200;
const ORIGIN_DELAY_MS = 150;
/** A new herd starts this often during the join (each lasts about ORIGIN_DELAY_MS + fetch time). */
const JOIN_HERD_EVERY_MS = 250;

interface Origin {
  port: number;
  /** Loads per key so far, as the origin process counted them. */
  loads(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

async function startOrigin(): Promise<Origin> {
  const port = await freePort();
  const server = startProcess('origin', process.execPath, [
    'scripts/bench/lib/origin-http.mjs',
    String(port),
    String(ORIGIN_DELAY_MS),
  ]);
  await waitForPort(port, 5000, server);
  return {
    port,
    loads: async () =>
      new Map(
        Object.entries((await getJson(port, '/_loads')) as Record<string, number>).map(([k, v]) => [k, v]),
      ),
    close: () => server.stop(),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: 0, body: e.message }));
    });
    req.setTimeout(15000, () => req.destroy(new Error('no answer within 15 s')));
    req.on('error', (e) =>
      resolve({ status: 0, body: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }),
    );
    req.end();
  });
}

/** Failed answers by status ("0" = no answer, "200≠" = wrong body), over a whole case. */
const failures = new Map<string, number>();
/** The first body seen per failure status, to say why. */
const samples = new Map<string, string>();

function failureText(): string {
  return [...failures].map(([k, n]) => `${k}×${n} (${samples.get(k) ?? ''})`).join(', ') || 'none';
}

/** One herd: HERD concurrent gets of `key`, round-robin over `ports`. Returns how many failed or disagreed. */
async function herd(ports: number[], key: string): Promise<number> {
  const want = `origin value of ${key}`;
  const rs = await Promise.all(
    Array.from({ length: HERD }, (_, i) =>
      get(ports[i % ports.length], `/${GROUP}/${encodeURIComponent(key)}`),
    ),
  );
  const bad = rs.filter((r) => r.status !== 200 || r.body !== want);
  for (const r of bad) {
    const k = r.status === 200 ? '200≠' : String(r.status);
    failures.set(k, (failures.get(k) ?? 0) + 1);
    if (!samples.has(k)) samples.set(k, r.body.replace(/\s+/g, ' ').slice(0, 160));
  }
  return bad.length;
}

async function loadStats(origin: Origin, keys: string[]) {
  const loads = await origin.loads();
  const per = keys.map((k) => loads.get(k) ?? 0);
  const total = per.reduce((s, n) => s + n, 0);
  return { mean: total / keys.length, max: Math.max(...per), over1: per.filter((n) => n > 1).length };
}

export async function run({ quick }: BenchOptions): Promise<BenchRow[]> {
  if (!hasNode())
    return [{ bench: BENCH, case: 'SKIPPED', metrics: { reason: 'dist/cli.js missing: npm run build' } }];
  const rounds = quick ? 10 : 25;
  const origin = await startOrigin();
  let nodes: NodeHandle[] = [];
  const rows: BenchRow[] = [];
  try {
    nodes = await startCluster(3, {
      group: GROUP,
      origin: `http://127.0.0.1:${origin.port}/o/{key}`,
      cacheBytes: '64MiB',
    });
    const ports = nodes.map((x) => x.httpPort);
    const run = Date.now().toString(36);

    // 1. Steady 3-node cluster: one herd at a time.
    const keys: string[] = [];
    let failed = 0;
    const t0 = performance.now();
    for (let i = 0; i < rounds; i++) {
      const key = `fresh-${run}-${i}`;
      keys.push(key);
      failed += await herd(ports, key);
    }
    const s = await loadStats(origin, keys);
    rows.push({
      bench: BENCH,
      case: `3 nodes, ${rounds} keys × ${HERD} concurrent gets`,
      metrics: {
        'loads/key': s.mean.toFixed(2),
        max_loads: s.max,
        failed,
        failures: failureText(),
        ms_per_herd: (performance.now() - t0) / rounds,
      },
      goal: 'loads/key 1.00',
    });

    // 2. A fourth node joins while herds of fresh keys keep starting.
    failures.clear();
    samples.clear();
    const joinKeys: string[] = [];
    const inFlight: Promise<number>[] = [];
    let joined = false;
    let convergedAt = 0;
    const joinStart = performance.now();
    const joining = startNode('node3', {
      group: GROUP,
      origin: `http://127.0.0.1:${origin.port}/o/{key}`,
      cacheBytes: '64MiB',
      seeds: [`127.0.0.1:${nodes[0].gossipPort}`],
    }).then((n) => {
      nodes.push(n);
      joined = true;
      return n;
    });
    joining.catch(() => {});
    const deadline = performance.now() + 30_000;
    let i = 0;
    let checkedAt = 0;
    while (performance.now() < deadline) {
      const targets = nodes.map((x) => x.httpPort);
      const key = `join-${run}-${i++}`;
      joinKeys.push(key);
      inFlight.push(herd(targets, key));
      await sleep(JOIN_HERD_EVERY_MS);
      if (joined && convergedAt === 0 && performance.now() - checkedAt > 300) {
        checkedAt = performance.now();
        const views = await Promise.all(nodes.map((x) => getJson(x.httpPort, '/_cluster').catch(() => null)));
        const sums = views.map((v) => String(findField(v, 'ringChecksum')));
        const sizes = views.map((v) => Number(findField(v, 'ringSize')));
        if (new Set(sums).size === 1 && sizes.every((n) => n === 4)) convergedAt = performance.now();
      }
      // Keep going 1.5 s past convergence so herds straddle the change on every node.
      if (convergedAt > 0 && performance.now() - convergedAt > 1500) break;
    }
    await joining;
    const joinFailed = (await Promise.all(inFlight)).reduce((s2, n) => s2 + n, 0);
    const j = await loadStats(origin, joinKeys);
    rows.push({
      bench: BENCH,
      case: `3 nodes + 1 joining, ${joinKeys.length} keys × ${HERD} gets`,
      metrics: {
        'loads/key': j.mean.toFixed(2),
        max_loads: j.max,
        keys_loaded_twice_or_more: j.over1,
        failed: joinFailed,
        failures: failureText(),
        converged_after_s: convergedAt > 0 ? (convergedAt - joinStart) / 1000 : 'not within 30 s',
      },
      goal: 'report (ownership moves mid-herd)',
    });
    await waitForRing(nodes, 5000).catch(() => {});
  } finally {
    agent.destroy();
    await stopAll(nodes.map((x) => x.server));
    await origin.close();
  }
  return rows;
}

if (isMain(import.meta.url)) await runAlone(run);
